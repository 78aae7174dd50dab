//! Maps shared with the daemon. Names come from `netd_common::maps`; every map is pinned by name
//! so that a restarted daemon and the programs it left attached keep using the same ones.
use crate::btf::{self, Pinned};
use aya_ebpf::{
    macros::{btf_map, map},
    maps::{lpm_trie::Key, PerCpuArray, ProgramArray, RingBuf},
};
use netd_common::{
    Backend, DropKey, DropReason, Endpoint, Endpoint6, FlowKey, MacvlanKey, NatEntry, Neighbor,
    NetworkInfo, OverlayPort, PolicyPrefix, PortKey, PortStats, RateState, SockOrig, Tunnel,
    Uplink, VlanPort, CONFIG_LEN, DEFAULT_NAT_ENTRIES, MAX_ENDPOINTS, MAX_LOCAL_ADDRS,
    MAX_NEIGHBORS, MAX_NETWORKS, MAX_POLICY_PREFIXES, MAX_PORTS, MAX_TUNNELS, MAX_UPLINKS,
    MAX_VLANS, NAT_STATS_LEN, TUNNEL_STATS_LEN,
};

/// Host-side veth ifindex -> the container endpoint behind it.
#[btf_map(name = "NETD_ENDPOINTS")]
pub static NETD_ENDPOINTS: Pinned<{ btf::HASH }, u32, Endpoint, { MAX_ENDPOINTS as usize }> =
    Pinned::new();

/// Container address (network byte order) -> the ifindex of its host-side veth.
#[btf_map(name = "NETD_VETHS")]
pub static NETD_VETHS: Pinned<{ btf::HASH }, [u8; 4], u32, { MAX_ENDPOINTS as usize }> =
    Pinned::new();

/// The host-side veth of the container interface with address `addr` on this host, and its
/// endpoint, while the veth still leads to that address.
#[inline(always)]
pub fn veth_of(addr: [u8; 4]) -> Option<(u32, Endpoint)> {
    // SAFETY: both copied out at once.
    let ifindex = *unsafe { NETD_VETHS.get(addr) }?;
    let ep = *unsafe { NETD_ENDPOINTS.get(ifindex) }?;
    (ep.addr == addr).then_some((ifindex, ep))
}

/// The programs the endpoint program tail-calls (`netd_common::PROG_*`), put there by the
/// daemon when it loads them.
#[map(name = "NETD_PROGS")]
pub static NETD_PROGS: ProgramArray = ProgramArray::pinned(netd_common::PROGS_LEN, 0);

/// Host-side veth ifindex -> the IPv6 addresses of the container endpoint behind it (only for
/// ports with IPv6).
#[btf_map(name = "NETD_ENDPOINTS6")]
pub static NETD_ENDPOINTS6: Pinned<{ btf::HASH }, u32, Endpoint6, { MAX_ENDPOINTS as usize }> =
    Pinned::new();

/// Container IPv6 address (network byte order) -> the ifindex of its host-side veth.
#[btf_map(name = "NETD_VETHS6")]
pub static NETD_VETHS6: Pinned<{ btf::HASH }, [u8; 16], u32, { MAX_ENDPOINTS as usize }> =
    Pinned::new();

/// Every netd IPv6 subnet (network byte order) -> the network it belongs to.
#[btf_map(name = "NETD_NETWORKS6")]
pub static NETD_NETWORKS6: Pinned<
    { btf::LPM_TRIE },
    Key<[u8; 16]>,
    NetworkInfo,
    { MAX_NETWORKS as usize },
    { btf::NO_PREALLOC },
> = Pinned::new();

/// Gateway and container IPv6 addresses (network byte order) -> their MAC, for the NDP
/// responder.
#[btf_map(name = "NETD_NEIGHBORS6")]
pub static NETD_NEIGHBORS6: Pinned<{ btf::HASH }, [u8; 16], Neighbor, { MAX_NEIGHBORS as usize }> =
    Pinned::new();

/// The network the IPv6 address `addr` belongs to, if it is inside a netd subnet.
#[inline(always)]
pub fn network6_of(addr: &[u8; 16]) -> Option<u32> {
    // SAFETY: copied out at once.
    unsafe { NETD_NETWORKS6.get(Key::new(128, *addr)) }.map(|info| info.net_id)
}

