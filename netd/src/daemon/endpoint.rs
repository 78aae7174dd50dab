//! Plugging a container into a network and unplugging it: the parts every driver shares (an
//! address from IPAM, a Docker-style MAC (`02:42` and the IPv4 bytes), which endpoint carries the
//! default route), then the network's driver makes the devices ([`super::drivers`]).
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{
    drivers::{self, EndpointSpec},
    error::{invalid, OpResult},
    undo::Undo,
    Daemon,
};
use crate::{
    ipam,
    netlink::Netlink,
    state::{Attachment, EndpointState, Network},
};

impl Daemon {
    /// The address for `attachment`: the requested one if free, else the lowest free one.
    fn address_for(&self, network: &Network, attachment: &Attachment) -> OpResult<Ipv4Addr> {
        let in_use = self.state.addresses_in_use(&network.name);
        match attachment.ip {
            Some(ip) => {
                network.pool().check_static(ip, &in_use)?;
                Ok(ip)
            }
            None => Ok(network.pool().allocate(&in_use)?),
        }
    }

    /// The IPv6 address for `attachment` on a dual-stack network: the requested one (`--ip6`)
    /// if free, else the lowest free one; none on an IPv4-only network, where `--ip6` is
    /// refused.
    fn address6_for(
        &self,
        network: &Network,
        attachment: &Attachment,
    ) -> OpResult<Option<Ipv6Addr>> {
        let Some(pool) = network.pool6() else {
            return match attachment.ip6 {
                Some(ip6) => Err(invalid(format!(
                    "--ip6 {ip6}: network {} has no IPv6 subnet (create it with --ipv6 and an \
                     IPv6 --subnet)",
                    network.name
                ))),
                None => Ok(None),
            };
        };
        let in_use = self.state.addresses6_in_use(&network.name);
        match attachment.ip6 {
            Some(ip6) => {
                pool.check_static(ip6, &in_use)?;
                Ok(Some(ip6))
            }
            None => Ok(Some(pool.allocate(&in_use)?)),
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
        let ip = if network.is_global() {
            self.claim_address(&network, attachment, container_id, undo)
                .await?
        } else {
            self.address_for(&network, attachment)?
        };
        let ip6 = self.address6_for(&network, attachment)?;
        let mac = ipam::mac_for(ip);
        let address = Ipv4Net::new(ip, network.subnet.prefix_len()).expect("prefix from a subnet");
        let v6 = network.ipv6;
        let address6 = ip6.zip(v6).map(|(ip6, v6)| {
            Ipv6Net::new(ip6, v6.subnet.prefix_len()).expect("prefix from a subnet")
        });
        let spec = EndpointSpec {
            container_id,
            netns,
            inside,
            ifname,
            address: IpNet::V4(address),
            mac,
            default_gateway: (default_route && !network.internal)
                .then_some(IpAddr::V4(network.gateway)),
            address6,
            default_gateway6: v6
                .filter(|_| default_route && !network.internal)
                .map(|v6| v6.gateway),
            handover: attachment.handover.as_deref(),
            beyond_bridge: drivers::bridge::beyond_bridge(&self.state, &network.name),
        };
        let mut env = drivers::Env {
            nl: &self.nl,
            dp: &mut self.dp,
        };
        let spec_beyond = spec.beyond_bridge;
        let host_veth = drivers::ops(&network.driver)
            .attach(&mut env, &network, &spec, undo)
            .await?;
        if network.is_global() {
            self.announce_endpoint(&network, container_id, attachment, ip)
                .await?;
        }
        Ok(EndpointState {
            network: network.name.clone(),
            ifname: ifname.into(),
            beyond_bridge: spec_beyond && host_veth.is_some(),
            host_veth,
            ip,
            ip6,
            mac,
        })
    }

    /// Takes an endpoint of container `container_id`, whose namespace is at `netns`, out through
    /// its network's driver. Goes on past errors.
    pub(super) async fn unplug(
        &mut self,
        container_id: &str,
        ep: &EndpointState,
        netns: &Path,
    ) -> Vec<String> {
        let Some(network) = self.state.networks.get(&ep.network).cloned() else {
            // Its network's record is gone: only its own host device is left to remove.
            let veth = ep.host_veth.as_deref().unwrap_or_default();
            return match self.nl.delete_link(veth).await {
                Err(e) if !veth.is_empty() => vec![e.to_string()],
                _ => vec![],
            };
        };
        let mut env = drivers::Env {
            nl: &self.nl,
            dp: &mut self.dp,
        };
        let mut errors = drivers::ops(&network.driver)
            .detach(
                &mut env,
                &network,
                &drivers::Placed {
                    ep,
                    container_id,
                    netns,
                },
            )
            .await;
        if network.is_global() {
            errors.extend(self.release_address(&network, ep.ip).await);
        }
        errors
    }

    /// The name `attachment` asked for, or else the lowest `ethN` that no endpoint uses and no
    /// attachment asked for.
    pub(super) fn ifname_for(
        attachment: &Attachment,
        used: &[EndpointState],
        asked: &[Attachment],
    ) -> String {
        if let Some(name) = &attachment.ifname {
            return name.clone();
        }
        (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| {
                used.iter().all(|e| &e.ifname != n)
                    && asked.iter().all(|a| a.ifname.as_ref() != Some(n))
            })
            .expect("unbounded")
    }

    /// Checks that `attachment` can be honoured on its network (static address rules).
    pub(super) fn check_attachment(&self, attachment: &Attachment) -> OpResult<()> {
        let network = self.network(&attachment.network)?;
        if let Some(name) = &attachment.ifname {
            check_ifname(name)?;
        }
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

/// A name the kernel takes for an interface: 1 to 15 bytes, no `/`, `:` or white space, not
/// `.` or `..`.
fn check_ifname(name: &str) -> OpResult<()> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if bad {
        return Err(invalid(format!("invalid interface name {name:?}")));
    }
    Ok(())
}
