//! IPv4 address management: automatic subnets for new networks and addresses for endpoints.
//!
//! Everything here is pure: the caller passes what is in use (derived from the state, never kept
//! twice) and gets an answer or a [`IpamError`]. Allocation gives the lowest free address, as
//! Docker's local networks do (libnetwork's bitmap, `serial` off outside swarm): an address freed
//! by a stopped or removed container is the next one handed out, so a container that stops while
//! another starts usually comes back at a new address (seed 003).
use std::{collections::BTreeSet, net::Ipv4Addr};

use ipnet::Ipv4Net;
use thiserror::Error;

/// Why an address or subnet could not be given.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("no free address left in {0}")]
    Exhausted(Ipv4Net),
    #[error("no free subnet left in the default address pools")]
    NoSubnet,
    /// Docker's words after netd's: scripts match them.
    #[error("address {ip} is not in subnet {subnet}: It does not belong to any of this network's subnets")]
    OutsideSubnet { ip: Ipv4Addr, subnet: Ipv4Net },
    #[error("address {0} is already in use by another container: Address already in use")]
    InUse(Ipv4Addr),
    #[error("address {ip} is reserved in {subnet} (network, broadcast or gateway address)")]
    Reserved { ip: Ipv4Addr, subnet: Ipv4Net },
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
        if !self.subnet.contains(&ip) {
            return Err(IpamError::OutsideSubnet {
                ip,
                subnet: self.subnet,
            });
        }
        if self.is_reserved(ip) {
            return Err(IpamError::Reserved {
                ip,
                subnet: self.subnet,
            });
        }
        if in_use.contains(&ip) {
            return Err(IpamError::InUse(ip));
        }
        Ok(())
    }

    /// The lowest free address of the range (or of the subnet): never the network, broadcast or
    /// gateway address, nor one in `in_use`. Sorting the used addresses of the range costs
    /// O(n log n) in the number of containers on the network, not in the size of the subnet.
    pub fn allocate(&self, in_use: &[Ipv4Addr]) -> Result<Ipv4Addr, IpamError> {
        let range = self.range.unwrap_or(self.subnet);
        let (first, last) = (u32::from(range.network()), u32::from(range.broadcast()));
        let taken: BTreeSet<u32> = in_use
            .iter()
            .map(|ip| u32::from(*ip))
            .filter(|ip| (first..=last).contains(ip))
            .chain(
                [self.subnet.network(), self.subnet.broadcast(), self.gateway]
                    .into_iter()
                    .map(u32::from),
            )
            .collect();
        // The first address from the range's start that the next taken one does not cover.
        let mut candidate = first;
        for t in taken.range(first..=last) {
            if *t != candidate {
                break;
            }
            match candidate.checked_add(1) {
                Some(next) if next <= last => candidate = next,
                _ => return Err(IpamError::Exhausted(range)),
            }
        }
        if taken.contains(&candidate) {
            return Err(IpamError::Exhausted(range));
        }
        Ok(Ipv4Addr::from(candidate))
    }
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
        assert_eq!(p.allocate(&used), Err(IpamError::Exhausted(p.subnet)));
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
            Err(IpamError::InUse(ip("10.0.0.9")))
        );
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

        proptest! {
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
                        prop_assert_eq!(e, IpamError::Exhausted(range));
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
