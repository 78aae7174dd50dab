//! Packet tests of `netd_endpoint_ingress`, the TC program on the host side of container veths,
//! run through `BPF_PROG_TEST_RUN` (load only, nothing attached, no interfaces created).
//!
//! The topology every test starts from:
//!
//! | network | id | subnet      | gateway  | containers                                       |
//! |---------|----|-------------|----------|--------------------------------------------------|
//! | `front` | 1  | 10.1.0.0/24 | 10.1.0.1 | 10.1.0.2 (the endpoint under test), 10.1.0.3     |
//! | `back`  | 2  | 10.2.0.0/24 | 10.2.0.1 | 10.2.0.5                                         |
//! | `vault` | 3  | 10.3.0.0/24 | 10.3.0.1 | 10.3.0.2 (`--internal`; the endpoint under test   |
//! |         |    |             |          | in the internal-network tests)                   |
//!
//! The ARP responder knows every gateway (bridge MAC `02:42` and the gateway address) and both
//! containers on `front` and the one on `back`.
//!
//! `BPF_PROG_TEST_RUN` hands skb programs an skb whose device is loopback, so the endpoint under
//! test sits under key [`TEST_RUN_IFINDEX`] (1) of `NETD_ENDPOINTS`. Every drop is checked by its
//! counter in `NETD_DROPS`, and every verdict by all counters: a pass must count nothing, a drop
//! exactly one packet for exactly one reason.
//!
//! Needs root (skipped otherwise, unless `CI=true`).

mod common_bpf;

use common_bpf::*;
use netd_common::{DropReason, Endpoint, ENDPOINT_FLAG_INTERNAL};

const FRONT_NET: u32 = 1;
const BACK_NET: u32 = 2;
const VAULT_NET: u32 = 3;

const FRONT_SUBNET: [u8; 4] = [10, 1, 0, 0];
const BACK_SUBNET: [u8; 4] = [10, 2, 0, 0];
const VAULT_SUBNET: [u8; 4] = [10, 3, 0, 0];

const FRONT_GATEWAY: [u8; 4] = [10, 1, 0, 1];
const BACK_GATEWAY: [u8; 4] = [10, 2, 0, 1];
const VAULT_GATEWAY: [u8; 4] = [10, 3, 0, 1];

/// Our container, on `front`.
const OUR_IP: [u8; 4] = [10, 1, 0, 2];
const OUR_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0x01, 0x00, 0x02];
/// Another container on `front`.
const NEIGHBOUR_IP: [u8; 4] = [10, 1, 0, 3];
const NEIGHBOUR_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0x01, 0x00, 0x03];
/// A container on `back`.
const BACK_CONTAINER_IP: [u8; 4] = [10, 2, 0, 5];
const BACK_CONTAINER_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0x02, 0x00, 0x05];
/// The bridge of `front`, where traffic leaving the network is sent.
const BRIDGE_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0x01, 0x00, 0x01];
/// The bridge of `back`.
const BACK_BRIDGE_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0x02, 0x00, 0x01];
/// Somewhere beyond the host.
const INTERNET_IP: [u8; 4] = [93, 184, 216, 34];

/// Our container if it were on the internal network `vault`.
const VAULT_IP: [u8; 4] = [10, 3, 0, 2];
const VAULT_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0x03, 0x00, 0x02];

fn front_endpoint() -> Endpoint {
    Endpoint {
        addr: OUR_IP,
        mac: OUR_MAC,
        _pad: [0; 2],
        net_id: FRONT_NET,
        flags: 0,
    }
}

fn vault_endpoint() -> Endpoint {
    Endpoint {
        addr: VAULT_IP,
        mac: VAULT_MAC,
        _pad: [0; 2],
        net_id: VAULT_NET,
        flags: ENDPOINT_FLAG_INTERNAL,
    }
}

/// A harness with the three networks declared but no endpoint plugged in.
fn networks_only(test: &str) -> Option<Harness> {
    let mut h = Harness::new(test, ENDPOINT_INGRESS)?;
    h.add_network(FRONT_SUBNET, 24, FRONT_NET);
    h.add_network(BACK_SUBNET, 24, BACK_NET);
    h.add_network(VAULT_SUBNET, 24, VAULT_NET);
    h.add_neighbor(FRONT_GATEWAY, BRIDGE_MAC, FRONT_NET);
    h.add_neighbor(BACK_GATEWAY, BACK_BRIDGE_MAC, BACK_NET);
    h.add_neighbor(OUR_IP, OUR_MAC, FRONT_NET);
    h.add_neighbor(NEIGHBOUR_IP, NEIGHBOUR_MAC, FRONT_NET);
    h.add_neighbor(BACK_CONTAINER_IP, BACK_CONTAINER_MAC, BACK_NET);
    Some(h)
}

