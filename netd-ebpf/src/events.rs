//! Datapath events for `netd monitor`: drops and new translated flows go to a ring buffer, but
//! only while the daemon says someone listens (`CONFIG_EVENTS`) and at most a bounded number per
//! second and CPU, so that watching never slows the datapath down noticeably.
use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::TcContext};
use netd_common::{
    DropReason, Event, Event6, FlowKey, NatEntry, Tuple, CONFIG_EVENTS, CONFIG_EVENTS_RATE,
    DEFAULT_EVENTS_RATE, EVENTS_DROPS, EVENTS_FLOWS, EVENT_DROP, EVENT_FLOW, EVENT_PROTO_ARP,
};

use crate::{
    maps::{self, NETD_EVENTS, NETD_EVENTS_RL},
    parse::{self, Flow},
};

const SECOND_NS: u64 = 1_000_000_000;

/// Whether events of kind `bit` are wanted now and the rate allows one more.
#[inline(always)]
fn admit(bit: u64, now: u64) -> bool {
    if maps::config(CONFIG_EVENTS) & bit == 0 {
        return false;
    }
    let Some(state) = NETD_EVENTS_RL.get_ptr_mut(0) else {
        return false;
    };
    let limit = match maps::config(CONFIG_EVENTS_RATE) {
        0 => DEFAULT_EVENTS_RATE,
        n => n,
    };
    // SAFETY: this CPU's own slot.
    let state = unsafe { &mut *state };
    if now.wrapping_sub(state.window_ns) >= SECOND_NS {
        state.window_ns = now;
        state.count = 0;
    }
    if state.count >= limit {
        state.suppressed += 1;
        return false;
    }
    state.count += 1;
    true
}

fn tuple(flow: &Flow) -> Tuple {
    Tuple {
        saddr: flow.saddr,
        daddr: flow.daddr,
        sport_be: flow.sport_be,
        dport_be: flow.dport_be,
    }
}

/// Reports a dropped packet (its tuple read again, best effort: drops are rare).
#[inline(always)]
pub fn dropped(ctx: &TcContext, ifindex: u32, reason: DropReason) {
    // SAFETY: a plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    if !admit(EVENTS_DROPS, now) {
        return;
    }
    let (proto, before) = match parse::eth(ctx).map(|eth| eth.ether_type) {
        Ok(parse::ETH_P_IP) => parse::ipv4(ctx)
            .and_then(|ip| parse::flow(ctx, &ip))
            .map(|f| (f.proto, tuple(&f)))
            .unwrap_or_default(),
        Ok(parse::ETH_P_ARP) => parse::arp(ctx)
            .map(|a| {
                (
                    EVENT_PROTO_ARP,
                    Tuple {
                        saddr: a.spa,
                        daddr: a.tpa,
                        sport_be: 0,
                        dport_be: 0,
                    },
                )
            })
            .unwrap_or_default(),
        _ => Default::default(),
    };
    let event = Event {
        ts_ns: now,
        ifindex,
        kind: EVENT_DROP,
        reason: reason as u8,
        proto,
        zone: 0,
        before,
        after: Tuple::default(),
    };
    let _ = NETD_EVENTS.output::<Event>(&event, 0); // a full ring loses the event, never the packet
}

/// Reports a new translated flow: the packet as it came and what it became.
/// Reports a dropped IPv6 packet: its addresses, next header and (TCP or UDP right after the
/// header) ports. Only the IPv6 program calls it, so the IPv4 programs compile as before.
#[inline(always)]
pub fn dropped6(ctx: &TcContext, ifindex: u32, reason: DropReason) {
    // SAFETY: a plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    if !admit(EVENTS_DROPS, now) {
        return;
    }
    let mut event = Event6 {
        ts_ns: now,
        ifindex,
        kind: netd_common::EVENT_DROP6,
        reason: reason as u8,
        proto: 0,
        _pad: 0,
        addrs: [[0; 16]; 2],
        ports_be: [0; 2],
        _pad2: [0; 4],
    };
    if let Ok(next) = parse::read::<u8>(ctx, parse::IP_OFF + 6) {
        event.proto = next;
    }
    let _ = parse::load_into(ctx, parse::IP_OFF + 8, &mut event.addrs);
    if matches!(
        event.proto,
        netd_common::IPPROTO_TCP | netd_common::IPPROTO_UDP
    ) {
        let _ = parse::load_into(ctx, parse::L4_OFF6, &mut event.ports_be);
    }
    let _ = NETD_EVENTS.output::<Event6>(&event, 0); // a full ring loses the event, never the packet
}

#[inline(always)]
pub fn new_flow(ifindex: u32, flow: &Flow, key: &FlowKey, to: &NatEntry) {
    // SAFETY: a plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    if !admit(EVENTS_FLOWS, now) {
        return;
    }
    let after = Tuple {
        saddr: to.saddr,
        daddr: to.daddr,
        sport_be: to.sport_be,
        dport_be: to.dport_be,
    };
    let event = Event {
        ts_ns: now,
        ifindex,
        kind: EVENT_FLOW,
        reason: 0,
        proto: flow.proto,
        zone: key.zone,
        before: tuple(flow),
        after,
    };
    let _ = NETD_EVENTS.output::<Event>(&event, 0); // a full ring loses the event, never the packet
}
