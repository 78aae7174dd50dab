//! Real dockerd (Debian's docker.io 20.10, with the containerd it starts itself) beside a test
//! [`Host`], in one of two [`Flavour`]s, and always kept inside the test's dirs: data root, exec
//! root, API socket, pid file, config file and cgroup parent are the test's; dockerd runs in the
//! host's network namespace and in a mount namespace of its own, where a tmpfs over `/run` holds
//! the plugin dir (`/run/docker/plugins`), the test's dirs are bound over `/etc/docker` (its
//! key file) and a tmpfs over `/opt` (containerd's), and the host's `resolv.conf` (the outside
//! namespace as upstream, as the netd daemon has it) over `/etc/resolv.conf`, the one dockerd
//! gives its containers' resolvers. The exec root is a shared mount, so the
//! namespaces dockerd mounts there for its containers are the ones the netd daemon opens.
//!
//! [`Flavour::NetdPlugin`] is dockerd the way netd's plugin wants it (`--iptables=false
//! --ip6tables=false --ip-masq=false --userland-proxy=false`, no default bridge,
//! `/run/docker/plugins/netd.sock` a link to the daemon's plugin socket). It also must not find
//! iptables (`/dev/null` is bound over the xtables binaries in its mount namespace, as systemd's
//! `InaccessiblePaths=` does for a unit): with it, dockerd 20.10 starts its embedded resolver in
//! every container on a user-defined network despite `--iptables=false` and adds NAT rules
//! inside the container's namespace to reach it; without, the resolver gives up, no rule is
//! made, and netd's DNS server answers at 127.0.0.11.
//!
//! [`Flavour::Stock`] is dockerd as it runs out of the box, the reference the seeds' comparison
//! holds netd to: iptables on, docker-proxy, the default `bridge` network (`docker0`). It runs
//! beside a host made by [`Docker::stock_host`] (no netd daemon), so its bridges, its iptables
//! rules (iptables-nft: nftables are per network namespace), its sysctls and its docker-proxy
//! processes all live in that host's throwaway namespace and go with it.
use std::{path::PathBuf, time::Duration};

use crate::{
    run,
    runtime::{busybox_tarball, settle, CgroupParent},
    wait_until, Host, Launch, Out,
};

/// The image every Docker test runs: busybox-static with a web root whose CGI script answers
/// with the client's address.
pub const IMAGE: &str = "netd-busybox:latest";
/// Debian's client (another `docker` may be first on `PATH`).
const CLIENT: &str = "/usr/bin/docker";

/// Which dockerd: the one netd's plugin serves, or stock Docker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// No iptables, no docker-proxy, no default bridge: networks of driver `netd`.
    NetdPlugin,
    /// Out of the box: iptables, docker-proxy and `docker0`; networks of driver `bridge`.
    Stock,
}

impl Flavour {
    /// dockerd's arguments beyond its dirs.
    fn args(self) -> &'static str {
        match self {
            Flavour::NetdPlugin => {
                "--iptables=false --ip6tables=false --ip-masq=false --userland-proxy=false \
                 --bridge=none"
            }
            Flavour::Stock => "",
        }
    }

    /// The network driver `docker network create -d` takes for this dockerd.
    pub fn driver(self) -> &'static str {
        match self {
            Flavour::NetdPlugin => "netd",
            Flavour::Stock => "bridge",
        }
    }
}

/// A dockerd private to one test.
pub struct Docker {
    dir: PathBuf,
    flavour: Flavour,
    cgroup_parent: CgroupParent,
    /// dockerd itself (`nsenter`, `unshare` and `sh` exec it in turn).
    dockerd: Option<std::process::Child>,
}

impl Docker {
    /// A host whose daemon, started as `launch` says, serves the plugin where
    /// [`Docker::start`] looks for it; `None` when privileged tests are skipped.
    pub fn host(launch: Launch) -> Option<Host> {
        let mut host = Host::prepare(launch, &[])?;
        let socket = host.dir.join("docker-plugin.sock");
        let api = format!("unix://{}", host.dir.join("docker/docker.sock").display());
        host.push_daemon_args(&[
            "--docker-plugin".into(),
            socket.display().to_string(),
            "--docker-host".into(),
            api,
        ]);
        host.start_daemon();
        Some(host)
    }

    /// A host for stock dockerd: the namespaces and dirs of a [`Host`], no netd daemon; `None`
    /// when privileged tests are skipped.
    pub fn stock_host() -> Option<Host> {
        Host::prepare(Launch::Nsenter, &[])
    }

    /// dockerd for netd's plugin beside `host` (made by [`Docker::host`]), up and with the
    /// image imported.
    pub fn start(host: &Host) -> Docker {
        Self::start_as(host, Flavour::NetdPlugin)
    }

    /// Stock dockerd beside `host` (made by [`Docker::stock_host`]), up and with the image
    /// imported.
    pub fn start_stock(host: &Host) -> Docker {
        Self::start_as(host, Flavour::Stock)
    }

