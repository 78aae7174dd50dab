//! The IPv6 half of the container port program ([`endpoint`](crate::endpoint)), which
//! tail-calls it for every IPv6 frame whose MAC it checked, for ports with IPv6 (an entry in
//! `NETD_ENDPOINTS6`; a port without one drops IPv6, as before IPv6 existed). A program of its
//! own, so that each family's path has the whole BPF stack and the IPv4 one compiles as it did.
//!
//! - Anti-spoofing: the source must be the container's global or link-local address, or `::`
//!   for duplicate address detection and MLD reports ([`ipv6::sender_ok`]); its Ethernet source
//!   was checked before (its MAC).
//! - Router advertisements and redirects from containers are dropped: only the host routes.
//! - Neighbour discovery: solicitations for the gateway or a container of the same network are
//!   answered here, those for another network's addresses dropped, advertisements only for
//!   the container's own addresses ([`ndp`]).
//! - Destinations: multicast and link-local stay on the link and go on; another netd network's
//!   subnet is refused (isolation), anything outside every netd subnet too on `--internal`
//!   networks; a container of the same network on this host gets the packet straight into
//!   its veth's peer (`bpf_redirect_peer`), as IPv4's `to_neighbor`. IPv6 leaving the host is
//!   not translated (no NAT66 yet).
//!
//! Only hop-by-hop, routing and destination options headers are walked to find the upper
//! layer, and only two of them ([`parse::upper6`]); a packet whose upper layer is neither
//! TCP, UDP nor ICMPv6 (a fragment, ESP...) passes the address checks and goes on.
use aya_ebpf::{
    bindings::TC_ACT_OK, helpers::bpf_redirect_peer, macros::classifier, programs::TcContext,
};
use netd_common::{
    ipv6::{
        self, ICMP6_NEIGHBOR_ADVERT, ICMP6_NEIGHBOR_SOLICIT, ICMP6_REDIRECT, ICMP6_ROUTER_ADVERT,
        UNSPECIFIED,
    },
    DropReason, Endpoint, IPPROTO_ICMPV6,
};

use crate::{maps, nat, ndp, parse, policy};

/// An IPv6 frame a container sent through its port.
#[classifier]
pub fn netd_endpoint6(ctx: TcContext) -> i32 {
    match checked(&ctx) {
        Ok(action) => action,
        Err(reason) => drop(&ctx, reason),
    }
}

/// Drops the packet for `reason`: counted, and reported with its IPv6 addresses.
#[inline(always)]
pub fn drop(ctx: &TcContext, reason: DropReason) -> i32 {
    if parse::is_probe(ctx) {
        maps::note_probe_drop(reason);
    } else {
        let ifindex = nat::ifindex(ctx);
        maps::count_drop(ifindex, reason);
        crate::events::dropped6(ctx, ifindex, reason);
    }
    aya_ebpf::bindings::TC_ACT_SHOT
}

/// The port's endpoint and its MAC, as the IPv4 path checks them, then the IPv6 checks.
#[inline(always)]
fn checked(ctx: &TcContext) -> Result<i32, DropReason> {
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: copied out at once, as in the IPv4 path.
    let ep = *unsafe { maps::NETD_ENDPOINTS.get(ifindex) }.ok_or(DropReason::UnknownEndpoint)?;
    let eth = parse::eth(ctx).map_err(|()| DropReason::Malformed)?;
    if eth.src_addr != ep.mac {
        return Err(DropReason::SpoofedMac);
    }
    try_ingress(ctx, &ep, ifindex)
}

#[inline(always)]
fn try_ingress(ctx: &TcContext, ep: &Endpoint, ifindex: u32) -> Result<i32, DropReason> {
    // SAFETY: the daemon replaces entries, never edits them in place, and the value stays
    // valid for this run. Read in place: a copy would cost a stack slot per byte.
    let ep6 =
        unsafe { maps::NETD_ENDPOINTS6.get(ifindex) }.ok_or(DropReason::UnsupportedProtocol)?;
    let ip = parse::ipv6(ctx).map_err(|()| DropReason::Malformed)?;
    let (proto, l4_off) = parse::upper6(ctx, ip.next_hdr).map_err(|too_many| match too_many {
        true => DropReason::UnsupportedProtocol,
        false => DropReason::Malformed,
    })?;
    let icmp_type = match proto {
        IPPROTO_ICMPV6 => {
            Some(parse::read_l6::<u8>(ctx, l4_off, 0).map_err(|()| DropReason::Malformed)?)
        }
        _ => None,
    };
    if !ipv6::sender_ok(ep6, &ip.addrs[0], icmp_type) {
        return Err(DropReason::SpoofedIp);
    }
    match icmp_type {
        Some(ICMP6_ROUTER_ADVERT | ICMP6_REDIRECT) => return Err(DropReason::RouterAdvertisement),
        Some(ICMP6_NEIGHBOR_ADVERT) => ndp::advertisement(ctx, ep, ep6, l4_off)?,
        Some(ICMP6_NEIGHBOR_SOLICIT) => {
            let from_unspecified = ip.addrs[0] == UNSPECIFIED;
            if let Some(action) = ndp::solicitation(ctx, ep, ep6, from_unspecified, l4_off)? {
                return Ok(action);
            }
        }
        _ => {}
    }
    destination(ctx, ep, &ip.addrs[1])
}

/// Where an IPv6 packet from `ep` may go (see the module's documentation).
#[inline(always)]
fn destination(ctx: &TcContext, ep: &Endpoint, dst: &[u8; 16]) -> Result<i32, DropReason> {
    if ipv6::is_on_link(dst) {
        return Ok(TC_ACT_OK);
    }
    let dst_net = maps::network6_of(dst);
    policy::destination(ep, dst_net, false)?;
    match dst_net {
        Some(_) => to_neighbor(ctx, ep, dst),
        None => Ok(TC_ACT_OK),
    }
}

/// A packet for another container on this host and on this one's network: delivered straight
/// into it with its MAC as destination, past the bridge, as a switch would (no hop off the hop
/// limit). Anything else (the gateway, a container elsewhere) goes on.
#[inline(always)]
fn to_neighbor(ctx: &TcContext, ep: &Endpoint, dst: &[u8; 16]) -> Result<i32, DropReason> {
    let Some((veth, peer)) = maps::veth6_of(dst) else {
        return Ok(TC_ACT_OK);
    };
    if peer.net_id != ep.net_id {
        return Ok(TC_ACT_OK);
    }
    let eth = parse::eth(ctx).map_err(|()| DropReason::Malformed)?;
    if eth.dst_addr != peer.mac {
        ctx.store(0, &peer.mac, 0)
            .map_err(|_| DropReason::Malformed)?;
    }
    // SAFETY: a plain helper call; the return value is the action.
    Ok(unsafe { bpf_redirect_peer(veth, 0) } as i32)
}
