//! The load phase (issue 12), in the netd world.
//!
//! Hold: a container `hold` publishes port 7000 to a [`super::hold`] server; a `hold` client in
//! the client namespace opens many connections to 10.99.0.2:7000 (10,000 in the full run), keeps
//! them all open for the hold time with one checked ping per second each, and reports the time
//! it took to open them and every connection that failed (connect error, reset, timeout, wrong
//! reply, closed). While they are held, the daemon's RSS and the NAT table's occupancy are read.
//!
//! Overflow: the daemon is replaced by one with a small NAT table (`--nat-entries`), a container
//! `ovf` publishes a hold server (7000) and a short-connection server (8080 -> 80). Old flows are
//! held with a ping per second through the published port (client namespace -> 7000) and through
//! egress SNAT (the container -> a hold server on 10.99.0.1:7001), then new short connections
//! are made as fast as the `connect` helper can, both ways (client namespace -> 8080, container ->
//! 10.99.0.1:81), until many times the table's size has been inserted. The old flows must all
//! keep working; their NAT entries are counted before and after the churn, and the datapath's
//! drop counters read, as evidence when they do not.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    io::{BufRead as _, BufReader},
    net::SocketAddrV4,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::{json, Value};

use super::{
    check_interrupt, scale,
    world::{self, ns, Guard, CLIENT_IP, UPLINK_IP},
    Results,
};

const T: Duration = Duration::from_secs(30);
/// The hold server's port (published as the same port), and the one outside the host.
const HOLD_PORT: u16 = 7000;
const OUTSIDE_HOLD_PORT: u16 = 7001;
/// The short-connection servers: published 8080 -> 80 in `ovf`, 81 in the client namespace.
const CHURN_PORT: u16 = 8080;
const CHURN_CONTAINER_PORT: u16 = 80;
const OUTSIDE_CHURN_PORT: u16 = 81;
const PING_INTERVAL_MS: u64 = 1000;
/// How often the NAT table is read during the churn.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Sizes and times of the load phase.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub conns: usize,
    pub hold_secs: f64,
    pub nat_entries: u32,
    /// Old flows per path (published port, egress SNAT).
    pub old_flows: usize,
    pub churn_secs: f64,
    /// How long old flows are held after the churn stopped: a ping lost during the churn times
    /// out (5 s) within it.
    pub tail_secs: f64,
    /// `connect` threads: through the published port, and out of the container.
    pub churn_threads_in: usize,
    pub churn_threads_out: usize,
}

impl Plan {
    pub fn new(quick: bool) -> Self {
        if quick {
            Plan {
                conns: 1_000,
                hold_secs: 2.0,
                nat_entries: 4096,
                old_flows: 64,
                churn_secs: 2.0,
                tail_secs: 6.0,
                churn_threads_in: 2,
                churn_threads_out: 1,
            }
        } else {
            Plan {
                conns: 10_000,
                hold_secs: 60.0,
                nat_entries: 4096,
                old_flows: 256,
                churn_secs: 30.0,
                tail_secs: 10.0,
                churn_threads_in: 2,
                churn_threads_out: 1,
            }
        }
    }
}

/// What a `hold` client reported at the end.
#[derive(Debug, Clone, Default)]
pub struct Held {
    pub asked: usize,
    pub opened: u64,
    pub setup_secs: f64,
    pub broken: u64,
    pub exchanges: u64,
    /// Failure cause -> connections (connect failures included).
    pub failures: BTreeMap<String, u64>,
    pub rtt_p50_ms: f64,
    pub rtt_p99_ms: f64,
    pub rtt_max_ms: f64,
    /// Local ports of the connections that broke.
    pub broken_ports: Vec<u16>,
}

