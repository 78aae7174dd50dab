//! IPv6 rules both sides need: the link-local address netd derives from a container's MAC, the
//! addresses a container may send from, the destinations that never leave the link, and the
//! neighbour discovery message types (RFC 4861) the endpoint program looks at.
use crate::Endpoint6;

/// ICMPv6 types of neighbour discovery (RFC 4861, 4.1 to 4.5) and the MLDv2 report (RFC 3810).
pub const ICMP6_ROUTER_SOLICIT: u8 = 133;
pub const ICMP6_ROUTER_ADVERT: u8 = 134;
pub const ICMP6_NEIGHBOR_SOLICIT: u8 = 135;
pub const ICMP6_NEIGHBOR_ADVERT: u8 = 136;
pub const ICMP6_REDIRECT: u8 = 137;
pub const ICMP6_MLD2_REPORT: u8 = 143;

/// Neighbour discovery options (RFC 4861, 4.6.1): the sender's and the target's link-layer
/// address; `len` is in units of 8 bytes (1 for an Ethernet address).
pub const ND_OPT_SOURCE_LL: u8 = 1;
pub const ND_OPT_TARGET_LL: u8 = 2;

/// Where the target address sits in a neighbour solicitation or advertisement (after type,
/// code, checksum and 4 bytes of flags or reserved), and where its first option starts.
pub const ND_TARGET_OFF: usize = 8;
pub const ND_OPTIONS_OFF: usize = 24;

/// Flags of a neighbour advertisement (the first byte of its flags word): solicited, override.
pub const ND_NA_SOLICITED: u8 = 0x40;
pub const ND_NA_OVERRIDE: u8 = 0x20;

/// The hop limit of every neighbour discovery message (RFC 4861, 7.1.2: receivers drop others).
pub const ND_HOP_LIMIT: u8 = 255;

/// The unspecified address `::`.
pub const UNSPECIFIED: [u8; 16] = [0; 16];

/// The link-local address of an interface with `mac`: `fe80::/64` and the modified EUI-64
/// interface identifier (RFC 4291, appendix A: `ff:fe` in the middle, the universal/local bit
/// flipped), what the kernel gives it with `addr_gen_mode` eui64.
pub const fn link_local(mac: [u8; 6]) -> [u8; 16] {
    [
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ]
}

/// Multicast (`ff00::/8`): never routed off the link by the host, so it crosses no network.
#[inline(always)]
pub const fn is_multicast(addr: &[u8; 16]) -> bool {
    addr[0] == 0xff
}

/// Link-local unicast (`fe80::/10`): scoped to the link, which is the container's own network.
#[inline(always)]
pub const fn is_link_local(addr: &[u8; 16]) -> bool {
    addr[0] == 0xfe && addr[1] & 0xc0 == 0x80
}

/// A destination that stays on the container's link (its network's bridge) whatever the
/// subnets: multicast and link-local unicast. Neither isolation nor `--internal` applies.
#[inline(always)]
pub const fn is_on_link(addr: &[u8; 16]) -> bool {
    is_multicast(addr) || is_link_local(addr)
}

/// Whether `addr` is one of the endpoint's own addresses.
#[inline(always)]
pub fn is_own(ep: &Endpoint6, addr: &[u8; 16]) -> bool {
    *addr == ep.addr || *addr == ep.link_local
}

/// Whether a packet from the endpoint `ep` may carry the source `src`, given its ICMPv6 type
/// (if it is ICMPv6): one of the endpoint's addresses, or `::` for a neighbour solicitation
/// (duplicate address detection, RFC 4862, 5.4.2) and an MLDv2 report (sent before the
/// link-local address is ready, RFC 3810, 5.2.13).
#[inline(always)]
pub fn sender_ok(ep: &Endpoint6, src: &[u8; 16], icmp_type: Option<u8>) -> bool {
    is_own(ep, src)
        || (*src == UNSPECIFIED
            && matches!(icmp_type, Some(ICMP6_NEIGHBOR_SOLICIT | ICMP6_MLD2_REPORT)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Endpoint6 {
        Endpoint6 {
            addr: [0xfd, 0, 0, 0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            link_local: link_local([0x02, 0x42, 172, 28, 0, 2]),
        }
    }

    #[test]
    fn the_link_local_address_is_the_modified_eui64_of_the_mac() {
        // As `ip -6 addr` shows for a veth with MAC 02:42:ac:1c:00:02 (addr_gen_mode eui64).
        let expected: std::net::Ipv6Addr = "fe80::42:acff:fe1c:2".parse().unwrap();
        assert_eq!(
            link_local([0x02, 0x42, 0xac, 0x1c, 0x00, 0x02]),
            expected.octets()
        );
        let universal: std::net::Ipv6Addr = "fe80::21b:21ff:fe3c:4d5e".parse().unwrap();
        assert_eq!(
            link_local([0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e]),
            universal.octets(),
            "the universal/local bit is flipped"
        );
    }

    #[test]
    fn only_multicast_and_link_local_stay_on_the_link() {
        let parse = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
        for addr in ["ff02::1", "ff02::1:ff00:2", "ff05::2", "fe80::1", "febf::1"] {
            assert!(is_on_link(&parse(addr)), "{addr}");
        }
        for addr in ["fd00:28::1", "2001:db8::1", "fec0::1", "::1", "::"] {
            assert!(!is_on_link(&parse(addr)), "{addr}");
        }
    }

    #[test]
    fn a_container_sends_from_its_own_addresses_or_from_nothing_for_dad_and_mld() {
        let ep = ep();
        assert!(sender_ok(&ep, &ep.addr, None));
        assert!(sender_ok(&ep, &ep.link_local, Some(ICMP6_ROUTER_SOLICIT)));
        let mut other = ep.addr;
        other[15] = 3;
        assert!(!sender_ok(&ep, &other, None));
        assert!(!sender_ok(&ep, &other, Some(ICMP6_NEIGHBOR_SOLICIT)));
        assert!(sender_ok(&ep, &UNSPECIFIED, Some(ICMP6_NEIGHBOR_SOLICIT)));
        assert!(sender_ok(&ep, &UNSPECIFIED, Some(ICMP6_MLD2_REPORT)));
        assert!(!sender_ok(&ep, &UNSPECIFIED, Some(ICMP6_NEIGHBOR_ADVERT)));
        assert!(!sender_ok(&ep, &UNSPECIFIED, None), "TCP or UDP from ::");
    }
}
