//! TC ingress and egress of the uplinks, the host's interfaces to the outside.
//!
//! Ingress: replies to translated egress flows get their container back; packets to a published
//! port on a host address from a client its policy lets in ([`allow`]) are translated to the
//! container (DNAT), keeping the client's address,
//! and delivered straight into the container (`bpf_redirect_peer` to its veth, past the host's
//! routing and the bridge; see [`nat::verdict`]). The entry of the reply direction names this
//! uplink, so that the container's port sends replies straight back out of it
//! ([`nat::reply_to_uplink`]). Anything else addressed to a container (not to a host address)
//! is dropped as isolation: from outside, containers are reached through published ports only.
//!
//! Egress: containers' packets leave with the uplink's address and a free port (SNAT), and
//! replies of published-port flows that took the host's path leave with the host address and
//! port the client used. Replies the container's port already translated pass untouched. Only a
//! flow's first packet comes this way: its entries send the next ones from the container's port
//! straight out of this uplink, and the replies from the uplink's ingress straight into the
//! container, as for published ports.
use aya_ebpf::{bindings::TC_ACT_OK, macros::classifier, programs::TcContext};
use netd_common::{
    DropReason, FlowKey, NAT_FLAG_NEIGH, NAT_FLAG_REDIRECT, NAT_FLAG_REPLY, NAT_KIND_DNAT,
    NAT_KIND_SNAT, ZONE_UPLINK_IN, ZONE_UPLINK_OUT,
};

use network_types::ip::Ipv4Hdr;

use crate::{
    allow, icmp,
    maps::{self, NETD_UPLINKS},
    nat,
    parse::{self, Flow},
};

#[classifier]
pub fn netd_uplink_ingress(ctx: TcContext) -> i32 {
    match try_ingress(&ctx) {
        Ok(action) => action,
        Err(reason) => nat::drop(&ctx, reason),
    }
}

#[classifier]
pub fn netd_uplink_egress(ctx: TcContext) -> i32 {
    match try_egress(&ctx) {
        Ok(action) => action,
        Err(reason) => nat::drop(&ctx, reason),
    }
}

/// The packet's IPv4 header; `None` if it is not IPv4 at all (the host's business).
#[inline(always)]
fn ipv4_header(ctx: &TcContext) -> Option<Ipv4Hdr> {
    let eth = parse::eth(ctx).ok()?;
    if eth.ether_type != parse::ETH_P_IP {
        return None;
    }
    parse::ipv4(ctx).ok()
}

fn try_ingress(ctx: &TcContext) -> Result<i32, DropReason> {
    let Some(ip) = ipv4_header(ctx) else {
        return Ok(TC_ACT_OK);
    };
    let Ok(flow) = parse::flow(ctx, &ip) else {
        return host_only(ip.dst_addr);
    };
    if !flow.translatable {
        // ICMP errors about translated flows go to whoever sent the quoted packet; fragments
        // and other protocols addressed to the host stay with the host.
        if icmp::translate_error(ctx, &flow, ZONE_UPLINK_IN, true)? {
            return Ok(TC_ACT_OK);
        }
        return host_only(flow.daddr);
    }
    if let Some(entry) = nat::lookup(&flow, ZONE_UPLINK_IN) {
        nat::rewrite(ctx, &flow, &entry)?;
        return nat::verdict(ctx, &flow, &entry);
    }
    let Some((port, backend)) = maps::published(flow.proto, flow.daddr, flow.dport_be) else {
        return host_only(flow.daddr);
    };
    if !allow::admits(&port, &backend, flow.saddr) {
        return allow::refuse(ctx, &flow);
    }
    let to = FlowKey {
        daddr: backend.addr,
        dport_be: backend.port_be,
        ..flow.key(ZONE_UPLINK_IN)
    };
    let mut fwd = nat::entry(&flow, NAT_KIND_DNAT, NAT_FLAG_REDIRECT, &to);
    fwd.redirect_ifindex = backend.ifindex;
    fwd.dst_mac = backend.mac;
    let rev_key = FlowKey {
        saddr: backend.addr,
        daddr: flow.saddr,
        sport_be: backend.port_be,
        dport_be: flow.sport_be,
        ..flow.key(ZONE_UPLINK_OUT)
    };
    let rev_to = FlowKey {
        saddr: flow.daddr,
        sport_be: flow.dport_be,
        ..rev_key
    };
    let mut rev = nat::entry(
        &flow,
        NAT_KIND_DNAT,
        NAT_FLAG_REPLY | NAT_FLAG_NEIGH,
        &rev_to,
    );
    rev.redirect_ifindex = nat::ifindex(ctx);
    nat::insert_pair(ctx, &flow, &flow.key(ZONE_UPLINK_IN), &fwd, &rev_key, &rev)?;
    nat::rewrite(ctx, &flow, &fwd)?;
    nat::verdict(ctx, &flow, &fwd)
}

