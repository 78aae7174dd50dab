//! The Internet checksum (RFC 1071) of headers the programs write whole: the outer IPv4 header
//! of an encapsulated frame, and the ICMP errors they answer with.

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

#[cfg(test)]
mod tests {
    use super::internet;

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