impl Held {
    fn parse(asked: usize, v: &Value) -> Self {
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        Held {
            asked,
            opened: v["opened"].as_u64().unwrap_or(0),
            setup_secs: f("setup_secs"),
            broken: v["broken"].as_u64().unwrap_or(0),
            exchanges: v["exchanges"].as_u64().unwrap_or(0),
            failures: v["failures"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default(),
            rtt_p50_ms: f("rtt_p50_ms"),
            rtt_p99_ms: f("rtt_p99_ms"),
            rtt_max_ms: f("rtt_max_ms"),
            broken_ports: v["broken_ports"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_u64())
                        .map(|p| p as u16)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Connections that did not open, or broke while held.
    pub fn errors(&self) -> u64 {
        (self.asked as u64).saturating_sub(self.opened) + self.broken
    }

    /// "none", or "reset 3, timeout 2".
    pub fn causes(&self) -> String {
        let v: Vec<String> = self
            .failures
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{} {n}", k.replace('_', " ")))
            .collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    }
}

/// The hold phase's figures.
#[derive(Debug, Clone, Default)]
pub struct HoldOutcome {
    pub hold_secs: f64,
    pub held: Held,
    pub rss_before_mib: f64,
    pub rss_held_mib: f64,
    /// NAT entries of the held flows and in all, while they were held.
    pub nat_held: usize,
    pub nat_total: usize,
}

/// Short connections made during the churn.
#[derive(Debug, Clone, Copy, Default)]
pub struct Churn {
    pub conns: u64,
    pub errors: u64,
    pub secs: f64,
}

/// The overflow phase's figures.
#[derive(Debug, Clone, Default)]
pub struct OverflowOutcome {
    pub table: u32,
    pub old_in: Held,
    pub old_out: Held,
    pub churn_in: Churn,
    pub churn_out: Churn,
    /// NAT entries of the old flows before and after the churn, and all entries after it.
    pub old_entries_before: usize,
    pub old_entries_after: usize,
    /// Of those, in the assured table; all entries after the churn, and the assured ones.
    pub old_assured_after: usize,
    pub total_after: usize,
    pub assured_after: usize,
    /// Flows moved between the NAT tables during the phase: promoted, demoted; promotions refused
    /// because the assured table was full.
    pub moves: [u64; 3],
    /// Datapath drop counters after the churn: (reason, packets).
    pub drops: Vec<(String, String)>,
    /// What the NAT table held of each old flow, sampled during the churn.
    pub sightings: Sightings,
    /// [`Sightings::counts`] among the broken old flows and among the others.
    pub broken_seen: [usize; 4],
    pub intact_seen: [usize; 4],
}

impl OverflowOutcome {
    /// NAT entries the new flows inserted (two per flow, failed attempts included).
    pub fn inserted(&self) -> u64 {
        2 * (self.churn_in.conns
            + self.churn_in.errors
            + self.churn_out.conns
            + self.churn_out.errors)
    }

    pub fn old_broken(&self) -> u64 {
        self.old_in.errors() + self.old_out.errors()
    }

    /// How long the churn took to insert as many entries as the table holds.
    pub fn turnover_ms(&self) -> f64 {
        let secs = self.churn_in.secs.max(self.churn_out.secs);
        f64::from(self.table) / (self.inserted() as f64 / secs) * 1e3
    }
}

/// Both parts; an error says why a part has no figures.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub plan: Plan,
    pub hold: Result<HoldOutcome, String>,
    pub overflow: Result<OverflowOutcome, String>,
}

/// The load phase: hold, then overflow (which replaces the daemon).
pub fn run(g: &mut Guard, tool: &str, r: &mut Results, quick: bool) -> Result<()> {
    let plan = Plan::new(quick);
    println!(
        "bench: load: {} connections held {} s",
        plan.conns, plan.hold_secs
    );
    let hold = hold(g, tool, &plan).map_err(|e| format!("{e:#}"));
    if let Err(e) = &hold {
        r.notes.push(format!("load, held connections: {e}"));
    }
    check_interrupt()?;
    println!(
        "bench: load: NAT table of {} entries overflowed for {} s",
        plan.nat_entries, plan.churn_secs
    );
    let overflow = overflow(g, tool, &plan).map_err(|e| format!("{e:#}"));
    if let Err(e) = &overflow {
        r.notes.push(format!("load, NAT overflow: {e}"));
    }
    r.load = Some(Outcome {
        plan,
        hold,
        overflow,
    });
    Ok(())
}

/// A `hold` client running in the background; its JSON lines are read as they come.
struct HoldClient {
    child: Child,
    lines: mpsc::Receiver<String>,
    asked: usize,
    what: String,
}

impl HoldClient {
    fn start(g: &Guard, what: &str, mut cmd: Command, conns: usize) -> Result<HoldClient> {
        let log = File::create(g.dir.join(format!("{}.log", what.replace(' ', "_"))))?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {what}: `{}`", crate::util::describe(&cmd)))?;
        let stdout = child.stdout.take().context("hold client stdout")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(HoldClient {
            child,
            lines: rx,
            asked: conns,
            what: what.to_string(),
        })
    }

    /// The next line with `"event": EVENT`, within `timeout`.
    fn wait(&mut self, event: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).map_err(|e| {
                let status = self.child.try_wait().ok().flatten();
                anyhow!("{}: no `{event}` line ({e}; exited: {status:?})", self.what)
            })?;
            let v: Value = serde_json::from_str(&line)
                .with_context(|| format!("{}: not JSON: {line}", self.what))?;
            if v["event"] == event {
                return Ok(v);
            }
        }
    }

