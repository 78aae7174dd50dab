//! Containers and real traffic between them: one network, across networks (isolated by eBPF),
//! multi-homed through `network connect`, joined namespaces, host and none modes, adopted
//! namespaces, anti-spoofing, exec and the lifecycle.
use netd_tests::{Host, UPLINK_IP};

#[test]
fn containers_on_the_default_bridge_reach_each_other_by_address() {
    let Some(host) = Host::start() else { return };
    host.container("bbox1", &[]);
    host.container("bbox2", &[]);
    let ip1 = host.ip("bbox1", "bridge");
    assert_eq!(ip1, "172.17.0.2");
    assert!(host.reaches("bbox2", &ip1));
    assert!(host.reaches("bbox2", "172.17.0.1"), "the gateway answers");
    let v = host.inspect("bbox1");
    assert_eq!(v["networks"]["bridge"]["mac_address"], "02:42:ac:11:00:02");
    let link = host
        .exec("bbox1", &["busybox", "ip", "link", "show", "eth0"])
        .stdout;
    assert!(link.contains("02:42:ac:11:00:02"), "{link}");
    let route = host.exec("bbox1", &["busybox", "ip", "route"]).stdout;
    assert!(route.contains("default via 172.17.0.1 dev eth0"), "{route}");
}

#[test]
fn tcp_flows_between_containers_on_one_network() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "app"]);
    host.container("srv", &["--network", "app"]);
    host.container("cli", &["--network", "app"]);
    host.ok(&[
        "exec",
        "-d",
        "srv",
        "--",
        "busybox",
        "nc",
        "-ll",
        "-p",
        "7000",
        "-e",
        "echo",
        "hello from srv",
    ]);
    let ip = host.ip("srv", "app");
    let out = retry(|| host.exec("cli", &["busybox", "nc", "-w", "2", &ip, "7000"]));
    assert_eq!(out.stdout.trim(), "hello from srv");
}

#[test]
fn containers_on_different_networks_cannot_reach_each_other_until_connected() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "--subnet", "172.30.1.0/24", "net1"]);
    host.ok(&["network", "create", "net2"]);
    host.container("web", &["--network", "net1"]);
    host.container("db", &["--network", "net2"]);
    let db = host.ip("db", "net2");
    let web = host.ip("web", "net1");
    assert!(host.blocked("web", &db), "isolation by address");
    assert!(
        host.blocked("web", "172.18.0.1"),
        "isolation through the other network's gateway"
    );
    assert!(host.blocked("db", &web));
    let drops = host.ok(&["maps", "dump", "drops"]);
    assert!(
        drops
            .lines()
            .any(|l| l.starts_with("isolation") && !l.ends_with(" 0")),
        "{drops}"
    );

    host.ok(&["network", "connect", "net2", "web"]);
    assert!(host.reaches("web", &db));
    let addrs = host.exec("web", &["busybox", "ip", "-4", "addr"]).stdout;
    assert!(addrs.contains("eth0") && addrs.contains("eth1"), "{addrs}");
    let web_on_2 = host.ip("web", "net2");
    assert!(host.reaches("db", &web_on_2));
    assert!(
        host.blocked("db", &web),
        "db still cannot reach web's net1 address"
    );

    host.ok(&["network", "disconnect", "net2", "web"]);
    assert!(host.blocked("web", &db));
    assert!(!host
        .exec("web", &["busybox", "ip", "link", "show", "eth1"])
        .ok());
}

#[test]
fn a_joined_container_shares_the_namespace_and_reaches_services_on_loopback() {
    let Some(host) = Host::start() else { return };
    host.container("main", &[]);
    host.container("side", &["--network", "container:main"]);
    host.ok(&[
        "exec", "-d", "main", "--", "busybox", "nc", "-ll", "-p", "8080", "-e", "echo", "hi",
    ]);
    let out = retry(|| host.exec("side", &["busybox", "nc", "-w", "2", "127.0.0.1", "8080"]));
    assert_eq!(out.stdout.trim(), "hi");
    let main_link = host
        .exec("main", &["busybox", "ip", "link", "show", "eth0"])
        .stdout;
    let side_link = host
        .exec("side", &["busybox", "ip", "link", "show", "eth0"])
        .stdout;
    assert_eq!(main_link, side_link);
    assert!(side_link.contains("02:42:ac:11:00:02"));
    let addrs = host.exec("main", &["busybox", "ip", "addr"]).stdout;
    assert!(
        addrs.contains("inet 172.17.0.2/16") && !addrs.contains("inet6"),
        "IPv4 only, on eth0 made after the namespace: {addrs}"
    );
    // As Docker's: the joiner has its target's hostname, the one in the shared hosts file.
    let main_id = host.inspect("main")["id"].as_str().unwrap()[..12].to_string();
    assert_eq!(host.exec("side", &["hostname"]).stdout.trim(), main_id);
    assert_eq!(host.inspect("side")["hostname"], main_id.as_str());
    let hosts = host.exec("side", &["cat", "/etc/hosts"]).stdout;
    assert!(hosts.ends_with(&format!("\t{main_id}\n")), "{hosts}");
}

