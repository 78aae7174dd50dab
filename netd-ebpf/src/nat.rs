//! Network address translation shared by the hooks: looking up a flow, rewriting addresses and
//! ports with incremental checksum updates, creating the two entries (one per direction) of a
//! new translated flow, and the verdict that sends a translated packet on its way.
//!
//! Translated packets of published-port flows skip the host wherever routing would only have
//! passed them on: a packet from an uplink goes straight into its container
//! (`bpf_redirect_peer`, [`verdict`]), and the container's reply straight out of that uplink
//! (`bpf_redirect_neigh`, [`reply_to_uplink`]), each taking the one hop off the TTL that routing
//! would. Where routing would do more (the TTL runs out, the reply does not fit the uplink's MTU,
//! the container's port changed), the packet takes the host's path as before.
//!
//! Flows live in two tables, as Linux conntrack's ASSURED bit and early drop: a new flow's pair
//! goes into `NETD_NAT_NEW` (an LRU hash, evictable), and moves to `NETD_NAT` (a plain hash,
//! never evicted) once the flow is assured ([`netd_common::assures`]: a TCP handshake completed,
//! UDP or ICMP traffic both ways). A FIN or RST moves an assured pair back, so that closing
//! flows are evictable again. Look-ups try the assured table first (the established case costs
//! one look-up); a move inserts into the target table before it deletes from the source, so a
//! concurrent look-up finds the entry in one or the other.
use aya_ebpf::{
    bindings::{
        bpf_check_mtu_flags::BPF_MTU_CHK_SEGS, bpf_check_mtu_ret::BPF_MTU_CHK_RET_SUCCESS,
        BPF_F_PSEUDO_HDR, BPF_NOEXIST, TC_ACT_OK, TC_ACT_SHOT,
    },
    helpers::{bpf_check_mtu, bpf_ktime_get_ns, bpf_redirect_neigh, bpf_redirect_peer},
    programs::TcContext,
};
use netd_common::{
    assures, closes, may_assure, reverse_key, DropReason, FlowKey, NatEntry, PortKey, IPPROTO_ICMP,
    IPPROTO_TCP, IPPROTO_UDP, NAT_FLAG_NEIGH, NAT_FLAG_REDIRECT, NAT_FLAG_REPLY, NAT_KIND_DNAT,
    NAT_KIND_HAIRPIN, NAT_STAT_ASSURED_FULL, NAT_STAT_DEMOTED, NAT_STAT_PROMOTED, SNAT_PORT_MAX,
    SNAT_PORT_MIN, SNAT_RETRIES, TCP_SEEN_ACK, TCP_SEEN_FIN, TCP_SEEN_RST, TCP_SEEN_SYN,
};

use crate::{
    maps::{count_nat, NETD_ENDPOINTS, NETD_NAT, NETD_NAT_NEW},
    parse::{Flow, IP_OFF},
};

/// `BPF_F_MARK_MANGLED_0`: keep a zero UDP checksum zero.
const BPF_F_MARK_MANGLED_0: u64 = 1 << 5;
/// Offsets of the IPv4 TTL, header checksum, source and destination address.
const IP_TTL_OFF: usize = IP_OFF + 8;
const IP_CSUM_OFF: usize = IP_OFF + 10;
const IP_SRC_OFF: usize = IP_OFF + 12;
const IP_DST_OFF: usize = IP_OFF + 16;

/// A NAT entry a packet matched, not counted yet: a hook that may leave the packet to a later
/// hook (which then counts it) decides first.
pub struct Hit {
    ptr: *mut NatEntry,
    pub entry: NatEntry,
    zone: u8,
    /// Found in the assured table.
    assured: bool,
}

/// The entry for `flow` at the hook of `zone`, as it is now: assured flows first.
#[inline(always)]
pub fn find(flow: &Flow, zone: u8) -> Option<Hit> {
    let key = flow.key(zone);
    let (ptr, assured) = match NETD_NAT.get_ptr_mut(key) {
        Some(ptr) => (ptr, true),
        None => (NETD_NAT_NEW.get_ptr_mut(key)?, false),
    };
    // SAFETY: the pointer is valid for this program run; the value is copied out at once.
    Some(Hit {
        ptr,
        entry: unsafe { *ptr },
        zone,
        assured,
    })
}