/// The topology with our `front` container on the test-run device.
fn front(test: &str) -> Option<Harness> {
    let mut h = networks_only(test)?;
    h.set_endpoint(TEST_RUN_IFINDEX, front_endpoint());
    Some(h)
}

/// The topology with our container on the internal network `vault` instead.
fn vault(test: &str) -> Option<Harness> {
    let mut h = networks_only(test)?;
    h.set_endpoint(TEST_RUN_IFINDEX, vault_endpoint());
    Some(h)
}

/// Our container sending UDP to `dst` (to `dst_mac`), nothing forged.
fn from_us(dst_mac: [u8; 6], dst: [u8; 4]) -> Vec<u8> {
    ipv4_udp_frame(OUR_MAC, dst_mac, OUR_IP, dst)
}

/// Asserts that `frame` passes and that no drop counter moves.
#[track_caller]
fn assert_passes(h: &Harness, frame: &[u8]) {
    let before = h.all_drops();
    let verdict = h.run(ENDPOINT_INGRESS, frame);
    let after = h.all_drops();
    assert_eq!(
        verdict, TC_ACT_OK,
        "expected TC_ACT_OK, drops now {after:?}"
    );
    assert_eq!(after, before, "a passed frame moved a drop counter");
}

/// Asserts that `frame` is dropped and counted once, for `reason` and no other.
#[track_caller]
fn assert_dropped(h: &Harness, frame: &[u8], reason: DropReason) {
    let before = h.all_drops();
    let verdict = h.run(ENDPOINT_INGRESS, frame);
    let after = h.all_drops();
    assert_eq!(
        verdict, TC_ACT_SHOT,
        "expected TC_ACT_SHOT for {reason:?}, drops now {after:?}"
    );
    assert_one_drop_counted(&before, &after, reason);
}

/// Asserts that between the counter snapshots `before` and `after` exactly one drop was counted,
/// for `reason`.
#[track_caller]
fn assert_one_drop_counted(
    before: &[(DropReason, u64)],
    after: &[(DropReason, u64)],
    reason: DropReason,
) {
    for ((r, b), (_, a)) in before.iter().zip(after) {
        let expected = if *r == reason { b + 1 } else { *b };
        assert_eq!(
            *a, expected,
            "counter {r:?} went from {b} to {a}; expected one drop for {reason:?} only"
        );
    }
}

// --- Legitimate IPv4 ----------------------------------------------------------------------------

#[test]
fn ipv4_to_container_on_same_network_passes() {
    let Some(h) = front("ipv4_to_container_on_same_network_passes") else {
        return;
    };
    assert_passes(&h, &from_us(NEIGHBOUR_MAC, NEIGHBOUR_IP));
}

#[test]
fn ipv4_to_own_gateway_passes() {
    let Some(h) = front("ipv4_to_own_gateway_passes") else {
        return;
    };
    assert_passes(&h, &from_us(BRIDGE_MAC, FRONT_GATEWAY));
}

#[test]
fn ipv4_to_outside_any_netd_subnet_passes() {
    let Some(h) = front("ipv4_to_outside_any_netd_subnet_passes") else {
        return;
    };
    assert_passes(&h, &from_us(BRIDGE_MAC, INTERNET_IP));
}

#[test]
fn ipv4_broadcast_and_multicast_pass() {
    let Some(h) = front("ipv4_broadcast_and_multicast_pass") else {
        return;
    };
    assert_passes(&h, &from_us(BROADCAST_MAC, [255, 255, 255, 255]));
    let mdns_mac = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
    assert_passes(&h, &from_us(mdns_mac, [224, 0, 0, 251]));
}

// --- Straight into another container on this host ----------------------------------------------

/// The host-side veth of the neighbour on `front` and of the container on `back`.
const NEIGHBOUR_VETH: u32 = 42;
const BACK_CONTAINER_VETH: u32 = 43;

