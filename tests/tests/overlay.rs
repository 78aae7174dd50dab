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

#[test]
fn containers_on_two_hosts_reach_each_other_by_address_and_by_name() {
    let Some(mut fabric) = Fabric::with_etcd() else {
        return;
    };
    let hosts = fabric.cluster_hosts(2, &[]);
    let (a, b) = (&hosts[0], &hosts[1]);
    a.ok(&["network", "create", "-d", "overlay", "--subnet", "10.0.9.0/24", "ov"]);
    wait_network(b, "ov");
    for host in [a, b] {
        let net = network(host, "ov");
        assert_eq!(net["scope"], "global", "{net}");
        assert_eq!(net["driver"], "overlay", "{net}");
        assert_eq!(net["subnet"], "10.0.9.0/24", "{net}");
    }
    let ls = b.ok(&["network", "ls"]);
    assert!(ls.lines().any(|l| l.contains(" ov ") && l.contains("overlay") && l.ends_with("global")), "{ls}");
    a.ok(&["run", "-d", "--network", "ov", "--network-alias", "www", "web"]);
    b.ok(&["run", "-d", "--network", "ov", "client"]);
    let web = a.ip("web", "ov");
    let client = b.ip("client", "ov");
    assert_ne!(web, client, "one address space across hosts");
    wait_reaches(b, "client", &web);
    assert!(a.reaches("web", &client));
    for name in ["web", "www"] {
        let out = b.exec("client", &["busybox", "nslookup", name]);
        assert!(out.stdout.contains(&web), "{name}: {}{}", out.stdout, out.stderr);
    }
    let mtu = b.exec("client", &["cat", "/sys/class/net/eth0/mtu"]).stdout;
    assert_eq!(mtu.trim(), "1450", "underlay 1500 minus VXLAN's 50");
    let tunnel = b.ok(&["maps", "dump", "tunnel"]);
    assert!(tunnel.contains(&web) && tunnel.contains("10.98.0.11"), "{tunnel}");
}
