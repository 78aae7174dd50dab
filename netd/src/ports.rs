//! Docker port publishing syntax: `docker run -p/--publish`, `-P`, `--expose`
//! and the output of `docker port`.
//!
//! Everything here is pure (no sockets, no system state) so the daemon and the
//! CLI can share it and it can be unit-tested exhaustively.
//!
//! Parsing follows Docker's own parser (`nat.ParsePortSpec` in
//! `github.com/docker/go-connections`) as closely as an IPv4-only daemon can:
//!
//! | spec                              | result                                                        |
//! |-----------------------------------|---------------------------------------------------------------|
//! | `80`                              | 0.0.0.0, ephemeral host port → 80/tcp                         |
//! | `8080:80`                         | 0.0.0.0:8080 → 80/tcp                                         |
//! | `127.0.0.1:8080:80/udp`           | 127.0.0.1:8080 → 80/udp                                       |
//! | `127.0.0.1::80`, `:80`, `::80`    | ephemeral host port (empty IP = 0.0.0.0)                      |
//! | `8000-8002:80-82`                 | three 1:1 mappings                                            |
//! | `8000-8010:80`                    | one mapping; host port chosen later from 8000-8010            |
//! | `80-82`                           | three mappings with ephemeral host ports                      |
//!
//! Decisions where Docker's behaviour is odd, or impossible for us:
//!
//! * IPv6 host addresses (`[::1]:80:80`, `::1:80:80`) are rejected with
//!   [`PortSpecError::Ipv6Unsupported`]; Docker accepts them.
//! * `::80` is accepted exactly like Docker does: splitting on `:` gives an
//!   empty IP and an empty host port, so it means the same as `80`.
//! * More than two colons that do not form an IPv6 address (`1:2:3:4`) are
//!   [`PortSpecError::TooManyColons`] (Docker says "invalid IP address: 1:2").
//! * A bracketed IPv4 address (`[127.0.0.1]:80:80`) is accepted, as in Docker.
//! * Protocols are case-insensitive and `80/` means `80/tcp`, as in Docker.
//!   `sctp` (which Docker accepts) is rejected: we only do TCP and UDP.
//! * Host port `0` (`0:80`) means "ephemeral", as in Docker. Container port
//!   `0` is an error. A host *range* that includes 0 (`0-10:80`) is an error
//!   (Docker would mix ephemeral and fixed ports).
//! * Only ASCII digits are port numbers (Go's parser would take `+80`).
//! * `--expose` rejects anything with a colon, as the Docker CLI does, and an
//!   empty spec (which the Docker CLI turns into a nonsense port `0/`).
//!
//! Host port allocation ([`allocate`]) scans a range from its start, skipping
//! ports that are `taken` or that [`conflict`](conflicts) with another mapping
//! of the same request, so it is deterministic. (Docker's allocator keeps a
//! moving cursor across containers; a pure function cannot.)

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Linux's default `net.ipv4.ip_local_port_range`, which Docker uses for
/// ephemeral host ports.
pub const DEFAULT_EPHEMERAL: RangeInclusive<u16> = 32768..=60999;

/// Transport protocol of a published or exposed port.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    #[default]
    Tcp,
    Udp,
}

impl Proto {
    /// `"tcp"` or `"udp"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Case-insensitive, like Docker. The error is the rejected text.
impl FromStr for Proto {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("tcp") {
            Ok(Proto::Tcp)
        } else if s.eq_ignore_ascii_case("udp") {
            Ok(Proto::Udp)
        } else {
            Err(s.to_string())
        }
    }
}

/// An inclusive range of host ports to choose one port from
/// (`-p 8000-8010:80`). Always `1 <= start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HostRange {
    pub start: u16,
    pub end: u16,
}

impl fmt::Display for HostRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// One published port, after range expansion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// `0.0.0.0` = every host address.
    pub host_ip: Ipv4Addr,
    /// `0` = not chosen yet (ephemeral, or from `host_range`).
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
    /// Where to choose the host port from; only meaningful (and only set by
    /// this module) while `host_port == 0`. `None` = the ephemeral range.
    /// [`allocate`] clears it when it picks the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_range: Option<HostRange>,
}

impl PortMapping {
    /// A mapping without a host range.
    pub fn new(host_ip: Ipv4Addr, host_port: u16, container_port: u16, proto: Proto) -> Self {
        PortMapping {
            host_ip,
            host_port,
            container_port,
            proto,
            host_range: None,
        }
    }

    /// Whether the host port still has to be chosen by [`allocate`].
    pub fn needs_allocation(&self) -> bool {
        self.host_port == 0
    }
}

/// The canonical spec `ip:hostPort:containerPort/proto`, which
/// [`parse_publish`] turns back into this mapping. An unchosen host port is
/// written as its range (`0.0.0.0:8000-8010:80/tcp`) or left empty
/// (`0.0.0.0::80/tcp`).
impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.host_ip)?;
        match (self.host_port, self.host_range) {
            (0, Some(r)) => write!(f, "{r}")?,
            (0, None) => {}
            (p, _) => write!(f, "{p}")?,
        }
        write!(f, ":{}/{}", self.container_port, self.proto)
    }
}

/// A port the container exposes (`--expose`, `EXPOSE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ExposedPort {
    pub port: u16,
    pub proto: Proto,
}

/// `80/tcp`, Docker's key for exposed ports.
impl fmt::Display for ExposedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.proto)
    }
}

/// Which side of a mapping a port number belongs to (for error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Host,
    Container,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Host => "host port",
            Side::Container => "container port",
        })
    }
}

/// Why a port spec was rejected, or why a host port could not be allocated.
/// Every message is one line and quotes the offending spec.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PortSpecError {
    #[error("invalid port spec {spec:?}: no port specified")]
    Empty { spec: String },
    #[error("invalid port spec {spec:?}: {side} is empty")]
    EmptyPort { spec: String, side: Side },
    #[error("invalid port spec {spec:?}: {side} {value:?} is not a number")]
    NotANumber {
        spec: String,
        side: Side,
        value: String,
    },
    #[error("invalid port spec {spec:?}: {side} {value:?} is out of range (max 65535)")]
    OutOfRange {
        spec: String,
        side: Side,
        value: String,
    },
    #[error("invalid port spec {spec:?}: {side} 0 is not allowed")]
    ZeroPort { spec: String, side: Side },
    #[error(
        "invalid port spec {spec:?}: {side} range {value:?} is malformed (expected START-END)"
    )]
    MalformedRange {
        spec: String,
        side: Side,
        value: String,
    },
    #[error("invalid port spec {spec:?}: {side} range {value:?} starts after it ends")]
    ReversedRange {
        spec: String,
        side: Side,
        value: String,
    },
    #[error(
        "invalid port spec {spec:?}: invalid ranges specified for container and host ports: \
         {container} and {host} (lengths must match unless the container port is a single port)"
    )]
    RangeMismatch {
        spec: String,
        host: String,
        container: String,
    },
    #[error("invalid port spec {spec:?}: protocol {proto:?} is not supported (use tcp or udp)")]
    InvalidProto { spec: String, proto: String },
    #[error("invalid port spec {spec:?}: too many colons (expected [[ip:]hostPort:]containerPort[/proto])")]
    TooManyColons { spec: String },
    #[error("invalid port spec {spec:?}: IPv6 address {ip:?} is not supported (IPv4 only)")]
    Ipv6Unsupported { spec: String, ip: String },
    #[error("invalid port spec {spec:?}: {ip:?} is not a valid IPv4 address")]
    InvalidIp { spec: String, ip: String },
    #[error("invalid expose spec {spec:?}: expected PORT[/PROTO] or START-END[/PROTO], not a host mapping")]
    ExposeWithHost { spec: String },
    #[error("cannot publish {mapping:?}: no free host port in {range}")]
    NoFreePort { mapping: String, range: HostRange },
}

/// A parsed `N` or `START-END`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: u16,
    end: u16,
}

impl Range {
    fn is_single(self) -> bool {
        self.start == self.end
    }

    /// Number of ports minus one.
    fn span(self) -> u16 {
        self.end - self.start
    }
}

