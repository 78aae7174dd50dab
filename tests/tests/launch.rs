//! However the daemon is launched (`nsenter`, `ip netns exec`, a private mount namespace, as in a
//! container), what it leaves for the datapath outlives it and is visible from the caller's mount
//! namespace: container namespaces without a process of their own survive kill -9, pinned maps and
//! socket hooks stay, and host processes reach published ports on 127.0.0.1. A second daemon on
//! the same directories is refused with the holder's pid; the API socket is root's alone.
use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread::sleep,
    time::Duration,
};

use netd_tests::{netd_bin, run, Host, Launch};

/// What `statfs` calls the filesystem at `path`, as seen from the test's mount namespace.
fn fs_type(path: &Path) -> String {
    run("stat", &["-f", "-c", "%T", &path.display().to_string()])
        .stdout
        .trim()
        .to_string()
}

fn netns_file(host: &Host, container: &str) -> PathBuf {
    host.dir.join("run/netns").join(container)
}

/// Runs `cmd` in a container's namespace by its file, without the daemon.
fn in_netns(file: &Path, cmd: &[&str]) -> netd_tests::Out {
    let net = format!("--net={}", file.display());
    let mut all = vec![net.as_str()];
    all.extend_from_slice(cmd);
    run("nsenter", &all)
}

