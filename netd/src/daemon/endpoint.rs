//! Plugging a container into a network and unplugging it: a veth pair with the host end on the
//! network's bridge and `ethN` inside, an address from IPAM, a Docker-style MAC (`02:42` and the
//! IPv4 bytes), the default route via the gateway, and the endpoint program on the host end.
//!
//! The container's address is pinned to its MAC on the bridge (a permanent neighbour entry): the
//! endpoint program answers the containers' ARP requests itself, so the host never learns their
//! MACs from them, and it must not flood the bridge to ask either (with a thousand ports, the
//! answer would be lost behind the copies of the question).
//!
//! The host end comes up last, after its map entry and program are in place, so no frame from
//! the container ever reaches the bridge unchecked.
use std::{net::Ipv4Addr, path::Path};

use super::{
    error::{conflict, invalid, OpResult},
    undo::{Step, Undo},
    Daemon,
};
use crate::{
    datapath::plan,
    ipam,
    netlink::{Netlink, VethPeer},
    state::{Attachment, EndpointState, Network},
};

/// A host-side veth name that is not taken: `veth` and seven hex digits.
fn veth_name() -> String {
    format!("veth{:07x}", rand::random::<u32>() & 0x0fff_ffff)
}

impl Daemon {
    /// The address for `attachment`: the requested one if free, else the next free one.
    fn address_for(&self, network: &Network, attachment: &Attachment) -> OpResult<Ipv4Addr> {
        let in_use = self.state.addresses_in_use(&network.name);
        match attachment.ip {
            Some(ip) => {
                network.pool().check_static(ip, &in_use)?;
                Ok(ip)
            }
            None => {
                let cursor = self.cursors.get(&network.name).copied();
                let after = cursor.unwrap_or(network.gateway);
                Ok(network.pool().allocate(&in_use, after)?)
            }
        }
    }

    /// Wires one endpoint into the namespace at `netns` (`inside` is a connection there) as
    /// `ifname`, recording every step in `undo`. Returns the endpoint; the caller records it in
    /// the state.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn plug(
        &mut self,
        container_id: &str,
        netns: &Path,
        inside: &Netlink,
        attachment: &Attachment,
        ifname: &str,
        default_route: bool,
        undo: &mut Undo,
    ) -> OpResult<EndpointState> {
        let network = self.network(&attachment.network)?.clone();
        let ip = self.address_for(&network, attachment)?;
        let mac = ipam::mac_for(ip);
        let bridge = self.nl.require_link(&network.bridge).await?;
        let peer = VethPeer {
            name: ifname,
            mac,
            netns,
        };
        let owner = format!("container:{container_id}");
        let (host_veth, host_index) = self.create_veth_pair(&owner, bridge, &peer, undo).await?;
        configure_inside(inside, ifname, ip, &network, default_route).await?;
        let ep = EndpointState {
            network: network.name.clone(),
            ifname: ifname.into(),
            host_veth: host_veth.clone(),
            ip,
            mac,
        };
        self.dp
            .attach_endpoint(&host_veth, host_index, plan::endpoint_entry(&network, &ep))?;
        undo.push(Step::ForgetEndpoint(host_index));
        self.nl.pin_neighbor(bridge, ip, mac).await?;
        undo.push(Step::UnpinNeighbor(bridge, ip));
        self.nl.set_up(host_index).await?;
        self.cursors.insert(network.name.clone(), ip);
        Ok(ep)
    }

    /// Creates the veth pair under a free host-side name; returns the name and its index.
    async fn create_veth_pair(
        &self,
        owner: &str,
        bridge: u32,
        peer: &VethPeer<'_>,
        undo: &mut Undo,
    ) -> OpResult<(String, u32)> {
        for _ in 0..8 {
            let host = veth_name();
            match self.nl.create_veth_into(&host, owner, bridge, peer).await {
                Ok(index) => {
                    undo.push(Step::DeleteLink(host.clone()));
                    return Ok((host, index));
                }
                Err(e) if e.already_exists() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(conflict("could not find a free veth name after 8 attempts"))
    }

    /// Takes an endpoint out: its map entry, its address pinned on the bridge and the veth pair
    /// (the filter goes with it). Goes on past errors.
    pub(super) async fn unplug(&mut self, ep: &EndpointState) -> Vec<String> {
        let mut errors = vec![];
        if let Err(e) = self.unpin_neighbor(ep).await {
            errors.push(e.to_string());
        }
        match self.nl.link_index(&ep.host_veth).await {
            Ok(Some(index)) => {
                if let Err(e) = self.dp.forget_endpoint(index) {
                    errors.push(e.to_string());
                }
            }
            Ok(None) => {}
            Err(e) => errors.push(e.to_string()),
        }
        if let Err(e) = self.nl.delete_link(&ep.host_veth).await {
            errors.push(e.to_string());
        }
        errors
    }

    /// Removes the endpoint's address pinned on its network's bridge (nothing to do if the bridge
    /// is gone).
    async fn unpin_neighbor(&self, ep: &EndpointState) -> OpResult<()> {
        let Some(network) = self.state.networks.get(&ep.network) else {
            return Ok(());
        };
        if let Some(bridge) = self.nl.link_index(&network.bridge).await? {
            self.nl.unpin_neighbor(bridge, ep.ip).await?;
        }
        Ok(())
    }

    /// The lowest `ethN` the container does not use yet.
    pub(super) fn next_ifname(used: &[EndpointState]) -> String {
        (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| used.iter().all(|e| &e.ifname != n))
            .expect("unbounded")
    }

    /// Checks that `attachment` can be honoured on its network (static address rules).
    pub(super) fn check_attachment(&self, attachment: &Attachment) -> OpResult<()> {
        let network = self.network(&attachment.network)?;
        if let Some(ip) = attachment.ip {
            if !network.user_subnet {
                return Err(invalid(
                    "user specified IP address is supported only on networks created with --subnet",
                ));
            }
            network
                .pool()
                .check_static(ip, &self.state.addresses_in_use(&network.name))?;
        }
        if network.default && !attachment.aliases.is_empty() {
            return Err(invalid(
                "network-scoped aliases are supported only on user-defined networks",
            ));
        }
        Ok(())
    }
}

/// Inside the container: address, up, route.
async fn configure_inside(
    nl: &Netlink,
    ifname: &str,
    ip: Ipv4Addr,
    network: &Network,
    default_route: bool,
) -> OpResult<()> {
    let index = nl.require_link(ifname).await?;
    nl.add_address(index, ip, network.subnet.prefix_len())
        .await?;
    nl.turn_off_ipv6_addresses(index).await?;
    nl.set_up(index).await?;
    if default_route && !network.internal {
        nl.add_default_route(network.gateway).await?;
    }
    Ok(())
}
