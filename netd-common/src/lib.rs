//! Types shared by the eBPF programs (`netd-ebpf`) and the daemon (`netd`).
//!
//! Everything here is `#[repr(C)]`, `Copy` and free of implicit padding so that the same bytes mean
//! the same thing on both sides of a BPF map. Layouts are checked at compile time. Addresses are
//! kept in network byte order as `[u8; 4]`, which is what the packet carries and what needs no
//! conversion in the kernel.
#![no_std]

// Unit tests use `std` (addresses parsed from text, `Vec`).
#[cfg(test)]
extern crate std;

use core::mem::size_of;

pub mod csum;
pub mod ipv6;
pub mod wire;

/// Pinned map names, shared so that the daemon opens exactly what the programs declare.
pub mod maps {
    /// `HashMap<u32 /* host-side ifindex */, Endpoint>`: who is plugged into each bridge port.
    pub const ENDPOINTS: &str = "NETD_ENDPOINTS";
    /// `LpmTrie<[u8; 4] /* network order */, NetworkInfo>`: every netd subnet and the network it belongs to.
    pub const NETWORKS: &str = "NETD_NETWORKS";
    /// `PerCpuArray<u64>` indexed by [`super::DropReason`]: packets dropped, per reason.
    pub const DROPS: &str = "NETD_DROPS";
    /// `HashMap<PortKey, Backend>`: published ports.
    pub const PORTS: &str = "NETD_PORTS";
    /// `HashMap<FlowKey, NatEntry>`: assured translated flows (see [`super::assures`]), one
    /// entry per direction; never evicted, emptied only by the daemon's expiry.
    pub const NAT: &str = "NETD_NAT";
    /// `LruHashMap<FlowKey, NatEntry>`: translated flows not assured yet, and closing ones; when
    /// it is full, a new flow evicts one of these, never an assured flow.
    pub const NAT_NEW: &str = "NETD_NAT_NEW";
    /// `PerCpuArray<u64>` indexed by `NAT_STAT_*`: moves between the two NAT tables.
    pub const NAT_STATS: &str = "NETD_NAT_STATS";
    /// `HashMap<u32 /* ifindex */, Uplink>`: uplink interfaces and their SNAT address.
    pub const UPLINKS: &str = "NETD_UPLINKS";
    /// `HashMap<[u8; 4], u32>`: every IPv4 address of the host namespace (value: flags, 0).
    pub const LOCAL_ADDRS: &str = "NETD_LOCAL_ADDRS";
    /// `Array<u64>` of [`super::CONFIG_LEN`] settings, indexed by `CONFIG_*`.
    pub const CONFIG: &str = "NETD_CONFIG";
    /// `LruHashMap<u64 /* socket cookie */, SockOrig>`: what host sockets asked for.
    pub const SOCK_ORIG: &str = "NETD_SOCK_ORIG";
    /// `PerCpuHashMap<DropKey, u64>`: packets dropped, per port (container or uplink) and reason.
    pub const DROPS_BY_PORT: &str = "NETD_PORT_DROPS";
    /// `RingBuf` of [`super::Event`]s, written only while someone listens.
    pub const EVENTS: &str = "NETD_EVENTS";
    /// `PerCpuArray<RateState>` of one slot: the events rate limiter.
    pub const EVENTS_RATE: &str = "NETD_EVENTS_RL";
    /// `PerCpuHashMap<PortKey, PortStats>`: traffic through each published port.
    pub const PORT_STATS: &str = "NETD_PORT_STATS";
    /// `HashMap<[u8; 4] /* network order */, Neighbor>`: the MAC of every gateway and container
    /// address, for answering containers' ARP requests without flooding the bridge.
    pub const NEIGHBORS: &str = "NETD_NEIGHBORS";
    /// `HashMap<u32 /* ifindex */, VlanPort>`: the inner end of each eBPF 802.1q sub-interface,
    /// and the trunk and VLAN its frames leave by.
    pub const VLAN_TAG: &str = "NETD_VLAN_TAG";
    /// `HashMap<VlanPort /* trunk, VLAN */, u32 /* ifindex */>`: where a trunk's tagged frames go
    /// (the inner end of their sub-interface).
    pub const VLAN_UNTAG: &str = "NETD_VLAN_UNTAG";
    /// `HashMap<MacvlanKey, Endpoint>`: the MAC of every container macvlan device, and the
    /// address a frame from it may carry.
    pub const MACVLAN: &str = "NETD_MACVLAN";
    /// `HashMap<[u8; 4] /* container address */, Tunnel>`: overlay endpoints on other hosts, and
    /// the host and VNI their frames are encapsulated to.
    pub const TUNNEL: &str = "NETD_TUNNEL";
    /// `HashMap<[u8; 4] /* container address */, OverlayPort>`: overlay endpoints on this host,
    /// where a decapsulated frame for them goes.
    pub const OVERLAY_PORTS: &str = "NETD_OVERLAY_PORTS";
    /// `PerCpuArray<u64>` indexed by `TUNNEL_STAT_*`: frames encapsulated and decapsulated.
    pub const TUNNEL_STATS: &str = "NETD_TUNNEL_STATS";
    /// `HashMap<[u8; 4] /* container address */, u32 /* ifindex */>`: the host-side veth of
    /// every container interface on this host, where packets for it are delivered straight in
    /// (`bpf_redirect_peer`), past the bridge and the host's routing.
    pub const VETHS: &str = "NETD_VETHS";
    /// `LpmTrie<PolicyPrefix, u32 /* POLICY_ALLOW or POLICY_DENY */>`: who may open a flow to
    /// a published port, per port (its [`super::PolicyScope`]) and host-wide (the zero scope).
    pub const PUBLISH_POLICY: &str = "NETD_PUBLISH_POLICY";
    /// `HashMap<u32 /* host-side ifindex */, Endpoint6>`: the IPv6 addresses of each bridge port
    /// that has IPv6 (a port without an entry has none: its IPv6 frames are dropped).
    pub const ENDPOINTS6: &str = "NETD_ENDPOINTS6";
    /// `LpmTrie<[u8; 16] /* network order */, NetworkInfo>`: every netd IPv6 subnet and the
    /// network it belongs to.
    pub const NETWORKS6: &str = "NETD_NETWORKS6";
    /// `HashMap<[u8; 16], Neighbor>`: the MAC of every gateway and container IPv6 address, for
    /// answering containers' neighbour solicitations without flooding the bridge.
    pub const NEIGHBORS6: &str = "NETD_NEIGHBORS6";
    /// `HashMap<[u8; 16] /* container address */, u32 /* ifindex */>`: the host-side veth of
    /// every container IPv6 address on this host (`bpf_redirect_peer`, as [`VETHS`]).
    pub const VETHS6: &str = "NETD_VETHS6";
    /// `ProgramArray`: the programs the endpoint program tail-calls, at the `PROG_*` indexes.
    pub const PROGS: &str = "NETD_PROGS";
}

