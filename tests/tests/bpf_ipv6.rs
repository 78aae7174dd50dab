//! Packet tests of the IPv6 half of `netd_endpoint_ingress` (anti-spoofing, router
//! advertisements, the NDP responder, isolation, `--internal`, the straight path into a
//! neighbour), run through `BPF_PROG_TEST_RUN` (load only, nothing attached).
//!
//! The topology every test starts from (IPv4 as in `bpf_endpoint.rs`, each network dual stack):
//!
//! | network | id | subnet      | gateway    | containers                                     |
//! |---------|----|-------------|------------|------------------------------------------------|
//! | `front` | 1  | fd00:1::/64 | fd00:1::1  | fd00:1::2 (the endpoint under test), fd00:1::3 |
//! | `back`  | 2  | fd00:2::/64 | fd00:2::1  | fd00:2::5                                      |
//! | `vault` | 3  | fd00:3::/64 | fd00:3::1  | fd00:3::2 (`--internal`; the endpoint under    |
//! |         |    |             |            | test in the internal-network tests)            |
//!
//! The NDP responder knows every gateway (its bridge's MAC) and every container. The endpoint
//! under test sits under [`TEST_RUN_IFINDEX`]; the other containers of `front` and `back` are
//! on this host behind veths 42 and 43. Every verdict is checked against all drop counters: a
//! pass or an answer counts nothing, a drop exactly one packet for exactly one reason.
//!
//! Needs root (skipped otherwise, unless `CI=true`).

mod common_bpf;

use std::net::Ipv6Addr;

use common_bpf::*;
use netd_common::{DropReason, Endpoint, Endpoint6, ENDPOINT_FLAG_INTERNAL};

const FRONT_NET: u32 = 1;
const BACK_NET: u32 = 2;
const VAULT_NET: u32 = 3;

/// Our container, on `front`.
const OUR_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0x01, 0x00, 0x02];
/// Another container on `front`, on this host.
const NEIGHBOUR_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0x01, 0x00, 0x03];
const NEIGHBOUR_VETH: u32 = 42;
/// A container on `back`, on this host.
const BACK_CONTAINER_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0x02, 0x00, 0x05];
const BACK_CONTAINER_VETH: u32 = 43;
/// The bridges of `front` and `back`.
const BRIDGE_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0x01, 0x00, 0x01];
const BACK_BRIDGE_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0x02, 0x00, 0x01];
/// Our container if it were on the internal network `vault`.
const VAULT_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0x03, 0x00, 0x02];

fn ip6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().expect("an IPv6 address").octets()
}

/// The link-local address the kernel gives an interface with `mac` (`addr_gen_mode` eui64),
/// written out here rather than taken from netd.
fn link_local(mac: [u8; 6]) -> [u8; 16] {
    let mut a = ip6("fe80::");
    a[8..11].copy_from_slice(&[mac[0] ^ 2, mac[1], mac[2]]);
    a[11..13].copy_from_slice(&[0xff, 0xfe]);
    a[13..].copy_from_slice(&mac[3..]);
    a
}

fn our_ip() -> [u8; 16] {
    ip6("fd00:1::2")
}

fn front_endpoint() -> Endpoint {
    endpoint_on([10, 1, 0, 2], OUR_MAC, FRONT_NET)
}

/// The topology, without our endpoint plugged in.
fn networks_only(test: &str) -> Option<Harness> {
    let mut h = Harness::new(test, ENDPOINT_INGRESS)?;
    for (v4, v6, net) in [
        ([10, 1, 0, 0], "fd00:1::", FRONT_NET),
        ([10, 2, 0, 0], "fd00:2::", BACK_NET),
        ([10, 3, 0, 0], "fd00:3::", VAULT_NET),
    ] {
        h.add_network(v4, 24, net);
        h.add_network6(ip6(v6), 64, net);
    }
    h.add_neighbor6(ip6("fd00:1::1"), BRIDGE_MAC, FRONT_NET);
    h.add_neighbor6(ip6("fd00:2::1"), BACK_BRIDGE_MAC, BACK_NET);
    h.add_neighbor6(our_ip(), OUR_MAC, FRONT_NET);
    h.add_neighbor6(ip6("fd00:1::3"), NEIGHBOUR_MAC, FRONT_NET);
    h.add_neighbor6(ip6("fd00:2::5"), BACK_CONTAINER_MAC, BACK_NET);
    for (veth, v4, v6, mac, net) in [
        (
            NEIGHBOUR_VETH,
            [10, 1, 0, 3],
            "fd00:1::3",
            NEIGHBOUR_MAC,
            FRONT_NET,
        ),
        (
            BACK_CONTAINER_VETH,
            [10, 2, 0, 5],
            "fd00:2::5",
            BACK_CONTAINER_MAC,
            BACK_NET,
        ),
    ] {
        h.set_endpoint(veth, endpoint_on(v4, mac, net));
        h.set_endpoint6(
            veth,
            Endpoint6 {
                addr: ip6(v6),
                link_local: link_local(mac),
            },
        );
        h.add_veth6(ip6(v6), veth);
    }
    Some(h)
}

