//! Address management: automatic (IPv4) subnets for new networks and addresses of both
//! families for endpoints ([`Pool`] for IPv4, [`Pool6`] for a dual-stack network's IPv6 half,
//! both over one family-neutral search, [`lowest_free`]).
//!
//! Everything here is pure: the caller passes what is in use (derived from the state, never kept
//! twice) and gets an answer or a [`IpamError`]. Allocation gives the lowest free address, as
//! Docker's local networks do (libnetwork's bitmap, `serial` off outside swarm): an address freed
//! by a stopped or removed container is the next one handed out, so a container that stops while
//! another starts usually comes back at a new address (seed 003).
use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use thiserror::Error;

/// Why an address or subnet could not be given.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("no free address left in {0}")]
    Exhausted(IpNet),
    #[error("no free subnet left in the default address pools")]
    NoSubnet,
    /// Docker's words after netd's: scripts match them.
    #[error("address {ip} is not in subnet {subnet}: It does not belong to any of this network's subnets")]
    OutsideSubnet { ip: IpAddr, subnet: IpNet },
    #[error("address {0} is already in use by another container: Address already in use")]
    InUse(IpAddr),
    #[error("address {ip} is reserved in {subnet} ({})", reserved_kinds(.subnet))]
    Reserved { ip: IpAddr, subnet: IpNet },
}

/// What a subnet keeps from containers: IPv6 has no broadcast address.
fn reserved_kinds(subnet: &IpNet) -> &'static str {
    match subnet {
        IpNet::V4(_) => "network, broadcast or gateway address",
        IpNet::V6(_) => "the subnet's first address or the gateway",
    }
}

/// The lowest address from `first` to `last` (as integers, so that both families share it) that
/// is neither in `reserved` nor in `in_use`; `None` when there is none. Sorting the used
/// addresses of the range costs O(n log n) in the number of containers on the network, not in
/// the size of the range.
pub fn lowest_free(
    first: u128,
    last: u128,
    reserved: &[u128],
    in_use: impl IntoIterator<Item = u128>,
) -> Option<u128> {
    let taken: BTreeSet<u128> = in_use
        .into_iter()
        .filter(|ip| (first..=last).contains(ip))
        .chain(reserved.iter().copied())
        .collect();
    // The first address from the range's start that the next taken one does not cover.
    let mut candidate = first;
    for t in taken.range(first..=last) {
        if *t != candidate {
            break;
        }
        match candidate.checked_add(1) {
            Some(next) if next <= last => candidate = next,
            _ => return None,
        }
    }
    (!taken.contains(&candidate)).then_some(candidate)
}

/// Docker's MAC for an address: `02:42` followed by the four address bytes. Containers get the
/// MAC of their address, and bridges the MAC of their gateway address (never a container's).
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// Where a network's addresses come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Sub-range containers get their addresses from (`--ip-range`); the whole subnet if `None`.
    pub range: Option<Ipv4Net>,
}

impl Pool {
    /// Whether `ip` can never be given to a container: network, broadcast and gateway addresses.
    pub fn is_reserved(&self, ip: Ipv4Addr) -> bool {
        ip == self.subnet.network() || ip == self.subnet.broadcast() || ip == self.gateway
    }

    /// Checks that a requested address (`--ip`) can be given.
    pub fn check_static(&self, ip: Ipv4Addr, in_use: &[Ipv4Addr]) -> Result<(), IpamError> {
        check_static(
            IpAddr::V4(ip),
            IpNet::V4(self.subnet),
            self.subnet.contains(&ip),
            self.is_reserved(ip),
            in_use.contains(&ip),
        )
    }

    /// The lowest free address of the range (or of the subnet): never the network, broadcast or
    /// gateway address, nor one in `in_use`.
    pub fn allocate(&self, in_use: &[Ipv4Addr]) -> Result<Ipv4Addr, IpamError> {
        let range = self.range.unwrap_or(self.subnet);
        let reserved = [self.subnet.network(), self.subnet.broadcast(), self.gateway]
            .map(|ip| u128::from(u32::from(ip)));
        lowest_free(
            u32::from(range.network()).into(),
            u32::from(range.broadcast()).into(),
            &reserved,
            in_use.iter().map(|ip| u128::from(u32::from(*ip))),
        )
        .map(|ip| Ipv4Addr::from(ip as u32))
        .ok_or(IpamError::Exhausted(IpNet::V4(range)))
    }
}

