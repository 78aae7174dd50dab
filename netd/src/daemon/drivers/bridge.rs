//! The bridge driver: a Linux bridge with the gateway address on it, an entry in the datapath's
//! subnet trie, and for each container a veth pair with the host end on the bridge and the
//! endpoint program on it.
//!
//! The container's address is pinned to its MAC on the bridge (a permanent neighbour entry): the
//! endpoint program answers the containers' ARP requests itself, so the host never learns their
//! MACs from them, and it must not flood the bridge to ask either (with a thousand ports, the
//! answer would be lost behind the copies of the question).
//!
//! The host end comes up last, after its map entry and program are in place, so no frame from
//! the container ever reaches the bridge unchecked.
//!
//! A Linux bridge has 1,023 ports ([`BRIDGE_PORTS`]). A container that comes when they are all
//! taken gets a routed port of its own instead ([`beyond_bridge`]): its host end is on no bridge,
//! carries the gateway's MAC (so the container's frames to its gateway are the host's), a /32
//! route to the container goes through it (with the gateway as source) and the container's
//! address is pinned on it. Between containers the endpoint program delivers straight into the
//! receiver, from outside the uplink's does, so only what crosses the bridge itself is missing
//! for such a container: broadcasts and multicasts of the other containers.
use std::collections::BTreeSet;

use async_trait::async_trait;

use super::{configure_inside, only_options, v4, Driver, EndpointSpec, Env, Placed, PlanInput};
use crate::{
    daemon::{
        error::{conflict, OpResult},
        undo::{Step, Undo},
        validate,
    },
    datapath::plan,
    netlink::VethPeer,
    state::{BridgeConfig, DriverConfig, EndpointState, Network, State},
};

/// The ports of a Linux bridge: port numbers have 10 bits and 0 is not one (`BR_MAX_PORTS`);
/// the kernel refuses the 1,024th with EXFULL.
pub const BRIDGE_PORTS: usize = 1023;

/// Whether the next container on `network` finds its bridge full: the state's endpoints on it
/// with a bridge port number [`BRIDGE_PORTS`].
pub fn beyond_bridge(state: &State, network: &str) -> bool {
    let ports = state
        .endpoints()
        .filter(|(_, ep)| ep.network == network && ep.host_veth.is_some() && !ep.beyond_bridge)
        .count();
    ports >= BRIDGE_PORTS
}

/// The option that names the bridge device, as Docker spells it.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";

/// The bridge device: the one `-o com.docker.network.bridge.name` names (no other network's),
/// or `br-` and the start of the network's ID.
pub fn plan(input: &PlanInput<'_>) -> OpResult<DriverConfig> {
    only_options("bridge", input.options, &[OPT_BRIDGE_NAME])?;
    let device = match input.options.get(OPT_BRIDGE_NAME) {
        Some(name) => {
            validate::device_name("bridge", name)?;
            if input.networks.iter().any(|n| n.bridge() == Some(name)) {
                return Err(conflict(format!(
                    "bridge {name} is already used by another network"
                )));
            }
            name.clone()
        }
        None => format!("br-{}", &input.id[..12.min(input.id.len())]),
    };
    Ok(DriverConfig::Bridge(BridgeConfig { device }))
}

/// A host-side veth name that is not taken: `veth` and seven hex digits.
fn veth_name() -> String {
    format!("veth{:07x}", rand::random::<u32>() & 0x0fff_ffff)
}

#[async_trait]
impl Driver for BridgeConfig {
    async fn create(
        &self,
        env: &mut Env<'_>,
        network: &Network,
        undo: &mut Undo,
    ) -> OpResult<DriverConfig> {
        self.make(env, network, None, undo).await?;
        Ok(DriverConfig::Bridge(self.clone()))
    }

    async fn delete(&self, env: &mut Env<'_>, network: &Network) -> Vec<String> {
        let mut errors: Vec<String> = env
            .dp
            .forget_network(network.subnet, network.gateway)
            .iter()
            .map(ToString::to_string)
            .collect();
        if let Some(v6) = network.ipv6 {
            let gone = env.dp.forget_network6(v6.subnet, v6.gateway);
            errors.extend(gone.iter().map(ToString::to_string));
        }
        if let Err(e) = env.nl.delete_link(&self.device).await {
            errors.push(e.to_string());
        }
        errors
    }

    async fn attach(
        &self,
        env: &mut Env<'_>,
        network: &Network,
        spec: &EndpointSpec<'_>,
        undo: &mut Undo,
    ) -> OpResult<Option<String>> {
        let (host_veth, _) = self
            .plug_port(env, network, spec, PortMtu::default(), undo)
            .await?;
        Ok(Some(host_veth))
    }

