//! Real podman containers on netd networks through the CNI plugin: `podman run --network NAME
//! -p ...` as a user types it, with podman's CNI backend pointed at the dirs `netd cni install`
//! filled (see `netd_tests::podman` for how podman is kept inside the test's dirs).

use netd_tests::{
    answered,
    podman::{Podman, IMAGE},
    run, Host, Launch, OUTSIDE_IP, UPLINK_IP,
};

const GET_IP: &str = r"printf 'GET /cgi-bin/ip HTTP/1.0\r\n\r\n'";
const GET_INDEX: &str = r"printf 'GET / HTTP/1.0\r\n\r\n'";

/// `podman run -d` of busybox httpd serving the image's web root on port 80, with `args`.
fn web(podman: &Podman, name: &str, args: &[&str]) {
    let mut all = vec!["run", "-d", "--name", name];
    all.extend_from_slice(args);
    all.extend([IMAGE, "httpd", "-f", "-p", "80", "-h", "/www"]);
    podman.ok(&all);
}

/// `podman run -d` of a container that only waits, on `network`.
fn idle(podman: &Podman, name: &str, network: &str) {
    podman.ok(&[
        "run",
        "-d",
        "--network",
        network,
        "--name",
        name,
        IMAGE,
        "sleep",
        "600",
    ]);
}

/// An HTTP request for `request` to the host's uplink address from the outside namespace.
fn from_outside(host: &Host, request: &str) -> String {
    let script = format!("{request} | socat -T3 - TCP:{UPLINK_IP}:8080,connect-timeout=2");
    host.outside(&["sh", "-c", &script]).stdout
}

/// The line of `netd container ls` that lists `name`.
fn listed(host: &Host, name: &str) -> Option<String> {
    let needle = format!(" {name} ");
    let ls = host.ok(&["container", "ls"]);
    ls.lines()
        .find(|l| l.contains(&needle))
        .map(|l| l.trim_end().to_string())
}

/// What nftables and legacy iptables hold in the namespace at `netns`: empty when no
/// rule was ever added.
fn rules(netns: &str) -> String {
    let net = format!("--net={netns}");
    let nft = run("nsenter", &[&net, "nft", "list", "ruleset"]);
    let legacy = run("nsenter", &[&net, "iptables-legacy-save"]);
    let legacy: Vec<&str> = legacy
        .stdout
        .lines()
        .filter(|l| l.starts_with("-A"))
        .collect();
    format!("{}{}", nft.stdout.trim(), legacy.join("\n"))
}

#[test]
fn podman_containers_on_a_netd_network_publish_ports_resolve_names_and_are_isolated() {
    // The daemon as `ip netns exec` starts it: the namespaces podman makes in /run/netns must
    // reach its mount namespace.
    let Some(host) = Host::start_with(Launch::IpNetnsExec, &[]) else {
        return;
    };
    host.ok(&["network", "create", "--subnet", "10.89.0.0/24", "front"]);
    host.ok(&["network", "create", "--subnet", "10.90.0.0/24", "back"]);
    host.container("other", &["--network", "back"]);
    let podman = Podman::new(&host, &["front", "back"]);
    web(&podman, "web", &["--network", "front", "-p", "8080:80"]);
    idle(&podman, "client", "front");
    let web_ip = host.ip("web", "front");

    // Published in eBPF: from outside with the client's own address, from a host process on
    // loopback, and back in from a container on the same host (hairpin).
    let seen = answered(OUTSIDE_IP, || from_outside(&host, GET_IP));
    assert!(seen.contains(&format!(":{OUTSIDE_IP}]")), "{seen}");
    let local = host.on_host_in_cgroup(&format!(
        "{GET_INDEX} | socat -T3 - TCP:127.0.0.1:8080,connect-timeout=2"
    ));
    assert!(local.stdout.contains("hello from podman"), "{local:?}");
    let hairpin = podman.exec("client", &format!("{GET_INDEX} | nc -w 3 {UPLINK_IP} 8080"));
    assert!(hairpin.stdout.contains("hello from podman"), "{hairpin:?}");

    // Names from netd's DNS, which podman's resolv.conf puts first.
    let by_name = podman.exec("client", &format!("{GET_INDEX} | nc -w 3 web 80"));
    assert!(by_name.stdout.contains("hello from podman"), "{by_name:?}");
    let lookup = podman.exec("client", "nslookup web");
    assert!(lookup.stdout.contains(&web_ip), "{lookup:?}");
    let resolv = podman.exec("client", "cat /etc/resolv.conf").stdout;
    let first = resolv.lines().find(|l| l.starts_with("nameserver"));
    assert_eq!(first, Some("nameserver 127.0.0.11"), "{resolv}");
    let from_netd = host.exec("other", &["busybox", "nslookup", "web"]).stdout;
    assert!(
        !from_netd.contains(&web_ip),
        "names stay on their network: {from_netd}"
    );

    // netd lists them as containers a runtime made.
    for name in ["web", "client"] {
        let line = listed(&host, name).unwrap_or_else(|| panic!("{name} is not listed"));
        assert!(line.ends_with(" cni"), "{line}");
    }

    // Isolated from the other network both ways.
    let other_ip = host.ip("other", "back");
    assert!(host.blocked("other", &web_ip));
    let ping = podman.exec("client", &format!("ping -c 1 -W 1 {other_ip}"));
    assert!(!ping.ok(), "{ping:?}");
    // ... unless on both, as `--network` twice makes it (eth0 and eth1, one ADD each).
    podman.ok(&[
        "run",
        "-d",
        "--network",
        "front",
        "--network",
        "back",
        "--name",
        "both",
        IMAGE,
        "sleep",
        "600",
    ]);
    let ping = podman.exec("both", &format!("ping -c 1 -W 1 {other_ip}"));
    assert!(ping.ok(), "{ping:?}");
    let by_name = podman.exec("both", &format!("{GET_INDEX} | nc -w 3 web 80"));
    assert!(by_name.stdout.contains("hello from podman"), "{by_name:?}");
    let networks = host.inspect("both")["networks"].clone();
    assert_eq!(networks.as_object().map(|n| n.len()), Some(2), "{networks}");

    // No rule anywhere: podman ran only netd's plugin, and netd adds none.
    let host_ns = format!("/run/netns/{}", host.host_ns());
    assert_eq!(rules(&host_ns), "", "rules in the host namespace");
    let web_ns = format!("/proc/{}/ns/net", podman.pid("web"));
    assert_eq!(rules(&web_ns), "", "rules in the container");
}