/// Where frames for an overlay endpoint on another host go: that host's underlay address and
/// the network's VNI. `net_id` is the overlay network's id on this host (for isolation); `mac`
/// is the endpoint's, which the ARP responder answers with (the map is the daemon's record of
/// the other hosts' endpoints across its restarts).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel {
    /// The remote host's underlay IPv4 address, network byte order.
    pub host: [u8; 4],
    pub vni: u32,
    pub net_id: u32,
    pub mac: [u8; 6],
    /// Explicit padding; always zero.
    pub _pad: [u8; 2],
}
const _: () = assert!(size_of::<Tunnel>() == 20);

/// An overlay endpoint on this host: the host side of its veth (a decapsulated frame goes to
/// its peer), the VNI of its network (frames of other VNIs are refused) and its MAC.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverlayPort {
    pub ifindex: u32,
    pub vni: u32,
    pub mac: [u8; 6],
    /// Explicit padding; always zero.
    pub _pad: [u8; 2],
}
const _: () = assert!(size_of::<OverlayPort>() == 16);

/// Maximum number of overlay endpoints on other hosts the tunnel map holds.
pub const MAX_TUNNELS: u32 = 65536;

/// Counters of [`maps::TUNNEL_STATS`].
pub const TUNNEL_STAT_ENCAP: u32 = 0;
pub const TUNNEL_STAT_DECAP: u32 = 1;
/// Packets too big for the tunnel answered with ICMP "fragmentation needed" (they had DF set).
pub const TUNNEL_STAT_TOO_BIG: u32 = 2;
/// Packets too big for the tunnel without DF, handed to the kernel's VXLAN device, which
/// fragments the outer packet.
pub const TUNNEL_STAT_FRAGMENTED: u32 = 3;
pub const TUNNEL_STATS_LEN: u32 = 4;

/// The VXLAN UDP port (IANA), as Docker's overlay and flannel use.
pub const VXLAN_PORT: u16 = 4789;
/// What VXLAN adds to a frame on an IPv4 underlay: outer IPv4 (20), UDP (8), VXLAN (8) and the
/// inner Ethernet header (14). An overlay container's MTU is the underlay's minus this.
pub const VXLAN_OVERHEAD: u32 = 50;

/// A container's macvlan device, by the MAC netd gave it (unique on a host: it is made of the
/// device's IPv4 address, and macvlan subnets do not overlap).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacvlanKey {
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}
const _: () = assert!(size_of::<MacvlanKey>() == 8);

/// Maximum number of eBPF 802.1q sub-interfaces.
pub const MAX_VLANS: u32 = 4096;

/// A trunk interface and a VLAN on it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VlanPort {
    pub trunk: u32,
    pub vid: u16,
    pub _pad: u16,
}
const _: () = assert!(size_of::<VlanPort>() == 8);

