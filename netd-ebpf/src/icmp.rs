//! ICMP errors (destination unreachable, time exceeded, parameter problem) about translated
//! flows. The error quotes the packet that caused it as it was on the wire; both the outer
//! address and the quoted header are translated, so the sender of the original packet gets the
//! error (a container learns that the outside port is closed; an outside client learns that a
//! container's port is).
//!
//! It also writes the one error netd sends itself: "fragmentation needed" for a packet too big
//! for the overlay's tunnel ([`frag_needed`]).
use aya_ebpf::{
    helpers::{bpf_redirect, bpf_skb_change_tail},
    programs::TcContext,
};
use netd_common::{
    wire::{self, FRAG_NEEDED_LEN, QUOTE_LEN},
    DropReason, Endpoint, FlowKey, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
};

use crate::parse::{Flow, IP_OFF};

const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP_PARAMETERPROB: u8 = 12;

/// The quoted packet of an ICMP error: where its header and ports are, and its tuple.
struct Quoted {
    ip_off: usize,
    ports_off: usize,
    proto: u8,
    saddr: [u8; 4],
    daddr: [u8; 4],
    sport_be: u16,
    dport_be: u16,
}

/// The packet quoted by the ICMP error `flow`, if it is one and quotes TCP, UDP or ICMP echo.
#[inline(always)]
fn quoted(ctx: &TcContext, flow: &Flow) -> Option<Quoted> {
    if flow.proto != IPPROTO_ICMP || flow.fragment {
        return None;
    }
    let icmp_type = ctx.load::<u8>(flow.l4_off).ok()?;
    if icmp_type != ICMP_DEST_UNREACH
        && icmp_type != ICMP_TIME_EXCEEDED
        && icmp_type != ICMP_PARAMETERPROB
    {
        return None;
    }
    let ip_off = flow.l4_off + 8;
    let vihl = ctx.load::<u8>(ip_off).ok()?;
    if vihl >> 4 != 4 || vihl & 0x0f < 5 {
        return None;
    }
    let proto = ctx.load::<u8>(ip_off + 9).ok()?;
    let l4_off = ip_off + ((vihl & 0x0f) as usize) * 4;
    let ports_off = match proto {
        IPPROTO_TCP | IPPROTO_UDP => l4_off,
        IPPROTO_ICMP => l4_off + 4,
        _ => return None,
    };
    let ports = ctx.load::<[u16; 2]>(ports_off).ok()?;
    let (sport_be, dport_be) = if proto == IPPROTO_ICMP {
        (ports[0], ports[0])
    } else {
        (ports[0], ports[1])
    };
    Some(Quoted {
        ip_off,
        ports_off,
        proto,
        saddr: ctx.load::<[u8; 4]>(ip_off + 12).ok()?,
        daddr: ctx.load::<[u8; 4]>(ip_off + 16).ok()?,
        sport_be,
        dport_be,
    })
}

/// Translates an ICMP error arriving from outside (`inbound`, at uplink ingress: the quoted
/// packet is one we sent, its source becomes the original sender) or leaving (at uplink egress:
/// the quoted packet is one a container received, its destination becomes what the peer used).
/// Returns whether the packet was such an error.
#[inline(always)]
pub fn translate_error(
    ctx: &TcContext,
    flow: &Flow,
    zone: u8,
    inbound: bool,
) -> Result<bool, DropReason> {
    let Some(q) = quoted(ctx, flow) else {
        return Ok(false);
    };
    // An error comes back to whoever sent the quoted packet (inbound: the host address the
    // packet left with), and leaves from whoever received it (outbound: the container). Any
    // other error is not about this flow, whatever it quotes: it must not be steered into a
    // container.
    let about_us = match inbound {
        true => flow.daddr == q.saddr,
        false => flow.saddr == q.daddr,
    };
    if !about_us {
        return Ok(false);
    }
    // The quoted packet went one way; the NAT entry that undoes it is keyed by the other.
    let key = FlowKey {
        saddr: q.daddr,
        daddr: q.saddr,
        sport_be: q.dport_be,
        dport_be: q.sport_be,
        proto: q.proto,
        zone,
        _pad: [0; 2],
    };
    let Some(entry) = crate::nat::get(&key) else {
        return Ok(false);
    };
    let icmp_csum = flow.l4_off + 2;
    if inbound {
        // Outer destination and quoted source become the original sender.
        set_outer(ctx, IP_OFF + 16, flow.daddr, entry.daddr)?;
        set_quoted_addr(ctx, &q, q.ip_off + 12, q.saddr, entry.daddr, icmp_csum)?;
        let port_off = q.ports_off;
        set_quoted_port(ctx, port_off, q.sport_be, entry.dport_be, icmp_csum)?;
    } else {
        // Outer source and quoted destination become what the peer addressed.
        set_outer(ctx, IP_OFF + 12, flow.saddr, entry.saddr)?;
        set_quoted_addr(ctx, &q, q.ip_off + 16, q.daddr, entry.saddr, icmp_csum)?;
        let port_off = if q.proto == IPPROTO_ICMP {
            q.ports_off
        } else {
            q.ports_off + 2
        };
        set_quoted_port(ctx, port_off, q.dport_be, entry.sport_be, icmp_csum)?;
    }
    Ok(true)
}

