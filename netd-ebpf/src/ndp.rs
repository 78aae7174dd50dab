//! The NDP responder of container ports, IPv6's counterpart of the ARP responder
//! ([`arp`](crate::arp)). A container's neighbour solicitation for its gateway or for another
//! container on its network is answered at the container's own port from `NETD_NEIGHBORS6`, and
//! never reaches the bridge; one for an address of another netd network is dropped unanswered
//! (isolation); anything else (duplicate address detection, addresses netd does not know) goes
//! its usual way.
//!
//! Neighbour discovery from the container is also checked: an advertisement only for its own
//! addresses, and the link-layer address option of a solicitation or advertisement (the first
//! option, where the kernel puts it) only with its own MAC.
use aya_ebpf::{
    helpers::{bpf_redirect, bpf_skb_change_tail, bpf_skb_store_bytes},
    macros::map,
    maps::PerCpuArray,
    programs::TcContext,
};
use netd_common::{
    ipv6::{self, ND_OPTIONS_OFF, ND_OPT_SOURCE_LL, ND_OPT_TARGET_LL, ND_TARGET_OFF},
    wire::{self, NEIGHBOR_ADVERT_LEN},
    DropReason, Endpoint, Endpoint6, Neighbor,
};
use network_types::eth::EthHdr;

use crate::{
    maps::NETD_NEIGHBORS6,
    nat,
    parse::{self, ETH_P_IPV6, IP_OFF, L4_OFF6},
};

/// Where the answer is built: the endpoint program is close to the verifier's 512 bytes of
/// stack already.
#[repr(C)]
pub struct Scratch {
    /// The solicitation's source and target, in words as memory holds them ([`wire`]).
    to: [u32; 4],
    target: [u32; 4],
    reply: [u32; NEIGHBOR_ADVERT_LEN / 4],
}

/// One [`Scratch`] per CPU (a program run never leaves its CPU).
#[map(name = "NETD_NDP_SCRATCH")]
static NETD_NDP_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// A neighbour solicitation from the endpoint `ep` (IPv6 addresses `ep6`; its source already
/// checked, `::` if `from_unspecified`) whose ICMPv6 header is at `l4_off`: `Some` action if it
/// is answered here, `None` if it goes on, an error if it is dropped.
#[inline(always)]
pub fn solicitation(
    ctx: &TcContext,
    ep: &Endpoint,
    ep6: &Endpoint6,
    from_unspecified: bool,
    l4_off: usize,
) -> Result<Option<i32>, DropReason> {
    lladdr_ok(ctx, ep, l4_off, ND_OPT_SOURCE_LL)?;
    let target = parse::read_l6::<[u8; 16]>(ctx, l4_off, ND_TARGET_OFF)
        .map_err(|()| DropReason::Malformed)?;
    // SAFETY: copied out at once.
    let Some(neighbor) = unsafe { NETD_NEIGHBORS6.get(target) }.copied() else {
        return Ok(None);
    };
    if neighbor.net_id != ep.net_id {
        return Err(DropReason::Isolation);
    }
    // Duplicate address detection, and a container asking for itself, are not answered (an
    // answer would tell it its address is taken); nor is a solicitation behind extension
    // headers (rare; the answer is written at fixed offsets) or an explain probe.
    if from_unspecified || ipv6::is_own(ep6, &target) || l4_off != L4_OFF6 || parse::is_probe(ctx) {
        return Ok(None);
    }
    Ok(Some(answer(ctx, &neighbor, &ep.mac)))
}

/// A neighbour advertisement from the endpoint whose ICMPv6 header is at `l4_off`: only for
/// one of its own addresses, with its own MAC.
#[inline(always)]
pub fn advertisement(
    ctx: &TcContext,
    ep: &Endpoint,
    ep6: &Endpoint6,
    l4_off: usize,
) -> Result<(), DropReason> {
    let target = parse::read_l6::<[u8; 16]>(ctx, l4_off, ND_TARGET_OFF)
        .map_err(|()| DropReason::Malformed)?;
    if !ipv6::is_own(ep6, &target) {
        return Err(DropReason::SpoofedIp);
    }
    lladdr_ok(ctx, ep, l4_off, ND_OPT_TARGET_LL)
}

/// The first option of the message at `l4_off`, if it is the link-layer address option `kind`
/// of an Ethernet address (8 bytes), must carry the endpoint's MAC. A message without options
/// has nothing to check.
#[inline(always)]
fn lladdr_ok(ctx: &TcContext, ep: &Endpoint, l4_off: usize, kind: u8) -> Result<(), DropReason> {
    let Ok(opt) = parse::read_l6::<[u8; 8]>(ctx, l4_off, ND_OPTIONS_OFF) else {
        return Ok(());
    };
    if opt[0] == kind && opt[1] == 1 && opt[2..] != ep.mac {
        return Err(DropReason::SpoofedMac);
    }
    Ok(())
}

/// Turns the solicitation in the packet (no extension headers) into `by`'s advertisement and
/// sends it back out of its port, to the container (MAC `to_mac`) that asked. A BPF function
/// of its own with a scalar result, so that its work does not add to its caller's stack; a
/// packet it cannot rewrite is dropped as malformed.
#[inline(never)]
fn answer(ctx: &TcContext, by: &Neighbor, to_mac: &[u8; 6]) -> i32 {
    match try_answer(ctx, by, to_mac) {
        Ok(action) => action,
        Err(()) => crate::endpoint6::drop(ctx, DropReason::Malformed),
    }
}

#[inline(always)]
fn try_answer(ctx: &TcContext, by: &Neighbor, to_mac: &[u8; 6]) -> Result<i32, ()> {
    let scratch = NETD_NDP_SCRATCH.get_ptr_mut(0).ok_or(())?;
    // SAFETY: this CPU's own slot, for this program run.
    let s = unsafe { &mut *scratch };
    // The IPv6 source, 8 bytes into the header; the target, 8 bytes into the ICMPv6 header.
    parse::load_into(ctx, IP_OFF + 8, &mut s.to)?;
    parse::load_into(ctx, L4_OFF6 + ND_TARGET_OFF, &mut s.target)?;
    wire::neighbor_advert_words(&s.target, &s.to, by.mac, &mut s.reply);
    // SAFETY: our own skb; the helper trims or zero-extends it (and drops its GSO state).
    if unsafe { bpf_skb_change_tail(ctx.skb.skb, (IP_OFF + NEIGHBOR_ADVERT_LEN) as u32, 0) } != 0 {
        return Err(());
    }
    let eth = EthHdr {
        dst_addr: *to_mac,
        src_addr: by.mac,
        ether_type: ETH_P_IPV6,
    };
    ctx.store(0, &eth, 0).map_err(|_| ())?;
    // SAFETY: `s.reply` holds `NEIGHBOR_ADVERT_LEN` bytes of map memory.
    let ret = unsafe {
        bpf_skb_store_bytes(
            ctx.skb.skb.cast(),
            IP_OFF as u32,
            s.reply.as_ptr().cast(),
            NEIGHBOR_ADVERT_LEN as u32,
            0,
        )
    };
    if ret != 0 {
        return Err(());
    }
    // SAFETY: a plain helper call; the return value is the action (the port exists: the packet
    // came in on it).
    Ok(unsafe { bpf_redirect(nat::ifindex(ctx), 0) } as i32)
}