    async fn detach(&self, env: &mut Env<'_>, _network: &Network, at: &Placed<'_>) -> Vec<String> {
        let ep = at.ep;
        let mut errors = vec![];
        match env.nl.link_index(&self.device).await {
            Ok(Some(bridge)) => {
                let pinned = std::iter::once(ep.ip.into()).chain(ep.ip6.map(Into::into));
                for ip in pinned.collect::<Vec<std::net::IpAddr>>() {
                    if let Err(e) = env.nl.unpin_neighbor(bridge, ip).await {
                        errors.push(e.to_string());
                    }
                }
            }
            Ok(None) => {}
            Err(e) => errors.push(e.to_string()),
        }
        let Some(veth) = &ep.host_veth else {
            return errors;
        };
        match env.nl.link_index(veth).await {
            Ok(Some(index)) => {
                if let Some(Err(e)) = ep.ip6.map(|ip6| env.dp.forget_endpoint6(index, ip6)) {
                    errors.push(e.to_string());
                }
                if let Err(e) = env.dp.forget_endpoint(index) {
                    errors.push(e.to_string());
                }
            }
            Ok(None) => {}
            Err(e) => errors.push(e.to_string()),
        }
        if let Err(e) = env.nl.delete_link(veth).await {
            errors.push(e.to_string());
        }
        errors
    }

    async fn adopt(
        &self,
        env: &mut Env<'_>,
        network: &Network,
        endpoints: &[Placed<'_>],
    ) -> OpResult<()> {
        let bridge = match env.nl.link_index(&self.device).await? {
            // A bridge an older netd made without a fixed address gets the one the ARP
            // responder answers with.
            Some(index) => {
                env.nl.set_mac(index, plan::bridge_mac(network)).await?;
                index
            }
            None => {
                tracing::warn!(network = %network.name, "bridge missing; creating it again");
                let mut undo = Undo::default();
                let index = self.create_device(env, network, None, &mut undo).await?;
                undo.commit();
                index
            }
        };
        // Exactly the addresses of its running containers on its ports are pinned on it; the
        // routed ports get theirs again (a veth keeps its route while it exists).
        for p in endpoints.iter().filter(|p| p.ep.beyond_bridge) {
            let veth = p.ep.host_veth.as_deref().unwrap_or_default();
            if let Some(index) = env.nl.link_index(veth).await? {
                route_port(env, network, p.ep, index).await?;
            }
        }
        let wanted: BTreeSet<_> = endpoints
            .iter()
            .filter(|p| !p.ep.beyond_bridge)
            .map(|p| (p.ep.ip, p.ep.mac))
            .collect();
        for ip in env.nl.pinned_neighbors(bridge).await? {
            if !wanted.iter().any(|(w, _)| *w == ip) {
                env.nl.unpin_neighbor(bridge, ip).await?;
            }
        }
        for (ip, mac) in wanted {
            env.nl.pin_neighbor(bridge, ip, mac).await?;
        }
        adopt_ipv6(env, network, bridge, endpoints).await
    }

    async fn endpoint_alive(&self, env: &Env<'_>, at: &Placed<'_>) -> OpResult<bool> {
        Ok(match &at.ep.host_veth {
            Some(veth) => env.nl.link_index(veth).await?.is_some(),
            None => false,
        })
    }

    fn host_devices(&self) -> Vec<String> {
        vec![self.device.clone()]
    }

    fn publishes_ports(&self) -> bool {
        true
    }
}

impl BridgeConfig {
    /// What a network behind this bridge needs on the host: the device (a name another device
    /// has is refused), its subnet and gateway in the datapath.
    pub(super) async fn make(
        &self,
        env: &mut Env<'_>,
        network: &Network,
        mtu: Option<u32>,
        undo: &mut Undo,
    ) -> OpResult<()> {
        if env.nl.link_index(&self.device).await?.is_some() {
            return Err(conflict(format!(
                "interface {} already exists on the host",
                self.device
            )));
        }
        self.create_device(env, network, mtu, undo).await?;
        undo.push(Step::ForgetNetwork(network.subnet, network.gateway));
        env.dp.record_network(
            network.subnet,
            plan::network_entry(network),
            plan::gateway_neighbor(network),
        )?;
        if let Some(v6) = plan::network6(network) {
            undo.push(Step::ForgetNetwork6(v6.subnet, v6.gateway));
            env.dp
                .record_network6(v6.subnet, v6.info, v6.gateway, v6.gateway_neighbor)?;
        }
        Ok(())
    }

