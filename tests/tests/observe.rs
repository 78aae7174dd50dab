//! Seeing into the datapath: drops counted per container and reason (`netd stats`), events
//! streamed by `netd monitor` with its filters, the Prometheus endpoint scraped over HTTP, and
//! decoded map dumps in JSON.
use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    thread::sleep,
    time::Duration,
};

use netd_tests::{netd_bin, Host, OUTSIDE_IP, UPLINK_IP};
use serde_json::Value;

/// Makes `liar` send from an address that is not its own (dropped as spoofed-ip).
fn spoof(host: &Host, target: &str) {
    host.exec(
        "liar",
        &[
            "busybox",
            "ip",
            "addr",
            "add",
            "172.17.0.200/16",
            "dev",
            "eth0",
        ],
    );
    host.exec(
        "liar",
        &[
            "busybox",
            "ping",
            "-c",
            "2",
            "-W",
            "1",
            "-I",
            "172.17.0.200",
            target,
        ],
    );
}

#[test]
fn stats_count_drops_per_container_and_reason() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "other"]);
    host.container("victim", &[]);
    host.container("liar", &[]);
    host.container("far", &["--network", "other"]);
    spoof(&host, &host.ip("victim", "bridge"));
    assert!(host.blocked("far", &host.ip("victim", "bridge")));
    let stats: Value = serde_json::from_str(&host.ok(&["stats", "--format", "json"])).unwrap();
    let rows = stats["rows"].as_array().unwrap();
    let count = |c: &str, reason: &str| {
        rows.iter()
            .filter(|r| r["container"] == c && r["reason"] == reason)
            .map(|r| r["packets"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert!(count("liar", "spoofed-ip") >= 1, "{stats}");
    assert!(count("far", "isolation") >= 1, "{stats}");
    assert_eq!(count("victim", "spoofed-ip"), 0);
    let only: Value =
        serde_json::from_str(&host.ok(&["stats", "far", "--format", "json"])).unwrap();
    assert!(
        only["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["container"] == "far"),
        "{only}"
    );
    let text = host.ok(&["stats"]);
    assert!(
        text.contains("TOTAL BY REASON") && text.contains("isolation"),
        "{text}"
    );
    let err = host.fails(&["stats", "nosuch"]);
    assert!(err.contains("No such container"), "{err}");
}

#[test]
fn monitor_streams_flows_and_drops_with_filters() {
    let Some(host) = Host::start() else { return };
    host.container("victim", &[]);
    host.container("liar", &[]);
    host.container("client", &[]);
    let watch = |args: &[&str]| {
        let mut cmd = Command::new(netd_bin());
        cmd.arg("--socket")
            .arg(host.socket())
            .args(["monitor", "--format", "json"])
            .args(args);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("monitor")
    };
    let mut all = watch(&[]);
    let mut drops = watch(&["--drops", "--container", "liar"]);
    sleep(Duration::from_millis(500));
    assert!(host.reaches("client", OUTSIDE_IP));
    spoof(&host, &host.ip("victim", "bridge"));
    sleep(Duration::from_millis(500));
    all.kill().unwrap();
    drops.kill().unwrap();
    let lines = |child: std::process::Child| -> Vec<Value> {
        let out = child.wait_with_output().unwrap().stdout;
        BufReader::new(&out[..])
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(&l).unwrap())
            .collect()
    };
    let all = lines(all);
    let drops = lines(drops);
    assert!(
        all.iter().any(|e| e["kind"] == "flow"
            && e["container"] == "client"
            && e["direction"] == "outbound"
            && e["after"].as_str().unwrap().starts_with(UPLINK_IP)),
        "{all:?}"
    );
    assert!(
        all.iter()
            .any(|e| e["kind"] == "drop" && e["reason"] == "spoofed-ip"),
        "{all:?}"
    );
    assert!(
        !drops.is_empty()
            && drops
                .iter()
                .all(|e| e["kind"] == "drop" && e["container"] == "liar"),
        "{drops:?}"
    );
}

#[test]
fn metrics_are_served_over_http_in_prometheus_text() {
    let Some(host) = Host::start_with_args(&["--metrics", "9400"]) else {
        return;
    };
    host.ok(&["network", "create", "app"]);
    host.container("web", &["-p", "8080:80"]);
    host.container("liar", &[]);
    host.container("asker", &["--network", "app"]);
    host.ok(&[
        "exec",
        "-d",
        "web",
        "--",
        "socat",
        "TCP-LISTEN:80,fork,reuseaddr",
        "SYSTEM:echo hi",
    ]);
    host.wait_listening("web", "tcp", 80);
    host.outside(&["socat", "-T2", "-", &format!("TCP:{UPLINK_IP}:8080")]);
    spoof(&host, &host.ip("web", "bridge"));
    host.exec("asker", &["dig", "+short", "+time=1", "+tries=1", "web"]);
    let scrape = host
        .on_host(&["busybox", "wget", "-qO-", "http://127.0.0.1:9400/metrics"])
        .stdout;
    let value = |prefix: &str| -> f64 {
        scrape
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in:\n{scrape}"))
    };
    assert!(value("netd_dropped_packets_total{reason=\"spoofed-ip\"}") >= 1.0);
    assert!(value("netd_published_port_connections_total{proto=\"tcp\",address=\"10.99.0.2\",port=\"8080\"}") >= 1.0);
    assert!(value("netd_dns_queries_total") >= 1.0);
    assert_eq!(value("netd_containers{status=\"running\"}"), 3.0);
    assert_eq!(value("netd_networks"), 2.0);
    assert!(value("netd_nat_capacity") > 0.0);
    assert!(value("netd_nat_assured_entries") >= 0.0);
    assert_eq!(
        value("netd_nat_moves_total{move=\"assured-full\"}"),
        0.0,
        "the assured table has room"
    );
    let missing = host.on_host(&["busybox", "wget", "-qO-", "http://127.0.0.1:9400/nothing"]);
    assert!(!missing.ok(), "only /metrics is served");
}

#[test]
fn maps_dump_decodes_every_map_in_json() {
    let Some(host) = Host::start() else { return };
    host.container("web", &["-p", "8080:80"]);
    let maps: Value =
        serde_json::from_str(&host.ok(&["maps", "dump", "--format", "json"])).unwrap();
    let names: Vec<&str> = maps
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    for expected in [
        "NETD_ENDPOINTS",
        "NETD_NETWORKS",
        "NETD_NEIGHBORS",
        "NETD_PORTS",
        "NETD_NAT",
        "NETD_UPLINKS",
        "NETD_LOCAL_ADDRS",
        "NETD_DROPS",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let endpoints = &maps
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "NETD_ENDPOINTS")
        .unwrap()["rows"];
    assert!(
        endpoints.to_string().contains("web")
            && endpoints.to_string().contains("02:42:ac:11:00:02"),
        "{endpoints}"
    );
    let pin = host.bpffs.join("maps/NETD_ENDPOINTS");
    let bpftool = netd_tests::run(
        "bpftool",
        &["map", "dump", "pinned", &pin.display().to_string()],
    );
    assert!(
        bpftool.ok() && bpftool.stdout.contains("\"net_id\": 1"),
        "pinned maps carry BTF field names: {bpftool:?}"
    );
    let err = host.fails(&["maps", "dump", "nosuch"]);
    assert!(err.contains("no such map"), "{err}");
}

#[test]
fn explain_shows_each_hop_of_a_synthetic_packet_without_changing_anything() {
    let Some(host) = Host::start() else { return };
    host.ok(&["network", "create", "other"]);
    host.container("web", &["-p", "8080:80"]);
    host.container("far", &["--network", "other"]);
    let explain = |args: &[&str]| -> Value {
        let mut all = vec!["explain", "--format", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&host.ok(&all)).unwrap()
    };
    let inbound = explain(&["--from", OUTSIDE_IP, "--to", &format!("{UPLINK_IP}:8080")]);
    let hop = &inbound["hops"][0];
    assert_eq!(hop["program"], "netd_uplink_ingress");
    assert_eq!(
        hop["verdict"], "redirect",
        "straight into the container: {hop}"
    );
    assert_eq!(
        hop["after"],
        format!("tcp {OUTSIDE_IP}:45678 -> 172.17.0.2:80")
    );
    assert!(hop["matched"].to_string().contains("NETD_PORTS"), "{hop}");
    assert_eq!(inbound["delivered_to"], "web");

    let outbound = explain(&["--from", "web", "--to", &format!("{OUTSIDE_IP}:443")]);
    assert_eq!(outbound["hops"][1]["program"], "netd_uplink_egress");
    assert!(
        outbound["hops"][1]["after"]
            .as_str()
            .unwrap()
            .starts_with(&format!("tcp {UPLINK_IP}:")),
        "{outbound}"
    );

    let isolated = explain(&["--from", "far", "--to", "172.17.0.2:80"]);
    assert_eq!(isolated["hops"][0]["verdict"], "drop");
    assert_eq!(isolated["hops"][0]["reason"], "isolation");
    assert!(isolated["delivered_to"].is_null());

    let text = host.ok(&["explain", "--from", "far", "--to", "172.17.0.2:80"]);
    assert!(
        text.contains("netd_endpoint_ingress") && text.contains("drop (isolation)"),
        "{text}"
    );
    let nat = host.ok(&["maps", "dump", "nat", "--format", "json"]);
    assert!(!nat.contains("45678"), "probes create no flow: {nat}");
    let stats: Value = serde_json::from_str(&host.ok(&["stats", "--format", "json"])).unwrap();
    assert!(
        stats["rows"].as_array().unwrap().is_empty(),
        "probes count no drop: {stats}"
    );
    let err = host.fails(&["explain", "--from", "nosuch", "--to", "1.2.3.4:80"]);
    assert!(err.contains("No such container"), "{err}");
}
