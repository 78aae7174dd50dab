//! The Internet checksum (RFC 1071) of headers the programs write whole: the outer IPv4 header
//! of an encapsulated frame, the ICMP errors they answer with, and the ICMPv6 neighbour
//! advertisements of the NDP responder (over the IPv6 pseudo-header).

/// The checksum of `bytes` (an even number of them), in network order, ready to store.
#[inline(always)]
pub fn internet<const N: usize>(bytes: &[u8; N]) -> [u8; 2] {
    fold(sum_words(bytes))
}

/// The 16-bit words of `bytes` (an even number of them) added up, not folded yet: sums of
/// several pieces (a pseudo-header and a header) add before [`fold`].
#[inline(always)]
pub fn sum_words<const N: usize>(bytes: &[u8; N]) -> u32 {
    let mut sum: u32 = 0;
    let mut i = 0;
    while i + 1 < N {
        sum += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        i += 2;
    }
    sum
}

/// The checksum of words that add up to `sum`, in network order.
#[inline(always)]
pub fn fold(mut sum: u32) -> [u8; 2] {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    (!(sum as u16)).to_be_bytes()
}

/// The IPv6 pseudo-header (RFC 8200, 8.1) of an upper-layer packet of `len` bytes with next
/// header `next` from `src` to `dst`, added up as [`sum_words`] does.
#[inline(always)]
pub fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], len: u32, next: u8) -> u32 {
    sum_words(src) + sum_words(dst) + (len >> 16) + (len & 0xffff) + u32::from(next)
}

/// The ICMPv6 checksum of `message` (its checksum field zero, an even length) from `src` to
/// `dst`, in network order.
#[inline(always)]
pub fn icmpv6<const N: usize>(src: &[u8; 16], dst: &[u8; 16], message: &[u8; N]) -> [u8; 2] {
    fold(pseudo_header_v6(src, dst, N as u32, crate::IPPROTO_ICMPV6) + sum_words(message))
}

#[cfg(test)]
mod tests {
    use super::{icmpv6, internet};

    #[test]
    fn an_icmpv6_echo_request_sums_over_its_pseudo_header() {
        let src = "fd00:28::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
        let dst = "fd00:28::3".parse::<std::net::Ipv6Addr>().unwrap().octets();
        // Echo request, id 0x1234, seq 1, payload "netd".
        let mut m = [0x80, 0, 0, 0, 0x12, 0x34, 0, 1, b'n', b'e', b't', b'd'];
        let expected =
            etherparse::Icmpv6Type::EchoRequest(etherparse::IcmpEchoHeader { id: 0x1234, seq: 1 })
                .calc_checksum(src, dst, b"netd")
                .unwrap();
        assert_eq!(icmpv6(&src, &dst, &m), expected.to_be_bytes());
        m[2..4].copy_from_slice(&expected.to_be_bytes());
        assert_eq!(
            icmpv6(&src, &dst, &m),
            [0, 0],
            "a message with its checksum sums to zero"
        );
    }

    #[test]
    fn an_ipv4_header_sums_to_its_checksum() {
        // A UDP packet's IPv4 header with its checksum field (b8 61) zeroed.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet(&h), [0xb8, 0x61]);
        h[10..12].copy_from_slice(&[0xb8, 0x61]);
        assert_eq!(
            internet(&h),
            [0, 0],
            "a header with its checksum sums to zero"
        );
    }
}