    /// The bridge device with the gateway address (and `mtu`, if given), up; returns its index.
    pub(super) async fn create_device(
        &self,
        env: &Env<'_>,
        network: &Network,
        mtu: Option<u32>,
        undo: &mut Undo,
    ) -> OpResult<u32> {
        let index = env
            .nl
            .create_bridge(
                &self.device,
                &format!("network:{}", network.id),
                plan::bridge_mac(network),
            )
            .await?;
        undo.push(Step::DeleteLink(self.device.clone()));
        if let Some(mtu) = mtu {
            env.nl.set_mtu(index, mtu).await?;
        }
        env.nl
            .add_address(index, network.gateway.into(), network.subnet.prefix_len())
            .await?;
        if let Some(v6) = network.ipv6 {
            // The host routes between its IPv6 networks and out, as for IPv4.
            crate::netns::set_sysctl("net.ipv6.conf.all.forwarding", "1")?;
            env.nl
                .add_address(index, v6.gateway.into(), v6.subnet.prefix_len())
                .await?;
        }
        env.nl.set_up(index).await?;
        Ok(index)
    }
}

/// The MTUs of a container's veth pair: inside, and of the host end if it differs.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PortMtu {
    pub inside: Option<u32>,
    pub host: Option<u32>,
}

impl BridgeConfig {
    /// A container's port on the bridge: a veth pair (with the MTUs given, the kernel's
    /// default otherwise), the address inside, the endpoint program and entry, the address
    /// pinned on the bridge, the host end up last. Returns the host end's name and index.
    pub(super) async fn plug_port(
        &self,
        env: &mut Env<'_>,
        network: &Network,
        spec: &EndpointSpec<'_>,
        mtu: PortMtu,
        undo: &mut Undo,
    ) -> OpResult<(String, u32)> {
        if spec.beyond_bridge && spec.address6.is_some() {
            return Err(conflict(format!(
                "bridge {} is full ({BRIDGE_PORTS} ports) and routed ports beyond it are IPv4-only: \
                 a dual-stack network holds at most {BRIDGE_PORTS} containers on one host",
                self.device
            )));
        }
        let bridge = env.nl.require_link(&self.device).await?;
        let peer = VethPeer {
            name: spec.handover.unwrap_or(spec.ifname),
            mac: spec.mac,
            netns: spec.netns,
            mtu: mtu.inside,
            host_mtu: mtu.host,
        };
        let owner = format!("container:{}", spec.container_id);
        let handover = spec.handover.is_some();
        let master = (!spec.beyond_bridge).then_some(bridge);
        let (host_veth, host_index) =
            create_veth_pair(env, &owner, master, &peer, handover, undo).await?;
        // The host end carries IPv4 only (a bridge port, or a routed port with a /32 route).
        crate::netns::turn_off_ipv6(&host_veth)?;
        if !handover {
            configure_inside(spec).await?;
        }
        let ip = v4(spec.address.addr())?;
        let ep = EndpointState {
            network: network.name.clone(),
            ifname: spec.ifname.into(),
            host_veth: Some(host_veth.clone()),
            ip,
            ip6: spec.address6.map(|a| a.addr()),
            mac: spec.mac,
            beyond_bridge: spec.beyond_bridge,
        };
        env.dp
            .attach_endpoint(&host_veth, host_index, plan::endpoint_entry(network, &ep))?;
        undo.push(Step::ForgetEndpoint(host_index));
        if let Some(port) = plan::port6(network, &ep, host_index) {
            undo.push(Step::ForgetEndpoint6(host_index, port.addr));
            let entry = plan::endpoint6(port.addr, port.mac);
            env.dp
                .record_endpoint6(host_index, entry, port.mac, port.net_id)?;
        }
        if !spec.beyond_bridge {
            let pinned = std::iter::once(ip.into()).chain(ep.ip6.map(Into::into));
            for ip in pinned.collect::<Vec<std::net::IpAddr>>() {
                env.nl.pin_neighbor(bridge, ip, spec.mac).await?;
                undo.push(Step::UnpinNeighbor(bridge, ip));
            }
        }
        env.nl.set_up(host_index).await?;
        if spec.beyond_bridge {
            // Deleting the veth takes its route and neighbour entry with it.
            route_port(env, network, &ep, host_index).await?;
        }
        Ok((host_veth, host_index))
    }
}

