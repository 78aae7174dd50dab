//! Real dockerd on netd networks through netd's Docker network plugin (`netd daemon
//! --docker-plugin`): `docker network create -d netd` and `docker run --network NAME -p ...` as
//! a user types them, with dockerd run without iptables, masquerading or docker-proxy (see
//! `netd_tests::docker` for how it is kept inside the test's dirs).

use netd_tests::{
    answered,
    docker::{docker_proxies, Docker, IMAGE},
    run, wait_until, Host, Launch, OUTSIDE_IP, UPLINK_IP,
};
use std::time::Duration;

const GET_IP: &str = r"printf 'GET /cgi-bin/ip HTTP/1.0\r\n\r\n'";
const GET_INDEX: &str = r"printf 'GET / HTTP/1.0\r\n\r\n'";

/// `docker run -d` of busybox httpd serving the image's web root on port 80, with `args`.
fn web(docker: &Docker, name: &str, args: &[&str]) {
    // busybox as pid 1 ignores SIGTERM: a stop would wait Docker's 10 s for nothing.
    let mut all = vec!["run", "-d", "--stop-timeout", "1", "--name", name];
    all.extend_from_slice(args);
    all.extend([IMAGE, "httpd", "-f", "-p", "80", "-h", "/www"]);
    docker.ok(&all);
}