/// Maximum number of container endpoints (bridge ports) the maps hold.
pub const MAX_ENDPOINTS: u32 = 16384;
/// Maximum number of networks the maps hold.
pub const MAX_NETWORKS: u32 = 1024;
/// Maximum number of addresses the ARP responder answers for: one per endpoint and gateway.
pub const MAX_NEIGHBORS: u32 = MAX_ENDPOINTS + MAX_NETWORKS;
/// Maximum number of published ports: every port of both protocols on every address, twice.
pub const MAX_PORTS: u32 = 262144;
/// Default size of each NAT table, assured and new (entries, two per flow); the daemon may
/// override it.
pub const DEFAULT_NAT_ENTRIES: u32 = 262144;
/// Maximum number of uplinks and of host addresses.
pub const MAX_UPLINKS: u32 = 64;
pub const MAX_LOCAL_ADDRS: u32 = 4096;

/// Ports handed out for egress SNAT (Linux's default ephemeral range).
pub const SNAT_PORT_MIN: u16 = 32768;
pub const SNAT_PORT_MAX: u16 = 60999;
/// How many ports SNAT tries before it gives up on a new flow.
pub const SNAT_RETRIES: u32 = 16;

/// IP protocol numbers the datapath translates.
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
/// The IPv6 next header of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;

/// Where in [`maps::PROGS`] the IPv6 half of the endpoint program is: a program of its own,
/// tail-called, so that each family's path has the whole BPF stack and its own registers.
pub const PROG_ENDPOINT6: u32 = 0;
/// How many programs [`maps::PROGS`] holds.
pub const PROGS_LEN: u32 = 1;

/// Where a NAT entry applies (part of its key, so one tuple can mean different things at
/// different hooks).
pub const ZONE_UPLINK_IN: u8 = 0;
pub const ZONE_UPLINK_OUT: u8 = 1;
pub const ZONE_ENDPOINT: u8 = 2;

/// One direction of a flow as the packet carries it when it reaches the hook of `zone`.
/// Ports are network byte order; for ICMP echo both are the echo identifier.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    pub sport_be: u16,
    pub dport_be: u16,
    pub proto: u8,
    pub zone: u8,
    pub _pad: [u8; 2],
}
const _: () = assert!(size_of::<FlowKey>() == 16);

/// What a NAT entry does.
pub const NAT_KIND_DNAT: u8 = 1;
pub const NAT_KIND_SNAT: u8 = 2;
/// A container reaching a published port through a host address.
pub const NAT_KIND_HAIRPIN: u8 = 3;

/// Deliver the rewritten packet straight into the container behind the host-side port
/// `redirect_ifindex` (`bpf_redirect_peer`), skipping the bridge and the host stack: a
/// published-port flow from an uplink (faster than routing), or a hairpin flow (the host stack
/// would drop a packet whose source is one of its own addresses).
pub const NAT_FLAG_REDIRECT: u8 = 1 << 0;
/// This entry is the reply direction of its flow.
pub const NAT_FLAG_REPLY: u8 = 1 << 1;
/// The reply of a published-port flow: the container's port translates it and sends it straight
/// out of the uplink `redirect_ifindex` the flow came in on (`bpf_redirect_neigh`: the kernel
/// picks the next hop), skipping the bridge and the host's routing.
pub const NAT_FLAG_NEIGH: u8 = 1 << 2;

/// TCP flags the entry has seen, for state-aware expiry.
pub const TCP_SEEN_SYN: u8 = 1 << 0;
pub const TCP_SEEN_FIN: u8 = 1 << 1;
pub const TCP_SEEN_RST: u8 = 1 << 2;
pub const TCP_SEEN_ACK: u8 = 1 << 3;

/// Counters of [`maps::NAT_STATS`]: pairs moved to the assured table, pairs moved back when
/// their flow closes, and promotions refused because the assured table was full (the flow
/// stays in the new table, evictable).
pub const NAT_STAT_PROMOTED: u32 = 0;
pub const NAT_STAT_DEMOTED: u32 = 1;
pub const NAT_STAT_ASSURED_FULL: u32 = 2;
pub const NAT_STATS_LEN: u32 = 4;

/// The key of the other direction of the flow whose entry under `key` is `entry`: the entry's
/// rewritten tuple, reversed, at the hook where that direction is looked up.
#[inline(always)]
pub fn reverse_key(key: &FlowKey, entry: &NatEntry) -> FlowKey {
    let zone = match key.zone {
        ZONE_UPLINK_IN => ZONE_UPLINK_OUT,
        ZONE_UPLINK_OUT => ZONE_UPLINK_IN,
        _ => ZONE_ENDPOINT,
    };
    FlowKey {
        saddr: entry.daddr,
        daddr: entry.saddr,
        sport_be: entry.dport_be,
        dport_be: entry.sport_be,
        proto: key.proto,
        zone,
        _pad: [0; 2],
    }
}

/// Whether a packet whose flags fold to `packet_seen` (`TCP_SEEN_*`), having matched `this`
/// (already counted), may make its flow assured: the cheap half of [`assures`], which needs no
/// look-up of the other direction. TCP: the opener's pure ACK (no SYN, FIN or RST) on a flow
/// not closing in this direction. UDP and ICMP: any packet of the reply direction.
#[inline(always)]
pub fn may_assure(proto: u8, packet_seen: u8, this: &NatEntry) -> bool {
    let forward = this.flags & NAT_FLAG_REPLY == 0;
    match proto {
        IPPROTO_TCP => forward && packet_seen == TCP_SEEN_ACK && this.tcp_seen & TCP_CLOSING == 0,
        _ => !forward,
    }
}