/// The host-side veth of the container interface with IPv6 address `addr` on this host, and
/// its (IPv4) endpoint for its MAC and network, while the veth still leads to that address.
#[inline(always)]
pub fn veth6_of(addr: &[u8; 16]) -> Option<(u32, Endpoint)> {
    // SAFETY: all copied out at once.
    let ifindex = *unsafe { NETD_VETHS6.get(addr) }?;
    let ep6 = unsafe { NETD_ENDPOINTS6.get(ifindex) }?;
    if ep6.addr != *addr {
        return None;
    }
    let ep = *unsafe { NETD_ENDPOINTS.get(ifindex) }?;
    Some((ifindex, ep))
}

/// Every netd subnet (network byte order) -> the network it belongs to.
#[btf_map(name = "NETD_NETWORKS")]
pub static NETD_NETWORKS: Pinned<
    { btf::LPM_TRIE },
    Key<[u8; 4]>,
    NetworkInfo,
    { MAX_NETWORKS as usize },
    { btf::NO_PREALLOC },
> = Pinned::new();

/// Gateway and container addresses (network byte order) -> their MAC, for the ARP responder.
#[btf_map(name = "NETD_NEIGHBORS")]
pub static NETD_NEIGHBORS: Pinned<{ btf::HASH }, [u8; 4], Neighbor, { MAX_NEIGHBORS as usize }> =
    Pinned::new();

/// Dropped packets per [`DropReason`], per CPU.
#[btf_map(name = "NETD_DROPS")]
pub static NETD_DROPS: Pinned<{ btf::PERCPU_ARRAY }, u32, u64, { DropReason::SLOTS as usize }> =
    Pinned::new();

/// Who may open a flow to a published port: (scope, client prefix) -> `POLICY_ALLOW` or
/// `POLICY_DENY`, the longest prefix deciding (see [`netd_common::PolicyPrefix`]). Only the
/// daemon writes it.
#[btf_map(name = "NETD_PUBLISH_POLICY")]
pub static NETD_PUBLISH_POLICY: Pinned<
    { btf::LPM_TRIE },
    Key<PolicyPrefix>,
    u32,
    { MAX_POLICY_PREFIXES as usize },
    { btf::NO_PREALLOC },
> = Pinned::new();

/// The network `addr` belongs to, if it is inside a netd subnet.
#[inline(always)]
pub fn network_of(addr: [u8; 4]) -> Option<u32> {
    // SAFETY: copied out at once.
    unsafe { NETD_NETWORKS.get(Key::new(32, addr)) }.map(|info| info.net_id)
}

/// Counts one packet dropped for `reason` at the port `ifindex`, in total and per port.
#[inline(always)]
pub fn count_drop(ifindex: u32, reason: DropReason) {
    if let Some(counter) = NETD_DROPS.get_ptr_mut(reason as u32) {
        // SAFETY: per-CPU slot, nothing else on this CPU writes it while we run.
        unsafe { *counter += 1 };
    }
    let key = DropKey {
        ifindex,
        reason: reason as u32,
    };
    match NETD_PORT_DROPS.get_ptr_mut(key) {
        // SAFETY: as above.
        Some(counter) => unsafe { *counter += 1 },
        None => {
            let _ = NETD_PORT_DROPS.insert(key, 1, 0); // the total above still counts it
        }
    }
}

/// Counts traffic through a published port; `opening` for the first packet of a connection.
#[inline(always)]
pub fn count_port(key: PortKey, bytes: u32, opening: bool) {
    match NETD_PORT_STATS.get_ptr_mut(key) {
        // SAFETY: per-CPU value, only this CPU writes it now.
        Some(stats) => unsafe {
            (*stats).packets += 1;
            (*stats).bytes += bytes as u64;
            (*stats).connections += opening as u64;
        },
        None => {
            let stats = PortStats {
                connections: opening as u64,
                packets: 1,
                bytes: bytes as u64,
            };
            let _ = NETD_PORT_STATS.insert(key, stats, 0); // statistics only
        }
    }
}

