//! Headers the programs write whole, built by pure functions so that they are tested on the
//! host: the outer headers of a VXLAN frame, the ICMP "fragmentation needed" error the
//! tunnel answers an oversize packet with, and what a client that a published port's policy
//! refuses gets, as from a closed port: ICMP "port unreachable" for UDP, a TCP RST; and the
//! neighbour advertisement the NDP responder answers a container's solicitation with.
use crate::{
    csum::internet,
    ipv6::{
        ICMP6_NEIGHBOR_ADVERT, ND_HOP_LIMIT, ND_NA_OVERRIDE, ND_NA_SOLICITED, ND_OPT_TARGET_LL,
    },
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, VXLAN_PORT,
};

/// Outer IPv4, UDP and VXLAN headers: what goes between the outer Ethernet header and the
/// inner frame.
pub const VXLAN_OUTER_LEN: usize = 36;
/// The IPv4 header, ICMP header and quote (the original header and 8 bytes) of the error.
pub const FRAG_NEEDED_LEN: usize = 56;
/// An ICMP error quoting a header without options, whatever its type: as long.
pub const ICMP_ERROR_LEN: usize = FRAG_NEEDED_LEN;
/// The IPv4 and TCP headers (neither with options) of a reset.
pub const TCP_RESET_LEN: usize = 40;
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
/// ICMP destination unreachable, port unreachable: what a closed UDP port answers.
const ICMP_PORT_UNREACH: u8 = 3;
/// TCP flags of a reset.
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;
const TCP_SYN: u8 = 0x02;
const TCP_FIN: u8 = 0x01;
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

/// The ICMP "port unreachable" error for the UDP packet whose header and first 8 bytes are
/// `quote`, from its destination: what a closed port answers (Linux's `icmp_send` from
/// `__udp4_lib_rcv`).
pub fn port_unreachable(quote: &[u8; QUOTE_LEN]) -> [u8; ICMP_ERROR_LEN] {
    let mut words = [0u32; QUOTE_LEN / 4];
    for (w, b) in words.iter_mut().zip(quote.chunks_exact(4)) {
        *w = ne([b[0], b[1], b[2], b[3]]);
    }
    let mut h = [0u32; ICMP_ERROR_LEN / 4];
    port_unreachable_words(&words, &mut h);
    to_bytes(&h)
}

// The programs build the answers below in 32-bit words as memory holds them (the wire's bytes
// in native order: `u32::from_ne_bytes`), which needs no byte shuffling and few registers on
// their small stack. The Internet checksum does not depend on byte order (RFC 1071, 2.B): the
// one's complement sum of native-order 16-bit words, stored in native order, is the checksum.

/// A word as memory holds the bytes `b`.
#[inline(always)]
const fn ne(b: [u8; 4]) -> u32 {
    u32::from_ne_bytes(b)
}

/// The native-order 16-bit halves of `words` added up.
#[inline(always)]
fn halves(words: &[u32]) -> u32 {
    words.iter().map(|w| (w >> 16) + (w & 0xffff)).sum()
}

/// The checksum bytes of native-order halves that add up to `sum`.
#[inline(always)]
fn checksum(mut sum: u32) -> [u8; 2] {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    (!(sum as u16)).to_ne_bytes()
}

/// [`port_unreachable`] in memory words, from the quote's memory words.
#[inline(always)]
pub fn port_unreachable_words(quote: &[u32; QUOTE_LEN / 4], h: &mut [u32; ICMP_ERROR_LEN / 4]) {
    let ip = h.first_chunk_mut::<5>().expect("14 words");
    let (src, dst) = (quote[4], quote[3]);
    ipv4_words(
        ip,
        ICMP_ERROR_LEN as u16,
        ICMP_TOS,
        false,
        IPPROTO_ICMP,
        src,
        dst,
    );
    h[6] = 0;
    h[7..].copy_from_slice(quote);
    let sum = halves(&h[6..]) + halves(&[ne([ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, 0])]);
    let [c0, c1] = checksum(sum);
    h[5] = ne([ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, c0, c1]);
}