/// Parses one port number (digits only).
fn parse_port(spec: &str, side: Side, value: &str) -> Result<u16, PortSpecError> {
    if value.is_empty() {
        return Err(PortSpecError::EmptyPort {
            spec: spec.to_string(),
            side,
        });
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortSpecError::NotANumber {
            spec: spec.to_string(),
            side,
            value: value.to_string(),
        });
    }
    value.parse::<u16>().map_err(|_| PortSpecError::OutOfRange {
        spec: spec.to_string(),
        side,
        value: value.to_string(),
    })
}

/// Parses `N` or `START-END` (`N-N` is the single port `N`, as in Docker).
fn parse_range(spec: &str, side: Side, value: &str) -> Result<Range, PortSpecError> {
    if value.is_empty() {
        return Err(PortSpecError::EmptyPort {
            spec: spec.to_string(),
            side,
        });
    }
    let Some((a, b)) = value.split_once('-') else {
        let p = parse_port(spec, side, value)?;
        return Ok(Range { start: p, end: p });
    };
    if a.is_empty() || b.is_empty() || b.contains('-') {
        return Err(PortSpecError::MalformedRange {
            spec: spec.to_string(),
            side,
            value: value.to_string(),
        });
    }
    let start = parse_port(spec, side, a)?;
    let end = parse_port(spec, side, b)?;
    if start > end {
        return Err(PortSpecError::ReversedRange {
            spec: spec.to_string(),
            side,
            value: value.to_string(),
        });
    }
    Ok(Range { start, end })
}

/// Splits `PORTS[/PROTO]`; an empty proto is tcp (Docker's `SplitProtoPort`).
fn split_proto<'a>(spec: &str, ports: &'a str) -> Result<(&'a str, Proto), PortSpecError> {
    match ports.split_once('/') {
        None => Ok((ports, Proto::Tcp)),
        Some((p, "")) => Ok((p, Proto::Tcp)),
        Some((p, proto)) => {
            let proto = proto
                .parse::<Proto>()
                .map_err(|proto| PortSpecError::InvalidProto {
                    spec: spec.to_string(),
                    proto,
                })?;
            Ok((p, proto))
        }
    }
}

/// Parses the host IP part; empty means 0.0.0.0.
fn parse_host_ip(spec: &str, ip: &str) -> Result<Ipv4Addr, PortSpecError> {
    if ip.is_empty() {
        return Ok(Ipv4Addr::UNSPECIFIED);
    }
    let ipv6 = || PortSpecError::Ipv6Unsupported {
        spec: spec.to_string(),
        ip: ip.to_string(),
    };
    let invalid = || PortSpecError::InvalidIp {
        spec: spec.to_string(),
        ip: ip.to_string(),
    };
    let bare = match ip.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']').ok_or_else(invalid)?,
        None => ip,
    };
    if let Ok(v4) = bare.parse::<Ipv4Addr>() {
        return Ok(v4);
    }
    let unzoned = bare.split_once('%').map_or(bare, |(addr, _zone)| addr);
    if unzoned.parse::<Ipv6Addr>().is_ok() {
        return Err(ipv6());
    }
    if ip.contains(':') {
        return Err(PortSpecError::TooManyColons {
            spec: spec.to_string(),
        });
    }
    Err(invalid())
}

/// Parses one `-p/--publish` value into mappings, expanding ranges.
///
/// Forms: `containerPort`, `hostPort:containerPort`,
/// `ip:hostPort:containerPort`, `ip::containerPort`, each with an optional
/// `/tcp` or `/udp`; ports may be `START-END` ranges. See the module docs for
/// the exact rules.
pub fn parse_publish(spec: &str) -> Result<Vec<PortMapping>, PortSpecError> {
    if spec.is_empty() {
        return Err(PortSpecError::Empty {
            spec: spec.to_string(),
        });
    }
    // Docker: the last part is the container port, the one before it the host
    // port, and everything before that (colons included) the IP.
    let (ip, host, container) = match spec.rsplitn(3, ':').collect::<Vec<_>>()[..] {
        [c] => ("", "", c),
        [c, h] => ("", h, c),
        [c, h, ip] => (ip, h, c),
        _ => unreachable!("rsplitn(3) yields 1 to 3 parts"),
    };

    let (container, proto) = split_proto(spec, container)?;
    if container.is_empty() {
        return Err(PortSpecError::EmptyPort {
            spec: spec.to_string(),
            side: Side::Container,
        });
    }
    let host_ip = parse_host_ip(spec, ip)?;
    let cr = parse_range(spec, Side::Container, container)?;
    if cr.start == 0 {
        return Err(PortSpecError::ZeroPort {
            spec: spec.to_string(),
            side: Side::Container,
        });
    }
    let hr = if host.is_empty() {
        None
    } else {
        let hr = parse_range(spec, Side::Host, host)?;
        if hr.span() != cr.span() && !cr.is_single() {
            return Err(PortSpecError::RangeMismatch {
                spec: spec.to_string(),
                host: host.to_string(),
                container: container.to_string(),
            });
        }
        if hr.start == 0 && !hr.is_single() {
            return Err(PortSpecError::ZeroPort {
                spec: spec.to_string(),
                side: Side::Host,
            });
        }
        Some(hr)
    };

    let mapping = |host_port, container_port, host_range| PortMapping {
        host_ip,
        host_port,
        container_port,
        proto,
        host_range,
    };
    Ok(match hr {
        // One container port, a host range to choose from later.
        Some(hr) if hr.span() != cr.span() => vec![mapping(
            0,
            cr.start,
            Some(HostRange {
                start: hr.start,
                end: hr.end,
            }),
        )],
        Some(hr) => (0..=cr.span())
            .map(|i| mapping(hr.start + i, cr.start + i, None))
            .collect(),
        None => (cr.start..=cr.end).map(|c| mapping(0, c, None)).collect(),
    })
}

/// Parses one `--expose` value: `PORT[/PROTO]` or `START-END[/PROTO]`.
pub fn parse_expose(spec: &str) -> Result<Vec<ExposedPort>, PortSpecError> {
    if spec.is_empty() {
        return Err(PortSpecError::Empty {
            spec: spec.to_string(),
        });
    }
    if spec.contains(':') {
        return Err(PortSpecError::ExposeWithHost {
            spec: spec.to_string(),
        });
    }
    let (ports, proto) = split_proto(spec, spec)?;
    let r = parse_range(spec, Side::Container, ports)?;
    if r.start == 0 {
        return Err(PortSpecError::ZeroPort {
            spec: spec.to_string(),
            side: Side::Container,
        });
    }
    Ok((r.start..=r.end)
        .map(|port| ExposedPort { port, proto })
        .collect())
}

/// What `-P/--publish-all` adds: every exposed port on 0.0.0.0 with an
/// ephemeral host port, duplicates dropped, in the order given.
///
/// Docker adds these only for exposed ports that have no `-p` binding; see
/// [`publish_all_unbound`].
pub fn publish_all(exposed: &[ExposedPort]) -> Vec<PortMapping> {
    let mut seen = std::collections::HashSet::new();
    exposed
        .iter()
        .filter(|e| seen.insert(**e))
        .map(|e| PortMapping::new(Ipv4Addr::UNSPECIFIED, 0, e.port, e.proto))
        .collect()
}

/// `-P` as the Docker daemon applies it next to explicit `-p` mappings:
/// [`publish_all`] for the exposed ports that `published` does not already
/// bind (same container port and protocol).
pub fn publish_all_unbound(exposed: &[ExposedPort], published: &[PortMapping]) -> Vec<PortMapping> {
    let bound: std::collections::HashSet<(u16, Proto)> = published
        .iter()
        .map(|m| (m.container_port, m.proto))
        .collect();
    publish_all(exposed)
        .into_iter()
        .filter(|m| !bound.contains(&(m.container_port, m.proto)))
        .collect()
}

/// Whether two mappings would bind the same host socket: same protocol, same
/// (chosen) host port, and the same host IP or either one on 0.0.0.0.
/// Mappings whose host port is not chosen yet (0) conflict with nothing.
pub fn conflicts(a: &PortMapping, b: &PortMapping) -> bool {
    a.proto == b.proto
        && a.host_port != 0
        && a.host_port == b.host_port
        && (a.host_ip == b.host_ip || a.host_ip.is_unspecified() || b.host_ip.is_unspecified())
}