/// A TCP server in the namespace at `file` on `port` that answers every connection with "hi".
fn serve_hi(file: &Path, port: u16) -> netd_tests::Background {
    let child = Command::new("nsenter")
        .arg(format!("--net={}", file.display()))
        .args([
            "socat",
            &format!("TCP-LISTEN:{port},fork,reuseaddr"),
            "SYSTEM:echo hi",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server");
    netd_tests::Background::new(child)
}

/// What a host process gets from 127.0.0.1:`port`, asked up to 30 times (the server needs a
/// moment to listen); `in_cgroup` puts the client in the test's cgroup.
fn from_loopback(host: &Host, port: u16, in_cgroup: bool) -> String {
    let script = format!("socat -T2 - TCP:127.0.0.1:{port},connect-timeout=2 </dev/null");
    let mut got = String::new();
    for _ in 0..30 {
        got = match in_cgroup {
            true => host.on_host_in_cgroup(&script).stdout,
            false => host.on_host(&["sh", "-c", &script]).stdout,
        };
        if got.trim() == "hi" {
            break;
        }
        sleep(Duration::from_millis(100));
    }
    got.trim().to_string()
}

fn containers_without_processes_survive_kill_9(launch: Launch) {
    let Some(mut host) = Host::start_with(launch, &[]) else {
        return;
    };
    host.container("c1", &[]);
    host.container("c2", &[]);
    let c2 = host.ip("c2", "bridge");
    host.stop_daemon("KILL");
    for c in ["c1", "c2"] {
        assert_eq!(
            fs_type(&netns_file(&host, c)),
            "nsfs",
            "{launch:?}: {c}'s namespace is pinned where the caller sees it"
        );
    }
    let ping = in_netns(
        &netns_file(&host, "c1"),
        &["busybox", "ping", "-c", "1", "-W", "2", &c2],
    );
    assert!(
        ping.ok(),
        "{launch:?}: c1 reaches c2 with no daemon: {ping:?}"
    );
    let pins = std::fs::read_dir(host.bpffs.join("maps")).map(|d| d.count());
    assert!(
        pins.is_ok_and(|n| n > 0),
        "{launch:?}: the pinned maps are visible from the caller"
    );
    host.start_daemon();
    let ls = host.ok(&["container", "ls"]);
    assert_eq!(ls.matches(" running ").count(), 2, "{launch:?}: {ls}");
    assert!(!host.daemon_log().contains("marking it stopped"));
    assert!(host.reaches("c1", &c2));
    host.stop_daemon("TERM");
    let cleanup = host.cleanup();
    assert!(cleanup.ok(), "{launch:?}: {cleanup:?}");
    assert_cleaned_up(&host);
}

/// Nothing of the host's daemon is left, as the caller's mount namespace sees it.
fn assert_cleaned_up(host: &Host) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = host.dir.display().to_string();
    assert!(
        !mountinfo.contains(&dir),
        "mounts left under {dir}: {mountinfo}"
    );
    assert!(!host.bpffs.exists(), "{} is left", host.bpffs.display());
    let devices = host.devices();
    assert!(
        devices.iter().all(|d| !d.contains("netd")),
        "devices left: {devices:?}"
    );
}

#[test]
fn under_ip_netns_exec_containers_without_processes_survive_kill_9() {
    containers_without_processes_survive_kill_9(Launch::IpNetnsExec);
}

#[test]
fn in_a_private_mount_namespace_containers_without_processes_survive_kill_9() {
    containers_without_processes_survive_kill_9(Launch::PrivateMounts);
}

#[test]
fn under_nsenter_containers_without_processes_survive_kill_9() {
    containers_without_processes_survive_kill_9(Launch::Nsenter);
}

fn host_processes_reach_published_ports(launch: Launch) {
    let Some(host) = Host::start_with(launch, &[]) else {
        return;
    };
    host.container("web", &["-p", "8080:80"]);
    let _server = serve_hi(&netns_file(&host, "web"), 80);
    assert_eq!(from_loopback(&host, 8080, true), "hi", "{launch:?}");
}

#[test]
fn under_ip_netns_exec_host_processes_reach_published_ports_on_loopback() {
    host_processes_reach_published_ports(Launch::IpNetnsExec);
}

#[test]
fn in_a_private_mount_namespace_host_processes_reach_published_ports_on_loopback() {
    host_processes_reach_published_ports(Launch::PrivateMounts);
}

#[test]
fn under_ip_netns_exec_the_daemon_reads_the_namespaces_own_resolv_conf() {
    let Some(host) = Host::start_with(Launch::IpNetnsExec, &[]) else {
        return;
    };
    let _dns = host.upstream_dns();
    host.ok(&["network", "create", "n1"]);
    host.container("cc", &["--network", "n1"]);
    let answer = host.exec("cc", &["dig", "+short", "+time=2", "outside.test"]);
    assert_eq!(answer.stdout.trim(), "10.99.0.77", "{answer:?}");
}

#[test]
fn in_a_container_the_daemon_mounts_bpffs_and_cgroup2_itself() {
    let Some(host) = Host::start_with(Launch::Container, &[]) else {
        return;
    };
    let pid = host.daemon_pid().expect("daemon pid");
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mounts")).expect("mounts");
    let cgroup2 = host.dir.join("run/cgroup2");
    assert!(
        mounts.contains(" /sys/fs/bpf bpf ")
            && mounts.contains(&format!(" {} cgroup2 ", cgroup2.display())),
        "{mounts}"
    );
    host.container("web", &["-p", "8080:80"]);
    // The namespace file lives in the container's mount namespace: reach it through the daemon.
    let file = PathBuf::from(format!("/proc/{pid}/root")).join(
        netns_file(&host, "web")
            .strip_prefix("/")
            .expect("absolute"),
    );
    let _server = serve_hi(&file, 80);
    assert_eq!(from_loopback(&host, 8080, false), "hi");
}

/// Directories for a second daemon beside `host`'s, removed when dropped.
struct Spare {
    dir: PathBuf,
    bpffs: PathBuf,
}

impl Spare {
    fn new(host: &Host) -> Self {
        Self {
            dir: host.dir.join("spare"),
            bpffs: PathBuf::from(format!("{}-spare", host.bpffs.display())),
        }
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(&self.bpffs);
    }
}

/// Runs a second daemon in `host`'s namespace with these directories and `--cgroup`, and
/// returns its one-line error (a daemon that starts is killed after 20 s and fails the test).
fn second_daemon(host: &Host, state: &Path, run_dir: &Path, bpffs: &Path, cgroup: &Path) -> String {
    let out = run(
        "timeout",
        &[
            "20",
            "nsenter",
            &format!("--net=/run/netns/{}", host.host_ns()),
            &netd_bin().display().to_string(),
            "daemon",
            "--state-dir",
            &state.display().to_string(),
            "--run-dir",
            &run_dir.display().to_string(),
            "--bpffs",
            &bpffs.display().to_string(),
            "--cgroup",
            &cgroup.display().to_string(),
        ],
    );
    assert!(
        !out.ok() && out.status != 124,
        "a second daemon started: {out:?}"
    );
    let err = out.stderr.lines().last().unwrap_or_default().to_string();
    assert!(err.starts_with("Error: "), "{}", out.stderr);
    err
}

#[test]
fn a_second_daemon_on_any_of_the_same_directories_is_refused_with_the_holders_pid() {
    let Some(host) = Host::start() else { return };
    let pid = host.daemon_pid().expect("daemon pid");
    let held = format!("another netd daemon (pid {pid}) holds");
    let spare = Spare::new(&host);
    let (state, run_dir) = (host.dir.join("state"), host.dir.join("run"));
    let cases = [
        (&state, &spare.dir.join("run"), &spare.bpffs, "--state-dir"),
        (
            &spare.dir.join("state"),
            &run_dir,
            &spare.bpffs,
            "--run-dir",
        ),
        (
            &spare.dir.join("state"),
            &spare.dir.join("run"),
            &host.bpffs,
            "--bpffs",
        ),
    ];
    for (s, r, b, flag) in cases {
        let err = second_daemon(&host, s, r, b, &host.cgroup());
        assert!(
            err.starts_with(&format!("Error: {held} {flag} ")),
            "{flag}: {err}"
        );
    }
    let cleanup = host.cleanup();
    assert!(
        !cleanup.ok() && cleanup.stderr.contains(&held),
        "{cleanup:?}"
    );
    assert!(host.ok(&["network", "ls"]).contains("bridge"));
}

#[test]
fn the_api_socket_is_for_root_alone_unless_a_group_is_named() {
    let Some(host) = Host::start() else { return };
    let meta = std::fs::metadata(host.socket()).expect("socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let Some(grouped) = Host::start_with_args(&["--group", "daemon"]) else {
        return;
    };
    let meta = std::fs::metadata(grouped.socket()).expect("socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), 1, "Debian's `daemon` group");
}

#[test]
fn a_cgroup_that_is_not_cgroup2_is_an_error_at_start() {
    let Some(host) = Host::start() else { return };
    let spare = Spare::new(&host);
    let (state, run_dir) = (spare.dir.join("state"), spare.dir.join("run"));
    let err = second_daemon(&host, &state, &run_dir, &spare.bpffs, Path::new("/tmp"));
    assert_eq!(
        err,
        "Error: --cgroup /tmp is not a directory of a cgroup2 hierarchy"
    );
    assert!(!run_dir.join("netd.sock").exists(), "nothing is served");
}
