//! Overlay networks across hosts (seed 001): hosts on one underlay whose daemons share an etcd
//! in a namespace of its own; an overlay network made on one host is every host's, and its
//! containers reach each other across hosts by address and by name, through netd's VXLAN
//! tunnel, and nothing else reaches them.
use std::time::Duration;

use netd_tests::{fabric::Fabric, wait_until, Host};
use serde_json::Value;

fn network(host: &Host, name: &str) -> Value {
    let v: Value = serde_json::from_str(&host.ok(&["network", "inspect", name])).expect("JSON");
    v[0].clone()
}

/// Waits until `host` has network `name` (it learns of it through the store).
fn wait_network(host: &Host, name: &str) {
    wait_until(
        &format!("{} knows network {name}", host.name),
        Duration::from_secs(10),
        || host.netd(&["network", "inspect", name]).ok(),
    );
}

/// Waits until `container` on `host` reaches `ip` (the other host may not have seen its
/// endpoint yet).
fn wait_reaches(host: &Host, container: &str, ip: &str) {
    wait_until(
        &format!("{container} reaching {ip}"),
        Duration::from_secs(10),
        || host.ping(container, ip),
    );
}

/// Overlay `ov` made on `a`, container `web` on it there and `client` on `b`; returns web's
/// address once the client reaches it.
fn web_and_client(a: &Host, b: &Host) -> String {
    a.ok(&["network", "create", "-d", "overlay", "ov"]);
    wait_network(b, "ov");
    a.ok(&["run", "-d", "--network", "ov", "web"]);
    b.ok(&["run", "-d", "--network", "ov", "client"]);
    let web = a.ip("web", "ov");
    wait_reaches(b, "client", &web);
    web
}

#[test]
fn containers_on_two_hosts_reach_each_other_by_address_and_by_name() {
    let Some(mut fabric) = Fabric::with_etcd() else {
        return;
    };
    let hosts = fabric.cluster_hosts(2, &[]);
    let (a, b) = (&hosts[0], &hosts[1]);
    a.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.0.9.0/24",
        "ov",
    ]);
    wait_network(b, "ov");
    for host in [a, b] {
        let net = network(host, "ov");
        assert_eq!(net["scope"], "global", "{net}");
        assert_eq!(net["driver"], "overlay", "{net}");
        assert_eq!(net["subnet"], "10.0.9.0/24", "{net}");
    }
    let ls = b.ok(&["network", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.contains(" ov ") && l.contains("overlay") && l.ends_with("global")),
        "{ls}"
    );
    a.ok(&[
        "run",
        "-d",
        "--network",
        "ov",
        "--network-alias",
        "www",
        "web",
    ]);
    b.ok(&["run", "-d", "--network", "ov", "client"]);
    let web = a.ip("web", "ov");
    let client = b.ip("client", "ov");
    assert_ne!(web, client, "one address space across hosts");
    wait_reaches(b, "client", &web);
    assert!(a.reaches("web", &client));
    for name in ["web", "www"] {
        let out = b.exec("client", &["busybox", "nslookup", name]);
        assert!(
            out.stdout.contains(&web),
            "{name}: {}{}",
            out.stdout,
            out.stderr
        );
    }
    let mtu = b.exec("client", &["cat", "/sys/class/net/eth0/mtu"]).stdout;
    assert_eq!(mtu.trim(), "1450", "underlay 1500 minus VXLAN's 50");
    let tunnel = b.ok(&["maps", "dump", "tunnel"]);
    assert!(
        tunnel.contains(&web) && tunnel.contains("10.98.0.11"),
        "{tunnel}"
    );
}

