//! Plugging a container into a network and unplugging it: a veth pair with the host end on the
//! network's bridge and `ethN` inside, an address from IPAM, a Docker-style MAC (`02:42` and the
//! IPv4 bytes), the default route via the gateway, and the endpoint program on the host end.
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
    netlink::Netlink,
    state::{Attachment, EndpointState, Network},
};

/// Docker's MAC for an address: `02:42` followed by the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

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
            None => Ok(network.pool().allocate(&in_use, network.cursor)?),
        }
    }

    /// Wires one endpoint into the namespace at `netns` as `ifname`, recording every step in
    /// `undo`. Returns the endpoint; the caller records it in the state.
    pub(super) async fn plug(
        &mut self,
        container_id: &str,
        netns: &Path,
        attachment: &Attachment,
        ifname: &str,
        default_route: bool,
        undo: &mut Undo,
    ) -> OpResult<EndpointState> {
        let network = self.network(&attachment.network)?.clone();
        let ip = self.address_for(&network, attachment)?;
        let mac = mac_for(ip);
        let owner = format!("container:{container_id}");
        let host_veth = self.create_veth_pair(&owner, undo).await?;
        let peer = format!("{host_veth}p");
        let peer_index = self.nl.require_link(&peer).await?;
        self.nl.move_to_netns(peer_index, netns).await?;
        configure_inside(netns, &peer, ifname, mac, ip, &network, default_route).await?;
        let ep = EndpointState {
            network: network.name.clone(),
            ifname: ifname.into(),
            host_veth: host_veth.clone(),
            ip,
            mac,
        };
        let host_index = self.nl.require_link(&host_veth).await?;
        self.dp
            .attach_endpoint(&host_veth, host_index, plan::endpoint_entry(&network, &ep))?;
        undo.push(Step::Detach {
            veth: host_veth.clone(),
            ifindex: host_index,
        });
        let bridge = self.nl.require_link(&network.bridge).await?;
        self.nl.set_master(host_index, bridge).await?;
        self.nl.set_up(host_index).await?;
        if let Some(n) = self.state.networks.get_mut(&network.name) {
            n.cursor = ip;
        }
        Ok(ep)
    }

    async fn create_veth_pair(&self, owner: &str, undo: &mut Undo) -> OpResult<String> {
        for _ in 0..8 {
            let host = veth_name();
            match self.nl.create_veth(&host, &format!("{host}p"), owner).await {
                Ok(_) => {
                    undo.push(Step::DeleteLink(host.clone()));
                    return Ok(host);
                }
                Err(e) if e.already_exists() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(conflict("could not find a free veth name after 8 attempts"))
    }

    /// Takes an endpoint out: map entry, link pin and the veth pair. Goes on past errors.
    pub(super) async fn unplug(&mut self, ep: &EndpointState) -> Vec<String> {
        let index = self.nl.link_index(&ep.host_veth).await.ok().flatten();
        let mut errors: Vec<String> = self
            .dp
            .detach_endpoint(&ep.host_veth, index)
            .iter()
            .map(ToString::to_string)
            .collect();
        if let Err(e) = self.nl.delete_link(&ep.host_veth).await {
            errors.push(e.to_string());
        }
        errors
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

/// Inside the container: rename the peer, give it its MAC and address, bring it up, route.
async fn configure_inside(
    netns: &Path,
    peer: &str,
    ifname: &str,
    mac: [u8; 6],
    ip: Ipv4Addr,
    network: &Network,
    default_route: bool,
) -> OpResult<()> {
    let nl = Netlink::in_netns(netns)?;
    let index = nl.require_link(peer).await?;
    nl.rename(index, ifname, mac).await?;
    nl.add_address(index, ip, network.subnet.prefix_len())
        .await?;
    nl.set_up(index).await?;
    if default_route && !network.internal {
        nl.add_default_route(network.gateway).await?;
    }
    Ok(())
}