#[test]
fn podman_rm_gives_the_address_back_and_stop_start_attaches_again() {
    let Some(host) = Host::start() else { return };
    // Five addresses: seven containers in turn fit only if each rm frees its own.
    host.ok(&["network", "create", "--subnet", "10.91.0.0/29", "small"]);
    host.container("peer", &["--network", "small"]);
    let podman = Podman::new(&host, &["small"]);
    for round in 0..7 {
        idle(&podman, "job", "small");
        assert!(listed(&host, "job").is_some(), "round {round}");
        podman.ok(&["rm", "--force", "--time", "0", "job"]);
        assert_eq!(listed(&host, "job"), None, "round {round}");
    }

    web(&podman, "web", &["--network", "small"]);
    let before = host.ip("web", "small");
    podman.ok(&["stop", "--time", "0", "web"]);
    assert_eq!(
        listed(&host, "web"),
        None,
        "a stopped container is detached"
    );
    podman.ok(&["start", "web"]);
    let after = host.ip("web", "small");
    let lookup = host.exec("peer", &["busybox", "nslookup", "web"]).stdout;
    assert!(lookup.contains(&after), "{lookup} (was {before})");
    assert!(host.reaches("peer", &after));
}

#[test]
fn podman_run_while_the_daemon_is_down_fails_clearly_and_rm_is_caught_up_on_return() {
    let Some(mut host) = Host::start() else {
        return;
    };
    host.ok(&["network", "create", "--subnet", "10.92.0.0/24", "front"]);
    let podman = Podman::new(&host, &["front"]);
    idle(&podman, "early", "front");
    host.stop_daemon("TERM");

    let out = podman.podman(&[
        "run",
        "-d",
        "--network",
        "front",
        "--name",
        "late",
        IMAGE,
        "sleep",
        "600",
    ]);
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stderr.contains("the netd daemon is not running"),
        "{}",
        out.stderr
    );
    // Removing works without the daemon, which drops the container when it is back.
    podman.ok(&["rm", "--force", "--time", "0", "early"]);
    host.start_daemon();
    assert_eq!(listed(&host, "early"), None);
    idle(&podman, "early", "front");
    assert!(listed(&host, "early").is_some());
}

#[test]
fn podman_containers_on_a_dual_stack_netd_network_get_ipv6_from_the_cni_result() {
    let Some(host) = Host::start() else { return };
    host.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.92.0.0/24",
        "--subnet",
        "fd00:92::/64",
        "dual",
    ]);
    host.container("peer", &["--network", "dual"]);
    let podman = Podman::new(&host, &["dual"]);
    idle(&podman, "p1", "dual");
    let format = "{{(index .NetworkSettings.Networks \"dual\").GlobalIPv6Address}}";
    let shown = podman.ok(&["inspect", "p1", "--format", format]);
    assert_eq!(
        shown.trim(),
        "fd00:92::3",
        "podman read it from the CNI result"
    );
    let ping = podman.exec("p1", "ping -6 -c 1 -W 2 fd00:92::2");
    assert!(ping.ok(), "p1 reaches peer over IPv6: {ping:?}");
    let back = host.exec(
        "peer",
        &["busybox", "ping", "-6", "-c", "1", "-W", "2", "fd00:92::3"],
    );
    assert!(back.ok(), "and back: {back:?}");
}
