//! Address resolution on netd's bridges: containers' ARP requests for their gateway and for each
//! other are answered at their own port, so a broadcast never floods the bridge; the bridge keeps
//! the MAC of its gateway address however its ports come and go.
use netd_tests::Host;

/// The default network's gateway and the MAC netd gives its bridge.
const GATEWAY: &str = "172.17.0.1";
const GATEWAY_MAC: &str = "02:42:ac:11:00:01";

#[test]
fn arp_requests_for_the_gateway_and_neighbours_are_answered_without_flooding_the_bridge() {
    let Some(host) = Host::start() else { return };
    for name in ["asker", "target", "bystander"] {
        host.container(name, &[]);
    }
    let target = host.ip("target", "bridge");

    let seen = std::thread::scope(|s| {
        let capture = s.spawn(|| arp_frames_seen_by(&host, "bystander", 3));
        std::thread::sleep(std::time::Duration::from_millis(800));
        let reply = arping(&host, "asker", &target);
        assert!(reply.contains("02:42:ac:11:00:03"), "{reply}");
        let reply = arping(&host, "asker", GATEWAY);
        assert!(reply.to_lowercase().contains(GATEWAY_MAC), "{reply}");
        capture.join().unwrap()
    });
    assert_eq!(
        seen, 0,
        "the requests reached a container they were not for"
    );
    let dump = host.ok(&["maps", "dump", "neighbors"]);
    assert!(
        dump.contains(&format!("{GATEWAY} ")) && dump.contains("gateway of bridge"),
        "{dump}"
    );
}

#[test]
fn the_bridge_keeps_its_gateways_mac_as_containers_come_and_go() {
    let Some(host) = Host::start() else { return };
    host.container("first", &[]);
    assert_eq!(bridge_mac(&host), GATEWAY_MAC);
    host.ok(&["container", "rm", "-f", "first"]);
    host.container("second", &[]);
    assert_eq!(bridge_mac(&host), GATEWAY_MAC);
}

/// A thousand ports on one bridge: a flooded broadcast would queue more copies at once than a
/// CPU's receive backlog holds (`net.core.netdev_max_backlog`, 1000 by default), and the
/// gateway's answer, queued behind them, would be dropped every time.
#[test]
fn a_container_among_a_thousand_on_one_bridge_still_resolves_its_gateway() {
    let Some(host) = Host::start() else { return };
    host.container("oldest", &[]);
    for i in 0..1010 {
        host.container(&format!("c{i}"), &[]);
    }
    host.exec("oldest", &["busybox", "ip", "neigh", "flush", "all"]);
    assert!(host.reaches("oldest", GATEWAY));
}

/// One ARP request from `container` for `ip`; the reply line(s).
fn arping(host: &Host, container: &str, ip: &str) -> String {
    let out = host.exec(
        container,
        &["busybox", "arping", "-c", "1", "-w", "2", "-I", "eth0", ip],
    );
    assert!(out.ok(), "no ARP reply for {ip}: {out:?}");
    out.stdout
}

/// ARP frames `container`'s eth0 receives during the next `secs` seconds (a packet socket).
fn arp_frames_seen_by(host: &Host, container: &str, secs: u32) -> u64 {
    let script = format!(
        "import socket, time\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))\n\
         s.bind(('eth0', 0))\n\
         s.settimeout(0.1)\n\
         n, end = 0, time.monotonic() + {secs}\n\
         while time.monotonic() < end:\n\
         \x20   try:\n\
         \x20       s.recv(64)\n\
         \x20       n += 1\n\
         \x20   except socket.timeout:\n\
         \x20       pass\n\
         print(n)\n"
    );
    let out = host.exec(container, &["python3", "-c", &script]);
    assert!(out.ok(), "packet capture in {container}: {out:?}");
    out.stdout.trim().parse().unwrap()
}

/// The MAC of the default network's bridge.
fn bridge_mac(host: &Host) -> String {
    let out = host.on_host(&["cat", "/sys/class/net/netd0/address"]);
    out.stdout.trim().to_string()
}