/// The entry under `key` in either table (assured first), copied out; nothing is counted.
#[inline(always)]
pub fn get(key: &FlowKey) -> Option<NatEntry> {
    // SAFETY: copied out at once.
    unsafe { NETD_NAT.get(key).or_else(|| NETD_NAT_NEW.get(key)) }.copied()
}

/// Counts the packet on the entry it matched (and on its published port), unless it is a probe;
/// then moves the flow between the tables if the packet assured or closed it.
#[inline(always)]
pub fn count(flow: &Flow, hit: &Hit) {
    if flow.dry {
        return;
    }
    let entry = hit.ptr;
    let seen = tcp_seen(flow.tcp_flags);
    // SAFETY: the pointer is valid for this program run; concurrent updates of the counters
    // may race, which only makes them approximate.
    let now = unsafe {
        (*entry).last_ns = bpf_ktime_get_ns();
        (*entry).packets += 1;
        (*entry).bytes += flow.len as u64;
        (*entry).tcp_seen |= seen;
        &*entry
    };
    account(flow, &hit.entry, false);
    if hit.assured {
        if closes(flow.proto, seen) {
            demote(&flow.key(hit.zone), now);
        }
    } else if may_assure(flow.proto, seen, now) {
        promote(flow.proto, seen, &flow.key(hit.zone), now);
    }
}

/// Moves the pair of `this` (the entry under `key`, just counted) to the assured table if the
/// packet assured its flow; when that table is full the flow stays where it is, and is counted.
#[inline(always)]
fn promote(proto: u8, seen: u8, key: &FlowKey, this: &NatEntry) {
    let other_key = reverse_key(key, this);
    // SAFETY: the entry is read here and copied by the insert below, nothing else.
    let Some(other) = (unsafe { NETD_NAT_NEW.get(other_key) }) else {
        return;
    };
    if !assures(proto, seen, this, other) {
        return;
    }
    if NETD_NAT.insert(other_key, other, 0).is_err() {
        count_nat(NAT_STAT_ASSURED_FULL);
        return;
    }
    if NETD_NAT.insert(key, this, 0).is_err() {
        let _ = NETD_NAT.remove(other_key); // no half pair: both stay in the new table
        count_nat(NAT_STAT_ASSURED_FULL);
        return;
    }
    let _ = NETD_NAT_NEW.remove(key);
    let _ = NETD_NAT_NEW.remove(other_key);
    count_nat(NAT_STAT_PROMOTED);
}

/// Moves the pair of `this` (the entry under `key`, just counted) back to the new table: its
/// flow is closing. The LRU insert makes room by evicting if it must.
#[inline(always)]
fn demote(key: &FlowKey, this: &NatEntry) {
    let other_key = reverse_key(key, this);
    // SAFETY: the entry is only copied by the insert below.
    let other = unsafe { NETD_NAT.get(other_key) };
    if let Some(other) = other {
        if NETD_NAT_NEW.insert(other_key, other, 0).is_err() {
            return;
        }
    }
    if NETD_NAT_NEW.insert(key, this, 0).is_err() {
        if other.is_some() {
            let _ = NETD_NAT_NEW.remove(other_key);
        }
        return;
    }
    let _ = NETD_NAT.remove(key);
    if other.is_some() {
        let _ = NETD_NAT.remove(other_key);
    }
    count_nat(NAT_STAT_DEMOTED);
}

/// The entry for `flow` at the hook of `zone`, with the packet counted.
#[inline(always)]
pub fn lookup(flow: &Flow, zone: u8) -> Option<NatEntry> {
    let hit = find(flow, zone)?;
    count(flow, &hit);
    Some(hit.entry)
}

/// Counts a packet of a published-port flow on the port the client addressed.
#[inline(always)]
fn account(flow: &Flow, e: &NatEntry, opening: bool) {
    if e.kind != NAT_KIND_DNAT && e.kind != NAT_KIND_HAIRPIN {
        return;
    }
    let (addr, port_be) = match e.flags & NAT_FLAG_REPLY {
        0 => (flow.daddr, flow.dport_be),
        _ => (e.saddr, e.sport_be),
    };
    crate::maps::count_port(
        PortKey {
            addr,
            port_be,
            proto: flow.proto,
            _pad: 0,
        },
        flow.len,
        opening,
    );
}