#[test]
fn host_mode_shares_the_daemons_namespace_and_none_has_only_loopback() {
    let Some(host) = Host::start() else { return };
    host.container("hh", &["--network", "host"]);
    host.container("nn", &["--network", "none"]);
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        host.exec("hh", &["hostname"]).stdout,
        machine,
        "the host's name, as Docker's host-network containers have"
    );
    let h = host.exec("hh", &["busybox", "ip", "-4", "addr"]).stdout;
    assert!(h.contains(UPLINK_IP) && h.contains("netd0"), "{h}");
    let n = host.exec("nn", &["busybox", "ip", "-o", "link"]).stdout;
    assert_eq!(n.lines().count(), 1, "{n}");
    assert!(n.contains("lo:"));
    assert!(host
        .exec(
            "nn",
            &["busybox", "ping", "-c", "1", "-W", "1", "127.0.0.1"]
        )
        .ok());
}

#[test]
fn an_adopted_namespace_is_wired_and_left_in_place_on_removal() {
    let Some(host) = Host::start() else { return };
    let ns = format!("{}a", host.name);
    netd_tests::run("ip", &["netns", "add", &ns]);
    let path = format!("/run/netns/{ns}");
    host.container("adopted", &["--netns", &path]);
    host.container("peer", &[]);
    let ip = host.ip("adopted", "bridge");
    assert!(host.reaches("peer", &ip));
    let addr = netd_tests::run("ip", &["-n", &ns, "-4", "addr", "show", "eth0"]).stdout;
    assert!(addr.contains(&ip), "{addr}");
    host.ok(&["container", "rm", "-f", "adopted"]);
    assert!(
        std::path::Path::new(&path).exists(),
        "the adopted namespace stays"
    );
    assert!(
        !netd_tests::run("ip", &["-n", &ns, "link", "show", "eth0"]).ok(),
        "its interface is gone"
    );
    netd_tests::run("ip", &["netns", "del", &ns]);
    let err = host.fails(&[
        "container",
        "create",
        "--netns",
        "/run/netns/does-not-exist",
        "xx",
    ]);
    assert!(err.contains("does not exist"), "{err}");
    let err = host.fails(&["container", "create", "--netns", "/etc/hostname", "xx"]);
    assert!(err.contains("not a network namespace"), "{err}");
}

#[test]
fn a_container_sending_from_a_foreign_address_is_dropped() {
    let Some(host) = Host::start() else { return };
    host.container("honest", &[]);
    host.container("liar", &[]);
    let honest = host.ip("honest", "bridge");
    assert!(host.reaches("liar", &honest));
    assert!(host
        .exec(
            "liar",
            &[
                "busybox",
                "ip",
                "addr",
                "add",
                "172.17.0.200/16",
                "dev",
                "eth0"
            ]
        )
        .ok());
    assert!(!host
        .exec(
            "liar",
            &[
                "busybox",
                "ping",
                "-c",
                "1",
                "-W",
                "1",
                "-I",
                "172.17.0.200",
                &honest
            ]
        )
        .ok());
    assert!(host.reaches("liar", &honest), "its own address still works");
    let drops = host.ok(&["maps", "dump", "drops"]);
    assert!(
        drops
            .lines()
            .any(|l| l.starts_with("spoofed-ip") && !l.ends_with(" 0")),
        "{drops}"
    );
}

#[test]
fn internal_networks_reach_only_their_own_subnet() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "--internal", "priv"]);
    host.container("aa", &["--network", "priv"]);
    host.container("bb", &["--network", "priv"]);
    host.container("pub", &[]);
    assert!(host.reaches("aa", &host.ip("bb", "priv")));
    assert!(
        host.blocked("aa", UPLINK_IP),
        "no way out of an internal network"
    );
    assert!(
        host.reaches("pub", UPLINK_IP),
        "a normal container reaches the host"
    );
    assert!(!host
        .exec("aa", &["busybox", "ip", "route"])
        .stdout
        .contains("default"));
}

