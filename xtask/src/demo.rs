//! `cargo xtask demo`: netd at work, with real traffic, in throwaway namespaces.
//!
//! Builds the release binary, sets up a [`Lab`] (a host namespace where the daemon runs, an outside
//! namespace behind its uplink), then walks through the scenarios of the seed articles: the default
//! bridge, user-defined networks and their isolation, a container joining another's namespace, the
//! `none` and `host` networks, the decoded maps, anti-spoofing, then published ports and egress NAT
//! (seeds 001, 003 and 004): `-p` in its forms, reached from outside, from host processes and from
//! containers (hairpin), egress with the uplink's address, the port and NAT tables, UDP, and
//! publishing on a running container; names (seeds 000, 002-004): the embedded DNS server of
//! user-defined networks (names, aliases, short IDs, PTR, outside names through an upstream dnsmasq
//! in the outside namespace), no names on the default bridge, legacy links whose hosts line follows
//! a restarted container, as does each exec's environment, while a process started before keeps
//! its own; and `netd stats` and `netd explain`.
//! Then across two hosts on one switch: macvlan networks (seed 003), and an overlay network
//! whose hosts share etcd as their KV store (seed 001, [`overlay`]).
//! Every step prints the command, its output and PASS/FAIL
//! against the expected outcome; a summary follows and the exit status is non-zero if any
//! expectation failed. The lab is removed on the way out, whatever happened.

use std::{
    net::Ipv4Addr,
    process::{Command, ExitCode},
    thread,
    time::{Duration, Instant},
};

use anyhow::Result;

mod dual_stack;
mod overlay;

use crate::{
    build,
    lab::{self, Lab, OUTSIDE_IP, UPLINK_IP},
    util::{self, Captured},
};

/// Output lines shown per stream and step.
const MAX_LINES: usize = 40;
/// The default bridge's gateway: containers reach published ports through it too, and it is the
/// client address a container sees for host processes.
const GATEWAY: &str = "172.17.0.1";
/// socat's answer to every connection: the client's address as the server sees it.
const PEER_ECHO: &str = "SYSTEM:echo $SOCAT_PEERADDR";
/// How long a server started in the background gets to listen (on a loaded machine).
const SERVER_START: Duration = Duration::from_secs(10);
/// Where Docker (and netd) take host ports from when none is given.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;
/// The outside server that containers reach through egress NAT.
const OUTSIDE_PORT: u16 = 9999;
/// What the outside namespace's DNS server answers for `outside.test`.
const OUTSIDE_NAME_IP: &str = "10.99.0.77";

