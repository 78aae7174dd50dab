//! Packet tests of the published-port policy (`netd-ebpf/src/allow.rs`) through
//! `BPF_PROG_TEST_RUN`: the first packet of a flow from a client the policy lets in is
//! translated as before; one from a refused client is answered as a closed port would answer
//! (a TCP reset, ICMP port unreachable), sent back out of its port, counted as
//! `publish-policy`, and leaves no NAT entry. The trie entries come from `netd::policy`, the
//! daemon's own planning, and the kernel's longest-prefix lookup is checked against the
//! daemon's `Policy::decide` for many clients and 100,000 prefixes.
//!
//! Topology: network 172.17.0.0/16 (gateway 172.17.0.1), backend 172.17.0.2:80 behind port 42,
//! `0.0.0.0:8080/{tcp,udp}` published to it, host address 10.99.0.2 on the uplink (the test-run
//! device). Needs root (skipped otherwise, unless `CI=true`).

mod common_bpf;

use common_bpf::*;
use netd::policy::{parse_prefixes, Action, Policy};
use netd_common::{
    port_scope, Backend, DropReason, PolicyScope, PortKey, BACKEND_POLICY_HOST, BACKEND_POLICY_OWN,
    IPPROTO_TCP, IPPROTO_UDP,
};

const NET_ID: u32 = 1;
const GATEWAY_IP: [u8; 4] = [172, 17, 0, 1];
const GATEWAY_MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x01];
const BACKEND_IP: [u8; 4] = [172, 17, 0, 2];
const BACKEND_MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
const BACKEND_IFINDEX: u32 = 42;
const OTHER_IP: [u8; 4] = [172, 17, 0, 3];
const OTHER_MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x03];
const HOST_IP: [u8; 4] = [10, 99, 0, 2];
const UPLINK_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0x63, 0x00, 0x02];
const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0x63, 0x00, 0x01];
const PORT: u16 = 8080;
const CLIENT_PORT: u16 = 51000;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const RST: u8 = 0x04;

fn port_key(proto: u8) -> PortKey {
    PortKey {
        addr: [0; 4],
        port_be: PORT.to_be(),
        proto,
        _pad: 0,
    }
}

fn backend(policy: u16) -> Backend {
    Backend {
        addr: BACKEND_IP,
        port_be: 80u16.to_be(),
        policy,
        ifindex: BACKEND_IFINDEX,
        mac: BACKEND_MAC,
        _pad2: [0; 2],
        gateway: GATEWAY_IP,
    }
}

/// `program` over the topology, both ports published with `policy` deciding for them, and
/// the host-wide policy `host` in the trie.
fn world(test: &str, program: &str, policy: u16, host: &Policy) -> Option<Harness> {
    let mut h = Harness::new(test, program)?;
    h.add_network([172, 17, 0, 0], 16, NET_ID);
    h.add_local_addr(HOST_IP);
    h.set_uplink(TEST_RUN_IFINDEX, HOST_IP);
    h.set_endpoint(
        BACKEND_IFINDEX,
        endpoint_on(BACKEND_IP, BACKEND_MAC, NET_ID),
    );
    h.add_port(port_key(IPPROTO_TCP), backend(policy));
    h.add_port(port_key(IPPROTO_UDP), backend(policy));
    h.add_policy(&host.entries(PolicyScope::default(), false));
    Some(h)
}

fn policy(allow: &str, deny: &str) -> Policy {
    let list = |s: &str| match s.is_empty() {
        true => vec![],
        false => parse_prefixes(s, "test").unwrap(),
    };
    Policy::new(list(allow), list(deny), "test").unwrap()
}

