//! The benchmark's throwaway worlds and the guard that removes them.
//!
//! Every variant gets its own "host" network namespace with an uplink veth to a client namespace
//! (client -> uplink -> host -> bridge -> container): `netd` (the daemon runs there, in a cgroup of
//! its own), `dock` (Docker's iptables rules, with iptables' nft backend, and docker-proxy),
//! `plain` (a bridge and plain routing, no rule at all) and `dns` (aardvark-dns on loopback
//! addresses). Nothing touches the machine's own interfaces, routes or firewall: every `ip` and
//! `iptables` command names or enters one of these namespaces. [`Guard`]'s `Drop` removes
//! everything, also after a failure, a panic or Ctrl-C: background processes, the daemon (then
//! `netd daemon --cleanup`), processes left in the namespaces or the cgroup, mounts under the temp
//! dir, the namespaces, the bpffs dir, the cgroup and the temp dir.

use std::{
    collections::HashSet,
    fs::{self, File},
    io::{Read as _, Write as _},
    os::unix::{fs::MetadataExt as _, net::UnixStream, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::{json, Value};

use crate::util::{self, Captured};

/// Prefix of every namespace the benchmark creates.
const NS_PREFIX: &str = "nbench-";
/// The worlds, each a set of namespaces named `nbench-WORLD-ROLE`.
const WORLDS: [&str; 4] = ["netd", "dock", "plain", "dns"];
/// Namespace roles: client, host, server container.
const ROLES: [&str; 3] = ["c", "h", "s"];
const BPFFS_DIR: &str = "/sys/fs/bpf/netd-bench";
const CGROUP_NAME: &str = "netd-bench";
/// A run's temp dir is `PREFIX<pid>`.
const RUN_PREFIX: &str = "netd-bench.";
/// The host namespace's uplink address (published ports answer there) and the client's.
pub use netd_world::{OUTSIDE_IP as CLIENT_IP, UPLINK_IP};
/// The bridge of the reproduced Docker and plain worlds, and their container.
pub const BRIDGE: &str = "docker0";
pub const BRIDGE_IP: &str = "172.17.0.1";
pub const SUBNET: &str = "172.17.0.0/16";
pub const CONTAINER_IP: &str = "172.17.0.2";
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// `nbench-WORLD-ROLE`.
pub fn ns(world: &str, role: &str) -> String {
    format!("{NS_PREFIX}{world}-{role}")
}

/// Owns everything the benchmark creates; removes it on drop.
pub struct Guard {
    pub dir: PathBuf,
    /// netd's run dir (socket, namespace files, hosts and resolv.conf files): a tmpfs mounted
    /// under `dir`, as `/run` is on a standard system. On this VM `/run` is a directory of the
    /// root ext4, where creating a file can take a millisecond, a cost a deployment does not pay.
    pub run: PathBuf,
    namespaces: Vec<String>,
    background: Vec<(String, Child)>,
    daemon: Option<Child>,
    netd: Option<PathBuf>,
}

impl Guard {
    /// Removes what an interrupted earlier run left, then creates the temp dir.
    pub fn new() -> Result<Self> {
        remove_leftovers();
        let dir = std::env::temp_dir().join(format!("{RUN_PREFIX}{}", std::process::id()));
        let run = dir.join("run");
        fs::create_dir_all(&run).with_context(|| format!("create {}", run.display()))?;
        let guard = Guard {
            dir,
            run,
            namespaces: Vec::new(),
            background: Vec::new(),
            daemon: None,
            netd: None,
        };
        util::output(
            util::command("mount")
                .args(["-t", "tmpfs", "-o", "mode=0755", "netd-bench"])
                .arg(&guard.run),
            "mount a tmpfs for netd's run dir",
        )?;
        Ok(guard)
    }

    /// Creates `nbench-WORLD-h` and `nbench-WORLD-c` joined by the uplink veth (10.99.0.2 on the
    /// host side, 10.99.0.1 on the client side), with loopback up in both. The client namespace
    /// reuses TIME_WAIT ports and has the whole ephemeral range, for the short-connection loop.
    pub fn uplink_pair(&mut self, world: &str) -> Result<()> {
        let (h, c) = (ns(world, "h"), ns(world, "c"));
        self.namespaces.extend([h.clone(), c.clone()]);
        netd_world::uplink_pair(&h, &c).context("bench setup")?;
        sysctl(&c, "net.ipv4.tcp_tw_reuse", "1")?;
        sysctl(&c, "net.ipv4.ip_local_port_range", "1024 65535")?;
        sysctl(&h, "net.ipv4.ip_local_port_range", "1024 65535")?;
        sysctl(&h, "net.ipv4.tcp_tw_reuse", "1")?;
        Ok(())
    }

    /// A Linux bridge `docker0` (172.17.0.1/16) in the host namespace and a veth to the server
    /// namespace `nbench-WORLD-s` (172.17.0.2, default route via the bridge), as Docker wires a
    /// container; forwarding on.
    pub fn bridge_world(&mut self, world: &str) -> Result<()> {
        let (h, s) = (ns(world, "h"), ns(world, "s"));
        self.add_ns(&s)?;
        ip(&["-n", &h, "link", "add", BRIDGE, "type", "bridge"])?;
        ip(&[
            "-n",
            &h,
            "addr",
            "add",
            &format!("{BRIDGE_IP}/16"),
            "dev",
            BRIDGE,
        ])?;
        ip(&["-n", &h, "link", "set", BRIDGE, "up"])?;
        ip(&[
            "-n", &h, "link", "add", "veth0", "type", "veth", "peer", "name", "eth0", "netns", &s,
        ])?;
        ip(&["-n", &h, "link", "set", "veth0", "master", BRIDGE, "up"])?;
        ip(&[
            "-n",
            &s,
            "addr",
            "add",
            &format!("{CONTAINER_IP}/16"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &s, "link", "set", "eth0", "up"])?;
        ip(&["-n", &s, "link", "set", "lo", "up"])?;
        ip(&["-n", &s, "route", "add", "default", "via", BRIDGE_IP])?;
        sysctl(&h, "net.ipv4.ip_forward", "1")
    }

    /// A namespace with loopback up and `addrs` (each /32) on it: aardvark-dns's world.
    pub fn loopback_ns(&mut self, world: &str, addrs: &[&str]) -> Result<String> {
        let n = ns(world, "h");
        self.add_ns(&n)?;
        ip(&["-n", &n, "link", "set", "lo", "up"])?;
        for a in addrs {
            ip(&["-n", &n, "addr", "add", &format!("{a}/32"), "dev", "lo"])?;
        }
        Ok(n)
    }

    fn add_ns(&mut self, name: &str) -> Result<()> {
        ip(&["netns", "add", name])?;
        self.namespaces.push(name.to_string());
        Ok(())
    }

    /// Starts a long-running command in the background (its output in `DIR/WHAT.log`); it is
    /// killed on the way out.
    pub fn spawn(&mut self, what: &str, mut cmd: Command) -> Result<u32> {
        let log_path = self
            .dir
            .join(format!("{}.log", what.replace(['/', ' '], "_")));
        let log = File::create(&log_path)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("start {what}: `{}`", util::describe(&cmd)))?;
        let pid = child.id();
        self.background.push((what.to_string(), child));
        Ok(pid)
    }

    /// Runs a short command with a timeout, capturing its output.
    pub fn run(&self, cmd: &mut Command, timeout: Duration) -> Result<Captured> {
        util::run_captured(cmd, timeout, &self.dir)
    }

    /// Runs a short command that must succeed; returns its stdout.
    pub fn must(&self, cmd: &mut Command, timeout: Duration) -> Result<String> {
        let what = util::describe(cmd);
        let out = self.run(cmd, timeout)?;
        if !out.success() {
            bail!(
                "`{what}` failed ({}): {}{}",
                out.status
                    .map_or_else(|| "timed out".into(), |s| s.to_string()),
                out.stderr.trim(),
                out.stdout.trim()
            );
        }
        Ok(out.stdout)
    }

    /// The netd world's cgroup, where the daemon hooks host sockets.
    pub fn cgroup(&self) -> PathBuf {
        cgroup_dir()
    }

    /// The netd daemon's socket.
    pub fn socket(&self) -> PathBuf {
        self.run.join("netd.sock")
    }

    /// The netd daemon's pid, if it runs.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }

    pub fn bpffs(&self) -> &'static str {
        BPFFS_DIR
    }

    /// Starts `netd daemon` in `nbench-netd-h` (with `nsenter --net`, as the demo does) with its
    /// own dirs, bpffs dir and cgroup, the uplink `uplink0` and `extra` flags; waits until it
    /// answers.
    pub fn start_netd(&mut self, netd: &Path, extra: &[&str]) -> Result<()> {
        fs::create_dir_all(cgroup_dir())?;
        fs::write(
            self.dir.join("resolv.conf"),
            format!("nameserver {CLIENT_IP}\n"),
        )?;
        self.netd = Some(netd.to_path_buf());
        let log = File::create(self.dir.join("daemon.log"))?;
        let mut cmd = self.netd_daemon(&["--uplink", "uplink0", "--resolv-conf"]);
        cmd.arg(self.dir.join("resolv.conf"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        self.daemon = Some(cmd.spawn().context("start the netd daemon")?);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .daemon
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "the netd daemon exited ({status}): {}",
                    self.daemon_log_tail()
                );
            }
            if self.api(json!({"op": "network_ls"})).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the netd daemon did not answer: {}", self.daemon_log_tail());
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the netd daemon (SIGTERM, then SIGKILL after a timeout) and removes everything it
    /// installed with `netd daemon --cleanup` (containers, devices, pins, state).
    pub fn stop_netd(&mut self) -> Result<()> {
        let Some(mut child) = self.daemon.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on our own, not yet reaped child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            thread::sleep(Duration::from_millis(50));
        }
        child.kill().ok();
        child.wait().ok();
        let mut cleanup = self.netd_daemon(&["--cleanup"]);
        let out = util::run_captured(&mut cleanup, Duration::from_secs(60), &self.dir)
            .context("netd daemon --cleanup")?;
        if !out.success() {
            bail!("netd daemon --cleanup failed: {}", out.stderr.trim());
        }
        Ok(())
    }

    /// A fresh daemon with `extra` flags in place of the running one (whose containers,
    /// devices, maps and state are removed first).
    pub fn restart_netd(&mut self, extra: &[&str]) -> Result<()> {
        let netd = self.netd.clone().context("netd was never started")?;
        self.stop_netd()?;
        self.start_netd(&netd, extra)
    }

    pub fn daemon_log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn netd_daemon(&self, extra: &[&str]) -> Command {
        let mut cmd = util::command("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", ns("netd", "h")))
            .arg(self.netd.as_deref().unwrap_or(Path::new("netd")))
            .arg("daemon")
            .arg("--state-dir")
            .arg(self.dir.join("netd/state"))
            .arg("--run-dir")
            .arg(&self.run)
            .args(["--bpffs", BPFFS_DIR])
            .arg("--cgroup")
            .arg(cgroup_dir())
            .args(extra);
        cmd
    }

    /// The netd client: `netd --socket SOCKET ARGS...`.
    pub fn netd_cli(&self, args: &[&str]) -> Command {
        let mut cmd = util::command(self.netd.as_deref().unwrap_or(Path::new("netd")));
        cmd.arg("--socket").arg(self.socket()).args(args);
        cmd
    }

    /// One request on the daemon's socket (one JSON request per connection, the reply read to
    /// the end), as the client sends it but without starting a process; returns the reply's value.
    pub fn api(&self, request: Value) -> Result<Value> {
        let mut stream = UnixStream::connect(self.socket())?;
        stream.write_all(&serde_json::to_vec(&request)?)?;
        stream.shutdown(std::net::Shutdown::Write)?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf)?;
        let reply: Value = serde_json::from_slice(&buf).context("malformed reply")?;
        match (reply.get("Ok"), reply.get("Err")) {
            (Some(ok), _) => Ok(ok.get("value").cloned().unwrap_or(Value::Null)),
            (_, Some(err)) => Err(anyhow!("netd: {}", err.as_str().unwrap_or_default())),
            _ => Err(anyhow!("unexpected reply {reply}")),
        }
    }

    fn teardown(&mut self) {
        println!("bench: cleanup");
        for (what, mut child) in self.background.drain(..) {
            if let Ok(None) = child.try_wait() {
                child.kill().ok();
            }
            child.wait().ok();
            let _ = what;
        }
        let mut netns: HashSet<(u64, u64)> = self
            .namespaces
            .iter()
            .filter_map(|n| netns_id(&Path::new("/run/netns").join(n)))
            .collect();
        if let Ok(entries) = fs::read_dir(self.run.join("netns")) {
            netns.extend(entries.flatten().filter_map(|e| netns_id(&e.path())));
        }
        if let Err(e) = self.stop_netd() {
            println!("cleanup: {e:#}");
        }
        kill_processes_in(&netns);
        unmount_under(&self.dir);
        for n in self.namespaces.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &n]) {
                println!("cleanup: {e:#}");
            }
        }
        remove_bpffs_and_cgroup();
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            println!("cleanup: remove {}: {e}", self.dir.display());
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// `ip ARGS...`, which must succeed.
pub fn ip(args: &[&str]) -> Result<()> {
    util::output(util::command("ip").args(args), "bench setup").map(drop)
}