#[test]
fn exec_returns_the_exit_status_and_sees_the_containers_files_and_environment() {
    let Some(host) = Host::start() else { return };
    host.container("ee", &["--hostname", "myhost", "-e", "GREETING=hello"]);
    assert_eq!(host.exec("ee", &["sh", "-c", "exit 7"]).status, 7);
    // Docker's statuses for a command that cannot be run: 126 from exec, 127 from run.
    let missing = host.exec("ee", &["nosuchcommand"]);
    assert_eq!(missing.status, 126, "{missing:?}");
    assert_eq!(
        missing.stderr.trim(),
        "Error: cannot run nosuchcommand: executable file not found in $PATH"
    );
    assert_eq!(
        host.exec("ee", &["/etc/hosts"]).status,
        126,
        "not executable"
    );
    let run = host.netd(&["run", "--rm", "rr", "--", "nosuchcommand"]);
    assert_eq!(run.status, 127, "{run:?}");
    let out = host.netd(&[
        "exec",
        "-e",
        "EXTRA=1",
        "ee",
        "--",
        "sh",
        "-c",
        "echo $GREETING $EXTRA; hostname; cat /etc/hosts; cat /etc/resolv.conf",
    ]);
    let ip = host.ip("ee", "bridge");
    assert!(
        out.stdout.starts_with("hello 1\nmyhost\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("{ip}\tmyhost")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("nameserver 10.99.0.1"),
        "{}",
        out.stdout
    );
    let pid = host.ok(&["exec", "-d", "ee", "--", "sleep", "30"]);
    assert!(pid.trim().parse::<u32>().is_ok(), "{pid}");
}

#[test]
fn stop_releases_addresses_and_ends_processes_and_start_wires_again() {
    let Some(host) = Host::start() else { return };
    host.container("ss", &[]);
    let first = host.ip("ss", "bridge");
    let pid = host
        .ok(&["exec", "-d", "ss", "--", "sleep", "300"])
        .trim()
        .to_string();
    host.ok(&["container", "stop", "ss"]);
    assert!(!alive(&pid), "stop ends the container's processes");
    assert_eq!(host.inspect("ss")["status"], "exited");
    assert!(host.inspect("ss")["networks"]["bridge"]["ip_address"].is_null());
    let err = host.fails(&["exec", "ss", "--", "true"]);
    assert!(err.contains("not running"), "{err}");
    host.container("tt", &[]);
    assert_eq!(
        host.ip("tt", "bridge"),
        first,
        "the lowest free address, as Docker's: the one ss released"
    );
    host.ok(&["container", "start", "ss"]);
    let second = host.ip("ss", "bridge");
    assert_ne!(first, second);
    assert!(host.reaches("tt", &second));
    host.ok(&["container", "rm", "-f", "ss"]);
    assert!(!host.ok(&["container", "ls"]).contains(" ss "));
    let dump = host.ok(&["maps", "dump", "endpoints"]);
    assert!(!dump.contains(&second), "{dump}");
}

#[test]
fn static_addresses_and_bad_container_requests() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "--subnet", "10.50.0.0/24", "fixed"]);
    host.ok(&["network", "create", "auto"]);
    host.container("pinned", &["--network", "fixed", "--ip", "10.50.0.77"]);
    assert_eq!(host.ip("pinned", "fixed"), "10.50.0.77");
    let devices_before = host.devices();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "container",
                "create",
                "--network",
                "fixed",
                "--ip",
                "10.50.0.77",
                "xx",
            ],
            "Address already in use",
        ),
        (
            &[
                "container",
                "create",
                "--network",
                "fixed",
                "--ip",
                "10.60.0.7",
                "xx",
            ],
            "It does not belong to any of this network's subnets",
        ),
        (
            &[
                "container",
                "create",
                "--network",
                "fixed",
                "--ip",
                "10.50.0.1",
                "xx",
            ],
            "reserved",
        ),
        (
            &[
                "container",
                "create",
                "--network",
                "auto",
                "--ip",
                "172.18.0.9",
                "xx",
            ],
            "--subnet",
        ),
        (
            &["container", "create", "--ip", "172.17.0.9", "xx"],
            "--subnet",
        ),
        (
            &["container", "create", "--ip", "999.1.1.1", "xx"],
            "invalid",
        ),
        (
            &["container", "create", "--network", "nosuch", "xx"],
            "not found",
        ),
        (
            &["container", "create", "--network", "container:nosuch", "xx"],
            "No such container",
        ),
        (
            &["container", "create", "pinned"],
            "is already in use by container",
        ),
        (&["container", "create", "jj1!"], "invalid container name"),
        (
            &["container", "create", "j"],
            "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
        ),
        (
            &[
                "container",
                "create",
                "--network",
                "container:pinned",
                "--hostname",
                "hh",
                "xx",
            ],
            "conflicting options: hostname and the network mode",
        ),
        (
            &["container", "create", "bad name"],
            "invalid container name",
        ),
        (&["container", "start", "nosuch"], "No such container"),
        (&["network", "connect", "nosuch", "pinned"], "not found"),
        (
            &["network", "connect", "fixed", "pinned"],
            "already connected",
        ),
        (
            &["network", "disconnect", "auto", "pinned"],
            "not connected",
        ),
        (&["container", "rm", "pinned"], "running"),
    ];
    for (args, expected) in cases {
        let err = host.fails(args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    assert_eq!(host.devices(), devices_before);
    assert!(!host.ok(&["container", "ls"]).contains(" xx "));
    let ls = host.ok(&["container", "ls"]);
    assert!(
        !ls.contains(" j "),
        "a one-character name is Docker's to refuse: {ls}"
    );
}

#[test]
fn rm_f_of_a_missing_container_says_so_and_succeeds_as_dockers() {
    let Some(host) = Host::start() else { return };
    let out = host.netd(&["container", "rm", "-f", "nosuch"]);
    assert_eq!(out.status, 0, "set -e cleanup scripts go on: {out:?}");
    assert_eq!(out.stderr.trim(), "Error: No such container: nosuch");
    assert_eq!(out.stdout, "");
    let err = host.fails(&["container", "rm", "nosuch"]);
    assert!(err.contains("No such container: nosuch"), "{err}");
}

#[test]
fn a_failed_run_exits_125_as_docker_runs_do() {
    let Some(host) = Host::start() else { return };
    host.ok(&["run", "taken"]);
    for args in [
        &["run", "taken"][..],
        &["run", "--network", "nosuch", "fresh"],
        &["run", "--no-such-flag", "fresh"],
    ] {
        let out = host.netd(args);
        assert_eq!(out.status, 125, "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("Error: "), "{out:?}");
    }
    let status = host.netd(&["run", "fresh", "--", "sh", "-c", "exit 125"]);
    assert_eq!(status.status, 125, "and the command's own status as it is");
    let status = host.netd(&["run", "fresh2", "--", "sh", "-c", "exit 1"]);
    assert_eq!(status.status, 1);
}

#[test]
fn a_daemon_in_a_private_mount_namespace_serves_exec_too() {
    let Some(host) = Host::start_with_private_mounts() else {
        return;
    };
    host.container("p1", &[]);
    host.container("p2", &[]);
    assert!(host.reaches("p1", &host.ip("p2", "bridge")));
    let resolv = host.exec("p1", &["cat", "/etc/resolv.conf"]).stdout;
    assert!(resolv.contains("nameserver 10.99.0.1"), "{resolv}");
}

#[test]
fn the_client_says_how_to_start_a_daemon_that_is_not_running() {
    let Some(mut host) = Host::start() else {
        return;
    };
    host.stop_daemon("TERM");
    let err = host.fails(&["network", "ls"]);
    assert!(
        err.contains("is it running? Start it with `netd daemon`"),
        "{err}"
    );
}

/// Services started with `exec -d` need a moment to listen.
fn retry(mut f: impl FnMut() -> netd_tests::Out) -> netd_tests::Out {
    for _ in 0..20 {
        let out = f();
        if out.ok() && !out.stdout.is_empty() {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    f()
}

/// Whether a process exists and is not a zombie waiting for its parent.
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().chars().next());
        state != Some(Some('Z'))
    })
}

