//! Bounds-checked reads of the headers the programs look at. Reads copy out of the skb
//! (`bpf_skb_load_bytes`), so a short or non-linear packet is an error, never an out-of-bounds
//! access.
use aya_ebpf::programs::TcContext;
use network_types::{arp::ArpHdr, eth::EthHdr, ip::Ipv4Hdr};

/// EtherType of IPv4, as it sits in the frame (network order).
pub const ETH_P_IP: u16 = 0x0800_u16.to_be();
/// EtherType of ARP, as it sits in the frame (network order).
pub const ETH_P_ARP: u16 = 0x0806_u16.to_be();

/// The Ethernet header.
#[inline(always)]
pub fn eth(ctx: &TcContext) -> Result<EthHdr, ()> {
    ctx.load::<EthHdr>(0).map_err(|_| ())
}

/// The IPv4 header that follows the Ethernet header; rejects a version other than 4 or an IHL
/// shorter than the fixed header.
#[inline(always)]
pub fn ipv4(ctx: &TcContext) -> Result<Ipv4Hdr, ()> {
    let ip = ctx.load::<Ipv4Hdr>(EthHdr::LEN).map_err(|_| ())?;
    if ip.vihl >> 4 != 4 || ip.vihl & 0x0f < 5 {
        return Err(());
    }
    Ok(ip)
}

/// The ARP header that follows the Ethernet header; only Ethernet/IPv4 ARP is accepted.
#[inline(always)]
pub fn arp(ctx: &TcContext) -> Result<ArpHdr, ()> {
    let arp = ctx.load::<ArpHdr>(EthHdr::LEN).map_err(|_| ())?;
    if arp.hlen != 6 || arp.plen != 4 || arp.ptype != [0x08, 0x00] {
        return Err(());
    }
    Ok(arp)
}
