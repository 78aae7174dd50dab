//! TC ingress on the host side of a container's veth: everything the container sends passes
//! here before the bridge sees it. Frames whose Ethernet/ARP/IPv4 source is not the container's
//! own are dropped (anti-spoofing), as is IPv4 towards a network the container is not on
//! (isolation) or, on `--internal` networks, towards anything outside its subnet. IPv6 takes
//! its own path ([`endpoint6`](crate::endpoint6)) on ports that have IPv6, and is dropped on
//! the others.
//!
//! ARP requests for the container's gateway or for another container on its network are
//! answered here, without flooding the bridge ([`arp`](crate::arp)), and a packet for another
//! container of its network on this host is delivered straight into it ([`to_neighbor`]): the
//! bridge carries only broadcasts and multicasts between containers, and traffic with the host.
//!
//! On an overlay network, a packet for an endpoint on another host goes into the VXLAN tunnel
//! ([`tunnel::encap`]) before anything else: no translation ever applies between containers.
//!
//! A container reaching a published port through a host address (hairpin) is translated here,
//! before the host stack, if the port's policy lets the container's address in ([`allow`]): the destination becomes the backend; a container reaching its own
//! published port also gets its gateway as source, and both directions are delivered straight
//! into the container. Replies of such flows are translated back here too.
//!
//! Replies to clients of published ports that came in through an uplink are translated here as
//! well and sent straight out of that uplink, past the bridge and the host's routing
//! ([`nat::reply_to_uplink`]); when that shortcut does not apply they go the host's way and the
//! uplink's egress translates them.
use aya_ebpf::{
    bindings::TC_ACT_OK, helpers::bpf_redirect_peer, macros::classifier, programs::TcContext,
};
use netd_common::{
    Backend, DropReason, Endpoint, FlowKey, ENDPOINT_FLAG_OVERLAY, NAT_FLAG_REDIRECT,
    NAT_FLAG_REPLY, NAT_KIND_HAIRPIN, ZONE_ENDPOINT, ZONE_UPLINK_OUT,
};

use crate::{
    allow, maps, nat,
    parse::{self, Flow},
    policy, tunnel,
};

#[classifier]
pub fn netd_endpoint_ingress(ctx: TcContext) -> i32 {
    if parse::ether_type(&ctx) == Some(parse::ETH_P_IPV6) {
        // SAFETY: a tail call to a classifier of the same object, which checks the frame from
        // the start. It returns only when there is none (a datapath whose IPv6 program is not
        // in place yet); the frame is then dropped below as any other IPv6 frame would be.
        unsafe { maps::NETD_PROGS.tail_call(&ctx, netd_common::PROG_ENDPOINT6) };
    }
    match try_endpoint_ingress(&ctx) {
        Ok(action) => action,
        Err(reason) => nat::drop(&ctx, reason),
    }
}

fn try_endpoint_ingress(ctx: &TcContext) -> Result<i32, DropReason> {
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: the value is copied out at once; the daemon replaces entries, never edits in place.
    let ep = *unsafe { maps::NETD_ENDPOINTS.get(ifindex) }.ok_or(DropReason::UnknownEndpoint)?;
    let eth = parse::eth(ctx).map_err(|()| DropReason::Malformed)?;
    if eth.src_addr != ep.mac {
        return Err(DropReason::SpoofedMac);
    }
    match eth.ether_type {
        parse::ETH_P_IP => ipv4(ctx, &ep, ifindex),
        parse::ETH_P_ARP => arp(ctx, &ep, ifindex),
        _ => Err(DropReason::UnsupportedProtocol),
    }
}

fn ipv4(ctx: &TcContext, ep: &Endpoint, ifindex: u32) -> Result<i32, DropReason> {
    let ip = parse::ipv4(ctx).map_err(|()| DropReason::Malformed)?;
    if ip.src_addr != ep.addr {
        return Err(DropReason::SpoofedIp);
    }
    if ep.flags & ENDPOINT_FLAG_OVERLAY != 0 {
        if let Some(to) = tunnel::remote(ip.dst_addr) {
            policy::destination(ep, Some(to.net_id), false)?;
            return tunnel::encap(ctx, ep, &ip, &to);
        }
    }
    let flow = parse::flow(ctx, &ip).map_err(|()| DropReason::Malformed)?;
    let dst = ip.dst_addr;
    let dst_net = maps::network_of(dst);
    if !flow.translatable {
        policy::destination(ep, dst_net, policy::is_group(dst))?;
        return to_neighbor(ctx, ep, dst);
    }
    // The reply of a published-port flow from outside and the next packet of an egress flow,
    // the busiest cases, go to an address outside every netd network; their entry is looked up
    // first. Their tuple (this container to a remote host) is never that of a hairpin flow,
    // which goes to a host address.
    if dst_net.is_none() {
        if let Some(hit) = nat::find(&flow, ZONE_UPLINK_OUT) {
            policy::destination(ep, dst_net, policy::is_group(dst))?;
            return nat::reply_to_uplink(ctx, &flow, &hit);
        }
    }
    if let Some(entry) = nat::lookup(&flow, ZONE_ENDPOINT) {
        nat::rewrite(ctx, &flow, &entry)?;
        return nat::verdict(ctx, &flow, &entry);
    }
    if let Some((port, backend)) = maps::published(flow.proto, flow.daddr, flow.dport_be) {
        if !allow::admits(&port, &backend, flow.saddr) {
            return allow::refuse(ctx, &flow);
        }
        return hairpin(ctx, &flow, ep, ifindex, &backend);
    }
    policy::destination(ep, dst_net, policy::is_group(dst))?;
    to_neighbor(ctx, ep, dst)
}

