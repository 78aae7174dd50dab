//! A network holds more containers than its bridge has ports (a Linux bridge has 1,023): the
//! containers after the last port get routed ports of their own (no bridge master, the gateway's
//! MAC, a /32 route to the container) and reach, and are reached by, everything the others are:
//! the containers on the bridge (straight from veth to veth), the host, the outside, their
//! published ports from outside; `netd check` finds nothing wrong, also after a restart.

use netd_tests::{netd_bin, Host, OUTSIDE_IP, UPLINK_IP};

/// Containers the bridge takes, then two more.
const BRIDGE_PORTS: usize = 1023;
const NETWORK: &str = "big";

/// The bridge ports of the host's bridge `bridge`.
fn ports_of(host: &Host, bridge: &str) -> usize {
    host.on_host(&["ip", "-o", "link", "show", "master", bridge])
        .stdout
        .lines()
        .count()
}

/// The host-side veth of container `name`, from `netd maps dump endpoints`.
fn veth_of(host: &Host, name: &str) -> String {
    let dump = host.ok(&["maps", "dump", "endpoints"]);
    dump.lines()
        .find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.get(2) == Some(&name)).then(|| cols[1].to_string())
        })
        .unwrap_or_else(|| panic!("no endpoint of {name}: {dump}"))
}

#[test]
fn containers_beyond_the_bridges_last_port_get_routed_ports_and_reach_everything() {
    let Some(mut host) = Host::start() else {
        return;
    };
    host.ok(&["network", "create", "--subnet", "10.70.0.0/20", NETWORK]);
    let inspect: serde_json::Value =
        serde_json::from_str(&host.ok(&["network", "inspect", NETWORK])).expect("JSON");
    let bridge = inspect[0]["devices"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no bridge: {inspect}"))
        .to_string();
    // One shell loop: a thousand `netd run`s without a test-harness round trip each.
    let script = format!(
        "for i in $(seq 0 {last}); do {bin} --socket {socket} run --network {NETWORK} c$i >/dev/null || exit 1; done",
        last = BRIDGE_PORTS,
        bin = netd_bin().display(),
        socket = host.socket().display(),
    );
    let made = host.on_host(&["sh", "-c", &script]);
    assert!(made.ok(), "{made:?}");
    host.container("web", &["--network", NETWORK, "-p", "8080:7000"]);
    assert_eq!(ports_of(&host, &bridge), BRIDGE_PORTS, "the bridge is full");

    for routed in [format!("c{BRIDGE_PORTS}"), "web".to_string()] {
        let veth = veth_of(&host, &routed);
        let link = host.on_host(&["ip", "-o", "link", "show", &veth]).stdout;
        assert!(!link.contains(" master "), "{link}");
        let route = host.on_host(&["ip", "route", "show", "dev", &veth]).stdout;
        let ip = host.ip(&routed, NETWORK);
        assert!(route.contains(&ip), "{route}");
    }
    let (first, beyond) = (host.ip("c0", NETWORK), host.ip("web", NETWORK));
    assert!(host.reaches("web", &first), "to a container on the bridge");
    assert!(
        host.reaches("c0", &beyond),
        "from a container on the bridge"
    );
    let gateway = "10.70.0.1";
    assert!(host.reaches("web", gateway), "to the host");
    assert!(host.reaches("web", OUTSIDE_IP), "egress");
    let from_host = host.on_host(&["ping", "-c", "1", "-W", "1", &beyond]);
    assert!(from_host.ok(), "from the host: {from_host:?}");

    host.ok(&[
        "exec", "-d", "web", "--", "busybox", "nc", "-ll", "-p", "7000", "-e", "echo", "hi",
    ]);
    host.wait_listening("web", "tcp", 7000);
    let published = host.outside(&["busybox", "nc", "-w", "2", UPLINK_IP, "8080"]);
    assert_eq!(published.stdout.trim(), "hi", "{published:?}");
    host.ok(&["check"]);

    // A restarted daemon keeps the routed ports as they are.
    host.stop_daemon("TERM");
    host.start_daemon();
    host.ok(&["check"]);
    assert!(host.reaches("c0", &beyond));

    // Removing a container frees its port: the next container is on the bridge again.
    let veth = veth_of(&host, "c0");
    host.ok(&["container", "rm", "-f", "c0"]);
    assert!(!host.on_host(&["ip", "link", "show", &veth]).ok());
    host.container("late", &["--network", NETWORK]);
    assert_eq!(ports_of(&host, &bridge), BRIDGE_PORTS);
    let late = veth_of(&host, "late");
    let link = host.on_host(&["ip", "-o", "link", "show", &late]).stdout;
    assert!(link.contains(&format!(" master {bridge} ")), "{link}");
}
