//! The straight paths of the datapath on one host, seen by the devices' own counters: a packet
//! from one container to another of its network goes from the sender's veth straight into the
//! receiver, so the receiver's host-side veth never transmits it (on the bridge's path it
//! would); an egress flow's packets after its first leave from the container's veth straight
//! out of the uplink, so the bridge never passes them up to the host, and its replies go from the
//! uplink straight into the container, so its host-side veth never transmits them either.
//! Isolation and anti-spoofing on these paths are checked in `containers.rs` (the containers
//! there are on one host too).

use netd_tests::{Host, OUTSIDE_IP};

/// The number of packets `device` (in the host's namespace) has counted as `counter`
/// (`tx_packets`, `rx_packets`).
fn packets(host: &Host, device: &str, counter: &str) -> u64 {
    let path = format!("/sys/class/net/{device}/statistics/{counter}");
    let out = host.on_host(&["cat", &path]);
    out.stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{path}: {out:?}"))
}

/// The host-side veth of the container interface at `ip`, as `netd maps dump endpoints` shows
/// it (columns: ifindex, veth, container, network, address, ...).
fn veth_of(host: &Host, ip: &str) -> String {
    let dump = host.ok(&["maps", "dump", "endpoints"]);
    dump.lines()
        .find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.get(4) == Some(&ip)).then(|| cols[1].to_string())
        })
        .unwrap_or_else(|| panic!("no endpoint at {ip}: {dump}"))
}

/// 40 pings from `container` to `ip`, 10 ms apart; all answered.
fn pings(host: &Host, container: &str, ip: &str) {
    let out = host.exec(
        container,
        &[
            "busybox", "ping", "-q", "-c", "40", "-i", "0.01", "-W", "2", ip,
        ],
    );
    assert!(
        out.ok() && out.stdout.contains("40 packets received"),
        "{out:?}"
    );
}

#[test]
fn containers_of_one_network_reach_each_other_past_the_bridge() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "--subnet", "10.61.0.0/24", "front"]);
    host.container("aa", &["--network", "front"]);
    host.container("bb", &["--network", "front"]);
    let (a, b) = (host.ip("aa", "front"), host.ip("bb", "front"));
    let (a_veth, b_veth) = (veth_of(&host, &a), veth_of(&host, &b));
    assert!(host.reaches("aa", &b));
    let veths = host.ok(&["maps", "dump", "veths"]);
    assert!(
        veths.lines().any(|l| l.contains(&b) && l.contains(&b_veth)),
        "{veths}"
    );

    let into_b = packets(&host, &b_veth, "tx_packets");
    let into_a = packets(&host, &a_veth, "tx_packets");
    pings(&host, "aa", &b);
    let into_b = packets(&host, &b_veth, "tx_packets") - into_b;
    let into_a = packets(&host, &a_veth, "tx_packets") - into_a;
    assert!(into_b < 5, "{into_b} of 40 requests went through b's veth");
    assert!(into_a < 5, "{into_a} of 40 replies went through a's veth");
}

#[test]
fn egress_flows_leave_from_the_containers_port_and_replies_come_straight_back() {
    let Some(host) = Host::start() else { return };
    host.container("aa", &[]);
    let a = host.ip("aa", "bridge");
    let a_veth = veth_of(&host, &a);
    assert!(host.reaches("aa", OUTSIDE_IP));

    let up_from_bridge = packets(&host, "netd0", "rx_packets");
    let into_a = packets(&host, &a_veth, "tx_packets");
    // One flow (ping keeps its identifier): only its first packet takes the host's path.
    pings(&host, "aa", OUTSIDE_IP);
    let up_from_bridge = packets(&host, "netd0", "rx_packets") - up_from_bridge;
    let into_a = packets(&host, &a_veth, "tx_packets") - into_a;
    assert!(
        up_from_bridge < 5,
        "{up_from_bridge} of 40 requests went up the bridge"
    );
    assert!(into_a < 5, "{into_a} of 40 replies went through a's veth");
    // Translated all the same: the outside saw the uplink's address (its only route back).
    let nat = host.ok(&["maps", "dump", "nat"]);
    assert!(nat.contains(&a), "{nat}");
}
