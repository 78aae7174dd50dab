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
//!
//! The overlay phase adds cluster [`Node`]s: more netd daemons, each in a host namespace of its
//! own with its own dirs, bpffs dir and cgroup (`nbench-ovN-h`, `/sys/fs/bpf/netd-bench-ovN`,
//! `netd-bench-ovN`), which the guard stops and cleans up in the same way.

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
const BPFFS_DIR: &str = "/sys/fs/bpf/netd-bench";
const CGROUP_NAME: &str = "netd-bench";
/// A run's temp dir is `PREFIX<pid>`.
const RUN_PREFIX: &str = "netd-bench.";
/// The lock one benchmark run holds (`flock`, released by the kernel however the run ends).
const LOCK: &str = "/run/netd-bench.lock";
/// The host namespace's uplink address (published ports answer there) and the client's.
pub use netd_world::{OUTSIDE_IP as CLIENT_IP, UPLINK_IP};
/// The bridge of the reproduced Docker and plain worlds, and their container.
pub const BRIDGE: &str = "docker0";
pub const BRIDGE_IP: &str = "172.17.0.1";
pub const SUBNET: &str = "172.17.0.0/16";
pub const CONTAINER_IP: &str = "172.17.0.2";
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const STOP_CLEANUP: Duration = Duration::from_secs(60);
/// The cluster nodes' bpffs dirs and cgroups are `PREFIX-NAME`.
const NODE_PREFIX: &str = "netd-bench-";
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
    /// The overlay phase's cluster daemons.
    nodes: Vec<Node>,
    /// Held while the run lasts: a second run would take this one's namespaces for leftovers.
    _lock: fs::File,
}

/// One more netd daemon (the overlay phase's cluster hosts): host namespace `ns`, state and log
/// under `dir`, its run dir on the guard's tmpfs, its own bpffs dir and cgroup.
pub struct Node {
    pub ns: String,
    pub dir: PathBuf,
    pub run: PathBuf,
    bpffs: PathBuf,
    cgroup: PathBuf,
    netd: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// The client: `netd --socket SOCKET ARGS...`.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = util::command(&self.netd);
        cmd.arg("--socket")
            .arg(self.run.join("netd.sock"))
            .args(args);
        cmd
    }

    fn daemon(&self, extra: &[&str]) -> Command {
        let mut cmd = util::command("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.ns))
            .arg(&self.netd)
            .arg("daemon")
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .arg("--run-dir")
            .arg(&self.run)
            .arg("--bpffs")
            .arg(&self.bpffs)
            .arg("--cgroup")
            .arg(&self.cgroup)
            .args(extra);
        cmd
    }

    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM (SIGKILL after a timeout), then `netd daemon --cleanup`.
    fn stop(&mut self, scratch: &Path) -> Result<()> {
        let Some(child) = self.child.take() else {
            return Ok(());
        };
        terminate(child);
        let out = util::run_captured(&mut self.daemon(&["--cleanup"]), STOP_CLEANUP, scratch)
            .context("netd daemon --cleanup")?;
        if !out.success() {
            bail!(
                "netd daemon --cleanup ({}) failed: {}",
                self.ns,
                out.stderr.trim()
            );
        }
        Ok(())
    }
}

/// Stops a daemon: SIGTERM, then SIGKILL after [`STOP_TIMEOUT`].
fn terminate(mut child: Child) {
    // SAFETY: kill(2) on our own, not yet reaped child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        thread::sleep(Duration::from_millis(50));
    }
    child.kill().ok();
    child.wait().ok();
}

/// `path` opened and locked for this process alone, or an error saying another run holds it.
fn exclusive(path: &Path) -> Result<fs::File> {
    use std::os::fd::AsRawFd as _;
    let file = fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        anyhow::bail!(
            "another `cargo xtask bench` is running (it holds {}): two runs would remove each \
             other's namespaces",
            path.display()
        );
    }
    Ok(file)
}