/// Runs the demo; the exit code says whether every expectation held.
pub fn demo() -> Result<ExitCode> {
    let netd = build::build(true)?;
    util::catch_interrupts();
    let mut lab = Lab::new(netd)?;
    lab.create_world()?;
    lab.create_fabric()?;
    lab.start_daemon()?;
    lab.start_second_host()?;
    println!("\n`netd` below stands for `{}`", lab.client_prefix());
    println!("`netd2` is the second host's client (scenes m and r)");
    let mut demo = Demo {
        lab: &lab,
        records: Vec::new(),
    };
    demo.scenarios();
    let passed = demo.summary();
    if !passed {
        println!(
            "\nlast lines of the daemon's log:\n{}",
            lab.daemon_log_tail(MAX_LINES)
        );
    }
    drop(lab);
    if util::interrupted() {
        eprintln!("demo interrupted");
        return Ok(ExitCode::from(130));
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What a step expects of its command.
enum Expect<'e> {
    Success,
    Failure,
    /// Succeeds and prints this text.
    Prints(&'e str),
    /// Succeeds and prints every one of these texts.
    PrintsAll(&'e [&'e str]),
    /// Succeeds and prints a line that has every one of these words (a table's row).
    Row(&'e [&'e str]),
    /// Succeeds and does not print this text.
    Lacks(&'e str),
    /// Prints exactly this line (a server's answer).
    Answers(&'e str),
    /// Fails and prints this text (on stdout or stderr).
    FailsWith(&'e str),
    /// Prints nothing: no answer, whatever the exit status.
    Nothing,
    /// Succeeds and lists no interface but `lo`.
    OnlyLoopback,
    /// May not exist yet: a failure is reported as SKIP.
    Optional,
}

impl Expect<'_> {
    fn describe(&self) -> String {
        match self {
            Expect::Success => "succeeds".into(),
            Expect::Failure => "fails".into(),
            Expect::Prints(text) => format!("succeeds and prints {text:?}"),
            Expect::PrintsAll(texts) => format!("succeeds and prints each of {texts:?}"),
            Expect::Row(words) => format!("succeeds and prints a line with each of {words:?}"),
            Expect::Lacks(text) => format!("succeeds and does not print {text:?}"),
            Expect::Answers(text) => format!("answers {text:?}"),
            Expect::FailsWith(text) => format!("fails and prints {text:?}"),
            Expect::Nothing => "gets no answer".into(),
            Expect::OnlyLoopback => "succeeds and lists only lo".into(),
            Expect::Optional => "succeeds, if available".into(),
        }
    }

    fn judge(&self, out: &Captured) -> Verdict {
        let holds = match self {
            Expect::Success => out.success(),
            Expect::Failure => out.status.is_some_and(|s| !s.success()),
            Expect::Prints(text) => out.success() && out.stdout.contains(text),
            Expect::PrintsAll(texts) => {
                out.success() && texts.iter().all(|t| out.stdout.contains(t))
            }
            Expect::Row(words) => out.success() && has_row(&out.stdout, words),
            Expect::Lacks(text) => out.success() && !out.stdout.contains(text),
            Expect::Answers(text) => out.stdout.trim() == *text,
            Expect::FailsWith(text) => {
                out.status.is_some_and(|s| !s.success())
                    && (out.stdout.contains(text) || out.stderr.contains(text))
            }
            Expect::Nothing => out.stdout.trim().is_empty(),
            Expect::OnlyLoopback => out.success() && only_loopback(&out.stdout),
            Expect::Optional if !out.success() => return Verdict::Skip,
            Expect::Optional => true,
        };
        if holds {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    /// What happened, for a failure: the exit status, and the answer where one is expected.
    fn got(&self, out: &Captured) -> String {
        let status = lab::status_text(out);
        match self {
            Expect::Answers(_) | Expect::Nothing => format!("{:?}, {status}", out.stdout.trim()),
            _ => status,
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Verdict {
    Pass,
    Fail,
    Skip,
}

/// Which of the demo's two hosts a step runs on.
#[derive(Clone, Copy)]
enum Site {
    One,
    Two,
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Site::One => "host1",
            Site::Two => "host2",
        })
    }
}

struct Demo<'l> {
    lab: &'l Lab,
    records: Vec<(String, Verdict)>,
}

impl Demo<'_> {
    fn scenarios(&mut self) {
        let bbox1 = self.default_bridge();
        let db = self.user_defined_networks();
        self.joined_container();
        self.special_networks();
        self.maps_dump();
        self.anti_spoofing(bbox1.as_deref());
        self.published_port();
        self.loopback_and_publish_all(bbox1.as_deref());
        self.hairpin(bbox1.as_deref(), db.as_deref());
        self.egress();
        self.port_and_nat_maps();
        self.udp_port(bbox1.as_deref());
        self.publish_running();
        self.names_on_user_networks();
        self.names_on_default_bridge();
        self.legacy_links();
        self.observability(db.as_deref());
        self.dual_stack();
        self.macvlan_across_hosts();
        self.overlay_across_hosts(bbox1.as_deref());
    }

    /// (m) Seed 003: macvlan networks on two hosts whose `eth1` share a switch, one on `eth1`
    /// and one on the 802.1q sub-interface `eth1.1`, isolated from each other at layer 2.
    fn macvlan_across_hosts(&mut self) {
        section("(m) macvlan networks across two hosts (netd-demo-host and netd-demo-host2)");
        let networks = [
            ("mac_net1", "172.21.0.0/24", "172.21.0.1", "eth1"),
            ("mac_net2", "172.22.0.0/24", "172.22.0.1", "eth1.1"),
        ];
        for host in [Site::One, Site::Two] {
            for (name, subnet, gateway, parent) in networks {
                let parent = format!("parent={parent}");
                let gateway = format!("--gateway={gateway}");
                let args = [
                    "network", "create", "-d", "macvlan", "--subnet", subnet, &gateway, "-o",
                    &parent, name,
                ];
                self.step_on(
                    host,
                    &format!("{host}: create {name} on {parent}"),
                    &args,
                    Expect::Success,
                );
            }
        }
        self.step_on(
            Site::One,
            "host1: network ls",
            &["network", "ls"],
            Expect::PrintsAll(&["macvlan", "local"]),
        );
        let containers = [
            (Site::One, "m11", "mac_net1", "172.21.0.11"),
            (Site::Two, "m12", "mac_net1", "172.21.0.12"),
            (Site::One, "m21", "mac_net2", "172.22.0.21"),
            (Site::Two, "m22", "mac_net2", "172.22.0.22"),
        ];
        for (host, name, network, ip) in containers {
            let args = ["run", "-d", "--network", network, "--ip", ip, name];
            self.step_on(
                host,
                &format!("{host}: run {name} on {network} at {ip}"),
                &args,
                Expect::Success,
            );
        }
        let ping = |from: &str, ip: &str| {
            [
                "exec", from, "--", "busybox", "ping", "-c", "1", "-W", "2", ip,
            ]
            .map(String::from)
        };
        for (host, from, ip, expect) in [
            (Site::One, "m11", "172.21.0.12", Expect::Success),
            (Site::Two, "m22", "172.22.0.21", Expect::Success),
            (Site::One, "m11", "172.22.0.22", Expect::Failure),
        ] {
            let args = ping(from, ip);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            self.step_on(
                host,
                &format!("{host}: {from} pings {ip} on the other host"),
                &args,
                expect,
            );
        }
        let publish = [
            "container",
            "create",
            "--network",
            "mac_net1",
            "-p",
            "8080:80",
            "mp",
        ];
        self.step_on(
            Site::One,
            "host1: publishing a port on macvlan is refused",
            &publish,
            Expect::FailsWith("publish no ports"),
        );
    }

    /// [`Demo::step`] on one of the two hosts.
    fn step_on(
        &mut self,
        host: Site,
        title: &str,
        args: &[&str],
        expect: Expect,
    ) -> Option<Captured> {
        let (shown, mut cmd) = self.client_on(host, args);
        self.check(title, &shown, &mut cmd, expect)
    }

    /// `netd ARGS` or `netd2 ARGS` as shown, and the command.
    fn client_on(&self, host: Site, args: &[&str]) -> (String, Command) {
        let (client, cmd) = match host {
            Site::One => ("netd", self.lab.client(args)),
            Site::Two => ("netd2", self.lab.client2(args)),
        };
        (
            format!("{client} {}", shell_words(args.iter().copied())),
            cmd,
        )
    }

    /// Runs `netd ARGS` on `host` again and again until `expect` holds (what one host did
    /// reaches the other through the cluster store), for at most `within`; shows the last
    /// output and records how long it took.
    fn wait_for(
        &mut self,
        host: Site,
        title: &str,
        args: &[&str],
        expect: Expect,
        within: Duration,
    ) -> Option<Captured> {
        if util::interrupted() {
            return None;
        }
        let (shown, _) = self.client_on(host, args);
        println!("\n$ {shown}    # until it {}", expect.describe());
        let started = Instant::now();
        loop {
            let out = match self.lab.run(&mut self.client_on(host, args).1) {
                Ok(out) => out,
                Err(e) => {
                    self.record(title, Verdict::Fail, &format!("could not run: {e:#}"));
                    return None;
                }
            };
            let holds = expect.judge(&out) == Verdict::Pass;
            if holds || started.elapsed() >= within || util::interrupted() {
                show(&out.stdout);
                show(&out.stderr);
                let (verdict, note) = match holds {
                    true => (
                        Verdict::Pass,
                        format!("after {} ms", started.elapsed().as_millis()),
                    ),
                    false => (
                        Verdict::Fail,
                        format!("expected within {within:?}; got: {}", expect.got(&out)),
                    ),
                };
                self.record(title, verdict, &note);
                return Some(out);
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// (a) Containers on the default network `bridge` reach each other.
    fn default_bridge(&mut self) -> Option<String> {
        section("(a) the default bridge network (172.17.0.0/16, bridge device netd0)");
        self.step(
            "networks bridge, host and none exist",
            &["network", "ls"],
            Expect::Prints("bridge"),
        );
        for name in ["bbox1", "bbox2"] {
            self.step(
                &format!("create {name}"),
                &["container", "create", name],
                Expect::Success,
            );
            self.step(
                &format!("start {name}"),
                &["container", "start", name],
                Expect::Success,
            );
        }
        let bbox1 = self.address("bbox1", "bridge", Some(("172.17.0.0", 16)));
        self.address("bbox2", "bridge", Some(("172.17.0.0", 16)));
        self.ping("bbox2", "bbox1", bbox1.as_deref(), Expect::Success);
        bbox1
    }

    /// (b) User-defined networks are isolated from each other until a container joins both.
    /// Returns db's address (on net2).
    fn user_defined_networks(&mut self) -> Option<String> {
        section("(b) user-defined networks: isolation, then network connect");
        let net1 = ["network", "create", "--subnet", "172.30.1.0/24", "net1"];
        self.step(
            "create net1 with --subnet 172.30.1.0/24",
            &net1,
            Expect::Success,
        );
        self.step(
            "create net2 (automatic subnet)",
            &["network", "create", "net2"],
            Expect::Success,
        );
        self.step(
            "inspect net2",
            &["network", "inspect", "net2"],
            Expect::Success,
        );
        for (name, net) in [("web", "net1"), ("db", "net2")] {
            let create = ["container", "create", "--network", net, name];
            self.step(&format!("create {name} on {net}"), &create, Expect::Success);
            self.step(
                &format!("start {name}"),
                &["container", "start", name],
                Expect::Success,
            );
        }
        self.address("web", "net1", Some(("172.30.1.0", 24)));
        let db = self.address("db", "net2", None);
        self.ping("web", "db", db.as_deref(), Expect::Failure);
        if db.is_some() {
            self.drops_counted("isolation");
        }
        self.step(
            "connect web to net2",
            &["network", "connect", "net2", "web"],
            Expect::Success,
        );
        let addrs = ["exec", "web", "--", "busybox", "ip", "-4", "addr"];
        self.step("web now has eth1 (on net2)", &addrs, Expect::Prints("eth1"));
        self.ping("web", "db", db.as_deref(), Expect::Success);
        db
    }

    /// (c) `--network container:web` shares web's namespace, loopback included.
    fn joined_container(&mut self) {
        section("(c) a container joining another's namespace (--network container:web)");
        let create = [
            "container",
            "create",
            "--network",
            "container:web",
            "sidecar",
        ];
        self.step(
            "create sidecar in web's namespace",
            &create,
            Expect::Success,
        );
        self.step(
            "start sidecar",
            &["container", "start", "sidecar"],
            Expect::Success,
        );
        let addrs = ["exec", "sidecar", "--", "busybox", "ip", "-4", "addr"];
        self.step(
            "sidecar sees web's interfaces",
            &addrs,
            Expect::Prints("eth1"),
        );
        let server = [
            "exec", "-d", "web", "--", "busybox", "nc", "-ll", "-p", "8080", "-e", "echo", "hello",
        ];
        self.step(
            "serve \"hello\" on web's 127.0.0.1:8080 in the background",
            &server,
            Expect::Success,
        );
        thread::sleep(Duration::from_millis(500));
        let client = [
            "exec",
            "sidecar",
            "--",
            "busybox",
            "nc",
            "127.0.0.1",
            "8080",
        ];
        self.step(
            "sidecar reaches web's server over loopback",
            &client,
            Expect::Prints("hello"),
        );
    }

    /// (d) `none` gives loopback only; `host` shares the daemon's namespace.
    fn special_networks(&mut self) {
        section("(d) the none and host networks");
        for (name, net) in [("nonet", "none"), ("hostnet", "host")] {
            let create = ["container", "create", "--network", net, name];
            self.step(&format!("create {name} on {net}"), &create, Expect::Success);
            self.step(
                &format!("start {name}"),
                &["container", "start", name],
                Expect::Success,
            );
        }
        let links = |name| ["exec", name, "--", "busybox", "ip", "-o", "link"];
        self.step("nonet has only lo", &links("nonet"), Expect::OnlyLoopback);
        self.step(
            "hostnet sees uplink0",
            &links("hostnet"),
            Expect::Prints("uplink0"),
        );
    }

    /// (e) The datapath's maps, decoded.
    fn maps_dump(&mut self) {
        section("(e) the datapath's maps, decoded");
        self.step("netd maps dump", &["maps", "dump"], Expect::Optional);
    }

    /// (f) A source address the container was not given is dropped by the eBPF program.
    fn anti_spoofing(&mut self, bbox1: Option<&str>) {
        section("(f) anti-spoofing");
        let add = [
            "exec",
            "bbox2",
            "--",
            "busybox",
            "ip",
            "addr",
            "add",
            "172.17.0.200/16",
            "dev",
            "eth0",
        ];
        self.step(
            "bbox2 adds 172.17.0.200 to eth0 by itself",
            &add,
            Expect::Success,
        );
        let Some(ip) = bbox1 else {
            return self.not_run("spoofed and genuine pings to bbox1", "no address for bbox1");
        };
        let title = format!("ping bbox2 -> bbox1 ({ip}) from 172.17.0.200 (dropped by eBPF)");
        let spoofed = [
            "exec",
            "bbox2",
            "--",
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "-I",
            "172.17.0.200",
            ip,
        ];
        self.step(&title, &spoofed, Expect::Failure);
        self.drops_counted("spoofed-ip");
        self.ping("bbox2", "bbox1", Some(ip), Expect::Success);
    }

    /// (g) `-p 8080:80`: DNAT on the uplink, the client's own address kept; host processes of
    /// the demo cgroup reach it on loopback and host addresses through the socket hooks.
    fn published_port(&mut self) {
        section("(g) -p 8080:80: a published port, reached from outside (DNAT in eBPF, no proxy)");
        self.container("www", &["-p", "8080:80"]);
        self.peer_echo("www", 80);
        self.connect_outside(
            &format!("outside -> {UPLINK_IP}:8080 reaches www, which sees the real client"),
            UPLINK_IP,
            8080,
            Expect::Answers(OUTSIDE_IP),
        );
        self.step(
            "container port www",
            &["container", "port", "www"],
            Expect::Prints("80/tcp -> 0.0.0.0:8080"),
        );
        for ip in ["127.0.0.1", UPLINK_IP] {
            self.connect_host(
                &format!("a host process in the demo cgroup reaches {ip}:8080 (socket hook); www sees the gateway"),
                ip,
                8080,
                Expect::Answers(GATEWAY),
            );
        }
        let target = tcp_target("127.0.0.1", 8080);
        let cmd = self.lab.on_host(&["socat", "-T2", "-", &target]);
        self.check_command(
            "a host process outside the demo cgroup is left alone: nothing listens on 127.0.0.1:8080",
            cmd,
            Expect::Nothing,
        );
    }

    /// (h) `-p 127.0.0.1::80` takes an ephemeral port on loopback only; `-P` publishes every
    /// `--expose`d port on an ephemeral port of every address.
    fn loopback_and_publish_all(&mut self, bbox1: Option<&str>) {
        section("(h) -p 127.0.0.1::80 (ephemeral port, loopback only) and -P --expose 90");
        self.container("local", &["-p", "127.0.0.1::80"]);
        self.peer_echo("local", 80);
        if let Some(port) = self.published("local", "80/tcp", "127.0.0.1") {
            self.connect_host(
                &format!("a host process in the demo cgroup reaches 127.0.0.1:{port}"),
                "127.0.0.1",
                port,
                Expect::Answers(GATEWAY),
            );
            self.connect_outside(
                &format!("outside -> {UPLINK_IP}:{port} gets no answer (bound to 127.0.0.1)"),
                UPLINK_IP,
                port,
                Expect::Nothing,
            );
            if bbox1.is_some() {
                self.connect_container(
                    &format!("bbox1 -> {UPLINK_IP}:{port} gets no answer (bound to 127.0.0.1)"),
                    "bbox1",
                    UPLINK_IP,
                    port,
                    Expect::Nothing,
                );
            }
        }
        self.container("auto", &["-P", "--expose", "90"]);
        self.peer_echo("auto", 90);
        if let Some(port) = self.published("auto", "90/tcp", "0.0.0.0") {
            self.connect_outside(
                &format!("outside -> {UPLINK_IP}:{port} reaches auto's port 90"),
                UPLINK_IP,
                port,
                Expect::Answers(OUTSIDE_IP),
            );
        }
    }

    /// (i) Containers reach a published port through the host's addresses, on their network or
    /// another, and a container reaches its own published port.
    fn hairpin(&mut self, bbox1: Option<&str>, db: Option<&str>) {
        section("(i) hairpin: containers reach www's published port through host addresses");
        let Some(bbox1) = bbox1 else {
            return self.not_run("bbox1 -> www's published port", "no address for bbox1");
        };
        for ip in [UPLINK_IP, GATEWAY] {
            self.connect_container(
                &format!("bbox1 -> {ip}:8080 reaches www, which sees bbox1 ({bbox1})"),
                "bbox1",
                ip,
                8080,
                Expect::Answers(bbox1),
            );
        }
        match db {
            Some(db) => {
                self.connect_container(
                    &format!("db (on net2) -> {UPLINK_IP}:8080 reaches www, which sees db ({db})"),
                    "db",
                    UPLINK_IP,
                    8080,
                    Expect::Answers(db),
                );
            }
            None => self.not_run("db -> www's published port", "no address for db"),
        }
        self.connect_container(
            &format!("www -> {UPLINK_IP}:8080 reaches itself, and sees the gateway"),
            "www",
            UPLINK_IP,
            8080,
            Expect::Answers(GATEWAY),
        );
    }

    /// (j) Containers leave through the uplink with its address.
    fn egress(&mut self) {
        section("(j) egress: containers reach the outside world as 10.99.0.2 (SNAT in eBPF)");
        let listen = format!("TCP-LISTEN:{OUTSIDE_PORT},fork,reuseaddr");
        let server = self.lab.outside(&["socat", &listen, PEER_ECHO]);
        let title = format!("serve the client's address on {OUTSIDE_IP}:{OUTSIDE_PORT}");
        println!("\n$ {} &", shell_line(&server));
        match self.lab.spawn_background("the outside server", server) {
            Ok(pid) => self.record(&title, Verdict::Pass, &format!("pid {pid}")),
            Err(e) => return self.record(&title, Verdict::Fail, &format!("{e:#}")),
        }
        let probe = format!("sport = :{OUTSIDE_PORT}");
        let lab = self.lab;
        self.wait_listening("the outside server", || {
            lab.outside(&["ss", "-Htln", &probe])
        });
        for (name, network) in [("bbox1", "bridge"), ("db", "net2")] {
            self.connect_container(
                &format!(
                    "{name} (on {network}) -> {OUTSIDE_IP}:{OUTSIDE_PORT} arrives as {UPLINK_IP}"
                ),
                name,
                OUTSIDE_IP,
                OUTSIDE_PORT,
                Expect::Answers(UPLINK_IP),
            );
        }
        self.ping("bbox1", "the outside", Some(OUTSIDE_IP), Expect::Success);
    }

    /// (k) The decoded port and NAT tables, and nothing else doing the job.
    fn port_and_nat_maps(&mut self) {
        section("(k) the published ports and the translated flows, decoded");
        self.step(
            "the port table holds www's 8080, local's loopback port and auto's",
            &["maps", "dump", "ports"],
            Expect::PrintsAll(&["0.0.0.0:8080", "www", "127.0.0.1:", "local", "auto"]),
        );
        self.step(
            "the NAT table holds the flows above: dnat, hairpin, snat",
            &["maps", "dump", "nat"],
            Expect::PrintsAll(&["dnat", "hairpin", "snat", OUTSIDE_IP]),
        );
        let rules = self.lab.on_host(&[
            "sh",
            "-c",
            "iptables-save 2>/dev/null; nft list ruleset 2>/dev/null",
        ]);
        self.check_command(
            "no iptables or nftables rule in netd-demo-host",
            rules,
            Expect::Nothing,
        );
        let listeners = self.lab.on_host(&["ss", "-Htln", "sport = :8080"]);
        self.check_command(
            "nothing listens on port 8080 in netd-demo-host (no proxy process)",
            listeners,
            Expect::Nothing,
        );
    }

    /// (l) `-p 5353:53/udp`.
    fn udp_port(&mut self, bbox1: Option<&str>) {
        section("(l) -p 5353:53/udp: a published UDP port");
        let lab = self.lab;
        self.container("dns", &["-p", "5353:53/udp"]);
        let server = [
            "exec",
            "-d",
            "dns",
            "--",
            "socat",
            "UDP-RECVFROM:53,fork",
            "SYSTEM:echo pong-$SOCAT_PEERADDR",
        ];
        self.step(
            "serve \"pong-\" and the client's address on dns's port 53/udp in the background",
            &server,
            Expect::Success,
        );
        self.wait_listening("dns's server", || {
            lab.client(&["exec", "dns", "--", "ss", "-Huln", "sport = :53"])
        });
        self.step(
            "container port dns",
            &["container", "port", "dns"],
            Expect::Prints("53/udp -> 0.0.0.0:5353"),
        );
        // -t: after its stdin ends socat waits only 0.5 s for the answer by default.
        let query = format!("echo ping | socat -T2 -t3 - UDP:{UPLINK_IP}:5353");
        let cmd = self.lab.outside(&["sh", "-c", &query]);
        let answer = format!("pong-{OUTSIDE_IP}");
        self.check_command(
            &format!("outside -> {UPLINK_IP}:5353/udp reaches dns, which sees the real client"),
            cmd,
            Expect::Answers(&answer),
        );
        if let Some(bbox1) = bbox1 {
            let args = ["exec", "bbox1", "--", "sh", "-c", &query];
            let answer = format!("pong-{bbox1}");
            self.step(
                &format!("bbox1 -> {UPLINK_IP}:5353/udp reaches dns (hairpin), which sees bbox1"),
                &args,
                Expect::Answers(&answer),
            );
        }
    }

    /// (m) `container publish` / `unpublish` change a running container's ports at once.
    fn publish_running(&mut self) {
        section("(m) container publish / unpublish on a running container");
        let spec = "8081:80";
        self.step(
            "publish www's port 80 on 8081 too",
            &["container", "publish", "www", spec],
            Expect::Success,
        );
        self.step(
            "container port www",
            &["container", "port", "www"],
            Expect::PrintsAll(&["80/tcp -> 0.0.0.0:8080", "80/tcp -> 0.0.0.0:8081"]),
        );
        let title = format!("outside -> {UPLINK_IP}:8081 reaches www");
        self.connect_outside(&title, UPLINK_IP, 8081, Expect::Answers(OUTSIDE_IP));
        self.step(
            "unpublish 8081",
            &["container", "unpublish", "www", spec],
            Expect::Success,
        );
        let title = format!("outside -> {UPLINK_IP}:8081 gets no answer any more");
        self.connect_outside(&title, UPLINK_IP, 8081, Expect::Nothing);
        let title = format!("outside -> {UPLINK_IP}:8080 still reaches www");
        self.connect_outside(&title, UPLINK_IP, 8080, Expect::Answers(OUTSIDE_IP));
    }

    /// (n) The embedded DNS server of user-defined networks: names, aliases, short IDs, PTR and
    /// outside names through the daemon's upstream; nothing for containers on other networks.
    fn names_on_user_networks(&mut self) {
        section("(n) names on a user-defined network (embedded DNS at 127.0.0.11)");
        self.upstream_dns();
        self.step(
            "create network dnsnet",
            &["network", "create", "dnsnet"],
            Expect::Success,
        );
        self.container("alpha", &["--network", "dnsnet", "--network-alias", "svc"]);
        self.container("beta", &["--network", "dnsnet"]);
        self.container("gamma", &["--network", "net1"]);
        let alpha = self.inspect_address("alpha", "dnsnet", None);
        let beta = self.address("beta", "dnsnet", None);
        self.step(
            "beta's resolver is the embedded server",
            &["exec", "beta", "--", "cat", "/etc/resolv.conf"],
            Expect::Prints("nameserver 127.0.0.11"),
        );
        let Some((alpha, alpha_json)) = alpha else {
            return self.not_run("name lookups of alpha", "no address for alpha");
        };
        for name in ["alpha", "svc"] {
            self.dig("beta", name, Expect::Answers(&alpha));
        }
        if let Some(short_id) = hostname(&alpha_json.stdout) {
            self.dig("beta", &short_id, Expect::Answers(&alpha));
        }
        let getent = ["exec", "beta", "--", "getent", "hosts", "svc"];
        self.step(
            &format!("getent hosts svc in beta gives alpha's address {alpha}"),
            &getent,
            Expect::Prints(&alpha),
        );
        if let Some(beta) = &beta {
            let getent = ["exec", "alpha", "--", "getent", "hosts", "beta"];
            self.step(
                &format!("getent hosts beta in alpha gives {beta}"),
                &getent,
                Expect::Prints(beta),
            );
        }
        let ptr = [
            "exec", "beta", "--", "dig", "+short", "+time=2", "+tries=1", "-x", &alpha,
        ];
        self.step(
            &format!("dig -x {alpha} in beta gives alpha's name (PTR)"),
            &ptr,
            Expect::Prints("alpha"),
        );
        self.dig("beta", "outside.test", Expect::Answers(OUTSIDE_NAME_IP));
        self.dig("gamma", "alpha", Expect::Nothing);
        let getent = ["exec", "gamma", "--", "getent", "hosts", "alpha"];
        self.step(
            "getent hosts alpha in gamma (on net1) finds nothing",
            &getent,
            Expect::Failure,
        );
    }

    /// dnsmasq in the outside namespace, the upstream of the daemon's resolv.conf, answering
    /// `outside.test` and nothing else.
    fn upstream_dns(&mut self) {
        let listen = format!("--listen-address={OUTSIDE_IP}");
        let answer = format!("--address=/outside.test/{OUTSIDE_NAME_IP}");
        let server = self.lab.outside(&[
            "dnsmasq",
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            &listen,
            &answer,
            "--pid-file=",
        ]);
        let title =
            format!("serve outside.test -> {OUTSIDE_NAME_IP} on {OUTSIDE_IP}:53 (upstream DNS)");
        println!("\n$ {} &", shell_line(&server));
        match self.lab.spawn_background("the upstream DNS server", server) {
            Ok(pid) => self.record(&title, Verdict::Pass, &format!("pid {pid}")),
            Err(e) => return self.record(&title, Verdict::Fail, &format!("{e:#}")),
        }
        let lab = self.lab;
        self.wait_listening("the upstream DNS server", || {
            lab.outside(&["ss", "-Huln", "sport = :53"])
        });
    }

    /// (o) The default bridge has no names (seed 000), but outside names resolve.
    fn names_on_default_bridge(&mut self) {
        section("(o) the default bridge: no container names, outside names resolve");
        self.container("bbox3", &[]);
        let ping = [
            "exec", "bbox1", "--", "busybox", "ping", "-c1", "-W1", "bbox3",
        ];
        self.step(
            "busybox ping bbox3 in bbox1: bad address",
            &ping,
            Expect::FailsWith("bad address"),
        );
        self.dig("bbox1", "outside.test", Expect::Answers(OUTSIDE_NAME_IP));
    }

    /// (p) `--link NAME:ALIAS` (seeds 002-004): Docker's environment, taken at start and at each
    /// exec (as `docker exec` takes it), and a hosts line that follows the linked container to
    /// its new address.
    fn legacy_links(&mut self) {
        section("(p) legacy links: --link pgsql:webdb");
        self.container("pgsql", &["--expose", "5432"]);
        let first = self.inspect_address("pgsql", "bridge", Some(("172.17.0.0", 16)));
        self.container("webapp", &["--link", "pgsql:webdb"]);
        let Some((ip1, json)) = first else {
            return self.not_run(
                "the link's environment and hosts line",
                "no address for pgsql",
            );
        };
        let Some(short_id) = hostname(&json.stdout) else {
            return self.not_run("the link's hosts line", "no hostname in pgsql's JSON");
        };
        let env = ["exec", "webapp", "--", "env"];
        let url = format!("WEBDB_PORT=tcp://{ip1}:5432");
        let addr1 = format!("WEBDB_PORT_5432_TCP_ADDR={ip1}");
        self.step(
            "webapp's link environment",
            &env,
            Expect::PrintsAll(&[
                "WEBDB_NAME=/webapp/webdb",
                &url,
                &addr1,
                "WEBDB_PORT_5432_TCP_PORT=5432",
                "WEBDB_PORT_5432_TCP_PROTO=tcp",
            ]),
        );
        let hosts = ["exec", "webapp", "--", "cat", "/etc/hosts"];
        let line1 = format!("{ip1}\twebdb {short_id} pgsql");
        self.step(
            &format!("webapp's /etc/hosts has {line1:?}"),
            &hosts,
            Expect::Prints(&line1),
        );
        let ping = [
            "exec", "webapp", "--", "busybox", "ping", "-c1", "-W2", "webdb",
        ];
        self.step("ping webdb from webapp", &ping, Expect::Success);
        let back = [
            "exec", "pgsql", "--", "busybox", "ping", "-c1", "-W1", "webapp",
        ];
        self.step(
            "the link is one-way: pgsql does not know webapp",
            &back,
            Expect::FailsWith("bad address"),
        );
        let early = self.step(
            "a process started now in webapp keeps its environment (as Docker's first process)",
            &["exec", "-d", "webapp", "--", "sleep", "600"],
            Expect::Success,
        );
        let pid = early.map(|o| o.stdout.trim().to_string());
        self.step(
            "stop pgsql",
            &["container", "stop", "pgsql"],
            Expect::Success,
        );
        self.step(
            "an exec in webapp while pgsql is stopped: refused, as docker exec is",
            &env,
            Expect::FailsWith("Cannot link to a non running container"),
        );
        self.container("filler", &[]);
        self.step(
            "start pgsql again",
            &["container", "start", "pgsql"],
            Expect::Success,
        );
        let Some(ip2) = self.address("pgsql", "bridge", Some(("172.17.0.0", 16))) else {
            return;
        };
        let verdict = if ip2 != ip1 {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        self.record(
            &format!("pgsql moved from {ip1} to {ip2}"),
            verdict,
            "expected: a new address",
        );
        let line2 = format!("{ip2}\twebdb {short_id} pgsql");
        self.step(
            &format!("webapp's /etc/hosts follows: {line2:?}"),
            &hosts,
            Expect::Prints(&line2),
        );
        let addr2 = format!("WEBDB_PORT_5432_TCP_ADDR={ip2}");
        self.step(
            &format!("each exec takes the link environment anew, as docker exec: {addr2}"),
            &env,
            Expect::PrintsAll(&[&addr2]),
        );
        if let Some(pid) = pid.filter(|p| p.parse::<u32>().is_ok()) {
            let environ = format!("tr '\\0' '\\n' < /proc/{pid}/environ");
            self.step(
                &format!("the process started before keeps the old address: {addr1}"),
                &["exec", "webapp", "--", "sh", "-c", &environ],
                Expect::PrintsAll(&[&addr1, &url]),
            );
        }
        self.step("ping webdb from webapp again", &ping, Expect::Success);
    }

    /// (q) Drop counters per container, and synthetic packets explained hop by hop.
    fn observability(&mut self, db: Option<&str>) {
        section("(q) observability: netd stats and netd explain");
        self.step(
            "netd stats: the drops above, by container and reason",
            &["stats"],
            Expect::PrintsAll(&["isolation", "spoofed-ip"]),
        );
        self.step(
            "netd stats bbox2: its spoofed packets",
            &["stats", "bbox2"],
            Expect::PrintsAll(&["bbox2", "spoofed-ip"]),
        );
        match db {
            Some(db) => {
                let to = format!("{db}:80");
                self.step(
                    &format!("explain gamma (net1) -> db ({to}, net2): dropped for isolation"),
                    &["explain", "--from", "gamma", "--to", &to],
                    Expect::PrintsAll(&["drop (isolation)", "not delivered"]),
                );
            }
            None => self.not_run("explain gamma -> db", "no address for db"),
        }
        let www = self.address("www", "bridge", Some(("172.17.0.0", 16)));
        let to = format!("{UPLINK_IP}:8080");
        let Some(www) = www else {
            return self.not_run("explain outside -> www", "no address for www");
        };
        let rewritten = format!("{www}:80");
        self.step(
            &format!("explain {OUTSIDE_IP} -> {to}: rewritten to {rewritten}, delivered to www"),
            &["explain", "--from", OUTSIDE_IP, "--to", &to],
            Expect::PrintsAll(&[&rewritten, "delivered to container www"]),
        );
    }

    /// `exec FROM -- dig +short +time=2 +tries=1 NAME`.
    fn dig(&mut self, from: &str, name: &str, expect: Expect) {
        let title = format!("dig {name} in {from}");
        let args = [
            "exec", from, "--", "dig", "+short", "+time=2", "+tries=1", name,
        ];
        self.step(&title, &args, expect);
    }

    /// `container create OPTIONS... NAME`, then `container start NAME`.
    fn container(&mut self, name: &str, options: &[&str]) {
        let mut create = vec!["container", "create"];
        create.extend_from_slice(options);
        create.push(name);
        let title = if options.is_empty() {
            format!("create {name}")
        } else {
            format!("create {name} with {}", options.join(" "))
        };
        self.step(&title, &create, Expect::Success);
        let start = ["container", "start", name];
        self.step(&format!("start {name}"), &start, Expect::Success);
    }

    /// A TCP server on `port` in `container` that answers every connection with the client's
    /// address as the container sees it.
    fn peer_echo(&mut self, container: &str, port: u16) {
        let listen = format!("TCP-LISTEN:{port},fork,reuseaddr");
        let args = ["exec", "-d", container, "--", "socat", &listen, PEER_ECHO];
        let title =
            format!("serve the client's address on {container}'s port {port} in the background");
        self.step(&title, &args, Expect::Success);
        let probe = format!("sport = :{port}");
        let lab = self.lab;
        self.wait_listening(&format!("{container}'s server"), || {
            lab.client(&["exec", container, "--", "ss", "-Htln", &probe])
        });
    }

    /// Runs `probe` (an `ss` listing in the server's namespace) until it lists a socket, that is
    /// until a server started in the background listens; FAIL if it does not in time.
    fn wait_listening(&mut self, server: &str, probe: impl Fn() -> Command) {
        if util::interrupted() {
            return;
        }
        let shown = shell_line(&probe()).replace(&self.lab.client_prefix(), "netd");
        println!("\n$ {shown}    # until it lists a socket");
        let title = format!("{server} listens");
        let started = Instant::now();
        loop {
            let listed = self.lab.run(&mut probe());
            if listed.is_ok_and(|out| out.success() && !out.stdout.trim().is_empty()) {
                let note = format!("after {} ms", started.elapsed().as_millis());
                return self.record(&title, Verdict::Pass, &note);
            }
            if started.elapsed() >= SERVER_START || util::interrupted() {
                let note = format!("expected within {SERVER_START:?}");
                return self.record(&title, Verdict::Fail, &note);
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// `container port NAME`, expecting `PORT_PROTO -> ADDR:<ephemeral port>`; returns the port.
    fn published(&mut self, name: &str, port_proto: &str, addr: &str) -> Option<u16> {
        let line = format!("{port_proto} -> {addr}:");
        let out = self.step(
            &format!("container port {name}"),
            &["container", "port", name],
            Expect::Prints(&line),
        )?;
        let title = format!("{name}'s {port_proto} has a host port from the ephemeral range");
        let expected = format!("expected: in {}-{}", EPHEMERAL.start(), EPHEMERAL.end());
        match host_port(&out.stdout, port_proto) {
            Some(port) if EPHEMERAL.contains(&port) => {
                self.record(&format!("{title}: {port}"), Verdict::Pass, &expected);
                Some(port)
            }
            Some(port) => {
                self.record(&format!("{title}: {port}"), Verdict::Fail, &expected);
                Some(port)
            }
            None => {
                self.not_run(&title, &format!("no {port_proto} line in the output"));
                None
            }
        }
    }

    /// A TCP client in the outside namespace.
    fn connect_outside(&mut self, title: &str, ip: &str, port: u16, expect: Expect) {
        let target = tcp_target(ip, port);
        let cmd = self.lab.outside(&["socat", "-T2", "-", &target]);
        self.check_command(title, cmd, expect);
    }

    /// A TCP client on the host, inside the demo cgroup where the daemon's socket hooks act.
    fn connect_host(&mut self, title: &str, ip: &str, port: u16, expect: Expect) {
        let script = format!("socat -T2 - {} </dev/null", tcp_target(ip, port));
        let cmd = self.lab.in_demo_cgroup(&script);
        self.check_command(title, cmd, expect);
    }

    /// A TCP client in a container.
    fn connect_container(&mut self, title: &str, name: &str, ip: &str, port: u16, expect: Expect) {
        let target = tcp_target(ip, port);
        let args = ["exec", name, "--", "socat", "-T2", "-", &target];
        self.step(title, &args, expect);
    }

    /// `maps dump NETD_DROPS` shows a non-zero count for `reason` (SKIP if not available).
    fn drops_counted(&mut self, reason: &str) {
        let title = format!("the drop is counted as {reason} in NETD_DROPS");
        let dump = ["maps", "dump", "NETD_DROPS"];
        let Some(out) = self.step("netd maps dump NETD_DROPS", &dump, Expect::Optional) else {
            return;
        };
        match (out.success(), table_count(&out.stdout, reason)) {
            (true, Some(n)) if n > 0 => self.record(&title, Verdict::Pass, &format!("{n} packets")),
            (true, Some(_)) => self.record(&title, Verdict::Fail, "the count is 0"),
            _ => self.not_run(&title, &format!("no {reason} counter in the output")),
        }
    }

    /// `exec FROM -- busybox ping -c 1 -W 2 IP`, or SKIP if the address is unknown.
    fn ping(&mut self, from: &str, to: &str, ip: Option<&str>, expect: Expect) {
        let Some(ip) = ip else {
            return self.not_run(
                &format!("ping {from} -> {to}"),
                &format!("no address for {to}"),
            );
        };
        let title = format!("ping {from} -> {to} ({ip})");
        let args = [
            "exec", from, "--", "busybox", "ping", "-c", "1", "-W", "2", ip,
        ];
        self.step(&title, &args, expect);
    }

    /// `container inspect NAME`, and the address on `network` read from its JSON, checked against
    /// `subnet` if given.
    fn address(&mut self, name: &str, network: &str, subnet: Option<(&str, u8)>) -> Option<String> {
        self.inspect_address(name, network, subnet)
            .map(|(ip, _)| ip)
    }

    /// [`Demo::address`], with the output of `container inspect`.
    fn inspect_address(
        &mut self,
        name: &str,
        network: &str,
        subnet: Option<(&str, u8)>,
    ) -> Option<(String, Captured)> {
        self.inspect_address_on(Site::One, name, network, subnet)
    }

    /// [`Demo::inspect_address`] on one of the two hosts.
    fn inspect_address_on(
        &mut self,
        host: Site,
        name: &str,
        network: &str,
        subnet: Option<(&str, u8)>,
    ) -> Option<(String, Captured)> {
        let title = match host {
            Site::One => format!("inspect {name}"),
            Site::Two => format!("{host}: inspect {name}"),
        };
        let out = self.step_on(
            host,
            &title,
            &["container", "inspect", name],
            Expect::Success,
        )?;
        let title = format!("{name} has an address on {network}");
        let Some(ip) = ip_address(&out.stdout, network) else {
            self.record(
                &title,
                Verdict::Fail,
                "no networks.{network}.ip_address in the JSON",
            );
            return None;
        };
        let fits = subnet.is_none_or(|(base, len)| in_subnet(ip, base, len));
        let expected = subnet.map_or("any".into(), |(base, len)| format!("in {base}/{len}"));
        let verdict = if fits { Verdict::Pass } else { Verdict::Fail };
        self.record(
            &format!("{title}: {ip}"),
            verdict,
            &format!("expected: {expected}"),
        );
        Some((ip.to_string(), out))
    }

    /// Runs `netd ARGS`, shows what it printed, and records whether `expect` held.
    fn step(&mut self, title: &str, args: &[&str], expect: Expect) -> Option<Captured> {
        let shown = format!("netd {}", shell_words(args.iter().copied()));
        let mut cmd = self.lab.client(args);
        self.check(title, &shown, &mut cmd, expect)
    }

    /// Runs a command other than netd's client, shown as a shell would take it.
    fn check_command(&mut self, title: &str, mut cmd: Command, expect: Expect) -> Option<Captured> {
        let shown = shell_line(&cmd);
        self.check(title, &shown, &mut cmd, expect)
    }

    /// Runs `cmd` (shown as `shown`), shows what it printed, and records whether `expect` held.
    fn check(
        &mut self,
        title: &str,
        shown: &str,
        cmd: &mut Command,
        expect: Expect,
    ) -> Option<Captured> {
        if util::interrupted() {
            return None;
        }
        println!("\n$ {shown}");
        let out = match self.lab.run(cmd) {
            Ok(out) => out,
            Err(e) => {
                self.record(title, Verdict::Fail, &format!("could not run: {e:#}"));
                return None;
            }
        };
        self.judge(title, out, expect)
    }

    /// Shows what a command printed, and records whether `expect` held.
    fn judge(&mut self, title: &str, out: Captured, expect: Expect) -> Option<Captured> {
        show(&out.stdout);
        show(&out.stderr);
        let verdict = expect.judge(&out);
        let got = expect.got(&out);
        let note = match verdict {
            Verdict::Pass => format!("expected: {}", expect.describe()),
            Verdict::Fail => format!("expected: {}; got: {got}", expect.describe()),
            Verdict::Skip => format!("not available ({got}); going on"),
        };
        self.record(title, verdict, &note);
        Some(out)
    }

    fn not_run(&mut self, title: &str, why: &str) {
        self.record(title, Verdict::Skip, &format!("not run: {why}"));
    }

    fn record(&mut self, title: &str, verdict: Verdict, note: &str) {
        let word = match verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        };
        println!("{word}: {title} ({note})");
        self.records.push((title.to_string(), verdict));
    }

    /// Prints the tally and every failure; true if nothing failed.
    fn summary(&self) -> bool {
        println!("\n==> summary");
        let count = |v| self.records.iter().filter(|(_, r)| *r == v).count();
        let (pass, fail, skip) = (
            count(Verdict::Pass),
            count(Verdict::Fail),
            count(Verdict::Skip),
        );
        println!("{pass} passed, {fail} failed, {skip} skipped");
        for (title, _) in self.records.iter().filter(|(_, v)| *v != Verdict::Pass) {
            println!("  not passed: {title}");
        }
        if util::interrupted() {
            println!("interrupted: the remaining steps did not run");
        }
        fail == 0 && !util::interrupted()
    }
}

fn section(title: &str) {
    if util::interrupted() {
        return;
    }
    println!("\n==> {title}");
}

/// Prints a command's output, indented and cut to [`MAX_LINES`].
fn show(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    for line in lines.iter().take(MAX_LINES) {
        println!("    {line}");
    }
    if lines.len() > MAX_LINES {
        println!("    ... ({} more lines)", lines.len() - MAX_LINES);
    }
}

/// `TCP:IP:PORT,connect-timeout=2`, a socat client address.
fn tcp_target(ip: &str, port: u16) -> String {
    format!("TCP:{ip}:{port},connect-timeout=2")
}

/// The host port on the line for `port_proto` of `container port` output
/// (`80/tcp -> 127.0.0.1:32768`).
fn host_port(lines: &str, port_proto: &str) -> Option<u16> {
    lines.lines().find_map(|line| {
        let (container, host) = line.split_once(" -> ")?;
        (container.trim() == port_proto).then(|| host.trim().rsplit(':').next()?.parse().ok())?
    })
}

/// A command line as a shell would take it: program and arguments, quoted where needed.
fn shell_line(cmd: &Command) -> String {
    let program = cmd.get_program().to_string_lossy();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
    shell_words(std::iter::once(&*program).chain(args.iter().map(|a| &**a)))
}

/// Words joined by spaces, each single-quoted unless it is made of characters a shell leaves alone.
fn shell_words<'w>(words: impl IntoIterator<Item = &'w str>) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c);
    let quoted: Vec<String> = words
        .into_iter()
        .map(|w| {
            if !w.is_empty() && w.chars().all(plain) {
                w.to_string()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect();
    quoted.join(" ")
}

/// `networks.<network>.ip_address` of `container inspect` JSON, without a prefix length.
fn ip_address(json: &str, network: &str) -> Option<Ipv4Addr> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let inspect = value.as_array().and_then(|a| a.first()).unwrap_or(&value);
    let ip = inspect
        .get("networks")?
        .get(network)?
        .get("ip_address")?
        .as_str()?;
    ip.split('/').next()?.parse().ok()
}

/// `hostname` of `container inspect` JSON (a container's short ID unless `--hostname` was given).
fn hostname(json: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let inspect = value.as_array().and_then(|a| a.first()).unwrap_or(&value);
    Some(inspect.get("hostname")?.as_str()?.to_string())
}

/// The number on the line `NAME N` of a table of counters (drops by reason, tunnel frames).
fn table_count(table: &str, name: &str) -> Option<u64> {
    table.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == name).then(|| words.next()?.parse().ok())?
    })
}

/// Whether a line of `text` has every one of `words` among its own.
fn has_row(text: &str, words: &[&str]) -> bool {
    text.lines().any(|line| {
        let own: Vec<&str> = line.split_whitespace().collect();
        words.iter().all(|w| own.contains(w))
    })
}

fn in_subnet(ip: Ipv4Addr, base: &str, len: u8) -> bool {
    let Ok(base) = base.parse::<Ipv4Addr>() else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(base) & mask
}

/// Whether `ip -o link` output lists `lo` and nothing else.
fn only_loopback(links: &str) -> bool {
    let names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n))
        .collect();
    names == ["lo"]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_address_of_a_network_from_inspect_json() {
        let json = r#"{"name":"bbox1","networks":{"bridge":{"ip_address":"172.17.0.2/16"}}}"#;
        assert_eq!(
            ip_address(json, "bridge"),
            Some(Ipv4Addr::new(172, 17, 0, 2))
        );
        assert_eq!(ip_address(json, "net1"), None);
    }

    #[test]
    fn reads_the_hostname_from_inspect_json() {
        let json = r#"[{"name":"pgsql","hostname":"053a70f4082d"}]"#;
        assert_eq!(hostname(json).as_deref(), Some("053a70f4082d"));
        assert_eq!(hostname("{}"), None);
    }

    #[test]
    fn reads_a_drop_counter() {
        let table = "REASON       PACKETS\nspoofed-mac  0\nspoofed-ip   3\n";
        assert_eq!(table_count(table, "spoofed-ip"), Some(3));
        assert_eq!(table_count(table, "isolation"), None);
    }

    #[test]
    fn finds_a_row_by_its_words() {
        let ls = "NETWORK ID     NAME      DRIVER    SCOPE\n3f2a  bridge  bridge  local\n9c1d  ov  overlay  global\n";
        assert!(has_row(ls, &["ov", "overlay", "global"]));
        assert!(
            !has_row(ls, &["bridge", "global"]),
            "words of different rows"
        );
        assert!(!has_row(ls, &["o", "global"]), "whole words only");
    }

    #[test]
    fn reads_a_host_port_from_container_port_output() {
        let ports = "80/tcp -> 127.0.0.1:32768\n90/tcp -> 0.0.0.0:8080\n";
        assert_eq!(host_port(ports, "80/tcp"), Some(32768));
        assert_eq!(host_port(ports, "90/tcp"), Some(8080));
        assert_eq!(host_port(ports, "90/udp"), None);
    }

    #[test]
    fn quotes_command_lines_as_a_shell_would_take_them() {
        let words = [
            "socat",
            "TCP-LISTEN:80,fork",
            "SYSTEM:echo $SOCAT_PEERADDR",
            "it's",
        ];
        assert_eq!(
            shell_words(words),
            r"socat TCP-LISTEN:80,fork 'SYSTEM:echo $SOCAT_PEERADDR' 'it'\''s'"
        );
    }

    #[test]
    fn checks_subnet_membership() {
        assert!(in_subnet(Ipv4Addr::new(172, 30, 1, 9), "172.30.1.0", 24));
        assert!(!in_subnet(Ipv4Addr::new(172, 30, 2, 9), "172.30.1.0", 24));
    }

    #[test]
    fn recognises_a_loopback_only_namespace() {
        let lo = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\\    link/loopback";
        assert!(only_loopback(lo));
        let both = format!("{lo}\n5: eth0@if6: <BROADCAST,MULTICAST,UP> mtu 1500");
        assert!(!only_loopback(&both));
    }
}