/// A TCP segment (valid checksum) from `src`:`sport` to `dst`:`dport`.
fn tcp(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
) -> Vec<u8> {
    let mut seg = Vec::with_capacity(20);
    seg.extend_from_slice(&sport.to_be_bytes());
    seg.extend_from_slice(&dport.to_be_bytes());
    seg.extend_from_slice(&seq.to_be_bytes());
    seg.extend_from_slice(&ack.to_be_bytes());
    seg.extend_from_slice(&[5 << 4, flags, 0xfa, 0xf0, 0, 0, 0, 0]);
    let check = tcp_checksum(src, dst, &seg);
    seg[16..18].copy_from_slice(&check.to_be_bytes());
    ipv4(src, dst, IPPROTO_TCP, &seg)
}

fn tcp_checksum(src: [u8; 4], dst: [u8; 4], seg: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, IPPROTO_TCP]);
    pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(seg);
    inet_checksum(&pseudo)
}

/// A SYN from `client` to the published port, as it arrives at the uplink.
fn syn_from(client: [u8; 4]) -> Vec<u8> {
    let packet = tcp(client, HOST_IP, CLIENT_PORT, PORT, 1000, 0, SYN);
    ethernet(UPLINK_MAC, PEER_MAC, ETH_P_IP, &packet)
}

/// Whether the uplink let `client`'s SYN in (translated into the backend), or refused it
/// (answered with a reset); panics on anything else.
fn admitted(h: &Harness, client: [u8; 4]) -> bool {
    let (verdict, out) = h.run_out(UPLINK_INGRESS, &syn_from(client));
    assert_eq!(verdict, TC_ACT_REDIRECT, "a SYN is delivered or answered");
    let ip = &out[14..];
    match ip[9] {
        IPPROTO_TCP if ip[16..20] == BACKEND_IP => true,
        IPPROTO_TCP if ip[16..20] == client && ip[33] & RST != 0 => false,
        _ => panic!("neither translated nor reset: {out:02x?}"),
    }
}

/// Checks the reset `out` answering a segment from `client` (seq 1000, SYN) at `(eth_dst,
/// eth_src)`: addresses and ports swapped, RST|ACK acknowledging the SYN, checksums valid.
fn assert_reset(out: &[u8], client: [u8; 4], eth: ([u8; 6], [u8; 6])) {
    assert_eq!(out.len(), 14 + 40, "Ethernet, IPv4 and TCP headers only");
    assert_eq!(&out[0..6], &eth.0, "back to the sender's MAC");
    assert_eq!(&out[6..12], &eth.1);
    let ip = &out[14..34];
    assert_eq!(inet_checksum(ip), 0, "IPv4 header checksum");
    assert_eq!(&ip[12..16], &HOST_IP, "from the address the client reached");
    assert_eq!(&ip[16..20], &client);
    let seg = &out[34..];
    assert_eq!(u16::from_be_bytes([seg[0], seg[1]]), PORT);
    assert_eq!(u16::from_be_bytes([seg[2], seg[3]]), CLIENT_PORT);
    assert_eq!(seg[13], RST | ACK);
    assert_eq!(u32::from_be_bytes([seg[8], seg[9], seg[10], seg[11]]), 1001);
    let mut zeroed = seg.to_vec();
    zeroed[16..18].copy_from_slice(&[0, 0]);
    let want = tcp_checksum(HOST_IP, client, &zeroed);
    assert_eq!(u16::from_be_bytes([seg[16], seg[17]]), want, "TCP checksum");
}

#[test]
fn a_client_outside_the_host_wide_allowlist_gets_a_reset_and_no_flow() {
    let host = policy("10.0.0.0/8,192.0.2.7", "10.66.0.0/16");
    let Some(h) = world("policy_reset", UPLINK_INGRESS, BACKEND_POLICY_HOST, &host) else {
        return;
    };
    assert!(admitted(&h, [192, 0, 2, 7]));
    assert!(admitted(&h, [10, 1, 2, 3]));
    assert_eq!(h.nat_entries().len(), 4, "two flows, two entries each");
    let refused = [203, 0, 113, 7];
    let (verdict, out) = h.run_out(UPLINK_INGRESS, &syn_from(refused));
    assert_eq!(verdict, TC_ACT_REDIRECT, "sent back out of the uplink");
    assert_reset(&out, refused, (PEER_MAC, UPLINK_MAC));
    assert!(!admitted(&h, [10, 66, 0, 1]), "the longer deny prefix wins");
    assert_eq!(h.nat_entries().len(), 4, "a refused client makes no flow");
    assert_eq!(h.drops(DropReason::PublishPolicy), 2);
}

