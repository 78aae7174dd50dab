//! Bounds-checked reads of the headers the programs look at. A header in the skb's linear part
//! is read in place (direct packet access, checked against `data_end`); one beyond it is copied
//! out with `bpf_skb_load_bytes`. A short packet is an error, never an out-of-bounds access.
use aya_ebpf::programs::TcContext;
use netd_common::{FlowKey, EXPLAIN_MARK, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};
use network_types::{arp::ArpHdr, eth::EthHdr, ip::Ipv4Hdr};

/// EtherType of IPv4, as it sits in the frame (network order).
pub const ETH_P_IP: u16 = 0x0800_u16.to_be();
/// EtherType of ARP, as it sits in the frame (network order).
pub const ETH_P_ARP: u16 = 0x0806_u16.to_be();
/// EtherType of IPv6, as it sits in the frame (network order).
pub const ETH_P_IPV6: u16 = 0x86dd_u16.to_be();
/// Where the IPv4 header starts.
pub const IP_OFF: usize = EthHdr::LEN;

/// Where the L4 header starts after an IPv4 header without options.
const L4_OFF: usize = IP_OFF + 20;

/// A `T` at the constant offset `off`: read in place when it lies in the linear part (no helper
/// call: headers almost always do), else copied out of the skb. The offset must be a constant
/// for the verifier to follow the bounds check.
#[inline(always)]
pub fn read<T: Copy>(ctx: &TcContext, off: usize) -> Result<T, ()> {
    let start = ctx.data();
    if start + off + size_of::<T>() <= ctx.data_end() {
        // SAFETY: checked against data_end just above; the read is unaligned.
        return Ok(unsafe { ((start + off) as *const T).read_unaligned() });
    }
    ctx.load::<T>(off).map_err(|_| ())
}

/// A `T` at `rel` into the L4 header at `l4_off`: read in place behind an IPv4 header without
/// options (the usual case, at a constant offset), else copied out of the skb.
#[inline(always)]
fn read_l4<T: Copy>(ctx: &TcContext, l4_off: usize, rel: usize) -> Result<T, ()> {
    if l4_off == L4_OFF {
        return read::<T>(ctx, L4_OFF + rel);
    }
    ctx.load::<T>(l4_off + rel).map_err(|_| ())
}

/// The EtherType of the frame (network order), if it has an Ethernet header.
#[inline(always)]
pub fn ether_type(ctx: &TcContext) -> Option<u16> {
    read::<u16>(ctx, 12).ok()
}

/// The Ethernet header.
#[inline(always)]
pub fn eth(ctx: &TcContext) -> Result<EthHdr, ()> {
    read::<EthHdr>(ctx, 0)
}

/// The IPv4 header that follows the Ethernet header; rejects a version other than 4 or an IHL
/// shorter than the fixed header.
#[inline(always)]
pub fn ipv4(ctx: &TcContext) -> Result<Ipv4Hdr, ()> {
    let ip = read::<Ipv4Hdr>(ctx, IP_OFF)?;
    if ip.vihl >> 4 != 4 || ip.vihl & 0x0f < 5 {
        return Err(());
    }
    Ok(ip)
}

/// The ARP header that follows the Ethernet header; only Ethernet/IPv4 ARP is accepted.
#[inline(always)]
pub fn arp(ctx: &TcContext) -> Result<ArpHdr, ()> {
    let arp = read::<ArpHdr>(ctx, EthHdr::LEN)?;
    if arp.hlen != 6 || arp.plen != 4 || arp.ptype != [0x08, 0x00] {
        return Err(());
    }
    Ok(arp)
}

/// What the programs use of an IPv6 header: the next header, and the source and destination
/// addresses (`addrs[0]`, `addrs[1]`).
pub struct Ipv6Addrs {
    pub next_hdr: u8,
    pub addrs: [[u8; 16]; 2],
}

/// The IPv6 header that follows the Ethernet header; rejects a version other than 6. The
/// addresses are copied by the kernel into memory, not read in place: 32 single bytes in
/// registers would each take a stack slot of their own.
#[inline(always)]
pub fn ipv6(ctx: &TcContext) -> Result<Ipv6Addrs, ()> {
    let [version, _, _, _, _, _, next_hdr, _] = read::<[u8; 8]>(ctx, IP_OFF)?;
    if version >> 4 != 6 {
        return Err(());
    }
    let mut ip = Ipv6Addrs {
        next_hdr,
        addrs: [[0; 16]; 2],
    };
    load_into(ctx, IP_OFF + 8, &mut ip.addrs)?;
    Ok(ip)
}

/// Copies the packet's bytes at `off` into `to`, all of them or fails.
#[inline(always)]
pub fn load_into<T>(ctx: &TcContext, off: usize, to: &mut T) -> Result<(), ()> {
    // SAFETY: our own skb, and `size_of::<T>()` writable bytes at `to`.
    let ret = unsafe {
        aya_ebpf::helpers::bpf_skb_load_bytes(
            ctx.skb.skb.cast(),
            off as u32,
            core::ptr::from_mut(to).cast(),
            size_of::<T>() as u32,
        )
    };
    match ret {
        0 => Ok(()),
        _ => Err(()),
    }
}