#[test]
fn overlays_are_isolated_from_each_other_and_from_bridges_but_a_multi_homed_container_reaches_both()
{
    let Some(mut fabric) = Fabric::with_etcd() else {
        return;
    };
    let hosts = fabric.cluster_hosts(2, &[]);
    let (a, b) = (&hosts[0], &hosts[1]);
    a.ok(&["network", "create", "-d", "overlay", "red"]);
    a.ok(&["network", "create", "-d", "overlay", "blue"]);
    wait_network(b, "blue");
    let (red, blue) = (network(a, "red"), network(a, "blue"));
    assert_ne!(red["subnet"], blue["subnet"], "each its own subnet");
    let vni = |n: &Value| n["options"]["com.docker.network.driver.overlay.vxlanid_list"].clone();
    assert!(
        vni(&red).is_string() && vni(&red) != vni(&blue),
        "each its own VNI: {red} {blue}"
    );
    assert_eq!(
        vni(&network(b, "blue")),
        vni(&blue),
        "the same VNI on every host"
    );
    a.ok(&["network", "create", "local"]);
    a.ok(&["run", "-d", "--network", "red", "r1"]);
    a.ok(&["run", "-d", "--network", "local", "l1"]);
    b.ok(&["run", "-d", "--network", "red", "r2"]);
    b.ok(&["run", "-d", "--network", "blue", "b2"]);
    let (r1, r2, b2) = (a.ip("r1", "red"), b.ip("r2", "red"), b.ip("b2", "blue"));
    wait_reaches(a, "r1", &r2);
    assert!(
        a.blocked("r1", &b2),
        "red does not reach blue on another host"
    );
    assert!(b.blocked("b2", &r1), "blue does not reach red");
    assert!(
        a.blocked("l1", &r2),
        "a bridge network does not reach an overlay"
    );
    a.ok(&["network", "connect", "blue", "r1"]);
    let r1_blue = a.ip("r1", "blue");
    wait_reaches(a, "r1", &b2);
    assert!(a.reaches("r1", &r2), "still on red");
    wait_reaches(b, "b2", &r1_blue);
    let drops = b.ok(&["maps", "dump", "drops"]);
    assert!(drops.contains("isolation"), "{drops}");
}

#[test]
fn two_hosts_allocating_at_once_never_hand_out_an_address_twice() {
    let Some(mut fabric) = Fabric::with_etcd() else {
        return;
    };
    let hosts = fabric.cluster_hosts(2, &[]);
    hosts[0].ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.0.7.0/28",
        "small",
    ]);
    wait_network(&hosts[1], "small");
    // 13 addresses for 2 x 6 containers started at the same moment on both hosts.
    std::thread::scope(|s| {
        for (h, host) in hosts.iter().enumerate() {
            s.spawn(move || {
                for i in 0..6 {
                    host.ok(&["run", "-d", "--network", "small", &format!("c{h}{i}")]);
                }
            });
        }
    });
    let mut addresses: Vec<String> = hosts
        .iter()
        .enumerate()
        .flat_map(|(h, host)| (0..6).map(move |i| host.ip(&format!("c{h}{i}"), "small")))
        .collect();
    addresses.sort();
    let before = addresses.len();
    addresses.dedup();
    assert_eq!(
        addresses.len(),
        before,
        "an address handed out twice: {addresses:?}"
    );
    // And the pool is one pool: the 14th container anywhere finds none left.
    hosts[1].ok(&["run", "-d", "--network", "small", "last"]);
    let err = hosts[0].fails(&["run", "-d", "--network", "small", "none-left"]);
    assert!(err.contains("no free address"), "{err}");
}

#[test]
fn overlay_networks_need_a_cluster_store_and_bad_input_changes_nothing() {
    let Some(host) = Host::start() else { return };
    let err = host.fails(&["network", "create", "-d", "overlay", "ov"]);
    assert!(err.contains("--cluster-store"), "{err}");
    let Some(mut fabric) = Fabric::with_etcd() else {
        return;
    };
    let hosts = fabric.cluster_hosts(2, &[]);
    let (a, b) = (&hosts[0], &hosts[1]);
    a.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.0.5.0/24",
        "ov",
    ]);
    wait_network(b, "ov");
    let err = b.fails(&["network", "create", "-d", "overlay", "ov"]);
    assert!(err.contains("already exists"), "{err}");
    let err = b.fails(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.0.5.128/25",
        "ov2",
    ]);
    assert!(err.contains("overlaps"), "{err}");
    let err = b.fails(&[
        "network",
        "create",
        "-d",
        "overlay",
        "-o",
        "parent=eth1",
        "ov3",
    ]);
    assert!(err.contains("unsupported option"), "{err}");
    let ls = a.ok(&["network", "ls"]);
    assert!(!ls.contains("ov2") && !ls.contains("ov3"), "{ls}");
    // A daemon given a store it cannot use does not start.
    for (args, expected) in [
        (
            vec!["--cluster-store", "consul://h:1"],
            "invalid --cluster-store",
        ),
        (
            vec![
                "--cluster-store",
                "etcd://10.98.0.100:2379",
                "--advertise-addr",
                "10.1.2.3",
            ],
            "not an address of this host",
        ),
    ] {
        let out = netd_tests::run(
            "nsenter",
            &[
                &format!("--net=/run/netns/{}", a.host_ns()),
                &netd_tests::netd_bin().display().to_string(),
                "daemon",
                "--state-dir",
                &a.dir.join("bad-state").display().to_string(),
                "--run-dir",
                &a.dir.join("bad-run").display().to_string(),
                "--bpffs",
                &a.dir.join("bad-bpffs").display().to_string(),
                "--no-cgroup-hooks",
            ]
            .into_iter()
            .chain(args.iter().copied())
            .collect::<Vec<_>>(),
        );
        assert!(!out.ok(), "{args:?} started");
        assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
        assert!(
            !a.dir.join("bad-state").exists(),
            "refused before anything is made"
        );
    }
}

