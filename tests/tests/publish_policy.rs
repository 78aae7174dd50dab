//! Who may reach a published port: a port's own `--publish-allow` list and the host-wide
//! policy (`netd daemon --publish-allow/--publish-deny/--publish-policy FILE`), with clients on
//! several outside addresses. A refused client gets what a closed port gives (the connection
//! is refused at once), is counted as a `publish-policy` drop with its address in `netd
//! monitor`, and a client removed from the policy while connected is cut off within a second;
//! allowed connections go on; allowlists survive a killed daemon.
use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use netd_tests::{answered, netd_bin, Host, UPLINK_IP};

/// Outside clients, each on an address of its own in the outside namespace.
const ALLOWED: &str = "10.99.0.11";
const REMOVED: &str = "10.99.0.12";
const DENIED: &str = "10.99.0.13";

fn add_clients(host: &Host) {
    for addr in [ALLOWED, REMOVED, DENIED] {
        let out = host.outside(&[
            "ip",
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "outside0",
        ]);
        assert!(out.ok(), "add {addr}: {}", out.stderr);
    }
}

/// A server in `container` on port 80 that answers each connection with the client's address
/// and then echoes what it gets.
fn server(host: &Host, container: &str) {
    host.ok(&[
        "exec",
        "-d",
        container,
        "--",
        "socat",
        "TCP-LISTEN:80,fork,reuseaddr",
        "SYSTEM:echo $SOCAT_PEERADDR; exec cat",
    ]);
    host.wait_listening(container, "tcp", 80);
}

/// What a client at `from` in the outside namespace gets from the uplink's `port`: the first
/// line, or `refused` if the connection was refused, or `timeout`.
fn reach(host: &Host, from: &str, port: u16) -> String {
    let target = format!("TCP:{UPLINK_IP}:{port},bind={from},connect-timeout=2");
    let out = host.outside(&["socat", "-T2", "-", &target]);
    if out.stderr.contains("Connection refused") {
        return "refused".into();
    }
    match out.stdout.lines().next() {
        Some(line) => line.trim().to_string(),
        None => format!("timeout ({})", out.stderr.trim()),
    }
}

/// A client at `from` that holds a connection to `port` for `secs` seconds, sending a line
/// every 50 ms and reading its echo. It prints `held` if the connection lasted, else `broken`
/// and the wall-clock time it broke.
fn holder(host: &Host, from: &str, port: u16, secs: u32) -> std::process::Child {
    let script = format!(
        r#"
import socket, sys, time
s = socket.socket()
s.bind(("{from}", 0))
s.settimeout(5)
s.connect(("{UPLINK_IP}", {port}))
f = s.makefile("rwb")
f.readline()
end = time.time() + {secs}
try:
    while time.time() < end:
        f.write(b"ping\n"); f.flush()
        if f.readline() != b"ping\n":
            raise OSError("no echo")
        time.sleep(0.05)
    print("held", flush=True)
except OSError:
    print("broken", time.time(), flush=True)
"#
    );
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &host.outside_ns(),
            "python3",
            "-c",
            &script,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a holding client")
}