/// A dual-stack network's bridge as its running containers need it: the gateway's IPv6 address
/// on it (a bridge an IPv4-only netd made has none) and exactly their IPv6 addresses pinned.
async fn adopt_ipv6(
    env: &Env<'_>,
    network: &Network,
    bridge: u32,
    endpoints: &[Placed<'_>],
) -> OpResult<()> {
    let wanted: BTreeSet<_> = endpoints
        .iter()
        .filter_map(|p| Some((p.ep.ip6?, p.ep.mac)))
        .collect();
    for ip in env.nl.pinned_neighbors6(bridge).await? {
        if !wanted.iter().any(|(w, _)| *w == ip) {
            env.nl.unpin_neighbor(bridge, ip).await?;
        }
    }
    let Some(v6) = network.ipv6 else {
        return Ok(());
    };
    crate::netns::set_sysctl("net.ipv6.conf.all.forwarding", "1")?;
    match env
        .nl
        .add_address(bridge, v6.gateway.into(), v6.subnet.prefix_len())
        .await
    {
        Err(e) if !e.already_exists() => return Err(e.into()),
        _ => {}
    }
    for (ip, mac) in wanted {
        env.nl.pin_neighbor(bridge, ip, mac).await?;
    }
    Ok(())
}

/// What makes the host end `index` (up) of endpoint `ep` a routed port: the gateway's MAC, the
/// container's address pinned on it and the /32 route through it (both replaced if there).
async fn route_port(
    env: &Env<'_>,
    network: &Network,
    ep: &EndpointState,
    index: u32,
) -> OpResult<()> {
    env.nl.set_mac(index, plan::bridge_mac(network)).await?;
    env.nl.pin_neighbor(index, ep.ip, ep.mac).await?;
    env.nl
        .replace_host_route(ep.ip, index, network.gateway)
        .await?;
    Ok(())
}

/// Creates the veth pair under a free host-side name, the peer in the container or, for a
/// `handover`, beside it; returns the name and its index.
async fn create_veth_pair(
    env: &Env<'_>,
    owner: &str,
    bridge: Option<u32>,
    peer: &VethPeer<'_>,
    handover: bool,
    undo: &mut Undo,
) -> OpResult<(String, u32)> {
    for _ in 0..8 {
        let host = veth_name();
        let created = if handover {
            env.nl.create_veth_here(&host, owner, bridge, peer).await
        } else {
            env.nl.create_veth_into(&host, owner, bridge, peer).await
        };
        match created {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::state::testing;

    fn input<'a>(
        options: &'a BTreeMap<String, String>,
        networks: &'a [&'a Network],
    ) -> PlanInput<'a> {
        PlanInput {
            driver: "bridge",
            id: "0123456789abcdef",
            options,
            internal: false,
            networks,
        }
    }

    #[test]
    fn the_container_after_the_bridges_last_port_gets_a_routed_port() {
        let mut s = State::default();
        s.networks
            .insert("n".into(), testing::network("n", "10.8.0.0/16", 1));
        let add = |s: &mut State, i: usize, beyond: bool| {
            let ip = format!("10.8.{}.{}", i / 250, i % 250 + 2);
            let mut c = testing::running(&format!("c{i}"), &[("n", "v", &ip, &[])]);
            c.endpoints[0].beyond_bridge = beyond;
            s.containers.insert(c.name.clone(), c);
        };
        for i in 0..BRIDGE_PORTS - 1 {
            add(&mut s, i, false);
        }
        assert!(!beyond_bridge(&s, "n"), "one port left");
        add(&mut s, BRIDGE_PORTS - 1, false);
        assert!(beyond_bridge(&s, "n"), "all taken");
        add(&mut s, BRIDGE_PORTS, true);
        assert!(beyond_bridge(&s, "n"), "routed ports take no bridge port");
        s.containers.remove("c0");
        assert!(!beyond_bridge(&s, "n"), "a port freed");
        assert!(
            !beyond_bridge(&s, "other"),
            "other networks have their own bridge"
        );
    }

    #[test]
    fn a_bridge_is_named_after_the_network_id_unless_an_option_names_it() {
        let none = BTreeMap::new();
        assert_eq!(
            plan(&input(&none, &[])).unwrap(),
            DriverConfig::Bridge(BridgeConfig {
                device: "br-0123456789ab".into()
            })
        );
        let named = BTreeMap::from([(OPT_BRIDGE_NAME.to_string(), "docker1".to_string())]);
        assert_eq!(
            plan(&input(&named, &[])).unwrap(),
            DriverConfig::Bridge(BridgeConfig {
                device: "docker1".into()
            })
        );
    }

    #[test]
    fn a_bridge_name_another_network_has_or_an_unknown_option_is_refused() {
        let web = testing::network("web", "172.18.0.0/16", 2);
        let taken = BTreeMap::from([(OPT_BRIDGE_NAME.to_string(), "br-web".to_string())]);
        assert_eq!(
            plan(&input(&taken, &[&web])).unwrap_err().to_string(),
            "bridge br-web is already used by another network"
        );
        let parent = BTreeMap::from([("parent".to_string(), "eth1".to_string())]);
        assert!(plan(&input(&parent, &[]))
            .unwrap_err()
            .to_string()
            .starts_with("unsupported option \"parent\" for the bridge driver"));
    }
}
