//! An undo log: every kernel-side step of a request records how to take it back, so that a
//! request that fails half-way leaves nothing behind.
use std::path::PathBuf;

use super::Daemon;
use crate::netns;

/// One step to take back.
#[derive(Debug)]
pub enum Step {
    DeleteLink(String),
    /// An eBPF 802.1q sub-interface's programs and map entries.
    DetachVlan {
        trunk: String,
        trunk_index: u32,
        inner: String,
        inner_index: u32,
        vid: u16,
    },
    /// A macvlan device's anti-spoofing entry and link pin.
    ForgetMacvlan(netd_common::Endpoint, String),
    /// A device inside a container's namespace (namespace path, device name).
    DeleteLinkIn(PathBuf, String),
    RemoveNetns(PathBuf),
    ForgetEndpoint(u32),
    /// A port's IPv6 entries (host-side ifindex, the container's IPv6 address).
    ForgetEndpoint6(u32, std::net::Ipv6Addr),
    /// A container address pinned on a bridge (bridge index, address).
    UnpinNeighbor(u32, std::net::IpAddr),
    /// A network's subnet and gateway entries (subnet, gateway address).
    ForgetNetwork(ipnet::Ipv4Net, std::net::Ipv4Addr),
    /// A dual-stack network's IPv6 subnet and gateway entries.
    ForgetNetwork6(ipnet::Ipv6Net, std::net::Ipv6Addr),
    /// An overlay endpoint's decapsulation entry (its address).
    ForgetOverlayPort(std::net::Ipv4Addr),
    /// An address claimed in the cluster store (network ID, address).
    ReleaseAddress(String, std::net::IpAddr),
}

#[derive(Debug, Default)]
pub struct Undo(Vec<Step>);

impl Undo {
    pub fn push(&mut self, step: Step) {
        self.0.push(step);
    }

    /// Forgets the steps: the request succeeded.
    pub fn commit(mut self) {
        self.0.clear();
    }

    /// Takes every step back, newest first, going on past errors; returns them.
    pub async fn rollback(mut self, daemon: &mut Daemon) -> Vec<String> {
        let mut errors = vec![];
        while let Some(step) = self.0.pop() {
            match step {
                Step::DeleteLink(name) => {
                    if let Err(e) = daemon.nl.delete_link(&name).await {
                        errors.push(e.to_string());
                    }
                }
                Step::DeleteLinkIn(netns, name) => {
                    if let Err(e) = super::drivers::delete_inside(&netns, &name).await {
                        errors.push(e.to_string());
                    }
                }
                Step::DetachVlan {
                    trunk,
                    trunk_index,
                    inner,
                    inner_index,
                    vid,
                } => {
                    let soft = crate::datapath::SoftVlan {
                        trunk: (&trunk, trunk_index),
                        inner: (&inner, inner_index),
                        vid,
                    };
                    errors.extend(daemon.dp.detach_vlan(soft).iter().map(ToString::to_string));
                }
                Step::ForgetMacvlan(ep, pin) => {
                    errors.extend(
                        daemon
                            .dp
                            .forget_macvlan(&ep, &pin)
                            .iter()
                            .map(ToString::to_string),
                    );
                }
                Step::RemoveNetns(path) => {
                    if let Err(e) = netns::remove(&path) {
                        errors.push(e.to_string());
                    }
                }
                Step::ForgetNetwork(subnet, gateway) => {
                    errors.extend(
                        daemon
                            .dp
                            .forget_network(subnet, gateway)
                            .into_iter()
                            .map(|e| e.to_string()),
                    );
                }
                Step::ForgetNetwork6(subnet, gateway) => {
                    errors.extend(
                        daemon
                            .dp
                            .forget_network6(subnet, gateway)
                            .into_iter()
                            .map(|e| e.to_string()),
                    );
                }
                Step::ForgetEndpoint6(index, ip) => {
                    if let Err(e) = daemon.dp.forget_endpoint6(index, ip) {
                        errors.push(e.to_string());
                    }
                }
                Step::UnpinNeighbor(bridge, ip) => {
                    if let Err(e) = daemon.nl.unpin_neighbor(bridge, ip).await {
                        errors.push(e.to_string());
                    }
                }
                Step::ForgetOverlayPort(ip) => {
                    let diff = crate::datapath::plan::MapDiff {
                        upsert: vec![],
                        remove: vec![ip.octets()],
                    };
                    if let Err(e) = daemon.dp.apply_overlay_ports(diff) {
                        errors.push(e.to_string());
                    }
                }
                Step::ReleaseAddress(network, ip) => {
                    if let Some(cluster) = &daemon.cluster {
                        if let Err(e) = cluster.release(&network, ip).await {
                            errors.push(e.to_string());
                        }
                    }
                }
                Step::ForgetEndpoint(ifindex) => {
                    if let Err(e) = daemon.dp.forget_endpoint(ifindex) {
                        errors.push(e.to_string());
                    }
                }
            }
        }
        errors
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            tracing::error!(steps = ?self.0, "undo log dropped without commit or rollback");
        }
    }
}
