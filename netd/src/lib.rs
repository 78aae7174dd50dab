//! netd: Docker-style container networking with an eBPF datapath.
pub mod datapath;