/// The checks of a requested address, in Docker's order: inside the subnet, not reserved, free.
fn check_static(
    ip: IpAddr,
    subnet: IpNet,
    inside: bool,
    reserved: bool,
    used: bool,
) -> Result<(), IpamError> {
    if !inside {
        return Err(IpamError::OutsideSubnet { ip, subnet });
    }
    if reserved {
        return Err(IpamError::Reserved { ip, subnet });
    }
    if used {
        return Err(IpamError::InUse(ip));
    }
    Ok(())
}

/// Where a dual-stack network's IPv6 addresses come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool6 {
    pub subnet: Ipv6Net,
    pub gateway: Ipv6Addr,
    /// Sub-range containers get their addresses from (`--ip-range`); the whole subnet if `None`.
    pub range: Option<Ipv6Net>,
}

impl Pool6 {
    /// Whether `ip` can never be given to a container: the subnet's first address (the
    /// Subnet-Router anycast address of RFC 4291) and the gateway. IPv6 has no broadcast.
    pub fn is_reserved(&self, ip: Ipv6Addr) -> bool {
        ip == self.subnet.network() || ip == self.gateway
    }

    /// Checks that a requested address (`--ip6`) can be given.
    pub fn check_static(&self, ip: Ipv6Addr, in_use: &[Ipv6Addr]) -> Result<(), IpamError> {
        check_static(
            IpAddr::V6(ip),
            IpNet::V6(self.subnet),
            self.subnet.contains(&ip),
            self.is_reserved(ip),
            in_use.contains(&ip),
        )
    }

    /// The lowest free address of the range (or of the subnet): never the subnet's first
    /// address or the gateway, nor one in `in_use`.
    pub fn allocate(&self, in_use: &[Ipv6Addr]) -> Result<Ipv6Addr, IpamError> {
        let range = self.range.unwrap_or(self.subnet);
        let reserved = [self.subnet.network(), self.gateway].map(u128::from);
        lowest_free(
            range.network().into(),
            range.broadcast().into(),
            &reserved,
            in_use.iter().map(|ip| u128::from(*ip)),
        )
        .map(Ipv6Addr::from)
        .ok_or(IpamError::Exhausted(IpNet::V6(range)))
    }
}

/// The default gateway of an IPv6 subnet: its first host address (`::1` in the subnet).
pub fn default_gateway6(subnet: Ipv6Net) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet.network()) + 1)
}

/// The longest IPv6 prefix a network may have: room for the reserved first address, a gateway
/// and two containers.
pub const MAX_PREFIX6: u8 = 126;

/// `--default-subnet-v6 CIDR`: the default network's IPv6 subnet, host bits dropped; /126 or
/// shorter.
pub fn parse_default_subnet6(text: &str) -> Result<Ipv6Net, String> {
    let net: Ipv6Net = text
        .parse()
        .map_err(|e| format!("{:?} is not an IPv6 CIDR: {e}", text))?;
    if net.prefix_len() > MAX_PREFIX6 {
        return Err(format!(
            "subnet {net} is too small: the prefix must be /{MAX_PREFIX6} or shorter"
        ));
    }
    Ok(net.trunc())
}

/// Whether two IPv6 subnets share any address.
pub fn overlaps6(a: Ipv6Net, b: Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// `--default-subnet CIDR`: the default network's subnet, host bits dropped; it needs room for a
/// gateway and a container, so /30 or shorter.
pub fn parse_default_subnet(text: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = text
        .parse()
        .map_err(|e| format!("{:?} is not an IPv4 CIDR: {e}", text))?;
    if net.prefix_len() > 30 {
        return Err(format!(
            "subnet {net} is too small: the prefix must be /30 or shorter"
        ));
    }
    Ok(net.trunc())
}

/// The default gateway of a subnet: its first host address.
pub fn default_gateway(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// Docker's default address pools for user-defined networks: the /16s of 172.17.0.0/12 after
/// the default bridge's, then the /20s of 192.168.0.0/16.
fn default_pools() -> impl Iterator<Item = Ipv4Net> {
    let big = (18..=31).map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).expect("valid /16"));
    let small =
        (0..16).map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).expect("valid /20"));
    big.chain(small)
}

/// Whether two subnets share any address.
pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first default pool that overlaps none of `taken`.
pub fn auto_subnet(taken: &[Ipv4Net]) -> Result<Ipv4Net, IpamError> {
    default_pools()
        .find(|candidate| taken.iter().all(|t| !overlaps(*candidate, *t)))
        .ok_or(IpamError::NoSubnet)
}