/// The topology with both other containers plugged in on this host, behind their veths.
fn front_with_local_peers(test: &str) -> Option<Harness> {
    let mut h = front(test)?;
    for (veth, addr, mac, net_id) in [
        (NEIGHBOUR_VETH, NEIGHBOUR_IP, NEIGHBOUR_MAC, FRONT_NET),
        (
            BACK_CONTAINER_VETH,
            BACK_CONTAINER_IP,
            BACK_CONTAINER_MAC,
            BACK_NET,
        ),
    ] {
        let ep = Endpoint {
            addr,
            mac,
            net_id,
            ..front_endpoint()
        };
        h.set_endpoint(veth, ep);
        h.add_veth(addr, veth);
    }
    Some(h)
}

#[test]
fn ipv4_to_a_container_on_this_host_goes_straight_into_it_with_its_mac() {
    let Some(h) = front_with_local_peers("ipv4_to_a_local_container_is_redirected") else {
        return;
    };
    for dst_mac in [NEIGHBOUR_MAC, BRIDGE_MAC] {
        let frame = from_us(dst_mac, NEIGHBOUR_IP);
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
            "nothing else changes (no hop off the TTL)"
        );
        assert_eq!(h.all_drops(), before);
    }
}

#[test]
fn the_straight_path_keeps_isolation_and_anti_spoofing() {
    let Some(h) = front_with_local_peers("the_straight_path_keeps_isolation") else {
        return;
    };
    assert_dropped(
        &h,
        &from_us(BACK_CONTAINER_MAC, BACK_CONTAINER_IP),
        DropReason::Isolation,
    );
    let spoofed = ipv4_udp_frame(OUR_MAC, NEIGHBOUR_MAC, [10, 1, 0, 99], NEIGHBOUR_IP);
    assert_dropped(&h, &spoofed, DropReason::SpoofedIp);
}

#[test]
fn a_veth_entry_whose_port_has_another_address_now_is_not_followed() {
    let Some(mut h) = front_with_local_peers("a_stale_veth_entry_is_not_followed") else {
        return;
    };
    // The neighbour left; its veth's index now belongs to a container with another address.
    let newcomer = Endpoint {
        addr: [10, 1, 0, 9],
        mac: [0x02, 0x42, 10, 1, 0, 9],
        ..front_endpoint()
    };
    h.set_endpoint(NEIGHBOUR_VETH, newcomer);
    assert_passes(&h, &from_us(NEIGHBOUR_MAC, NEIGHBOUR_IP));
}

// --- Isolation between networks -----------------------------------------------------------------

#[test]
fn ipv4_to_container_on_other_network_is_dropped_for_isolation() {
    let Some(h) = front("ipv4_to_container_on_other_network_is_dropped_for_isolation") else {
        return;
    };
    assert_dropped(
        &h,
        &from_us(BACK_CONTAINER_MAC, BACK_CONTAINER_IP),
        DropReason::Isolation,
    );
    // Going through the bridge's MAC instead (routing via the host) changes nothing.
    assert_dropped(
        &h,
        &from_us(BRIDGE_MAC, BACK_CONTAINER_IP),
        DropReason::Isolation,
    );
    assert_eq!(h.drops(DropReason::Isolation), 2);
}

#[test]
fn ipv4_to_other_network_gateway_is_dropped_for_isolation() {
    let Some(h) = front("ipv4_to_other_network_gateway_is_dropped_for_isolation") else {
        return;
    };
    assert_dropped(
        &h,
        &from_us(BRIDGE_MAC, BACK_GATEWAY),
        DropReason::Isolation,
    );
    assert_dropped(
        &h,
        &from_us(BRIDGE_MAC, VAULT_GATEWAY),
        DropReason::Isolation,
    );
    assert_eq!(h.drops(DropReason::Isolation), 2);
}

#[test]
fn isolation_follows_longest_prefix_match() {
    let Some(mut h) = front("isolation_follows_longest_prefix_match") else {
        return;
    };
    // A /28 of `back` carved out of `front`'s /24: the longer prefix decides.
    h.add_network([10, 1, 0, 16], 28, BACK_NET);
    assert_dropped(
        &h,
        &from_us(BRIDGE_MAC, [10, 1, 0, 20]),
        DropReason::Isolation,
    );
    assert_passes(&h, &from_us(NEIGHBOUR_MAC, [10, 1, 0, 40]));
}

// --- Anti-spoofing ------------------------------------------------------------------------------