/// Whether the flow is assured (as Linux conntrack's `IPS_ASSURED`) once a packet that
/// [`may_assure`] matched `this`, `other` being the entry of the other direction. TCP: the
/// handshake completed (the reply direction has seen SYN and ACK, this ACK is the opener's
/// third) and neither direction is closing. UDP and ICMP: traffic has been seen both ways.
#[inline(always)]
pub fn assures(proto: u8, packet_seen: u8, this: &NatEntry, other: &NatEntry) -> bool {
    if !may_assure(proto, packet_seen, this) {
        return false;
    }
    match proto {
        IPPROTO_TCP => {
            other.tcp_seen & (TCP_SEEN_SYN | TCP_SEEN_ACK) == TCP_SEEN_SYN | TCP_SEEN_ACK
                && other.tcp_seen & TCP_CLOSING == 0
        }
        _ => this.packets > 0 && other.packets > 0,
    }
}

/// Whether a packet whose flags fold to `packet_seen` closes an assured flow (FIN or RST): its
/// pair goes back to the new table, where closing flows are evictable.
#[inline(always)]
pub fn closes(proto: u8, packet_seen: u8) -> bool {
    proto == IPPROTO_TCP && packet_seen & TCP_CLOSING != 0
}

/// `TCP_SEEN_*` bits of a closing connection.
pub const TCP_CLOSING: u8 = TCP_SEEN_FIN | TCP_SEEN_RST;

/// The tuple a matching packet is rewritten to, and the flow's bookkeeping.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatEntry {
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    pub sport_be: u16,
    pub dport_be: u16,
    /// `NAT_KIND_*`.
    pub kind: u8,
    /// `NAT_FLAG_*`.
    pub flags: u8,
    /// `TCP_SEEN_*`, or-ed over the packets of this direction.
    pub tcp_seen: u8,
    pub _pad: u8,
    /// With `NAT_FLAG_REDIRECT`: the host-side port of the container to deliver to, and the
    /// container's MAC, put in the destination. With `NAT_FLAG_NEIGH`: the uplink to leave by.
    pub redirect_ifindex: u32,
    pub dst_mac: [u8; 6],
    pub _pad2: [u8; 2],
    /// `bpf_ktime_get_ns` when the flow was created and when a packet last matched.
    pub created_ns: u64,
    pub last_ns: u64,
    pub packets: u64,
    pub bytes: u64,
}
const _: () = assert!(size_of::<NatEntry>() == 64);

/// A published port: protocol, host address (0.0.0.0 for every host address) and port.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortKey {
    pub addr: [u8; 4],
    pub port_be: u16,
    pub proto: u8,
    pub _pad: u8,
}
const _: () = assert!(size_of::<PortKey>() == 8);

/// Where a published port leads.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend {
    pub addr: [u8; 4],
    pub port_be: u16,
    /// `BACKEND_POLICY_*`: whose allowlist decides who may open a flow to the port.
    pub policy: u16,
    /// Host-side veth of the container, and its MAC (for hairpin redirects).
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub _pad2: [u8; 2],
    /// Gateway of the container's network: the source a container reaching its own published
    /// port is translated to.
    pub gateway: [u8; 4],
}
const _: () = assert!(size_of::<Backend>() == 24);

/// [`Backend::policy`]: the host-wide policy decides (the zero scope of
/// [`maps::PUBLISH_POLICY`]).
pub const BACKEND_POLICY_HOST: u16 = 0;
/// [`Backend::policy`]: the port has an allowlist of its own, under its [`PolicyScope`].
pub const BACKEND_POLICY_OWN: u16 = 1;

/// Values of [`maps::PUBLISH_POLICY`]: what the longest matching prefix says.
pub const POLICY_ALLOW: u32 = 1;
pub const POLICY_DENY: u32 = 2;
/// Most prefixes the policy trie holds, every port's and the host-wide ones together.
pub const MAX_POLICY_PREFIXES: u32 = 262144;

/// Whose policy a prefix belongs to: one published port (its protocol, port and host address,
/// as its [`PortKey`] says), or, all zero, the host-wide policy. Addresses are 16 bytes, IPv4
/// ones IPv4-mapped (`::ffff:a.b.c.d`), so that IPv6 ports and clients need no new layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyScope {
    pub proto: u8,
    pub _pad: u8,
    pub port_be: u16,
    pub addr: [u8; 16],
}
const _: () = assert!(size_of::<PolicyScope>() == 20);

/// The data of a policy trie key: the scope, then the client's address (16 bytes, IPv4
/// mapped). A prefix of [`POLICY_SCOPE_BITS`] bits is the scope's default (what a client no
/// other prefix matches gets); a client prefix of `n` bits is `POLICY_SCOPE_BITS + n` (IPv4:
/// `+ 96`) bits long. One lookup with every bit decides.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyPrefix {
    pub scope: PolicyScope,
    pub client: [u8; 16],
}
const _: () = assert!(size_of::<PolicyPrefix>() == 36);