/// TCP flags folded into the `TCP_SEEN_*` bits.
#[inline(always)]
fn tcp_seen(flags: u8) -> u8 {
    let mut seen = 0;
    if flags & 0x02 != 0 {
        seen |= TCP_SEEN_SYN;
    }
    if flags & 0x01 != 0 {
        seen |= TCP_SEEN_FIN;
    }
    if flags & 0x04 != 0 {
        seen |= TCP_SEEN_RST;
    }
    if flags & 0x10 != 0 {
        seen |= TCP_SEEN_ACK;
    }
    seen
}

/// A new entry that rewrites to (`saddr`:`sport` -> `daddr`:`dport`).
#[inline(always)]
pub fn entry(flow: &Flow, kind: u8, flags: u8, to: &FlowKey) -> NatEntry {
    // SAFETY: a plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    let opening = flags & NAT_FLAG_REPLY == 0;
    NatEntry {
        saddr: to.saddr,
        daddr: to.daddr,
        sport_be: to.sport_be,
        dport_be: to.dport_be,
        kind,
        flags,
        tcp_seen: tcp_seen(flow.tcp_flags),
        _pad: 0,
        redirect_ifindex: 0,
        dst_mac: [0; 6],
        _pad2: [0; 2],
        created_ns: now,
        last_ns: now,
        // The packet that opens the flow counts in its direction; replies count as they come.
        packets: opening as u64,
        bytes: if opening { flow.len as u64 } else { 0 },
    }
}

/// Records both directions of a new flow in the new table: `fwd` for the packet in hand, `rev`
/// for its replies. Both or neither.
#[inline(always)]
pub fn insert_pair(
    ctx: &TcContext,
    flow: &Flow,
    fwd_key: &FlowKey,
    fwd: &NatEntry,
    rev_key: &FlowKey,
    rev: &NatEntry,
) -> Result<(), DropReason> {
    if flow.dry {
        return Ok(());
    }
    NETD_NAT_NEW
        .insert(rev_key, rev, 0)
        .map_err(|_| DropReason::NatTableFull)?;
    if NETD_NAT_NEW.insert(fwd_key, fwd, 0).is_err() {
        let _ = NETD_NAT_NEW.remove(rev_key);
        return Err(DropReason::NatTableFull);
    }
    account(flow, fwd, true);
    crate::events::new_flow(ifindex(ctx), flow, fwd_key, fwd);
    Ok(())
}

/// Claims a free SNAT port for replies to `addr` by inserting the reply entry into the new table
/// under a key that must not exist yet in either table; tries up to `SNAT_RETRIES` ports
/// starting at a hash of the flow.
#[inline(always)]
pub fn claim_port(flow: &Flow, rev_key: &mut FlowKey, rev: &NatEntry) -> Result<u16, DropReason> {
    let range = (SNAT_PORT_MAX - SNAT_PORT_MIN) as u32 + 1;
    let seed = u32::from_ne_bytes(flow.saddr)
        ^ u32::from_ne_bytes(flow.daddr).rotate_left(7)
        ^ ((flow.sport_be as u32) << 16 | flow.dport_be as u32).rotate_left(13);
    for i in 0..SNAT_RETRIES {
        let port =
            SNAT_PORT_MIN + ((seed.wrapping_mul(2654435761).wrapping_add(i * 7919)) % range) as u16;
        let port_be = port.to_be();
        rev_key.dport_be = port_be;
        if flow.proto == IPPROTO_ICMP {
            rev_key.sport_be = port_be;
        }
        // SAFETY: presence only.
        let free = unsafe { NETD_NAT.get(*rev_key) }.is_none()
            && match flow.dry {
                // SAFETY: as above.
                true => unsafe { NETD_NAT_NEW.get(*rev_key) }.is_none(),
                false => NETD_NAT_NEW
                    .insert(*rev_key, rev, BPF_NOEXIST as u64)
                    .is_ok(),
            };
        if free {
            return Ok(port_be);
        }
    }
    Err(DropReason::NatPortExhausted)
}