    fn done(mut self, timeout: Duration) -> Result<Held> {
        let v = self.wait("done", timeout)?;
        Ok(Held::parse(self.asked, &v))
    }
}

impl Drop for HoldClient {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Where a client runs: the client namespace, or a container's.
enum Place<'a> {
    Outside,
    Container(&'a str),
}

impl Place<'_> {
    fn command(&self, g: &Guard, args: &[&str]) -> Command {
        match self {
            Place::Outside => world::in_ns(&ns("netd", "c"), args),
            Place::Container(name) => world::nsenter(&g.run.join("netns").join(name), args),
        }
    }
}

fn start_hold(
    g: &Guard,
    tool: &str,
    what: &str,
    place: &Place,
    addr: &str,
    conns: usize,
    secs: f64,
) -> Result<HoldClient> {
    let (n, s, i) = (
        conns.to_string(),
        secs.to_string(),
        PING_INTERVAL_MS.to_string(),
    );
    let cmd = place.command(g, &[tool, "bench", "--helper", "hold", addr, &n, &s, &i]);
    HoldClient::start(g, what, cmd, conns)
}

/// Waits until one held connection to `addr` from `place` opens and answers.
fn wait_for_hold_server(g: &Guard, tool: &str, place: &Place, addr: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let c = start_hold(g, tool, "hold probe", place, addr, 1, 0.3)?;
        let held = c.done(Duration::from_secs(20))?;
        if held.opened == 1 && held.broken == 0 && held.exchanges > 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the hold server at {addr} does not answer: {}",
                held.causes()
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// A container with `ports` published, started, running `servers` (`netd exec -d`).
fn container(g: &Guard, name: &str, ports: &[String], servers: &[Vec<&str>]) -> Result<()> {
    let mut create = vec!["container", "create"];
    for p in ports {
        create.extend(["-p", p.as_str()]);
    }
    create.push(name);
    g.must(&mut g.netd_cli(&create), T)?;
    g.must(&mut g.netd_cli(&["container", "start", name]), T)?;
    for server in servers {
        let mut args = vec!["exec", "-d", name, "--"];
        args.extend(server);
        g.must(&mut g.netd_cli(&args), T)?;
    }
    Ok(())
}

/// One NAT entry as `netd maps dump nat` shows it.
#[derive(Debug, Clone)]
struct NatRow {
    zone: String,
    from: SocketAddrV4,
    to: SocketAddrV4,
    /// The source and destination the entry rewrites to.
    rewritten_from: SocketAddrV4,
    rewritten_to: SocketAddrV4,
    kind: String,
    tcp: String,
    /// `assured` (`NETD_NAT`) or `new` (`NETD_NAT_NEW`).
    table: String,
}

fn flow_pair(text: &str) -> Result<(SocketAddrV4, SocketAddrV4)> {
    let (a, b) = text
        .split_once(" -> ")
        .with_context(|| format!("maps_dump: flow {text}"))?;
    Ok((a.parse()?, b.parse()?))
}

/// The NAT table, through the daemon.
fn nat_rows(g: &Guard) -> Result<Vec<NatRow>> {
    let maps = g.api(json!({"op": "maps_dump", "map": "nat"}))?;
    let view = maps.get(0).context("maps_dump: no NAT view")?;
    let columns = view["columns"]
        .as_array()
        .context("maps_dump: no columns")?;
    let col = |name: &str| {
        columns
            .iter()
            .position(|c| c == name)
            .with_context(|| format!("maps_dump: no {name} column"))
    };
    let (zone, flow, rewritten, kind, tcp) = (
        col("zone")?,
        col("flow")?,
        col("rewritten")?,
        col("kind")?,
        col("tcp")?,
    );
    let table = col("table").ok();
    let rows = view["rows"].as_array().context("maps_dump: no rows")?;
    rows.iter()
        .map(|row| {
            let text = |i: usize| row[i].as_str().unwrap_or_default().to_string();
            let (from, to) = flow_pair(&text(flow))?;
            let (rewritten_from, rewritten_to) = flow_pair(&text(rewritten))?;
            Ok(NatRow {
                zone: text(zone),
                from,
                to,
                rewritten_from,
                rewritten_to,
                kind: text(kind),
                tcp: text(tcp),
                table: table.map(text).unwrap_or_default(),
            })
        })
        .collect()
}

/// Entries whose key has one of `ports` on either side.
fn count_ports(rows: &[NatRow], ports: &[u16]) -> usize {
    rows.iter()
        .filter(|r| ports.contains(&r.from.port()) || ports.contains(&r.to.port()))
        .count()
}

/// An old flow of the overflow part: through egress SNAT or the published port, and the port
/// of the side that opened it (the client's, or the container's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct OldFlow {
    out: bool,
    port: u16,
}

