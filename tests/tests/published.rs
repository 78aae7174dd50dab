//! Published ports and egress NAT, done by eBPF with no iptables rule and no proxy: reachable
//! from outside (the container sees the client), from host processes on loopback and host
//! addresses (socket hooks), from containers through host addresses (hairpin), only on the
//! address they are bound to; egress leaves with the uplink's address; live connections survive
//! a daemon restart.
use std::{
    process::{Command, Stdio},
    thread::sleep,
    time::Duration,
};

use netd_tests::{netd_bin, Host, OUTSIDE_IP, UPLINK_IP};

/// A TCP server in `container` on `port` that answers every connection with the client's
/// address as it sees it.
fn peer_echo(host: &Host, container: &str, port: u16) {
    let listen = format!("TCP-LISTEN:{port},fork,reuseaddr");
    host.ok(&[
        "exec",
        "-d",
        container,
        "--",
        "socat",
        &listen,
        "SYSTEM:echo $SOCAT_PEERADDR",
    ]);
    host.wait_listening(container, "tcp", port);
}

/// Calls `f` until it returns `expected` (a server started with `exec -d` may need a moment to
/// listen on a loaded machine), at most 30 times; returns the last answer.
fn until(expected: impl AsRef<str>, f: impl Fn() -> String) -> String {
    let mut got = f();
    for _ in 0..30 {
        if got == expected.as_ref() {
            break;
        }
        sleep(Duration::from_millis(100));
        got = f();
    }
    got
}

/// What a TCP client in the outside namespace gets from `ip:port`.
fn from_outside(host: &Host, ip: &str, port: u16) -> String {
    host.outside(&[
        "socat",
        "-T2",
        "-",
        &format!("TCP:{ip}:{port},connect-timeout=2"),
    ])
    .stdout
    .trim()
    .to_string()
}

/// What a TCP client in a container gets from `ip:port`.
fn from_container(host: &Host, container: &str, ip: &str, port: u16) -> String {
    let target = format!("TCP:{ip}:{port},connect-timeout=2");
    host.exec(container, &["socat", "-T2", "-", &target])
        .stdout
        .trim()
        .to_string()
}

/// What a host process (in the test's cgroup) gets from `ip:port`.
fn from_host(host: &Host, ip: &str, port: u16) -> String {
    host.on_host_in_cgroup(&format!(
        "socat -T2 - TCP:{ip}:{port},connect-timeout=2 </dev/null"
    ))
    .stdout
    .trim()
    .to_string()
}

#[test]
fn a_published_port_is_reachable_from_outside_and_the_container_sees_the_client() {
    let Some(host) = Host::start() else { return };
    host.container("web", &["-p", "8080:80"]);
    peer_echo(&host, "web", 80);
    assert_eq!(
        until(OUTSIDE_IP, || from_outside(&host, UPLINK_IP, 8080)),
        OUTSIDE_IP
    );
    assert_eq!(
        host.ok(&["container", "port", "web"]),
        "80/tcp -> 0.0.0.0:8080\n"
    );
    let dump = host.ok(&["maps", "dump", "ports"]);
    assert!(
        dump.contains("0.0.0.0:8080") && dump.contains("172.17.0.2:80") && dump.contains("web"),
        "{dump}"
    );
    let nat = host.ok(&["maps", "dump", "nat"]);
    assert!(
        nat.contains("dnat") && nat.contains(&format!("{OUTSIDE_IP}:")),
        "{nat}"
    );
    assert!(
        host.on_host(&[
            "sh",
            "-c",
            "iptables-save 2>/dev/null; nft list ruleset 2>/dev/null"
        ])
        .stdout
        .trim()
        .is_empty(),
        "no firewall rules"
    );
}