/// A packet from outside that no translation claimed: the host's if it is addressed to the
/// host, dropped if it is addressed to a container. Containers are reached from outside only
/// through their published ports, as with Docker 28 (whose raw-table rules drop direct access);
/// without this, the host's forwarding (which netd turns on) would route anyone with a route to
/// a netd subnet straight to every container port.
#[inline(always)]
fn host_only(daddr: [u8; 4]) -> Result<i32, DropReason> {
    if maps::network_of(daddr).is_some() && !maps::is_local(daddr) {
        return Err(DropReason::Isolation);
    }
    Ok(TC_ACT_OK)
}

fn try_egress(ctx: &TcContext) -> Result<i32, DropReason> {
    let Some(ip) = ipv4_header(ctx) else {
        return Ok(TC_ACT_OK);
    };
    // Only packets from inside a netd subnet have anything to do here (every entry of this zone
    // is keyed by a container's address): the host's own, and replies a container's port
    // already translated and sent here, go on after this one lookup.
    if maps::network_of(ip.src_addr).is_none() {
        return Ok(TC_ACT_OK);
    }
    // A container's packet whose ports cannot be read cannot be translated, and must not leave
    // with its private address either (the host forwards such packets as they are).
    let flow = parse::flow(ctx, &ip).map_err(|()| DropReason::Malformed)?;
    if flow.translatable {
        if let Some(entry) = nat::lookup(&flow, ZONE_UPLINK_OUT) {
            nat::rewrite(ctx, &flow, &entry)?;
            return Ok(TC_ACT_OK);
        }
    }
    if translated_reply(&flow) {
        return Ok(TC_ACT_OK);
    }
    // A container's packet on its way out: it must not leave with its private address.
    if flow.fragment {
        return Err(DropReason::Fragment);
    }
    if !flow.translatable {
        return match icmp::translate_error(ctx, &flow, ZONE_UPLINK_OUT, false)? {
            true => Ok(TC_ACT_OK),
            false => Err(DropReason::UnsupportedProtocol),
        };
    }
    snat(ctx, &flow)
}

/// Whether the packet is the reply of a published-port flow that a container's port already
/// translated (see [`nat::reply_to_uplink`]). Only a host address published inside a netd subnet
/// (a bridge's gateway) gets this far; every other such reply left above as host traffic.
#[inline(always)]
fn translated_reply(flow: &Flow) -> bool {
    if !flow.translatable || !maps::is_local(flow.saddr) {
        return false;
    }
    let request = FlowKey {
        saddr: flow.daddr,
        daddr: flow.saddr,
        sport_be: flow.dport_be,
        dport_be: flow.sport_be,
        ..flow.key(ZONE_UPLINK_IN)
    };
    nat::get(&request).is_some_and(|e| e.kind == NAT_KIND_DNAT && e.flags & NAT_FLAG_REPLY == 0)
}

/// Gives a new egress flow the uplink's address and a free port.
fn snat(ctx: &TcContext, flow: &Flow) -> Result<i32, DropReason> {
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: copied out at once.
    let uplink = *unsafe { NETD_UPLINKS.get(ifindex) }.ok_or(DropReason::UnknownEndpoint)?;
    let mut rev_key = FlowKey {
        saddr: flow.daddr,
        daddr: uplink.addr,
        sport_be: flow.dport_be,
        dport_be: 0,
        ..flow.key(ZONE_UPLINK_IN)
    };
    let rev_to = FlowKey {
        daddr: flow.saddr,
        dport_be: flow.sport_be,
        ..rev_key
    };
    let mut rev = nat::entry(flow, NAT_KIND_SNAT, NAT_FLAG_REPLY, &rev_to);
    if flow.proto == netd_common::IPPROTO_ICMP {
        rev.sport_be = flow.sport_be;
    }
    // Replies go straight into the container, past the host's routing and the bridge.
    if let Some((veth, ep)) = maps::veth_of(flow.saddr) {
        rev.flags |= NAT_FLAG_REDIRECT;
        rev.redirect_ifindex = veth;
        rev.dst_mac = ep.mac;
    }
    let port_be = nat::claim_port(flow, &mut rev_key, &rev)?;
    let mut to = FlowKey {
        saddr: uplink.addr,
        sport_be: port_be,
        ..flow.key(ZONE_UPLINK_OUT)
    };
    if flow.proto == netd_common::IPPROTO_ICMP {
        to.dport_be = port_be;
    }
    // The flow's next packets leave from the container's port straight out of this uplink
    // ([`nat::reply_to_uplink`]), translated there.
    let mut fwd = nat::entry(flow, NAT_KIND_SNAT, NAT_FLAG_NEIGH, &to);
    fwd.redirect_ifindex = ifindex;
    if !flow.dry {
        if maps::NETD_NAT_NEW
            .insert(flow.key(ZONE_UPLINK_OUT), fwd, 0)
            .is_err()
        {
            let _ = maps::NETD_NAT_NEW.remove(rev_key); // the claimed port, free again
            return Err(DropReason::NatTableFull);
        }
        crate::events::new_flow(ifindex, flow, &flow.key(ZONE_UPLINK_OUT), &fwd);
    }
    nat::rewrite(ctx, flow, &fwd)?;
    Ok(TC_ACT_OK)
}
