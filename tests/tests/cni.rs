//! netd as a CNI plugin, driven the way a runtime drives it: the `netd` binary with `CNI_*` in
//! its environment and the network configuration on stdin, against a daemon in a throwaway host,
//! with a "pod" namespace of the test's own standing in for the runtime's.
use std::{
    io::Write as _,
    process::{Command, Stdio},
};

use netd_tests::{netd_bin, run, Host, Out};
use serde_json::Value;

/// A namespace made by the test, as a runtime makes one for a container; deleted on drop.
struct Pod {
    name: String,
}

impl Pod {
    fn new(host: &Host, suffix: &str) -> Pod {
        let name = format!("{}p{suffix}", host.name);
        assert!(
            run("ip", &["netns", "add", &name]).ok(),
            "ip netns add {name}"
        );
        Pod { name }
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// The network configuration for netd network `network` on `host`, with `extra` fields.
fn conf(host: &Host, network: &str, extra: &str) -> String {
    format!(
        r#"{{"cniVersion":"1.0.0","name":"{network}","type":"netd","network":"{network}",
            "socket":"{}","capabilities":{{"portMappings":true}}{extra}}}"#,
        host.socket().display()
    )
}

/// One plugin run: `command` for container `name` in `pod`, with `stdin`; the exit status and
/// what it printed, parsed.
fn plugin(command: &str, pod: Option<&Pod>, name: &str, stdin: &str) -> (Out, Value) {
    plugin_at(&netd_bin(), command, pod, (name, "eth0"), stdin)
}

/// As [`plugin`], with the plugin binary at `bin`, for container and interface `name.0` and
/// `name.1`.
fn plugin_at(
    bin: &std::path::Path,
    command: &str,
    pod: Option<&Pod>,
    (name, ifname): (&str, &str),
    stdin: &str,
) -> (Out, Value) {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", format!("{name}-0123456789abcdef"))
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", "/usr/lib/cni")
        .env(
            "CNI_ARGS",
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={name};K8S_POD_NAME={name}"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(pod) = pod {
        cmd.env("CNI_NETNS", pod.path());
    }
    let mut child = cmd.spawn().expect("run the plugin");
    // A plugin that refuses its environment may exit before it reads the configuration.
    match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("write the config: {e}"),
        _ => {}
    }
    let out: Out = child.wait_with_output().expect("the plugin ends").into();
    let json = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
    (out, json)
}

const PORTS: &str =
    r#","runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}"#;