/// The topology with our dual-stack container on `front`.
fn front(test: &str) -> Option<Harness> {
    let mut h = networks_only(test)?;
    h.set_endpoint(TEST_RUN_IFINDEX, front_endpoint());
    h.set_endpoint6(
        TEST_RUN_IFINDEX,
        Endpoint6 {
            addr: our_ip(),
            link_local: link_local(OUR_MAC),
        },
    );
    Some(h)
}

/// The topology with our container on the internal network `vault` instead.
fn vault(test: &str) -> Option<Harness> {
    let mut h = networks_only(test)?;
    let ep = Endpoint {
        flags: ENDPOINT_FLAG_INTERNAL,
        ..endpoint_on([10, 3, 0, 2], VAULT_MAC, VAULT_NET)
    };
    h.set_endpoint(TEST_RUN_IFINDEX, ep);
    h.set_endpoint6(
        TEST_RUN_IFINDEX,
        Endpoint6 {
            addr: ip6("fd00:3::2"),
            link_local: link_local(VAULT_MAC),
        },
    );
    Some(h)
}

/// UDP from our container's global address to `dst` (to `dst_mac`).
fn udp_from_us(dst_mac: [u8; 6], dst: [u8; 16]) -> Vec<u8> {
    ipv6_udp_frame(OUR_MAC, dst_mac, our_ip(), dst)
}

/// An ICMPv6 frame from our container (`src`) to `dst` (multicast MAC for a group).
fn icmp_from_us(src: [u8; 16], dst: [u8; 16], icmp_type: u8, body: &[u8]) -> Vec<u8> {
    let dst_mac = match dst[0] {
        0xff => ipv6_multicast_mac(dst),
        _ => BRIDGE_MAC,
    };
    let message = icmpv6(src, dst, icmp_type, 0, body);
    ethernet(
        dst_mac,
        OUR_MAC,
        ETH_P_IPV6,
        &ipv6(src, dst, IPPROTO_ICMPV6, 255, &message),
    )
}

/// A neighbour advertisement body for `target` (solicited, override) with a target
/// link-layer address option carrying `mac`.
fn advert_body(target: [u8; 16], mac: [u8; 6]) -> Vec<u8> {
    let mut body = vec![0x60, 0, 0, 0];
    body.extend_from_slice(&target);
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&mac);
    body
}

#[track_caller]
fn assert_passes(h: &Harness, frame: &[u8]) {
    let before = h.all_drops();
    let (verdict, out) = h.run_out(ENDPOINT_INGRESS, frame);
    let after = h.all_drops();
    assert_eq!(
        verdict, TC_ACT_OK,
        "expected TC_ACT_OK, drops now {after:?}"
    );
    assert_eq!(out, frame, "a passed frame is left as it was");
    assert_eq!(after, before, "a passed frame moved a drop counter");
}

#[track_caller]
fn assert_dropped(h: &Harness, frame: &[u8], reason: DropReason) {
    let before = h.all_drops();
    let verdict = h.run(ENDPOINT_INGRESS, frame);
    let after = h.all_drops();
    assert_eq!(
        verdict, TC_ACT_SHOT,
        "expected TC_ACT_SHOT for {reason:?}, drops now {after:?}"
    );
    for ((r, b), (_, a)) in before.iter().zip(&after) {
        let expected = if *r == reason { b + 1 } else { *b };
        assert_eq!(
            *a, expected,
            "counter {r:?} went from {b} to {a}; expected one drop for {reason:?} only"
        );
    }
}

// --- The NDP responder ---------------------------------------------------------------------------