/// The IPv4 header (no options, ID 0, TTL 64) of a packet of `len` bytes from `src` to `dst`
/// (memory words), with its checksum.
#[inline(always)]
fn ipv4_words(w: &mut [u32; 5], len: u16, tos: u8, df: bool, proto: u8, src: u32, dst: u32) {
    let [l0, l1] = len.to_be_bytes();
    w[0] = ne([0x45, tos, l0, l1]);
    w[1] = ne([0, 0, if df { 0x40 } else { 0 }, 0]);
    w[3] = src;
    w[4] = dst;
    let sum = halves(&[w[0], w[1], src, dst]) + halves(&[ne([OUTER_TTL, proto, 0, 0])]);
    let [c0, c1] = checksum(sum);
    w[2] = ne([OUTER_TTL, proto, c0, c1]);
}

/// Words as the bytes memory holds.
fn to_bytes<const W: usize, const B: usize>(words: &[u32; W]) -> [u8; B] {
    let mut out = [0u8; B];
    for (b, w) in out.chunks_exact_mut(4).zip(words) {
        b.copy_from_slice(&w.to_ne_bytes());
    }
    out
}

/// The reset a closed port answers the TCP segment with header `tcp` (its first 20 bytes)
/// from `saddr` to `daddr`, carrying `payload_len` bytes: from the segment's destination back
/// to its source, as RFC 793 and Linux's `tcp_v4_send_reset` make it. A segment with ACK gets
/// `SEQ=SEG.ACK` and RST; one without gets `SEQ=0`, `ACK=SEG.SEQ+SEG.LEN` (SYN and FIN
/// counting one each) and RST|ACK. A reset is never answered (the caller checks).
pub fn tcp_reset(
    saddr: [u8; 4],
    daddr: [u8; 4],
    tcp: &[u8; 20],
    payload_len: u16,
) -> [u8; TCP_RESET_LEN] {
    let word = |i: usize| ne([tcp[i], tcp[i + 1], tcp[i + 2], tcp[i + 3]]);
    let segment = Segment {
        saddr: ne(saddr),
        daddr: ne(daddr),
        ports: word(0),
        seq: word(4),
        ack: word(8),
        flags: tcp[13],
        payload_len,
    };
    let mut h = [0u32; TCP_RESET_LEN / 4];
    tcp_reset_words(&segment, &mut h);
    to_bytes(&h)
}

/// What a reset answers: a TCP segment's addresses, ports (source first), sequence and
/// acknowledgment numbers as memory words, its flags and its payload's length.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub saddr: u32,
    pub daddr: u32,
    pub ports: u32,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload_len: u16,
}

/// [`tcp_reset`] in memory words.
#[inline(always)]
pub fn tcp_reset_words(seg: &Segment, h: &mut [u32; TCP_RESET_LEN / 4]) {
    let ip = h.first_chunk_mut::<5>().expect("10 words");
    // DF, as Linux's resets.
    ipv4_words(
        ip,
        TCP_RESET_LEN as u16,
        0,
        true,
        IPPROTO_TCP,
        seg.daddr,
        seg.saddr,
    );
    let [s0, s1, d0, d1] = seg.ports.to_ne_bytes();
    h[5] = ne([d0, d1, s0, s1]);
    let flags = if seg.flags & TCP_ACK != 0 {
        h[6] = seg.ack;
        h[7] = 0;
        TCP_RST
    } else {
        let seq = u32::from_be_bytes(seg.seq.to_ne_bytes());
        let len = u32::from(seg.payload_len)
            + u32::from(seg.flags & TCP_SYN != 0)
            + u32::from(seg.flags & TCP_FIN != 0);
        h[6] = 0;
        h[7] = ne(seq.wrapping_add(len).to_be_bytes());
        TCP_RST | TCP_ACK
    };
    h[8] = ne([5 << 4, flags, 0, 0]);
    // The checksum covers the pseudo-header (addresses, protocol, TCP length) and the header.
    let pseudo = halves(&[seg.daddr, seg.saddr, ne([0, IPPROTO_TCP, 0, 20])]);
    let [c0, c1] = checksum(pseudo + halves(&h[5..9]));
    h[9] = ne([c0, c1, 0, 0]);
}

/// The IPv6 header and neighbour advertisement (RFC 4861, 4.4) with its target link-layer
/// address option: what follows the Ethernet header of the NDP responder's answer.
pub const NEIGHBOR_ADVERT_LEN: usize = 40 + NEIGHBOR_ADVERT_ICMP_LEN;
/// The advertisement itself: ICMPv6 header, flags, target (24 bytes) and the option (8).
const NEIGHBOR_ADVERT_ICMP_LEN: usize = 32;