#[test]
fn containers_and_their_bridge_ports_have_no_ipv6_addresses_on_any_network() {
    let Some(host) = Host::start() else { return };
    host.container("web", &[]);
    host.ok(&["network", "create", "net1"]);
    host.ok(&["network", "connect", "net1", "web"]);
    let inside = host.exec("web", &["busybox", "ip", "addr"]).stdout;
    assert!(
        inside.contains("eth1") && !inside.contains("inet6"),
        "IPv4 only on lo, eth0 and eth1: {inside}"
    );
    let on_host = host.on_host(&["ip", "-6", "-o", "addr"]).stdout;
    assert!(
        on_host.contains("netd0") && !on_host.contains("veth"),
        "no link-local address on the host ends of the veths: {on_host}"
    );
}

#[test]
fn run_creates_starts_and_runs_the_command_and_rm_removes_it_afterwards() {
    let Some(host) = Host::start() else { return };
    let addr = host.netd(&[
        "run", "--rm", "r1", "--", "busybox", "ip", "-o", "-4", "addr", "show", "eth0",
    ]);
    assert!(
        addr.ok() && addr.stdout.contains("inet 172.17.0."),
        "{addr:?}"
    );
    assert!(!host.ok(&["container", "ls"]).contains(" r1 "));
    let status = host.netd(&["run", "r2", "--", "sh", "-c", "exit 3"]);
    assert_eq!(status.status, 3, "run returns the command's status");
    let id = host.ok(&["run", "-p", "8080:80", "r3"]);
    assert_eq!(
        id.trim().len(),
        64,
        "run without a command prints the ID: {id}"
    );
    let ls = host.ok(&["container", "ls"]);
    assert!(ls.contains(" r2 ") && ls.contains(" r3 "), "{ls}");
    assert!(host.fails(&["run", "r2"]).contains("r2"));
}
