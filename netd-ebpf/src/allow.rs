//! Who may open a flow to a published port, decided at the flow's first packet (the one that
//! would create its NAT entries): the port's own allowlist or, without one, the host-wide
//! policy, both in `NETD_PUBLISH_POLICY`, one LPM lookup whatever the number of prefixes. The
//! daemon removes the entries of flows a changed policy no longer lets in, so their next packet
//! comes here again.
//!
//! A client refused gets what a closed port gives: a TCP segment a reset (never a reset for a
//! reset), a UDP datagram ICMP "port unreachable", written over the packet and sent straight
//! back out of the port it came in by. It is counted and reported as a drop
//! ([`DropReason::PublishPolicy`], with the client's address in `netd monitor`).
use aya_ebpf::{
    bindings::TC_ACT_SHOT,
    helpers::{bpf_redirect, bpf_skb_change_tail},
    macros::map,
    maps::{lpm_trie::Key, PerCpuArray},
    programs::TcContext,
};
use netd_common::{
    scope_of, v4_mapped,
    wire::{self, ICMP_ERROR_LEN, QUOTE_LEN, TCP_RESET_LEN},
    Backend, DropReason, PolicyPrefix, PortKey, IPPROTO_TCP, IPPROTO_UDP, POLICY_DENY,
    POLICY_KEY_BITS,
};

use crate::{
    maps::NETD_PUBLISH_POLICY,
    nat,
    parse::{load_into, Flow, IP_OFF},
};

/// The TCP RST flag.
const TCP_RST: u8 = 0x04;

/// Where the lookup key and the answer are built: the programs that call this are close to
/// the verifier's 512 bytes of stack already.
#[repr(C)]
pub struct Scratch {
    key: Key<PolicyPrefix>,
    /// The answer, in words as memory holds them ([`wire`]).
    reply: [u32; ICMP_ERROR_LEN / 4],
    /// The packet's IPv4 header and the 8 bytes after it, then its TCP header, as read.
    quote: [u32; QUOTE_LEN / 4],
    tcp: [u32; 5],
    /// The frame's destination and source MACs.
    macs: [u8; 12],
}

/// One [`Scratch`] per CPU (a program run never leaves its CPU).
#[map(name = "NETD_POLICY_SCRATCH")]
static NETD_POLICY_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Whether `client` may open a flow to the published port `port` (leading to `backend`): the
/// longest prefix of its scope that matches decides; no prefix at all lets it in. (Without its
/// scratch slot, which a one-slot per-CPU array always has, nobody is let in.)
#[inline(always)]
pub fn admits(port: &PortKey, backend: &Backend, client: [u8; 4]) -> bool {
    let Some(scratch) = NETD_POLICY_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's own slot, for this program run; copied out of the trie at once.
    unsafe {
        let key = &mut (*scratch).key;
        key.prefix_len = POLICY_KEY_BITS;
        key.data.scope = scope_of(port, backend);
        key.data.client = v4_mapped(client);
        NETD_PUBLISH_POLICY.get(&*key).copied() != Some(POLICY_DENY)
    }
}

/// Refuses the packet `flow` as a closed port: counted as a drop, answered if it can be (an
/// explain probe is only dropped, so that it shows the reason).
#[inline(always)]
pub fn refuse(ctx: &TcContext, flow: &Flow) -> Result<i32, DropReason> {
    if flow.dry {
        return Err(DropReason::PublishPolicy);
    }
    nat::note_drop(ctx, DropReason::PublishPolicy);
    Ok(answer(ctx, flow.proto, flow.tcp_flags, flow.l4_off as u32))
}

/// Turns the packet (of protocol `proto`, TCP flags `tcp_flags`, its L4 header at `l4_off`)
/// into the closed port's answer and sends it back out of its port; drops it if that cannot
/// be done. A BPF function of its own, with scalar arguments and result, so that its work
/// does not add to the stack of its callers, which are close to the verifier's 512 bytes.
#[inline(never)]
fn answer(ctx: &TcContext, proto: u8, tcp_flags: u8, l4_off: u32) -> i32 {
    match try_answer(ctx, proto, tcp_flags, l4_off as usize) {
        Ok(action) => action,
        Err(()) => TC_ACT_SHOT,
    }
}