#[test]
fn a_cut_off_clients_next_segment_gets_a_reset_it_accepts_and_a_reset_gets_nothing() {
    let host = policy("10.0.0.0/8", "");
    let Some(h) = world("policy_midflow", UPLINK_INGRESS, BACKEND_POLICY_HOST, &host) else {
        return;
    };
    let client = [198, 51, 100, 9];
    // What a client whose flow the daemon removed sends next: data with an ACK.
    let data = tcp(client, HOST_IP, CLIENT_PORT, PORT, 5000, 77_000, ACK | 0x08);
    let (verdict, out) = h.run_out(
        UPLINK_INGRESS,
        &ethernet(UPLINK_MAC, PEER_MAC, ETH_P_IP, &data),
    );
    assert_eq!(verdict, TC_ACT_REDIRECT);
    let seg = &out[34..];
    assert_eq!(seg[13], RST, "a plain reset");
    assert_eq!(
        u32::from_be_bytes([seg[4], seg[5], seg[6], seg[7]]),
        77_000,
        "SEQ=SEG.ACK, in the client's window"
    );
    let reset = tcp(client, HOST_IP, CLIENT_PORT, PORT, 5000, 0, RST);
    let verdict = h.run(
        UPLINK_INGRESS,
        &ethernet(UPLINK_MAC, PEER_MAC, ETH_P_IP, &reset),
    );
    assert_eq!(verdict, TC_ACT_SHOT, "a reset is never answered");
}

#[test]
fn a_refused_udp_client_gets_port_unreachable_quoting_its_datagram() {
    let host = policy("10.0.0.0/8", "");
    let Some(h) = world("policy_udp", UPLINK_INGRESS, BACKEND_POLICY_HOST, &host) else {
        return;
    };
    let client = [203, 0, 113, 7];
    let packet = ipv4(
        client,
        HOST_IP,
        IPPROTO_UDP,
        &udp(CLIENT_PORT, PORT, b"hello"),
    );
    let (verdict, out) = h.run_out(
        UPLINK_INGRESS,
        &ethernet(UPLINK_MAC, PEER_MAC, ETH_P_IP, &packet),
    );
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_eq!(out.len(), 14 + 56);
    assert_eq!(&out[0..6], &PEER_MAC);
    let ip = &out[14..34];
    assert_eq!(inet_checksum(ip), 0);
    assert_eq!(
        (ip[9], &ip[12..16], &ip[16..20]),
        (1, &HOST_IP[..], &client[..])
    );
    let icmp = &out[34..];
    assert_eq!(
        (icmp[0], icmp[1]),
        (3, 3),
        "destination unreachable, port unreachable"
    );
    assert_eq!(inet_checksum(icmp), 0, "ICMP checksum");
    assert_eq!(&icmp[8..36], &packet[..28], "quotes the header and 8 bytes");
    assert!(h.nat_entries().is_empty());
    assert_eq!(h.drops(DropReason::PublishPolicy), 1);
}

#[test]
fn a_port_with_its_own_allowlist_is_decided_by_it_alone() {
    // Host-wide, only 10.0.0.0/8 may come in; the port lets 198.51.100.0/24 in instead.
    let host = policy("10.0.0.0/8", "");
    let Some(mut h) = world("policy_own", UPLINK_INGRESS, BACKEND_POLICY_OWN, &host) else {
        return;
    };
    let own = policy("198.51.100.0/24", "");
    h.add_policy(&own.entries(port_scope(&port_key(IPPROTO_TCP)), true));
    assert!(admitted(&h, [198, 51, 100, 9]));
    assert!(
        !admitted(&h, [10, 1, 2, 3]),
        "the host-wide allowlist does not apply"
    );
}