/// A packet for another container on this host and on this one's network (the policy allowed
/// it): delivered straight into that container (`bpf_redirect_peer` to its veth) with its MAC
/// as destination, past the bridge, as a switch would (no hop off the TTL). Anything else (the
/// host, the outside, broadcasts) goes on.
#[inline(always)]
fn to_neighbor(ctx: &TcContext, ep: &Endpoint, dst: [u8; 4]) -> Result<i32, DropReason> {
    let Some((veth, peer)) = maps::veth_of(dst) else {
        return Ok(TC_ACT_OK);
    };
    if peer.net_id != ep.net_id {
        return Ok(TC_ACT_OK);
    }
    // Normally the sender already has the receiver's MAC (the ARP responder gave it): writing
    // a TCP segment, a clone the sender keeps, would copy its header for nothing.
    let eth = parse::eth(ctx).map_err(|()| DropReason::Malformed)?;
    if eth.dst_addr != peer.mac {
        ctx.store(0, &peer.mac, 0)
            .map_err(|_| DropReason::Malformed)?;
    }
    // SAFETY: a plain helper call; the return value is the action.
    Ok(unsafe { bpf_redirect_peer(veth, 0) } as i32)
}

/// A container reaching a published port through a host address: translate to the backend and
/// record the reply direction, which goes straight back to this container's port.
fn hairpin(
    ctx: &TcContext,
    flow: &Flow,
    ep: &Endpoint,
    ifindex: u32,
    backend: &Backend,
) -> Result<i32, DropReason> {
    let to_self = backend.addr == flow.saddr;
    let mut to = FlowKey {
        daddr: backend.addr,
        dport_be: backend.port_be,
        ..flow.key(ZONE_ENDPOINT)
    };
    let mut fwd_flags = 0;
    if to_self {
        // Otherwise the container would answer itself on loopback.
        to.saddr = backend.gateway;
        fwd_flags = NAT_FLAG_REDIRECT;
    }
    let mut fwd = nat::entry(flow, NAT_KIND_HAIRPIN, fwd_flags, &to);
    fwd.redirect_ifindex = backend.ifindex;
    fwd.dst_mac = backend.mac;
    let rev_key = FlowKey {
        saddr: to.daddr,
        daddr: to.saddr,
        sport_be: to.dport_be,
        dport_be: to.sport_be,
        ..to
    };
    let rev_to = FlowKey {
        saddr: flow.daddr,
        daddr: flow.saddr,
        sport_be: flow.dport_be,
        dport_be: flow.sport_be,
        ..to
    };
    let mut rev = nat::entry(
        flow,
        NAT_KIND_HAIRPIN,
        NAT_FLAG_REPLY | NAT_FLAG_REDIRECT,
        &rev_to,
    );
    rev.redirect_ifindex = ifindex;
    rev.dst_mac = ep.mac;
    nat::insert_pair(ctx, flow, &flow.key(ZONE_ENDPOINT), &fwd, &rev_key, &rev)?;
    nat::rewrite(ctx, flow, &fwd)?;
    nat::verdict(ctx, flow, &fwd)
}

/// ARP from the container: only with its own addresses; requests for its gateway or another
/// container on its network are answered here ([`arp`](crate::arp)).
fn arp(ctx: &TcContext, ep: &Endpoint, ifindex: u32) -> Result<i32, DropReason> {
    let arp = parse::arp(ctx).map_err(|()| DropReason::Malformed)?;
    if arp.sha != ep.mac {
        return Err(DropReason::SpoofedMac);
    }
    if !policy::sender_ip_ok(ep, arp.spa) {
        return Err(DropReason::SpoofedIp);
    }
    match crate::arp::answerer(ep, &arp) {
        Some(neighbor) if !parse::is_probe(ctx) => {
            crate::arp::answer(ctx, &arp, &neighbor, ifindex)
        }
        _ => Ok(TC_ACT_OK),
    }
}
