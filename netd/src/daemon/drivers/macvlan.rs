//! The macvlan driver, as Docker's: containers get a macvlan device on a parent interface of the
//! host (`-o parent=eth1`), with their own MAC straight on the parent's wire, so containers on
//! two hosts whose parents share a segment reach each other as hosts on it do. A parent
//! `eth1.VID` is an 802.1q sub-interface, made if missing (and removed with the network only
//! then): networks on different VLANs are apart at layer 2, joined only by a router.
//!
//! Nothing of the container's traffic passes the host's stack, so the datapath programs see
//! none of it: no published ports, no egress NAT, no isolation program (the VLAN and the parent
//! are the isolation). A macvlan device cannot reach its own parent's host (the kernel does not
//! deliver between them), as with Docker.
use std::path::Path;

use async_trait::async_trait;
use rtnetlink::packet_route::link::MacVlanMode as KernelMode;

use super::{configure_inside, only_options, Driver, EndpointSpec, Env, Placed, PlanInput};
use crate::{
    daemon::{
        error::{conflict, invalid, OpError, OpResult},
        undo::{Step, Undo},
        validate,
    },
    datapath::{macvlan_pin, plan, SoftVlan},
    netlink::{Netlink, VethPeer},
    netns,
    state::{DriverConfig, MacvlanConfig, MacvlanMode, Network, VlanKind, VlanParent},
};

/// The option naming the parent interface, and the one choosing the mode, as Docker spells them.
pub const OPT_PARENT: &str = "parent";
pub const OPT_MODE: &str = "macvlan_mode";

/// The configuration of a new macvlan network: its parent (no other macvlan network's), its
/// mode, and the 802.1q sub-interface to make if the parent names one and it is missing
/// ([`Driver::create`] finds out).
pub fn plan(input: &PlanInput<'_>) -> OpResult<DriverConfig> {
    only_options("macvlan", input.options, &[OPT_PARENT, OPT_MODE])?;
    if input.internal {
        return Err(invalid(
            "--internal is not supported on macvlan networks: their containers are on the parent's wire",
        ));
    }
    let parent = input
        .options
        .get(OPT_PARENT)
        .ok_or_else(|| invalid("a macvlan network needs its parent interface: -o parent=IFACE"))?;
    validate::device_name("parent interface", parent)?;
    let made_parent = vlan_of(parent)?;
    let mode = match input.options.get(OPT_MODE) {
        None => MacvlanMode::default(),
        Some(m) => parse_mode(m)?,
    };
    let user = input
        .networks
        .iter()
        .find(|n| matches!(&n.driver, DriverConfig::Macvlan(m) if m.parent == *parent));
    if let Some(other) = user {
        return Err(conflict(format!(
            "network {} is already using parent interface {parent}",
            other.name
        )));
    }
    Ok(DriverConfig::Macvlan(MacvlanConfig {
        parent: parent.clone(),
        mode,
        made_parent,
    }))
}

/// The 802.1q sub-interface a parent name stands for (`eth1.10`: VLAN 10 on `eth1`), if it has
/// the form; a VLAN ID that is not one (1-4094) is an error.
fn vlan_of(parent: &str) -> OpResult<Option<VlanParent>> {
    let Some((base, vid)) = parent.rsplit_once('.') else {
        return Ok(None);
    };
    let bad = || {
        invalid(format!(
            "invalid VLAN ID {vid:?} in parent interface {parent}: it must be 1-4094"
        ))
    };
    let vid: u16 = vid.parse().map_err(|_| bad())?;
    if !(1..=4094).contains(&vid) || base.is_empty() {
        return Err(bad());
    }
    Ok(Some(VlanParent {
        base: base.into(),
        vid,
        kind: VlanKind::Kernel,
    }))
}

fn parse_mode(text: &str) -> OpResult<MacvlanMode> {
    MacvlanMode::ALL
        .into_iter()
        .find(|m| m.to_string() == text)
        .ok_or_else(|| {
            invalid(format!(
                "invalid macvlan mode {text:?}: it must be bridge, private, vepa or passthru"
            ))
        })
}