impl Guard {
    /// Removes what an interrupted earlier run left, then creates the temp dir.
    pub fn new() -> Result<Self> {
        let lock = exclusive(Path::new(LOCK))?;
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
            nodes: Vec::new(),
            _lock: lock,
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

    /// Creates the namespace `name` (one of `nbench-...`), removed on the way out.
    pub fn add_ns(&mut self, name: &str) -> Result<()> {
        ip(&["netns", "add", name])?;
        self.namespaces.push(name.to_string());
        Ok(())
    }

    /// Takes on the namespace `name` that a [`netd_world`] builder is about to make (recorded
    /// first, so that a failure half-way still removes it).
    pub fn own_ns(&mut self, name: &str) {
        self.namespaces.push(name.to_string());
    }

    /// Takes on a background process started elsewhere (etcd); it is killed on the way out.
    pub fn adopt(&mut self, what: &str, child: Child) {
        self.background.push((what.to_string(), child));
    }

    /// Starts a cluster daemon in the existing host namespace `ns` (which has `uplink0`), named
    /// `name` for its dirs, with `extra` flags; waits until it answers. Returns its index.
    pub fn start_node(
        &mut self,
        netd: &Path,
        name: &str,
        ns: &str,
        extra: &[&str],
    ) -> Result<usize> {
        let dir = self.dir.join(name);
        let node = Node {
            ns: ns.to_string(),
            run: self.run.join(name),
            bpffs: Path::new("/sys/fs/bpf").join(format!("{NODE_PREFIX}{name}")),
            cgroup: cgroup_root().join(format!("{NODE_PREFIX}{name}")),
            netd: netd.to_path_buf(),
            child: None,
            dir,
        };
        fs::create_dir_all(&node.dir)?;
        fs::create_dir_all(&node.cgroup)?;
        // No upstream server: names netd does not own fail at once (SERVFAIL) instead of waiting
        // for a server that is not there (the outside namespace rate-limits its ICMP errors).
        let resolv = node.dir.join("resolv.conf");
        fs::write(
            &resolv,
            "# the bench's cluster hosts have no upstream DNS server\n",
        )?;
        let log = File::create(node.dir.join("daemon.log"))?;
        let resolv = resolv.display().to_string();
        let mut args = vec!["--uplink", "uplink0", "--resolv-conf", &resolv];
        args.extend_from_slice(extra);
        let mut cmd = node.daemon(&args);
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let child = cmd.spawn().context("start a cluster netd daemon")?;
        self.nodes.push(Node {
            child: Some(child),
            ..node
        });
        let i = self.nodes.len() - 1;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let node = &mut self.nodes[i];
            if let Some(status) = node
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "netd daemon in {} exited ({status}): {}",
                    node.ns,
                    node.log_tail()
                );
            }
            let answers = util::run_captured(
                &mut node.cli(&["network", "ls"]),
                Duration::from_secs(5),
                &self.dir,
            )
            .is_ok_and(|out| out.success());
            if answers {
                return Ok(i);
            }
            if Instant::now() > deadline {
                bail!(
                    "netd daemon in {} did not answer: {}",
                    node.ns,
                    node.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// Stops every cluster daemon and removes what it installed.
    pub fn stop_nodes(&mut self) -> Result<()> {
        let mut errors = Vec::new();
        for mut node in self.nodes.drain(..) {
            let netns = namespaces_in(&node.run.join("netns"));
            if let Err(e) = node.stop(&self.dir) {
                errors.push(format!("{e:#}"));
            }
            kill_processes_in(&netns);
            for dir in [&node.bpffs, &node.cgroup] {
                remove_bpffs_or_cgroup(dir);
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        bail!("{}", errors.join("; "))
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
        let Some(child) = self.daemon.take() else {
            return Ok(());
        };
        terminate(child);
        let mut cleanup = self.netd_daemon(&["--cleanup"]);
        let out = util::run_captured(&mut cleanup, STOP_CLEANUP, &self.dir)
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
        // Before the background processes: etcd is one, and the daemons talk to it as they stop.
        if let Err(e) = self.stop_nodes() {
            println!("cleanup: {e:#}");
        }
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
        netns.extend(namespaces_in(&self.run.join("netns")));
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

fn cgroup_root() -> PathBuf {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"))
}

fn cgroup_dir() -> PathBuf {
    cgroup_root().join(CGROUP_NAME)
}

/// The namespaces whose files are in `dir` (a daemon's `RUN/netns`).
fn namespaces_in(dir: &Path) -> HashSet<(u64, u64)> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| netns_id(&e.path()))
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes the benchmark namespaces, bpffs dirs and cgroups that an interrupted run left.
fn remove_leftovers() {
    let mut names: Vec<String> = fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(NS_PREFIX))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    for n in names {
        if let Some(id) = netns_id(&Path::new("/run/netns").join(&n)) {
            kill_processes_in(&HashSet::from([id]));
        }
        println!("bench: removing namespace {n} left by an earlier run");
        ip(&["netns", "del", &n]).ok();
    }
    for root in [PathBuf::from("/sys/fs/bpf"), cgroup_root()] {
        let Ok(entries) = fs::read_dir(&root) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(NODE_PREFIX) {
                remove_bpffs_or_cgroup(&e.path());
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
    remove_bpffs_or_cgroup(Path::new(BPFFS_DIR));
    remove_bpffs_or_cgroup(&cgroup_dir());
}

/// Removes a bpffs dir (recursively), or a cgroup (after killing what is in it).
fn remove_bpffs_or_cgroup(path: &Path) {
    if !path.exists() {
        return;
    }
    if !path.join("cgroup.procs").exists() {
        if let Err(e) = fs::remove_dir_all(path) {
            println!("cleanup: remove {}: {e}", path.display());
        }
        return;
    }
    let cgroup = path;
    let procs = fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        // SAFETY: kill(2) with a pid read from our own cgroup's cgroup.procs.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        match fs::remove_dir(cgroup) {
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
