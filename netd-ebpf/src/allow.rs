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
    maps::lpm_trie::Key,
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
    parse::{self, Flow, IP_OFF},
};

/// The TCP RST flag.
const TCP_RST: u8 = 0x04;

/// Whether `client` may open a flow to the published port `port` (leading to `backend`): the
/// longest prefix of its scope that matches decides; no prefix at all lets it in.
#[inline(always)]
pub fn admits(port: &PortKey, backend: &Backend, client: [u8; 4]) -> bool {
    let key = Key::new(
        POLICY_KEY_BITS,
        PolicyPrefix {
            scope: scope_of(port, backend),
            client: v4_mapped(client),
        },
    );
    // SAFETY: copied out at once.
    unsafe { NETD_PUBLISH_POLICY.get(key) }.copied() != Some(POLICY_DENY)
}

/// Refuses the packet `flow` as a closed port: counted as a drop, answered if it can be (an
/// explain probe is only dropped, so that it shows the reason).
#[inline(always)]
pub fn refuse(ctx: &TcContext, flow: &Flow) -> Result<i32, DropReason> {
    if flow.dry {
        return Err(DropReason::PublishPolicy);
    }
    nat::note_drop(ctx, DropReason::PublishPolicy);
    Ok(answer(ctx, flow).unwrap_or(TC_ACT_SHOT))
}

/// Turns the packet into the closed port's answer and sends it back out of its port.
#[inline(always)]
fn answer(ctx: &TcContext, flow: &Flow) -> Result<i32, ()> {
    let eth = parse::eth(ctx)?;
    match flow.proto {
        IPPROTO_TCP if flow.tcp_flags & TCP_RST == 0 => reset(ctx, flow)?,
        IPPROTO_UDP => port_unreachable(ctx)?,
        _ => return Err(()),
    }
    let macs = [eth.src_addr, eth.dst_addr];
    ctx.store(0, &macs, 0).map_err(|_| ())?;
    // SAFETY: a plain helper call; the return value is the action.
    Ok(unsafe { bpf_redirect(nat::ifindex(ctx), 0) } as i32)
}

/// The segment becomes the reset that answers it.
#[inline(always)]
fn reset(ctx: &TcContext, flow: &Flow) -> Result<(), ()> {
    let tcp = ctx.load::<[u8; 20]>(flow.l4_off).map_err(|_| ())?;
    let total = u16::from_be_bytes(ctx.load::<[u8; 2]>(IP_OFF + 2).map_err(|_| ())?);
    let headers = (flow.l4_off - IP_OFF) as u16 + u16::from(tcp[12] >> 4) * 4;
    let reply = wire::tcp_reset(flow.saddr, flow.daddr, &tcp, total.saturating_sub(headers));
    rewrite(ctx, &reply)
}

/// The datagram becomes ICMP "port unreachable" quoting it (only a header without options is
/// quoted whole in the fixed-size error).
#[inline(always)]
fn port_unreachable(ctx: &TcContext) -> Result<(), ()> {
    let quote = parse::read::<[u8; QUOTE_LEN]>(ctx, IP_OFF)?;
    if quote[0] != 0x45 {
        return Err(());
    }
    let reply = wire::port_unreachable(&quote);
    rewrite(ctx, &reply)
}

/// The packet after its Ethernet header replaced by `reply`, trimmed or grown to fit.
#[inline(always)]
fn rewrite<const N: usize>(ctx: &TcContext, reply: &[u8; N]) -> Result<(), ()> {
    const { assert!(N == TCP_RESET_LEN || N == ICMP_ERROR_LEN) };
    // SAFETY: our own skb; the helper trims or zero-extends it (and drops its GSO state).
    if unsafe { bpf_skb_change_tail(ctx.skb.skb, (IP_OFF + N) as u32, 0) } != 0 {
        return Err(());
    }
    ctx.store(IP_OFF, reply, 0).map_err(|_| ())
}