#[test]
fn ipv4_with_spoofed_source_ip_is_dropped() {
    let Some(h) = front("ipv4_with_spoofed_source_ip_is_dropped") else {
        return;
    };
    // A neighbour's address, from our own MAC.
    let frame = ipv4_udp_frame(OUR_MAC, BRIDGE_MAC, NEIGHBOUR_IP, INTERNET_IP);
    assert_dropped(&h, &frame, DropReason::SpoofedIp);
    // 0.0.0.0 is only fine as an ARP sender, not as an IPv4 source.
    let frame = ipv4_udp_frame(OUR_MAC, BROADCAST_MAC, [0, 0, 0, 0], [255, 255, 255, 255]);
    assert_dropped(&h, &frame, DropReason::SpoofedIp);
    assert_eq!(h.drops(DropReason::SpoofedIp), 2);
}

#[test]
fn ipv4_with_spoofed_source_mac_is_dropped() {
    let Some(h) = front("ipv4_with_spoofed_source_mac_is_dropped") else {
        return;
    };
    let frame = ipv4_udp_frame(NEIGHBOUR_MAC, BRIDGE_MAC, OUR_IP, INTERNET_IP);
    assert_dropped(&h, &frame, DropReason::SpoofedMac);
    assert_eq!(h.drops(DropReason::SpoofedMac), 1);
}

#[test]
fn ipv6_with_spoofed_source_mac_is_dropped_as_spoofed_mac() {
    let Some(h) = front("ipv6_with_spoofed_source_mac_is_dropped_as_spoofed_mac") else {
        return;
    };
    // The MAC check comes before the protocol check.
    assert_dropped(
        &h,
        &ipv6_frame(NEIGHBOUR_MAC, BROADCAST_MAC),
        DropReason::SpoofedMac,
    );
}

// --- ARP ----------------------------------------------------------------------------------------

#[test]
fn arp_with_correct_sender_passes() {
    let Some(h) = front("arp_with_correct_sender_passes") else {
        return;
    };
    // An address the responder does not know: the request goes to the bridge.
    assert_passes(
        &h,
        &arp_request_frame(OUR_MAC, OUR_MAC, OUR_IP, [10, 1, 0, 99]),
    );
    let reply = ethernet(
        NEIGHBOUR_MAC,
        OUR_MAC,
        ETH_P_ARP,
        &arp(ARP_REPLY, OUR_MAC, OUR_IP, NEIGHBOUR_MAC, NEIGHBOUR_IP),
    );
    assert_passes(&h, &reply);
}

#[test]
fn arp_with_foreign_sender_ip_is_dropped() {
    let Some(h) = front("arp_with_foreign_sender_ip_is_dropped") else {
        return;
    };
    // Gratuitous ARP claiming the gateway: the classic ARP-poisoning attempt.
    let frame = arp_request_frame(OUR_MAC, OUR_MAC, FRONT_GATEWAY, FRONT_GATEWAY);
    assert_dropped(&h, &frame, DropReason::SpoofedIp);
    assert_eq!(h.drops(DropReason::SpoofedIp), 1);
}

#[test]
fn arp_with_foreign_sender_mac_is_dropped() {
    let Some(h) = front("arp_with_foreign_sender_mac_is_dropped") else {
        return;
    };
    // Honest Ethernet source, forged ARP sender hardware address.
    let frame = arp_request_frame(OUR_MAC, NEIGHBOUR_MAC, OUR_IP, FRONT_GATEWAY);
    assert_dropped(&h, &frame, DropReason::SpoofedMac);
    assert_eq!(h.drops(DropReason::SpoofedMac), 1);
}

#[test]
fn arp_probe_with_unspecified_sender_ip_passes() {
    let Some(h) = front("arp_probe_with_unspecified_sender_ip_passes") else {
        return;
    };
    // RFC 5227 address probe: sender IP 0.0.0.0.
    assert_passes(
        &h,
        &arp_request_frame(OUR_MAC, OUR_MAC, [0, 0, 0, 0], OUR_IP),
    );
}

// --- ARP responder ------------------------------------------------------------------------------

/// Asserts that our request for `tpa` comes back as the reply of `mac`, sent back out of the
/// port it came in on, and that no drop counter moves.
#[track_caller]
fn assert_answered(h: &Harness, tpa: [u8; 4], mac: [u8; 6]) {
    let before = h.all_drops();
    let (verdict, out) = h.run_out(
        ENDPOINT_INGRESS,
        &arp_request_frame(OUR_MAC, OUR_MAC, OUR_IP, tpa),
    );
    assert_eq!(verdict, TC_ACT_REDIRECT, "the request is not answered here");
    let reply = ethernet(
        OUR_MAC,
        mac,
        ETH_P_ARP,
        &arp(ARP_REPLY, mac, tpa, OUR_MAC, OUR_IP),
    );
    assert_eq!(out, reply);
    assert_eq!(
        h.all_drops(),
        before,
        "an answered request moved a drop counter"
    );
}

