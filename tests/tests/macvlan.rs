//! Macvlan networks across two hosts, seed 003 command for command: two host namespaces whose
//! `eth1` sit on one switch, each with its own daemon; `mac_net1` on `eth1` and `mac_net2` on the
//! 802.1q sub-interface `eth1.1`; containers on one network reach each other across the hosts,
//! and nothing joins the two networks at layer 2. Then the rest a user relies on: names, bad
//! input, the sub-interface's lifetime, connect and disconnect, `container:`, a killed daemon,
//! and `--cleanup` removing only what netd made.
use netd_tests::{fabric::Fabric, Host};
use serde_json::Value;

/// `network create -d macvlan` as the seed types it.
fn macvlan(host: &Host, name: &str, subnet: &str, gateway: &str, parent: &str) {
    host.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        subnet,
        &format!("--gateway={gateway}"),
        "-o",
        &format!("parent={parent}"),
        name,
    ]);
}

/// The seed's two networks on a host.
fn seed_networks(host: &Host) {
    macvlan(host, "mac_net1", "172.21.0.0/24", "172.21.0.1", "eth1");
    macvlan(host, "mac_net2", "172.22.0.0/24", "172.22.0.1", "eth1.1");
}

/// `docker run -d --network NET --ip IP busybox` as netd says it.
fn run_on(host: &Host, name: &str, network: &str, ip: &str) {
    host.ok(&["run", "-d", "--network", network, "--ip", ip, name]);
}

fn network(host: &Host, name: &str) -> Value {
    let v: Value = serde_json::from_str(&host.ok(&["network", "inspect", name])).expect("JSON");
    v[0].clone()
}

fn has_device(host: &Host, name: &str) -> bool {
    host.on_host(&["ip", "link", "show", name]).ok()
}

/// Whether the host's kernel has an 802.1q driver (it lists its VLANs in `/proc/net/vlan`).
fn kernel_has_8021q(host: &Host) -> bool {
    host.on_host(&["test", "-d", "/proc/net/vlan"]).ok()
}

/// The 802.1q parent `name` netd made: the kernel's VLAN device, or where the kernel has none,
/// netd's own (a veth end tagged as the network's).
fn assert_vlan_parent(host: &Host, name: &str, vid: u16) {
    let link = host.on_host(&["ip", "-d", "link", "show", name]).stdout;
    if kernel_has_8021q(host) {
        assert!(
            link.contains(&format!("vlan protocol 802.1Q id {vid}")),
            "{link}"
        );
    } else {
        assert!(
            link.contains("veth") && link.contains("alias netd:network:"),
            "{link}"
        );
    }
}

/// A parent the user made: any device called `name` (on a kernel with 802.1q, a VLAN of eth1).
fn users_parent(host: &Host, name: &str, vid: &str) {
    let out = if kernel_has_8021q(host) {
        host.on_host(&[
            "ip", "link", "add", "link", "eth1", "name", name, "type", "vlan", "id", vid,
        ])
    } else {
        let peer = format!("{name}p");
        host.on_host(&[
            "ip", "link", "add", name, "type", "veth", "peer", "name", &peer,
        ])
    };
    assert!(out.ok(), "{out:?}");
}

#[test]
fn seed_003_macvlan_networks_across_two_hosts_are_isolated_from_each_other() {
    let Some(fabric) = Fabric::start() else {
        return;
    };
    let [server1, server2] = <[Host; 2]>::try_from(fabric.hosts(2)).ok().unwrap();
    for host in [&server1, &server2] {
        host.on_host(&["ip", "link", "set", "eth1", "promisc", "on"]);
        seed_networks(host);
        let ls = host.ok(&["network", "ls"]);
        let row = ls
            .lines()
            .find(|l| l.contains("mac_net1"))
            .unwrap_or_default();
        assert!(row.contains("macvlan") && row.ends_with("local"), "{ls}");
        assert_eq!(network(host, "mac_net1")["options"]["parent"], "eth1");
        assert_vlan_parent(host, "eth1.1", 1);
    }
    run_on(&server2, "b12", "mac_net1", "172.21.0.12");
    run_on(&server1, "b11", "mac_net1", "172.21.0.11");
    assert!(server1.reaches("b11", "172.21.0.12"));
    assert!(server2.reaches("b12", "172.21.0.11"));

    run_on(&server1, "b21", "mac_net2", "172.22.0.21");
    run_on(&server2, "b22", "mac_net2", "172.22.0.22");
    assert!(server1.reaches("b21", "172.22.0.22"));
    assert!(server2.reaches("b22", "172.22.0.21"));

    // The seed's last step: mac_net1 cannot reach mac_net2, not even told the other subnet is
    // on its own wire (untagged frames never reach VLAN 1).
    assert!(server1.blocked("b11", "172.22.0.21"));
    server1.exec(
        "b11",
        &["ip", "route", "add", "172.22.0.0/24", "dev", "eth0"],
    );
    assert!(server1.blocked("b11", "172.22.0.22"));
    assert!(server1.blocked("b11", "172.22.0.21"));
    let eth0 = server1
        .exec("b11", &["ip", "-d", "link", "show", "eth0"])
        .stdout;
    assert!(eth0.contains("macvlan mode bridge"), "{eth0}");
    assert!(eth0.contains("02:42:ac:15:00:0b"), "{eth0}");
}

