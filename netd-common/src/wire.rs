//! Headers the programs write whole, built by pure functions so that they are tested on the
//! host: the outer headers of a VXLAN frame, and the ICMP "fragmentation needed" error the
//! tunnel answers an oversize packet with.
use crate::{csum::internet, IPPROTO_ICMP, IPPROTO_UDP, VXLAN_PORT};

/// Outer IPv4, UDP and VXLAN headers: what goes between the outer Ethernet header and the
/// inner frame.
pub const VXLAN_OUTER_LEN: usize = 36;
/// The IPv4 header, ICMP header and quote (the original header and 8 bytes) of the error.
pub const FRAG_NEEDED_LEN: usize = 56;
/// What the error quotes of the packet: its IPv4 header (without options) and 8 bytes more.
pub const QUOTE_LEN: usize = 28;

/// TTL of the outer IPv4 header, as Linux's VXLAN device uses by default for unicast.
const OUTER_TTL: u8 = 64;
/// UDP source ports of the tunnel, as Linux picks them (`udp_flow_src_port`): from the inner
/// flow's hash, so that the underlay spreads flows over its paths and queues.
const SPORT_MIN: u32 = 32768;
const SPORT_RANGE: u32 = 61000 - 32768;
/// VXLAN flags: the VNI is valid (RFC 7348).
const VXLAN_FLAG_VNI: u8 = 0x08;
/// ICMP destination unreachable, fragmentation needed and DF set (RFC 1191).
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_FRAG_NEEDED: u8 = 4;
/// The precedence Linux gives the ICMP errors it sends (internetwork control).
const ICMP_TOS: u8 = 0xc0;

/// Where a frame goes into the tunnel: from this host's underlay address to another host's.
#[derive(Clone, Copy, Debug)]
pub struct TunnelEnds {
    pub local: [u8; 4],
    pub remote: [u8; 4],
    pub vni: u32,
}

/// The outer headers for an inner frame of `inner_len` bytes (its Ethernet header included)
/// whose flow hashes to `hash`. No outer UDP checksum, as Linux's VXLAN over IPv4 sends; DF
/// clear and TOS 0, as Linux's VXLAN device does by default, so that an underlay with a smaller
/// MTU fragments rather than drops.
pub fn vxlan_outer(ends: &TunnelEnds, inner_len: u32, hash: u32, id: u16) -> [u8; VXLAN_OUTER_LEN] {
    let udp_len = (inner_len + 16) as u16;
    let ip_len = udp_len + 20;
    let sport = (SPORT_MIN + ((u64::from(hash) * u64::from(SPORT_RANGE)) >> 32) as u32) as u16;
    let mut h = [0u8; VXLAN_OUTER_LEN];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&ip_len.to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[8] = OUTER_TTL;
    h[9] = IPPROTO_UDP;
    h[12..16].copy_from_slice(&ends.local);
    h[16..20].copy_from_slice(&ends.remote);
    let ip_sum = internet(&ip_header(&h));
    h[10..12].copy_from_slice(&ip_sum);
    h[20..22].copy_from_slice(&sport.to_be_bytes());
    h[22..24].copy_from_slice(&VXLAN_PORT.to_be_bytes());
    h[24..26].copy_from_slice(&udp_len.to_be_bytes());
    h[28] = VXLAN_FLAG_VNI;
    h[32..35].copy_from_slice(&ends.vni.to_be_bytes()[1..4]);
    h
}

/// The first 20 bytes of `h`.
#[inline(always)]
fn ip_header<const N: usize>(h: &[u8; N]) -> [u8; 20] {
    let mut ip = [0u8; 20];
    ip.copy_from_slice(&h[..20]);
    ip
}