#[test]
fn a_runtime_namespace_added_to_a_network_gets_an_address_a_route_dns_and_its_ports() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "--subnet", "10.89.0.0/24", "front"]);
    host.container("peer", &["--network", "front"]);
    let pod = Pod::new(&host, "1");
    let (out, result) = plugin("ADD", Some(&pod), "web", &conf(&host, "front", PORTS));
    assert!(out.ok(), "{}{}", out.stdout, out.stderr);
    assert_eq!(result["cniVersion"], "1.0.0", "{result}");
    assert_eq!(result["interfaces"][0]["name"], "eth0");
    assert_eq!(result["interfaces"][0]["sandbox"], pod.path().as_str());
    let address = result["ips"][0]["address"].as_str().expect("an address");
    assert!(
        address.starts_with("10.89.0.") && address.ends_with("/24"),
        "{result}"
    );
    assert_eq!(result["ips"][0]["gateway"], "10.89.0.1");
    assert_eq!(result["routes"][0]["dst"], "0.0.0.0/0");
    assert_eq!(result["dns"]["nameservers"][0], "127.0.0.11");
    let ip = address.trim_end_matches("/24");
    let inside = run("ip", &["-n", &pod.name, "-4", "addr", "show", "eth0"]).stdout;
    assert!(inside.contains(address), "{inside}");
    // The runtime's container is netd's as well: listed, named in DNS, publishing its port.
    let ls = host.ok(&["container", "ls"]);
    let line = ls.lines().find(|l| l.contains(" web ")).unwrap_or_default();
    assert!(line.trim_end().ends_with(" cni"), "{ls}");
    let lookup = host.exec("peer", &["busybox", "nslookup", "web"]);
    assert!(
        lookup.stdout.contains(ip),
        "{}{}",
        lookup.stdout,
        lookup.stderr
    );
    assert!(host.reaches("peer", ip));
    let port = host.ok(&["container", "port", "web"]);
    assert!(port.contains("80/tcp -> 0.0.0.0:8080"), "{port}");
    let (out, _) = plugin("CHECK", Some(&pod), "web", &conf(&host, "front", ""));
    assert!(
        out.ok(),
        "CHECK of what ADD made: {}{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn del_is_idempotent_frees_the_address_and_succeeds_with_the_daemon_gone() {
    let Some(mut host) = Host::start() else {
        return;
    };
    host.ok(&["network", "create", "--subnet", "10.89.1.0/29", "small"]);
    let conf = conf(&host, "small", "");
    let pod = Pod::new(&host, "1");
    // A /29 has 5 addresses for containers: 6 rounds only work if DEL frees them.
    for round in 0..6 {
        let (out, _) = plugin("ADD", Some(&pod), "a", &conf);
        assert!(out.ok(), "ADD, round {round}: {}{}", out.stdout, out.stderr);
        for _ in 0..2 {
            let (out, _) = plugin("DEL", Some(&pod), "a", &conf);
            assert!(out.ok(), "DEL, and DEL again: {}{}", out.stdout, out.stderr);
            assert_eq!(out.stdout.trim(), "", "DEL prints nothing");
        }
        assert!(!host.ok(&["container", "ls"]).contains(" a "));
    }
    // DEL while the daemon is away succeeds; the runtime then deletes the namespace, and the
    // daemon, back, forgets the container as DEL would have.
    let (out, _) = plugin("ADD", Some(&pod), "a", &conf);
    assert!(out.ok(), "{}{}", out.stdout, out.stderr);
    host.stop_daemon("TERM");
    let (out, _) = plugin("DEL", None, "a", &conf);
    assert!(
        out.ok(),
        "DEL with the daemon gone: {}{}",
        out.stdout,
        out.stderr
    );
    drop(pod);
    host.start_daemon();
    let ls = host.ok(&["container", "ls"]);
    assert!(!ls.contains(" a "), "{ls}");
    let pod = Pod::new(&host, "2");
    let (out, _) = plugin("ADD", Some(&pod), "a", &conf);
    assert!(
        out.ok(),
        "the name is free again: {}{}",
        out.stdout,
        out.stderr
    );
    let inspect: Value = serde_json::from_str(&host.ok(&["container", "inspect", "a"])).unwrap();
    assert_eq!(inspect["runtime"], "cni", "{inspect}");
}

