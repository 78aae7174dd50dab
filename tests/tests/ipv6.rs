//! Dual-stack networks as users see them (`--ipv6` and an IPv6 `--subnet`): both families'
//! addresses, routes and names in containers, the IPv6 neighbour discovery answered at the
//! port, isolation and anti-spoofing for IPv6 as for IPv4, and every bad input refused in one
//! line without a trace.
use netd_tests::{Host, Launch};
use serde_json::Value;

const SUBNET6: &str = "fd00:28::/64";

fn network(host: &Host, name: &str) -> Value {
    let v: Value = serde_json::from_str(&host.ok(&["network", "inspect", name])).expect("JSON");
    v[0].clone()
}

/// A dual-stack network `name` with the IPv4 and IPv6 subnets given.
fn dual(host: &Host, name: &str, subnet: &str, subnet6: &str) {
    host.ok(&[
        "network", "create", "--ipv6", "--subnet", subnet, "--subnet", subnet6, name,
    ]);
}

/// The container's IPv6 address on `network`, as `inspect` shows it.
fn ip6(host: &Host, container: &str, network: &str) -> String {
    let v = host.inspect(container);
    v["networks"][network]["global_ipv6_address"]
        .as_str()
        .unwrap_or_else(|| panic!("{container} has no IPv6 address on {network}: {v}"))
        .to_string()
}

fn ping6(host: &Host, container: &str, ip: &str) -> bool {
    (0..3).any(|_| {
        host.exec(
            container,
            &["busybox", "ping", "-6", "-c", "1", "-W", "1", ip],
        )
        .ok()
    })
}