/// Where the upper-layer header starts after an IPv6 header without extension headers.
pub const L4_OFF6: usize = IP_OFF + 40;

/// Extension headers (RFC 8200, 4) that may come before the upper-layer header and share the
/// generic layout (next header, length in 8-byte units past the first 8): hop-by-hop options
/// (which MLD reports carry), routing, destination options.
const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_DSTOPTS: u8 = 60;
/// How many of them [`upper6`] reads past; a packet with more is refused, so that nothing can
/// hide an ICMPv6 message from the checks behind a long chain.
const IPV6_MAX_EXT: usize = 2;

/// The upper-layer protocol of an IPv6 packet whose header says `next_hdr`, and where its
/// header starts. Fragments (and ESP, AH and anything unknown) end the walk: their protocol is
/// returned as it is. `Err(true)` if more extension headers follow than the walk reads,
/// `Err(false)` if one cannot be read.
#[inline(always)]
pub fn upper6(ctx: &TcContext, next_hdr: u8) -> Result<(u8, usize), bool> {
    let mut next = next_hdr;
    let mut off = L4_OFF6;
    for _ in 0..IPV6_MAX_EXT {
        if !is_ext6(next) {
            return Ok((next, off));
        }
        let [after, len] = read_l6::<[u8; 2]>(ctx, off, 0).map_err(|()| false)?;
        next = after;
        off += (usize::from(len) + 1) * 8;
    }
    match is_ext6(next) {
        true => Err(true),
        false => Ok((next, off)),
    }
}

#[inline(always)]
fn is_ext6(next: u8) -> bool {
    matches!(next, IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS)
}

/// A `T` at `rel` into the upper-layer header at `l4_off` of an IPv6 packet: read in place
/// behind a header without extension headers (the usual case, at a constant offset), else
/// copied out of the skb.
#[inline(always)]
pub fn read_l6<T: Copy>(ctx: &TcContext, l4_off: usize, rel: usize) -> Result<T, ()> {
    if l4_off == L4_OFF6 {
        return read::<T>(ctx, L4_OFF6 + rel);
    }
    ctx.load::<T>(l4_off + rel).map_err(|_| ())
}

/// An IPv4 packet as NAT sees it.
#[derive(Clone, Copy)]
pub struct Flow {
    pub proto: u8,
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    /// Network order; for ICMP echo both are the identifier.
    pub sport_be: u16,
    pub dport_be: u16,
    pub l4_off: usize,
    /// TCP flags (0 for other protocols).
    pub tcp_flags: u8,
    /// Ports were read: TCP, UDP or ICMP echo, and not a fragment.
    pub translatable: bool,
    pub fragment: bool,
    /// The IPv4 time to live, for the paths that forward in place of the host's routing.
    pub ttl: u8,
    pub len: u32,
    /// A `netd explain` probe: decide, but change no map.
    pub dry: bool,
}

impl Flow {
    pub fn key(&self, zone: u8) -> FlowKey {
        FlowKey {
            saddr: self.saddr,
            daddr: self.daddr,
            sport_be: self.sport_be,
            dport_be: self.dport_be,
            proto: self.proto,
            zone,
            _pad: [0; 2],
        }
    }
}

/// Whether the packet is a `netd explain` probe.
#[inline(always)]
pub fn is_probe(ctx: &TcContext) -> bool {
    // SAFETY: the skb is valid for this program run.
    unsafe { (*ctx.skb.skb).mark == EXPLAIN_MARK }
}

/// ICMP echo request and reply types.
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO: u8 = 8;

/// Reads what NAT needs from an IPv4 packet whose header `ip` was already validated.
#[inline(always)]
pub fn flow(ctx: &TcContext, ip: &Ipv4Hdr) -> Result<Flow, ()> {
    let l4_off = IP_OFF + ((ip.vihl & 0x0f) as usize) * 4;
    let fragment = ip.frags[0] & 0x3f != 0 || ip.frags[1] != 0;
    let mut flow = Flow {
        proto: ip.proto,
        saddr: ip.src_addr,
        daddr: ip.dst_addr,
        sport_be: 0,
        dport_be: 0,
        l4_off,
        tcp_flags: 0,
        translatable: false,
        fragment,
        ttl: ip.ttl,
        len: ctx.len(),
        dry: is_probe(ctx),
    };
    if fragment {
        return Ok(flow);
    }
    match flow.proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            let ports = read_l4::<[u16; 2]>(ctx, l4_off, 0)?;
            flow.sport_be = ports[0];
            flow.dport_be = ports[1];
            if flow.proto == IPPROTO_TCP {
                flow.tcp_flags = read_l4::<u8>(ctx, l4_off, 13)?;
            }
            flow.translatable = true;
        }
        IPPROTO_ICMP => {
            let icmp_type = read_l4::<u8>(ctx, l4_off, 0)?;
            if icmp_type == ICMP_ECHO || icmp_type == ICMP_ECHO_REPLY {
                let id = read_l4::<u16>(ctx, l4_off, 4)?;
                flow.sport_be = id;
                flow.dport_be = id;
                flow.translatable = true;
            }
        }
        _ => {}
    }
    Ok(flow)
}