#[test]
fn arp_request_for_the_gateway_is_answered_with_the_bridges_mac() {
    let Some(h) = front("arp_request_for_the_gateway_is_answered_with_the_bridges_mac") else {
        return;
    };
    assert_answered(&h, FRONT_GATEWAY, BRIDGE_MAC);
}

#[test]
fn arp_request_for_a_container_on_the_same_network_is_answered_with_its_mac() {
    let Some(h) = front("arp_request_for_a_container_on_the_same_network_is_answered") else {
        return;
    };
    assert_answered(&h, NEIGHBOUR_IP, NEIGHBOUR_MAC);
}

#[test]
fn arp_request_for_another_networks_addresses_is_not_answered() {
    let Some(h) = front("arp_request_for_another_networks_addresses_is_not_answered") else {
        return;
    };
    for tpa in [BACK_CONTAINER_IP, BACK_GATEWAY] {
        assert_passes(&h, &arp_request_frame(OUR_MAC, OUR_MAC, OUR_IP, tpa));
    }
}

#[test]
fn address_probes_and_announcements_are_left_to_the_network() {
    let Some(h) = front("address_probes_and_announcements_are_left_to_the_network") else {
        return;
    };
    // RFC 5227: a probe (sender 0.0.0.0) for a taken address, and an announcement of our own.
    assert_passes(
        &h,
        &arp_request_frame(OUR_MAC, OUR_MAC, [0, 0, 0, 0], NEIGHBOUR_IP),
    );
    assert_passes(&h, &arp_request_frame(OUR_MAC, OUR_MAC, OUR_IP, OUR_IP));
}

#[test]
fn arp_replies_from_the_container_are_not_answered() {
    let Some(h) = front("arp_replies_from_the_container_are_not_answered") else {
        return;
    };
    let reply = ethernet(
        BRIDGE_MAC,
        OUR_MAC,
        ETH_P_ARP,
        &arp(ARP_REPLY, OUR_MAC, OUR_IP, BRIDGE_MAC, FRONT_GATEWAY),
    );
    assert_passes(&h, &reply);
}

// --- Protocols and malformed frames -------------------------------------------------------------

#[test]
fn ipv6_frame_is_dropped_as_unsupported_protocol() {
    let Some(h) = front("ipv6_frame_is_dropped_as_unsupported_protocol") else {
        return;
    };
    assert_dropped(
        &h,
        &ipv6_frame(OUR_MAC, BROADCAST_MAC),
        DropReason::UnsupportedProtocol,
    );
    assert_eq!(h.drops(DropReason::UnsupportedProtocol), 1);
}

/// For frames the kernel may refuse to hand to the program at all: either `BPF_PROG_TEST_RUN`
/// fails with `EINVAL` before the program runs (and nothing is counted), or the program runs and
/// must drop the frame as [`DropReason::Malformed`].
///
/// `bpf_test_init` refuses skb input shorter than `ETH_HLEN`, and the 6.18 kernel these tests
/// were written on also refuses frames whose EtherType is IPv4 (IPv6) but which are shorter than
/// 14 + 20 (14 + 40) bytes; older kernels only had the `ETH_HLEN` check and run such frames.
#[track_caller]
fn assert_malformed_unless_refused(h: &Harness, frame: &[u8]) {
    let before = h.all_drops();
    match h.try_run(ENDPOINT_INGRESS, frame) {
        Err(aya::programs::ProgramError::SyscallError(e))
            if e.io_error.raw_os_error() == Some(libc::EINVAL) =>
        {
            eprintln!(
                "note: the kernel refused a {}-byte frame (EINVAL) before the program ran",
                frame.len()
            );
            assert_eq!(
                h.all_drops(),
                before,
                "a refused frame moved a drop counter"
            );
        }
        Err(e) => panic!("BPF_PROG_TEST_RUN: {}", error_chain(&e)),
        Ok(verdict) => {
            let after = h.all_drops();
            assert_eq!(
                verdict, TC_ACT_SHOT,
                "expected a Malformed drop, drops now {after:?}"
            );
            assert_one_drop_counted(&before, &after, DropReason::Malformed);
        }
    }
}

