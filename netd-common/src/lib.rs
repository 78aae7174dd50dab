//! Types shared by the eBPF programs (`netd-ebpf`) and the daemon (`netd`).
//!
//! Everything here is `#[repr(C)]`, `Copy` and free of implicit padding so that the same bytes mean
//! the same thing on both sides of a BPF map. Layouts are checked at compile time. Addresses are
//! kept in network byte order as `[u8; 4]`, which is what the packet carries and what needs no
//! conversion in the kernel.
#![no_std]

use core::mem::size_of;

/// Pinned map names, shared so that the daemon opens exactly what the programs declare.
pub mod maps {
    /// `HashMap<u32 /* host-side ifindex */, Endpoint>`: who is plugged into each bridge port.
    pub const ENDPOINTS: &str = "NETD_ENDPOINTS";
    /// `LpmTrie<[u8; 4] /* network order */, NetworkInfo>`: every netd subnet and the network it belongs to.
    pub const NETWORKS: &str = "NETD_NETWORKS";
    /// `PerCpuArray<u64>` indexed by [`super::DropReason`]: packets dropped, per reason.
    pub const DROPS: &str = "NETD_DROPS";
}

/// Maximum number of container endpoints (bridge ports) the maps hold.
pub const MAX_ENDPOINTS: u32 = 16384;
/// Maximum number of networks the maps hold.
pub const MAX_NETWORKS: u32 = 1024;

/// The endpoint's network is `--internal`: nothing may leave its subnet.
pub const ENDPOINT_FLAG_INTERNAL: u32 = 1 << 0;

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
    /// Destination belongs to a network the container is not on.
    Isolation = 4,
    /// The container's network is `--internal` and the destination is outside its subnet.
    Internal = 5,
    /// Neither IPv4 nor ARP (netd networks are IPv4 only).
    UnsupportedProtocol = 6,
}

impl DropReason {
    /// Every reason, in counter-index order.
    pub const ALL: [DropReason; 7] = [
        DropReason::Malformed,
        DropReason::UnknownEndpoint,
        DropReason::SpoofedMac,
        DropReason::SpoofedIp,
        DropReason::Isolation,
        DropReason::Internal,
        DropReason::UnsupportedProtocol,
    ];
    /// Number of reasons: the size of the [`maps::DROPS`] array.
    pub const COUNT: u32 = Self::ALL.len() as u32;

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
    // SAFETY: both are repr(C), Copy, have no implicit padding and accept any bit pattern.
    unsafe impl aya::Pod for super::Endpoint {}
    unsafe impl aya::Pod for super::NetworkInfo {}
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
}
