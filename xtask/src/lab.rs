//! The demo's throwaway world and the guard that removes it.
//!
//! A "host" network namespace where netd runs, with an uplink veth to an "outside" namespace that
//! plays the rest of the world, a temp dir for netd's state, socket and log, and a bpffs dir of its
//! own, and a cgroup of its own where the daemon hooks host sockets. A second host shares a switch
//! with the first (both `eth1`, at `10.98.0.11` and `.12`), and so does etcd in a namespace of its
//! own: the cluster store both daemons are started with, for overlay networks. Nothing touches
//! the machine's own interfaces. [`Lab`]'s `Drop` tears everything down, also when a step fails or
//! panics, and goes on past errors: it stops the demo's background servers and the daemons, runs
//! `netd daemon --cleanup`, stops etcd, kills processes left in the demo's namespaces and cgroup,
//! unmounts and deletes what netd left behind (saying so), deletes the namespaces, the cgroup and
//! the temp dir (etcd's data with it).

use std::{
    cell::RefCell,
    collections::HashSet,
    fs::{self, File},
    os::unix::{fs::MetadataExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::util::{self, Captured};

pub const HOST_NS: &str = "netd-demo-host";
pub const OUT_NS: &str = "netd-demo-out";
/// A second host for the scenes across hosts (seed 003), and the switch between the hosts'
/// `eth1`.
pub const HOST2_NS: &str = "netd-demo-host2";
pub const LAN_NS: &str = "netd-demo-lan";
/// etcd's namespace, on the switch at [`netd_world::ETCD_IP`].
pub const ETCD_NS: &str = "netd-demo-etcd";
const BPFFS_DIR: &str = "/sys/fs/bpf/netd-demo";
const BPFFS2_DIR: &str = "/sys/fs/bpf/netd-demo2";

use netd_world::UPLINK;
/// The host namespace's address on the uplink (where published ports answer from outside), and
/// the outside namespace's, the world's end of the uplink.
pub use netd_world::{OUTSIDE_IP, UPLINK_IP};
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Identity of a network namespace: (device, inode) of its nsfs file.
type NetnsId = (u64, u64);

/// The demo's namespaces, temp dir and daemon; cleans all of them up on drop.
pub struct Lab {
    netd: PathBuf,
    dir: PathBuf,
    namespaces: Vec<&'static str>,
    daemon: Option<Child>,
    daemon_started: bool,
    /// The second host's daemon, once [`Lab::start_second_host`] ran.
    daemon2: Option<Child>,
    /// etcd on the switch, once [`Lab::create_fabric`] started it.
    etcd: Option<Child>,
    /// Servers started with [`Lab::spawn_background`], stopped first on the way out.
    background: RefCell<Vec<(String, Child)>>,
}

impl Lab {
    /// Removes what an interrupted earlier run left, and creates the temp dir.
    pub fn new(netd: PathBuf) -> Result<Self> {
        remove_leftovers();
        let dir = std::env::temp_dir().join(format!("netd-demo.{}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        println!("setup: temp dir {}: ok", dir.display());
        Ok(Lab {
            netd,
            dir,
            namespaces: Vec::new(),
            daemon: None,
            daemon_started: false,
            daemon2: None,
            etcd: None,
            background: RefCell::new(Vec::new()),
        })
    }

    /// Creates both namespaces, the uplink veth between them and the daemon's resolv.conf.
    pub fn create_world(&mut self) -> Result<()> {
        self.namespaces.extend([HOST_NS, OUT_NS]);
        netd_world::uplink_pair(HOST_NS, OUT_NS).context("setup: the demo's world")?;
        println!("setup: {HOST_NS} and {OUT_NS} joined by {UPLINK} ({UPLINK_IP}) and outside0 ({OUTSIDE_IP}): ok");
        let mut ping = util::command("ip");
        ping.args([
            "netns", "exec", HOST_NS, "busybox", "ping", "-c", "1", "-W", "2", OUTSIDE_IP,
        ]);
        util::output(&mut ping, "setup: uplink reaches the outside namespace")?;
        println!("setup: {HOST_NS} reaches {OUTSIDE_IP} over {UPLINK}: ok");
        let resolv = self.dir.join("resolv.conf");
        fs::write(&resolv, format!("nameserver {OUTSIDE_IP}\n"))
            .with_context(|| format!("write {}", resolv.display()))?;
        println!("setup: {} (nameserver {OUTSIDE_IP}): ok", resolv.display());
        Ok(())
    }

    /// Starts `netd daemon` in the host namespace (same mount namespace as ours, so its netns
    /// bind mounts are visible) and waits until it answers.
    pub fn start_daemon(&mut self) -> Result<()> {
        let log_path = self.dir.join("daemon.log");
        let log =
            File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
        fs::create_dir_all(demo_cgroup())?;
        let store = netd_world::cluster_store();
        let advertise = netd_world::fabric_ip(1);
        let mut cmd = self.nsenter_daemon(&[
            "--uplink",
            UPLINK,
            "--cluster-store",
            &store,
            "--advertise-addr",
            &advertise,
            "--resolv-conf",
        ]);
        cmd.arg(self.dir.join("resolv.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0); // Ctrl-C reaches us, not the daemon: we stop it ourselves.
        println!("setup: $ {} > {}", util::describe(&cmd), log_path.display());
        let child = cmd.spawn().context("setup: start the daemon")?;
        self.daemon = Some(child);
        self.daemon_started = true;
        self.wait_ready()
    }

    /// A second host (`netd-demo-host2`, no uplink) and a switch (`netd-demo-lan`) with both
    /// hosts' `eth1` on it, at their underlay addresses, and etcd on it in `netd-demo-etcd`:
    /// the cluster store of both daemons. Before the daemons start, which join it at start.
    pub fn create_fabric(&mut self) -> Result<()> {
        self.namespaces.extend([HOST2_NS, LAN_NS]);
        setup_ip(&["netns", "add", HOST2_NS])?;
        netd_world::fabric(LAN_NS).context("setup: the switch")?;
        for (i, ns, port) in [(1, HOST_NS, "port1"), (2, HOST2_NS, "port2")] {
            let ip = netd_world::fabric_ip(i);
            netd_world::plug(LAN_NS, port, ns).context("setup: a port on the switch")?;
            netd_world::address_underlay(ns, &ip).context("setup: an underlay address")?;
            println!("setup: {ns}'s eth1 ({ip}) on the switch {LAN_NS}: ok");
        }
        self.namespaces.push(ETCD_NS);
        let data = self.dir.join("etcd");
        let etcd = netd_world::etcd(LAN_NS, ETCD_NS, &data).context("setup: etcd on the switch")?;
        println!(
            "setup: etcd (pid {}) in {ETCD_NS} serves {}, log {}: ok",
            etcd.id(),
            netd_world::cluster_store(),
            data.join("etcd.log").display()
        );
        self.etcd = Some(etcd);
        Ok(())
    }

    /// The second host's daemon, on the cluster store as the first.
    pub fn start_second_host(&mut self) -> Result<()> {
        let log_path = self.dir.join("daemon2.log");
        let log =
            File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
        let store = netd_world::cluster_store();
        let advertise = netd_world::fabric_ip(2);
        let mut cmd = self.nsenter_daemon2(&[
            "--no-cgroup-hooks",
            "--cluster-store",
            &store,
            "--advertise-addr",
            &advertise,
            "--resolv-conf",
        ]);
        cmd.arg(self.dir.join("resolv.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        println!("setup: $ {} > {}", util::describe(&cmd), log_path.display());
        self.daemon2 = Some(cmd.spawn().context("setup: start the second daemon")?);
        self.wait_answers(&self.client2(&["network", "ls"]), "the second daemon")
    }

    /// `netd --socket SOCKET2 ARGS...`: the second host's client.
    pub fn client2(&self, args: &[&str]) -> Command {
        let mut cmd = util::command(&self.netd);
        cmd.arg("--socket").arg(self.socket2()).args(args);
        cmd
    }

    fn socket2(&self) -> PathBuf {
        self.dir.join("host2/run/netd.sock")
    }

    /// The second host's daemon command, as [`Self::nsenter_daemon`] for the first.
    fn nsenter_daemon2(&self, extra: &[&str]) -> Command {
        let dir = self.dir.join("host2");
        let mut cmd = util::command("nsenter");
        cmd.arg(format!("--net=/run/netns/{HOST2_NS}"))
            .arg(&self.netd)
            .arg("daemon")
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--run-dir")
            .arg(dir.join("run"))
            .args(["--bpffs", BPFFS2_DIR])
            .args(extra);
        cmd
    }

    /// Waits until `probe` succeeds (a daemon answers).
    fn wait_answers(&self, probe: &Command, what: &str) -> Result<()> {
        let answers = || {
            let mut cmd = util::command(probe.get_program());
            cmd.args(probe.get_args());
            util::run_captured(&mut cmd, Duration::from_secs(2), &self.dir)
                .is_ok_and(|out| out.success())
        };
        netd_world::wait_until(&format!("setup: {what} answers"), READY_TIMEOUT, answers)?;
        println!("setup: {what} answers: ok");
        Ok(())
    }

    /// `netd --socket SOCKET ARGS...`, run directly on the machine.
    pub fn client(&self, args: &[&str]) -> Command {
        let mut cmd = util::command(&self.netd);
        cmd.arg("--socket").arg(self.socket()).args(args);
        cmd
    }

    /// `ip netns exec netd-demo-out ARGS...`: a process of the outside world.
    pub fn outside(&self, args: &[&str]) -> Command {
        netns_exec(OUT_NS, args)
    }

    /// `ip netns exec netd-demo-host ARGS...`: a host process outside the demo cgroup, which the
    /// daemon's socket hooks leave alone.
    pub fn on_host(&self, args: &[&str]) -> Command {
        netns_exec(HOST_NS, args)
    }

    /// `nsenter --net=/run/netns/netd-demo-host sh -c 'echo $$ > CGROUP/cgroup.procs && SCRIPT'`:
    /// a host process inside the demo cgroup, where the daemon's socket hooks act.
    pub fn in_demo_cgroup(&self, script: &str) -> Command {
        let procs = demo_cgroup().join("cgroup.procs");
        let mut cmd = util::command("nsenter");
        cmd.arg(format!("--net=/run/netns/{HOST_NS}"))
            .args(["sh", "-c"])
            .arg(format!("echo $$ > {} && {script}", procs.display()));
        cmd
    }

    /// Runs any command with the clients' timeout, capturing its output.
    pub fn run(&self, cmd: &mut Command) -> Result<Captured> {
        util::run_captured(cmd, CLIENT_TIMEOUT, &self.dir)
    }

    /// Starts a long-running command (a server) in the background, its output discarded; it is
    /// killed on the way out. Returns its pid.
    pub fn spawn_background(&self, what: &str, mut cmd: Command) -> Result<u32> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0) // Ctrl-C reaches us, not the server: we stop it ourselves.
            .spawn()
            .with_context(|| format!("start {what}: `{}`", util::describe(&cmd)))?;
        let pid = child.id();
        self.background.borrow_mut().push((what.to_string(), child));
        Ok(pid)
    }

    /// The path of the netd binary and its socket, for the demo's preamble.
    pub fn client_prefix(&self) -> String {
        format!(
            "{} --socket {}",
            self.netd.display(),
            self.socket().display()
        )
    }

    /// The last `lines` lines of the daemon's log.
    pub fn daemon_log_tail(&self, lines: usize) -> String {
        let log = fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("run/netd.sock")
    }

    /// `nsenter --net=HOST_NS netd daemon --state-dir .. --run-dir .. --bpffs .. EXTRA...`
    fn nsenter_daemon(&self, extra: &[&str]) -> Command {
        let mut cmd = util::command("nsenter");
        cmd.arg(format!("--net=/run/netns/{HOST_NS}"))
            .arg(&self.netd)
            .arg("daemon")
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .arg("--run-dir")
            .arg(self.dir.join("run"))
            .args(["--bpffs", BPFFS_DIR])
            .arg("--cgroup")
            .arg(demo_cgroup())
            .args(extra);
        cmd
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last_error = String::new();
        while Instant::now() < deadline {
            if let Some(status) = self
                .daemon
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "setup: the daemon exited ({status}); its log:\n{}",
                    self.daemon_log_tail(40)
                );
            }
            let mut ls = self.client(&["network", "ls"]);
            let out = util::run_captured(&mut ls, Duration::from_secs(2), &self.dir)?;
            if out.success() {
                println!("setup: daemon answers `netd network ls`: ok");
                return Ok(());
            }
            last_error = out.stderr.trim().to_string();
            thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "setup: the daemon did not answer within {READY_TIMEOUT:?} (last error: {last_error}); its log:\n{}",
            self.daemon_log_tail(40)
        )
    }

    fn teardown(&mut self) {
        println!("\n==> cleanup");
        self.stop_background();
        let (netns, held) = self.hold_netns();
        self.stop_daemon();
        if self.daemon_started {
            self.cleanup_daemon();
        }
        if let Some(child) = self.daemon2.take() {
            stop_child(child, "second daemon");
            let mut cmd = self.nsenter_daemon2(&["--cleanup"]);
            let what = util::describe(&cmd);
            let result = util::output(&mut cmd, "cleanup").map(drop);
            report("cleanup", &what, result);
        }
        if let Some(etcd) = self.etcd.take() {
            stop_child(etcd, "etcd");
        }
        kill_processes_in(&netns);
        drop(held);
        unmount_under(&self.dir);
        for ns in self.namespaces.drain(..).rev() {
            report("cleanup", &format!("ip netns del {ns}"), delete_netns(ns));
        }
        remove_bpffs_dirs("cleanup: netd --cleanup left");
        remove_cgroup("cleanup");
        let removed = fs::remove_dir_all(&self.dir).map_err(anyhow::Error::from);
        report(
            "cleanup",
            &format!("remove {}", self.dir.display()),
            removed,
        );
    }

    /// The namespaces of the demo, the named ones and every container's, held open: one that
    /// netd's cleanup removes stays alive, its identity the demo's, until the handles are
    /// dropped, so that no namespace made meanwhile elsewhere on the machine takes its inode
    /// number and has its processes killed as the demo's.
    fn hold_netns(&self) -> (HashSet<NetnsId>, Vec<File>) {
        let mut paths: Vec<PathBuf> = self
            .namespaces
            .iter()
            .map(|ns| Path::new("/run/netns").join(ns))
            .collect();
        for run in ["run/netns", "host2/run/netns"] {
            if let Ok(entries) = fs::read_dir(self.dir.join(run)) {
                paths.extend(entries.flatten().map(|e| e.path()));
            }
        }
        let held: Vec<File> = paths.iter().filter_map(|p| File::open(p).ok()).collect();
        let ids = held
            .iter()
            .filter_map(|f| f.metadata().ok())
            .map(|m| (m.dev(), m.ino()))
            .collect();
        (ids, held)
    }

    fn stop_background(&mut self) {
        for (what, mut child) in self.background.get_mut().drain(..) {
            let pid = child.id();
            let result = match child.try_wait() {
                Ok(Some(status)) => Err(anyhow::anyhow!("it had exited already ({status})")),
                _ => child
                    .kill()
                    .and_then(|()| child.wait())
                    .map(drop)
                    .map_err(anyhow::Error::from),
            };
            report("cleanup", &format!("stop {what} (pid {pid})"), result);
        }
    }

    fn stop_daemon(&mut self) {
        if let Some(child) = self.daemon.take() {
            stop_child(child, "daemon");
        }
    }

    fn cleanup_daemon(&self) {
        let mut cmd = self.nsenter_daemon(&["--cleanup"]);
        let what = util::describe(&cmd);
        let result = util::run_captured(&mut cmd, CLIENT_TIMEOUT, &self.dir).and_then(|out| {
            if out.success() {
                return Ok(());
            }
            bail!("{}; stderr: {}", status_text(&out), out.stderr.trim())
        });
        report("cleanup", &what, result);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// "exit status: 1" or "timed out".
pub fn status_text(out: &Captured) -> String {
    out.status
        .map_or_else(|| "timed out".into(), |s| s.to_string())
}

fn report(phase: &str, what: &str, result: Result<()>) {
    match result {
        Ok(()) => println!("{phase}: {what}: ok"),
        Err(e) => println!("{phase}: {what}: FAILED: {e:#}"),
    }
}

fn setup_ip(args: &[&str]) -> Result<()> {
    let mut cmd = util::command("ip");
    cmd.args(args);
    let what = util::describe(&cmd);
    util::output(&mut cmd, "setup")?;
    println!("setup: {what}: ok");
    Ok(())
}

fn netns_exec(ns: &str, args: &[&str]) -> Command {
    let mut cmd = util::command("ip");
    cmd.args(["netns", "exec", ns]).args(args);
    cmd
}

fn delete_netns(ns: &str) -> Result<()> {
    util::output(
        util::command("ip").args(["netns", "del", ns]),
        "ip netns del",
    )
    .map(drop)
}

/// Deletes the demo namespaces and bpffs dir that an interrupted earlier run left behind.
fn remove_leftovers() {
    for ns in [HOST_NS, OUT_NS, HOST2_NS, LAN_NS, ETCD_NS] {
        let path = Path::new("/run/netns").join(ns);
        if let Some(id) = netns_id(&path) {
            kill_processes_in(&HashSet::from([id]));
            report(
                "setup",
                &format!("remove namespace {ns} left by an earlier run"),
                delete_netns(ns),
            );
        }
    }
    remove_bpffs_dirs("setup: an earlier run left");
    remove_cgroup("setup: an earlier run left");
}

/// The demo's own cgroup under the cgroup2 root: the daemon hooks host sockets there (never the
/// machine's own cgroups), and host-side demo clients run inside it.
pub fn demo_cgroup() -> PathBuf {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let root = mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
    root.join("netd-demo")
}

/// Kills the processes still in the demo cgroup (saying which), then removes it, waiting a little
/// for the killed ones to leave it.
fn remove_cgroup(why: &str) {
    let cgroup = demo_cgroup();
    if !cgroup.exists() {
        return;
    }
    let procs = fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        // SAFETY: kill(2) with a pid read from cgroup.procs; at worst it no longer exists.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        println!(
            "cleanup: killed process {pid} ({}) left in {}",
            comm.trim(),
            cgroup.display()
        );
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    let removed = loop {
        match fs::remove_dir(&cgroup) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(50));
            }
            result => break result.map_err(anyhow::Error::from),
        }
    };
    report(why, &format!("remove cgroup {}", cgroup.display()), removed);
}

fn remove_bpffs_dirs(why: &str) {
    for dir in [BPFFS_DIR, BPFFS2_DIR] {
        if Path::new(dir).exists() {
            let removed = fs::remove_dir_all(dir).map_err(anyhow::Error::from);
            report(why, &format!("{dir} behind; removing it"), removed);
        }
    }
}

/// Stops a daemon: SIGTERM, then SIGKILL if it does not exit within [`STOP_TIMEOUT`].
fn stop_child(mut child: Child, what: &str) {
    let pid = child.id();
    // SAFETY: kill(2) on our own child's pid; it has not been reaped yet.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            println!("cleanup: stop {what} (pid {pid}, SIGTERM): ok ({status})");
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    child.kill().ok();
    child.wait().ok();
    println!(
        "cleanup: stop {what} (pid {pid}): did not stop on SIGTERM within {STOP_TIMEOUT:?}, killed"
    );
}

fn netns_id(path: &Path) -> Option<NetnsId> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Kills (SIGKILL) every process whose network namespace is one of `netns`, saying which.
fn kill_processes_in(netns: &HashSet<NetnsId>) {
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for pid in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        let in_demo = netns_id(Path::new(&format!("/proc/{pid}/ns/net")))
            .is_some_and(|id| netns.contains(&id));
        if !in_demo || pid as u32 == std::process::id() {
            continue;
        }
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        // SAFETY: kill(2) with a pid read from /proc; at worst it no longer exists.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        println!(
            "cleanup: killed process {pid} ({}) left in a demo namespace",
            comm.trim()
        );
    }
}

/// Lazily unmounts every mount under `dir` (netns bind mounts that netd did not remove).
fn unmount_under(dir: &Path) {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/", dir.display());
    let mut points: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let mut cmd = util::command("umount");
        cmd.args(["-l", point]);
        let result = util::output(&mut cmd, "umount").map(drop);
        report(
            "cleanup",
            &format!("netd left mount {point} behind; umount -l"),
            result,
        );
    }
}