#[test]
fn vlan_tagged_ipv4_is_dropped_as_unsupported_protocol() {
    let Some(h) = front("vlan_tagged_ipv4_is_dropped_as_unsupported_protocol") else {
        return;
    };
    // An 802.1Q tag in front of an IPv4 packet to another network: hiding behind a tag must not
    // get it past the isolation check.
    let inner = from_us(BRIDGE_MAC, BACK_CONTAINER_IP);
    let mut tagged = inner[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]); // TPID 0x8100, VID 42
    tagged.extend_from_slice(&inner[12..]);
    assert_dropped(&h, &tagged, DropReason::UnsupportedProtocol);
}

#[test]
fn frame_shorter_than_ethernet_header_is_malformed_or_refused_by_kernel() {
    let Some(h) = front("frame_shorter_than_ethernet_header_is_malformed_or_refused_by_kernel")
    else {
        return;
    };
    let frame = &from_us(NEIGHBOUR_MAC, NEIGHBOUR_IP)[..10];
    assert_malformed_unless_refused(&h, frame);
}

#[test]
fn truncated_ipv4_header_is_malformed_or_refused_by_kernel() {
    let Some(h) = front("truncated_ipv4_header_is_malformed_or_refused_by_kernel") else {
        return;
    };
    // Ethernet header + the first 8 bytes of an otherwise legitimate IPv4 header, and the bare
    // Ethernet header with the IPv4 EtherType.
    let full = from_us(NEIGHBOUR_MAC, NEIGHBOUR_IP);
    assert_malformed_unless_refused(&h, &full[..14 + 8]);
    assert_malformed_unless_refused(&h, &full[..14]);
    // One byte short of the fixed header.
    assert_malformed_unless_refused(&h, &full[..14 + 19]);
}

#[test]
fn ethernet_header_alone_with_arp_ethertype_is_dropped_as_malformed() {
    let Some(h) = front("ethernet_header_alone_with_arp_ethertype_is_dropped_as_malformed") else {
        return;
    };
    // The shortest frame test_run accepts whatever the kernel: 14 bytes, no ARP header behind.
    let frame = ethernet(BROADCAST_MAC, OUR_MAC, ETH_P_ARP, &[]);
    assert_eq!(frame.len(), 14);
    assert_dropped(&h, &frame, DropReason::Malformed);
    assert_eq!(h.drops(DropReason::Malformed), 1);
}

#[test]
fn ipv4_header_without_payload_passes_for_protocols_without_ports() {
    let Some(h) = front("ipv4_header_without_payload_passes_for_protocols_without_ports") else {
        return;
    };
    // Exactly 14 + 20 bytes of an experimental protocol (253): nothing else is needed.
    let frame = ethernet(
        NEIGHBOUR_MAC,
        OUR_MAC,
        ETH_P_IP,
        &ipv4(OUR_IP, NEIGHBOUR_IP, 253, &[]),
    );
    assert_eq!(frame.len(), 34);
    assert_passes(&h, &frame);
}

#[test]
fn udp_without_its_header_is_malformed() {
    let Some(h) = front("udp_without_its_header_is_malformed") else {
        return;
    };
    // NAT needs the ports: a UDP packet that has none is malformed.
    let frame = ethernet(
        NEIGHBOUR_MAC,
        OUR_MAC,
        ETH_P_IP,
        &ipv4(OUR_IP, NEIGHBOUR_IP, 17, &[]),
    );
    assert_dropped(&h, &frame, DropReason::Malformed);
}

#[test]
fn truncated_arp_is_dropped_as_malformed() {
    let Some(h) = front("truncated_arp_is_dropped_as_malformed") else {
        return;
    };
    let full = arp_request_frame(OUR_MAC, OUR_MAC, OUR_IP, FRONT_GATEWAY);
    assert_dropped(&h, &full[..full.len() - 1], DropReason::Malformed);
}

#[test]
fn ipv4_with_bad_version_or_header_length_is_dropped_as_malformed() {
    let Some(h) = front("ipv4_with_bad_version_or_header_length_is_dropped_as_malformed") else {
        return;
    };
    let mut frame = from_us(NEIGHBOUR_MAC, NEIGHBOUR_IP);
    frame[14] = 0x65; // version 6 inside an IPv4 EtherType
    assert_dropped(&h, &frame, DropReason::Malformed);
    frame[14] = 0x44; // IHL 4 < 5
    assert_dropped(&h, &frame, DropReason::Malformed);
    assert_eq!(h.drops(DropReason::Malformed), 2);
}

