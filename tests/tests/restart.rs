//! The datapath outlives the daemon: traffic keeps flowing while it is down (SIGTERM or kill -9),
//! a restarted daemon adopts pins and maps and reports the same state, and what a crash left
//! half-made is removed at the next start. `--cleanup` removes everything.
use std::{
    process::{Command, Stdio},
    thread::sleep,
    time::Duration,
};

use netd_tests::{netd_bin, run, Host};

/// Starts a client in `from` that sends one line every 100 ms for `lines` lines over a single
/// TCP connection to an echo server in `to`, and returns the child (its stdout is the echo).
fn live_stream(host: &Host, from: &str, to_ip: &str, lines: u32) -> std::process::Child {
    let script = format!(
        "for i in $(seq 1 {lines}); do echo line$i; sleep 0.1; done | busybox nc -w 3 {to_ip} 9000"
    );
    Command::new(netd_bin())
        .arg("--socket")
        .arg(host.socket())
        .args(["exec", from, "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start client")
}

/// The program ids of the filters on each container port of the host namespace, by veth.
fn endpoint_filters(host: &Host) -> Vec<(String, Vec<String>)> {
    host.devices()
        .iter()
        .filter(|d| d.contains(" netd:container:"))
        .map(|d| {
            let veth = d.split(' ').next().unwrap().to_string();
            let filters = host.on_host(&["tc", "filter", "show", "dev", &veth, "ingress"]);
            let words: Vec<&str> = filters.stdout.split_whitespace().collect();
            let ids = words
                .windows(2)
                .filter(|w| w[0] == "id")
                .map(|w| w[1].to_string())
                .collect();
            (veth, ids)
        })
        .collect()
}

fn restart_keeps_a_live_stream(signal: &str) {
    let Some(mut host) = Host::start() else {
        return;
    };
    host.container("srv", &[]);
    host.container("cli", &[]);
    let srv = host.ip("srv", "bridge");
    host.ok(&[
        "exec", "-d", "srv", "--", "busybox", "nc", "-ll", "-p", "9000", "-e", "cat",
    ]);
    host.wait_listening("srv", "tcp", 9000);
    let before = host.ok(&["container", "ls", "--format", "json"]);
    let filters_before = endpoint_filters(&host);
    let client = live_stream(&host, "cli", &srv, 30);
    sleep(Duration::from_millis(800));
    host.stop_daemon(signal);
    assert!(
        host.netd(&["network", "ls"]).status != 0,
        "the daemon is down"
    );
    sleep(Duration::from_millis(800));
    host.start_daemon();
    let out = client.wait_with_output().expect("client");
    let echoed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        echoed.lines().count(),
        30,
        "every line came back through one connection:\n{echoed}"
    );
    assert_eq!(
        host.ok(&["container", "ls", "--format", "json"]),
        before,
        "same containers and addresses"
    );
    let filters_after = endpoint_filters(&host);
    assert_eq!(filters_after.len(), 2, "{filters_after:?}");
    for ((veth, old), (same_veth, new)) in filters_before.iter().zip(&filters_after) {
        assert_eq!(veth, same_veth);
        assert_eq!(old.len(), 1, "one filter on {veth} before: {old:?}");
        assert_eq!(new.len(), 1, "one filter on {veth} after: {new:?}");
        assert_ne!(
            old, new,
            "the new daemon's program replaced the old one on {veth}"
        );
    }
    assert!(host.reaches("cli", &srv));
    host.container("late", &[]);
    assert!(
        host.reaches("late", &srv),
        "a container wired by the new daemon talks to old ones"
    );
}

#[test]
fn a_live_tcp_stream_survives_sigterm_and_restart() {
    restart_keeps_a_live_stream("TERM");
}

#[test]
fn a_live_tcp_stream_survives_kill_9_and_restart() {
    restart_keeps_a_live_stream("KILL");
}

#[test]
fn isolation_holds_while_the_daemon_is_down_and_after_restart() {
    let Some(mut host) = Host::start() else {
        return;
    };
    host.ok(&["network", "create", "n1"]);
    host.ok(&["network", "create", "n2"]);
    host.container("aa", &["--network", "n1"]);
    host.container("bb", &["--network", "n2"]);
    let b = host.ip("bb", "n2");
    host.stop_daemon("KILL");
    // exec needs the daemon; enter the namespace directly while it is down.
    let ns = host.dir.join("run/netns/a");
    let down = run(
        "nsenter",
        &[
            &format!("--net={}", ns.display()),
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            &b,
        ],
    );
    assert!(!down.ok(), "isolation does not depend on the daemon");
    host.start_daemon();
    assert!(host.blocked("aa", &b));
}