/// `docker run -d` of a container that only waits, on `network`.
fn idle(docker: &Docker, name: &str, network: &str) {
    docker.ok(&[
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

/// `docker network create -d netd --subnet SUBNET NAME`; the network's ID, once netd has the
/// network under that name.
fn netd_network(host: &Host, docker: &Docker, subnet: &str, name: &str) -> String {
    let id = docker.ok(&["network", "create", "-d", "netd", "--subnet", subnet, name]);
    // The same network in netd, with Docker's ID and (once dockerd's event says it) name.
    wait_until(
        &format!("netd's network named {name}"),
        Duration::from_secs(10),
        || host.ok(&["network", "ls"]).contains(&format!(" {name} ")),
    );
    id
}

/// The container's address on `network`, as Docker reports it.
fn address(docker: &Docker, name: &str, network: &str) -> String {
    let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    docker
        .ok(&["inspect", name, "--format", &format])
        .trim()
        .to_string()
}

/// netd's container for Docker container `name` (the one of its sandbox).
fn netd_container(host: &Host, docker: &Docker, name: &str) -> String {
    let key = docker.ok(&[
        "inspect",
        name,
        "--format",
        "{{.NetworkSettings.SandboxKey}}",
    ]);
    let sandbox = key
        .trim()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let netd_name = format!("docker-{sandbox}");
    assert!(
        host.ok(&["container", "ls"]).contains(&netd_name),
        "{netd_name}"
    );
    netd_name
}

#[test]
fn docker_networks_and_containers_get_netds_datapath_with_ports_published_in_ebpf() {
    let Some(host) = Docker::host(Launch::IpNetnsExec) else {
        return;
    };
    let docker = Docker::start(&host);
    let id = netd_network(&host, &docker, "10.93.0.0/24", "front");
    netd_network(&host, &docker, "10.94.0.0/24", "back");
    let front = host.ok(&["network", "inspect", "front"]);
    assert!(front.contains(id.trim()), "{front}");
    web(
        &docker,
        "web",
        &[
            "--network",
            "front",
            "--network-alias",
            "www",
            "-p",
            "8080:80",
        ],
    );
    idle(&docker, "client", "front");
    idle(&docker, "other", "back");
    let web_ip = address(&docker, "web", "front");
    assert!(web_ip.starts_with("10.93.0."), "{web_ip}");

    // -p: from outside with the client's own address, and from a host process on loopback.
    let from_outside = || {
        let script = format!("{GET_IP} | socat -T3 - TCP:{UPLINK_IP}:8080,connect-timeout=2");
        host.outside(&["sh", "-c", &script]).stdout
    };
    let seen = answered(OUTSIDE_IP, from_outside);
    assert!(seen.contains(&format!(":{OUTSIDE_IP}]")), "{seen}");
    let local = host.on_host_in_cgroup(&format!(
        "{GET_INDEX} | socat -T3 - TCP:127.0.0.1:8080,connect-timeout=2"
    ));
    assert!(local.stdout.contains("hello from docker"), "{local:?}");
    let port = host.ok(&["container", "port", &netd_container(&host, &docker, "web")]);
    assert!(port.contains("80/tcp -> 0.0.0.0:8080"), "{port}");

    // Containers on one network reach each other, egress leaves through the uplink, and the
    // other network is isolated.
    let near = docker.exec("client", &format!("{GET_INDEX} | nc -w 3 {web_ip} 80"));
    assert!(near.stdout.contains("hello from docker"), "{near:?}");
    let out = docker.exec("client", &format!("ping -c 1 -W 2 {OUTSIDE_IP}"));
    assert!(out.ok(), "egress: {out:?}");
    let far = docker.exec("other", &format!("ping -c 1 -W 1 {web_ip}"));
    assert!(!far.ok(), "isolation: {far:?}");

    // No rule in the host's namespace or a container's, and no docker-proxy.
    let pid = docker.ok(&["inspect", "web", "--format", "{{.State.Pid}}"]);
    for ns in [
        format!("--net=/run/netns/{}", host.host_ns()),
        format!("--net=/proc/{}/ns/net", pid.trim()),
    ] {
        let rules = run("nsenter", &[&ns, "nft", "list", "ruleset"]).stdout;
        assert_eq!(rules.trim(), "", "rules in {ns}");
    }
    // netd's DNS server answers in the container, with the names Docker's would: the
    // container's name and aliases, on its network only.
    let resolv = docker.exec("web", "cat /etc/resolv.conf").stdout;
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");
    for name in ["web", "www"] {
        let lookup = answered(&web_ip, || {
            docker.exec("client", &format!("nslookup {name}")).stdout
        });
        assert!(lookup.contains(&web_ip), "{name}: {lookup}");
    }
    let by_name = docker.exec("client", &format!("{GET_INDEX} | nc -w 3 web 80"));
    assert!(by_name.stdout.contains("hello from docker"), "{by_name:?}");
    let elsewhere = docker.exec("other", "nslookup web").stdout;
    assert!(
        !elsewhere.contains(&web_ip),
        "names stay on their network: {elsewhere}"
    );
    // --link web:site on a netd network: an alias of web for the linking container alone,
    // as Docker's DNS gives it on a user-defined network.
    docker.ok(&[
        "run",
        "-d",
        "--network",
        "front",
        "--link",
        "web:site",
        "--name",
        "linker",
        IMAGE,
        "sleep",
        "600",
    ]);
    let linked = answered(&web_ip, || docker.exec("linker", "nslookup site").stdout);
    assert!(linked.contains(&web_ip), "{linked}");
    let unlinked = docker.exec("client", "nslookup site").stdout;
    assert!(
        !unlinked.contains(&web_ip),
        "not client's alias: {unlinked}"
    );

    // -P: the host port netd chose is listed and answers from outside.
    web(
        &docker,
        "auto",
        &["--network", "front", "--expose", "80", "-P"],
    );
    let listed = host.ok(&["container", "port", &netd_container(&host, &docker, "auto")]);
    let chosen: u16 = listed
        .trim()
        .strip_prefix("80/tcp -> 0.0.0.0:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("one chosen port: {listed}"));
    assert!(chosen >= 32768, "from the ephemeral range: {chosen}");
    let script = format!("{GET_INDEX} | socat -T3 - TCP:{UPLINK_IP}:{chosen},connect-timeout=2");
    let reached = answered("hello from docker", || {
        host.outside(&["sh", "-c", &script]).stdout
    });
    assert!(reached.contains("hello"));

    assert_eq!(docker_proxies(&host), 0, "a docker-proxy runs");
}

#[test]
fn removing_docker_containers_and_networks_leaves_nothing_in_netd() {
    let Some(host) = Docker::host(Launch::Nsenter) else {
        return;
    };
    let docker = Docker::start(&host);
    let devices = host.devices();
    let id = netd_network(&host, &docker, "10.95.0.0/29", "small");
    // Five addresses: seven containers in turn fit only if each rm frees its own.
    for round in 0..7 {
        web(&docker, "job", &["--network", "small", "-p", "8080:80"]);
        docker.ok(&["rm", "-f", "job"]);
        let ls = host.ok(&["container", "ls"]);
        assert!(!ls.contains("docker-"), "round {round}: {ls}");
    }
    docker.ok(&["network", "rm", "small"]);
    assert!(!host.ok(&["network", "ls"]).contains(&id[..12]));
    let mut left = host.devices();
    left.retain(|d| !d.starts_with("netd0 "));
    let mut before = devices;
    before.retain(|d| !d.starts_with("netd0 "));
    assert_eq!(left, before, "devices left behind");
}

#[test]
fn what_netd_cannot_do_is_refused_through_dockers_error_path() {
    let Some(host) = Docker::host(Launch::Nsenter) else {
        return;
    };
    let docker = Docker::start(&host);
    let v6 = docker.docker(&[
        "network",
        "create",
        "-d",
        "netd",
        "--ipv6",
        "--subnet",
        "fd00:1::/64",
        "--subnet",
        "fd00:2::/64",
        "six",
    ]);
    assert!(!v6.ok());
    assert!(v6.stderr.contains("one IPv6 subnet"), "{}", v6.stderr);
    netd_network(&host, &docker, "10.96.0.0/24", "front");
    let mac = docker.docker(&[
        "run",
        "-d",
        "--network",
        "front",
        "--mac-address",
        "02:00:00:00:00:01",
        IMAGE,
        "sleep",
        "60",
    ]);
    assert!(!mac.ok());
    assert!(mac.stderr.contains("MAC address"), "{}", mac.stderr);
    assert!(!host.ok(&["container", "ls"]).contains("docker-"));

    // A subnet one of netd's own networks has (Docker's IPAM knows only Docker's) and an option
    // netd's bridge driver does not know: netd's message, and no network on either side.
    host.ok(&["network", "create", "--subnet", "10.96.1.0/24", "native"]);
    let networks_before = host.ok(&["network", "ls"]);
    for (args, says) in [
        (
            &["--subnet", "10.96.1.0/25"][..],
            "overlaps with network native",
        ),
        (
            &["--subnet", "10.96.2.0/24", "-o", "color=blue"][..],
            "unsupported option \"color\"",
        ),
    ] {
        let mut all = vec!["network", "create", "-d", "netd"];
        all.extend_from_slice(args);
        all.push("bad");
        let out = docker.docker(&all);
        assert!(
            !out.ok() && out.stderr.contains(says),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(host.ok(&["network", "ls"]), networks_before);
    let docker_networks = docker.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!docker_networks.contains("bad"), "{docker_networks}");
}

#[test]
fn a_dual_stack_docker_network_gives_real_containers_ipv6_through_netd() {
    let Some(host) = Docker::host(Launch::Nsenter) else {
        return;
    };
    let docker = Docker::start(&host);
    docker.ok(&[
        "network",
        "create",
        "-d",
        "netd",
        "--ipv6",
        "--subnet",
        "10.97.0.0/24",
        "--subnet",
        "fd00:97::/64",
        "dual",
    ]);
    wait_until("netd's network named dual", Duration::from_secs(10), || {
        host.ok(&["network", "ls"]).contains(" dual ")
    });
    idle(&docker, "one", "dual");
    idle(&docker, "two", "dual");
    let ip6 = |name: &str| {
        let format = "{{(index .NetworkSettings.Networks \"dual\").GlobalIPv6Address}}";
        docker
            .ok(&["inspect", name, "--format", format])
            .trim()
            .to_string()
    };
    let two = ip6("two");
    assert!(two.starts_with("fd00:97::"), "Docker's IPAM gave it: {two}");
    let netd_two = netd_container(&host, &docker, "two");
    assert_eq!(
        host.inspect(&netd_two)["networks"]["dual"]["global_ipv6_address"],
        two.as_str(),
        "netd has the address Docker gave"
    );
    let ping = docker.docker(&["exec", "one", "ping", "-6", "-c", "1", "-W", "2", &two]);
    assert!(ping.ok(), "one reaches two over IPv6: {ping:?}");
    let gateway = docker.docker(&[
        "exec",
        "one",
        "ping",
        "-6",
        "-c",
        "1",
        "-W",
        "2",
        "fd00:97::1",
    ]);
    assert!(
        gateway.ok(),
        "and the gateway, its default route: {gateway:?}"
    );
}

/// How many networks netd's container for Docker container `name` is on.
fn netd_networks(host: &Host, docker: &Docker, name: &str) -> usize {
    let netd_name = netd_container(host, docker, name);
    host.inspect(&netd_name)["networks"]
        .as_object()
        .map_or(0, |n| n.len())
}

#[test]
fn connect_disconnect_and_restarts_of_either_daemon_keep_netd_right() {
    let Some(mut host) = Docker::host(Launch::Nsenter) else {
        return;
    };
    let mut docker = Docker::start(&host);
    netd_network(&host, &docker, "10.97.0.0/24", "front");
    netd_network(&host, &docker, "10.98.0.0/24", "back");
    idle(&docker, "client", "front");
    web(&docker, "web", &["--network", "back"]);
    let web_ip = address(&docker, "web", "back");
    let get = format!("{GET_INDEX} | nc -w 3 {web_ip} 80");

    docker.ok(&["network", "connect", "back", "client"]);
    assert_eq!(netd_networks(&host, &docker, "client"), 2);
    let links = docker.exec("client", "ip -o -4 addr").stdout;
    assert!(
        links.contains("eth1") && links.contains("10.98.0."),
        "{links}"
    );
    let reached = answered("hello from docker", || docker.exec("client", &get).stdout);
    assert!(reached.contains("hello"));
    docker.ok(&["network", "disconnect", "back", "client"]);
    assert_eq!(netd_networks(&host, &docker, "client"), 1);
    assert!(
        !docker.exec("client", &get).stdout.contains("hello"),
        "disconnected"
    );

    // The netd daemon restarted: Docker's containers keep their datapath.
    host.stop_daemon("TERM");
    host.start_daemon();
    docker.ok(&["network", "connect", "back", "client"]);
    let reached = answered("hello from docker", || docker.exec("client", &get).stdout);
    assert!(reached.contains("hello"));

    // dockerd restarted: it stops its containers (netd lets go of them), and starting them
    // again attaches them again.
    docker.restart(&host);
    let ls = host.ok(&["container", "ls"]);
    assert!(
        !ls.contains("docker-"),
        "stopped containers are detached: {ls}"
    );
    docker.ok(&["start", "web", "client"]);
    let web_ip = address(&docker, "web", "back");
    let get = format!("{GET_INDEX} | nc -w 3 {web_ip} 80");
    let reached = answered("hello from docker", || docker.exec("client", &get).stdout);
    assert!(reached.contains("hello"));
}
