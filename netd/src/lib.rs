//! netd: Docker-style container networking with an eBPF datapath.
pub mod api;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod cni;
pub mod daemon;
pub mod datapath;
pub mod dns;
pub mod docker;
pub mod ipam;
pub mod links;
pub mod mountns;
pub mod netlink;
pub mod netns;
pub mod policy;
pub mod ports;
pub mod state;