fn holder_result(child: std::process::Child) -> String {
    let out = child.wait_with_output().expect("holding client");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn a_ports_allowlist_lets_listed_clients_in_and_refuses_the_others_as_a_closed_port() {
    let Some(mut host) = Host::start() else {
        return;
    };
    add_clients(&host);
    let allow = format!("8080={ALLOWED},10.99.0.128/25");
    host.container("web", &["-p", "8080:80", "--publish-allow", &allow]);
    server(&host, "web");
    assert_eq!(answered(ALLOWED, || reach(&host, ALLOWED, 8080)), ALLOWED);
    let started = Instant::now();
    assert_eq!(
        reach(&host, DENIED, 8080),
        "refused",
        "a reset, as a closed port"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once, not timed out"
    );
    // Counted, with the client's address in the monitor.
    let mut monitor = Command::new(netd_bin())
        .args(["--socket", &host.socket().display().to_string()])
        .args(["monitor", "--drops", "--format", "json"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("netd monitor");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(reach(&host, REMOVED, 8080), "refused");
    let mut line = String::new();
    BufReader::new(monitor.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("a monitor event");
    let _ = monitor.kill();
    let _ = monitor.wait();
    assert!(line.contains("publish-policy"), "{line}");
    assert!(line.contains(REMOVED), "the client's address: {line}");
    let stats = host.ok(&["stats", "--format", "json"]);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let counted = stats["totals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t[0] == "publish-policy")
        .and_then(|t| t[1].as_u64());
    assert!(counted >= Some(2), "{stats}");
    // A container reaching the port through the host's address is a client like any other.
    host.container("probe", &[]);
    let target = format!("TCP:{UPLINK_IP}:8080,connect-timeout=2");
    let out = host.exec("probe", &["socat", "-T2", "-", &target]);
    assert!(out.stderr.contains("Connection refused"), "{}", out.stderr);
    // `policy show` names the port and its list.
    let shown = host.ok(&["policy", "show"]);
    assert!(shown.contains("0.0.0.0:8080/tcp"), "{shown}");
    assert!(
        shown.contains(&format!("{ALLOWED}/32,10.99.0.128/25")),
        "{shown}"
    );
    // The trie itself, decoded: the port's prefixes and its default.
    let dump = host.ok(&["maps", "dump", "publish_policy", "--format", "json"]);
    let dump: serde_json::Value = serde_json::from_str(&dump).unwrap();
    assert_eq!(
        dump[0]["columns"],
        serde_json::json!(["port", "client", "action"])
    );
    let rows = dump[0]["rows"].as_array().unwrap();
    for row in [
        [
            "0.0.0.0:8080/tcp".to_string(),
            format!("{ALLOWED}/32"),
            "allow".into(),
        ],
        [
            "0.0.0.0:8080/tcp".into(),
            "10.99.0.128/25".into(),
            "allow".into(),
        ],
        ["0.0.0.0:8080/tcp".into(), "others".into(), "deny".into()],
    ] {
        assert!(rows.contains(&serde_json::json!(row)), "{row:?} in {dump}");
    }
    // A daemon killed and started again restores the same policy.
    host.stop_daemon("KILL");
    host.start_daemon();
    assert_eq!(reach(&host, DENIED, 8080), "refused");
    assert_eq!(answered(ALLOWED, || reach(&host, ALLOWED, 8080)), ALLOWED);
}

#[test]
fn bad_allowlists_are_refused_in_one_line_and_change_nothing() {
    let Some(host) = Host::start() else {
        return;
    };
    for (args, error) in [
        (
            vec!["-p", "8080:80", "--publish-allow", "9090=10.0.0.0/8", "w1"],
            "w1 publishes no host port 9090",
        ),
        (
            vec!["-p", "8080:80", "--publish-allow", "8080=10.0.0.0/33", "w1"],
            "bad address or prefix \"10.0.0.0/33\"",
        ),
        (
            vec!["-p", "8080:80", "--publish-allow", "8080", "w1"],
            "expected PORT[-END][/PROTO]=CIDR",
        ),
    ] {
        let mut all = vec!["container", "create"];
        all.extend(args);
        let err = host.fails(&all);
        assert!(err.contains(error), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert!(
        !host.ok(&["container", "ls"]).contains("w1"),
        "nothing made"
    );
    host.container("web", &["-p", "8080:80"]);
    let err = host.fails(&[
        "container",
        "publish",
        "web",
        "--publish-allow",
        "81=10.0.0.1",
    ]);
    assert!(err.contains("web publishes no host port 81"), "{err}");
    let shown = host.ok(&["policy", "show"]);
    assert!(
        !shown.contains("8080/tcp"),
        "no allowlist was added: {shown}"
    );
    let err = host.fails(&["policy", "reload"]);
    assert!(err.contains("without --publish-policy"), "{err}");
}

#[test]
fn the_host_wide_policy_reloaded_cuts_off_a_removed_client_within_a_second() {
    // The daemon under `ip netns exec` (its own mount namespace, a fresh `/sys`), as an operator
    // may start it with a policy file; the other tests start it under `nsenter`.
    let Some(mut host) = Host::prepare(netd_tests::Launch::IpNetnsExec, &[]) else {
        return;
    };
    let file = host.dir.join("publish-policy");
    std::fs::write(&file, format!("allow {ALLOWED}\nallow {REMOVED}\n")).unwrap();
    host.push_daemon_args(&[
        "--publish-deny".into(),
        "10.99.0.13".into(),
        "--publish-policy".into(),
        file.display().to_string(),
    ]);
    host.start_daemon();
    add_clients(&host);
    host.container("web", &["-p", "8081:80"]);
    server(&host, "web");
    assert_eq!(answered(ALLOWED, || reach(&host, ALLOWED, 8081)), ALLOWED);
    assert_eq!(reach(&host, REMOVED, 8081), REMOVED);
    assert_eq!(reach(&host, DENIED, 8081), "refused", "denied by the flag");
    let shown = host.ok(&["policy", "show"]);
    assert!(shown.contains("host-wide"), "{shown}");
    assert!(
        shown.contains(&format!("{ALLOWED}/32,{REMOVED}/32")),
        "{shown}"
    );
    // Two connections held open; then the file drops one client and is read again.
    let kept = holder(&host, ALLOWED, 8081, 4);
    let cut = holder(&host, REMOVED, 8081, 4);
    std::thread::sleep(Duration::from_millis(1000));
    std::fs::write(&file, format!("allow {ALLOWED}\n")).unwrap();
    let reloaded_at = now();
    host.ok(&["policy", "reload"]);
    let cut = holder_result(cut);
    let broke_at: f64 = cut
        .strip_prefix("broken ")
        .unwrap_or_else(|| panic!("the removed client's connection went on: {cut:?}"))
        .parse()
        .unwrap();
    assert!(
        broke_at - reloaded_at < 1.0,
        "cut off {:.3} s after the reload",
        broke_at - reloaded_at
    );
    assert_eq!(holder_result(kept), "held", "an allowed connection goes on");
    assert_eq!(reach(&host, REMOVED, 8081), "refused");
    // A bad file changes nothing: one line, and the allowed client still gets in.
    std::fs::write(&file, "allow 10.99.0.300\n").unwrap();
    let err = host.fails(&["policy", "reload"]);
    assert!(err.contains("line 1: bad address or prefix"), "{err}");
    assert_eq!(err.trim().lines().count(), 1);
    assert_eq!(reach(&host, ALLOWED, 8081), ALLOWED);
    assert_eq!(reach(&host, REMOVED, 8081), "refused");
    // SIGHUP reads it too.
    std::fs::write(&file, format!("allow {ALLOWED}\nallow {REMOVED}\n")).unwrap();
    let pid = host.daemon_pid().expect("the daemon's pid").to_string();
    assert!(netd_tests::run("kill", &["-HUP", &pid]).ok());
    assert_eq!(answered(REMOVED, || reach(&host, REMOVED, 8081)), REMOVED);
}
