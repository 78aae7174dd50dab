//! The overlay's VXLAN tunnel, both ends, over the host's external (`collect_md`) VXLAN device.
//!
//! Out: the endpoint program hands a frame for an overlay endpoint on another host to
//! [`encap`], which sets the tunnel key (that host's underlay address and the network's VNI,
//! from [`NETD_TUNNEL`]) and redirects the frame to the VXLAN device, which wraps it. No
//! bridge forwarding database, no flooding: the container learnt the remote MAC from the ARP
//! responder.
//!
//! In: [`netd_tunnel_ingress`] runs on the VXLAN device's TC ingress, after the kernel took the
//! outer headers off. A frame goes straight into the local overlay endpoint it is addressed to
//! ([`NETD_OVERLAY_PORTS`], `bpf_redirect_peer`) only if its VNI is that endpoint's network's
//! and its source is an endpoint that the sending host has on that network: a host on the
//! underlay cannot inject frames into a network or as a container that is not its own.
use core::mem::{size_of, zeroed};

use aya_ebpf::{
    bindings::{bpf_tunnel_key, BPF_F_ZERO_CSUM_TX},
    helpers::{bpf_redirect, bpf_redirect_peer, bpf_skb_get_tunnel_key, bpf_skb_set_tunnel_key},
    macros::classifier,
    programs::TcContext,
};
use netd_common::{DropReason, Tunnel, CONFIG_VXLAN_IFINDEX, TUNNEL_STAT_DECAP, TUNNEL_STAT_ENCAP};

use crate::{
    maps::{self, NETD_OVERLAY_PORTS, NETD_TUNNEL},
    nat, parse,
};

/// TTL of the outer IPv4 header, as Linux's VXLAN device uses by default for unicast.
const OUTER_TTL: u8 = 64;
/// No outer UDP checksum, as Linux's VXLAN devices (and Docker's overlay) send over IPv4: the
/// inner packet carries its own checksums.
const TUNNEL_FLAGS: u64 = BPF_F_ZERO_CSUM_TX as u64;

/// The overlay endpoint on another host at `addr`, if there is one.
#[inline(always)]
pub fn remote(addr: [u8; 4]) -> Option<Tunnel> {
    // SAFETY: copied out at once.
    unsafe { NETD_TUNNEL.get(addr) }.copied()
}

/// Sends the frame into the tunnel towards `to`.
#[inline(always)]
pub fn encap(ctx: &TcContext, to: &Tunnel) -> Result<i32, DropReason> {
    let vxlan = maps::config(CONFIG_VXLAN_IFINDEX) as u32;
    if vxlan == 0 {
        return Err(DropReason::UnknownEndpoint);
    }
    // SAFETY: a plain C struct for which all zeroes is a valid value.
    let mut key: bpf_tunnel_key = unsafe { zeroed() };
    key.tunnel_id = to.vni;
    key.__bindgen_anon_1.remote_ipv4 = u32::from_be_bytes(to.host);
    key.tunnel_ttl = OUTER_TTL;
    // SAFETY: our own skb and a stack value of the size given.
    let ret = unsafe {
        bpf_skb_set_tunnel_key(
            ctx.skb.skb.cast(),
            &mut key,
            size_of::<bpf_tunnel_key>() as u32,
            TUNNEL_FLAGS,
        )
    };
    if ret != 0 {
        return Err(DropReason::Malformed);
    }
    if !parse::is_probe(ctx) {
        maps::count_tunnel(TUNNEL_STAT_ENCAP);
    }
    // SAFETY: a plain helper call; the return value is the action.
    Ok(unsafe { bpf_redirect(vxlan, 0) } as i32)
}

#[classifier]
pub fn netd_tunnel_ingress(ctx: TcContext) -> i32 {
    match try_decap(&ctx) {
        Ok(action) => action,
        Err(reason) => nat::drop(&ctx, reason),
    }
}

fn try_decap(ctx: &TcContext) -> Result<i32, DropReason> {
    // SAFETY: as in `encap`.
    let mut key: bpf_tunnel_key = unsafe { zeroed() };
    // SAFETY: our own skb and a stack value of the size given.
    let ret = unsafe {
        bpf_skb_get_tunnel_key(
            ctx.skb.skb.cast(),
            &mut key,
            size_of::<bpf_tunnel_key>() as u32,
            0,
        )
    };
    if ret != 0 {
        return Err(DropReason::Malformed);
    }
    // SAFETY: the kernel filled the IPv4 member (the key was asked for without BPF_F_TUNINFO_IPV6).
    let from_host = unsafe { key.__bindgen_anon_1.remote_ipv4 }.to_be_bytes();
    let eth = parse::eth(ctx).map_err(|()| DropReason::Malformed)?;
    if eth.ether_type != parse::ETH_P_IP {
        // ARP is answered on each host; nothing else crosses the overlay.
        return Err(DropReason::UnsupportedProtocol);
    }
    let ip = parse::ipv4(ctx).map_err(|()| DropReason::Malformed)?;
    let sender = remote(ip.src_addr).ok_or(DropReason::SpoofedIp)?;
    if sender.host != from_host || sender.vni != key.tunnel_id {
        return Err(DropReason::SpoofedIp);
    }
    // SAFETY: copied out at once.
    let port = unsafe { NETD_OVERLAY_PORTS.get(ip.dst_addr) }
        .copied()
        .ok_or(DropReason::UnknownEndpoint)?;
    if port.vni != key.tunnel_id {
        return Err(DropReason::Isolation);
    }
    ctx.store(0, &port.mac, 0)
        .map_err(|_| DropReason::Malformed)?;
    if !parse::is_probe(ctx) {
        maps::count_tunnel(TUNNEL_STAT_DECAP);
    }
    // SAFETY: a plain helper call; the return value is the action.
    Ok(unsafe { bpf_redirect_peer(port.ifindex, 0) } as i32)
}
