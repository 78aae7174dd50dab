//! Harness for netd's integration tests: each [`Host`] is a throwaway "host" network namespace
//! running its own `netd daemon` (with its own state, run and bpffs directories) and an uplink
//! veth to an "outside" namespace that plays the rest of the world. Nothing touches the
//! machine's own interfaces. Dropping the `Host` kills the daemon, runs `netd daemon --cleanup`,
//! kills what is left in the namespaces and deletes them, even when the test panicked.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread::sleep,
    time::{Duration, Instant},
};

use serde_json::Value;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Address of the host's uplink and of the outside end.
pub use netd_world::{OUTSIDE_IP, UPLINK_IP};

/// The `netd` binary under test: `$NETD_BIN`, or the workspace's debug build.
pub fn netd_bin() -> PathBuf {
    std::env::var_os("NETD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/netd"))
}

/// Whether privileged tests can run. Without root they are skipped, unless `CI=true`, where
/// skipping would hide a failure.
pub fn privileged() -> bool {
    let root = nix_is_root();
    if !root && std::env::var("CI").as_deref() == Ok("true") {
        panic!("integration tests need root and CI=true forbids skipping them");
    }
    if !root {
        eprintln!("skipping: integration tests need root");
    }
    root
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Where the cgroup2 hierarchy is mounted.
pub fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .expect("a cgroup2 hierarchy")
}

/// What a command did.
#[derive(Debug)]
pub struct Out {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.status == 0
    }
}

impl From<Output> for Out {
    fn from(o: Output) -> Self {
        Out {
            status: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs a command and captures what it did.
pub fn run(program: &str, args: &[&str]) -> Out {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
        .into()
}

/// Retries `ask` until its answer contains `expected` (a server that just started), for up to
/// 10 s; the last answer.
pub fn answered(expected: &str, ask: impl Fn() -> String) -> String {
    let mut last = String::new();
    wait_until(
        &format!("an answer with {expected:?}"),
        Duration::from_secs(10),
        || {
            last = ask();
            last.contains(expected)
        },
    );
    last
}

/// Waits until `done` holds, looking every 20 ms; panics naming `what` if it does not within
/// `timeout`. Tests wait for what they need, never for a fixed time.
pub fn wait_until(what: &str, timeout: Duration, done: impl FnMut() -> bool) {
    if let Err(e) = netd_world::wait_until(what, timeout, done) {
        panic!("{e}");
    }
}

/// How long a server started in the background may take to listen on a loaded machine.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The `ss` filter of sockets listening on (`tcp` or `udp`) `port`.
fn listening_args(proto: &str, port: u16) -> Vec<String> {
    let flags = if proto == "udp" { "-Hlun" } else { "-Hltn" };
    ["ss", flags, "sport", "=", &format!(":{port}")]
        .map(String::from)
        .to_vec()
}

/// A child process of `parent`, if it has one.
fn child_of(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let ppid: u32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        (ppid == parent).then_some(pid)
    })
}

/// A background process that is killed and reaped when dropped.
pub struct Background(Child);

impl Background {
    pub fn new(child: Child) -> Self {
        Self(child)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Err(e) = self.0.kill() {
            eprintln!("cannot kill background process {}: {e}", self.0.id());
        }
        if let Err(e) = self.0.wait() {
            eprintln!("cannot reap background process {}: {e}", self.0.id());
        }
    }
}

/// How a test starts its daemon: each way users launch programs in a network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// `nsenter --net=/run/netns/HOST`: the caller's mount namespace.
    Nsenter,
    /// `ip netns exec HOST`: a mount namespace of its own (slave of the caller's), a fresh
    /// `/sys` without bpffs or cgroups, and `/etc/netns/HOST/resolv.conf` over
    /// `/etc/resolv.conf` (the daemon gets no `--resolv-conf` then).
    IpNetnsExec,
    /// `unshare --mount --propagation private`, as a systemd unit with `PrivateMounts=yes`
    /// (which makes it a slave) but stricter: nothing propagates either way.
    PrivateMounts,
    /// As in a container: new pid and mount namespaces (the daemon is pid 1 and sees no
    /// ancestor), with bpffs and every cgroup hierarchy unmounted; no `--cgroup` given.
    Container,
}