/// The first mapping of `wanted` that [conflicts] with an earlier one of `wanted` or with any of
/// `others`. One pass over `others`, each tested against a bit per wanted (protocol, port)
/// first, so checking a port against 100,000 published ones costs a scan of them (a load and
/// a shift each), not a scan per wanted mapping.
pub fn first_clash<'a, 'b>(
    wanted: &'a [PortMapping],
    others: impl IntoIterator<Item = &'b PortMapping>,
) -> Option<&'a PortMapping> {
    let mut asked: HashMap<(Proto, u16), Vec<&'a PortMapping>> = HashMap::new();
    let mut bits = PortBits::default();
    for m in wanted.iter().filter(|m| m.host_port != 0) {
        let same_port = asked.entry((m.proto, m.host_port)).or_default();
        if same_port.iter().any(|o| conflicts(m, o)) {
            return Some(m);
        }
        same_port.push(m);
        bits.insert(m.proto, m.host_port);
    }
    others
        .into_iter()
        .filter(|o| bits.contains(o.proto, o.host_port))
        .find_map(|o| {
            asked
                .get(&(o.proto, o.host_port))?
                .iter()
                .find(|m| conflicts(m, o))
                .copied()
        })
}

/// A set of (protocol, port) pairs, one bit each (16 KiB).
struct PortBits(Vec<u64>);

impl Default for PortBits {
    fn default() -> Self {
        Self(vec![0; 2 << 16 >> 6])
    }
}

impl PortBits {
    fn index(proto: Proto, port: u16) -> usize {
        (usize::from(proto == Proto::Udp) << 16) | usize::from(port)
    }

    fn insert(&mut self, proto: Proto, port: u16) {
        let i = Self::index(proto, port);
        self.0[i >> 6] |= 1 << (i & 63);
    }

    fn contains(&self, proto: Proto, port: u16) -> bool {
        let i = Self::index(proto, port);
        self.0[i >> 6] & (1 << (i & 63)) != 0
    }
}

/// The host sockets a set of mappings holds, by (protocol, port), to ask whether a candidate
/// is [taken](Self::taken) without scanning every mapping.
#[derive(Debug, Default)]
pub struct Holders(HashMap<(Proto, u16), Vec<Ipv4Addr>>);

impl Holders {
    pub fn new<'a>(mappings: impl IntoIterator<Item = &'a PortMapping>) -> Self {
        let mut held: HashMap<_, Vec<_>> = HashMap::new();
        for m in mappings.into_iter().filter(|m| m.host_port != 0) {
            held.entry((m.proto, m.host_port))
                .or_default()
                .push(m.host_ip);
        }
        Self(held)
    }

    /// Whether binding `ip:port` would [conflict](conflicts) with a held mapping.
    pub fn taken(&self, proto: Proto, ip: Ipv4Addr, port: u16) -> bool {
        self.0.get(&(proto, port)).is_some_and(|ips| {
            ips.iter()
                .any(|o| *o == ip || o.is_unspecified() || ip.is_unspecified())
        })
    }
}

/// Gives every mapping with `host_port == 0` a free host port: from its
/// `host_range` if it has one (then cleared), else from `ephemeral` (Linux's
/// default is [`DEFAULT_EPHEMERAL`]). Port 0 is never chosen.
///
/// A port is free if `taken(proto, ip, port)` is false and it does not
/// [conflict](conflicts) with any other mapping in `mappings` (fixed ones
/// included, wherever they are in the slice). `taken` should apply the same
/// 0.0.0.0 rule as [`conflicts`]. Fixed mappings are not checked.
///
/// On error, mappings before the failing one have already been assigned.
pub fn allocate(
    mappings: &mut [PortMapping],
    taken: impl Fn(Proto, Ipv4Addr, u16) -> bool,
    ephemeral: RangeInclusive<u16>,
) -> Result<(), PortSpecError> {
    // Indices of mappings holding each (proto, host port), to test candidates
    // against with `conflicts` without scanning every mapping.
    let mut holders: HashMap<(Proto, u16), Vec<usize>> = HashMap::new();
    for (i, m) in mappings.iter().enumerate() {
        if m.host_port != 0 {
            holders.entry((m.proto, m.host_port)).or_default().push(i);
        }
    }
    // Where the next scan of a (range, proto, ip) may start: every port below
    // it was found taken or has been handed out, and nothing is freed here.
    let mut cursors: HashMap<(u16, u16, Proto, Ipv4Addr), u32> = HashMap::new();

    for i in 0..mappings.len() {
        let m = mappings[i];
        if m.host_port != 0 {
            continue;
        }
        let range = m.host_range.unwrap_or(HostRange {
            start: *ephemeral.start(),
            end: *ephemeral.end(),
        });
        let key = (range.start, range.end, m.proto, m.host_ip);
        let from = cursors
            .get(&key)
            .copied()
            .unwrap_or(u32::from(range.start))
            .max(1);
        let free = (from..=u32::from(range.end))
            .map(|p| p as u16)
            .find(|&port| {
                let candidate = PortMapping {
                    host_port: port,
                    host_range: None,
                    ..m
                };
                !taken(m.proto, m.host_ip, port)
                    && !holders.get(&(m.proto, port)).is_some_and(|held| {
                        held.iter()
                            .any(|&j| j != i && conflicts(&candidate, &mappings[j]))
                    })
            });
        let Some(port) = free else {
            return Err(PortSpecError::NoFreePort {
                mapping: m.to_string(),
                range,
            });
        };
        cursors.insert(key, u32::from(port) + 1);
        mappings[i].host_port = port;
        mappings[i].host_range = None;
        holders.entry((m.proto, port)).or_default().push(i);
    }
    Ok(())
}

/// The lines `docker port CONTAINER` prints, e.g. `80/tcp -> 0.0.0.0:8080`, in Docker 20.10's
/// order: by container port and protocol, and within one port by the host port that was asked
/// for, highest first, one chosen by Docker (`-p 80`) last (moby's `nat.SortPortMap`, which
/// orders the bindings before the bridge driver binds them; `docker port` lists them so). Ties
/// go by host IP and port. Mappings in `bound` whose host port is not chosen yet are left out
/// (Docker only lists bindings); `requested` are the container's `-p` requests.
pub fn docker_port_lines(bound: &[PortMapping], requested: &[PortMapping]) -> Vec<String> {
    let mut bound: Vec<&PortMapping> = bound.iter().filter(|m| m.host_port != 0).collect();
    bound.sort_by_key(|m| {
        let asked = asked_host_port(m, requested);
        (
            m.container_port,
            m.proto,
            std::cmp::Reverse(asked),
            m.host_ip,
            m.host_port,
        )
    });
    bound
        .into_iter()
        .map(|m| {
            format!(
                "{}/{} -> {}:{}",
                m.container_port, m.proto, m.host_ip, m.host_port
            )
        })
        .collect()
}

/// The host port the request behind binding `b` asked for: its own port, the first of its
/// range, or 0 when Docker was to choose it (or no request is found).
fn asked_host_port(b: &PortMapping, requested: &[PortMapping]) -> u16 {
    let same = |p: &&PortMapping| {
        p.container_port == b.container_port && p.proto == b.proto && p.host_ip == b.host_ip
    };
    let mut candidates = requested.iter().filter(same);
    if candidates.clone().any(|p| p.host_port == b.host_port) {
        return b.host_port;
    }
    candidates
        .find_map(|p| {
            p.host_range
                .filter(|r| (r.start..=r.end).contains(&b.host_port))
                .map(|r| r.start)
        })
        .unwrap_or(0)
}