fn kernel_mode(mode: MacvlanMode) -> KernelMode {
    match mode {
        MacvlanMode::Bridge => KernelMode::Bridge,
        MacvlanMode::Private => KernelMode::Private,
        MacvlanMode::Vepa => KernelMode::Vepa,
        MacvlanMode::Passthru => KernelMode::Passthrough,
    }
}

#[async_trait]
impl Driver for MacvlanConfig {
    async fn create(
        &self,
        env: &mut Env<'_>,
        network: &Network,
        undo: &mut Undo,
    ) -> OpResult<DriverConfig> {
        if env.nl.link_index(&self.parent).await?.is_some() {
            // The user's own interface: used, never removed.
            return Ok(DriverConfig::Macvlan(MacvlanConfig {
                made_parent: None,
                ..self.clone()
            }));
        }
        let Some(vlan) = &self.made_parent else {
            return Err(OpError::NotFound(format!(
                "parent interface {} does not exist",
                self.parent
            )));
        };
        let made = self.make_parent(env, network, vlan, undo).await?;
        Ok(DriverConfig::Macvlan(MacvlanConfig {
            made_parent: Some(made),
            ..self.clone()
        }))
    }

    async fn delete(&self, env: &mut Env<'_>, _network: &Network) -> Vec<String> {
        let Some(vlan) = &self.made_parent else {
            return vec![];
        };
        let mut errors = vec![];
        if let VlanKind::Ebpf { inner } = &vlan.kind {
            match self.soft_indexes(env, vlan, inner).await {
                Ok(Some((trunk, inner_index))) => {
                    let soft = SoftVlan {
                        trunk: (&vlan.base, trunk),
                        inner: (inner, inner_index),
                        vid: vlan.vid,
                    };
                    errors.extend(env.dp.detach_vlan(soft).iter().map(ToString::to_string));
                }
                Ok(None) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        if let Err(e) = env.nl.delete_link(&self.parent).await {
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
        if spec.handover.is_some() {
            return Err(invalid(format!(
                "network {}: a macvlan device is made in the container, not handed to a runtime",
                network.name
            )));
        }
        let parent = env.nl.require_link(&self.parent).await?;
        let device = VethPeer {
            name: spec.ifname,
            mac: spec.mac,
            netns: spec.netns,
            mtu: None,
            host_mtu: None,
        };
        env.nl
            .create_macvlan_into(parent, kernel_mode(self.mode), &device)
            .await?;
        undo.push(Step::DeleteLinkIn(
            spec.netns.to_path_buf(),
            spec.ifname.into(),
        ));
        // Checked before it comes up: no frame leaves unchecked.
        let entry = plan::macvlan_entry(network, super::v4(spec.address.addr())?, spec.mac);
        let pin = macvlan_pin(spec.container_id, spec.ifname);
        env.dp
            .attach_macvlan(spec.netns, spec.ifname, entry, &pin)?;
        undo.push(Step::ForgetMacvlan(entry, pin));
        configure_inside(spec).await?;
        Ok(None)
    }

    async fn detach(&self, env: &mut Env<'_>, network: &Network, at: &Placed<'_>) -> Vec<String> {
        let (ep, netns) = (at.ep, at.netns);
        let entry = plan::macvlan_entry(network, ep.ip, ep.mac);
        let mut errors: Vec<String> = env
            .dp
            .forget_macvlan(&entry, &macvlan_pin(at.container_id, &ep.ifname))
            .iter()
            .map(ToString::to_string)
            .collect();
        if let Err(e) = delete_inside(netns, &ep.ifname).await {
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
        self.adopt_parent(env, network).await?;
        // The current program, and its entry, on every container's device.
        for at in endpoints {
            if netns::check(at.netns).is_err() {
                continue;
            }
            let entry = plan::macvlan_entry(network, at.ep.ip, at.ep.mac);
            let pin = macvlan_pin(at.container_id, &at.ep.ifname);
            env.dp
                .attach_macvlan(at.netns, &at.ep.ifname, entry, &pin)?;
        }
        Ok(())
    }

    async fn endpoint_alive(&self, _env: &Env<'_>, at: &Placed<'_>) -> OpResult<bool> {
        if !at.netns.exists() {
            return Ok(false);
        }
        let inside = Netlink::in_netns(at.netns)?;
        Ok(inside.link_index(&at.ep.ifname).await?.is_some())
    }

    fn host_devices(&self) -> Vec<String> {
        let Some(vlan) = &self.made_parent else {
            return vec![];
        };
        match &vlan.kind {
            VlanKind::Kernel => vec![self.parent.clone()],
            VlanKind::Ebpf { inner } => vec![self.parent.clone(), inner.clone()],
        }
    }

    fn publishes_ports(&self) -> bool {
        false
    }
}

impl MacvlanConfig {
    /// The parent as recorded: an 802.1q parent netd made is made again if it is missing, and
    /// an eBPF one gets the current programs.
    async fn adopt_parent(&self, env: &mut Env<'_>, network: &Network) -> OpResult<()> {
        let present = env.nl.link_index(&self.parent).await?.is_some();
        match (&self.made_parent, present) {
            (Some(vlan), true) => {
                if let VlanKind::Ebpf { inner } = &vlan.kind {
                    // The current programs, and the map entries, in place.
                    if let Some((trunk, inner_index)) = self.soft_indexes(env, vlan, inner).await? {
                        env.dp.attach_vlan(SoftVlan {
                            trunk: (&vlan.base, trunk),
                            inner: (inner, inner_index),
                            vid: vlan.vid,
                        })?;
                    }
                }
                Ok(())
            }
            (Some(vlan), false) => {
                tracing::warn!(network = %network.name, parent = %self.parent, "802.1q parent missing; creating it again");
                let mut undo = Undo::default();
                let made = self.make_parent(env, network, vlan, &mut undo).await;
                undo.commit();
                made.map(drop)
            }
            (None, true) => Ok(()),
            (None, false) => {
                tracing::warn!(network = %network.name, parent = %self.parent, "parent interface missing: containers cannot join the network until it is back");
                Ok(())
            }
        }
    }
}

impl MacvlanConfig {
    /// Makes the 802.1q parent `vlan`: the kernel's sub-interface, or where the kernel has no
    /// 802.1q, netd's own (a veth pair and two programs). Returns how it was made.
    async fn make_parent(
        &self,
        env: &mut Env<'_>,
        network: &Network,
        vlan: &VlanParent,
        undo: &mut Undo,
    ) -> OpResult<VlanParent> {
        let base = env.nl.link_index(&vlan.base).await?.ok_or_else(|| {
            OpError::NotFound(format!(
                "interface {} (the base of parent {}) does not exist",
                vlan.base, self.parent
            ))
        })?;
        let owner = format!("network:{}", network.id);
        match env
            .nl
            .create_vlan(&self.parent, base, vlan.vid, &owner)
            .await
        {
            Ok(_) => {
                undo.push(Step::DeleteLink(self.parent.clone()));
                return Ok(VlanParent {
                    kind: VlanKind::Kernel,
                    ..vlan.clone()
                });
            }
            Err(e) if e.unsupported() => {}
            Err(e) => return Err(e.into()),
        }
        let inner = format!(
            "nvl{:03x}{:07x}",
            vlan.vid,
            rand::random::<u32>() & 0x0fff_ffff
        );
        let (outer_index, inner_index) = env
            .nl
            .create_veth_pair(&self.parent, &inner, &owner)
            .await?;
        undo.push(Step::DeleteLink(self.parent.clone()));
        let soft = SoftVlan {
            trunk: (&vlan.base, base),
            inner: (&inner, inner_index),
            vid: vlan.vid,
        };
        env.dp.attach_vlan(soft)?;
        undo.push(Step::DetachVlan {
            trunk: vlan.base.clone(),
            trunk_index: base,
            inner: inner.clone(),
            inner_index,
            vid: vlan.vid,
        });
        env.nl.set_up(inner_index).await?;
        env.nl.set_up(outer_index).await?;
        Ok(VlanParent {
            kind: VlanKind::Ebpf { inner },
            ..vlan.clone()
        })
    }

    /// The indexes of an eBPF parent's trunk and inner end, if both are there.
    async fn soft_indexes(
        &self,
        env: &Env<'_>,
        vlan: &VlanParent,
        inner: &str,
    ) -> OpResult<Option<(u32, u32)>> {
        let trunk = env.nl.link_index(&vlan.base).await?;
        let inner = env.nl.link_index(inner).await?;
        Ok(trunk.zip(inner))
    }
}

/// Deletes the device `ifname` inside the namespace at `netns`; a namespace or device that is
/// gone already is no error.
pub async fn delete_inside(netns: &Path, ifname: &str) -> OpResult<()> {
    if netns::check(netns).is_err() {
        return Ok(());
    }
    Netlink::in_netns(netns)?.delete_link(ifname).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::state::testing;

    fn plan_with(options: &[(&str, &str)], networks: &[&Network]) -> OpResult<DriverConfig> {
        let options: BTreeMap<String, String> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        plan(&PlanInput {
            driver: "macvlan",
            id: "0123456789abcdef",
            options: &options,
            internal: false,
            networks,
        })
    }

    fn macvlan(name: &str, parent: &str) -> Network {
        let mut n = testing::network(name, "172.21.0.0/24", 5);
        n.driver = DriverConfig::Macvlan(MacvlanConfig {
            parent: parent.into(),
            mode: MacvlanMode::Bridge,
            made_parent: None,
        });
        n
    }

    #[test]
    fn a_parent_is_used_in_bridge_mode_unless_a_mode_is_given() {
        assert_eq!(
            plan_with(&[("parent", "eth1")], &[]).unwrap(),
            DriverConfig::Macvlan(MacvlanConfig {
                parent: "eth1".into(),
                mode: MacvlanMode::Bridge,
                made_parent: None,
            })
        );
        let private = plan_with(&[("parent", "eth1"), ("macvlan_mode", "private")], &[]);
        assert!(matches!(private, Ok(DriverConfig::Macvlan(m)) if m.mode == MacvlanMode::Private));
    }

    #[test]
    fn a_dotted_parent_is_a_vlan_sub_interface_of_its_base() {
        let DriverConfig::Macvlan(m) = plan_with(&[("parent", "eth1.1")], &[]).unwrap() else {
            panic!("not macvlan");
        };
        assert_eq!(
            m.made_parent,
            Some(VlanParent {
                base: "eth1".into(),
                vid: 1,
                kind: VlanKind::Kernel,
            })
        );
    }

    #[test]
    fn bad_parents_modes_and_options_are_one_line_errors() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "a macvlan network needs its parent interface: -o parent=IFACE"),
            (
                &[("parent", "eth1.0")],
                "invalid VLAN ID \"0\" in parent interface eth1.0: it must be 1-4094",
            ),
            (
                &[("parent", "eth1.4095")],
                "invalid VLAN ID \"4095\" in parent interface eth1.4095: it must be 1-4094",
            ),
            (
                &[("parent", "eth1.x")],
                "invalid VLAN ID \"x\" in parent interface eth1.x: it must be 1-4094",
            ),
            (
                &[("parent", "eth1"), ("macvlan_mode", "source")],
                "invalid macvlan mode \"source\": it must be bridge, private, vepa or passthru",
            ),
            (
                &[("parent", "eth1"), ("com.docker.network.bridge.name", "b")],
                "unsupported option \"com.docker.network.bridge.name\" for the macvlan driver (it takes parent, macvlan_mode)",
            ),
        ];
        for (options, want) in cases {
            assert_eq!(plan_with(options, &[]).unwrap_err().to_string(), *want);
        }
    }

    #[test]
    fn two_networks_cannot_share_a_parent() {
        let first = macvlan("mac_net1", "eth1");
        assert_eq!(
            plan_with(&[("parent", "eth1")], &[&first])
                .unwrap_err()
                .to_string(),
            "network mac_net1 is already using parent interface eth1"
        );
        assert!(plan_with(&[("parent", "eth1.1")], &[&first]).is_ok());
    }

    #[test]
    fn an_internal_macvlan_network_is_refused() {
        let options = BTreeMap::from([("parent".to_string(), "eth1".to_string())]);
        let err = plan(&PlanInput {
            driver: "macvlan",
            id: "ab",
            options: &options,
            internal: true,
            networks: &[],
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("--internal is not supported"));
    }
}