/// Bits of the scope at the front of every policy prefix.
pub const POLICY_SCOPE_BITS: u32 = 8 * size_of::<PolicyScope>() as u32;
/// Bits of a whole policy key: the prefix length of a lookup.
pub const POLICY_KEY_BITS: u32 = 8 * size_of::<PolicyPrefix>() as u32;
/// Bits in front of an IPv4 address mapped into IPv6 (`::ffff:0:0/96`).
pub const V4_MAPPED_BITS: u32 = 96;

/// `addr` as an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
#[inline(always)]
pub const fn v4_mapped(addr: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, addr[0], addr[1], addr[2], addr[3],
    ]
}

/// The scope of the published port `port`'s own allowlist.
#[inline(always)]
pub const fn port_scope(port: &PortKey) -> PolicyScope {
    PolicyScope {
        proto: port.proto,
        _pad: 0,
        port_be: port.port_be,
        addr: v4_mapped(port.addr),
    }
}

/// The scope that decides for a flow to the published port `port` leading to `backend`.
#[inline(always)]
pub const fn scope_of(port: &PortKey, backend: &Backend) -> PolicyScope {
    match backend.policy {
        BACKEND_POLICY_OWN => port_scope(port),
        _ => PolicyScope {
            proto: 0,
            _pad: 0,
            port_be: 0,
            addr: [0; 16],
        },
    }
}

/// `skb->mark` of the synthetic packets `netd explain` runs through the programs: they decide
/// and rewrite as usual but write no map (no flow is created, nothing is counted).
pub const EXPLAIN_MARK: u32 = 0x6e65_7464;

/// Settings of the datapath, indices of [`maps::CONFIG`].
pub const CONFIG_NETNS_COOKIE: u32 = 0;
/// `EVENTS_*` bits: which events the programs write to the ring buffer (0: none).
pub const CONFIG_EVENTS: u32 = 1;
/// Events per second and CPU at most (0: the default, [`DEFAULT_EVENTS_RATE`]).
pub const CONFIG_EVENTS_RATE: u32 = 2;
/// Written by the programs for an explain probe they drop: the [`DropReason`] index plus one.
pub const CONFIG_PROBE_DROP: u32 = 3;
/// Non-zero: the programs log what they drop through aya-log (`netd daemon --debug-bpf`).
pub const CONFIG_DEBUG: u32 = 4;
/// The ifindex of the host's VXLAN device (0: no overlay; frames for remote endpoints drop).
pub const CONFIG_VXLAN_IFINDEX: u32 = 5;
/// The ifindex of the underlay device, the one with this host's advertised address: the
/// programs encapsulate overlay frames themselves and send them out of it, and its ingress
/// program takes the tunnel's frames off before the host stack (0: no overlay).
pub const CONFIG_UNDERLAY_IFINDEX: u32 = 6;
/// This host's advertised underlay IPv4 address, `u32::from_be_bytes` of its octets: the outer
/// source of encapsulated frames, and the destination the underlay program decapsulates.
pub const CONFIG_UNDERLAY_ADDR: u32 = 7;
pub const CONFIG_LEN: u32 = 8;

/// Write an event for every dropped packet.
pub const EVENTS_DROPS: u64 = 1 << 0;
/// Write an event for every new translated flow.
pub const EVENTS_FLOWS: u64 = 1 << 1;
/// Low enough that a watcher costs the datapath and the daemon little (the bench measures it).
pub const DEFAULT_EVENTS_RATE: u64 = 100;

/// `Event::proto` of a dropped ARP frame (its tuple holds the sender and target addresses).
pub const EVENT_PROTO_ARP: u8 = 0xfe;

/// Event kinds.
pub const EVENT_DROP: u8 = 1;
pub const EVENT_FLOW: u8 = 2;
/// A dropped IPv6 packet: an [`Event6`], not an [`Event`] (the kind sits at the same offset in
/// both, so a reader tells them apart by it).
pub const EVENT_DROP6: u8 = 3;

/// A dropped IPv6 packet (kind [`EVENT_DROP6`]): its addresses and, for TCP and UDP right
/// after the IPv6 header, its ports (network order); `proto` its next header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event6 {
    pub ts_ns: u64,
    pub ifindex: u32,
    pub kind: u8,
    pub reason: u8,
    pub proto: u8,
    pub _pad: u8,
    /// Source and destination.
    pub addrs: [[u8; 16]; 2],
    pub ports_be: [u16; 2],
    pub _pad2: [u8; 4],
}
const _: () = assert!(size_of::<Event6>() == 56);
/// Where the kind is in an [`Event`] and an [`Event6`].
pub const EVENT_KIND_OFFSET: usize = 12;
const _: () = assert!(core::mem::offset_of!(Event, kind) == EVENT_KIND_OFFSET);
const _: () = assert!(core::mem::offset_of!(Event6, kind) == EVENT_KIND_OFFSET);