/// The packets dropped for `reason` from `container`, as `netd stats` counts them.
fn drops(host: &Host, container: &str, reason: &str) -> u64 {
    let stats: Value = serde_json::from_str(&host.ok(&["stats", "--format", "json"])).unwrap();
    stats["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["container"] == container && r["reason"] == reason)
        .filter_map(|r| r["packets"].as_u64())
        .sum()
}

#[test]
fn a_dual_stack_network_shows_both_families_and_its_bridge_carries_both_gateways() {
    let Some(host) = Host::start() else { return };
    dual(&host, "v6", "172.28.0.0/16", SUBNET6);
    let net = network(&host, "v6");
    assert_eq!(net["enable_ipv6"], true);
    assert_eq!(net["ipv6_subnet"], SUBNET6);
    assert_eq!(net["ipv6_gateway"], "fd00:28::1");
    assert_eq!(net["subnet"], "172.28.0.0/16");
    let bridge = net["bridge"].as_str().unwrap().to_string();
    let addrs = host.on_host(&["ip", "addr", "show", &bridge]).stdout;
    assert!(addrs.contains("172.28.0.1/16"), "{addrs}");
    assert!(addrs.contains("fd00:28::1/64"), "{addrs}");
    let forwarding = host.on_host(&["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]);
    assert_eq!(forwarding.stdout.trim(), "1");
    let plain = network(&host, "bridge");
    assert_eq!(
        plain["enable_ipv6"], false,
        "the default bridge is IPv4 only"
    );
}

#[test]
fn containers_get_addresses_routes_and_reach_each_other_and_the_gateway_over_ipv6() {
    let Some(host) = Host::start() else { return };
    dual(&host, "v6", "172.28.0.0/16", SUBNET6);
    host.container("c1", &["--network", "v6"]);
    host.container("c2", &["--network", "v6", "--ip6", "fd00:28::99"]);
    assert_eq!(
        ip6(&host, "c1", "v6"),
        "fd00:28::2",
        "the lowest free address"
    );
    assert_eq!(ip6(&host, "c2", "v6"), "fd00:28::99", "--ip6");
    let view = &host.inspect("c1")["networks"]["v6"];
    assert_eq!(view["global_ipv6_prefix_len"], 64);
    assert_eq!(view["ipv6_gateway"], "fd00:28::1");
    let addrs = host.exec("c1", &["busybox", "ip", "-6", "addr"]).stdout;
    assert!(addrs.contains("fd00:28::2/64"), "{addrs}");
    assert!(
        addrs.contains("fe80::42:acff:fe1c:2/64"),
        "link-local from the MAC: {addrs}"
    );
    assert!(addrs.contains("::1/128"), "loopback: {addrs}");
    let hosts = host.exec("c1", &["cat", "/etc/hosts"]).stdout;
    let own: Vec<&str> = hosts.lines().rev().take(2).collect();
    assert!(
        own[0].starts_with("fd00:28::2\t") && own[1].starts_with("172.28.0.2\t"),
        "both addresses, IPv6 last: {hosts}"
    );
    let routes = host.exec("c1", &["busybox", "ip", "-6", "route"]).stdout;
    assert!(routes.contains("default via fd00:28::1"), "{routes}");
    assert!(ping6(&host, "c1", "fd00:28::1"), "the gateway");
    assert!(ping6(&host, "c1", "fd00:28::99"), "another container");
    assert!(ping6(&host, "c2", "fd00:28::2"), "and back");
    let neigh = host.exec("c1", &["busybox", "ip", "-6", "neigh"]).stdout;
    assert!(
        neigh.contains("fd00:28::99") && neigh.contains("02:42:ac:1c:00:03"),
        "the NDP responder answered with b's MAC: {neigh}"
    );
    let net = network(&host, "v6");
    assert!(
        net["containers"]
            .as_object()
            .unwrap()
            .values()
            .any(|m| m["ipv6_address"] == "fd00:28::99/64"),
        "{net}"
    );
}

#[test]
fn ipv6_between_networks_is_isolated_and_spoofed_sources_are_dropped() {
    let Some(host) = Host::start() else { return };
    dual(&host, "blue", "172.28.0.0/16", SUBNET6);
    dual(&host, "red", "172.29.0.0/16", "fd00:29::/64");
    host.container("c1", &["--network", "blue"]);
    host.container("c2", &["--network", "blue"]);
    host.container("r1", &["--network", "red"]);
    let (b, r) = (ip6(&host, "c2", "blue"), ip6(&host, "r1", "red"));
    assert!(ping6(&host, "c1", &b));
    let before = drops(&host, "c1", "isolation");
    assert!(!ping6(&host, "c1", &r), "another network's container");
    assert!(
        !ping6(&host, "c1", "fd00:29::1"),
        "another network's gateway"
    );
    assert!(
        drops(&host, "c1", "isolation") > before,
        "counted as isolation"
    );
    // An address the container was not given, on its own interface (usable at once).
    let added = host.exec(
        "c1",
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:28::77/64",
            "dev",
            "eth0",
            "nodad",
        ],
    );
    assert!(added.ok(), "{added:?}");
    let spoofed = drops(&host, "c1", "spoofed-ip");
    let from = host.exec(
        "c1",
        &[
            "busybox",
            "ping",
            "-6",
            "-c",
            "1",
            "-W",
            "1",
            "-I",
            "fd00:28::77",
            &b,
        ],
    );
    assert!(!from.ok(), "a spoofed source is not let out: {from:?}");
    assert!(drops(&host, "c1", "spoofed-ip") > spoofed);
}

#[test]
fn containers_resolve_each_other_to_both_families_on_a_dual_stack_network() {
    let Some(host) = Host::start() else { return };
    dual(&host, "v6", "172.28.0.0/16", SUBNET6);
    host.container("web", &["--network", "v6"]);
    host.container("db", &["--network", "v6"]);
    let web6 = ip6(&host, "web", "v6");
    let aaaa = host
        .exec("db", &["busybox", "nslookup", "-type=aaaa", "web"])
        .stdout;
    assert!(aaaa.contains(&web6), "{aaaa}");
    let a = host
        .exec("db", &["busybox", "nslookup", "-type=a", "web"])
        .stdout;
    assert!(
        a.contains(&host.ip("web", "v6")) && !a.contains(&web6),
        "{a}"
    );
    let ptr = host.exec("db", &["busybox", "nslookup", &web6]).stdout;
    assert!(ptr.contains("web"), "ip6.arpa: {ptr}");
}

/// Under `nsenter` and under `ip netns exec` (a mount namespace and `/sys` of its own).
#[test]
fn a_dual_stack_network_keeps_working_across_a_daemon_restart() {
    for launch in [Launch::Nsenter, Launch::IpNetnsExec] {
        keeps_working_across_a_restart(launch);
    }
}

fn keeps_working_across_a_restart(launch: Launch) {
    let Some(mut host) = Host::start_with(launch, &[]) else {
        return;
    };
    dual(&host, "v6", "172.28.0.0/16", SUBNET6);
    host.container("c1", &["--network", "v6"]);
    host.container("c2", &["--network", "v6"]);
    let b = ip6(&host, "c2", "v6");
    host.stop_daemon("KILL");
    host.start_daemon();
    assert!(ping6(&host, "c1", &b), "after the daemon was killed");
    let check = host.netd(&["check"]);
    assert_eq!(check.status, 0, "{}{}", check.stdout, check.stderr);
    host.container("c3", &["--network", "v6"]);
    assert_eq!(
        ip6(&host, "c3", "v6"),
        "fd00:28::4",
        "addresses in use survive"
    );
    assert!(ping6(&host, "c3", &b));
}

#[test]
fn the_default_bridge_is_dual_stack_with_default_subnet_v6() {
    let Some(host) = Host::start_with_args(&["--default-subnet-v6", "fd00:17::/64"]) else {
        return;
    };
    let net = network(&host, "bridge");
    assert_eq!(net["ipv6_subnet"], "fd00:17::/64");
    host.container("c1", &[]);
    host.container("c2", &[]);
    assert_eq!(ip6(&host, "c1", "bridge"), "fd00:17::2");
    assert!(ping6(&host, "c1", &ip6(&host, "c2", "bridge")));
}

#[test]
fn bad_ipv6_requests_are_refused_in_one_line_and_change_nothing() {
    let Some(host) = Host::start() else { return };
    dual(&host, "v6", "172.28.0.0/16", SUBNET6);
    let before = host.ok(&["network", "ls"]);
    let cases: [(&[&str], &str); 7] = [
        (&["--ipv6", "n"], "--ipv6 needs an IPv6 --subnet"),
        (&["--subnet", "fd00:30::/64", "n"], "needs --ipv6"),
        (
            &["--ipv6", "--subnet", "fd00:30::1/64", "n"],
            "host bits are set",
        ),
        (&["--ipv6", "--subnet", "fd00:30::/127", "n"], "too small"),
        (
            &["--ipv6", "--subnet", "fd00:28:0:0:1::/80", "n"],
            "overlaps with network v6",
        ),
        (
            &[
                "--ipv6",
                "--subnet",
                "fd00:30::/64",
                "--gateway",
                "fd00:31::1",
                "n",
            ],
            "not a usable address",
        ),
        (
            &[
                "--subnet",
                "fd00:30::/64",
                "--subnet",
                "fd00:31::/64",
                "--ipv6",
                "n",
            ],
            "given twice for IPv6",
        ),
    ];
    for (args, says) in cases {
        let mut all = vec!["network", "create"];
        all.extend_from_slice(args);
        let err = host.fails(&all);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert_eq!(host.ok(&["network", "ls"]), before);
    host.ok(&["container", "create", "--ip6", "fd00:28::9", "plain"]);
    let err = host.fails(&["container", "start", "plain"]);
    assert!(err.contains("has no IPv6 subnet"), "{err}");
    host.ok(&[
        "container",
        "create",
        "--network",
        "v6",
        "--ip6",
        "fd00:28::1",
        "gw",
    ]);
    let err = host.fails(&["container", "start", "gw"]);
    assert!(err.contains("reserved"), "{err}");
    host.ok(&[
        "container",
        "create",
        "--network",
        "v6",
        "--ip6",
        "fd00:99::1",
        "far",
    ]);
    let err = host.fails(&["container", "start", "far"]);
    assert!(err.contains("is not in subnet"), "{err}");
    let devices = host.devices();
    assert!(
        !devices.iter().any(|d| d.starts_with("veth")),
        "no port left behind: {devices:?}"
    );
    let err = host.fails(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:40::/64",
        "-d",
        "macvlan",
        "-o",
        "parent=uplink",
        "m",
    ]);
    assert!(err.contains("only on bridge networks"), "{err}");
}

#[test]
fn check_reports_ipv6_state_changed_behind_the_daemons_back() {
    let Some(host) = Host::start() else { return };
    dual(&host, "v6", "172.28.0.0/16", SUBNET6);
    host.container("c1", &["--network", "v6"]);
    let check = host.netd(&["check"]);
    assert_eq!(check.status, 0, "{}{}", check.stdout, check.stderr);
    let bridge = network(&host, "v6")["bridge"].as_str().unwrap().to_string();
    let gone = host.on_host(&["ip", "-6", "neigh", "del", "fd00:28::2", "dev", &bridge]);
    assert!(gone.ok(), "{gone:?}");
    let check = host.netd(&["check"]);
    assert_ne!(check.status, 0);
    assert!(
        check.stdout.contains("fd00:28::2") && check.stdout.contains("missing"),
        "{}",
        check.stdout
    );
}

/// Gives the uplink IPv6 (`fd00:99::/64`, the outside at `::1`, the host at `::2`), the host
/// an IPv6 default route out of it and the outside a route back to `subnet` through the host:
/// a routed IPv6 network, as with a global prefix.
fn route_ipv6_outside(host: &Host, subnet: &str) {
    for (ok, what) in [
        (
            host.outside(&[
                "ip",
                "-6",
                "addr",
                "add",
                "fd00:99::1/64",
                "dev",
                "outside0",
                "nodad",
            ]),
            "outside address",
        ),
        (
            host.on_host(&[
                "ip",
                "-6",
                "addr",
                "add",
                "fd00:99::2/64",
                "dev",
                "uplink0",
                "nodad",
            ]),
            "uplink address",
        ),
        (
            host.on_host(&["ip", "-6", "route", "add", "default", "via", "fd00:99::1"]),
            "host default route",
        ),
        (
            host.outside(&["ip", "-6", "route", "add", subnet, "via", "fd00:99::2"]),
            "route back",
        ),
    ] {
        assert!(ok.ok(), "{what}: {ok:?}");
    }
}

#[test]
fn ipv6_to_the_outside_is_routed_and_an_internal_network_keeps_it_in() {
    let Some(host) = Host::start() else { return };
    dual(&host, "v6", "172.28.0.0/16", SUBNET6);
    host.ok(&[
        "network",
        "create",
        "--internal",
        "--ipv6",
        "--subnet",
        "172.29.0.0/16",
        "--subnet",
        "fd00:29::/64",
        "inner",
    ]);
    route_ipv6_outside(&host, "fd00:28::/64");
    host.container("c1", &["--network", "v6"]);
    host.container("i1", &["--network", "inner"]);
    assert!(
        ping6(&host, "c1", "fd00:99::1"),
        "routed out, no translation"
    );
    let routes = host.exec("i1", &["busybox", "ip", "-6", "route"]).stdout;
    assert!(
        !routes.contains("default"),
        "no default route on --internal: {routes}"
    );
    // The container routes through its gateway itself: the port still keeps it in.
    let added = host.exec(
        "i1",
        &["ip", "-6", "route", "add", "default", "via", "fd00:29::1"],
    );
    assert!(added.ok(), "{added:?}");
    let before = drops(&host, "i1", "internal-network");
    assert!(!ping6(&host, "i1", "fd00:99::1"), "an --internal network");
    assert!(
        drops(&host, "i1", "internal-network") > before,
        "counted as internal: {}",
        host.ok(&["stats"])
    );
    assert!(
        ping6(&host, "i1", "fd00:29::1"),
        "its gateway stays reachable"
    );
}

#[test]
fn names_outside_are_asked_of_an_upstream_server_over_ipv6() {
    let Some(host) = Host::start() else { return };
    dual(&host, "v6", "172.28.0.0/16", SUBNET6);
    route_ipv6_outside(&host, "fd00:28::/64");
    let _dns = host.outside_background(&[
        "dnsmasq",
        "--no-daemon",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=fd00:99::1",
        "--address=/outside.test/10.99.0.77",
        "--pid-file=",
    ]);
    host.set_upstream("fd00:99::1");
    host.container("c1", &["--network", "v6"]);
    let answer = netd_tests::answered("10.99.0.77", || {
        host.exec("c1", &["busybox", "nslookup", "-type=a", "outside.test"])
            .stdout
    });
    assert!(answer.contains("10.99.0.77"), "{answer}");
}

#[test]
fn network_connect_takes_ip6_and_maps_dump_decodes_the_ipv6_maps() {
    let Some(host) = Host::start() else { return };
    dual(&host, "v6", "172.28.0.0/16", SUBNET6);
    host.container("c1", &[]);
    host.ok(&["network", "connect", "--ip6", "fd00:28::42", "v6", "c1"]);
    assert_eq!(ip6(&host, "c1", "v6"), "fd00:28::42");
    let addrs = host
        .exec("c1", &["busybox", "ip", "-6", "addr", "show", "eth1"])
        .stdout;
    assert!(addrs.contains("fd00:28::42/64"), "{addrs}");
    let routes = host.exec("c1", &["busybox", "ip", "-6", "route"]).stdout;
    assert!(
        !routes.contains("default"),
        "the default route stays on eth0 (bridge): {routes}"
    );
    for (map, shows) in [
        ("NETD_ENDPOINTS6", "fd00:28::42"),
        ("NETD_VETHS6", "fd00:28::42"),
        ("NETD_NEIGHBORS6", "fd00:28::1"),
        ("NETD_NETWORKS6", SUBNET6),
    ] {
        let dump = host.ok(&["maps", "dump", map]);
        assert!(dump.contains(shows), "{map}: {dump}");
    }
    host.ok(&["network", "create", "plain4"]);
    let err = host.fails(&["network", "connect", "--ip6", "fd00:28::43", "plain4", "c1"]);
    assert!(err.contains("has no IPv6 subnet"), "{err}");
    assert!(!host.inspect("c1")["networks"]
        .as_object()
        .unwrap()
        .contains_key("plain4"));
}

#[test]
fn monitor_shows_a_dropped_ipv6_packet_with_its_addresses() {
    let Some(host) = Host::start() else { return };
    dual(&host, "blue", "172.28.0.0/16", SUBNET6);
    dual(&host, "red", "172.29.0.0/16", "fd00:29::/64");
    host.container("c1", &["--network", "blue"]);
    host.container("r1", &["--network", "red"]);
    let mut monitor = std::process::Command::new(netd_tests::netd_bin())
        .arg("--socket")
        .arg(host.socket())
        .args(["monitor", "--drops", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("monitor");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = monitor.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = vec![];
    // The monitor may subscribe after the first packets: ask again until one is reported.
    netd_tests::wait_until(
        "a reported IPv6 drop",
        std::time::Duration::from_secs(10),
        || {
            host.exec(
                "c1",
                &["busybox", "ping", "-6", "-c", "1", "-W", "1", "fd00:29::2"],
            );
            seen.extend(rx.try_iter().filter(|l| !l.is_empty()));
            seen.iter().any(|l| l.contains("isolation"))
        },
    );
    monitor.kill().unwrap();
    monitor.wait().unwrap();
    let event: Value = seen
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["reason"] == "isolation")
        .unwrap();
    assert_eq!(event["container"], "c1", "{event}");
    assert_eq!(event["proto"], "icmpv6", "{event}");
    assert_eq!(
        event["before"], "[fd00:28::2]:0 -> [fd00:29::2]:0",
        "{event}"
    );
}