#[test]
fn non_ethernet_ipv4_arp_is_dropped_as_malformed() {
    let Some(h) = front("non_ethernet_ipv4_arp_is_dropped_as_malformed") else {
        return;
    };
    let mut frame = arp_request_frame(OUR_MAC, OUR_MAC, OUR_IP, FRONT_GATEWAY);
    frame[14 + 4] = 8; // HLEN 8
    assert_dropped(&h, &frame, DropReason::Malformed);
}

// --- Unknown endpoint ---------------------------------------------------------------------------

#[test]
fn frame_on_port_without_endpoint_is_dropped_as_unknown_endpoint() {
    let Some(mut h) =
        networks_only("frame_on_port_without_endpoint_is_dropped_as_unknown_endpoint")
    else {
        return;
    };
    // Our endpoint exists, but behind another port than the one the frame arrives on.
    h.set_endpoint(TEST_RUN_IFINDEX + 41, front_endpoint());
    assert_dropped(
        &h,
        &from_us(NEIGHBOUR_MAC, NEIGHBOUR_IP),
        DropReason::UnknownEndpoint,
    );
    assert_dropped(
        &h,
        &arp_request_frame(OUR_MAC, OUR_MAC, OUR_IP, FRONT_GATEWAY),
        DropReason::UnknownEndpoint,
    );
    assert_eq!(h.drops(DropReason::UnknownEndpoint), 2);
}

// --- Internal networks --------------------------------------------------------------------------

#[test]
fn internal_endpoint_to_own_subnet_passes() {
    let Some(h) = vault("internal_endpoint_to_own_subnet_passes") else {
        return;
    };
    let frame = ipv4_udp_frame(VAULT_MAC, BRIDGE_MAC, VAULT_IP, [10, 3, 0, 9]);
    assert_passes(&h, &frame);
    let frame = ipv4_udp_frame(VAULT_MAC, BRIDGE_MAC, VAULT_IP, VAULT_GATEWAY);
    assert_passes(&h, &frame);
}

#[test]
fn internal_endpoint_to_outside_is_dropped_as_internal() {
    let Some(h) = vault("internal_endpoint_to_outside_is_dropped_as_internal") else {
        return;
    };
    let frame = ipv4_udp_frame(VAULT_MAC, BRIDGE_MAC, VAULT_IP, INTERNET_IP);
    assert_dropped(&h, &frame, DropReason::Internal);
    assert_eq!(h.drops(DropReason::Internal), 1);
}

#[test]
fn internal_endpoint_to_other_network_is_dropped_for_isolation() {
    let Some(h) = vault("internal_endpoint_to_other_network_is_dropped_for_isolation") else {
        return;
    };
    let frame = ipv4_udp_frame(VAULT_MAC, BRIDGE_MAC, VAULT_IP, OUR_IP);
    assert_dropped(&h, &frame, DropReason::Isolation);
}

#[test]
fn internal_endpoint_to_limited_broadcast_passes() {
    let Some(h) = vault("internal_endpoint_to_limited_broadcast_passes") else {
        return;
    };
    let frame = ipv4_udp_frame(VAULT_MAC, BROADCAST_MAC, VAULT_IP, [255, 255, 255, 255]);
    assert_passes(&h, &frame);
}

// --- The harness itself ---------------------------------------------------------------------------

#[test]
fn pin_directory_is_removed_on_drop() {
    let Some(h) = front("pin_directory_is_removed_on_drop") else {
        return;
    };
    let dir = h.pin_dir().to_owned();
    assert!(dir.join(netd_common::maps::ENDPOINTS).exists());
    drop(h);
    assert!(!dir.exists(), "{} survived the harness", dir.display());
}

#[test]
fn ipv4_header_checksum_of_builder_is_valid() {
    // Pure userspace; a header with its checksum filled in sums to zero.
    let packet = ipv4(OUR_IP, NEIGHBOUR_IP, 17, &[]);
    assert_eq!(inet_checksum(&packet[..20]), 0);
    // Known vector (Wikipedia, "IPv4 header checksum"): 0xb861.
    let header = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];
    assert_eq!(inet_checksum(&header), 0xb861);
}