/// Checks that `out` is `by`'s neighbour advertisement (MAC `by_mac`) for `target`, answering
/// our container at `to`: every byte, and the ICMPv6 checksum recomputed here.
#[track_caller]
fn assert_advertisement(out: &[u8], target: [u8; 16], by_mac: [u8; 6], to: [u8; 16]) {
    assert_eq!(
        out.len(),
        14 + 40 + 32,
        "Ethernet, IPv6, NA with one option"
    );
    assert_eq!(out[..6], OUR_MAC, "to the container that asked");
    assert_eq!(out[6..12], by_mac, "from the target's MAC");
    assert_eq!(out[12..14], ETH_P_IPV6.to_be_bytes());
    let ip = &out[14..54];
    assert_eq!(ip[..4], [0x60, 0, 0, 0], "version 6, no class or flow");
    assert_eq!(ip[4..6], 32u16.to_be_bytes(), "payload length");
    assert_eq!(ip[6], IPPROTO_ICMPV6);
    assert_eq!(ip[7], 255, "hop limit 255, as RFC 4861 demands");
    assert_eq!(ip[8..24], target, "from the target address");
    assert_eq!(ip[24..40], to, "to the solicitor");
    let na = &out[54..];
    assert_eq!((na[0], na[1]), (136, 0), "a neighbour advertisement");
    assert_eq!(
        na[4..8],
        [0x60, 0, 0, 0],
        "solicited and override, not router"
    );
    assert_eq!(na[8..24], target);
    assert_eq!(na[24..26], [2, 1], "target link-layer address option");
    assert_eq!(na[26..32], by_mac);
    let mut zeroed = na.to_vec();
    zeroed[2..4].copy_from_slice(&[0, 0]);
    let expected = icmpv6_checksum(target, to, &zeroed);
    assert_eq!(
        u16::from_be_bytes([na[2], na[3]]),
        expected,
        "ICMPv6 checksum over the pseudo-header"
    );
}

#[test]
fn a_solicitation_for_the_gateway_is_answered_at_the_port_with_the_bridges_mac() {
    let Some(h) = front("ndp_gateway_answered") else {
        return;
    };
    let gateway = ip6("fd00:1::1");
    let ns = neighbor_solicitation_frame(OUR_MAC, our_ip(), gateway, Some(OUR_MAC));
    assert_eq!(ns.len(), 86, "the answer is as long as the question");
    let before = h.all_drops();
    let (verdict, out) = h.run_out(ENDPOINT_INGRESS, &ns);
    assert_eq!(verdict, TC_ACT_REDIRECT, "sent back out of the port");
    assert_advertisement(&out, gateway, BRIDGE_MAC, our_ip());
    assert_eq!(h.all_drops(), before, "an answer is no drop");
}

#[test]
fn a_solicitation_for_a_neighbour_from_the_link_local_address_is_answered_to_it() {
    let Some(h) = front("ndp_neighbour_answered") else {
        return;
    };
    let target = ip6("fd00:1::3");
    let ll = link_local(OUR_MAC);
    // No source link-layer address option: the frame grows to take the answer's.
    let ns = neighbor_solicitation_frame(OUR_MAC, ll, target, None);
    assert_eq!(ns.len(), 78);
    let (verdict, out) = h.run_out(ENDPOINT_INGRESS, &ns);
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_advertisement(&out, target, NEIGHBOUR_MAC, ll);
}

#[test]
fn a_unicast_reachability_probe_is_answered_too() {
    let Some(h) = front("ndp_unicast_probe_answered") else {
        return;
    };
    let gateway = ip6("fd00:1::1");
    let mut body = vec![0; 4];
    body.extend_from_slice(&gateway);
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&OUR_MAC);
    let ns = icmp_from_us(our_ip(), gateway, 135, &body);
    let (verdict, out) = h.run_out(ENDPOINT_INGRESS, &ns);
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_advertisement(&out, gateway, BRIDGE_MAC, our_ip());
}

#[test]
fn a_solicitation_for_another_networks_address_is_dropped_unanswered() {
    let Some(h) = front("ndp_other_network_dropped") else {
        return;
    };
    for target in ["fd00:2::5", "fd00:2::1"] {
        let ns = neighbor_solicitation_frame(OUR_MAC, our_ip(), ip6(target), Some(OUR_MAC));
        assert_dropped(&h, &ns, DropReason::Isolation);
    }
    assert_eq!(h.drops(DropReason::Isolation), 2);
}

