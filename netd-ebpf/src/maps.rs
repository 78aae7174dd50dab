//! Maps shared with the daemon. Names come from `netd_common::maps`; every map is pinned by name
//! so that a restarted daemon and the programs it left attached keep using the same ones.
use aya_ebpf::{
    macros::map,
    maps::{lpm_trie::Key, HashMap, LpmTrie, PerCpuArray},
};
use netd_common::{DropReason, Endpoint, NetworkInfo, MAX_ENDPOINTS, MAX_NETWORKS};

/// Host-side veth ifindex -> the container endpoint behind it.
#[map(name = "NETD_ENDPOINTS")]
pub static NETD_ENDPOINTS: HashMap<u32, Endpoint> = HashMap::pinned(MAX_ENDPOINTS, 0);

/// Every netd subnet (network byte order) -> the network it belongs to.
#[map(name = "NETD_NETWORKS")]
pub static NETD_NETWORKS: LpmTrie<[u8; 4], NetworkInfo> = LpmTrie::pinned(MAX_NETWORKS, 0);

/// Dropped packets per [`DropReason`], per CPU.
#[map(name = "NETD_DROPS")]
pub static NETD_DROPS: PerCpuArray<u64> = PerCpuArray::pinned(DropReason::COUNT, 0);

/// The network `addr` belongs to, if it is inside a netd subnet.
#[inline(always)]
pub fn network_of(addr: [u8; 4]) -> Option<u32> {
    NETD_NETWORKS
        .get(Key::new(32, addr))
        .map(|info| info.net_id)
}

/// Counts one packet dropped for `reason`.
#[inline(always)]
pub fn count_drop(reason: DropReason) {
    if let Some(counter) = NETD_DROPS.get_ptr_mut(reason as u32) {
        // SAFETY: per-CPU slot, nothing else on this CPU writes it while we run.
        unsafe { *counter += 1 };
    }
}