#[test]
fn a_container_reaching_the_port_through_the_host_is_refused_back_into_itself() {
    let host = policy("192.0.2.0/24", "");
    let Some(mut h) = world(
        "policy_hairpin",
        ENDPOINT_INGRESS,
        BACKEND_POLICY_HOST,
        &host,
    ) else {
        return;
    };
    h.set_endpoint(TEST_RUN_IFINDEX, endpoint_on(OTHER_IP, OTHER_MAC, NET_ID));
    let packet = tcp(OTHER_IP, HOST_IP, CLIENT_PORT, PORT, 1000, 0, SYN);
    let (verdict, out) = h.run_out(
        ENDPOINT_INGRESS,
        &ethernet(GATEWAY_MAC, OTHER_MAC, ETH_P_IP, &packet),
    );
    assert_eq!(verdict, TC_ACT_REDIRECT, "back into the container's port");
    assert_reset(&out, OTHER_IP, (OTHER_MAC, GATEWAY_MAC));
    assert!(h.nat_entries().is_empty());
}

#[test]
fn an_explain_probe_of_a_refused_client_shows_the_drop() {
    let host = policy("10.0.0.0/8", "");
    let Some(h) = world("policy_probe", UPLINK_INGRESS, BACKEND_POLICY_HOST, &host) else {
        return;
    };
    let (verdict, _) = h.run_probe(UPLINK_INGRESS, &syn_from([203, 0, 113, 7]));
    assert_eq!(verdict, TC_ACT_SHOT);
    assert_eq!(
        h.drops(DropReason::PublishPolicy),
        0,
        "probes are not counted"
    );
}

/// A small deterministic generator (xorshift), so that a failure repeats.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn the_kernels_lookup_agrees_with_the_daemons_decision_among_100000_prefixes() {
    // Nested allow and deny prefixes of every length from 8 to 32, 100,000 in all.
    let mut seed = 0x6e65_7464_u64;
    let (mut allow, mut deny) = (vec![], vec![]);
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 100_000 {
        let r = next(&mut seed);
        let len = 8 + (r % 25) as u8;
        let addr = std::net::Ipv4Addr::from((r >> 32) as u32);
        let net = ipnet::Ipv4Net::new(addr, len).unwrap().trunc();
        if !seen.insert(net) {
            continue;
        }
        match (r >> 8) % 3 {
            0 => deny.push(net.into()),
            _ => allow.push(net.into()),
        }
    }
    let host = Policy::new(allow, deny, "test").unwrap();
    let Some(h) = world("policy_lookup", UPLINK_INGRESS, BACKEND_POLICY_HOST, &host) else {
        return;
    };
    let (mut yes, mut no) = (0, 0);
    for i in 0..400 {
        let r = next(&mut seed);
        // Half the clients inside a chosen prefix, half anywhere.
        let client = match i % 2 {
            0 => {
                let net = seen.iter().nth((r % 1000) as usize).unwrap();
                let host_bits = 32 - u32::from(net.prefix_len());
                let offset = ((r >> 32) as u32).checked_shr(32 - host_bits).unwrap_or(0);
                (u32::from(net.network()) | offset).to_be_bytes()
            }
            _ => ((r >> 16) as u32).to_be_bytes(),
        };
        if client[0] == 0 || client[0] >= 224 || client[0] == 127 {
            continue;
        }
        let want = host.decide(std::net::IpAddr::from(client)) == Action::Allow;
        assert_eq!(admitted(&h, client), want, "client {client:?}");
        if want {
            yes += 1;
        } else {
            no += 1;
        }
    }
    assert!(
        yes > 20 && no > 20,
        "both decisions exercised: {yes} allowed, {no} refused"
    );
}