/// IPv4 packets the host namespace has forwarded (routed) so far.
fn forwarded(host: &Host) -> u64 {
    let snmp = host.on_host(&["cat", "/proc/net/snmp"]).stdout;
    let mut ip = snmp.lines().filter(|l| l.starts_with("Ip:"));
    let (names, values) = (ip.next().unwrap(), ip.next().unwrap());
    let column = names
        .split_whitespace()
        .position(|n| n == "ForwDatagrams")
        .expect("Ip: ForwDatagrams in /proc/net/snmp");
    values
        .split_whitespace()
        .nth(column)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn published_port_traffic_skips_the_hosts_routing_both_ways() {
    let Some(host) = Host::start() else { return };
    host.container("web", &["-p", "8080:80"]);
    peer_echo(&host, "web", 80);
    assert_eq!(
        until(OUTSIDE_IP, || from_outside(&host, UPLINK_IP, 8080)),
        OUTSIDE_IP
    );
    let before = forwarded(&host);
    for _ in 0..5 {
        assert_eq!(from_outside(&host, UPLINK_IP, 8080), OUTSIDE_IP);
    }
    // Each connection is several packets each way; through the host's routing, every one of
    // them would have been counted (fifteen and more for these five).
    let routed = forwarded(&host) - before;
    assert!(routed < 5, "the host routed {routed} packets of the flows");
}

#[test]
fn egress_leaves_with_the_uplink_address_and_replies_come_back() {
    let Some(host) = Host::start() else { return };
    host.container("client", &[]);
    let _server = host.outside_background(&[
        "socat",
        "TCP-LISTEN:9999,fork,reuseaddr",
        "SYSTEM:echo $SOCAT_PEERADDR",
    ]);
    host.wait_listening_outside("tcp", 9999);
    assert_eq!(
        until(UPLINK_IP, || from_container(
            &host, "client", OUTSIDE_IP, 9999
        )),
        UPLINK_IP
    );
    assert!(host.reaches("client", OUTSIDE_IP), "ICMP is translated too");
    let nat = host.ok(&["maps", "dump", "nat"]);
    assert!(nat.contains("snat") && nat.contains("172.17.0.2:"), "{nat}");
}

#[test]
fn udp_ports_are_published_too() {
    let Some(host) = Host::start() else { return };
    host.container("dns", &["-p", "5353:53/udp"]);
    host.ok(&[
        "exec",
        "-d",
        "dns",
        "--",
        "socat",
        "UDP-RECVFROM:53,fork",
        "SYSTEM:echo pong-$SOCAT_PEERADDR",
    ]);
    host.wait_listening("dns", "udp", 53);
    let out = host.outside(&[
        "sh",
        "-c",
        // -t: after its stdin ends socat waits only 0.5 s for the answer by default.
        &format!("echo ping | socat -T2 -t3 - UDP:{UPLINK_IP}:5353"),
    ]);
    assert_eq!(out.stdout.trim(), format!("pong-{OUTSIDE_IP}"));
    assert_eq!(
        host.ok(&["container", "port", "dns"]),
        "53/udp -> 0.0.0.0:5353\n"
    );
}

#[test]
fn host_processes_reach_published_ports_on_loopback_and_host_addresses() {
    let Some(host) = Host::start() else { return };
    host.container("web", &["-p", "8080:80"]);
    peer_echo(&host, "web", 80);
    assert_eq!(
        until("172.17.0.1", || from_host(&host, "127.0.0.1", 8080)),
        "172.17.0.1"
    );
    assert_eq!(
        until("172.17.0.1", || from_host(&host, UPLINK_IP, 8080)),
        "172.17.0.1"
    );
    let outside_cgroup =
        host.on_host(&["socat", "-T1", "-", "TCP:127.0.0.1:8080,connect-timeout=1"]);
    assert!(
        outside_cgroup.stdout.is_empty(),
        "processes outside the hooked cgroup are left alone"
    );
}

#[test]
fn containers_reach_published_ports_through_host_addresses_even_their_own() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "other"]);
    host.container("web", &["-p", "8080:80"]);
    host.container("same", &[]);
    host.container("far", &["--network", "other"]);
    peer_echo(&host, "web", 80);
    assert_eq!(
        until("172.17.0.3", || from_container(
            &host, "same", UPLINK_IP, 8080
        )),
        "172.17.0.3"
    );
    assert_eq!(
        until("172.17.0.3", || from_container(
            &host,
            "same",
            "172.17.0.1",
            8080
        )),
        "172.17.0.3"
    );
    assert_eq!(
        until("172.18.0.2", || from_container(
            &host, "far", UPLINK_IP, 8080
        )),
        "172.18.0.2",
        "from another network"
    );
    assert_eq!(
        until("172.17.0.1", || from_container(
            &host, "web", UPLINK_IP, 8080
        )),
        "172.17.0.1",
        "hairpin to itself"
    );
    assert!(
        host.blocked("far", "172.17.0.2"),
        "isolation still holds for the container address"
    );
}

#[test]
fn a_port_bound_to_an_address_answers_only_there() {
    let Some(host) = Host::start() else { return };
    host.container("loc", &["-p", "127.0.0.1:8081:80"]);
    host.container("upl", &["-p", &format!("{UPLINK_IP}:8082:80")]);
    host.container("peer", &[]);
    peer_echo(&host, "loc", 80);
    peer_echo(&host, "upl", 80);
    assert_eq!(
        until("172.17.0.1", || from_host(&host, "127.0.0.1", 8081)),
        "172.17.0.1"
    );
    assert_eq!(
        from_outside(&host, UPLINK_IP, 8081),
        "",
        "127.0.0.1 only: not from outside"
    );
    assert_eq!(
        from_container(&host, "peer", UPLINK_IP, 8081),
        "",
        "127.0.0.1 only: not from containers"
    );
    assert_eq!(
        until(OUTSIDE_IP, || from_outside(&host, UPLINK_IP, 8082)),
        OUTSIDE_IP
    );
    assert_eq!(
        from_container(&host, "peer", "172.17.0.1", 8082),
        "",
        "bound to the uplink address only"
    );
    assert_eq!(
        from_host(&host, "127.0.0.1", 8082),
        "",
        "bound to the uplink address only"
    );
}