#[test]
fn a_second_network_connects_the_same_container_with_the_runtimes_interface_name() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "--subnet", "10.89.3.0/24", "front"]);
    host.ok(&["network", "create", "--subnet", "10.89.4.0/24", "back"]);
    host.container("ff", &["--network", "front"]);
    host.container("bb", &["--network", "back"]);
    let pod = Pod::new(&host, "1");
    let netd = netd_bin();
    let add = |network: &str, ifname: &str| {
        plugin_at(
            &netd,
            "ADD",
            Some(&pod),
            ("web", ifname),
            &conf(&host, network, ""),
        )
    };
    let (out, _) = add("front", "eth0");
    assert!(out.ok(), "{}{}", out.stdout, out.stderr);
    // Multus names further interfaces net1, net2, ...
    let (out, result) = add("back", "net1");
    assert!(out.ok(), "{}{}", out.stdout, out.stderr);
    assert_eq!(result["interfaces"][0]["name"], "net1", "{result}");
    let back_ip = host.ip("web", "back");
    let inside = run("ip", &["-n", &pod.name, "-4", "-o", "addr", "show", "net1"]).stdout;
    assert!(inside.contains(&back_ip), "{inside}");
    assert!(host.reaches("bb", &back_ip));
    assert!(host.reaches("ff", &host.ip("web", "front")));
    // An interface name the kernel would refuse, or one the container has, changes nothing.
    for ifname in ["net1", "far-too-long-name"] {
        let (out, _) = add("bridge", ifname);
        assert!(!out.ok(), "{ifname}: {}", out.stdout);
    }
    assert_eq!(
        host.inspect("web")["networks"].as_object().unwrap().len(),
        2
    );

    let del = |network: &str, ifname: &str| {
        plugin_at(
            &netd,
            "DEL",
            Some(&pod),
            ("web", ifname),
            &conf(&host, network, ""),
        )
        .0
    };
    assert!(del("back", "net1").ok());
    let networks = host.inspect("web")["networks"].clone();
    assert_eq!(networks.as_object().unwrap().len(), 1, "{networks}");
    let links = run("ip", &["-n", &pod.name, "-o", "link"]).stdout;
    assert!(!links.contains("net1"), "{links}");
    assert!(host.reaches("ff", &host.ip("web", "front")));
    assert!(del("back", "net1").ok(), "DEL again");
    assert!(del("front", "eth0").ok());
    assert!(!host.ok(&["container", "ls"]).contains(" web "));
    // A name that is netd's own container is not the plugin's to take or remove.
    let (out, err) = plugin_at(
        &netd,
        "ADD",
        Some(&pod),
        ("ff", "eth0"),
        &conf(&host, "front", ""),
    );
    assert!(!out.ok());
    assert!(
        err["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("netd made itself"),
        "{err}"
    );
    assert!(del("front", "eth0").ok());
    let (out, _) = plugin_at(
        &netd,
        "DEL",
        Some(&pod),
        ("ff", "eth0"),
        &conf(&host, "front", ""),
    );
    assert!(out.ok());
    assert!(
        host.ok(&["container", "ls"]).contains(" ff "),
        "ff is left alone"
    );
}

