//! `netd check`: silent agreement (exit 0 and one summary line) on a host the daemon set up,
//! and one line per difference (exit 1) once things are changed behind its back.
use netd_tests::Host;
use serde_json::Value;

#[test]
fn check_agrees_on_a_host_the_daemon_set_up() {
    let Some(host) = Host::start() else {
        return;
    };
    host.ok(&["network", "create", "n1"]);
    host.container("web", &["--network", "n1", "-p", "8080:80"]);
    host.ok(&["network", "connect", "bridge", "web"]);
    host.container("none", &["--network", "none"]);
    host.ok(&["container", "create", "idle"]);
    let out = host.netd(&["check"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout,
        "state and kernel agree: 2 networks, 3 containers (2 running), 2 endpoints, 1 published ports\n"
    );
    let json: Value = serde_json::from_str(&host.ok(&["check", "--format", "json"])).unwrap();
    assert_eq!(json["differences"], Value::Array(vec![]));
    assert_eq!(json["running"], 2);
}

#[test]
fn check_reports_what_was_changed_behind_the_daemons_back() {
    let Some(host) = Host::start() else {
        return;
    };
    host.container("web", &["-p", "8080:80"]);
    host.container("db", &[]);
    let db_veth = host.inspect("db")["networks"]["bridge"]["host_interface"]
        .as_str()
        .unwrap()
        .to_string();
    let sh = |cmd: &str| {
        let out = host.on_host(&["sh", "-c", cmd]);
        assert!(out.ok(), "{cmd}: {}", out.stderr);
    };
    sh("ip link add vethleak type veth peer name vethleakp && ip link set vethleak alias netd:container:gone");
    sh(&format!("ip link set {db_veth} down"));
    std::fs::write(host.dir.join("run/netns/ghost"), "").unwrap();
    let out = host.netd(&["check"]);
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    for expected in [
        "device vethleak: tagged netd:container:gone, but nothing in the state has it".to_string(),
        format!("device {db_veth}: down"),
        "netns ghost: a namespace file that no running container owns".to_string(),
    ] {
        assert!(
            lines.contains(&expected.as_str()),
            "{expected:?} not in {lines:?}"
        );
    }
    assert_eq!(lines.len(), 3, "{lines:?}");
    let json: Value =
        serde_json::from_str(&host.netd(&["check", "--format", "json"]).stdout).unwrap();
    assert_eq!(json["differences"].as_array().unwrap().len(), 3, "{json}");
    assert_eq!(json["differences"][0]["area"], "device");
    std::fs::remove_file(host.dir.join("run/netns/ghost")).unwrap();
    sh("ip link del vethleak");
}