/// A throwaway host with a netd daemon.
pub struct Host {
    pub name: String,
    pub dir: PathBuf,
    pub bpffs: PathBuf,
    daemon: Option<Child>,
    /// How the daemon is started.
    launch: Launch,
    /// Extra `netd daemon` arguments, used at every start.
    daemon_args: Vec<String>,
}

impl Host {
    /// A new host with its daemon running, or `None` when privileged tests are skipped.
    pub fn start() -> Option<Host> {
        Self::start_with(Launch::Nsenter, &[])
    }

    /// Like [`Host::start`], with extra `netd daemon` arguments.
    pub fn start_with_args(args: &[&str]) -> Option<Host> {
        Self::start_with(Launch::Nsenter, args)
    }

    /// Like [`Host::start`], with the daemon in a private mount namespace as `ip netns exec`
    /// makes it.
    pub fn start_with_private_mounts() -> Option<Host> {
        Self::start_with(Launch::IpNetnsExec, &[])
    }

    /// Like [`Host::start`], with the daemon started the way `launch` says.
    pub fn start_with(launch: Launch, args: &[&str]) -> Option<Host> {
        let mut host = Self::prepare(launch, args)?;
        host.start_daemon();
        Some(host)
    }

    /// The host's namespaces and dirs, without its daemon yet (see [`Host::start_daemon`]).
    pub fn prepare(launch: Launch, args: &[&str]) -> Option<Host> {
        if !privileged() {
            return None;
        }
        let name = format!(
            "nd{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let dir = std::env::temp_dir().join(format!("netd-test-{name}"));
        let bpffs = PathBuf::from(format!("/sys/fs/bpf/netd-test-{name}"));
        let host = Host {
            name,
            dir,
            bpffs,
            daemon: None,
            launch,
            daemon_args: args.iter().map(|a| a.to_string()).collect(),
        };
        host.build_namespaces();
        Some(host)
    }

    /// Adds `netd daemon` arguments for every later start.
    pub fn push_daemon_args(&mut self, args: &[String]) {
        self.daemon_args.extend_from_slice(args);
    }

    pub fn host_ns(&self) -> String {
        format!("{}h", self.name)
    }

    pub fn outside_ns(&self) -> String {
        format!("{}o", self.name)
    }

    /// Points the daemon's upstream DNS at `server` instead (the daemon reads its resolv.conf
    /// per query). Only for a daemon started with `--resolv-conf`, as [`Launch::Nsenter`]'s.
    pub fn set_upstream(&self, server: &str) {
        let text = format!("nameserver {server}\n");
        std::fs::write(self.dir.join("resolv.conf"), text).expect("resolv.conf");
    }

    fn build_namespaces(&self) {
        std::fs::create_dir_all(&self.dir).expect("test dir");
        std::fs::create_dir_all(self.cgroup()).expect("test cgroup");
        let resolv_conf = format!("nameserver {OUTSIDE_IP}\n");
        std::fs::write(self.dir.join("resolv.conf"), &resolv_conf).expect("resolv.conf");
        if self.launch == Launch::IpNetnsExec {
            std::fs::create_dir_all(self.etc_netns()).expect("/etc/netns dir");
            std::fs::write(self.etc_netns().join("resolv.conf"), &resolv_conf)
                .expect("/etc/netns resolv.conf");
        }
        netd_world::uplink_pair(&self.host_ns(), &self.outside_ns()).expect("the host's world");
    }

    /// The test's own cgroup (under the cgroup2 root), where the daemon hooks host sockets and
    /// host-side clients run; the machine's own cgroups are never hooked.
    pub fn cgroup(&self) -> PathBuf {
        cgroup2_root().join(format!("netd-test-{}", self.name))
    }

    /// Where `ip netns exec` finds files to mount over `/etc` in the host namespace.
    fn etc_netns(&self) -> PathBuf {
        Path::new("/etc/netns").join(self.host_ns())
    }

    /// How the daemon was started.
    pub fn launch(&self) -> Launch {
        self.launch
    }

    fn dirs(&self) -> Vec<String> {
        let mut dirs = match self.launch {
            // A container sees no cgroup hierarchy: the daemon mounts its own.
            Launch::Container => vec![],
            _ => vec!["--cgroup".into(), self.cgroup().display().to_string()],
        };
        dirs.extend([
            "--state-dir".into(),
            self.dir.join("state").display().to_string(),
            "--run-dir".into(),
            self.dir.join("run").display().to_string(),
            "--bpffs".into(),
            self.bpffs.display().to_string(),
        ]);
        dirs
    }

    fn in_host(&self) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.host_ns()));
        cmd
    }

    /// Starts the daemon (again) and waits until it answers.
    pub fn start_daemon(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .expect("log");
        let mut cmd = self.launcher();
        cmd.arg(netd_bin())
            .arg("daemon")
            .args(self.dirs())
            .args(&self.daemon_args)
            .args(["--uplink", "uplink0"]);
        if self.launch != Launch::IpNetnsExec {
            cmd.arg("--resolv-conf").arg(self.dir.join("resolv.conf"));
        }
        cmd.env("RUST_LOG", "netd=debug,info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        self.daemon = Some(cmd.spawn().expect("start netd daemon"));
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.netd(&["network", "ls"]).ok() {
            if let Some(status) = self
                .daemon
                .as_mut()
                .and_then(|d| d.try_wait().ok().flatten())
            {
                panic!("netd daemon exited with {status}:\n{}", self.daemon_log());
            }
            assert!(
                Instant::now() < deadline,
                "netd daemon did not come up:\n{}",
                self.daemon_log()
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// The command that runs `netd` the way [`Launch`] says (`netd` and its arguments follow).
    fn launcher(&self) -> Command {
        let unshare = |cmd: &mut Command, extra: &[&str]| {
            cmd.args(["unshare", "--mount", "--propagation", "private"])
                .args(extra);
        };
        match self.launch {
            Launch::Nsenter => self.in_host(),
            Launch::IpNetnsExec => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &self.host_ns()]);
                cmd
            }
            Launch::PrivateMounts => {
                let mut cmd = self.in_host();
                unshare(&mut cmd, &[]);
                cmd
            }
            Launch::Container => {
                // The script ends in `exec "$@"`: the daemon becomes the pid namespace's pid 1.
                let script = "umount -l /sys/fs/bpf 2>/dev/null; umount -R -l /sys/fs/cgroup; \
                              ! grep -qE ' (bpf|cgroup2?) ' /proc/self/mounts && exec \"$@\"";
                let mut cmd = self.in_host();
                unshare(
                    &mut cmd,
                    &["--pid", "--fork", "--kill-child", "--mount-proc"],
                );
                cmd.args(["sh", "-c", script, "container-init"]);
                cmd
            }
        }
    }

    /// Stops the daemon with `signal` ("TERM", "KILL") and waits for it to exit.
    pub fn stop_daemon(&mut self, signal: &str) {
        if let Some(pid) = self.daemon_pid() {
            run("kill", &[&format!("-{signal}"), &pid.to_string()]);
        }
        if let Some(mut child) = self.daemon.take() {
            child.wait().expect("wait for daemon");
        }
    }

    /// The daemon's pid (as the machine sees it): the launcher's own, or in a container the
    /// child that `unshare --fork` made.
    pub fn daemon_pid(&self) -> Option<u32> {
        let launcher = self.daemon.as_ref()?.id();
        if self.launch != Launch::Container {
            return Some(launcher);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(pid) = child_of(launcher) {
                return Some(pid);
            }
            if Instant::now() > deadline {
                return None;
            }
            sleep(Duration::from_millis(20));
        }
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/netd.sock")
    }

    /// Runs the netd client against this host's daemon.
    pub fn netd(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(netd_bin());
        cmd.arg("--socket")
            .arg(self.socket())
            .args(args)
            .stdin(Stdio::null());
        cmd.output().expect("run netd").into()
    }

    /// Runs the client and insists that it succeeds; returns its output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.netd(args);
        assert!(
            out.ok(),
            "netd {args:?} failed ({}): {}{}",
            out.status,
            out.stderr,
            out.stdout
        );
        out.stdout
    }

    /// Runs the client and insists that it fails with a one-line `Error: ...`; returns that line.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.netd(args);
        assert!(
            !out.ok(),
            "netd {args:?} should have failed but printed: {}",
            out.stdout
        );
        let err = out.stderr.trim_end();
        assert!(
            err.starts_with("Error: ") && !err.contains('\n'),
            "netd {args:?}: not a one-line error: {err:?}"
        );
        err.to_string()
    }

    /// Creates and starts a container with extra `create` arguments.
    pub fn container(&self, name: &str, args: &[&str]) {
        let mut all = vec!["container", "create"];
        all.extend_from_slice(args);
        all.push(name);
        self.ok(&all);
        self.ok(&["container", "start", name]);
    }

    pub fn inspect(&self, container: &str) -> Value {
        serde_json::from_str(&self.ok(&["container", "inspect", container])).expect("inspect JSON")
    }

    /// The container's address on `network`.
    pub fn ip(&self, container: &str, network: &str) -> String {
        let v = self.inspect(container);
        v["networks"][network]["ip_address"]
            .as_str()
            .unwrap_or_else(|| panic!("{container} has no address on {network}: {v}"))
            .to_string()
    }

    /// Runs a command in a container.
    pub fn exec(&self, container: &str, cmd: &[&str]) -> Out {
        let mut args = vec!["exec", container, "--"];
        args.extend_from_slice(cmd);
        self.netd(&args)
    }

    /// Whether one ping from `container` to `ip` is answered.
    pub fn ping(&self, container: &str, ip: &str) -> bool {
        self.exec(container, &["busybox", "ping", "-c", "1", "-W", "1", ip])
            .ok()
    }

    /// Whether `container` reaches `ip`: one of three pings is answered (a first ARP exchange
    /// on a port that just came up may be lost).
    pub fn reaches(&self, container: &str, ip: &str) -> bool {
        (0..3).any(|_| self.ping(container, ip))
    }

    /// Whether a ping from `container` to `ip` goes unanswered.
    pub fn blocked(&self, container: &str, ip: &str) -> bool {
        !self.ping(container, ip)
    }

    /// Waits until something in `container` listens on `proto` (`tcp`, `udp`) `port`.
    pub fn wait_listening(&self, container: &str, proto: &str, port: u16) {
        let args = listening_args(proto, port);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        wait_until(
            &format!("{container} listening on {port}/{proto}"),
            LISTEN_TIMEOUT,
            || !self.exec(container, &args).stdout.trim().is_empty(),
        );
    }

    /// Waits until something in the outside namespace listens on `proto` `port`.
    pub fn wait_listening_outside(&self, proto: &str, port: u16) {
        let args = listening_args(proto, port);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        wait_until(
            &format!("the outside listening on {port}/{proto}"),
            LISTEN_TIMEOUT,
            || !self.outside(&args).stdout.trim().is_empty(),
        );
    }

    /// Runs a command in the host namespace (outside any container).
    pub fn on_host(&self, cmd: &[&str]) -> Out {
        let h = self.host_ns();
        let mut all = vec!["netns", "exec", h.as_str()];
        all.extend_from_slice(cmd);
        run("ip", &all)
    }

    /// The host namespace's devices as `NAME ALIAS` lines, without their (changing) states: what
    /// a failed request must leave as it found it.
    pub fn devices(&self) -> Vec<String> {
        self.on_host(&["ip", "-o", "link"])
            .stdout
            .lines()
            .filter_map(|line| {
                let name = line.split(": ").nth(1)?.split('@').next()?;
                let alias = line.split(" alias ").nth(1).unwrap_or("").trim();
                Some(format!("{name} {alias}"))
            })
            .collect()
    }

    /// Runs a command in the host namespace inside the test's cgroup, as a host process that
    /// reaches published ports through the socket hooks would.
    pub fn on_host_in_cgroup(&self, script: &str) -> Out {
        let procs = self.cgroup().join("cgroup.procs");
        let script = format!("echo $$ > {} && {script}", procs.display());
        let ns = format!("--net=/run/netns/{}", self.host_ns());
        run("nsenter", &[&ns, "sh", "-c", &script])
    }

    /// Starts a long-running command (a server) in the outside namespace.
    pub fn outside_background(&self, cmd: &[&str]) -> Background {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.outside_ns()])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start background process");
        Background(child)
    }

    /// Starts the outside world's DNS server (dnsmasq on the outside address, the daemon's
    /// upstream): it knows `outside.test` as 10.99.0.77 and nothing else.
    pub fn upstream_dns(&self) -> Background {
        let bg = self.outside_background(&[
            "dnsmasq",
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            &format!("--listen-address={OUTSIDE_IP}"),
            "--address=/outside.test/10.99.0.77",
            "--pid-file=",
        ]);
        for _ in 0..50 {
            if self
                .outside(&[
                    "dig",
                    "+short",
                    "+time=1",
                    "+tries=1",
                    &format!("@{OUTSIDE_IP}"),
                    "outside.test",
                ])
                .stdout
                .contains("10.99.0.77")
            {
                return bg;
            }
            sleep(Duration::from_millis(100));
        }
        panic!("the upstream DNS server did not come up");
    }

    /// Runs a command in the outside namespace.
    pub fn outside(&self, cmd: &[&str]) -> Out {
        let o = self.outside_ns();
        let mut all = vec!["netns", "exec", o.as_str()];
        all.extend_from_slice(cmd);
        run("ip", &all)
    }

    /// Runs `netd daemon --cleanup` for this host, launched as the daemon was.
    pub fn cleanup(&self) -> Out {
        let mut cmd = self.launcher();
        cmd.arg(netd_bin())
            .args(["daemon", "--cleanup"])
            .args(self.dirs());
        cmd.output().expect("run cleanup").into()
    }

    fn kill_namespace_processes(&self, ns: &str) {
        for pid in run("ip", &["netns", "pids", ns]).stdout.split_whitespace() {
            run("kill", &["-KILL", pid]);
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop_daemon("KILL");
        let out = self.cleanup();
        if !out.ok() {
            eprintln!("cleanup of {} failed: {}", self.name, out.stderr);
        }
        for ns in [self.host_ns(), self.outside_ns()] {
            self.kill_namespace_processes(&ns);
            run("ip", &["netns", "del", &ns]);
        }
        if self.launch == Launch::IpNetnsExec {
            let _ = std::fs::remove_dir_all(self.etc_netns());
        }
        if let Err(e) = std::fs::remove_dir(self.cgroup()) {
            eprintln!("cannot remove {}: {e}", self.cgroup().display());
        }
        if self.bpffs.exists() {
            run("rm", &["-rf", &self.bpffs.display().to_string()]);
        }
        if std::thread::panicking() {
            eprintln!("daemon log of {}:\n{}", self.name, self.daemon_log());
        }
        let _ = std::fs::remove_dir_all(&self.dir); // the temp dir is the last and least important
    }
}

/// Side-by-side comparisons with stock Docker.
pub mod compare;
/// Real dockerd beside a host, for the Docker plugin's tests.
pub mod docker;
/// Several hosts on one underlay.
pub mod fabric;
/// Reading the host's kernel from outside the daemon, to find leaks.
pub mod kernel;
/// Real podman beside a host, for the CNI plugin's tests.
pub mod podman;
/// What the podman and dockerd harnesses share.
pub mod runtime;