/// Per-port drop counters.
#[btf_map(name = "NETD_PORT_DROPS")]
pub static NETD_PORT_DROPS: Pinned<
    { btf::PERCPU_HASH },
    DropKey,
    u64,
    { MAX_ENDPOINTS as usize * 4 },
> = Pinned::new();

/// Traffic per published port. Not preallocated: per-CPU values for every possible port would
/// cost `MAX_PORTS` x CPUs x 16 B whether ports are published or not.
#[btf_map(name = "NETD_PORT_STATS")]
pub static NETD_PORT_STATS: Pinned<
    { btf::PERCPU_HASH },
    PortKey,
    PortStats,
    { MAX_PORTS as usize },
    { btf::NO_PREALLOC },
> = Pinned::new();

/// Events for `netd monitor`.
#[map(name = "NETD_EVENTS")]
pub static NETD_EVENTS: RingBuf = RingBuf::pinned(256 * 1024, 0);

/// The events rate limiter, one slot per CPU.
#[map(name = "NETD_EVENTS_RL")]
pub static NETD_EVENTS_RL: PerCpuArray<RateState> = PerCpuArray::pinned(1, 0);

/// Published ports: (host address or 0.0.0.0, port, protocol) -> container backend. Only the
/// daemon writes it, so it is not preallocated (its memory follows the ports published).
#[btf_map(name = "NETD_PORTS")]
pub static NETD_PORTS: Pinned<
    { btf::HASH },
    PortKey,
    Backend,
    { MAX_PORTS as usize },
    { btf::NO_PREALLOC },
> = Pinned::new();

/// Assured translated flows, one entry per direction and hook (the zone is part of the key). A
/// plain hash: a full table refuses new flows (they stay in [`NETD_NAT_NEW`]) and evicts none.
#[btf_map(name = "NETD_NAT")]
pub static NETD_NAT: Pinned<{ btf::HASH }, FlowKey, NatEntry, { DEFAULT_NAT_ENTRIES as usize }> =
    Pinned::new();

/// Translated flows not assured yet, and closing ones: the kernel's LRU evicts these, and only
/// these, when new flows need room.
#[btf_map(name = "NETD_NAT_NEW")]
pub static NETD_NAT_NEW: Pinned<
    { btf::LRU_HASH },
    FlowKey,
    NatEntry,
    { DEFAULT_NAT_ENTRIES as usize },
> = Pinned::new();

/// Moves between the NAT tables (`NAT_STAT_*`), per CPU.
#[btf_map(name = "NETD_NAT_STATS")]
pub static NETD_NAT_STATS: Pinned<{ btf::PERCPU_ARRAY }, u32, u64, { NAT_STATS_LEN as usize }> =
    Pinned::new();

/// Counts one move between the NAT tables.
#[inline(always)]
pub fn count_nat(stat: u32) {
    if let Some(counter) = NETD_NAT_STATS.get_ptr_mut(stat) {
        // SAFETY: per-CPU slot, nothing else on this CPU writes it while we run.
        unsafe { *counter += 1 };
    }
}

/// Uplink ifindex -> the address egress is translated to.
#[btf_map(name = "NETD_UPLINKS")]
pub static NETD_UPLINKS: Pinned<{ btf::HASH }, u32, Uplink, { MAX_UPLINKS as usize }> =
    Pinned::new();

/// Every IPv4 address of the host namespace: destinations a published port answers on.
#[btf_map(name = "NETD_LOCAL_ADDRS")]
pub static NETD_LOCAL_ADDRS: Pinned<{ btf::HASH }, [u8; 4], u32, { MAX_LOCAL_ADDRS as usize }> =
    Pinned::new();

/// Settings written by the daemon (`CONFIG_*`).
#[btf_map(name = "NETD_CONFIG")]
pub static NETD_CONFIG: Pinned<{ btf::ARRAY }, u32, u64, { CONFIG_LEN as usize }> = Pinned::new();

/// Host sockets whose destination was translated, by socket cookie.
#[btf_map(name = "NETD_SOCK_ORIG")]
pub static NETD_SOCK_ORIG: Pinned<{ btf::LRU_HASH }, u64, SockOrig, 65536> = Pinned::new();