/// The established old flows whose forward entry `rows` holds, with the SNAT port of those
/// through egress SNAT.
fn old_flows(rows: &[NatRow]) -> BTreeMap<OldFlow, u16> {
    rows.iter()
        .filter(|r| r.tcp == "established")
        .filter_map(|r| match (r.zone.as_str(), r.to.port()) {
            ("uplink-in", HOLD_PORT) => Some((
                OldFlow {
                    out: false,
                    port: r.from.port(),
                },
                0,
            )),
            ("uplink-out", OUTSIDE_HOLD_PORT) => Some((
                OldFlow {
                    out: true,
                    port: r.from.port(),
                },
                r.rewritten_from.port(),
            )),
            _ => None,
        })
        .collect()
}

/// Whether `rows` show the flow translated wrongly: a published-port flow whose container reply
/// left through egress SNAT (an SNAT entry from the container's port 7000 to the client's
/// port), or an SNAT flow given a port other than `snat_port`.
fn mistranslated(rows: &[NatRow], f: OldFlow, snat_port: u16) -> bool {
    rows.iter().any(|r| {
        r.zone == "uplink-out"
            && r.kind == "snat"
            && if f.out {
                r.from.port() == f.port
                    && r.to.port() == OUTSIDE_HOLD_PORT
                    && r.rewritten_from.port() != snat_port
            } else {
                r.from.port() == HOLD_PORT && r.to.port() == f.port
            }
    })
}

/// Whether `rows` hold the flow's (forward, reply) entries. Published port: the forward entry
/// is keyed client -> 10.99.0.2:7000 at the uplink's ingress, the reply entry container:7000 ->
/// client at its egress. SNAT: the forward entry container -> 10.99.0.1:7001 at the egress, the
/// reply entry 10.99.0.1:7001 -> the SNAT port at the ingress, rewriting to the container's port.
fn entries_of(rows: &[NatRow], f: OldFlow) -> (bool, bool) {
    let (fwd_zone, rev_zone, server, kind) = if f.out {
        ("uplink-out", "uplink-in", OUTSIDE_HOLD_PORT, "snat")
    } else {
        ("uplink-in", "uplink-out", HOLD_PORT, "dnat")
    };
    let reply_kind = format!("{kind}-reply");
    let fwd = rows.iter().any(|r| {
        r.zone == fwd_zone && r.kind == kind && r.from.port() == f.port && r.to.port() == server
    });
    let rev = rows.iter().any(|r| {
        let back_to = if f.out {
            r.rewritten_to.port()
        } else {
            r.to.port()
        };
        r.zone == rev_zone && r.kind == reply_kind && r.from.port() == server && back_to == f.port
    });
    (fwd, rev)
}