    fn start_as(host: &Host, flavour: Flavour) -> Docker {
        let dir = host.dir.join("docker");
        for sub in ["data", "exec", "etc-docker", "cli", "rootfs"] {
            std::fs::create_dir_all(dir.join(sub)).expect("docker dir");
        }
        std::fs::write(dir.join("daemon.json"), "{}").expect("daemon.json");
        let mut docker = Docker {
            dir,
            flavour,
            cgroup_parent: CgroupParent(format!("netd-test-{}-docker", host.name)),
            dockerd: None,
        };
        let exec = docker.path("exec");
        for args in [
            vec!["--bind", exec.as_str(), exec.as_str()],
            vec!["--make-shared", exec.as_str()],
        ] {
            let out = run("mount", &args);
            assert!(out.ok(), "mount {args:?}: {}", out.stderr);
        }
        docker.dockerd = Some(docker.spawn(host));
        wait_until("dockerd answering", Duration::from_secs(30), || {
            docker.docker(&["version"]).ok()
        });
        docker.import_image();
        docker
    }

    /// Stops dockerd (SIGTERM: it stops its containers, as a host's shutdown does) and starts
    /// it again on the same dirs.
    pub fn restart(&mut self, host: &Host) {
        self.stop();
        self.dockerd = Some(self.spawn(host));
        wait_until("dockerd answering again", Duration::from_secs(30), || {
            self.docker(&["version"]).ok()
        });
    }

    fn stop(&mut self) {
        if let Some(mut dockerd) = self.dockerd.take() {
            run("kill", &["-TERM", &dockerd.id().to_string()]);
            settle(Duration::from_secs(15), || {
                dockerd.try_wait().is_ok_and(|s| s.is_some())
            });
            let _ = dockerd.kill();
            let _ = dockerd.wait();
        }
    }

    /// Which dockerd this is.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    fn path(&self, sub: &str) -> String {
        self.dir.join(sub).display().to_string()
    }

    fn spawn(&self, host: &Host) -> std::process::Child {
        let d = |sub: &str| self.path(sub);
        let script = format!(
            "mount -t tmpfs tmpfs /run && mkdir -p /run/docker/plugins && \
             mount -t tmpfs tmpfs /opt && mount --bind {etc} /etc/docker && \
             mount --bind {resolv} /etc/resolv.conf && {confine} \
             exec dockerd --data-root {data} \
             --exec-root {exec} -H unix://{sock} --pidfile {pid} --config-file {conf} \
             {args} --cgroup-parent {cgroup} >> {log} 2>&1",
            etc = d("etc-docker"),
            resolv = host.dir.join("resolv.conf").display(),
            confine = self.confinement(host),
            data = d("data"),
            exec = d("exec"),
            sock = d("docker.sock"),
            pid = d("docker.pid"),
            conf = d("daemon.json"),
            args = self.flavour.args(),
            cgroup = self.cgroup_parent.path(),
            log = d("dockerd.log"),
        );
        let net = format!("--net=/run/netns/{}", host.host_ns());
        std::process::Command::new("nsenter")
            .args([&net, "unshare", "--mount", "--propagation", "unchanged"])
            .args(["sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("start dockerd")
    }

    /// The shell steps (each ending in `&&`) that set up the flavour's mount namespace: for
    /// the plugin, its socket link and no xtables binaries; stock dockerd keeps both as found.
    fn confinement(&self, host: &Host) -> String {
        match self.flavour {
            Flavour::NetdPlugin => format!(
                "ln -s {plugin} /run/docker/plugins/netd.sock && \
                 for x in /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi; do \
                   [ ! -e $x ] || mount --bind /dev/null $x || exit 1; done &&",
                plugin = host.dir.join("docker-plugin.sock").display(),
            ),
            Flavour::Stock => String::new(),
        }
    }

    fn import_image(&self) {
        let tar = busybox_tarball(&self.dir, "hello from docker");
        self.ok(&["import", &tar, IMAGE]);
    }

    /// Runs Debian's `docker` client against this dockerd.
    pub fn docker(&self, args: &[&str]) -> Out {
        let sock = format!("unix://{}", self.path("docker.sock"));
        let mut cmd = std::process::Command::new(CLIENT);
        cmd.args(["-H", &sock])
            .args(args)
            .env("DOCKER_CONFIG", self.path("cli"))
            .stdin(std::process::Stdio::null());
        cmd.output().expect("run docker").into()
    }

    /// Runs `docker ARGS` and insists that it succeeds; returns its output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.ok(),
            "docker {args:?} failed ({}): {}{}\ndockerd's log:\n{}",
            out.status,
            out.stderr,
            out.stdout,
            self.log_tail()
        );
        out.stdout
    }

    /// The last part of container `name`'s sandbox key (`.NetworkSettings.SandboxKey`): netd's
    /// container for it is `docker-SANDBOX`.
    pub fn sandbox(&self, name: &str) -> String {
        let format = "{{.NetworkSettings.SandboxKey}}";
        let key = self.ok(&["inspect", name, "--format", format]);
        key.trim()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `sh -c SCRIPT` in container `name`.
    pub fn exec(&self, name: &str, script: &str) -> Out {
        self.docker(&["exec", name, "sh", "-c", script])
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]).stdout;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let out = self.docker(&args);
            if !out.ok() {
                eprintln!("docker rm: {}", out.stderr);
            }
        }
        self.stop();
        self.cgroup_parent.remove();
        let out = run("umount", &["-R", "-l", &self.path("exec")]);
        if !out.ok() {
            eprintln!("umount {}: {}", self.path("exec"), out.stderr);
        }
    }
}

/// How many docker-proxy processes run in `host`'s namespace.
pub fn docker_proxies(host: &Host) -> usize {
    let pids = run("ip", &["netns", "pids", &host.host_ns()]).stdout;
    pids.split_whitespace()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"/usr/sbin/docker-proxy\0"))
        })
        .count()
}
