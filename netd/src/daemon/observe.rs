//! Looking into the datapath: drop statistics per container and reason (`netd stats`), and the
//! events stream (`netd monitor`) decoded into names users know.
use std::{collections::BTreeMap, net::Ipv4Addr};

use netd_common::{
    maps, DropKey, DropReason, Event, Tuple, EVENT_DROP, ZONE_ENDPOINT, ZONE_UPLINK_IN,
};

use super::{error::OpResult, maps::flow_text, Daemon};
use crate::{
    api::{EventView, StatRow, StatsView},
    state::Status,
};

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
    pub(crate) fn event_view(&self, e: &Event, now_mono: u64, now_real: f64) -> EventView {
        let (port, container) = self.port_owner(e.ifindex);
        let container = container
            .or_else(|| self.container_with(e.before.saddr))
            .or_else(|| self.container_with(e.before.daddr));
        let drop = e.kind == EVENT_DROP;
        EventView {
            time: now_real - (now_mono.saturating_sub(e.ts_ns)) as f64 / 1e9,
            kind: if drop { "drop" } else { "flow" }.into(),
            port,
            container,
            direction: direction(e).into(),
            proto: super::maps::proto_name(e.proto).into(),
            before: tuple_text(&e.before),
            after: if drop {
                None
            } else {
                Some(tuple_text(&e.after))
            },
            verdict: if drop { "dropped" } else { "translated" }.into(),
            reason: drop.then(|| {
                DropReason::from_index(e.reason as u32)
                    .map(|r| r.name())
                    .unwrap_or("?")
                    .to_string()
            }),
        }
    }

    fn container_with(&self, addr: [u8; 4]) -> Option<String> {
        let ip = Ipv4Addr::from(addr);
        self.state
            .containers
            .values()
            .filter(|c| c.status == Status::Running)
            .find(|c| c.endpoints.iter().any(|ep| ep.ip == ip))
            .map(|c| c.name.clone())
    }
}

/// Whether a monitor with these filters wants the event.
pub fn wanted(
    v: &EventView,
    e: &Event,
    container: Option<&str>,
    port: Option<u16>,
    drops_only: bool,
) -> bool {
    let ports = [
        e.before.sport_be,
        e.before.dport_be,
        e.after.sport_be,
        e.after.dport_be,
    ]
    .map(u16::from_be);
    (!drops_only || e.kind == EVENT_DROP)
        && container.is_none_or(|c| v.container.as_deref() == Some(c))
        && port.is_none_or(|p| ports.contains(&p))
}

fn direction(e: &Event) -> &'static str {
    match (e.kind, e.zone) {
        (EVENT_DROP, _) => "-",
        (_, ZONE_UPLINK_IN) => "inbound",
        (_, ZONE_ENDPOINT) => "from-container",
        _ => "outbound",
    }
}

fn tuple_text(t: &Tuple) -> String {
    flow_text(t.saddr, t.sport_be, t.daddr, t.dport_be)
}