/// Rewrites the packet's tuple to the entry's, fixing the IPv4 and L4 checksums.
#[inline(always)]
pub fn rewrite(ctx: &TcContext, flow: &Flow, to: &NatEntry) -> Result<(), DropReason> {
    let csum_off = match flow.proto {
        IPPROTO_TCP => flow.l4_off + 16,
        IPPROTO_UDP => flow.l4_off + 6,
        _ => flow.l4_off + 2,
    };
    let l4_flags = if flow.proto == IPPROTO_UDP {
        BPF_F_MARK_MANGLED_0
    } else {
        0
    };
    let pseudo = flow.proto != IPPROTO_ICMP;
    if to.saddr != flow.saddr {
        set_addr(
            ctx, IP_SRC_OFF, flow.saddr, to.saddr, csum_off, pseudo, l4_flags,
        )?;
    }
    if to.daddr != flow.daddr {
        set_addr(
            ctx, IP_DST_OFF, flow.daddr, to.daddr, csum_off, pseudo, l4_flags,
        )?;
    }
    if flow.proto == IPPROTO_ICMP {
        // The echo identifier stands for both ports.
        if to.sport_be != flow.sport_be {
            set_port(
                ctx,
                flow.l4_off + 4,
                flow.sport_be,
                to.sport_be,
                csum_off,
                l4_flags,
            )?;
        } else if to.dport_be != flow.dport_be {
            set_port(
                ctx,
                flow.l4_off + 4,
                flow.dport_be,
                to.dport_be,
                csum_off,
                l4_flags,
            )?;
        }
        return Ok(());
    }
    if to.sport_be != flow.sport_be {
        set_port(
            ctx,
            flow.l4_off,
            flow.sport_be,
            to.sport_be,
            csum_off,
            l4_flags,
        )?;
    }
    if to.dport_be != flow.dport_be {
        set_port(
            ctx,
            flow.l4_off + 2,
            flow.dport_be,
            to.dport_be,
            csum_off,
            l4_flags,
        )?;
    }
    Ok(())
}

#[inline(always)]
fn set_addr(
    ctx: &TcContext,
    off: usize,
    old: [u8; 4],
    new: [u8; 4],
    csum_off: usize,
    pseudo: bool,
    l4_flags: u64,
) -> Result<(), DropReason> {
    let (old, new) = (
        u32::from_ne_bytes(old) as u64,
        u32::from_ne_bytes(new) as u64,
    );
    if pseudo {
        ctx.l4_csum_replace(csum_off, old, new, l4_flags | BPF_F_PSEUDO_HDR as u64 | 4)
            .map_err(|_| DropReason::Malformed)?;
    }
    ctx.l3_csum_replace(IP_CSUM_OFF, old, new, 4)
        .map_err(|_| DropReason::Malformed)?;
    ctx.store(off, &(new as u32), 0)
        .map_err(|_| DropReason::Malformed)
}

#[inline(always)]
fn set_port(
    ctx: &TcContext,
    off: usize,
    old: u16,
    new: u16,
    csum_off: usize,
    l4_flags: u64,
) -> Result<(), DropReason> {
    ctx.l4_csum_replace(csum_off, old as u64, new as u64, l4_flags | 2)
        .map_err(|_| DropReason::Malformed)?;
    ctx.store(off, &new, 0).map_err(|_| DropReason::Malformed)
}

/// What to do with a packet rewritten by `entry`: let it go on, or, for `NAT_FLAG_REDIRECT`,
/// deliver it straight into the container behind the entry's port, with the container's MAC as
/// destination. Only while that port still leads to the container the entry was made for (a
/// stale entry takes the host's path, as it did before the port changed). A packet from an
/// uplink (a published port's, or the reply of an egress flow) takes the shortcut in place of
/// routing, so only with a TTL that allows one more hop, which it takes.
#[inline(always)]
pub fn verdict(ctx: &TcContext, flow: &Flow, entry: &NatEntry) -> Result<i32, DropReason> {
    if entry.flags & NAT_FLAG_REDIRECT == 0 || !leads_to(entry.redirect_ifindex, entry.daddr) {
        return Ok(TC_ACT_OK);
    }
    if entry.kind != NAT_KIND_HAIRPIN {
        if flow.ttl <= 1 {
            return Ok(TC_ACT_OK); // routing answers with time exceeded
        }
        hop(ctx, flow)?;
    }
    let eth = crate::parse::eth(ctx).map_err(|()| DropReason::Malformed)?;
    let src = if eth.dst_addr == entry.dst_mac {
        eth.src_addr
    } else {
        eth.dst_addr
    };
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&entry.dst_mac);
    macs[6..].copy_from_slice(&src);
    ctx.store(0, &macs, 0).map_err(|_| DropReason::Malformed)?;
    // SAFETY: a plain helper call; the return value is the action.
    Ok(unsafe { bpf_redirect_peer(entry.redirect_ifindex, 0) } as i32)
}