/// Old flows seen, in at least one sample, with one entry of the two, with none, or translated
/// wrongly ([`mistranslated`]).
#[derive(Debug, Clone, Default)]
pub struct Sightings {
    pub samples: usize,
    pub tracked: usize,
    forward_only: BTreeSet<OldFlow>,
    reply_only: BTreeSet<OldFlow>,
    neither: BTreeSet<OldFlow>,
    wrong: BTreeSet<OldFlow>,
}

impl Sightings {
    fn add(&mut self, rows: &[NatRow], flows: &BTreeMap<OldFlow, u16>) {
        self.samples += 1;
        self.tracked = flows.len();
        for (&f, &snat_port) in flows {
            match entries_of(rows, f) {
                (true, false) => self.forward_only.insert(f),
                (false, true) => self.reply_only.insert(f),
                (false, false) => self.neither.insert(f),
                (true, true) => false,
            };
            if mistranslated(rows, f, snat_port) {
                self.wrong.insert(f);
            }
        }
    }

    /// Flows seen with the forward entry only, the reply entry only, neither, translated
    /// wrongly.
    #[cfg(test)]
    fn counts(&self) -> [usize; 4] {
        self.among(&self.all())
    }

    #[cfg(test)]
    fn all(&self) -> Vec<OldFlow> {
        let mut all: BTreeSet<OldFlow> = BTreeSet::new();
        for set in [
            &self.forward_only,
            &self.reply_only,
            &self.neither,
            &self.wrong,
        ] {
            all.extend(set.iter().copied());
        }
        all.into_iter().collect()
    }

    /// The same counts among `flows`.
    fn among(&self, flows: &[OldFlow]) -> [usize; 4] {
        let n = |set: &BTreeSet<OldFlow>| flows.iter().filter(|f| set.contains(f)).count();
        [
            n(&self.forward_only),
            n(&self.reply_only),
            n(&self.neither),
            n(&self.wrong),
        ]
    }
}

fn rss_mib(g: &Guard) -> f64 {
    g.daemon_pid()
        .and_then(scale::rss_kib)
        .map_or(f64::NAN, |k| k / 1024.0)
}

fn hold(g: &mut Guard, tool: &str, plan: &Plan) -> Result<HoldOutcome> {
    let hold_port = HOLD_PORT.to_string();
    container(
        g,
        "hold",
        &[format!("{hold_port}:{hold_port}")],
        &[vec![tool, "bench", "--helper", "hold-serve", &hold_port]],
    )?;
    let addr = format!("{UPLINK_IP}:{HOLD_PORT}");
    wait_for_hold_server(g, tool, &Place::Outside, &addr)?;
    let rss_before_mib = rss_mib(g);
    let mut client = start_hold(
        g,
        tool,
        "hold client",
        &Place::Outside,
        &addr,
        plan.conns,
        plan.hold_secs,
    )?;
    let ready = client.wait("ready", Duration::from_secs(300))?;
    println!(
        "bench: load: {} of {} connections open after {:.2} s",
        ready["opened"],
        plan.conns,
        ready["setup_secs"].as_f64().unwrap_or(f64::NAN)
    );
    // Halfway through the hold, every connection has pinged at least once.
    thread::sleep(Duration::from_secs_f64(plan.hold_secs / 2.0));
    let rss_held_mib = rss_mib(g);
    let keys = nat_rows(g)?;
    let held = client.done(Duration::from_secs_f64(plan.hold_secs + 60.0))?;
    println!(
        "bench: load: held {} connections {} s: {} exchanges, {} broken ({})",
        held.opened,
        plan.hold_secs,
        held.exchanges,
        held.broken,
        held.causes()
    );
    Ok(HoldOutcome {
        hold_secs: plan.hold_secs,
        held,
        rss_before_mib,
        rss_held_mib,
        nat_held: count_ports(&keys, &[HOLD_PORT]),
        nat_total: keys.len(),
    })
}