/// The inner end of each eBPF 802.1q sub-interface -> its trunk and VLAN.
#[btf_map(name = "NETD_VLAN_TAG")]
pub static NETD_VLAN_TAG: Pinned<{ btf::HASH }, u32, VlanPort, { MAX_VLANS as usize }> =
    Pinned::new();

/// (trunk, VLAN) -> the inner end of its sub-interface.
#[btf_map(name = "NETD_VLAN_UNTAG")]
pub static NETD_VLAN_UNTAG: Pinned<{ btf::HASH }, VlanPort, u32, { MAX_VLANS as usize }> =
    Pinned::new();

/// Each container macvlan device -> the addresses it may send from.
#[btf_map(name = "NETD_MACVLAN")]
pub static NETD_MACVLAN: Pinned<{ btf::HASH }, MacvlanKey, Endpoint, { MAX_ENDPOINTS as usize }> =
    Pinned::new();

/// Overlay endpoints on other hosts (address, network order) -> their host and VNI.
#[btf_map(name = "NETD_TUNNEL")]
pub static NETD_TUNNEL: Pinned<{ btf::HASH }, [u8; 4], Tunnel, { MAX_TUNNELS as usize }> =
    Pinned::new();

/// Overlay endpoints on this host (address, network order) -> their port and VNI.
#[btf_map(name = "NETD_OVERLAY_PORTS")]
pub static NETD_OVERLAY_PORTS: Pinned<
    { btf::HASH },
    [u8; 4],
    OverlayPort,
    { MAX_ENDPOINTS as usize },
> = Pinned::new();

/// Frames encapsulated and decapsulated (`TUNNEL_STAT_*`), per CPU.
#[btf_map(name = "NETD_TUNNEL_STATS")]
pub static NETD_TUNNEL_STATS: Pinned<
    { btf::PERCPU_ARRAY },
    u32,
    u64,
    { TUNNEL_STATS_LEN as usize },
> = Pinned::new();

/// Counts one frame into or out of the tunnel.
#[inline(always)]
pub fn count_tunnel(stat: u32) {
    if let Some(counter) = NETD_TUNNEL_STATS.get_ptr_mut(stat) {
        // SAFETY: per-CPU slot, nothing else on this CPU writes it while we run.
        unsafe { *counter += 1 };
    }
}

/// A setting, 0 if unset.
#[inline(always)]
pub fn config(index: u32) -> u64 {
    // SAFETY: copied out at once.
    unsafe { NETD_CONFIG.get(index) }.copied().unwrap_or(0)
}

/// Tells `netd explain` why its probe was dropped.
#[inline(always)]
pub fn note_probe_drop(reason: DropReason) {
    if let Some(slot) = NETD_CONFIG.get_ptr_mut(netd_common::CONFIG_PROBE_DROP) {
        // SAFETY: a single u64 slot, written only for probes.
        unsafe { *slot = reason as u64 + 1 };
    }
}

/// Whether `addr` is one of the host's own addresses.
#[inline(always)]
pub fn is_local(addr: [u8; 4]) -> bool {
    // SAFETY: only presence is read.
    unsafe { NETD_LOCAL_ADDRS.get(addr) }.is_some()
}

/// The binding published on (`proto`, `addr`, `port_be`) and its backend: an exact binding
/// first, then one on every address (0.0.0.0). Published ports only ever answer on the host's
/// own addresses, so the common case (a packet to anything else) costs one lookup.
#[inline(always)]
pub fn published(proto: u8, addr: [u8; 4], port_be: u16) -> Option<(PortKey, Backend)> {
    if !is_local(addr) {
        return None;
    }
    let exact = PortKey {
        addr,
        port_be,
        proto,
        _pad: 0,
    };
    // SAFETY: values are copied out at once.
    if let Some(b) = unsafe { NETD_PORTS.get(exact) } {
        return Some((exact, *b));
    }
    let any = PortKey {
        addr: [0; 4],
        ..exact
    };
    unsafe { NETD_PORTS.get(any) }.map(|b| (any, *b))
}
