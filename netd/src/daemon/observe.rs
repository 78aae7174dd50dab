//! Looking into the datapath: drop statistics per container and reason (`netd stats`), and the
//! events stream (`netd monitor`) decoded into names users know.
use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use netd_common::{
    maps, DropKey, DropReason, Event, Event6, Tuple, EVENT_DROP, EVENT_DROP6, EVENT_KIND_OFFSET,
    ZONE_ENDPOINT, ZONE_UPLINK_IN,
};

use super::{error::OpResult, Daemon};
use crate::{
    api::{EventView, StatRow, StatsView},
    state::Status,
};

/// One record of the events ring buffer: an [`Event`], or an [`Event6`] for a dropped IPv6
/// packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingEvent {
    V4(Event),
    V6(Event6),
}

/// A packet's addresses and ports as an event has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ends {
    src: SocketAddr,
    dst: SocketAddr,
}

impl RingEvent {
    /// The record `item` as the programs wrote it (told apart by its kind); `None` if it is
    /// too short for its kind.
    pub fn decode(item: &[u8]) -> Option<Self> {
        let read = |size: usize| (item.len() >= size).then_some(item.as_ptr());
        match *item.get(EVENT_KIND_OFFSET)? {
            // SAFETY: the programs write whole records; read_unaligned copes with alignment.
            EVENT_DROP6 => read(size_of::<Event6>())
                .map(|p| Self::V6(unsafe { std::ptr::read_unaligned(p.cast::<Event6>()) })),
            _ => read(size_of::<Event>())
                .map(|p| Self::V4(unsafe { std::ptr::read_unaligned(p.cast::<Event>()) })),
        }
    }

    fn is_drop(&self) -> bool {
        match self {
            Self::V4(e) => e.kind == EVENT_DROP,
            Self::V6(_) => true,
        }
    }

    fn before(&self) -> Ends {
        match self {
            Self::V4(e) => ends(&e.before),
            Self::V6(e) => Ends {
                src: SocketAddr::new(
                    Ipv6Addr::from(e.addrs[0]).into(),
                    u16::from_be(e.ports_be[0]),
                ),
                dst: SocketAddr::new(
                    Ipv6Addr::from(e.addrs[1]).into(),
                    u16::from_be(e.ports_be[1]),
                ),
            },
        }
    }

    fn after(&self) -> Option<Ends> {
        match self {
            Self::V4(e) if e.kind != EVENT_DROP => Some(ends(&e.after)),
            _ => None,
        }
    }

    fn ifindex(&self) -> u32 {
        match self {
            Self::V4(e) => e.ifindex,
            Self::V6(e) => e.ifindex,
        }
    }

    fn ts_ns(&self) -> u64 {
        match self {
            Self::V4(e) => e.ts_ns,
            Self::V6(e) => e.ts_ns,
        }
    }

    fn reason(&self) -> u8 {
        match self {
            Self::V4(e) => e.reason,
            Self::V6(e) => e.reason,
        }
    }

    fn proto(&self) -> &'static str {
        match self {
            Self::V4(e) => super::maps::proto_name(e.proto),
            Self::V6(e) if e.proto == netd_common::IPPROTO_ICMPV6 => "icmpv6",
            Self::V6(e) => super::maps::proto_name(e.proto),
        }
    }
}

fn ends(t: &Tuple) -> Ends {
    Ends {
        src: SocketAddr::new(Ipv4Addr::from(t.saddr).into(), u16::from_be(t.sport_be)),
        dst: SocketAddr::new(Ipv4Addr::from(t.daddr).into(), u16::from_be(t.dport_be)),
    }
}

/// `SRC -> DST` as `netd monitor` prints it (`[ADDR]:PORT` for IPv6).
fn ends_text(e: &Ends) -> String {
    format!("{} -> {}", e.src, e.dst)
}

