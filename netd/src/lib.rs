//! netd: Docker-style container networking with an eBPF datapath.
pub mod datapath;
pub mod api;
pub mod cli;
pub mod ipam;
pub mod netlink;
pub mod netns;
pub mod state;
pub mod daemon;
pub mod client;