#[test]
fn every_publish_form_is_honoured() {
    let Some(host) = Host::start() else { return };
    host.container(
        "aa",
        &[
            "-p",
            "80",
            "-p",
            "127.0.0.1::81",
            "-p",
            "8000-8001:82-83",
            "-p",
            "9000-9010:84/udp",
        ],
    );
    let ports = host.ok(&["container", "port", "aa"]);
    let lines: Vec<&str> = ports.lines().collect();
    assert_eq!(lines.len(), 5, "{ports}");
    assert!(lines[0].starts_with("80/tcp -> 0.0.0.0:"), "{ports}");
    assert!(lines[1].starts_with("81/tcp -> 127.0.0.1:"), "{ports}");
    assert_eq!(lines[2], "82/tcp -> 0.0.0.0:8000");
    assert_eq!(lines[3], "83/tcp -> 0.0.0.0:8001");
    assert_eq!(lines[4], "84/udp -> 0.0.0.0:9000");
    let ephemeral: u16 = lines[0].rsplit(':').next().unwrap().parse().unwrap();
    assert!((32768..=60999).contains(&ephemeral));
    // `docker port NAME PORT[/PROTO]`: the host sides of that one port.
    assert_eq!(
        host.ok(&["container", "port", "aa", "83"]),
        "0.0.0.0:8001\n"
    );
    assert_eq!(
        host.ok(&["container", "port", "aa", "84/udp"]),
        "0.0.0.0:9000\n"
    );
    let err = host.fails(&["container", "port", "aa", "84"]);
    assert_eq!(err, "Error: No public port '84/tcp' published for aa");
    peer_echo(&host, "aa", 80);
    peer_echo(&host, "aa", 83);
    assert_eq!(
        until(OUTSIDE_IP, || from_outside(&host, UPLINK_IP, ephemeral)),
        OUTSIDE_IP
    );
    assert_eq!(
        until(OUTSIDE_IP, || from_outside(&host, UPLINK_IP, 8001)),
        OUTSIDE_IP
    );

    host.container("bb", &["-P", "--expose", "7000", "--expose", "7001/udp"]);
    let ports = host.ok(&["container", "port", "bb"]);
    assert!(
        ports.contains("7000/tcp -> 0.0.0.0:") && ports.contains("7001/udp -> 0.0.0.0:"),
        "{ports}"
    );
}