#[test]
fn leftovers_of_a_crash_are_removed_at_the_next_start() {
    let Some(mut host) = Host::start() else {
        return;
    };
    host.container("keep", &[]);
    host.stop_daemon("KILL");
    // What a daemon killed between creating a veth and recording it would leave: a tagged device
    // and a namespace file that the state does not know.
    let h = host.host_ns();
    assert!(run(
        "ip",
        &[
            "-n",
            &h,
            "link",
            "add",
            "vethdead",
            "type",
            "veth",
            "peer",
            "name",
            "vethdeadp"
        ]
    )
    .ok());
    assert!(run(
        "ip",
        &[
            "-n",
            &h,
            "link",
            "set",
            "vethdead",
            "alias",
            "netd:container:crashed"
        ]
    )
    .ok());
    let stray = host.dir.join("run/netns/crashed");
    std::fs::write(&stray, "").unwrap();
    host.start_daemon();
    assert!(
        !run("ip", &["-n", &h, "link", "show", "vethdead"]).ok(),
        "the half-made veth is gone"
    );
    assert!(!stray.exists(), "the stray namespace file is gone");
    assert!(host.on_host(&["ip", "link", "show", "netd0"]).ok());
    assert_eq!(host.inspect("keep")["status"], "running");
}

#[test]
fn cleanup_removes_everything_the_daemon_installed() {
    let Some(mut host) = Host::start() else {
        return;
    };
    host.ok(&["network", "create", "extra"]);
    host.container("c1", &[]);
    host.container("c2", &["--network", "extra"]);
    let pid = host
        .ok(&["exec", "-d", "c1", "--", "sleep", "300"])
        .trim()
        .to_string();
    host.stop_daemon("TERM");
    let out = host.cleanup();
    assert!(out.ok(), "cleanup failed: {}", out.stderr);
    let links = host.on_host(&["ip", "-o", "link"]).stdout;
    assert_eq!(
        links
            .lines()
            .filter(|l| !l.contains(": lo:") && !l.contains("uplink0"))
            .count(),
        0,
        "{links}"
    );
    assert!(
        !host.bpffs.exists(),
        "pins and the bpffs directory are gone"
    );
    assert!(!host.dir.join("state/containers").exists());
    assert!(!host.dir.join("state/networks").exists());
    assert!(!host.dir.join("state/journal.jsonl").exists());
    assert!(!host.dir.join("run/netns").exists());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/ns")).exists()
            || run("cat", &[&format!("/proc/{pid}/stat")])
                .stdout
                .contains(") Z")
    );
    // A new daemon starts from scratch.
    host.start_daemon();
    assert!(host.ok(&["container", "ls"]).lines().count() == 1);
}

#[test]
fn two_daemons_on_one_machine_do_not_affect_each_other() {
    let Some(one) = Host::start() else { return };
    let Some(two) = Host::start() else { return };
    for host in [&one, &two] {
        host.container("xx", &[]);
        host.container("yy", &[]);
    }
    assert_eq!(
        one.ip("xx", "bridge"),
        two.ip("xx", "bridge"),
        "same addresses, separate namespaces"
    );
    one.ok(&["container", "rm", "-f", "yy"]);
    assert!(two.reaches("xx", &two.ip("yy", "bridge")));
    drop(one);
    assert!(
        two.reaches("yy", &two.ip("xx", "bridge")),
        "one daemon's cleanup leaves the other alone"
    );
}

#[test]
fn a_nat_table_pinned_by_an_older_netd_is_refused_with_its_type() {
    let Some(mut host) = Host::start() else {
        return;
    };
    host.stop_daemon("TERM");
    // Before the assured table, NETD_NAT was an LRU hash of the same key and value sizes.
    let pin = host.bpffs.join("maps/NETD_NAT");
    std::fs::remove_file(&pin).expect("remove the NAT table's pin");
    let pin = pin.display().to_string();
    let made = run(
        "bpftool",
        &[
            "map", "create", &pin, "type", "lru_hash", "key", "16", "value", "64", "entries",
            "262144", "name", "NETD_NAT",
        ],
    );
    assert!(made.ok(), "{made:?}");
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| host.start_daemon()));
    assert!(
        started.is_err(),
        "the daemon adopted a NAT table of another type"
    );
    let log = host.daemon_log();
    assert!(
        log.contains("NETD_NAT") && log.contains("lru_hash") && log.contains("--cleanup"),
        "{log}"
    );
}