/// Whether the host-side port `ifindex` is still the port of the container at `addr`.
#[inline(always)]
fn leads_to(ifindex: u32, addr: [u8; 4]) -> bool {
    // SAFETY: copied out at once.
    unsafe { NETD_ENDPOINTS.get(ifindex) }.is_some_and(|ep| ep.addr == addr)
}

/// A container's packet that is the reply of a published-port flow (`hit`, its entry at the
/// uplink's egress): translated here and sent straight out of the uplink the flow came in on
/// (`NAT_FLAG_NEIGH`), the kernel choosing the next hop and its MAC. When routing would do more
/// than pass it on (its TTL runs out, it does not fit the uplink's MTU, the uplink is gone), it
/// takes the host's path untouched and the uplink's egress translates it, as before.
#[inline(always)]
pub fn reply_to_uplink(ctx: &TcContext, flow: &Flow, hit: &Hit) -> Result<i32, DropReason> {
    let uplink = hit.entry.redirect_ifindex;
    if hit.entry.flags & NAT_FLAG_NEIGH == 0 || flow.ttl <= 1 || !fits(ctx, uplink) {
        return Ok(TC_ACT_OK);
    }
    count(flow, hit);
    rewrite(ctx, flow, &hit.entry)?;
    hop(ctx, flow)?;
    // SAFETY: a plain helper call (no next hop given: the kernel looks it up); the return value
    // is the action.
    Ok(unsafe { bpf_redirect_neigh(uplink, core::ptr::null_mut(), 0, 0) } as i32)
}

/// Whether the packet (each segment, if it is GSO) fits the MTU of the port `ifindex`, which
/// must exist.
#[inline(always)]
fn fits(ctx: &TcContext, ifindex: u32) -> bool {
    let mut mtu_len = 0u32;
    // SAFETY: a plain helper call on our own skb and a stack slot.
    let ret = unsafe {
        bpf_check_mtu(
            ctx.skb.skb.cast(),
            ifindex,
            &mut mtu_len,
            0,
            BPF_MTU_CHK_SEGS as u64,
        )
    };
    ret == BPF_MTU_CHK_RET_SUCCESS as i64
}

/// Takes one hop off the TTL, as routing would (the caller checked that one is left).
#[inline(always)]
fn hop(ctx: &TcContext, flow: &Flow) -> Result<(), DropReason> {
    let ttl = flow.ttl - 1;
    // The TTL shares its checksum word with the protocol.
    let old = u16::from_ne_bytes([flow.ttl, flow.proto]);
    let new = u16::from_ne_bytes([ttl, flow.proto]);
    ctx.l3_csum_replace(IP_CSUM_OFF, old as u64, new as u64, 2)
        .map_err(|_| DropReason::Malformed)?;
    ctx.store(IP_TTL_OFF, &ttl, 0)
        .map_err(|_| DropReason::Malformed)
}

/// The port the packet is on.
#[inline(always)]
pub fn ifindex(ctx: &TcContext) -> u32 {
    // SAFETY: the skb is valid for this program run.
    unsafe { (*ctx.skb.skb).ifindex }
}

/// The action for a dropped packet, counted and reported.
#[inline(always)]
pub fn drop(ctx: &TcContext, reason: DropReason) -> i32 {
    note_drop(ctx, reason);
    TC_ACT_SHOT
}

/// Counts and reports a packet dropped for `reason` (or answered in its place).
#[inline(always)]
pub fn note_drop(ctx: &TcContext, reason: DropReason) {
    if crate::parse::is_probe(ctx) {
        crate::maps::note_probe_drop(reason);
    } else {
        let ifindex = ifindex(ctx);
        crate::maps::count_drop(ifindex, reason);
        crate::events::dropped(ctx, ifindex, reason);
        if crate::maps::config(netd_common::CONFIG_DEBUG) != 0 {
            aya_log_ebpf::debug!(
                ctx,
                "netd: dropped a packet on ifindex {}: reason {}",
                ifindex,
                reason as u32
            );
        }
    }
}