/// An outer address (the ICMP checksum does not cover it).
#[inline(always)]
fn set_outer(ctx: &TcContext, off: usize, old: [u8; 4], new: [u8; 4]) -> Result<(), DropReason> {
    let (old, new) = (u32::from_ne_bytes(old), u32::from_ne_bytes(new));
    ctx.l3_csum_replace(IP_OFF + 10, old as u64, new as u64, 4)
        .map_err(|_| DropReason::Malformed)?;
    ctx.store(off, &new, 0).map_err(|_| DropReason::Malformed)
}

/// A quoted address: its header checksum changes with it, and the ICMP checksum with both.
#[inline(always)]
fn set_quoted_addr(
    ctx: &TcContext,
    q: &Quoted,
    off: usize,
    old: [u8; 4],
    new: [u8; 4],
    icmp_csum: usize,
) -> Result<(), DropReason> {
    let (old, new) = (u32::from_ne_bytes(old), u32::from_ne_bytes(new));
    let csum_off = q.ip_off + 10;
    let old_csum = ctx
        .load::<u16>(csum_off)
        .map_err(|_| DropReason::Malformed)?;
    ctx.l3_csum_replace(csum_off, old as u64, new as u64, 4)
        .map_err(|_| DropReason::Malformed)?;
    let new_csum = ctx
        .load::<u16>(csum_off)
        .map_err(|_| DropReason::Malformed)?;
    ctx.store(off, &new, 0).map_err(|_| DropReason::Malformed)?;
    ctx.l4_csum_replace(icmp_csum, old as u64, new as u64, 4)
        .map_err(|_| DropReason::Malformed)?;
    ctx.l4_csum_replace(icmp_csum, old_csum as u64, new_csum as u64, 2)
        .map_err(|_| DropReason::Malformed)
}

/// A quoted port (the quoted L4 checksum is left alone: the quote is truncated anyway).
#[inline(always)]
fn set_quoted_port(
    ctx: &TcContext,
    off: usize,
    old: u16,
    new: u16,
    icmp_csum: usize,
) -> Result<(), DropReason> {
    if old == new {
        return Ok(());
    }
    ctx.store(off, &new, 0).map_err(|_| DropReason::Malformed)?;
    ctx.l4_csum_replace(icmp_csum, old as u64, new as u64, 2)
        .map_err(|_| DropReason::Malformed)
}

/// Answers the container `ep` that its packet does not fit the tunnel: the frame becomes ICMP
/// "fragmentation needed" with the largest size that fits, `mtu`, quoting the packet's header,
/// and goes straight back into the container's port. Its kernel records the path MTU and
/// resends smaller, as it would for a router's error.
#[inline(always)]
pub fn frag_needed(ctx: &TcContext, ep: &Endpoint, mtu: u32) -> Result<i32, DropReason> {
    let eth = crate::parse::eth(ctx).map_err(|()| DropReason::Malformed)?;
    let quote =
        crate::parse::read::<[u8; QUOTE_LEN]>(ctx, IP_OFF).map_err(|()| DropReason::Malformed)?;
    if quote[0] != 0x45 {
        // Only a header without options is quoted whole in the fixed-size error.
        return Err(DropReason::Malformed);
    }
    let reply = wire::frag_needed(&quote, mtu as u16);
    let len = (IP_OFF + FRAG_NEEDED_LEN) as u32;
    // SAFETY: our own skb; the helper trims it (and drops its GSO state).
    if unsafe { bpf_skb_change_tail(ctx.skb.skb, len, 0) } != 0 {
        return Err(DropReason::Malformed);
    }
    let macs = [ep.mac, eth.dst_addr];
    ctx.store(0, &macs, 0).map_err(|_| DropReason::Malformed)?;
    ctx.store(IP_OFF, &reply, 0)
        .map_err(|_| DropReason::Malformed)?;
    let port = crate::nat::ifindex(ctx);
    // SAFETY: a plain helper call; the return value is the action.
    Ok(unsafe { bpf_redirect(port, 0) } as i32)
}