/// A 4-tuple in network byte order (ports 0 when there are none).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tuple {
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    pub sport_be: u16,
    pub dport_be: u16,
}
const _: () = assert!(size_of::<Tuple>() == 12);

/// One datapath event: a dropped packet or a new translated flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// `bpf_ktime_get_ns`.
    pub ts_ns: u64,
    /// The port (host-side veth or uplink) where it happened.
    pub ifindex: u32,
    /// `EVENT_*`.
    pub kind: u8,
    /// [`DropReason`] for drops.
    pub reason: u8,
    pub proto: u8,
    /// `ZONE_*` for flows.
    pub zone: u8,
    /// The packet as it came; for flows, what it was rewritten to in `after`.
    pub before: Tuple,
    pub after: Tuple,
}
const _: () = assert!(size_of::<Event>() == 40);

/// Key of the per-port drop counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DropKey {
    pub ifindex: u32,
    pub reason: u32,
}
const _: () = assert!(size_of::<DropKey>() == 8);

/// The events rate limiter of one CPU: events written in the current second.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateState {
    pub window_ns: u64,
    pub count: u64,
    /// Events suppressed by the limit, ever.
    pub suppressed: u64,
}
const _: () = assert!(size_of::<RateState>() == 24);

/// Traffic through a published port (as the client addressed it), per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub connections: u64,
    pub packets: u64,
    pub bytes: u64,
}
const _: () = assert!(size_of::<PortStats>() == 24);

/// A host socket whose destination the connect hook translated: the address it asked for and
/// the backend it got, so that `getpeername` and `recvmsg` can show the former.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockOrig {
    pub addr: [u8; 4],
    pub port_be: u16,
    pub _pad: u16,
    pub backend_addr: [u8; 4],
    pub backend_port_be: u16,
    pub _pad2: u16,
}
const _: () = assert!(size_of::<SockOrig>() == 16);

/// An interface facing the outside: where published ports are reachable and egress is
/// translated to `addr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uplink {
    pub addr: [u8; 4],
    pub _pad: u32,
}
const _: () = assert!(size_of::<Uplink>() == 8);

/// The endpoint's network is `--internal`: nothing may leave its subnet.
pub const ENDPOINT_FLAG_INTERNAL: u32 = 1 << 0;
/// The endpoint's network is an overlay: its packets to endpoints on other hosts are
/// encapsulated ([`maps::TUNNEL`]).
pub const ENDPOINT_FLAG_OVERLAY: u32 = 1 << 1;

/// A container's interface as seen from its host-side bridge port.
///
/// The eBPF program on the port only lets frames out of the container whose source MAC and IPv4
/// address are these, and only towards its own network or beyond the host.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// IPv4 address, network byte order.
    pub addr: [u8; 4],
    /// MAC address of the container side of the veth pair.
    pub mac: [u8; 6],
    /// Explicit padding; always zero.
    pub _pad: [u8; 2],
    /// [`NetworkInfo::net_id`] of the network this endpoint belongs to.
    pub net_id: u32,
    /// `ENDPOINT_FLAG_*` bits.
    pub flags: u32,
}
const _: () = assert!(size_of::<Endpoint>() == 20);

/// The IPv6 addresses of a container's interface, as seen from its host-side bridge port (the
/// MAC, network and flags are those of its [`Endpoint`] on the same port).
///
/// The endpoint program only lets IPv6 out of the container whose source is one of these (or
/// `::` for duplicate address detection), and answers its neighbour solicitations for the
/// addresses of its network ([`maps::NEIGHBORS6`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint6 {
    /// The global (or unique local) address, network byte order.
    pub addr: [u8; 16],
    /// The link-local address, `fe80::/64` and the modified EUI-64 of the MAC
    /// ([`ipv6::link_local`]).
    pub link_local: [u8; 16],
}
const _: () = assert!(size_of::<Endpoint6>() == 32);

/// Who answers to an address on a netd network: a container's interface or a network's gateway
/// (its bridge). The endpoint program answers containers' ARP requests for these addresses
/// itself, from their own network only, so that a request never floods the bridge's ports.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbor {
    pub mac: [u8; 6],
    /// Explicit padding; always zero.
    pub _pad: [u8; 2],
    /// [`NetworkInfo::net_id`] of the network the address is on.
    pub net_id: u32,
}
const _: () = assert!(size_of::<Neighbor>() == 12);

/// Value of the subnet trie: which network an address belongs to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkInfo {
    /// Small integer that identifies the network inside the datapath (never 0).
    pub net_id: u32,
    /// Reserved for per-network flags; always zero for now.
    pub flags: u32,
}
const _: () = assert!(size_of::<NetworkInfo>() == 8);