/// `docker port NAME PORT[/PROTO]`: the host sides (`0.0.0.0:8080`) of the lines of
/// [`docker_port_lines`] for that one container port (protocol `tcp` unless given), or Docker's
/// error when it has none.
pub fn docker_port_of(
    lines: &[String],
    container: &str,
    spec: &str,
) -> Result<Vec<String>, String> {
    let (port, proto) = match spec.split_once('/') {
        Some((port, proto)) if !proto.is_empty() => (port, proto.to_ascii_lowercase()),
        Some((port, _)) => (port, "tcp".to_string()),
        None => (spec, "tcp".to_string()),
    };
    let number: u16 = port.parse().map_err(|_| {
        format!(
            "invalid port {:?}: expected PORT[/tcp|udp]",
            spec.escape_debug().to_string()
        )
    })?;
    if proto != "tcp" && proto != "udp" {
        return Err(format!(
            "invalid protocol {:?} in {:?}: expected tcp or udp",
            proto.escape_debug().to_string(),
            spec.escape_debug().to_string()
        ));
    }
    let key = format!("{number}/{proto}");
    let found: Vec<String> = lines
        .iter()
        .filter_map(|l| l.split_once(" -> "))
        .filter(|(left, _)| *left == key)
        .map(|(_, right)| right.to_string())
        .collect();
    if found.is_empty() {
        return Err(format!("No public port '{key}' published for {container}"));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_port_prints_its_host_sides_as_docker_port_does() {
        let ms = [
            m(ANY, 8080, 80, Proto::Tcp),
            m(LO, 8081, 80, Proto::Tcp),
            m(ANY, 5353, 53, Proto::Udp),
        ];
        let lines = docker_port_lines(&ms, &ms);
        assert_eq!(
            docker_port_of(&lines, "web", "80"),
            Ok(vec![
                "127.0.0.1:8081".to_string(),
                "0.0.0.0:8080".to_string()
            ])
        );
        assert_eq!(
            docker_port_of(&lines, "web", "80/tcp"),
            docker_port_of(&lines, "web", "80")
        );
        assert_eq!(
            docker_port_of(&lines, "web", "53/udp"),
            Ok(vec!["0.0.0.0:5353".to_string()])
        );
        assert_eq!(
            docker_port_of(&lines, "web", "53"),
            Err("No public port '53/tcp' published for web".to_string())
        );
        for bad in ["abc", "80/sctp", "99999", ""] {
            let err = docker_port_of(&lines, "web", bad).unwrap_err();
            assert!(err.starts_with("invalid"), "{bad}: {err}");
        }
    }

    const ANY: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
    const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;

    fn m(ip: Ipv4Addr, host: u16, container: u16, proto: Proto) -> PortMapping {
        PortMapping::new(ip, host, container, proto)
    }

    fn ranged(ip: Ipv4Addr, start: u16, end: u16, container: u16, proto: Proto) -> PortMapping {
        PortMapping {
            host_range: Some(HostRange { start, end }),
            ..m(ip, 0, container, proto)
        }
    }

    fn p(spec: &str) -> Vec<PortMapping> {
        parse_publish(spec).unwrap_or_else(|e| panic!("{spec:?} should parse: {e}"))
    }

    #[test]
    fn first_clash_finds_a_port_taken_by_another_or_asked_twice() {
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        let others = [m(ANY, 8080, 80, Proto::Tcp), m(ip, 9090, 90, Proto::Tcp)];
        let free = [m(LO, 9090, 90, Proto::Tcp), m(ANY, 8080, 80, Proto::Udp)];
        assert_eq!(first_clash(&free, &others), None);
        let on_wildcard = [m(LO, 7070, 70, Proto::Tcp), m(LO, 8080, 80, Proto::Tcp)];
        assert_eq!(first_clash(&on_wildcard, &others), Some(&on_wildcard[1]));
        let over_specific = [m(ANY, 9090, 90, Proto::Tcp)];
        assert_eq!(
            first_clash(&over_specific, &others),
            Some(&over_specific[0])
        );
        let twice = [m(LO, 7070, 70, Proto::Tcp), m(ANY, 7070, 71, Proto::Tcp)];
        assert_eq!(first_clash(&twice, []), Some(&twice[1]));
        let unchosen = [m(ANY, 0, 80, Proto::Tcp), m(ANY, 0, 80, Proto::Tcp)];
        assert_eq!(first_clash(&unchosen, &others), None);
    }

    #[test]
    fn port_bits_keep_protocols_and_the_ends_of_the_range_apart() {
        let mut bits = PortBits::default();
        bits.insert(Proto::Udp, 65535);
        bits.insert(Proto::Tcp, 1);
        assert!(bits.contains(Proto::Udp, 65535) && bits.contains(Proto::Tcp, 1));
        assert!(!bits.contains(Proto::Tcp, 65535) && !bits.contains(Proto::Udp, 1));
        assert!(!bits.contains(Proto::Tcp, 0) && !bits.contains(Proto::Tcp, 2));
    }

    #[test]
    fn holders_apply_the_wildcard_rule_both_ways() {
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        let held = Holders::new(&[m(ANY, 8080, 80, Proto::Tcp), m(ip, 9090, 90, Proto::Tcp)]);
        assert!(held.taken(Proto::Tcp, LO, 8080));
        assert!(!held.taken(Proto::Udp, LO, 8080));
        assert!(held.taken(Proto::Tcp, ANY, 9090));
        assert!(held.taken(Proto::Tcp, ip, 9090));
        assert!(!held.taken(Proto::Tcp, LO, 9090));
        assert!(!held.taken(Proto::Tcp, ANY, 7070));
    }

    fn err(spec: &str) -> PortSpecError {
        match parse_publish(spec) {
            Ok(v) => panic!("{spec:?} should fail, got {v:?}"),
            Err(e) => e,
        }
    }

    fn never(_: Proto, _: Ipv4Addr, _: u16) -> bool {
        false
    }

    // ---- parse_publish: accepted forms ----

    #[test]
    fn container_port_alone_is_ephemeral_tcp_on_all_addresses() {
        assert_eq!(p("80"), vec![m(ANY, 0, 80, Proto::Tcp)]);
    }

    #[test]
    fn host_and_container_port_bind_all_addresses() {
        assert_eq!(p("8080:80"), vec![m(ANY, 8080, 80, Proto::Tcp)]);
    }

    #[test]
    fn udp_suffix_selects_udp() {
        assert_eq!(p("8080:80/udp"), vec![m(ANY, 8080, 80, Proto::Udp)]);
    }

    #[test]
    fn ip_host_container_binds_that_ip() {
        assert_eq!(p("127.0.0.1:8080:80"), vec![m(LO, 8080, 80, Proto::Tcp)]);
    }

    #[test]
    fn ip_with_empty_host_port_is_ephemeral_on_that_ip() {
        assert_eq!(p("127.0.0.1::80"), vec![m(LO, 0, 80, Proto::Tcp)]);
    }

    #[test]
    fn explicit_tcp_suffix_is_tcp() {
        assert_eq!(
            p("10.0.0.1:8080:80/tcp"),
            vec![m(Ipv4Addr::new(10, 0, 0, 1), 8080, 80, Proto::Tcp)]
        );
    }

    #[test]
    fn equal_length_ranges_map_one_to_one() {
        assert_eq!(
            p("8000-8002:80-82"),
            vec![
                m(ANY, 8000, 80, Proto::Tcp),
                m(ANY, 8001, 81, Proto::Tcp),
                m(ANY, 8002, 82, Proto::Tcp),
            ]
        );
    }

    #[test]
    fn host_range_with_single_container_port_is_one_mapping_allocated_later() {
        let got = p("8000-8010:80");
        assert_eq!(got, vec![ranged(ANY, 8000, 8010, 80, Proto::Tcp)]);
        assert!(got[0].needs_allocation());
    }

    #[test]
    fn container_range_alone_gives_an_ephemeral_mapping_per_port() {
        assert_eq!(
            p("80-82"),
            vec![
                m(ANY, 0, 80, Proto::Tcp),
                m(ANY, 0, 81, Proto::Tcp),
                m(ANY, 0, 82, Proto::Tcp),
            ]
        );
    }

    #[test]
    fn ip_with_ranges_and_udp() {
        assert_eq!(
            p("127.0.0.1:8000-8001:80-81/udp"),
            vec![m(LO, 8000, 80, Proto::Udp), m(LO, 8001, 81, Proto::Udp)]
        );
    }

    #[test]
    fn ip_with_empty_host_port_and_container_range() {
        assert_eq!(
            p("127.0.0.1::80-81"),
            vec![m(LO, 0, 80, Proto::Tcp), m(LO, 0, 81, Proto::Tcp)]
        );
    }

    #[test]
    fn empty_host_port_before_colon_is_ephemeral_like_docker() {
        assert_eq!(p(":80"), vec![m(ANY, 0, 80, Proto::Tcp)]);
    }

    #[test]
    fn double_colon_prefix_means_empty_ip_and_host_port_like_docker() {
        assert_eq!(p("::80"), vec![m(ANY, 0, 80, Proto::Tcp)]);
        assert_eq!(p("::80/udp"), vec![m(ANY, 0, 80, Proto::Udp)]);
    }

    #[test]
    fn explicit_unspecified_ip_is_all_addresses() {
        assert_eq!(p("0.0.0.0:8080:80"), p("8080:80"));
    }

    #[test]
    fn bracketed_ipv4_is_accepted_like_docker() {
        assert_eq!(p("[127.0.0.1]:8080:80"), vec![m(LO, 8080, 80, Proto::Tcp)]);
    }

    #[test]
    fn protocol_is_case_insensitive_and_empty_means_tcp() {
        assert_eq!(p("80/UDP"), vec![m(ANY, 0, 80, Proto::Udp)]);
        assert_eq!(p("80/Tcp"), vec![m(ANY, 0, 80, Proto::Tcp)]);
        assert_eq!(p("80/"), vec![m(ANY, 0, 80, Proto::Tcp)]);
    }

    #[test]
    fn host_port_zero_means_ephemeral_like_docker() {
        assert_eq!(p("0:80"), vec![m(ANY, 0, 80, Proto::Tcp)]);
    }

    #[test]
    fn degenerate_range_is_a_single_port() {
        assert_eq!(p("8080-8080:80-80"), vec![m(ANY, 8080, 80, Proto::Tcp)]);
    }

    #[test]
    fn leading_zeros_are_accepted() {
        assert_eq!(p("08080:080"), vec![m(ANY, 8080, 80, Proto::Tcp)]);
    }

    #[test]
    fn extreme_ports_are_accepted() {
        assert_eq!(p("65535:1"), vec![m(ANY, 65535, 1, Proto::Tcp)]);
        assert_eq!(p("65534-65535").len(), 2);
    }

    // ---- parse_publish: errors ----

    #[test]
    fn empty_spec_is_rejected() {
        let e = err("");
        assert!(matches!(e, PortSpecError::Empty { .. }));
        assert_eq!(e.to_string(), r#"invalid port spec "": no port specified"#);
    }

    #[test]
    fn non_numeric_container_port_is_rejected_with_quoted_spec() {
        let e = err("abc");
        assert!(matches!(
            e,
            PortSpecError::NotANumber {
                side: Side::Container,
                ..
            }
        ));
        assert_eq!(
            err("80:abc").to_string(),
            r#"invalid port spec "80:abc": container port "abc" is not a number"#
        );
        assert_eq!(
            err("x:80").to_string(),
            r#"invalid port spec "x:80": host port "x" is not a number"#
        );
    }

    #[test]
    fn signed_numbers_are_rejected() {
        assert!(matches!(err("+80"), PortSpecError::NotANumber { .. }));
        assert!(matches!(err("-80"), PortSpecError::MalformedRange { .. }));
    }

    #[test]
    fn sctp_and_unknown_protocols_are_rejected() {
        let e = err("80/sctp");
        assert_eq!(
            e,
            PortSpecError::InvalidProto {
                spec: "80/sctp".into(),
                proto: "sctp".into()
            }
        );
        assert_eq!(
            e.to_string(),
            r#"invalid port spec "80/sctp": protocol "sctp" is not supported (use tcp or udp)"#
        );
        assert!(matches!(
            err("80/tcp/udp"),
            PortSpecError::InvalidProto { .. }
        ));
    }

    #[test]
    fn container_port_zero_is_rejected() {
        assert!(matches!(
            err("0"),
            PortSpecError::ZeroPort {
                side: Side::Container,
                ..
            }
        ));
        assert!(matches!(err("8080:0"), PortSpecError::ZeroPort { .. }));
        assert!(matches!(err("0-5"), PortSpecError::ZeroPort { .. }));
        assert_eq!(
            err("0").to_string(),
            r#"invalid port spec "0": container port 0 is not allowed"#
        );
    }

    #[test]
    fn host_range_including_zero_is_rejected() {
        assert!(matches!(
            err("0-10:80"),
            PortSpecError::ZeroPort {
                side: Side::Host,
                ..
            }
        ));
    }

    #[test]
    fn out_of_range_numbers_are_rejected() {
        let e = err("70000:80");
        assert!(matches!(
            e,
            PortSpecError::OutOfRange {
                side: Side::Host,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            r#"invalid port spec "70000:80": host port "70000" is out of range (max 65535)"#
        );
        assert!(matches!(err("65536"), PortSpecError::OutOfRange { .. }));
        assert!(matches!(
            err("99999999999999999999999"),
            PortSpecError::OutOfRange { .. }
        ));
    }

    #[test]
    fn mismatched_range_lengths_are_rejected_like_docker() {
        let e = err("8000-8002:80-81");
        assert!(matches!(e, PortSpecError::RangeMismatch { .. }));
        assert!(e.to_string().contains(
            "invalid ranges specified for container and host ports: 80-81 and 8000-8002"
        ));
        // A single host port for a container range is a mismatch too.
        assert!(matches!(
            err("8000:80-81"),
            PortSpecError::RangeMismatch { .. }
        ));
    }

    #[test]
    fn reversed_and_malformed_ranges_are_rejected() {
        assert!(matches!(err("90-80"), PortSpecError::ReversedRange { .. }));
        assert!(matches!(
            err("8010-8000:80"),
            PortSpecError::ReversedRange {
                side: Side::Host,
                ..
            }
        ));
        assert!(matches!(err("80-"), PortSpecError::MalformedRange { .. }));
        assert!(matches!(
            err("80-90-100"),
            PortSpecError::MalformedRange { .. }
        ));
        assert!(matches!(err("80-abc"), PortSpecError::NotANumber { .. }));
    }

    #[test]
    fn invalid_ipv4_is_rejected() {
        let e = err("1.2.3:80:80");
        assert_eq!(
            e,
            PortSpecError::InvalidIp {
                spec: "1.2.3:80:80".into(),
                ip: "1.2.3".into()
            }
        );
        assert_eq!(
            e.to_string(),
            r#"invalid port spec "1.2.3:80:80": "1.2.3" is not a valid IPv4 address"#
        );
        assert!(matches!(
            err("256.0.0.1:80:80"),
            PortSpecError::InvalidIp { .. }
        ));
        assert!(matches!(
            err("localhost:80:80"),
            PortSpecError::InvalidIp { .. }
        ));
        assert!(matches!(
            err("[1.2.3.4:80:80"),
            PortSpecError::InvalidIp { .. }
        ));
    }

    #[test]
    fn ipv6_addresses_are_rejected_as_unsupported() {
        let e = err("[::1]:80:80");
        assert_eq!(
            e,
            PortSpecError::Ipv6Unsupported {
                spec: "[::1]:80:80".into(),
                ip: "[::1]".into()
            }
        );
        assert!(e.to_string().contains("IPv6"));
        assert!(e.to_string().contains("not supported"));
        assert!(matches!(
            err("::1:80:80"),
            PortSpecError::Ipv6Unsupported { .. }
        ));
        assert!(matches!(
            err("[::]:80:80"),
            PortSpecError::Ipv6Unsupported { .. }
        ));
        assert!(matches!(
            err("fe80::1%eth0:80:80"),
            PortSpecError::Ipv6Unsupported { .. }
        ));
    }

    #[test]
    fn empty_container_port_is_rejected() {
        for spec in ["8080:", ":", "127.0.0.1:8080:", "/udp", "8080:/tcp"] {
            assert!(
                matches!(
                    err(spec),
                    PortSpecError::EmptyPort {
                        side: Side::Container,
                        ..
                    }
                ),
                "{spec:?}"
            );
        }
        assert_eq!(
            err("8080:").to_string(),
            r#"invalid port spec "8080:": container port is empty"#
        );
    }

    #[test]
    fn too_many_colons_are_rejected() {
        let e = err("1:2:3:4");
        assert!(matches!(e, PortSpecError::TooManyColons { .. }));
        assert!(e
            .to_string()
            .starts_with(r#"invalid port spec "1:2:3:4": too many colons"#));
        assert!(matches!(err(":::80"), PortSpecError::TooManyColons { .. }));
        assert!(matches!(
            err("127.0.0.1:1:2:3"),
            PortSpecError::TooManyColons { .. }
        ));
    }

    #[test]
    fn error_messages_are_one_line_even_for_odd_input() {
        let e = err("80\n:x");
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    // ---- parse_expose ----

    #[test]
    fn expose_single_port_defaults_to_tcp() {
        assert_eq!(
            parse_expose("80").unwrap(),
            vec![ExposedPort {
                port: 80,
                proto: Proto::Tcp
            }]
        );
    }

    #[test]
    fn expose_with_protocol() {
        assert_eq!(
            parse_expose("53/udp").unwrap(),
            vec![ExposedPort {
                port: 53,
                proto: Proto::Udp
            }]
        );
    }

    #[test]
    fn expose_range_expands() {
        let got = parse_expose("8000-8002/udp").unwrap();
        assert_eq!(
            got.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            ["8000/udp", "8001/udp", "8002/udp"]
        );
    }

    #[test]
    fn expose_rejects_bad_specs() {
        assert!(matches!(parse_expose(""), Err(PortSpecError::Empty { .. })));
        assert!(matches!(
            parse_expose("abc"),
            Err(PortSpecError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_expose("0"),
            Err(PortSpecError::ZeroPort { .. })
        ));
        assert!(matches!(
            parse_expose("80/sctp"),
            Err(PortSpecError::InvalidProto { .. })
        ));
        assert!(matches!(
            parse_expose("90-80"),
            Err(PortSpecError::ReversedRange { .. })
        ));
        assert!(matches!(
            parse_expose("70000"),
            Err(PortSpecError::OutOfRange { .. })
        ));
        let e = parse_expose("8080:80").unwrap_err();
        assert!(matches!(e, PortSpecError::ExposeWithHost { .. }));
        assert!(e
            .to_string()
            .starts_with(r#"invalid expose spec "8080:80""#));
    }

    // ---- publish_all ----

    #[test]
    fn publish_all_maps_each_exposed_port_ephemerally_on_all_addresses() {
        let exposed = [
            ExposedPort {
                port: 80,
                proto: Proto::Tcp,
            },
            ExposedPort {
                port: 53,
                proto: Proto::Udp,
            },
            ExposedPort {
                port: 80,
                proto: Proto::Tcp,
            },
        ];
        assert_eq!(
            publish_all(&exposed),
            vec![m(ANY, 0, 80, Proto::Tcp), m(ANY, 0, 53, Proto::Udp)]
        );
        assert!(publish_all(&[]).is_empty());
    }

    #[test]
    fn publish_all_unbound_skips_ports_already_published() {
        let exposed = parse_expose("80-81").unwrap();
        let published = p("8080:80");
        assert_eq!(
            publish_all_unbound(&exposed, &published),
            vec![m(ANY, 0, 81, Proto::Tcp)]
        );
        // Same port number, other protocol: still added.
        let published = p("8080:80/udp");
        assert_eq!(publish_all_unbound(&exposed, &published).len(), 2);
    }

    // ---- conflicts ----

    #[test]
    fn unspecified_ip_conflicts_with_specific_ip_on_same_proto_and_port() {
        let any = m(ANY, 8080, 80, Proto::Tcp);
        let lo = m(LO, 8080, 81, Proto::Tcp);
        assert!(conflicts(&any, &lo));
        assert!(conflicts(&lo, &any));
        assert!(conflicts(&any, &any));
    }

    #[test]
    fn different_ips_protocols_or_ports_do_not_conflict() {
        let lo = m(LO, 8080, 80, Proto::Tcp);
        assert!(!conflicts(
            &lo,
            &m(Ipv4Addr::new(10, 0, 0, 1), 8080, 80, Proto::Tcp)
        ));
        assert!(!conflicts(&lo, &m(LO, 8080, 80, Proto::Udp)));
        assert!(!conflicts(&lo, &m(LO, 8081, 80, Proto::Tcp)));
        assert!(!conflicts(
            &m(ANY, 8080, 80, Proto::Tcp),
            &m(ANY, 8080, 80, Proto::Udp)
        ));
    }

    #[test]
    fn unallocated_mappings_conflict_with_nothing() {
        let a = m(ANY, 0, 80, Proto::Tcp);
        assert!(!conflicts(&a, &a));
    }

    // ---- allocate ----

    #[test]
    fn allocate_never_hands_out_the_same_port_twice() {
        let mut ms = p("80-89");
        ms.extend(p("127.0.0.1::90-94"));
        allocate(&mut ms, never, 40000..=40100).unwrap();
        for (i, a) in ms.iter().enumerate() {
            assert!(a.host_port >= 40000 && a.host_port <= 40100);
            for b in &ms[i + 1..] {
                assert!(!conflicts(a, b), "{a} vs {b}");
            }
        }
        // Deterministic: scanned from the start of the range.
        assert_eq!(ms[0].host_port, 40000);
        assert_eq!(ms[9].host_port, 40009);
        assert_eq!(ms[10].host_port, 40010);
    }

    #[test]
    fn allocate_avoids_fixed_ports_anywhere_in_the_request() {
        let mut ms = vec![
            m(ANY, 0, 80, Proto::Tcp),
            m(LO, 40001, 81, Proto::Tcp),
            m(ANY, 0, 82, Proto::Tcp),
            m(ANY, 40000, 83, Proto::Tcp),
        ];
        allocate(&mut ms, never, 40000..=40010).unwrap();
        assert_eq!(ms[0].host_port, 40002);
        assert_eq!(ms[2].host_port, 40003);
        // Fixed ones are untouched.
        assert_eq!(ms[1].host_port, 40001);
        assert_eq!(ms[3].host_port, 40000);
    }

    #[test]
    fn allocate_same_port_on_different_ips_or_protocols_is_allowed() {
        let mut ms = vec![
            m(LO, 0, 80, Proto::Tcp),
            m(Ipv4Addr::new(127, 0, 0, 2), 0, 80, Proto::Tcp),
            m(LO, 0, 80, Proto::Udp),
        ];
        allocate(&mut ms, never, 40000..=40000).unwrap();
        assert!(ms.iter().all(|m| m.host_port == 40000));
        // ...but 0.0.0.0 conflicts with both specific IPs.
        ms.push(m(ANY, 0, 81, Proto::Tcp));
        assert!(matches!(
            allocate(&mut ms, never, 40000..=40000),
            Err(PortSpecError::NoFreePort { .. })
        ));
    }

    #[test]
    fn allocate_honours_host_ranges() {
        let mut ms = p("8000-8002:80");
        ms.extend(p("8000-8002:81"));
        ms.extend(p("90"));
        allocate(&mut ms, never, 40000..=40010).unwrap();
        assert_eq!(ms[0].host_port, 8000);
        assert_eq!(ms[1].host_port, 8001);
        assert_eq!(ms[2].host_port, 40000);
        assert!(ms.iter().all(|m| m.host_range.is_none()));
    }

    #[test]
    fn allocate_honours_taken() {
        let taken = |proto: Proto, ip: Ipv4Addr, port: u16| {
            proto == Proto::Tcp && (port == 8000 || (ip == LO && port == 8001))
        };
        let mut ms = p("8000-8005:80");
        ms.extend(p("127.0.0.1:8000-8005:81"));
        ms.extend(p("8000-8005:82/udp"));
        allocate(&mut ms, taken, 1..=2).unwrap();
        assert_eq!(ms[0].host_port, 8001);
        assert_eq!(ms[1].host_port, 8002);
        assert_eq!(ms[2].host_port, 8000);
    }

    #[test]
    fn allocate_fails_when_no_port_is_free() {
        let mut ms = p("8000-8001:80");
        ms.extend(p("8000-8001:81"));
        ms.extend(p("8000-8001:82"));
        let e = allocate(&mut ms, never, 40000..=40010).unwrap_err();
        assert_eq!(
            e,
            PortSpecError::NoFreePort {
                mapping: "0.0.0.0:8000-8001:82/tcp".into(),
                range: HostRange {
                    start: 8000,
                    end: 8001
                },
            }
        );
        assert_eq!(
            e.to_string(),
            r#"cannot publish "0.0.0.0:8000-8001:82/tcp": no free host port in 8000-8001"#
        );
        let mut ms = p("80");
        assert!(allocate(&mut ms, |_, _, _| true, 40000..=40010).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let empty = 10..=9;
        assert!(allocate(&mut ms, never, empty).is_err());
    }

    #[test]
    fn allocate_never_chooses_port_zero() {
        let mut ms = p("80");
        allocate(&mut ms, never, 0..=5).unwrap();
        assert_eq!(ms[0].host_port, 1);
    }

    #[test]
    fn allocate_reaches_the_top_of_the_port_space() {
        let mut ms = p("80-81");
        allocate(&mut ms, never, 65534..=65535).unwrap();
        assert_eq!(ms[1].host_port, 65535);
        let mut ms = p("80-82");
        assert!(allocate(&mut ms, never, 65534..=65535).is_err());
    }

    #[test]
    fn allocate_handles_a_whole_range_quickly() {
        let mut ms = p("1-28232");
        allocate(&mut ms, never, DEFAULT_EPHEMERAL).unwrap();
        assert_eq!(ms.last().unwrap().host_port, 60999);
    }

    // ---- docker port ----

    #[test]
    fn docker_port_lines_use_docker_format_and_order() {
        let ms = vec![
            m(LO, 5353, 53, Proto::Udp),
            m(ANY, 8081, 80, Proto::Tcp),
            m(ANY, 8080, 80, Proto::Tcp),
            m(LO, 8000, 80, Proto::Tcp),
            m(ANY, 5300, 53, Proto::Tcp),
            m(ANY, 0, 99, Proto::Tcp),
            m(ANY, 40000, 80, Proto::Tcp),
        ];
        let mut requested = ms.clone();
        requested[6].host_port = 0;
        assert_eq!(
            docker_port_lines(&ms, &requested),
            [
                "53/tcp -> 0.0.0.0:5300",
                "53/udp -> 127.0.0.1:5353",
                "80/tcp -> 0.0.0.0:8081",
                "80/tcp -> 0.0.0.0:8080",
                "80/tcp -> 127.0.0.1:8000",
                "80/tcp -> 0.0.0.0:40000",
            ],
            "within a port, the asked host port highest first, Docker's choice last"
        );
        assert!(docker_port_lines(&[], &[]).is_empty());
    }

    /// Seed 004 on stock Docker 20.10: `-p 8080:80 -p 127.0.0.1:8081:80` lists 8081 first.
    #[test]
    fn docker_port_lines_follow_dockers_sort_of_one_ports_bindings() {
        let ms = [m(ANY, 8080, 80, Proto::Tcp), m(LO, 8081, 80, Proto::Tcp)];
        assert_eq!(
            docker_port_lines(&ms, &ms),
            ["80/tcp -> 127.0.0.1:8081", "80/tcp -> 0.0.0.0:8080"]
        );
        let ranged_req = [
            ranged(ANY, 9000, 9010, 80, Proto::Tcp),
            m(ANY, 9500, 80, Proto::Tcp),
        ];
        let bound = [m(ANY, 9003, 80, Proto::Tcp), m(ANY, 9500, 80, Proto::Tcp)];
        assert_eq!(
            docker_port_lines(&bound, &ranged_req),
            ["80/tcp -> 0.0.0.0:9500", "80/tcp -> 0.0.0.0:9003"],
            "a range counts as its first port"
        );
    }

    // ---- Display / serde ----

    #[test]
    fn display_is_canonical_spec() {
        assert_eq!(p("8080:80")[0].to_string(), "0.0.0.0:8080:80/tcp");
        assert_eq!(p("127.0.0.1::53/udp")[0].to_string(), "127.0.0.1::53/udp");
        assert_eq!(p("8000-8010:80")[0].to_string(), "0.0.0.0:8000-8010:80/tcp");
        assert_eq!(Proto::Udp.to_string(), "udp");
    }

    #[test]
    fn display_round_trips_through_parse_publish() {
        let specs = [
            "80",
            "8080:80",
            "8080:80/udp",
            "127.0.0.1:8080:80",
            "127.0.0.1::80",
            "10.0.0.1:8080:80/tcp",
            "8000-8002:80-82",
            "8000-8010:80",
            "80-82",
            "127.0.0.1:8000-8001:80-81/udp",
            "::80",
            "65535:65535/udp",
        ];
        for spec in specs {
            let mut all = p(spec);
            for mapping in &all {
                assert_eq!(p(&mapping.to_string()), vec![*mapping], "{spec:?}");
            }
            allocate(&mut all, never, DEFAULT_EPHEMERAL).unwrap();
            for mapping in &all {
                assert_eq!(
                    p(&mapping.to_string()),
                    vec![*mapping],
                    "{spec:?} allocated"
                );
            }
        }
    }

    #[test]
    fn serde_uses_lowercase_protocols_and_round_trips() {
        let mapping = p("127.0.0.1:8000-8010:53/udp")[0];
        let json = serde_json::to_string(&mapping).unwrap();
        assert_eq!(
            json,
            r#"{"host_ip":"127.0.0.1","host_port":0,"container_port":53,"proto":"udp","host_range":{"start":8000,"end":8010}}"#
        );
        assert_eq!(serde_json::from_str::<PortMapping>(&json).unwrap(), mapping);
        let fixed: PortMapping = serde_json::from_str(
            r#"{"host_ip":"0.0.0.0","host_port":8080,"container_port":80,"proto":"tcp"}"#,
        )
        .unwrap();
        assert_eq!(fixed, m(ANY, 8080, 80, Proto::Tcp));
        let exposed = ExposedPort {
            port: 80,
            proto: Proto::Tcp,
        };
        let json = serde_json::to_string(&exposed).unwrap();
        assert_eq!(json, r#"{"port":80,"proto":"tcp"}"#);
        assert_eq!(serde_json::from_str::<ExposedPort>(&json).unwrap(), exposed);
        assert!(serde_json::from_str::<Proto>(r#""sctp""#).is_err());
    }
}

/// Property tests: generated specs parse to what Docker's grammar says, every parsed mapping
/// prints as a spec that parses back to itself, arbitrary text never panics and fails with a
/// one-line error that quotes it, and the allocator's answers hold whatever the request.
/// `PROPTEST_CASES` sets the number of cases (`cargo xtask fuzz` raises it).
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    /// A port number as a user may write it (sometimes with leading zeros).
    fn written(port: u16) -> impl Strategy<Value = String> {
        (0usize..3).prop_map(move |zeros| format!("{}{port}", "0".repeat(zeros)))
    }

    /// `N` or `START-END` (start <= end), with the range it stands for.
    fn range(min: u16) -> impl Strategy<Value = (String, Range)> {
        prop_oneof![
            (min..=u16::MAX).prop_map(|p| (p, p)),
            (min..=u16::MAX, 0u16..64).prop_map(|(s, n)| (s, s.saturating_add(n))),
        ]
        .prop_flat_map(|(start, end)| {
            let text = if start == end {
                written(start).boxed()
            } else {
                (written(start), written(end))
                    .prop_map(|(a, b)| format!("{a}-{b}"))
                    .boxed()
            };
            text.prop_map(move |t| (t, Range { start, end }))
        })
    }

    /// `/tcp`, `/UDP`, `/` or nothing, with the protocol it means.
    fn proto() -> impl Strategy<Value = (String, Proto)> {
        prop_oneof![
            Just((String::new(), Proto::Tcp)),
            Just(("/".to_string(), Proto::Tcp)),
            "(?i:tcp)".prop_map(|p| (format!("/{p}"), Proto::Tcp)),
            "(?i:udp)".prop_map(|p| (format!("/{p}"), Proto::Udp)),
        ]
    }

    /// The host IP part: absent, empty, dotted or bracketed, with the address it means.
    fn host_ip() -> impl Strategy<Value = (Option<String>, Ipv4Addr)> {
        prop_oneof![
            Just((None, Ipv4Addr::UNSPECIFIED)),
            Just((Some(String::new()), Ipv4Addr::UNSPECIFIED)),
            any::<[u8; 4]>().prop_map(|o| (Some(Ipv4Addr::from(o).to_string()), o.into())),
            any::<[u8; 4]>().prop_map(|o| (Some(format!("[{}]", Ipv4Addr::from(o))), o.into())),
        ]
    }

    /// A spec that follows the grammar and whose ranges fit together, with the mappings it
    /// must give, computed from the parts rather than by the parser's own steps.
    fn valid_spec() -> impl Strategy<Value = (String, Vec<PortMapping>)> {
        (host_ip(), proptest::option::of(range(0)), range(1), proto())
            .prop_filter(
                "host and container ranges must fit",
                |(_, host, (_, c), _)| {
                    host.as_ref().is_none_or(|(_, h)| {
                        (h.start == h.end || h.start != 0)
                            && (c.start == c.end || h.end - h.start == c.end - c.start)
                    })
                },
            )
            .prop_map(|((ip_text, ip), host, (c_text, c), (p_text, proto))| {
                let host_text = host.as_ref().map_or("", |(t, _)| t.as_str());
                let spec = match (&ip_text, &host) {
                    (Some(ip), _) => format!("{ip}:{host_text}:{c_text}{p_text}"),
                    (None, Some(_)) => format!("{host_text}:{c_text}{p_text}"),
                    (None, None) => format!("{c_text}{p_text}"),
                };
                let one = |host_port, container_port, host_range| PortMapping {
                    host_ip: ip,
                    host_port,
                    container_port,
                    proto,
                    host_range,
                };
                let ports = c.start..=c.end;
                let expected = match host.map(|(_, h)| h) {
                    None => ports.map(|cp| one(0, cp, None)).collect(),
                    Some(h) if h.end - h.start == c.end - c.start => ports
                        .map(|cp| one(h.start + (cp - c.start), cp, None))
                        .collect(),
                    Some(h) => vec![one(
                        0,
                        c.start,
                        Some(HostRange {
                            start: h.start,
                            end: h.end,
                        }),
                    )],
                };
                (spec, expected)
            })
    }

    /// Text near the grammar: digits, separators, brackets, letters of protocols and addresses.
    fn near_grammar() -> impl Strategy<Value = String> {
        "[0-9:/.\\-\\[\\]%a-fptucdsU ]{0,28}"
    }

    /// Every error is one line, names the spec exactly as given, and says it is a port spec.
    fn check_error(spec: &str, e: &PortSpecError) -> Result<(), TestCaseError> {
        let text = e.to_string();
        prop_assert!(!text.contains('\n'), "two lines: {text}");
        prop_assert!(
            text.contains(&format!("{spec:?}")),
            "{text} does not quote {spec:?}"
        );
        prop_assert!(
            text.starts_with("invalid port spec ") || text.starts_with("invalid expose spec "),
            "{text}"
        );
        Ok(())
    }

    /// What parses is canonical: each mapping prints as a spec that gives exactly it back, and
    /// survives the state file's JSON.
    fn check_parsed(mappings: &[PortMapping]) -> Result<(), TestCaseError> {
        prop_assert!(!mappings.is_empty());
        for m in mappings {
            prop_assert!(m.container_port != 0);
            prop_assert!(m.host_range.is_none() || m.host_port == 0);
            let printed = m.to_string();
            prop_assert_eq!(parse_publish(&printed), Ok(vec![*m]), "{}", printed);
            let json = serde_json::to_string(m).unwrap();
            prop_assert_eq!(&serde_json::from_str::<PortMapping>(&json).unwrap(), m);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn specs_of_the_grammar_parse_to_their_mappings((spec, expected) in valid_spec()) {
            let got = parse_publish(&spec);
            prop_assert_eq!(got.as_ref(), Ok(&expected), "{}", spec);
            check_parsed(&expected)?;
        }

        #[test]
        fn any_text_parses_canonically_or_fails_with_one_line(
            spec in prop_oneof![near_grammar(), any::<String>()]
        ) {
            match parse_publish(&spec) {
                Ok(mappings) => check_parsed(&mappings)?,
                Err(e) => check_error(&spec, &e)?,
            }
            match parse_expose(&spec) {
                Ok(ports) => {
                    prop_assert!(!ports.is_empty() && ports.iter().all(|p| p.port != 0));
                    prop_assert!(!spec.contains(':'));
                    let printed = ports[0].to_string();
                    prop_assert_eq!(&parse_expose(&printed).unwrap()[..], &ports[..1]);
                }
                Err(e) => check_error(&spec, &e)?,
            }
        }

        #[test]
        fn a_zero_or_too_large_container_port_is_refused(
            prefix in "(|[0-9]{1,5}:|127\\.0\\.0\\.1:[0-9]{0,5}:)",
            bad in prop_oneof![Just("0".to_string()), Just("00".to_string()),
                               (65536u32..10_000_000).prop_map(|n| n.to_string())],
            suffix in "(|/tcp|/udp)",
        ) {
            let spec = format!("{prefix}{bad}{suffix}");
            match parse_publish(&spec) {
                Err(PortSpecError::ZeroPort { side: Side::Container, .. })
                | Err(PortSpecError::OutOfRange { side: Side::Container, .. }) => {}
                // A bad host port may be noticed first, with its own error.
                Err(PortSpecError::OutOfRange { side: Side::Host, .. }) => {}
                other => prop_assert!(false, "{spec:?} gave {other:?}"),
            }
        }

        #[test]
        fn mismatched_ranges_are_refused(
            h in 1u16..60000, hn in 1u16..50, c in 1u16..60000, cn in 1u16..50,
        ) {
            prop_assume!(hn != cn);
            let spec = format!("{h}-{}:{c}-{}", h + hn, c + cn);
            prop_assert!(
                matches!(parse_publish(&spec), Err(PortSpecError::RangeMismatch { .. })),
                "{}", spec
            );
        }

        #[test]
        fn allocation_gives_free_distinct_ports_or_proves_there_are_none(
            request in proptest::collection::vec(mapping_request(), 1..10),
            taken in proptest::collection::btree_set((proto_any(), ip_any(), 1u16..=24), 0..16),
        ) {
            let is_taken = |proto: Proto, ip: Ipv4Addr, port: u16| {
                taken.iter().any(|(p, tip, tport)| {
                    *p == proto && *tport == port
                        && (*tip == ip || tip.is_unspecified() || ip.is_unspecified())
                })
            };
            let mut mappings = request.clone();
            let result = allocate(&mut mappings, is_taken, 10..=24);
            for (i, (m, asked)) in mappings.iter().zip(&request).enumerate() {
                if !asked.needs_allocation() {
                    prop_assert_eq!(m, asked, "a fixed mapping changed");
                    continue;
                }
                if m.needs_allocation() {
                    // Not reached, or the one that failed: the first such must have had no port.
                    prop_assert!(result.is_err());
                    let range = asked.host_range.map_or(10..=24, |r| r.start..=r.end);
                    let blocked = range.clone().filter(|&p| p != 0).all(|port| {
                        let c = PortMapping { host_port: port, host_range: None, ..*asked };
                        is_taken(c.proto, c.host_ip, port)
                            || mappings.iter().enumerate().any(|(j, o)| j != i && conflicts(&c, o))
                    });
                    prop_assert!(blocked, "{} failed with a free port in {:?}", asked, range);
                    break;
                }
                let range = asked.host_range.map_or(10..=24, |r| r.start..=r.end);
                prop_assert!(range.contains(&m.host_port) && m.host_port != 0, "{}", m);
                prop_assert!(m.host_range.is_none());
                prop_assert!(!is_taken(m.proto, m.host_ip, m.host_port), "{} is taken", m);
                for (j, other) in mappings.iter().enumerate() {
                    prop_assert!(j == i || !conflicts(m, other), "{} conflicts with {}", m, other);
                }
            }
            if let Err(e) = result {
                prop_assert!(matches!(e, PortSpecError::NoFreePort { .. }), "{e}");
                prop_assert!(mappings.iter().any(PortMapping::needs_allocation));
            }
        }
    }

    fn proto_any() -> impl Strategy<Value = Proto> {
        prop_oneof![Just(Proto::Tcp), Just(Proto::Udp)]
    }

    fn ip_any() -> impl Strategy<Value = Ipv4Addr> {
        prop_oneof![
            Just(Ipv4Addr::UNSPECIFIED),
            Just(Ipv4Addr::LOCALHOST),
            Just(Ipv4Addr::new(10, 0, 0, 1)),
        ]
    }

    /// A mapping as a request brings it: fixed, ephemeral or from a host range, over a port
    /// space small enough for collisions to be common.
    fn mapping_request() -> impl Strategy<Value = PortMapping> {
        let host = prop_oneof![
            (1u16..=24).prop_map(|p| (p, None)),
            Just((0, None)),
            (0u16..=24, 0u16..6).prop_map(|(s, n)| {
                let start = s.max(1);
                (
                    0,
                    Some(HostRange {
                        start,
                        end: (start + n).min(24),
                    }),
                )
            }),
        ];
        (ip_any(), host, 1u16..100, proto_any()).prop_map(
            |(host_ip, (host_port, host_range), c, proto)| PortMapping {
                host_ip,
                host_port,
                container_port: c,
                proto,
                host_range,
            },
        )
    }
}