#[inline(always)]
fn try_answer(ctx: &TcContext, proto: u8, tcp_flags: u8, l4_off: usize) -> Result<i32, ()> {
    let scratch = NETD_POLICY_SCRATCH.get_ptr_mut(0).ok_or(())?;
    // SAFETY: this CPU's own slot, for this program run.
    let s = unsafe { &mut *scratch };
    load_into(ctx, 0, &mut s.macs)?;
    load_into(ctx, IP_OFF, &mut s.quote)?;
    match proto {
        IPPROTO_TCP if tcp_flags & TCP_RST == 0 => reset(ctx, l4_off, s)?,
        IPPROTO_UDP => port_unreachable(ctx, s)?,
        _ => return Err(()),
    }
    // Back to where it came from: destination and source swapped.
    // (Not `rotate_left`: core's rotation takes a 256-byte buffer on the stack.)
    for i in 0..6 {
        s.macs.swap(i, i + 6);
    }
    ctx.store(0, &s.macs, 0).map_err(|_| ())?;
    // SAFETY: a plain helper call; the return value is the action.
    Ok(unsafe { bpf_redirect(nat::ifindex(ctx), 0) } as i32)
}

/// The segment becomes the reset that answers it (`s.quote` holds its IPv4 header).
#[inline(always)]
fn reset(ctx: &TcContext, l4_off: usize, s: &mut Scratch) -> Result<(), ()> {
    load_into(ctx, l4_off, &mut s.tcp)?;
    let (q, t) = (&s.quote, &s.tcp);
    let [_, _, l0, l1] = q[0].to_ne_bytes();
    let [doff, flags, _, _] = t[3].to_ne_bytes();
    let headers = (l4_off - IP_OFF) as u16 + u16::from(doff >> 4) * 4;
    let segment = wire::Segment {
        saddr: q[3],
        daddr: q[4],
        ports: t[0],
        seq: t[1],
        ack: t[2],
        flags,
        payload_len: u16::from_be_bytes([l0, l1]).saturating_sub(headers),
    };
    let reply = s
        .reply
        .first_chunk_mut::<{ TCP_RESET_LEN / 4 }>()
        .ok_or(())?;
    wire::tcp_reset_words(&segment, reply);
    rewrite::<TCP_RESET_LEN>(ctx, &s.reply)
}

/// The datagram becomes ICMP "port unreachable" quoting it (`s.quote`: only a header without
/// options is quoted whole in the fixed-size error).
#[inline(always)]
fn port_unreachable(ctx: &TcContext, s: &mut Scratch) -> Result<(), ()> {
    if s.quote[0].to_ne_bytes()[0] != 0x45 {
        return Err(());
    }
    wire::port_unreachable_words(&s.quote, &mut s.reply);
    rewrite::<ICMP_ERROR_LEN>(ctx, &s.reply)
}

/// The packet after its Ethernet header replaced by the first `N` bytes of `reply`, trimmed
/// or grown to fit.
#[inline(always)]
fn rewrite<const N: usize>(ctx: &TcContext, reply: &[u32; ICMP_ERROR_LEN / 4]) -> Result<(), ()> {
    // SAFETY: our own skb; the helper trims or zero-extends it (and drops its GSO state).
    if unsafe { bpf_skb_change_tail(ctx.skb.skb, (IP_OFF + N) as u32, 0) } != 0 {
        return Err(());
    }
    // SAFETY: `reply` holds `ICMP_ERROR_LEN >= N` bytes of map memory.
    let ret = unsafe {
        aya_ebpf::helpers::bpf_skb_store_bytes(
            ctx.skb.skb.cast(),
            IP_OFF as u32,
            reply.as_ptr().cast(),
            N as u32,
            0,
        )
    };
    match ret {
        0 => Ok(()),
        _ => Err(()),
    }
}
