//! `netd daemon --metrics ADDR`: Prometheus text over HTTP (hyper), encoded by
//! prometheus-client from a snapshot taken at scrape time: drops by reason, traffic per
//! published port, NAT table fill, DNS queries and failures, containers and networks.
use std::{collections::BTreeMap, convert::Infallible, net::SocketAddr, sync::Arc};

use http_body_util::Full;
use hyper::{body::Bytes, server::conn::http1, service::service_fn, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use netd_common::{maps, PortKey, PortStats};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};
use tokio::{net::TcpListener, sync::Mutex};

use super::{error::OpResult, Daemon};
use crate::datapath::conntrack::Table;

/// `PORT` means 127.0.0.1:PORT; anything else must be an address with a port.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    match s.parse::<u16>() {
        Ok(port) => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
        Err(_) => s
            .parse()
            .map_err(|_| format!("invalid metrics address {s:?}: expected PORT or ADDR:PORT")),
    }
}

type Labels = Vec<(String, String)>;

/// Everything one scrape reports.
#[derive(Debug, Default)]
struct Snapshot {
    drops: Vec<(String, u64)>,
    ports: Vec<(Labels, PortStats)>,
    nat_entries: i64,
    nat_assured: i64,
    nat_capacity: i64,
    /// `NAT_STAT_*` counters: promoted, demoted, refused by a full assured table.
    nat_moves: [u64; 3],
    /// Overlay frames encapsulated and decapsulated.
    tunnel: [u64; netd_common::TUNNEL_STATS_LEN as usize],
    dns: [u64; 4],
    containers: BTreeMap<String, i64>,
    networks: i64,
}