#[test]
fn conflicting_and_malformed_publish_requests_are_refused() {
    let Some(host) = Host::start() else { return };
    host.container("first", &["-p", "8080:80"]);
    host.ok(&["network", "create", "--internal", "priv"]);
    let before = host.ok(&["maps", "dump", "ports"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["container", "create", "-p", "8080:80", "xx"],
            "port is already allocated",
        ),
        (
            &["container", "create", "-p", "127.0.0.1:8080:80", "xx"],
            "port is already allocated",
        ),
        (
            &["container", "create", "-p", "80:abc", "xx"],
            "invalid port spec",
        ),
        (
            &["container", "create", "-p", "8000-8002:80-81", "xx"],
            "invalid ranges",
        ),
        (
            &["container", "create", "-p", "80/sctp", "xx"],
            "invalid port spec",
        ),
        (
            &["container", "create", "--network", "priv", "-p", "80", "xx"],
            "internal",
        ),
        (
            &["container", "create", "--network", "host", "-p", "80", "xx"],
            "bridge network",
        ),
        (&["container", "publish", "first", "8080:81"], "already"),
        (
            &["container", "unpublish", "first", "9999:80"],
            "does not publish",
        ),
    ];
    for (args, expected) in cases {
        let err = host.fails(args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    assert_eq!(host.ok(&["maps", "dump", "ports"]), before);
    assert!(!host.ok(&["container", "ls"]).contains(" x "));
}

#[test]
fn publish_and_unpublish_change_a_running_container_and_leave_its_connections_alone() {
    let Some(host) = Host::start() else { return };
    host.container("svc", &[]);
    host.ok(&[
        "exec",
        "-d",
        "svc",
        "--",
        "socat",
        "TCP-LISTEN:80,fork,reuseaddr",
        "EXEC:cat",
    ]);
    host.ok(&["container", "publish", "svc", "9090:80"]);
    assert_eq!(
        host.ok(&["container", "port", "svc"]),
        "80/tcp -> 0.0.0.0:9090\n"
    );
    host.wait_listening("svc", "tcp", 80);
    let stream = outside_stream(&host, 9090, 20);
    sleep(Duration::from_millis(700));
    host.ok(&["container", "unpublish", "svc", "9090:80"]);
    assert_eq!(host.ok(&["container", "port", "svc"]), "");
    assert_eq!(
        from_outside(&host, UPLINK_IP, 9090),
        "",
        "new connections are refused"
    );
    let out = stream.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        20,
        "the open connection went on"
    );
}

/// A client in the outside namespace sending `lines` lines, one per 100 ms, over one TCP
/// connection to the uplink's `port`, echoed back.
fn outside_stream(host: &Host, port: u16, lines: u32) -> std::process::Child {
    let script = format!("for i in $(seq 1 {lines}); do echo line$i; sleep 0.1; done | socat -T3 - TCP:{UPLINK_IP}:{port}");
    Command::new("ip")
        .args(["netns", "exec", &host.outside_ns(), "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("outside client")
}

#[test]
fn published_and_egress_connections_survive_a_daemon_kill_and_restart() {
    let Some(mut host) = Host::start() else {
        return;
    };
    host.container("svc", &["-p", "9090:80"]);
    host.ok(&[
        "exec",
        "-d",
        "svc",
        "--",
        "socat",
        "TCP-LISTEN:80,fork,reuseaddr",
        "EXEC:cat",
    ]);
    let _echo = host.outside_background(&["socat", "TCP-LISTEN:7777,fork,reuseaddr", "EXEC:cat"]);
    host.wait_listening("svc", "tcp", 80);
    host.wait_listening_outside("tcp", 7777);
    let inbound = outside_stream(&host, 9090, 25);
    let script =
        "for i in $(seq 1 25); do echo out$i; sleep 0.1; done | socat -T3 - TCP:10.99.0.1:7777";
    let outbound = Command::new(netd_bin())
        .arg("--socket")
        .arg(host.socket())
        .args(["exec", "svc", "--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("egress client");
    sleep(Duration::from_millis(800));
    host.stop_daemon("KILL");
    sleep(Duration::from_millis(500));
    host.start_daemon();
    let inbound = inbound.wait_with_output().unwrap();
    let outbound = outbound.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&inbound.stdout).lines().count(),
        25,
        "published-port connection"
    );
    assert_eq!(
        String::from_utf8_lossy(&outbound.stdout).lines().count(),
        25,
        "egress connection"
    );
}

#[test]
fn internal_networks_have_no_egress() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "--internal", "priv"]);
    host.container("in", &["--network", "priv"]);
    host.container("out", &[]);
    assert!(host.blocked("in", OUTSIDE_IP));
    assert!(host.reaches("out", OUTSIDE_IP));
}

#[test]
fn icmp_errors_about_translated_flows_reach_the_sender() {
    let Some(host) = Host::start() else { return };
    host.container("cc", &["-p", "5353:53/udp"]);
    // Egress to a closed outside port: the outside's port-unreachable comes back to the container.
    let out = host.exec("cc", &["sh", "-c", "echo x | socat -T3 - UDP:10.99.0.1:9"]);
    assert!(out.stderr.contains("Connection refused"), "{out:?}");
    // Inbound to a published port nobody listens on: the container's error reaches the client.
    let out = host.outside(&[
        "sh",
        "-c",
        &format!("echo x | socat -T3 - UDP:{UPLINK_IP}:5353"),
    ]);
    assert!(out.stderr.contains("Connection refused"), "{out:?}");
}

#[test]
fn idle_flows_expire_from_the_nat_table() {
    let Some(host) = Host::start_with_args(&["--nat-timeout-icmp", "1", "--nat-timeout-udp", "1"])
    else {
        return;
    };
    host.container("cc", &[]);
    assert!(host.reaches("cc", OUTSIDE_IP));
    let nat = host.ok(&["maps", "dump", "nat"]);
    assert!(nat.contains("icmp"), "{nat}");
    // Housekeeping runs every 5 s; the flow is idle after 1 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while host.ok(&["maps", "dump", "nat"]).contains("icmp") {
        assert!(
            std::time::Instant::now() < deadline,
            "ICMP flow did not expire"
        );
        sleep(Duration::from_millis(500));
    }
    assert!(
        host.reaches("cc", OUTSIDE_IP),
        "new flows are translated again"
    );
}