impl Daemon {
    /// Who a port is: the container behind a host-side veth, an uplink, or its interface name.
    pub(super) fn port_owner(&self, ifindex: u32) -> (String, Option<String>) {
        let name = nix::net::if_::if_indextoname(ifindex)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("if{ifindex}"));
        match self
            .state
            .endpoints()
            .find(|(_, ep)| ep.host_veth.as_deref() == Some(&name))
        {
            Some((c, _)) => (name, Some(c.name.clone())),
            None => (name, None),
        }
    }

    /// Drops per port and reason (optionally of one container), with totals per reason.
    pub(super) fn stats(&self, container: Option<&str>) -> OpResult<StatsView> {
        let only = container
            .map(|c| self.container(c).map(|c| c.name.clone()))
            .transpose()?;
        let per_port = self
            .dp
            .dump_per_cpu::<DropKey, u64>(maps::DROPS_BY_PORT, |a, b| a + b)?;
        let mut rows = vec![];
        let mut totals: BTreeMap<&'static str, u64> =
            DropReason::ALL.iter().map(|r| (r.name(), 0)).collect();
        for (key, packets) in per_port {
            let (port, owner) = self.port_owner(key.ifindex);
            if only.is_some() && owner != only {
                continue;
            }
            let Some(reason) = DropReason::from_index(key.reason) else {
                continue;
            };
            *totals.entry(reason.name()).or_default() += packets;
            rows.push(StatRow {
                port,
                container: owner,
                reason: reason.name().into(),
                packets,
            });
        }
        let totals = totals
            .into_iter()
            .map(|(r, n)| (r.to_string(), n))
            .collect();
        Ok(StatsView { rows, totals })
    }

    /// An event as users read it.
    pub(crate) fn event_view(&self, e: &RingEvent, now_mono: u64, now_real: f64) -> EventView {
        let (port, container) = self.port_owner(e.ifindex());
        let before = e.before();
        let container = container
            .or_else(|| self.container_with(before.src.ip()))
            .or_else(|| self.container_with(before.dst.ip()));
        let drop = e.is_drop();
        EventView {
            time: now_real - (now_mono.saturating_sub(e.ts_ns())) as f64 / 1e9,
            kind: if drop { "drop" } else { "flow" }.into(),
            port,
            container,
            direction: direction(e).into(),
            proto: e.proto().into(),
            before: ends_text(&before),
            after: e.after().as_ref().map(ends_text),
            verdict: if drop { "dropped" } else { "translated" }.into(),
            reason: drop.then(|| {
                DropReason::from_index(e.reason() as u32)
                    .map(|r| r.name())
                    .unwrap_or("?")
                    .to_string()
            }),
        }
    }

    fn container_with(&self, ip: IpAddr) -> Option<String> {
        self.state
            .containers
            .values()
            .filter(|c| c.status == Status::Running)
            .find(|c| {
                c.endpoints
                    .iter()
                    .any(|ep| IpAddr::V4(ep.ip) == ip || ep.ip6.map(IpAddr::V6) == Some(ip))
            })
            .map(|c| c.name.clone())
    }
}

/// Whether a monitor with these filters wants the event.
pub fn wanted(
    v: &EventView,
    e: &RingEvent,
    container: Option<&str>,
    port: Option<u16>,
    drops_only: bool,
) -> bool {
    let ports: Vec<u16> = [Some(e.before()), e.after()]
        .into_iter()
        .flatten()
        .flat_map(|ends| [ends.src.port(), ends.dst.port()])
        .collect();
    (!drops_only || e.is_drop())
        && container.is_none_or(|c| v.container.as_deref() == Some(c))
        && port.is_none_or(|p| ports.contains(&p))
}

fn direction(e: &RingEvent) -> &'static str {
    match e {
        RingEvent::V6(_) => "-",
        RingEvent::V4(e) => match (e.kind, e.zone) {
            (EVENT_DROP, _) => "-",
            (_, ZONE_UPLINK_IN) => "inbound",
            (_, ZONE_ENDPOINT) => "from-container",
            _ => "outbound",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_told_apart_by_kind_and_read_whole() {
        let v6 = Event6 {
            ts_ns: 7,
            ifindex: 9,
            kind: EVENT_DROP6,
            reason: DropReason::Isolation as u8,
            proto: netd_common::IPPROTO_TCP,
            _pad: 0,
            addrs: [
                "fd00:28::2".parse::<Ipv6Addr>().unwrap().octets(),
                "fd00:29::3".parse::<Ipv6Addr>().unwrap().octets(),
            ],
            ports_be: [40000u16.to_be(), 80u16.to_be()],
            _pad2: [0; 4],
        };
        // SAFETY: a plain-old-data record viewed as its bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts((&v6 as *const Event6).cast::<u8>(), size_of::<Event6>())
        };
        let e = RingEvent::decode(bytes).unwrap();
        assert_eq!(e, RingEvent::V6(v6));
        assert_eq!(
            ends_text(&e.before()),
            "[fd00:28::2]:40000 -> [fd00:29::3]:80"
        );
        assert_eq!((e.is_drop(), e.after()), (true, None));
        assert_eq!(
            RingEvent::decode(&bytes[..40]),
            None,
            "too short for its kind"
        );
        let v4 = Event {
            ts_ns: 1,
            ifindex: 2,
            kind: EVENT_DROP,
            reason: 0,
            proto: netd_common::IPPROTO_UDP,
            zone: 0,
            before: Tuple {
                saddr: [10, 0, 0, 2],
                daddr: [10, 0, 0, 3],
                sport_be: 53u16.to_be(),
                dport_be: 5353u16.to_be(),
            },
            after: Tuple::default(),
        };
        // SAFETY: as above.
        let bytes = unsafe {
            std::slice::from_raw_parts((&v4 as *const Event).cast::<u8>(), size_of::<Event>())
        };
        let e = RingEvent::decode(bytes).unwrap();
        assert_eq!(
            ends_text(&e.before()),
            "10.0.0.2:53 -> 10.0.0.3:5353",
            "as before"
        );
    }
}