#[test]
fn duplicate_address_detection_from_the_unspecified_address_goes_on_unanswered() {
    let Some(h) = front("ndp_dad_passes") else {
        return;
    };
    let dad = neighbor_solicitation_frame(OUR_MAC, [0; 16], our_ip(), None);
    assert_passes(&h, &dad);
    // Even for a taken address of its network: the owner answers, not netd.
    let dad = neighbor_solicitation_frame(OUR_MAC, [0; 16], ip6("fd00:1::3"), None);
    assert_passes(&h, &dad);
}

#[test]
fn a_solicitation_for_an_address_netd_does_not_know_goes_on_to_the_bridge() {
    let Some(h) = front("ndp_unknown_passes") else {
        return;
    };
    let ns = neighbor_solicitation_frame(OUR_MAC, our_ip(), ip6("fd00:1::77"), Some(OUR_MAC));
    assert_passes(&h, &ns);
}

#[test]
fn a_solicitation_with_another_macs_link_layer_option_is_dropped() {
    let Some(h) = front("ndp_spoofed_sllao") else {
        return;
    };
    let ns = neighbor_solicitation_frame(OUR_MAC, our_ip(), ip6("fd00:1::1"), Some(NEIGHBOUR_MAC));
    assert_dropped(&h, &ns, DropReason::SpoofedMac);
}

#[test]
fn an_advertisement_only_for_the_containers_own_addresses_passes() {
    let Some(h) = front("ndp_advertisements") else {
        return;
    };
    let all_nodes = ip6("ff02::1");
    for own in [our_ip(), link_local(OUR_MAC)] {
        let na = icmp_from_us(our_ip(), all_nodes, 136, &advert_body(own, OUR_MAC));
        assert_passes(&h, &na);
    }
    let stolen = icmp_from_us(
        our_ip(),
        all_nodes,
        136,
        &advert_body(ip6("fd00:1::1"), OUR_MAC),
    );
    assert_dropped(&h, &stolen, DropReason::SpoofedIp);
    let other_mac = icmp_from_us(our_ip(), all_nodes, 136, &advert_body(our_ip(), BRIDGE_MAC));
    assert_dropped(&h, &other_mac, DropReason::SpoofedMac);
}

// --- Router messages ------------------------------------------------------------------------------