/// Runs the `connect` helper from `place` to `addr` and reads its counts.
fn churn(
    g: &Guard,
    tool: &str,
    place: &Place,
    addr: &str,
    secs: f64,
    threads: usize,
) -> Result<Churn> {
    let (s, t) = (secs.to_string(), threads.to_string());
    let mut cmd = place.command(g, &[tool, "bench", "--helper", "connect", addr, &s, &t]);
    let out = g.must(&mut cmd, Duration::from_secs_f64(secs + 60.0))?;
    let v: Value = serde_json::from_str(out.trim()).context("connect helper output")?;
    Ok(Churn {
        conns: v["conns"].as_u64().unwrap_or(0),
        errors: v["errors"].as_u64().unwrap_or(0),
        secs: v["secs"].as_f64().unwrap_or(secs),
    })
}

fn overflow(g: &mut Guard, tool: &str, plan: &Plan) -> Result<OverflowOutcome> {
    let table = plan.nat_entries.to_string();
    g.restart_netd(&["--nat-entries", &table])?;
    let (hold_port, churn_port) = (HOLD_PORT.to_string(), CHURN_CONTAINER_PORT.to_string());
    container(
        g,
        "ovf",
        &[
            format!("{hold_port}:{hold_port}"),
            format!("{CHURN_PORT}:{churn_port}"),
        ],
        &[
            vec![tool, "bench", "--helper", "hold-serve", &hold_port],
            vec![tool, "bench", "--helper", "serve", &churn_port],
        ],
    )?;
    let client_ns = ns("netd", "c");
    let (out_hold, out_churn) = (
        OUTSIDE_HOLD_PORT.to_string(),
        OUTSIDE_CHURN_PORT.to_string(),
    );
    g.spawn(
        "load hold server outside",
        world::in_ns(
            &client_ns,
            &[tool, "bench", "--helper", "hold-serve", &out_hold],
        ),
    )?;
    g.spawn(
        "load connection server outside",
        world::in_ns(
            &client_ns,
            &[tool, "bench", "--helper", "serve", &out_churn],
        ),
    )?;
    let inside = Place::Container("ovf");
    let (in_hold, out_hold) = (
        format!("{UPLINK_IP}:{HOLD_PORT}"),
        format!("{CLIENT_IP}:{OUTSIDE_HOLD_PORT}"),
    );
    let (in_churn, out_churn) = (
        format!("{UPLINK_IP}:{CHURN_PORT}"),
        format!("{CLIENT_IP}:{OUTSIDE_CHURN_PORT}"),
    );
    wait_for_hold_server(g, tool, &Place::Outside, &in_hold)?;
    wait_for_hold_server(g, tool, &inside, &out_hold)?;
    for (place, addr) in [(&Place::Outside, &in_churn), (&inside, &out_churn)] {
        let probe = place.command(g, &[tool, "bench", "--helper", "probe", addr]);
        g.must(&mut { probe }, Duration::from_secs(20))
            .with_context(|| format!("the short-connection server at {addr} does not answer"))?;
    }
    let secs = plan.churn_secs + plan.tail_secs;
    let mut old_in = start_hold(
        g,
        tool,
        "old flows in",
        &Place::Outside,
        &in_hold,
        plan.old_flows,
        secs,
    )?;
    let mut old_out = start_hold(
        g,
        tool,
        "old flows out",
        &inside,
        &out_hold,
        plan.old_flows,
        secs,
    )?;
    for c in [&mut old_in, &mut old_out] {
        let ready = c.wait("ready", Duration::from_secs(60))?;
        if ready["opened"].as_u64() != Some(plan.old_flows as u64) {
            bail!(
                "{}: only {} of {} old flows opened",
                c.what,
                ready["opened"],
                plan.old_flows
            );
        }
    }
    let before = nat_rows(g)?;
    let flows = old_flows(&before);
    let g: &Guard = g;
    let churning = AtomicBool::new(true);
    let sightings = Mutex::new(Sightings::default());
    let (churn_in, churn_out) = thread::scope(|s| {
        s.spawn(|| {
            while churning.load(Ordering::Relaxed) {
                if let Ok(rows) = nat_rows(g) {
                    sightings.lock().expect("sightings").add(&rows, &flows);
                }
                thread::sleep(SAMPLE_EVERY);
            }
        });
        let a = s.spawn(|| {
            churn(
                g,
                tool,
                &Place::Outside,
                &in_churn,
                plan.churn_secs,
                plan.churn_threads_in,
            )
        });
        let b = s.spawn(|| {
            churn(
                g,
                tool,
                &inside,
                &out_churn,
                plan.churn_secs,
                plan.churn_threads_out,
            )
        });
        let r = (
            a.join().map_err(|_| anyhow!("churn thread panicked")),
            b.join().map_err(|_| anyhow!("churn thread panicked")),
        );
        churning.store(false, Ordering::Relaxed);
        r
    });
    let (churn_in, churn_out) = (churn_in??, churn_out??);
    let after = nat_rows(g)?;
    let drops = drops(g).unwrap_or_default();
    let moves = nat_moves(g).unwrap_or_default();
    let wait = Duration::from_secs_f64(plan.tail_secs + 60.0);
    let (old_in, old_out) = (old_in.done(wait)?, old_out.done(wait)?);
    let sightings = sightings.into_inner().expect("sightings");
    let broken: Vec<OldFlow> = old_in
        .broken_ports
        .iter()
        .map(|&port| OldFlow { out: false, port })
        .chain(
            old_out
                .broken_ports
                .iter()
                .map(|&port| OldFlow { out: true, port }),
        )
        .collect();
    let intact: Vec<OldFlow> = flows
        .keys()
        .filter(|f| !broken.contains(f))
        .copied()
        .collect();
    let o = OverflowOutcome {
        table: plan.nat_entries,
        old_in,
        old_out,
        churn_in,
        churn_out,
        old_entries_before: 2 * flows.len(),
        old_entries_after: flows
            .keys()
            .map(|&f| {
                let (a, b) = entries_of(&after, f);
                usize::from(a) + usize::from(b)
            })
            .sum(),
        old_assured_after: {
            let assured: Vec<NatRow> = after
                .iter()
                .filter(|r| r.table == "assured")
                .cloned()
                .collect();
            flows
                .keys()
                .map(|&f| {
                    let (a, b) = entries_of(&assured, f);
                    usize::from(a) + usize::from(b)
                })
                .sum()
        },
        total_after: after.len(),
        assured_after: after.iter().filter(|r| r.table == "assured").count(),
        drops,
        moves,
        broken_seen: sightings.among(&broken),
        intact_seen: sightings.among(&intact),
        sightings,
    };
    println!(
        "bench: load: {} NAT entries inserted into a table of {} ({:.0}x); old flows broken: {} \
         of {} (in: {}; out: {}); old flows' entries {} before, {} after ({} assured)",
        o.inserted(),
        o.table,
        o.inserted() as f64 / f64::from(o.table),
        o.old_broken(),
        2 * plan.old_flows,
        o.old_in.causes(),
        o.old_out.causes(),
        o.old_entries_before,
        o.old_entries_after,
        o.old_assured_after
    );
    Ok(o)
}