/// The ICMP "fragmentation needed" error for the packet whose header and first 8 bytes are
/// `quote`, with the largest packet that fits, `mtu`. It comes from the packet's destination,
/// as Linux's VXLAN devices answer for a bridged peer: on an overlay network there is no router
/// between the two containers that could send it.
pub fn frag_needed(quote: &[u8; QUOTE_LEN], mtu: u16) -> [u8; FRAG_NEEDED_LEN] {
    let mut h = [0u8; FRAG_NEEDED_LEN];
    h[0] = 0x45;
    h[1] = ICMP_TOS;
    h[2..4].copy_from_slice(&(FRAG_NEEDED_LEN as u16).to_be_bytes());
    h[8] = OUTER_TTL;
    h[9] = IPPROTO_ICMP;
    h[12..16].copy_from_slice(&quote[16..20]);
    h[16..20].copy_from_slice(&quote[12..16]);
    let ip_sum = internet(&ip_header(&h));
    h[10..12].copy_from_slice(&ip_sum);
    h[20] = ICMP_DEST_UNREACH;
    h[21] = ICMP_FRAG_NEEDED;
    h[26..28].copy_from_slice(&mtu.to_be_bytes());
    h[28..].copy_from_slice(quote);
    let mut icmp = [0u8; FRAG_NEEDED_LEN - 20];
    icmp.copy_from_slice(&h[20..]);
    let icmp_sum = internet(&icmp);
    h[22..24].copy_from_slice(&icmp_sum);
    h
}

#[cfg(test)]
mod tests {
    use etherparse::{Icmpv4Type, Ipv4HeaderSlice, SlicedPacket, TransportSlice};

    use super::*;

    const ENDS: TunnelEnds = TunnelEnds {
        local: [10, 98, 0, 11],
        remote: [10, 98, 0, 12],
        vni: 4096,
    };

    #[test]
    fn the_outer_headers_parse_as_vxlan_to_the_remote_host() {
        let inner_len = 98;
        let h = vxlan_outer(&ENDS, inner_len, 0xdead_beef, 7);
        let mut frame = h.to_vec();
        frame.resize(VXLAN_OUTER_LEN + inner_len as usize, 0);
        let ip = Ipv4HeaderSlice::from_slice(&frame).expect("an IPv4 header");
        assert_eq!(ip.source(), ENDS.local);
        assert_eq!(ip.destination(), ENDS.remote);
        assert_eq!(usize::from(ip.total_len()), frame.len());
        assert!(!ip.dont_fragment());
        assert_eq!(ip.to_header().calc_header_checksum(), ip.header_checksum());
        let packet = SlicedPacket::from_ip(&frame).expect("IPv4 and UDP");
        let Some(TransportSlice::Udp(udp)) = packet.transport else {
            panic!("not UDP");
        };
        assert_eq!(udp.destination_port(), VXLAN_PORT);
        assert!((32768..61000).contains(&udp.source_port()));
        assert_eq!(usize::from(udp.length()), frame.len() - 20);
        assert_eq!(udp.checksum(), 0, "no outer UDP checksum");
        assert_eq!(&frame[28..36], &[0x08, 0, 0, 0, 0x00, 0x10, 0x00, 0]);
    }

    #[test]
    fn flows_spread_over_the_source_ports() {
        let port =
            |hash| u16::from_be_bytes(vxlan_outer(&ENDS, 60, hash, 0)[20..22].try_into().unwrap());
        assert_eq!(port(0), 32768);
        assert_eq!(port(u32::MAX), 60999);
        assert_ne!(port(0x1234_5678), port(0x8765_4321));
    }

    #[test]
    fn the_error_quotes_the_packet_and_goes_back_to_its_sender() {
        // A DF-set UDP packet from 10.0.9.2 to 10.0.9.3, total length 1500.
        let mut quote = [0u8; QUOTE_LEN];
        quote[..20].copy_from_slice(&[
            0x45, 0, 0x05, 0xdc, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 9, 2, 10, 0, 9, 3,
        ]);
        quote[20..24].copy_from_slice(&[0x30, 0x39, 0, 53]);
        let reply = frag_needed(&quote, 1450);
        let packet = SlicedPacket::from_ip(&reply).expect("IPv4 and ICMP");
        let Some(etherparse::NetSlice::Ipv4(ip)) = &packet.net else {
            panic!("not IPv4");
        };
        assert_eq!(ip.header().source(), [10, 0, 9, 3]);
        assert_eq!(ip.header().destination(), [10, 0, 9, 2]);
        assert_eq!(
            ip.header().to_header().calc_header_checksum(),
            ip.header().header_checksum()
        );
        let Some(TransportSlice::Icmpv4(icmp)) = packet.transport else {
            panic!("not ICMP");
        };
        assert_eq!(
            icmp.icmp_type(),
            Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1450
                }
            )
        );
        assert_eq!(icmp.payload(), &quote);
        let computed = icmp.icmp_type().calc_checksum(icmp.payload());
        assert_eq!(computed, icmp.checksum());
    }
}