#[test]
fn containers_on_a_macvlan_network_resolve_names_and_aliases() {
    let Some(fabric) = Fabric::start() else {
        return;
    };
    let [host] = <[Host; 1]>::try_from(fabric.hosts(1)).ok().unwrap();
    macvlan(&host, "mac_net1", "172.21.0.0/24", "172.21.0.1", "eth1");
    host.ok(&[
        "run",
        "-d",
        "--network",
        "mac_net1",
        "--network-alias",
        "db",
        "web",
    ]);
    host.ok(&["run", "-d", "--network", "mac_net1", "app"]);
    assert!(host.reaches("app", "web"));
    assert!(host.reaches("app", "db"));
    let web = host.ip("web", "mac_net1");
    let lookup = host.exec("app", &["busybox", "nslookup", &web, "127.0.0.11"]);
    assert!(lookup.stdout.contains("web"), "{lookup:?}");
}

#[test]
fn bad_macvlan_requests_are_one_line_errors_that_change_nothing() {
    let Some(fabric) = Fabric::start() else {
        return;
    };
    let [host] = <[Host; 1]>::try_from(fabric.hosts(1)).ok().unwrap();
    macvlan(&host, "mac_net1", "172.21.0.0/24", "172.21.0.1", "eth1");
    host.ok(&["run", "-d", "--network", "mac_net1", "c1"]);
    let (networks, devices) = (host.ok(&["network", "ls"]), host.devices());
    let create = |extra: &[&str]| {
        let mut args = vec!["network", "create", "-d", "macvlan"];
        args.extend_from_slice(extra);
        args.push("bad");
        host.fails(&args)
    };
    let cases: [(&[&str], &str); 8] = [
        (
            &["-o", "parent=nope"],
            "parent interface nope does not exist",
        ),
        (
            &["-o", "parent=nope.7"],
            "interface nope (the base of parent nope.7) does not exist",
        ),
        (
            &["-o", "parent=eth1"],
            "network mac_net1 is already using parent interface eth1",
        ),
        (&["-o", "parent=eth1.4095"], "invalid VLAN ID \"4095\""),
        (
            &["--subnet", "172.21.0.0/16", "-o", "parent=eth1.2"],
            "overlaps with network mac_net1",
        ),
        (
            &["--internal", "-o", "parent=eth1.2"],
            "--internal is not supported on macvlan",
        ),
        (
            &["-o", "parent=eth1.2", "-o", "mtu=9000"],
            "unsupported option \"mtu\"",
        ),
        (&[], "needs its parent interface: -o parent=IFACE"),
    ];
    for (extra, want) in cases {
        let err = create(extra);
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    let err = host.fails(&[
        "container",
        "create",
        "--network",
        "mac_net1",
        "-p",
        "8080:80",
        "pp",
    ]);
    assert!(err.contains("mac_net1 is a macvlan network"), "{err}");
    let err = host.fails(&["container", "publish", "c1", "8081:80"]);
    assert!(err.contains("publish no ports"), "{err}");
    assert_eq!(host.ok(&["network", "ls"]), networks);
    assert_eq!(host.devices(), devices);
}

#[test]
fn a_vlan_parent_netd_made_goes_with_its_network_and_a_users_own_stays() {
    let Some(fabric) = Fabric::start() else {
        return;
    };
    let [host] = <[Host; 1]>::try_from(fabric.hosts(1)).ok().unwrap();
    users_parent(&host, "eth1.5", "5");
    macvlan(&host, "mac_net2", "172.22.0.0/24", "172.22.0.1", "eth1.1");
    macvlan(&host, "mac_net5", "172.25.0.0/24", "172.25.0.1", "eth1.5");
    assert!(has_device(&host, "eth1.1"));
    host.ok(&["network", "rm", "mac_net2", "mac_net5"]);
    assert!(
        !has_device(&host, "eth1.1"),
        "netd made eth1.1: it goes with mac_net2"
    );
    assert!(
        has_device(&host, "eth1.5"),
        "the user made eth1.5: it stays"
    );
    assert!(has_device(&host, "eth1"));
}

#[test]
fn a_container_connects_to_a_macvlan_network_and_disconnects_from_it() {
    let Some(fabric) = Fabric::start() else {
        return;
    };
    let [h1, h2] = <[Host; 2]>::try_from(fabric.hosts(2)).ok().unwrap();
    for host in [&h1, &h2] {
        macvlan(host, "mac_net1", "172.21.0.0/24", "172.21.0.1", "eth1");
    }
    run_on(&h2, "far", "mac_net1", "172.21.0.12");
    h1.ok(&["run", "-d", "web"]);
    assert!(h1.blocked("web", "172.21.0.12"));
    h1.ok(&[
        "network",
        "connect",
        "--ip",
        "172.21.0.11",
        "mac_net1",
        "web",
    ]);
    let eth1 = h1.exec("web", &["ip", "-d", "link", "show", "eth1"]).stdout;
    assert!(eth1.contains("macvlan"), "{eth1}");
    assert!(h1.reaches("web", "172.21.0.12"));
    assert!(h2.reaches("far", "172.21.0.11"));
    // A container sharing web's namespace is on mac_net1 too.
    h1.ok(&["run", "-d", "--network", "container:web", "side"]);
    assert!(h1.reaches("side", "172.21.0.12"));
    h1.ok(&["network", "disconnect", "mac_net1", "web"]);
    assert!(!h1.exec("web", &["ip", "link", "show", "eth1"]).ok());
    assert!(h1.blocked("web", "172.21.0.12"));
    // Its address is free again.
    h1.ok(&[
        "run",
        "-d",
        "--network",
        "mac_net1",
        "--ip",
        "172.21.0.11",
        "again",
    ]);
}

#[test]
fn macvlan_containers_outlive_a_killed_daemon_and_cleanup_removes_only_what_netd_made() {
    let Some(fabric) = Fabric::start() else {
        return;
    };
    let [mut h1, h2] = <[Host; 2]>::try_from(fabric.hosts(2)).ok().unwrap();
    for host in [&h1, &h2] {
        seed_networks(host);
    }
    users_parent(&h1, "eth1.5", "5");
    macvlan(&h1, "mac_net5", "172.25.0.0/24", "172.25.0.1", "eth1.5");
    run_on(&h1, "b21", "mac_net2", "172.22.0.21");
    run_on(&h2, "b22", "mac_net2", "172.22.0.22");
    h1.stop_daemon("KILL");
    h1.start_daemon();
    assert!(h1.reaches("b21", "172.22.0.22"));
    let check = h1.netd(&["check"]);
    assert!(check.ok(), "{check:?}");
    assert_eq!(h1.ip("b21", "mac_net2"), "172.22.0.21");

    h1.stop_daemon("TERM");
    let out = h1.cleanup();
    assert!(out.ok(), "{out:?}");
    assert!(!has_device(&h1, "eth1.1"), "netd made eth1.1");
    assert!(
        has_device(&h1, "eth1.5") && has_device(&h1, "eth1"),
        "the user's devices stay"
    );
    assert!(h2.blocked("b22", "172.22.0.21"));
}

#[test]
fn a_macvlan_container_cannot_send_from_an_address_that_is_not_its_own() {
    let Some(fabric) = Fabric::start() else {
        return;
    };
    let [h1, h2] = <[Host; 2]>::try_from(fabric.hosts(2)).ok().unwrap();
    for host in [&h1, &h2] {
        macvlan(host, "mac_net1", "172.21.0.0/24", "172.21.0.1", "eth1");
    }
    run_on(&h1, "web", "mac_net1", "172.21.0.11");
    run_on(&h2, "far", "mac_net1", "172.21.0.12");
    assert!(h1.reaches("web", "172.21.0.12"));
    // Another address on its device: nothing from it leaves, not even the ARP answer for it.
    h1.exec(
        "web",
        &["ip", "addr", "add", "172.21.0.99/24", "dev", "eth0"],
    );
    assert!(h2.blocked("far", "172.21.0.99"));
    let spoofed = [
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        "-I",
        "172.21.0.99",
        "172.21.0.12",
    ];
    assert!(!h1.exec("web", &spoofed).ok());
    assert!(
        h1.reaches("web", "172.21.0.12"),
        "its own address still works"
    );
    // Another MAC: nothing leaves at all.
    h1.exec(
        "web",
        &["ip", "link", "set", "eth0", "address", "02:42:ac:15:00:63"],
    );
    assert!(h1.blocked("web", "172.21.0.12"));
    // A restarted daemon keeps the guard (and `netd check` knows its pin).
    let mut h1 = h1;
    h1.stop_daemon("KILL");
    h1.start_daemon();
    let check = h1.netd(&["check"]);
    assert!(check.ok(), "{check:?}");
    h1.exec(
        "web",
        &["ip", "link", "set", "eth0", "address", "02:42:ac:15:00:0b"],
    );
    assert!(h1.reaches("web", "172.21.0.12"));
    assert!(h2.blocked("far", "172.21.0.99"));
}
