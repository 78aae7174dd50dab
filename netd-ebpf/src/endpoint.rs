//! TC ingress on the host side of a container's veth: everything the container sends passes
//! here before the bridge sees it. Frames whose Ethernet/ARP/IPv4 source is not the container's
//! own are dropped (anti-spoofing), as is IPv4 towards a network the container is not on
//! (isolation) or, on `--internal` networks, towards anything outside its subnet.
use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    macros::classifier,
    programs::TcContext,
};
use netd_common::{DropReason, Endpoint};

use crate::{maps, parse, policy};

#[classifier]
pub fn netd_endpoint_ingress(ctx: TcContext) -> i32 {
    match try_endpoint_ingress(&ctx) {
        Ok(()) => TC_ACT_OK,
        Err(reason) => {
            maps::count_drop(reason);
            TC_ACT_SHOT
        }
    }
}

fn try_endpoint_ingress(ctx: &TcContext) -> Result<(), DropReason> {
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: the value is copied out at once; the daemon replaces entries, never edits in place.
    let ep = *unsafe { maps::NETD_ENDPOINTS.get(ifindex) }.ok_or(DropReason::UnknownEndpoint)?;
    let eth = parse::eth(ctx).map_err(|()| DropReason::Malformed)?;
    if eth.src_addr != ep.mac {
        return Err(DropReason::SpoofedMac);
    }
    match eth.ether_type {
        parse::ETH_P_IP => check_ipv4(ctx, &ep),
        parse::ETH_P_ARP => check_arp(ctx, &ep),
        _ => Err(DropReason::UnsupportedProtocol),
    }
}

fn check_ipv4(ctx: &TcContext, ep: &Endpoint) -> Result<(), DropReason> {
    let ip = parse::ipv4(ctx).map_err(|()| DropReason::Malformed)?;
    if ip.src_addr != ep.addr {
        return Err(DropReason::SpoofedIp);
    }
    let dst = ip.dst_addr;
    policy::destination(ep, maps::network_of(dst), policy::is_group(dst))
}

fn check_arp(ctx: &TcContext, ep: &Endpoint) -> Result<(), DropReason> {
    let arp = parse::arp(ctx).map_err(|()| DropReason::Malformed)?;
    if arp.sha != ep.mac {
        return Err(DropReason::SpoofedMac);
    }
    if !policy::sender_ip_ok(ep, arp.spa) {
        return Err(DropReason::SpoofedIp);
    }
    Ok(())
}