/// Why the datapath dropped a packet. One enum for both sides: the programs count by it, the
/// daemon prints it, and nothing is kept in sync by hand.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The frame is too short or its headers do not parse.
    Malformed = 0,
    /// The bridge port has no endpoint in the map (it is being torn down or was never set up).
    UnknownEndpoint = 1,
    /// Source MAC (Ethernet or ARP sender) is not the container's own.
    SpoofedMac = 2,
    /// Source IPv4 address (IP or ARP sender) is not the container's own.
    SpoofedIp = 3,
    /// Destination belongs to a network the container is not on; at an uplink, a container
    /// address reached from outside other than through a published port.
    Isolation = 4,
    /// The container's network is `--internal` and the destination is outside its subnet.
    Internal = 5,
    /// Neither IPv4, ARP nor IPv6; IPv6 from a port without IPv6 (no [`Endpoint6`]), or behind
    /// more extension headers than the port reads.
    UnsupportedProtocol = 6,
    /// Every SNAT port tried for a new flow was taken.
    NatPortExhausted = 7,
    /// The NAT table refused a new entry.
    NatTableFull = 8,
    /// A fragment of a flow that would need translation (ports are only in the first).
    Fragment = 9,
    /// A client that the published port's policy (its own allowlist, or the host-wide one)
    /// does not let in: answered as a closed port would be (TCP RST, ICMP port unreachable).
    PublishPolicy = 10,
    /// An ICMPv6 router advertisement or redirect from a container: only the host routes.
    RouterAdvertisement = 11,
}

impl DropReason {
    /// Every reason, in counter-index order.
    pub const ALL: [DropReason; 12] = [
        DropReason::Malformed,
        DropReason::UnknownEndpoint,
        DropReason::SpoofedMac,
        DropReason::SpoofedIp,
        DropReason::Isolation,
        DropReason::Internal,
        DropReason::UnsupportedProtocol,
        DropReason::NatPortExhausted,
        DropReason::NatTableFull,
        DropReason::Fragment,
        DropReason::PublishPolicy,
        DropReason::RouterAdvertisement,
    ];
    /// Number of reasons.
    pub const COUNT: u32 = Self::ALL.len() as u32;
    /// The size of the [`maps::DROPS`] array: room for reasons to come, so that adding one
    /// does not change the pinned map's layout.
    pub const SLOTS: u32 = 32;
    const _FITS: () = assert!(Self::COUNT <= Self::SLOTS);

