//! `cargo xtask demo`: netd at work, with real traffic, in throwaway namespaces.
//!
//! Builds the release binary, sets up a [`Lab`] (a host namespace where the daemon runs, an outside
//! namespace behind its uplink), then walks through the scenarios of the seed articles: the default
//! bridge, user-defined networks and their isolation, a container joining another's namespace, the
//! `none` and `host` networks, the decoded maps, and anti-spoofing. Every step prints the command,
//! its output and PASS/FAIL against the expected outcome; a summary follows and the exit status is
//! non-zero if any expectation failed. The lab is removed on the way out, whatever happened.

use std::{net::Ipv4Addr, process::ExitCode, thread, time::Duration};

use anyhow::Result;

use crate::{
    build,
    lab::{self, Lab},
    util::{self, Captured},
};

/// Output lines shown per stream and step.
const MAX_LINES: usize = 40;

/// Runs the demo; the exit code says whether every expectation held.
pub fn demo() -> Result<ExitCode> {
    let netd = build::build(true)?;
    util::catch_interrupts();
    let mut lab = Lab::new(netd)?;
    lab.create_world()?;
    lab.start_daemon()?;
    println!("\n`netd` below stands for `{}`", lab.client_prefix());
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
            Expect::OnlyLoopback => "succeeds and lists only lo".into(),
            Expect::Optional => "succeeds, if available".into(),
        }
    }

    fn judge(&self, out: &Captured) -> Verdict {
        let holds = match self {
            Expect::Success => out.success(),
            Expect::Failure => out.status.is_some_and(|s| !s.success()),
            Expect::Prints(text) => out.success() && out.stdout.contains(text),
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
}

#[derive(Clone, Copy, PartialEq)]
enum Verdict {
    Pass,
    Fail,
    Skip,
}

struct Demo<'l> {
    lab: &'l Lab,
    records: Vec<(String, Verdict)>,
}

impl Demo<'_> {
    fn scenarios(&mut self) {
        let bbox1 = self.default_bridge();
        self.user_defined_networks();
        self.joined_container();
        self.special_networks();
        self.maps_dump();
        self.anti_spoofing(bbox1.as_deref());
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
    fn user_defined_networks(&mut self) {
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

    /// `maps dump NETD_DROPS` shows a non-zero count for `reason` (SKIP if not available).
    fn drops_counted(&mut self, reason: &str) {
        let title = format!("the drop is counted as {reason} in NETD_DROPS");
        let dump = ["maps", "dump", "NETD_DROPS"];
        let Some(out) = self.step("netd maps dump NETD_DROPS", &dump, Expect::Optional) else {
            return;
        };
        match (out.success(), drop_count(&out.stdout, reason)) {
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
        let out = self.step(
            &format!("inspect {name}"),
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
        Some(ip.to_string())
    }

    /// Runs `netd ARGS`, shows what it printed, and records whether `expect` held.
    fn step(&mut self, title: &str, args: &[&str], expect: Expect) -> Option<Captured> {
        if util::interrupted() {
            return None;
        }
        println!("\n$ netd {}", args.join(" "));
        let out = match self.lab.run_client(args) {
            Ok(out) => out,
            Err(e) => {
                self.record(title, Verdict::Fail, &format!("could not run: {e:#}"));
                return None;
            }
        };
        show(&out.stdout);
        show(&out.stderr);
        let verdict = expect.judge(&out);
        let got = lab::status_text(&out);
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

/// The number on the line `REASON N` of a drop-counter table.
fn drop_count(table: &str, reason: &str) -> Option<u64> {
    table.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == reason).then(|| words.next()?.parse().ok())?
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
    fn reads_a_drop_counter() {
        let table = "REASON       PACKETS\nspoofed-mac  0\nspoofed-ip   3\n";
        assert_eq!(drop_count(table, "spoofed-ip"), Some(3));
        assert_eq!(drop_count(table, "isolation"), None);
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