/// Sets a sysctl inside namespace `n` (these are per network namespace).
pub fn sysctl(n: &str, key: &str, value: &str) -> Result<()> {
    let mut cmd = util::command("ip");
    cmd.args(["netns", "exec", n, "sysctl", "-q", "-w"])
        .arg(format!("{key}={value}"));
    util::output(&mut cmd, "bench setup").map(drop)
}

/// `ip netns exec N ARGS...`.
pub fn in_ns(n: &str, args: &[&str]) -> Command {
    let mut cmd = util::command("ip");
    cmd.args(["netns", "exec", n]).args(args);
    cmd
}

/// `nsenter --net=PATH ARGS...` (lighter than `ip netns exec`: no mount namespace).
pub fn nsenter(netns: &Path, args: &[&str]) -> Command {
    let mut cmd = util::command("nsenter");
    cmd.arg(format!("--net={}", netns.display())).args(args);
    cmd
}

fn cgroup_dir() -> PathBuf {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let root = mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
    root.join(CGROUP_NAME)
}

/// Deletes the benchmark namespaces, bpffs dir and cgroup that an interrupted run left.
fn remove_leftovers() {
    for world in WORLDS {
        for role in ROLES {
            let n = ns(world, role);
            let path = Path::new("/run/netns").join(&n);
            if let Some(id) = netns_id(&path) {
                kill_processes_in(&HashSet::from([id]));
                println!("bench: removing namespace {n} left by an earlier run");
                ip(&["netns", "del", &n]).ok();
            }
        }
    }
    remove_bpffs_and_cgroup();
    remove_dirs_of_dead_runs();
}

