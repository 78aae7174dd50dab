//! The two NAT tables, seen through `netd maps dump nat`: a flow starts in the new table
//! (`NETD_NAT_NEW`, evictable when full), moves to the assured one (`NETD_NAT`, never evicted)
//! once its TCP handshake completed or it had traffic both ways, and back to the new table when
//! it closes; a flow nobody answers stays new.
use std::{
    thread::sleep,
    time::{Duration, Instant},
};

use netd_tests::{Host, OUTSIDE_IP};
use serde_json::Value;

/// One NAT entry as the dump shows it.
#[derive(Debug)]
struct Row {
    table: String,
    proto: String,
    flow: String,
    tcp: String,
}

/// Every entry of both NAT tables.
fn nat_rows(host: &Host) -> Vec<Row> {
    let dump: Value =
        serde_json::from_str(&host.ok(&["maps", "dump", "nat", "--format", "json"])).unwrap();
    let view = &dump[0];
    assert_eq!(view["name"], "NETD_NAT", "{view}");
    let columns: Vec<&str> = view["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let col = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("no {name} column in {columns:?}"))
    };
    let cell = |row: &Value, name: &str| row[col(name)].as_str().unwrap().to_string();
    view["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Row {
            table: cell(r, "table"),
            proto: cell(r, "proto"),
            flow: cell(r, "flow"),
            tcp: cell(r, "tcp"),
        })
        .collect()
}

/// The entries of the flows to or from `port` of the outside address, once `done` holds for
/// them (at most 10 s); panics with the table otherwise.
fn wait_for(host: &Host, port: u16, what: &str, done: impl Fn(&[Row]) -> bool) -> Vec<Row> {
    let peer = format!("{OUTSIDE_IP}:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows: Vec<Row> = nat_rows(host)
            .into_iter()
            .filter(|r| r.flow.contains(&peer))
            .collect();
        if done(&rows) {
            return rows;
        }
        assert!(Instant::now() < deadline, "{what}: {rows:#?}");
        sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_established_flow_is_assured_and_leaves_the_assured_table_when_it_closes() {
    let Some(host) = Host::start() else { return };
    host.container("client", &[]);
    let _echo = host.outside_background(&["socat", "TCP-LISTEN:9999,reuseaddr", "EXEC:cat"]);
    // A connection tried before the server listens would be reset and leave a second flow.
    host.wait_listening_outside("tcp", 9999);
    // The client holds the connection open until the stop file exists, then closes it.
    let stop = format!("/tmp/netd-nat-tables-{}", std::process::id());
    let _ = std::fs::remove_file(&stop);
    let script = format!(
        "while [ ! -e {stop} ]; do sleep 0.1; done | socat - TCP:{OUTSIDE_IP}:9999,retry=30,interval=0.1"
    );
    host.ok(&["exec", "-d", "client", "--", "sh", "-c", &script]);
    let open = wait_for(&host, 9999, "the connection is assured", |rows| {
        rows.len() == 2 && rows.iter().all(|r| r.table == "assured")
    });
    assert!(open.iter().all(|r| r.proto == "tcp"), "{open:#?}");
    host.exec("client", &["touch", &stop]);
    let closed = wait_for(&host, 9999, "the closed connection is new again", |rows| {
        rows.len() == 2 && rows.iter().all(|r| r.table == "new")
    });
    assert!(
        closed.iter().any(|r| r.tcp == "closing"),
        "the FIN was seen: {closed:#?}"
    );
    let _ = std::fs::remove_file(&stop);
}

#[test]
fn a_flow_with_traffic_both_ways_is_assured_and_an_unanswered_one_stays_new() {
    let Some(host) = Host::start() else { return };
    host.container("client", &[]);
    let _echo = host.outside_background(&["socat", "UDP-RECVFROM:9997,fork", "EXEC:cat"]);
    host.wait_listening_outside("udp", 9997);
    let answered = (0..30).any(|_| {
        host.exec(
            "client",
            &[
                "sh",
                "-c",
                &format!("echo hi | socat -T1 - UDP:{OUTSIDE_IP}:9997"),
            ],
        )
        .stdout
        .contains("hi")
    });
    assert!(answered, "the UDP echo answers");
    wait_for(&host, 9997, "the answered UDP flow is assured", |rows| {
        rows.iter().filter(|r| r.table == "assured").count() >= 2
    });
    // Nothing listens on 9998: the outside answers with an ICMP error, not with UDP.
    host.exec(
        "client",
        &[
            "sh",
            "-c",
            &format!("echo x | socat -T1 - UDP:{OUTSIDE_IP}:9998"),
        ],
    );
    let unanswered = wait_for(&host, 9998, "the unanswered flow is recorded", |rows| {
        rows.len() == 2
    });
    assert!(
        unanswered
            .iter()
            .all(|r| r.table == "new" && r.proto == "udp"),
        "{unanswered:#?}"
    );
}