#[test]
fn a_network_with_a_container_on_any_host_cannot_be_removed() {
    let Some(mut fabric) = Fabric::with_etcd() else {
        return;
    };
    let hosts = fabric.cluster_hosts(2, &[]);
    let (a, b) = (&hosts[0], &hosts[1]);
    a.ok(&["network", "create", "-d", "overlay", "ov"]);
    wait_network(b, "ov");
    b.ok(&["run", "-d", "--network", "ov", "held"]);
    let err = a.fails(&["network", "rm", "ov"]);
    assert!(err.contains("held"), "names who has it: {err}");
    assert!(a.netd(&["network", "inspect", "ov"]).ok());
    b.ok(&["container", "rm", "-f", "held"]);
    a.ok(&["network", "rm", "ov"]);
    wait_until(
        "ov gone from the other host",
        Duration::from_secs(10),
        || !b.netd(&["network", "inspect", "ov"]).ok(),
    );
    let devices = b.devices();
    assert!(!devices.iter().any(|d| d.starts_with("ov-")), "{devices:?}");
}

#[test]
fn with_etcd_down_traffic_flows_creates_fail_and_all_resumes_once_it_is_back() {
    let Some(mut fabric) = Fabric::with_etcd() else {
        return;
    };
    let hosts = fabric.cluster_hosts(2, &[]);
    let (a, b) = (&hosts[0], &hosts[1]);
    let web = web_and_client(a, b);
    fabric.stop_etcd();
    assert!(b.reaches("client", &web), "traffic flows without etcd");
    a.ok(&["container", "create", "--network", "ov", "late"]);
    let err = a.fails(&["container", "start", "late"]);
    assert!(err.contains("unreachable"), "{err}");
    let err = b.fails(&["network", "create", "-d", "overlay", "ov2"]);
    assert!(err.contains("unreachable"), "{err}");
    // Daemons restarted while etcd is away start; their containers stay reachable, and still
    // resolve the other host's containers (from the view the daemon kept in its state dir).
    let mut hosts = hosts;
    for host in hosts.iter_mut() {
        host.stop_daemon("KILL");
        host.start_daemon();
    }
    let (a, b) = (&hosts[0], &hosts[1]);
    assert!(b.reaches("client", &web), "after the restarts too");
    let out = b.exec("client", &["busybox", "nslookup", "web"]);
    assert!(out.stdout.contains(&web), "{}{}", out.stdout, out.stderr);
    fabric.start_etcd();
    wait_until(
        "a start that needs the store",
        Duration::from_secs(20),
        || a.netd(&["container", "start", "late"]).ok(),
    );
    let late = a.ip("late", "ov");
    wait_reaches(b, "client", &late);
    b.ok(&["network", "create", "-d", "overlay", "ov2"]);
    wait_network(a, "ov2");
}

#[test]
fn a_host_killed_and_restarted_keeps_its_endpoints_and_the_others_traffic() {
    let Some(mut fabric) = Fabric::with_etcd() else {
        return;
    };
    let mut hosts = fabric.cluster_hosts(2, &[]);
    let web = web_and_client(&hosts[0], &hosts[1]);
    hosts[0].stop_daemon("KILL");
    assert!(
        hosts[1].reaches("client", &web),
        "no daemon needed for traffic"
    );
    hosts[0].start_daemon();
    assert_eq!(hosts[0].ip("web", "ov"), web);
    assert!(hosts[1].reaches("client", &web));
    let tunnel = hosts[1].ok(&["maps", "dump", "tunnel"]);
    assert!(tunnel.contains(&web), "{tunnel}");
    let check = hosts[0].ok(&["check"]);
    assert!(check.contains("state and kernel agree"), "{check}");
}

#[test]
fn a_host_gone_for_good_loses_its_endpoints_on_the_others_after_its_lease() {
    let Some(mut fabric) = Fabric::with_etcd() else {
        return;
    };
    let mut hosts = fabric.cluster_hosts(2, &["--cluster-lease-ttl", "3"]);
    hosts[0].ok(&["network", "create", "-d", "overlay", "ov"]);
    wait_network(&hosts[1], "ov");
    hosts[0].ok(&["run", "-d", "--network", "ov", "web"]);
    let web = hosts[0].ip("web", "ov");
    let known = |h: &Host| h.ok(&["maps", "dump", "tunnel"]).contains(&web);
    wait_until("the endpoint known", Duration::from_secs(10), || {
        known(&hosts[1])
    });
    hosts[0].stop_daemon("KILL");
    wait_until(
        "the endpoint gone after the lease",
        Duration::from_secs(15),
        || !known(&hosts[1]),
    );
    // The host comes back: its endpoints are written again.
    hosts[0].start_daemon();
    wait_until("the endpoint back", Duration::from_secs(10), || {
        known(&hosts[1])
    });
}