    /// Short name as users see it in dumps and stats.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnknownEndpoint => "unknown-endpoint",
            DropReason::SpoofedMac => "spoofed-mac",
            DropReason::SpoofedIp => "spoofed-ip",
            DropReason::Isolation => "isolation",
            DropReason::Internal => "internal-network",
            DropReason::UnsupportedProtocol => "unsupported-protocol",
            DropReason::NatPortExhausted => "nat-port-exhausted",
            DropReason::NatTableFull => "nat-table-full",
            DropReason::Fragment => "fragment",
            DropReason::PublishPolicy => "publish-policy",
            DropReason::RouterAdvertisement => "router-advertisement",
        }
    }

    /// The reason counted at `index`, if any.
    pub const fn from_index(index: u32) -> Option<DropReason> {
        if index < Self::COUNT {
            Some(Self::ALL[index as usize])
        } else {
            None
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are repr(C), Copy, have no implicit padding and accept any bit pattern.
    unsafe impl aya::Pod for super::Endpoint {}
    unsafe impl aya::Pod for super::Endpoint6 {}
    unsafe impl aya::Pod for super::NetworkInfo {}
    unsafe impl aya::Pod for super::Neighbor {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::NatEntry {}
    unsafe impl aya::Pod for super::PortKey {}
    unsafe impl aya::Pod for super::Backend {}
    unsafe impl aya::Pod for super::Uplink {}
    unsafe impl aya::Pod for super::SockOrig {}
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::VlanPort {}
    unsafe impl aya::Pod for super::MacvlanKey {}
    unsafe impl aya::Pod for super::DropKey {}
    unsafe impl aya::Pod for super::RateState {}
    unsafe impl aya::Pod for super::PortStats {}
    unsafe impl aya::Pod for super::Tunnel {}
    unsafe impl aya::Pod for super::OverlayPort {}
    unsafe impl aya::Pod for super::PolicyPrefix {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reasons_are_indexed_in_order() {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i);
            assert_eq!(DropReason::from_index(i as u32), Some(*reason));
        }
        assert_eq!(DropReason::from_index(DropReason::COUNT), None);
    }

    #[test]
    fn reasons_keep_their_counter_slots_and_have_distinct_names() {
        // Pinned counters of a running datapath are read by a newer daemon: slots never move.
        assert_eq!(DropReason::PublishPolicy as u32, 10);
        assert_eq!(DropReason::RouterAdvertisement as u32, 11);
        for (i, a) in DropReason::ALL.iter().enumerate() {
            for b in &DropReason::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }

    #[test]
    fn a_port_with_its_own_allowlist_is_decided_under_its_scope_and_others_host_wide() {
        let port = PortKey {
            addr: [10, 99, 0, 2],
            port_be: 8080u16.to_be(),
            proto: IPPROTO_TCP,
            _pad: 0,
        };
        let backend = Backend {
            addr: [172, 17, 0, 2],
            port_be: 80u16.to_be(),
            policy: BACKEND_POLICY_HOST,
            ifindex: 7,
            mac: [0; 6],
            _pad2: [0; 2],
            gateway: [172, 17, 0, 1],
        };
        assert_eq!(scope_of(&port, &backend), PolicyScope::default());
        let own = Backend {
            policy: BACKEND_POLICY_OWN,
            ..backend
        };
        let scope = scope_of(&port, &own);
        assert_eq!(scope.proto, IPPROTO_TCP);
        assert_eq!(scope.port_be.to_ne_bytes(), [0x1f, 0x90], "network order");
        assert_eq!(&scope.addr[10..], &[0xff, 0xff, 10, 99, 0, 2]);
        assert_ne!(scope, PolicyScope::default(), "never the host-wide scope");
        assert_eq!(POLICY_SCOPE_BITS, 160);
        assert_eq!(POLICY_KEY_BITS, 288);
    }

    /// The forward and reply entries of a TCP flow, with the flags each direction has seen.
    fn tcp_pair(fwd_seen: u8, rev_seen: u8) -> (NatEntry, NatEntry) {
        let fwd = NatEntry {
            saddr: [10, 99, 0, 2],
            daddr: [10, 99, 0, 1],
            sport_be: 33000u16.to_be(),
            dport_be: 80u16.to_be(),
            kind: NAT_KIND_SNAT,
            flags: 0,
            tcp_seen: fwd_seen,
            _pad: 0,
            redirect_ifindex: 0,
            dst_mac: [0; 6],
            _pad2: [0; 2],
            created_ns: 0,
            last_ns: 0,
            packets: 1,
            bytes: 60,
        };
        let rev = NatEntry {
            flags: NAT_FLAG_REPLY,
            tcp_seen: rev_seen,
            packets: u64::from(rev_seen != 0),
            ..fwd
        };
        (fwd, rev)
    }

    const SYN: u8 = TCP_SEEN_SYN;
    const ACK: u8 = TCP_SEEN_ACK;

    #[test]
    fn a_tcp_flow_is_assured_by_the_openers_ack_after_the_syn_ack() {
        let (fwd, rev) = tcp_pair(SYN | ACK, SYN | ACK);
        assert!(assures(IPPROTO_TCP, ACK, &fwd, &rev));
        let (fwd, unanswered) = tcp_pair(SYN | ACK, 0);
        assert!(
            !assures(IPPROTO_TCP, ACK, &fwd, &unanswered),
            "no SYN-ACK yet"
        );
        let (fwd, rev) = tcp_pair(SYN, SYN | ACK);
        assert!(!assures(IPPROTO_TCP, SYN, &fwd, &rev), "a repeated SYN");
        assert!(
            !assures(IPPROTO_TCP, SYN | ACK, &rev, &fwd),
            "the SYN-ACK itself"
        );
        let (fwd, rev) = tcp_pair(SYN | ACK, SYN | ACK);
        assert!(
            !assures(IPPROTO_TCP, ACK, &rev, &fwd),
            "the responder's ACK"
        );
    }

    #[test]
    fn a_closing_tcp_flow_is_never_assured_and_fin_or_rst_closes_one() {
        for closing in [TCP_SEEN_FIN, TCP_SEEN_RST] {
            let (fwd, rev) = tcp_pair(SYN | ACK | closing, SYN | ACK);
            assert!(!assures(IPPROTO_TCP, ACK, &fwd, &rev));
            let (fwd, rev) = tcp_pair(SYN | ACK, SYN | ACK | closing);
            assert!(!assures(IPPROTO_TCP, ACK, &fwd, &rev));
            assert!(closes(IPPROTO_TCP, ACK | closing));
        }
        assert!(!closes(IPPROTO_TCP, ACK));
        assert!(!closes(IPPROTO_UDP, TCP_SEEN_FIN), "UDP has no flags");
    }

    #[test]
    fn udp_and_icmp_flows_are_assured_by_a_reply() {
        for proto in [IPPROTO_UDP, IPPROTO_ICMP] {
            let (fwd, mut rev) = tcp_pair(0, 0);
            assert!(!assures(proto, 0, &fwd, &rev), "the opener again");
            rev.packets = 1;
            assert!(assures(proto, 0, &rev, &fwd));
        }
    }

    #[test]
    fn the_reverse_of_the_reverse_key_is_the_key() {
        let (fwd, rev) = tcp_pair(0, 0);
        let key = FlowKey {
            saddr: [172, 17, 0, 2],
            daddr: [10, 99, 0, 1],
            sport_be: 40000u16.to_be(),
            dport_be: 80u16.to_be(),
            proto: IPPROTO_TCP,
            zone: ZONE_UPLINK_OUT,
            _pad: [0; 2],
        };
        let back = reverse_key(&key, &fwd);
        assert_eq!(back.zone, ZONE_UPLINK_IN);
        assert_eq!((back.saddr, back.dport_be), (fwd.daddr, fwd.sport_be));
        let rev = NatEntry {
            saddr: key.daddr,
            daddr: key.saddr,
            sport_be: key.dport_be,
            dport_be: key.sport_be,
            ..rev
        };
        assert_eq!(reverse_key(&back, &rev), key);
    }
}
