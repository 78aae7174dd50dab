//! Networks as users see them: the default `bridge`, user-defined bridges with automatic or
//! given subnets, inspect and ls output, removal, and every bad input refused without a trace.
use netd_tests::Host;
use serde_json::Value;

fn inspect(host: &Host, name: &str) -> Value {
    let v: Value = serde_json::from_str(&host.ok(&["network", "inspect", name])).expect("JSON");
    v[0].clone()
}

#[test]
fn the_default_bridge_network_exists_with_docker_defaults() {
    let Some(host) = Host::start() else { return };
    let net = inspect(&host, "bridge");
    assert_eq!(net["subnet"], "172.17.0.0/16");
    assert_eq!(net["gateway"], "172.17.0.1");
    assert_eq!(net["bridge"], "netd0");
    assert_eq!(net["driver"], "bridge");
    let addr = host.on_host(&["ip", "-4", "addr", "show", "netd0"]).stdout;
    assert!(addr.contains("172.17.0.1/16"), "{addr}");
    let ls = host.ok(&["network", "ls"]);
    for name in ["bridge", "host", "none"] {
        assert!(ls.contains(name), "{ls}");
    }
    let forwarding = host
        .on_host(&["cat", "/proc/sys/net/ipv4/ip_forward"])
        .stdout;
    assert_eq!(forwarding.trim(), "1");
}

#[test]
fn user_networks_get_automatic_non_overlapping_subnets() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "a"]);
    host.ok(&["network", "create", "b"]);
    assert_eq!(inspect(&host, "a")["subnet"], "172.18.0.0/16");
    assert_eq!(inspect(&host, "b")["subnet"], "172.19.0.0/16");
    let json: Value =
        serde_json::from_str(&host.ok(&["network", "ls", "--format", "json"])).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "bridge", "host", "none"]);
}

#[test]
fn a_network_with_subnet_gateway_and_ip_range_hands_out_addresses_from_the_range() {
    let Some(host) = Host::start() else { return };
    host.ok(&[
        "network",
        "create",
        "--subnet",
        "10.20.0.0/16",
        "--gateway",
        "10.20.0.254",
        "--ip-range",
        "10.20.5.0/24",
        "n",
    ]);
    let net = inspect(&host, "n");
    assert_eq!(net["gateway"], "10.20.0.254");
    let bridge = net["bridge"].as_str().unwrap().to_string();
    assert!(host
        .on_host(&["ip", "-4", "addr", "show", &bridge])
        .stdout
        .contains("10.20.0.254/16"));
    host.container("cc", &["--network", "n"]);
    assert_eq!(host.ip("cc", "n"), "10.20.5.0");
    assert_eq!(
        inspect(&host, "n")["containers"]["cc"]["ip_address"],
        "10.20.5.0/16"
    );
}

#[test]
fn removing_a_network_deletes_its_bridge_and_frees_its_name() {
    let Some(host) = Host::start() else { return };
    host.ok(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.name=mybr0",
        "gone",
    ]);
    assert!(host.on_host(&["ip", "link", "show", "mybr0"]).ok());
    host.ok(&["network", "rm", "gone"]);
    assert!(!host.on_host(&["ip", "link", "show", "mybr0"]).ok());
    host.ok(&["network", "create", "gone"]);
}

#[test]
fn bad_network_requests_are_refused_and_change_nothing() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "--subnet", "10.1.0.0/16", "taken"]);
    let before = host.ok(&["network", "ls"]);
    let devices_before = host.devices();
    let cases: &[(&[&str], &str)] = &[
        (
            &["network", "create", "--subnet", "10.1.0.0/300", "x"],
            "invalid",
        ),
        (
            &["network", "create", "--subnet", "not-a-cidr", "x"],
            "invalid",
        ),
        (
            &["network", "create", "--subnet", "10.1.128.0/24", "x"],
            "overlaps",
        ),
        (
            &["network", "create", "--subnet", "172.17.0.0/24", "x"],
            "overlaps",
        ),
        (
            &["network", "create", "--subnet", "10.2.0.5/24", "x"],
            "host bits",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.3.0.0/24",
                "--gateway",
                "10.4.0.1",
                "x",
            ],
            "gateway",
        ),
        (
            &["network", "create", "--gateway", "10.4.0.1", "x"],
            "--subnet",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.3.0.0/24",
                "--ip-range",
                "10.9.0.0/24",
                "x",
            ],
            "ip-range",
        ),
        (&["network", "create", "--driver", "ipvlan", "x"], "driver"),
        (
            &["network", "create", "--driver", "overlay", "x"],
            "--cluster-store",
        ),
        (&["network", "create", "-o", "novalue", "x"], "KEY=VALUE"),
        (&["network", "create", "taken"], "already exists"),
        (&["network", "create", "bridge"], "already exists"),
        (&["network", "create", "bad/name"], "invalid network name"),
        (&["network", "rm", "bridge"], "pre-defined"),
        (&["network", "rm", "nosuch"], "not found"),
        (&["network", "inspect", "nosuch"], "not found"),
    ];
    for (args, expected) in cases {
        let err = host.fails(args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    assert_eq!(host.ok(&["network", "ls"]), before);
    assert_eq!(host.devices(), devices_before);
}

#[test]
fn a_network_in_use_cannot_be_removed() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "busy"]);
    host.ok(&["container", "create", "--network", "busy", "cc"]);
    let err = host.fails(&["network", "rm", "busy"]);
    assert!(err.contains("connected containers: cc"), "{err}");
    host.ok(&["container", "rm", "cc"]);
    host.ok(&["network", "rm", "busy"]);
}