/// The first /24 of 10.0.0.0/8 that overlaps none of `taken`: where overlay networks get their
/// subnet when none is given, as Docker's default address pool for them.
pub fn auto_overlay_subnet(taken: &[Ipv4Net]) -> Result<Ipv4Net, IpamError> {
    (0u32..1 << 16)
        .map(|i| {
            Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | (i << 8)), 24).expect("a /24 is a prefix")
        })
        .find(|candidate| taken.iter().all(|t| !overlaps(*candidate, *t)))
        .ok_or(IpamError::NoSubnet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_subnets_are_the_free_24s_of_ten_slash_eight() {
        let taken: Vec<Ipv4Net> = vec![
            "10.0.0.0/24".parse().unwrap(),
            "10.0.1.128/25".parse().unwrap(),
        ];
        assert_eq!(
            auto_overlay_subnet(&taken),
            Ok("10.0.2.0/24".parse().unwrap())
        );
        assert_eq!(
            auto_overlay_subnet(&["10.0.0.0/8".parse().unwrap()]),
            Err(IpamError::NoSubnet)
        );
    }

    fn pool(subnet: &str) -> Pool {
        let subnet: Ipv4Net = subnet.parse().unwrap();
        Pool {
            subnet,
            gateway: default_gateway(subnet),
            range: None,
        }
    }
    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn first_allocation_skips_network_and_gateway() {
        let p = pool("172.17.0.0/16");
        assert_eq!(p.allocate(&[]), Ok(ip("172.17.0.2")));
    }

    #[test]
    fn allocation_gives_the_lowest_free_address_and_never_one_twice() {
        let p = pool("10.0.0.0/29");
        let mut used = vec![];
        for _ in 0..5 {
            let got = p.allocate(&used).unwrap();
            assert!(!used.contains(&got) && !p.is_reserved(got));
            used.push(got);
        }
        assert_eq!(
            used,
            [
                ip("10.0.0.2"),
                ip("10.0.0.3"),
                ip("10.0.0.4"),
                ip("10.0.0.5"),
                ip("10.0.0.6")
            ]
        );
        assert_eq!(
            p.allocate(&used),
            Err(IpamError::Exhausted(IpNet::V4(p.subnet)))
        );
        used.retain(|a| *a != ip("10.0.0.3"));
        assert_eq!(p.allocate(&used), Ok(ip("10.0.0.3")));
    }

    /// Seed 003 on Docker: demo gets .2, a linking container .3; demo stops and demo2 takes .2;
    /// demo starts again at .4. The same holds for a removed container's address.
    #[test]
    fn a_released_address_is_the_next_one_given_as_dockers_is() {
        let p = pool("172.17.0.0/16");
        let demo = p.allocate(&[]).unwrap();
        let linker = p.allocate(&[demo]).unwrap();
        assert_eq!((demo, linker), (ip("172.17.0.2"), ip("172.17.0.3")));
        let demo2 = p.allocate(&[linker]).unwrap();
        assert_eq!(demo2, demo, "demo's old address, freed by its stop");
        assert_eq!(p.allocate(&[linker, demo2]), Ok(ip("172.17.0.4")));
    }

    #[test]
    fn ip_range_limits_allocation() {
        let mut p = pool("10.1.0.0/16");
        p.range = Some("10.1.5.0/30".parse().unwrap());
        let got = p.allocate(&[]).unwrap();
        assert_eq!(
            got,
            ip("10.1.5.0"),
            "the gateway lies outside the range: start at its beginning"
        );
        let used = [
            ip("10.1.5.0"),
            ip("10.1.5.1"),
            ip("10.1.5.2"),
            ip("10.1.5.3"),
        ];
        assert!(p.allocate(&used).is_err());
        let mut edge = pool("10.2.0.0/24");
        edge.range = Some("10.2.0.255/32".parse().unwrap());
        assert!(edge.allocate(&[]).is_err(), "the broadcast address only");
    }

    #[test]
    fn static_addresses_are_checked() {
        let p = pool("10.0.0.0/24");
        assert_eq!(p.check_static(ip("10.0.0.9"), &[]), Ok(()));
        assert!(matches!(
            p.check_static(ip("10.0.1.9"), &[]),
            Err(IpamError::OutsideSubnet { .. })
        ));
        assert!(matches!(
            p.check_static(ip("10.0.0.1"), &[]),
            Err(IpamError::Reserved { .. })
        ));
        assert!(matches!(
            p.check_static(ip("10.0.0.0"), &[]),
            Err(IpamError::Reserved { .. })
        ));
        assert!(matches!(
            p.check_static(ip("10.0.0.255"), &[]),
            Err(IpamError::Reserved { .. })
        ));
        assert_eq!(
            p.check_static(ip("10.0.0.9"), &[ip("10.0.0.9")]),
            Err(IpamError::InUse(ip("10.0.0.9").into()))
        );
    }

    fn pool6(subnet: &str) -> Pool6 {
        let subnet: Ipv6Net = subnet.parse().unwrap();
        Pool6 {
            subnet,
            gateway: default_gateway6(subnet),
            range: None,
        }
    }
    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_allocation_skips_the_first_address_and_the_gateway_and_has_no_broadcast() {
        let p = pool6("fd00:28::/64");
        assert_eq!(p.gateway, ip6("fd00:28::1"));
        assert_eq!(p.allocate(&[]), Ok(ip6("fd00:28::2")));
        assert_eq!(p.allocate(&[ip6("fd00:28::2")]), Ok(ip6("fd00:28::3")));
        let small = pool6("fd00::/126");
        let used = [ip6("fd00::2"), ip6("fd00::3")];
        assert_eq!(
            small.allocate(&used[..1]),
            Ok(ip6("fd00::3")),
            "the last address is a host's"
        );
        assert_eq!(
            small.allocate(&used),
            Err(IpamError::Exhausted("fd00::/126".parse().unwrap()))
        );
        let mut gw_high = pool6("fd00:1::/64");
        gw_high.gateway = ip6("fd00:1::ffff");
        assert_eq!(gw_high.allocate(&[]), Ok(ip6("fd00:1::1")));
    }

    #[test]
    fn ipv6_allocation_keeps_to_the_ip_range_and_gives_a_freed_address_first() {
        let mut p = pool6("fd00:28::/64");
        p.range = Some("fd00:28::100/120".parse().unwrap());
        assert_eq!(p.allocate(&[]), Ok(ip6("fd00:28::100")));
        assert_eq!(
            p.allocate(&[ip6("fd00:28::100"), ip6("fd00:28::101")]),
            Ok(ip6("fd00:28::102"))
        );
        assert_eq!(
            p.allocate(&[ip6("fd00:28::101")]),
            Ok(ip6("fd00:28::100")),
            "the freed one"
        );
        let mut top = pool6("fd00:29::/64");
        top.range = Some("fd00:29::ffff:ffff:ffff:ffff/128".parse().unwrap());
        assert_eq!(
            top.allocate(&[]),
            Ok(ip6("fd00:29::ffff:ffff:ffff:ffff")),
            "no broadcast: the subnet's last address is a host's"
        );
    }

    #[test]
    fn static_ipv6_addresses_are_checked_with_one_line_errors() {
        let p = pool6("fd00:28::/64");
        assert_eq!(p.check_static(ip6("fd00:28::9"), &[]), Ok(()));
        assert_eq!(
            p.check_static(ip6("fd00:29::9"), &[]).unwrap_err().to_string(),
            "address fd00:29::9 is not in subnet fd00:28::/64: It does not belong to any of this network's subnets"
        );
        assert_eq!(
            p.check_static(ip6("fd00:28::1"), &[]).unwrap_err().to_string(),
            "address fd00:28::1 is reserved in fd00:28::/64 (the subnet's first address or the gateway)"
        );
        assert!(matches!(
            p.check_static(ip6("fd00:28::"), &[]),
            Err(IpamError::Reserved { .. })
        ));
        assert_eq!(
            p.check_static(ip6("fd00:28::ffff:ffff:ffff:ffff"), &[]),
            Ok(())
        );
        assert_eq!(
            p.check_static(ip6("fd00:28::9"), &[ip6("fd00:28::9")])
                .unwrap_err()
                .to_string(),
            "address fd00:28::9 is already in use by another container: Address already in use"
        );
    }

    #[test]
    fn the_default_ipv6_subnet_option_drops_host_bits_and_refuses_tiny_prefixes() {
        assert_eq!(
            parse_default_subnet6("fd00:17::5/64"),
            Ok("fd00:17::/64".parse().unwrap())
        );
        assert!(parse_default_subnet6("fd00::/127")
            .unwrap_err()
            .contains("/126 or shorter"));
        assert!(parse_default_subnet6("172.17.0.0/16")
            .unwrap_err()
            .contains("not an IPv6 CIDR"));
        assert!(overlaps6(
            "fd00::/16".parse().unwrap(),
            "fd00:1::/64".parse().unwrap()
        ));
        assert!(!overlaps6(
            "fd00:1::/64".parse().unwrap(),
            "fd00:2::/64".parse().unwrap()
        ));
    }

    #[test]
    fn auto_subnets_skip_taken_ranges() {
        let default: Ipv4Net = "172.17.0.0/16".parse().unwrap();
        assert_eq!(
            auto_subnet(&[default]).unwrap().to_string(),
            "172.18.0.0/16"
        );
        let taken = [
            default,
            "172.18.5.0/24".parse().unwrap(),
            "172.16.0.0/12".parse().unwrap(),
        ];
        assert_eq!(auto_subnet(&taken).unwrap().to_string(), "192.168.0.0/20");
    }

    #[test]
    fn overlap_is_symmetric() {
        let a: Ipv4Net = "10.0.0.0/8".parse().unwrap();
        let b: Ipv4Net = "10.3.0.0/16".parse().unwrap();
        let c: Ipv4Net = "11.0.0.0/16".parse().unwrap();
        assert!(overlaps(a, b) && overlaps(b, a));
        assert!(!overlaps(a, c));
    }

    /// Property tests: allocation is serial and never hands out a reserved, used or foreign
    /// address; it fails only when there is none; the default subnet option refuses what has no
    /// room. `PROPTEST_CASES` sets the number of cases.
    mod props {
        use proptest::prelude::*;

        use super::*;

        /// A small network (so that exhaustion is common) with its gateway, range, used
        /// addresses and one more address (for static checks).
        fn case() -> impl Strategy<Value = (Pool, Vec<Ipv4Addr>, Ipv4Addr)> {
            (any::<u32>(), 25u8..=30)
                .prop_flat_map(|(base, prefix)| {
                    let subnet = Ipv4Net::new(base.into(), prefix).unwrap().trunc();
                    let size = 1u32 << (32 - prefix);
                    let first = u32::from(subnet.network());
                    (
                        Just(subnet),
                        1..size - 1,
                        proptest::option::of((0..size, prefix..=32)),
                        proptest::collection::vec(0..size, 0..size as usize),
                        prop_oneof![(0..size).prop_map(move |o| first + o), any::<u32>()],
                    )
                })
                .prop_map(|(subnet, gw, range, used, other)| {
                    let first = u32::from(subnet.network());
                    let pool = Pool {
                        subnet,
                        gateway: Ipv4Addr::from(first + gw),
                        range: range.map(|(o, p)| {
                            Ipv4Net::new(Ipv4Addr::from(first + o), p).unwrap().trunc()
                        }),
                    };
                    let used = used
                        .into_iter()
                        .map(|o| Ipv4Addr::from(first + o))
                        .collect();
                    (pool, used, Ipv4Addr::from(other))
                })
        }

        /// A small IPv6 network anywhere in the address space (so that exhaustion is common),
        /// its gateway, range, used addresses and one more address.
        fn case6() -> impl Strategy<Value = (Pool6, Vec<Ipv6Addr>, Ipv6Addr)> {
            (any::<u128>(), 121u8..=126)
                .prop_flat_map(|(base, prefix)| {
                    let subnet = Ipv6Net::new(base.into(), prefix).unwrap().trunc();
                    let size = 1u128 << (128 - prefix);
                    let first = u128::from(subnet.network());
                    (
                        Just(subnet),
                        1..size,
                        proptest::option::of((0..size, prefix..=128)),
                        proptest::collection::vec(0..size, 0..size as usize),
                        prop_oneof![(0..size).prop_map(move |o| first + o), any::<u128>()],
                    )
                })
                .prop_map(|(subnet, gw, range, used, other)| {
                    let first = u128::from(subnet.network());
                    let pool = Pool6 {
                        subnet,
                        gateway: Ipv6Addr::from(first + gw),
                        range: range.map(|(o, p)| {
                            Ipv6Net::new(Ipv6Addr::from(first + o), p).unwrap().trunc()
                        }),
                    };
                    let used = used
                        .into_iter()
                        .map(|o| Ipv6Addr::from(first + o))
                        .collect();
                    (pool, used, Ipv6Addr::from(other))
                })
        }

        proptest! {
            #[test]
            fn ipv6_allocation_gives_the_lowest_free_address((pool, used, _other) in case6()) {
                let range = pool.range.unwrap_or(pool.subnet);
                let free = |ip: &Ipv6Addr| !pool.is_reserved(*ip) && !used.contains(ip);
                let walk: Vec<Ipv6Addr> = (u128::from(range.network())..=u128::from(range.broadcast()))
                    .map(Ipv6Addr::from)
                    .collect();
                match pool.allocate(&used) {
                    Ok(ip) => {
                        prop_assert!(range.contains(&ip) && pool.subnet.contains(&ip));
                        prop_assert!(free(&ip), "{} is reserved or in use", ip);
                        prop_assert_eq!(walk.iter().find(|ip| free(ip)), Some(&ip), "not the lowest free one");
                        prop_assert_eq!(pool.check_static(ip, &used), Ok(()));
                    }
                    Err(e) => {
                        prop_assert_eq!(e, IpamError::Exhausted(IpNet::V6(range)));
                        prop_assert!(!walk.iter().any(free));
                    }
                }
            }

            #[test]
            fn a_static_ipv6_address_is_accepted_exactly_when_it_is_free((pool, used, ip) in case6()) {
                let ok = pool.subnet.contains(&ip) && !pool.is_reserved(ip) && !used.contains(&ip);
                let got = pool.check_static(ip, &used);
                prop_assert_eq!(got.is_ok(), ok, "{:?}", got);
                if let Err(e) = got {
                    let text = e.to_string();
                    prop_assert!(text.contains(&ip.to_string()) && !text.contains('\n'));
                }
            }

            #[test]
            fn the_default_ipv6_subnet_option_has_room_for_a_gateway_and_a_container(
                text in prop_oneof![
                    (any::<u128>(), 0u8..=140).prop_map(|(a, p)| format!("{}/{p}", Ipv6Addr::from(a))),
                    any::<String>(),
                ]
            ) {
                match parse_default_subnet6(&text) {
                    Ok(net) => {
                        prop_assert_eq!(net.addr(), net.network());
                        let gw = default_gateway6(net);
                        prop_assert!(net.contains(&gw) && gw != net.network());
                        let pool = Pool6 { subnet: net, gateway: gw, range: None };
                        prop_assert!(pool.allocate(&[]).is_ok());
                    }
                    Err(e) => prop_assert!(!e.contains('\n'), "{:?}", e),
                }
            }

            #[test]
            fn allocation_gives_the_lowest_free_address((pool, used, _other) in case()) {
                let range = pool.range.unwrap_or(pool.subnet);
                let free = |ip: &Ipv4Addr| !pool.is_reserved(*ip) && !used.contains(ip);
                // The range in ascending order.
                let walk: Vec<Ipv4Addr> = range.hosts().chain([range.network(), range.broadcast()])
                    .collect::<std::collections::BTreeSet<_>>().into_iter().collect();
                match pool.allocate(&used) {
                    Ok(ip) => {
                        prop_assert!(range.contains(&ip) && pool.subnet.contains(&ip));
                        prop_assert!(free(&ip), "{} is reserved or in use", ip);
                        prop_assert_eq!(walk.iter().find(|ip| free(ip)), Some(&ip), "not the lowest free one");
                        prop_assert_eq!(pool.check_static(ip, &used), Ok(()));
                    }
                    Err(e) => {
                        prop_assert_eq!(e, IpamError::Exhausted(IpNet::V4(range)));
                        prop_assert!(!walk.iter().any(free));
                    }
                }
            }

            #[test]
            fn a_static_address_is_accepted_exactly_when_it_is_free((pool, used, ip) in case()) {
                let ok = pool.subnet.contains(&ip) && !pool.is_reserved(ip) && !used.contains(&ip);
                let got = pool.check_static(ip, &used);
                prop_assert_eq!(got.is_ok(), ok, "{:?}", got);
                if let Err(e) = got {
                    prop_assert!(e.to_string().contains(&ip.to_string()));
                }
            }

            #[test]
            fn the_default_subnet_option_has_room_for_a_gateway_and_a_container(
                text in prop_oneof![
                    (any::<[u8; 4]>(), 0u8..=40).prop_map(|(a, p)| format!("{}/{p}", Ipv4Addr::from(a))),
                    any::<String>(),
                ]
            ) {
                match parse_default_subnet(&text) {
                    Ok(net) => {
                        prop_assert_eq!(net.addr(), net.network());
                        let gw = default_gateway(net);
                        prop_assert!(net.contains(&gw) && gw != net.network() && gw != net.broadcast());
                        let pool = Pool { subnet: net, gateway: gw, range: None };
                        prop_assert!(pool.allocate(&[]).is_ok());
                    }
                    Err(e) => prop_assert!(!e.contains('\n'), "{:?}", e),
                }
            }
        }
    }
}