/// The advertisement that answers a solicitation for `target` from `to` on behalf of the
/// interface with `mac`: from the target to the solicitor, solicited and override (the answer
/// is authoritative, as the owner's own would be), hop limit 255.
pub fn neighbor_advert(
    target: &[u8; 16],
    to: &[u8; 16],
    mac: [u8; 6],
) -> [u8; NEIGHBOR_ADVERT_LEN] {
    let words = |a: &[u8; 16]| {
        let mut w = [0u32; 4];
        for (w, b) in w.iter_mut().zip(a.chunks_exact(4)) {
            *w = ne([b[0], b[1], b[2], b[3]]);
        }
        w
    };
    let mut h = [0u32; NEIGHBOR_ADVERT_LEN / 4];
    neighbor_advert_words(&words(target), &words(to), mac, &mut h);
    to_bytes(&h)
}

/// [`neighbor_advert`] in memory words, from the addresses' memory words.
#[inline(always)]
pub fn neighbor_advert_words(
    target: &[u32; 4],
    to: &[u32; 4],
    mac: [u8; 6],
    h: &mut [u32; NEIGHBOR_ADVERT_LEN / 4],
) {
    let [l0, l1] = (NEIGHBOR_ADVERT_ICMP_LEN as u16).to_be_bytes();
    h[0] = ne([0x60, 0, 0, 0]);
    h[1] = ne([l0, l1, IPPROTO_ICMPV6, ND_HOP_LIMIT]);
    h[2..6].copy_from_slice(target);
    h[6..10].copy_from_slice(to);
    h[11] = ne([ND_NA_SOLICITED | ND_NA_OVERRIDE, 0, 0, 0]);
    h[12..16].copy_from_slice(target);
    let [m0, m1, m2, m3, m4, m5] = mac;
    h[16] = ne([ND_OPT_TARGET_LL, 1, m0, m1]);
    h[17] = ne([m2, m3, m4, m5]);
    // The pseudo-header (source, destination, length, next header), then the message.
    let pseudo =
        halves(target) + halves(to) + halves(&[ne([0, 0, l0, l1]), ne([0, 0, 0, IPPROTO_ICMPV6])]);
    let message = halves(&[ne([ICMP6_NEIGHBOR_ADVERT, 0, 0, 0])]) + halves(&h[11..]);
    let [c0, c1] = checksum(pseudo + message);
    h[10] = ne([ICMP6_NEIGHBOR_ADVERT, 0, c0, c1]);
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

    /// A TCP header from `sport` to `dport` with `seq`, `ack` and `flags`.
    fn tcp_header(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8) -> [u8; 20] {
        let mut t = [0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t[14..16].copy_from_slice(&64240u16.to_be_bytes());
        t
    }

    const CLIENT: [u8; 4] = [203, 0, 113, 7];
    const HOST: [u8; 4] = [10, 99, 0, 2];

    /// The reset's IPv4 and TCP headers, checked to parse and to carry valid checksums.
    fn parsed_reset(reset: &[u8; TCP_RESET_LEN]) -> etherparse::TcpHeader {
        let packet = SlicedPacket::from_ip(reset).expect("IPv4 and TCP");
        let Some(etherparse::NetSlice::Ipv4(ip)) = &packet.net else {
            panic!("not IPv4");
        };
        assert_eq!(
            ip.header().source(),
            HOST,
            "from the port the client addressed"
        );
        assert_eq!(ip.header().destination(), CLIENT);
        assert_eq!(usize::from(ip.header().total_len()), TCP_RESET_LEN);
        assert_eq!(
            ip.header().to_header().calc_header_checksum(),
            ip.header().header_checksum()
        );
        let Some(TransportSlice::Tcp(tcp)) = packet.transport else {
            panic!("not TCP");
        };
        let header = tcp.to_header();
        let computed = header
            .calc_checksum_ipv4_raw(HOST, CLIENT, &[])
            .expect("a checksum");
        assert_eq!(computed, header.checksum, "TCP checksum");
        header
    }

    #[test]
    fn a_syn_gets_the_reset_a_closed_port_gives() {
        let syn = tcp_header(51000, 8080, 1000, 0, TCP_SYN);
        let rst = parsed_reset(&tcp_reset(CLIENT, HOST, &syn, 0));
        assert_eq!((rst.source_port, rst.destination_port), (8080, 51000));
        assert!(rst.rst && rst.ack && !rst.syn);
        assert_eq!(rst.sequence_number, 0);
        assert_eq!(rst.acknowledgment_number, 1001, "the SYN counts one");
    }

    #[test]
    fn a_segment_of_a_cut_off_flow_gets_a_reset_at_its_ack() {
        let data = tcp_header(51000, 8080, 5000, 77_000, TCP_ACK | 0x08);
        let rst = parsed_reset(&tcp_reset(CLIENT, HOST, &data, 100));
        assert!(rst.rst && !rst.ack);
        assert_eq!(
            rst.sequence_number, 77_000,
            "SEQ=SEG.ACK, so the client takes it"
        );
        let fin = tcp_header(51000, 8080, u32::MAX, 0, TCP_FIN);
        let rst = parsed_reset(&tcp_reset(CLIENT, HOST, &fin, 10));
        assert_eq!(rst.acknowledgment_number, 10, "wraps, FIN counts one");
    }

    #[test]
    fn a_udp_datagram_gets_port_unreachable_quoting_it() {
        let mut quote = [0u8; QUOTE_LEN];
        quote[..20].copy_from_slice(&[
            0x45, 0, 0, 33, 0, 1, 0x40, 0, 64, 17, 0, 0, 203, 0, 113, 7, 10, 99, 0, 2,
        ]);
        quote[20..24].copy_from_slice(&[0xc7, 0x38, 0x1f, 0x90]);
        let reply = port_unreachable(&quote);
        let packet = SlicedPacket::from_ip(&reply).expect("IPv4 and ICMP");
        let Some(etherparse::NetSlice::Ipv4(ip)) = &packet.net else {
            panic!("not IPv4");
        };
        assert_eq!(ip.header().source(), HOST);
        assert_eq!(ip.header().destination(), CLIENT);
        let Some(TransportSlice::Icmpv4(icmp)) = packet.transport else {
            panic!("not ICMP");
        };
        assert_eq!(
            icmp.icmp_type(),
            Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Port)
        );
        assert_eq!(icmp.payload(), &quote);
        assert_eq!(
            icmp.icmp_type().calc_checksum(icmp.payload()),
            icmp.checksum()
        );
    }

    #[test]
    fn a_solicitation_gets_the_advertisement_the_target_would_send() {
        let target = "fd00:28::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
        let to = "fd00:28::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
        let mac = [0x02, 0x42, 0xac, 0x1c, 0x00, 0x01];
        let na = neighbor_advert(&target, &to, mac);
        let packet = SlicedPacket::from_ip(&na).expect("IPv6 and ICMPv6");
        let Some(etherparse::NetSlice::Ipv6(ip)) = &packet.net else {
            panic!("not IPv6");
        };
        assert_eq!(ip.header().source(), target, "from the target");
        assert_eq!(ip.header().destination(), to, "to the solicitor");
        assert_eq!(ip.header().hop_limit(), 255);
        assert_eq!(usize::from(ip.header().payload_length()), na.len() - 40);
        let Some(TransportSlice::Icmpv6(icmp)) = packet.transport else {
            panic!("not ICMPv6");
        };
        assert_eq!(
            icmp.icmp_type(),
            etherparse::Icmpv6Type::NeighborAdvertisement(
                etherparse::icmpv6::NeighborAdvertisementHeader {
                    router: false,
                    solicited: true,
                    r#override: true,
                }
            )
        );
        assert_eq!(&icmp.payload()[..16], &target, "the target");
        assert_eq!(
            &icmp.payload()[16..],
            &[2, 1, 0x02, 0x42, 0xac, 0x1c, 0x00, 0x01]
        );
        let computed = icmp
            .icmp_type()
            .calc_checksum(target, to, icmp.payload())
            .unwrap();
        assert_eq!(computed, icmp.checksum());
        let mut message = [0u8; 32];
        message.copy_from_slice(&na[40..]);
        message[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(
            crate::csum::icmpv6(&target, &to, &message),
            computed.to_be_bytes(),
            "as the byte-wise checksum says"
        );
    }
}