/// Flows moved between the NAT tables so far: promoted, demoted; promotions refused (assured
/// table full).
fn nat_moves(g: &Guard) -> Result<[u64; 3]> {
    let maps = g.api(json!({"op": "maps_dump", "map": "nat_stats"}))?;
    let rows = maps[0]["rows"].as_array().context("maps_dump: no rows")?;
    let mut moves = [0; 3];
    for (slot, row) in moves.iter_mut().zip(rows) {
        *slot = row[1]
            .as_str()
            .and_then(|n| n.parse().ok())
            .context("maps_dump: a NAT move count")?;
    }
    Ok(moves)
}

/// The datapath's drop counters: (reason, packets).
fn drops(g: &Guard) -> Result<Vec<(String, String)>> {
    let maps = g.api(json!({"op": "maps_dump", "map": "drops"}))?;
    let rows = maps[0]["rows"].as_array().context("maps_dump: no rows")?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or_default().to_string(),
                r[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_that_never_opened_counts_as_an_error() {
        let v = json!({"opened": 98, "broken": 1, "failures": {"connect_error": 2, "reset": 1}});
        let held = Held::parse(100, &v);
        assert_eq!(held.errors(), 3);
        assert_eq!(held.causes(), "connect error 2, reset 1");
    }

    #[test]
    fn turnover_is_the_time_to_insert_a_table_full() {
        let o = OverflowOutcome {
            table: 4096,
            churn_in: Churn {
                conns: 20_000,
                errors: 0,
                secs: 10.0,
            },
            ..Default::default()
        };
        // 4,000 entries a second fill 4,096 in 1.024 s.
        assert_eq!(o.inserted(), 40_000);
        assert!((o.turnover_ms() - 1024.0).abs() < 1e-6);
    }

    fn row(zone: &str, kind: &str, flow: &str, rewritten: &str) -> NatRow {
        let (from, to) = flow_pair(flow).unwrap();
        let (rewritten_from, rewritten_to) = flow_pair(rewritten).unwrap();
        NatRow {
            zone: zone.into(),
            from,
            to,
            rewritten_from,
            rewritten_to,
            kind: kind.into(),
            tcp: "established".into(),
            table: "assured".into(),
        }
    }

    #[test]
    fn an_old_flows_two_entries_are_found_on_both_paths() {
        let mut rows = vec![
            // Published port: the client's port 40000, both entries.
            row(
                "uplink-in",
                "dnat",
                "10.99.0.1:40000 -> 10.99.0.2:7000",
                "10.99.0.1:40000 -> 172.17.0.2:7000",
            ),
            row(
                "uplink-out",
                "dnat-reply",
                "172.17.0.2:7000 -> 10.99.0.1:40000",
                "10.99.0.2:7000 -> 10.99.0.1:40000",
            ),
            // SNAT: the container's port 50000 leaving as 33000, its reply entry gone.
            row(
                "uplink-out",
                "snat",
                "172.17.0.2:50000 -> 10.99.0.1:7001",
                "10.99.0.2:33000 -> 10.99.0.1:7001",
            ),
            // A short flow.
            row(
                "uplink-in",
                "dnat",
                "10.99.0.1:40001 -> 10.99.0.2:8080",
                "10.99.0.1:40001 -> 172.17.0.2:80",
            ),
        ];
        let flows = old_flows(&rows);
        let (pub_flow, snat_flow) = (
            OldFlow {
                out: false,
                port: 40000,
            },
            OldFlow {
                out: true,
                port: 50000,
            },
        );
        assert_eq!(flows, BTreeMap::from([(pub_flow, 0), (snat_flow, 33000)]));
        assert_eq!(entries_of(&rows, pub_flow), (true, true));
        assert_eq!(entries_of(&rows, snat_flow), (true, false));
        assert!(!mistranslated(&rows, pub_flow, 0));
        // The published-port flow's reply entry is evicted and the container's answer leaves
        // through SNAT.
        rows.remove(1);
        rows.push(row(
            "uplink-out",
            "snat",
            "172.17.0.2:7000 -> 10.99.0.1:40000",
            "10.99.0.2:41234 -> 10.99.0.1:40000",
        ));
        assert!(mistranslated(&rows, pub_flow, 0));
        assert!(!mistranslated(&rows, snat_flow, 33000));
        assert!(mistranslated(&rows, snat_flow, 33001));
        let mut seen = Sightings::default();
        seen.add(&rows, &flows);
        assert_eq!(seen.among(&[pub_flow]), [1, 0, 0, 1]);
        assert_eq!(seen.counts(), [2, 0, 0, 1]);
        assert_eq!(count_ports(&rows, &[7000]), 2);
    }
}
