//! The overlay driver: a network shared by the hosts of a cluster. On each host it is a bridge
//! network (the same gateway address and MAC everywhere, so a container finds its gateway on
//! whichever host it runs), with container interfaces `VXLAN_OVERHEAD` bytes short of the
//! underlay's MTU; between hosts, the endpoint program sends frames for other hosts' endpoints
//! into the VXLAN tunnel and the underlay program delivers the other hosts' frames straight into
//! their container ([`crate::datapath`]'s tunnel). The network's record, its addresses and the
//! other hosts' endpoints come from the cluster store ([`crate::cluster`]).
use async_trait::async_trait;

use netd_common::VXLAN_OVERHEAD;

use super::{bridge::PortMtu, Driver, EndpointSpec, Env, Placed};
use crate::{
    daemon::{
        error::OpResult,
        undo::{Step, Undo},
    },
    datapath::plan,
    state::{BridgeConfig, DriverConfig, EndpointState, Network, OverlayConfig},
};

/// The bridge device of an overlay network on this host: `ov-` and the start of its ID.
pub fn device_name(id: &str) -> String {
    format!("ov-{}", &id[..12.min(id.len())])
}

impl OverlayConfig {
    fn bridge(&self) -> BridgeConfig {
        BridgeConfig {
            device: self.device.clone(),
        }
    }

    /// The container's interface leaves room for VXLAN; the host end takes up to the
    /// underlay's MTU, so that a container whose MTU was raised has its packets reach the
    /// endpoint program, which answers what does not fit the tunnel with "fragmentation
    /// needed" instead of the veth dropping them unseen.
    fn port_mtu(&self) -> PortMtu {
        PortMtu {
            inside: Some(self.mtu),
            host: Some(self.mtu + VXLAN_OVERHEAD),
        }
    }
}

#[async_trait]
impl Driver for OverlayConfig {
    async fn create(
        &self,
        env: &mut Env<'_>,
        network: &Network,
        undo: &mut Undo,
    ) -> OpResult<DriverConfig> {
        self.bridge()
            .make(env, network, Some(self.mtu), undo)
            .await?;
        Ok(DriverConfig::Overlay(self.clone()))
    }

    async fn delete(&self, env: &mut Env<'_>, network: &Network) -> Vec<String> {
        self.bridge().delete(env, network).await
    }

    async fn attach(
        &self,
        env: &mut Env<'_>,
        network: &Network,
        spec: &EndpointSpec<'_>,
        undo: &mut Undo,
    ) -> OpResult<Option<String>> {
        let (host_veth, index) = self
            .bridge()
            .plug_port(env, network, spec, self.port_mtu(), undo)
            .await?;
        let ep = EndpointState {
            network: network.name.clone(),
            ifname: spec.ifname.into(),
            host_veth: Some(host_veth.clone()),
            ip: super::v4(spec.address.addr())?,
            ip6: None,
            mac: spec.mac,
            beyond_bridge: spec.beyond_bridge,
        };
        let port = plan::overlay_port(network, &ep, index).expect("an overlay network");
        env.dp.apply_overlay_ports(plan::MapDiff {
            upsert: vec![(ep.ip.octets(), port)],
            remove: vec![],
        })?;
        undo.push(Step::ForgetOverlayPort(ep.ip));
        Ok(Some(host_veth))
    }

    async fn detach(&self, env: &mut Env<'_>, network: &Network, at: &Placed<'_>) -> Vec<String> {
        let mut errors: Vec<String> = env
            .dp
            .apply_overlay_ports(plan::MapDiff {
                upsert: vec![],
                remove: vec![at.ep.ip.octets()],
            })
            .err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        errors.extend(self.bridge().detach(env, network, at).await);
        errors
    }

    async fn adopt(
        &self,
        env: &mut Env<'_>,
        network: &Network,
        endpoints: &[Placed<'_>],
    ) -> OpResult<()> {
        if env.nl.link_index(&self.device).await?.is_none() {
            tracing::warn!(network = %network.name, "overlay bridge missing; creating it again");
            let mut undo = Undo::default();
            self.bridge()
                .create_device(env, network, Some(self.mtu), &mut undo)
                .await?;
            undo.commit();
        }
        self.bridge().adopt(env, network, endpoints).await
    }

    async fn endpoint_alive(&self, env: &Env<'_>, at: &Placed<'_>) -> OpResult<bool> {
        self.bridge().endpoint_alive(env, at).await
    }

    fn host_devices(&self) -> Vec<String> {
        vec![self.device.clone()]
    }

    fn publishes_ports(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlay_bridge_is_named_after_the_network_id_within_the_kernel_limit() {
        let name = device_name(&"0123456789abcdef".repeat(4));
        assert_eq!(name, "ov-0123456789ab");
        assert!(name.len() <= 15);
    }
}