impl Daemon {
    fn snapshot(&self) -> OpResult<Snapshot> {
        let drops = self
            .dp
            .drops()?
            .into_iter()
            .map(|(r, n)| (r.name().to_string(), n))
            .collect();
        let ports = self
            .dp
            .dump_per_cpu::<PortKey, PortStats>(maps::PORT_STATS, |a, b| PortStats {
                connections: a.connections + b.connections,
                packets: a.packets + b.packets,
                bytes: a.bytes + b.bytes,
            })?
            .into_iter()
            .map(|(k, s)| {
                let proto = super::maps::proto_name(k.proto);
                let labels = vec![
                    ("proto".to_string(), proto.to_string()),
                    (
                        "address".to_string(),
                        std::net::Ipv4Addr::from(k.addr).to_string(),
                    ),
                    ("port".to_string(), u16::from_be(k.port_be).to_string()),
                ];
                (labels, s)
            })
            .collect();
        let nat = self.dp.nat_entries()?;
        let mut containers = BTreeMap::new();
        for c in self.state.containers.values() {
            *containers
                .entry(format!("{:?}", c.status).to_lowercase())
                .or_default() += 1;
        }
        Ok(Snapshot {
            drops,
            ports,
            nat_entries: nat.len() as i64,
            nat_assured: nat.values().filter(|(t, _)| *t == Table::Assured).count() as i64,
            nat_capacity: self.config.nat_entries as i64,
            nat_moves: self.dp.nat_moves()?,
            tunnel: self.dp.tunnel_counts()?,
            dns: self.dns.counters(),
            containers,
            networks: self.state.networks.len() as i64,
        })
    }
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, u64)],
) -> std::fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, i64)],
) -> std::fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn label(k: &str, v: &str) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let drops: Vec<_> = self
            .drops
            .iter()
            .map(|(r, n)| (label("reason", r), *n))
            .collect();
        counter(
            &mut enc,
            "netd_dropped_packets",
            "Packets the datapath dropped, by reason",
            &drops,
        )?;
        let pick = |f: fn(&PortStats) -> u64| {
            self.ports
                .iter()
                .map(|(l, s)| (l.clone(), f(s)))
                .collect::<Vec<_>>()
        };
        counter(
            &mut enc,
            "netd_published_port_connections",
            "Connections through a published port",
            &pick(|s| s.connections),
        )?;
        counter(
            &mut enc,
            "netd_published_port_packets",
            "Packets through a published port (both directions)",
            &pick(|s| s.packets),
        )?;
        counter(
            &mut enc,
            "netd_published_port_bytes",
            "Bytes through a published port (both directions)",
            &pick(|s| s.bytes),
        )?;
        gauge(
            &mut enc,
            "netd_nat_entries",
            "Entries in the NAT tables, assured and new (two per flow)",
            &[(vec![], self.nat_entries)],
        )?;
        gauge(
            &mut enc,
            "netd_nat_assured_entries",
            "Entries in the assured NAT table (never evicted)",
            &[(vec![], self.nat_assured)],
        )?;
        gauge(
            &mut enc,
            "netd_nat_capacity",
            "Size of each NAT table (assured, and new)",
            &[(vec![], self.nat_capacity)],
        )?;
        let [promoted, demoted, full] = self.nat_moves;
        let moves = |m: &str, n| (vec![("move".to_string(), m.to_string())], n);
        counter(
            &mut enc,
            "netd_nat_moves",
            "Flows moved to the assured NAT table and back when closing, and promotions refused as it was full",
            &[
                moves("promoted", promoted),
                moves("demoted", demoted),
                moves("assured-full", full),
            ],
        )?;
        let [encap, decap, too_big, fragmented] = self.tunnel;
        let way = |w: &str, n| (vec![("direction".to_string(), w.to_string())], n);
        counter(
            &mut enc,
            "netd_tunnel_frames",
            "Overlay frames sent into the VXLAN tunnel (encapsulated) and delivered out of it (decapsulated)",
            &[way("encapsulated", encap), way("decapsulated", decap)],
        )?;
        let fate = |f: &str, n| (vec![("fate".to_string(), f.to_string())], n);
        counter(
            &mut enc,
            "netd_tunnel_oversize",
            "Overlay packets too big for the tunnel: answered with ICMP fragmentation needed (DF set) or fragmented by the VXLAN device",
            &[fate("frag-needed", too_big), fate("fragmented", fragmented)],
        )?;
        let [queries, local, forwarded, failures] = self.dns;
        counter(
            &mut enc,
            "netd_dns_queries",
            "Queries to the embedded DNS server",
            &[(vec![], queries)],
        )?;
        counter(
            &mut enc,
            "netd_dns_answered_locally",
            "Queries answered from container names",
            &[(vec![], local)],
        )?;
        counter(
            &mut enc,
            "netd_dns_forwarded",
            "Queries forwarded upstream",
            &[(vec![], forwarded)],
        )?;
        counter(
            &mut enc,
            "netd_dns_failures",
            "Queries that got no answer or SERVFAIL",
            &[(vec![], failures)],
        )?;
        let containers: Vec<_> = self
            .containers
            .iter()
            .map(|(s, n)| (label("status", s), *n))
            .collect();
        gauge(
            &mut enc,
            "netd_containers",
            "Containers by status",
            &containers,
        )?;
        gauge(
            &mut enc,
            "netd_networks",
            "Networks",
            &[(vec![], self.networks)],
        )
    }
}

/// Serves `/metrics` until the daemon stops.
pub async fn serve(listener: TcpListener, daemon: Arc<Mutex<Daemon>>) -> anyhow::Result<()> {
    tracing::info!(addr = ?listener.local_addr(), "serving Prometheus metrics");
    loop {
        let (stream, _) = listener.accept().await?;
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| respond(req, daemon.clone()));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%e, "metrics connection failed");
            }
        });
    }
}

async fn respond(
    req: Request<hyper::body::Incoming>,
    daemon: Arc<Mutex<Daemon>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status, body: String| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        Ok(resp)
    };
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "not found: try /metrics\n".into());
    }
    let snapshot = daemon.lock().await.snapshot();
    let snapshot = match snapshot {
        Ok(s) => s,
        Err(e) => return reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => reply(StatusCode::OK, text),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}