#[test]
fn cni_1_1_status_says_whether_add_can_work_and_gc_removes_what_the_runtime_no_longer_has() {
    let Some(mut host) = Host::start() else {
        return;
    };
    host.ok(&["network", "create", "--subnet", "10.89.5.0/24", "front"]);
    let (out, _) = plugin("STATUS", None, "-", &v11(&host, "front", ""));
    assert!(out.ok(), "{}{}", out.stdout, out.stderr);
    let (out, err) = plugin("STATUS", None, "-", &v11(&host, "nowhere", ""));
    assert!(!out.ok());
    assert_eq!(err["code"], 50, "{err}");

    let pods = [Pod::new(&host, "1"), Pod::new(&host, "2")];
    for (pod, name) in pods.iter().zip(["kept", "gone"]) {
        let (out, result) = plugin("ADD", Some(pod), name, &v11(&host, "front", ""));
        assert!(out.ok(), "{}{}", out.stdout, out.stderr);
        assert_eq!(
            result["cniVersion"], "1.1.0",
            "the result in the config's version"
        );
    }
    // The runtime still has `kept` (by its CNI container ID and interface), not `gone`.
    let valid =
        r#","cni.dev/valid-attachments":[{"containerID":"kept-0123456789abcdef","ifname":"eth0"}]"#;
    let (out, _) = plugin("GC", None, "-", &v11(&host, "front", valid));
    assert!(out.ok(), "{}{}", out.stdout, out.stderr);
    assert!(listed_as_cni(&host, "kept"));
    assert!(!listed_as_cni(&host, "gone"));

    host.stop_daemon("TERM");
    let (out, err) = plugin("STATUS", None, "-", &v11(&host, "front", ""));
    assert!(!out.ok());
    assert_eq!(err["code"], 50, "{err}");
    assert!(
        err["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("not running"),
        "{err}"
    );
}

/// The configuration as a CNI 1.1 runtime hands it.
fn v11(host: &Host, network: &str, extra: &str) -> String {
    conf(host, network, extra).replace("1.0.0", "1.1.0")
}

fn listed_as_cni(host: &Host, name: &str) -> bool {
    let needle = format!(" {name} ");
    host.ok(&["container", "ls"])
        .lines()
        .any(|l| l.contains(&needle) && l.trim_end().ends_with(" cni"))
}

#[test]
fn bad_input_gets_the_specs_error_object_and_changes_nothing() {
    let Some(mut host) = Host::start() else {
        return;
    };
    let (out, version) = plugin("VERSION", None, "x", "");
    assert!(out.ok());
    assert!(
        version["supportedVersions"]
            .as_array()
            .is_some_and(|v| v.iter().any(|s| s == "1.0.0")),
        "{version}"
    );
    let pod = Pod::new(&host, "1");
    let code = |stdin: &str, pod: Option<&Pod>| -> (u64, String) {
        let (out, err) = plugin("ADD", pod, "x", stdin);
        assert!(!out.ok(), "fails: {}", out.stdout);
        (
            err["code"].as_u64().expect("an error object"),
            err["msg"].as_str().unwrap_or_default().to_string(),
        )
    };
    assert_eq!(code("{", Some(&pod)).0, 6, "undecodable");
    let old = conf(&host, "bridge", "").replace("1.0.0", "0.3.1");
    assert_eq!(code(&old, Some(&pod)).0, 1, "a version netd does not speak");
    let other = conf(&host, "bridge", "").replace("\"netd\"", "\"bridge\"");
    assert_eq!(
        code(&other, Some(&pod)).0,
        7,
        "another plugin's configuration"
    );
    assert_eq!(code(&conf(&host, "bridge", ""), None).0, 4, "no CNI_NETNS");
    let (c, msg) = code(&conf(&host, "nowhere", ""), Some(&pod));
    assert_eq!(c, 100);
    assert!(msg.contains("nowhere"), "{msg}");
    let ls = host.ok(&["container", "ls"]);
    assert_eq!(ls.lines().count(), 1, "nothing was made: {ls}");
    host.stop_daemon("TERM");
    let (c, msg) = code(&conf(&host, "bridge", ""), Some(&pod));
    assert_eq!(c, 11, "try again later");
    assert!(msg.contains("not running"), "{msg}");
}

#[test]
fn install_puts_the_plugin_and_a_conflist_that_a_runtime_can_use() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "--subnet", "10.89.2.0/24", "front"]);
    let dir = tempfile_dir(&host);
    let (bin, confs) = (dir.join("bin"), dir.join("net.d"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&confs).unwrap();
    let (b, c) = (bin.to_str().unwrap(), confs.to_str().unwrap());
    let err = host.fails(&[
        "cni",
        "install",
        "--bin-dir",
        b,
        "--conf-dir",
        c,
        "--network",
        "nowhere",
    ]);
    assert!(
        err.contains("nowhere") && err.contains("not found"),
        "{err}"
    );
    let missing = dir.join("missing");
    let err = host.fails(&[
        "cni",
        "install",
        "--bin-dir",
        missing.to_str().unwrap(),
        "--conf-dir",
        c,
        "--network",
        "front",
    ]);
    assert!(err.contains("is not a directory"), "{err}");
    assert_eq!(
        std::fs::read_dir(&bin).unwrap().count(),
        0,
        "nothing written"
    );
    assert_eq!(
        std::fs::read_dir(&confs).unwrap().count(),
        0,
        "nothing written"
    );
    host.ok(&[
        "cni",
        "install",
        "--bin-dir",
        b,
        "--conf-dir",
        c,
        "--network",
        "front",
    ]);
    let list: Value =
        serde_json::from_str(&std::fs::read_to_string(confs.join("front.conflist")).unwrap())
            .unwrap();
    // What a runtime hands the plugin: the list's version and name with the plugin's entry.
    let mut conf = list["plugins"][0].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    conf["name"] = list["name"].clone();
    let pod = Pod::new(&host, "1");
    let installed = bin.join("netd");
    let (out, result) = plugin_at(
        &installed,
        "ADD",
        Some(&pod),
        ("web", "eth0"),
        &conf.to_string(),
    );
    assert!(out.ok(), "{}{}", out.stdout, out.stderr);
    assert!(
        result["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.89.2."),
        "{result}"
    );
}

/// A scratch dir in the host's own dir (removed with it).
fn tempfile_dir(host: &Host) -> std::path::PathBuf {
    let dir = host
        .socket()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("cni");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