#[test]
fn router_advertisements_and_redirects_from_a_container_are_dropped() {
    let Some(h) = front("ndp_router_messages_dropped") else {
        return;
    };
    let ll = link_local(OUR_MAC);
    // Hop limit 64, managed flags 0, lifetime 1800 s, reachable and retransmit timers 0.
    let ra = icmp_from_us(
        ll,
        ip6("ff02::1"),
        134,
        &[64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    assert_dropped(&h, &ra, DropReason::RouterAdvertisement);
    let mut redirect = vec![0; 4];
    redirect.extend_from_slice(&ip6("fd00:1::1"));
    redirect.extend_from_slice(&ip6("fd00:1::3"));
    let redirect = icmp_from_us(ll, ip6("fd00:1::3"), 137, &redirect);
    assert_dropped(&h, &redirect, DropReason::RouterAdvertisement);
    assert_eq!(h.drops(DropReason::RouterAdvertisement), 2);
    // A router solicitation is the container's to send.
    let rs = icmp_from_us(ll, ip6("ff02::2"), 133, &[0; 4]);
    assert_passes(&h, &rs);
}

#[test]
fn a_router_advertisement_behind_a_hop_by_hop_header_is_still_dropped() {
    let Some(h) = front("ndp_hidden_ra_dropped") else {
        return;
    };
    let (ll, all_nodes) = (link_local(OUR_MAC), ip6("ff02::1"));
    let ra = icmpv6(
        ll,
        all_nodes,
        134,
        0,
        &[64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    // Next header ICMPv6, 8 bytes, a PadN option.
    let mut payload = vec![IPPROTO_ICMPV6, 0, 1, 4, 0, 0, 0, 0];
    payload.extend_from_slice(&ra);
    let frame = ethernet(
        ipv6_multicast_mac(all_nodes),
        OUR_MAC,
        ETH_P_IPV6,
        &ipv6(ll, all_nodes, IPPROTO_HOPOPTS, 255, &payload),
    );
    assert_dropped(&h, &frame, DropReason::RouterAdvertisement);
}

#[test]
fn an_mld_report_from_the_unspecified_address_passes() {
    let Some(h) = front("mld_report_from_unspecified") else {
        return;
    };
    let mld = ip6("ff02::16");
    // One record: MODE_IS_EXCLUDE of our solicited-node group, no sources.
    let mut body = vec![0, 0, 0, 1, 2, 0, 0, 0];
    body.extend_from_slice(&solicited_node(our_ip()));
    let report = icmpv6([0; 16], mld, 143, 0, &body);
    // Hop-by-hop header with the router alert option, as the kernel sends it.
    let mut payload = vec![IPPROTO_ICMPV6, 0, 5, 2, 0, 0, 1, 0];
    payload.extend_from_slice(&report);
    let frame = ethernet(
        ipv6_multicast_mac(mld),
        OUR_MAC,
        ETH_P_IPV6,
        &ipv6([0; 16], mld, IPPROTO_HOPOPTS, 1, &payload),
    );
    assert_passes(&h, &frame);
}

// --- Anti-spoofing --------------------------------------------------------------------------------

#[test]
fn ipv6_from_the_containers_own_addresses_passes() {
    let Some(h) = front("ipv6_own_sources_pass") else {
        return;
    };
    assert_passes(&h, &udp_from_us(BRIDGE_MAC, ip6("fd00:1::1")));
    let ll = ipv6_udp_frame(OUR_MAC, BRIDGE_MAC, link_local(OUR_MAC), ip6("fe80::1"));
    assert_passes(&h, &ll);
}

#[test]
fn ipv6_with_a_spoofed_source_is_dropped_as_spoofed_ip() {
    let Some(h) = front("ipv6_spoofed_source_dropped") else {
        return;
    };
    for src in [
        ip6("fd00:1::99"),
        ip6("fd00:1::3"),
        link_local(NEIGHBOUR_MAC),
        [0; 16],
    ] {
        let frame = ipv6_udp_frame(OUR_MAC, BRIDGE_MAC, src, ip6("fd00:1::1"));
        assert_dropped(&h, &frame, DropReason::SpoofedIp);
    }
    assert_eq!(h.drops(DropReason::SpoofedIp), 4);
    // A solicitation from another container's address is no better.
    let ns = neighbor_solicitation_frame(OUR_MAC, ip6("fd00:1::3"), ip6("fd00:1::1"), None);
    assert_dropped(&h, &ns, DropReason::SpoofedIp);
}

#[test]
fn ipv6_with_a_spoofed_source_mac_is_dropped_as_spoofed_mac() {
    let Some(h) = front("ipv6_spoofed_mac_dropped") else {
        return;
    };
    let frame = ipv6_udp_frame(NEIGHBOUR_MAC, BRIDGE_MAC, our_ip(), ip6("fd00:1::1"));
    assert_dropped(&h, &frame, DropReason::SpoofedMac);
}

#[test]
fn a_port_without_ipv6_still_drops_ipv6() {
    let Some(mut h) = networks_only("ipv6_on_a_v4_only_port") else {
        return;
    };
    h.set_endpoint(TEST_RUN_IFINDEX, front_endpoint());
    assert_dropped(
        &h,
        &udp_from_us(BRIDGE_MAC, ip6("fd00:1::1")),
        DropReason::UnsupportedProtocol,
    );
    let ns = neighbor_solicitation_frame(OUR_MAC, our_ip(), ip6("fd00:1::1"), Some(OUR_MAC));
    assert_dropped(&h, &ns, DropReason::UnsupportedProtocol);
}

// --- Destinations ---------------------------------------------------------------------------------

#[test]
fn ipv6_to_another_network_is_dropped_for_isolation() {
    let Some(h) = front("ipv6_isolation") else {
        return;
    };
    assert_dropped(
        &h,
        &udp_from_us(BACK_CONTAINER_MAC, ip6("fd00:2::5")),
        DropReason::Isolation,
    );
    assert_dropped(
        &h,
        &udp_from_us(BRIDGE_MAC, ip6("fd00:2::1")),
        DropReason::Isolation,
    );
    assert_dropped(
        &h,
        &udp_from_us(BRIDGE_MAC, ip6("fd00:3::9")),
        DropReason::Isolation,
    );
}

#[test]
fn ipv6_to_a_container_of_the_network_on_this_host_goes_straight_into_it_with_its_mac() {
    let Some(h) = front("ipv6_straight_into_a_neighbour") else {
        return;
    };
    for dst_mac in [NEIGHBOUR_MAC, BRIDGE_MAC] {
        let frame = udp_from_us(dst_mac, ip6("fd00:1::3"));
        let before = h.all_drops();
        let (verdict, out) = h.run_out(ENDPOINT_INGRESS, &frame);
        assert_eq!(verdict, TC_ACT_REDIRECT, "sent to {dst_mac:02x?}");
        assert_eq!(
            out[..6],
            NEIGHBOUR_MAC,
            "the neighbour's MAC as destination"
        );
        assert_eq!(
            out[6..],
            frame[6..],
            "nothing else changes (no hop off the limit)"
        );
        assert_eq!(h.all_drops(), before);
    }
}

#[test]
fn a_stale_ipv6_veth_entry_is_not_followed() {
    let Some(mut h) = front("ipv6_stale_veth_entry") else {
        return;
    };
    // The neighbour left; its veth now has a container with another address.
    h.set_endpoint6(
        NEIGHBOUR_VETH,
        Endpoint6 {
            addr: ip6("fd00:1::9"),
            link_local: link_local([2, 0x42, 10, 1, 0, 9]),
        },
    );
    assert_passes(&h, &udp_from_us(NEIGHBOUR_MAC, ip6("fd00:1::3")));
}

#[test]
fn ipv6_to_the_gateway_outside_and_on_the_link_goes_on() {
    let Some(h) = front("ipv6_goes_on") else {
        return;
    };
    assert_passes(&h, &udp_from_us(BRIDGE_MAC, ip6("fd00:1::1")));
    assert_passes(&h, &udp_from_us(BRIDGE_MAC, ip6("2001:db8::1")));
    assert_passes(
        &h,
        &udp_from_us(ipv6_multicast_mac(ip6("ff02::fb")), ip6("ff02::fb")),
    );
}

#[test]
fn an_internal_network_keeps_ipv6_inside_its_subnet_and_link() {
    let Some(h) = vault("ipv6_internal") else {
        return;
    };
    let from_vault = |dst_mac, dst| ipv6_udp_frame(VAULT_MAC, dst_mac, ip6("fd00:3::2"), dst);
    assert_dropped(
        &h,
        &from_vault(BRIDGE_MAC, ip6("2001:db8::1")),
        DropReason::Internal,
    );
    assert_passes(&h, &from_vault(BRIDGE_MAC, ip6("fd00:3::1")));
    assert_passes(&h, &from_vault(BRIDGE_MAC, ip6("fe80::1")));
    let group = ip6("ff02::1:2");
    assert_passes(&h, &from_vault(ipv6_multicast_mac(group), group));
    assert_dropped(
        &h,
        &from_vault(BRIDGE_MAC, ip6("fd00:1::3")),
        DropReason::Isolation,
    );
}

#[test]
fn too_many_extension_headers_are_refused() {
    let Some(h) = front("ipv6_extension_chain") else {
        return;
    };
    let dst = ip6("fd00:1::1");
    // Three destination options headers, then UDP.
    let mut payload = vec![];
    for next in [60, 60, 17] {
        payload.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    payload.extend_from_slice(&udp(40000, 53, b"x"));
    let frame = ethernet(
        BRIDGE_MAC,
        OUR_MAC,
        ETH_P_IPV6,
        &ipv6(our_ip(), dst, 60, 64, &payload),
    );
    assert_dropped(&h, &frame, DropReason::UnsupportedProtocol);
}

#[test]
fn a_truncated_ipv6_header_is_dropped_as_malformed() {
    let Some(h) = front("ipv6_truncated") else {
        return;
    };
    let frame = ipv6_udp_frame(OUR_MAC, BRIDGE_MAC, our_ip(), ip6("fd00:1::1"));
    // Version 4 in an IPv6 frame.
    let mut bad = frame.clone();
    bad[14] = 0x40;
    assert_dropped(&h, &bad, DropReason::Malformed);
    // A neighbour solicitation cut off in its target.
    let ns = neighbor_solicitation_frame(OUR_MAC, our_ip(), ip6("fd00:1::1"), None);
    assert_dropped(&h, &ns[..ns.len() - 8], DropReason::Malformed);
}