#[test]
fn published_ports_and_egress_of_an_overlay_container_go_through_its_own_host() {
    let Some(mut fabric) = Fabric::with_etcd() else {
        return;
    };
    let hosts = fabric.cluster_hosts(1, &[]);
    let a = &hosts[0];
    a.ok(&["network", "create", "-d", "overlay", "ov"]);
    a.ok(&["run", "-d", "--network", "ov", "-p", "8080:80", "web"]);
    a.ok(&[
        "exec",
        "-d",
        "web",
        "--",
        "socat",
        "TCP-LISTEN:80,fork,reuseaddr",
        "SYSTEM:echo $SOCAT_PEERADDR",
    ]);
    a.wait_listening("web", "tcp", 80);
    let target = format!("TCP:{}:8080,connect-timeout=2", netd_tests::UPLINK_IP);
    let got = a.outside(&["socat", "-T2", "-", &target]).stdout;
    assert_eq!(
        got.trim(),
        netd_tests::OUTSIDE_IP,
        "DNAT, the client address kept"
    );
    assert!(a.reaches("web", netd_tests::OUTSIDE_IP), "egress SNAT");
}

/// `netd_vxlan`'s packet counters on `host`, received and sent.
fn vxlan_device_packets(host: &Host) -> (u64, u64) {
    let out = host.on_host(&["ip", "-j", "-s", "link", "show", "netd_vxlan"]);
    let v: Value = serde_json::from_str(&out.stdout).expect("ip -j");
    let stats = &v[0]["stats64"];
    let n = |way: &str| stats[way]["packets"].as_u64().expect("a count");
    (n("rx"), n("tx"))
}

#[test]
fn the_programs_carry_the_tunnel_and_a_packet_too_big_for_it_gets_fragmentation_needed() {
    let Some(mut fabric) = Fabric::with_etcd() else {
        return;
    };
    let hosts = fabric.cluster_hosts(2, &["--metrics", "9400"]);
    let (a, b) = (&hosts[0], &hosts[1]);
    let web = web_and_client(a, b);
    for host in [a, b] {
        assert_eq!(
            vxlan_device_packets(host),
            (0, 0),
            "the programs encapsulate and decapsulate pings, not the kernel's VXLAN device"
        );
    }

    // The container's MTU raised past what the tunnel carries. Without DF the kernel's VXLAN
    // device takes the packet and fragments the outer packet.
    b.exec("client", &["ip", "link", "set", "eth0", "mtu", "1500"]);
    let big = ["ping", "-c", "1", "-W", "2", "-s", "1472"];
    let out = b.exec("client", &[&big[..], &["-M", "dont", &web]].concat());
    assert!(out.ok(), "{}{}", out.stdout, out.stderr);
    // With DF it is answered as a router would, and the container's kernel remembers the path
    // MTU.
    let out = b.exec("client", &[&big[..], &["-M", "do", &web]].concat());
    assert!(
        out.stdout.contains("Frag needed") && out.stdout.contains("mtu = 1450"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let route = b.exec("client", &["ip", "route", "get", &web]).stdout;
    assert!(route.contains("mtu 1450"), "path MTU recorded: {route}");
    let fits = ["ping", "-c", "1", "-W", "2", "-s", "1422", "-M", "do", &web];
    assert!(b.exec("client", &fits).ok(), "1450 bytes fit the tunnel");
    let stats = b.ok(&["maps", "dump", "tunnel_stats"]);
    let count = |what: &str| -> u64 {
        let line = stats.lines().find(|l| l.starts_with(what)).expect(what);
        line.split_whitespace()
            .last()
            .unwrap()
            .parse()
            .expect("a count")
    };
    assert_eq!(count("too-big"), 1, "{stats}");
    assert_eq!(count("fragmented"), 1, "{stats}");
    let metrics = b
        .on_host(&["busybox", "wget", "-qO-", "http://127.0.0.1:9400/metrics"])
        .stdout;
    assert!(
        metrics.contains("netd_tunnel_oversize_total{fate=\"frag-needed\"} 1"),
        "{metrics}"
    );
}