/// The temp dirs of earlier runs whose process is gone (killed before its cleanup), with the
/// tmpfs and namespace files mounted in them.
fn remove_dirs_of_dead_runs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(RUN_PREFIX))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let dir = entry.path();
        println!("bench: removing {} left by an earlier run", dir.display());
        unmount_under(&dir);
        if let Err(e) = fs::remove_dir_all(&dir) {
            println!("cleanup: remove {}: {e}", dir.display());
        }
    }
}

fn remove_bpffs_and_cgroup() {
    if Path::new(BPFFS_DIR).exists() {
        if let Err(e) = fs::remove_dir_all(BPFFS_DIR) {
            println!("cleanup: remove {BPFFS_DIR}: {e}");
        }
    }
    let cgroup = cgroup_dir();
    if !cgroup.exists() {
        return;
    }
    let procs = fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        // SAFETY: kill(2) with a pid read from our own cgroup's cgroup.procs.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        match fs::remove_dir(&cgroup) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                println!("cleanup: remove {}: {e}", cgroup.display());
                break;
            }
            Ok(()) => break,
        }
    }
}

fn netns_id(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Kills (SIGKILL) every process whose network namespace is one of `netns`.
fn kill_processes_in(netns: &HashSet<(u64, u64)>) {
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for pid in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        let inside = netns_id(Path::new(&format!("/proc/{pid}/ns/net")))
            .is_some_and(|id| netns.contains(&id));
        if inside && pid as u32 != std::process::id() {
            // SAFETY: kill(2) with a pid read from /proc whose netns is one of ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Lazily unmounts every mount under `dir` (container netns bind mounts netd left).
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
        util::output(util::command("umount").args(["-l", point]), "umount").ok();
    }
}
