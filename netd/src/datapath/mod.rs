//! The eBPF side seen from userspace: the embedded object, loading, pinning and map access.

/// The eBPF object built from `netd-ebpf` by `build.rs`, embedded in the binary.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netd"));
