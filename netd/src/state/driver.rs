//! The driver part of a network's record: what each driver needs to find and rebuild what it
//! made, and the reading of records from before drivers had a configuration of their own.
use std::{collections::BTreeMap, fmt, net::Ipv4Addr};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::Network;

/// A network's driver, with its configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum DriverConfig {
    Bridge(BridgeConfig),
    Macvlan(MacvlanConfig),
    Overlay(OverlayConfig),
}

impl DriverConfig {
    /// The name users give the driver (`-d`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Bridge(_) => "bridge",
            Self::Macvlan(_) => "macvlan",
            Self::Overlay(_) => "overlay",
        }
    }
}

/// A network shared by the hosts of a cluster ([`crate::cluster`]): on each host a bridge as the
/// bridge driver's (the same gateway address and MAC on every host), and between hosts the
/// VXLAN tunnel with the network's VNI.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OverlayConfig {
    /// This host's bridge device for the network.
    pub device: String,
    pub vni: u32,
    /// The MTU of the bridge and the container interfaces: the underlay's minus the VXLAN
    /// overhead, as this host measured it when it made the network.
    pub mtu: u32,
}

/// A Linux bridge with the gateway address on it; containers hang off it by veth pairs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BridgeConfig {
    /// The bridge device.
    pub device: String,
}

/// Containers get macvlan devices on a parent interface of the host, straight onto its wire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MacvlanConfig {
    /// The parent interface (`eth1`, or `eth1.10` for an 802.1q sub-interface).
    pub parent: String,
    pub mode: MacvlanMode,
    /// The 802.1q sub-interface netd made to be the parent (removed with the network).
    pub made_parent: Option<VlanParent>,
}

/// An 802.1q sub-interface: `base`.`vid`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VlanParent {
    pub base: String,
    pub vid: u16,
    /// How it was made (planned as the kernel's; the kernel may lack 802.1q).
    #[serde(default)]
    pub kind: VlanKind,
}

/// How an 802.1q sub-interface is made.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum VlanKind {
    /// The kernel's 802.1q driver.
    #[default]
    Kernel,
    /// A veth pair, the sub-interface and `inner`, with netd's programs tagging what it sends
    /// onto the base and untagging the base's frames of its VLAN into it.
    Ebpf { inner: String },
}

/// How macvlan devices on one parent reach each other (`-o macvlan_mode`), as the kernel names it.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MacvlanMode {
    /// Devices on the parent talk directly; the default, as Docker's.
    #[default]
    Bridge,
    /// Devices on the parent never talk to each other.
    Private,
    /// Through the switch the parent is plugged into (it must hairpin).
    Vepa,
    /// One device takes the whole parent.
    Passthru,
}

impl MacvlanMode {
    pub const ALL: [Self; 4] = [Self::Bridge, Self::Private, Self::Vepa, Self::Passthru];
}

impl fmt::Display for MacvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bridge => "bridge",
            Self::Private => "private",
            Self::Vepa => "vepa",
            Self::Passthru => "passthru",
        })
    }
}

/// A network as saved: today's records carry a [`DriverConfig`]; records of netd before the
/// driver seam carried `"driver": "bridge"` and the device in `"bridge"`.
#[derive(Deserialize)]
pub(super) struct NetworkRecord {
    name: String,
    id: String,
    driver: DriverField,
    #[serde(default)]
    bridge: Option<String>,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    ip_range: Option<Ipv4Net>,
    internal: bool,
    options: BTreeMap<String, String>,
    net_id: u32,
    default: bool,
    user_subnet: bool,
    created: u64,
    /// Absent in records from before dual stack.
    #[serde(default)]
    ipv6: Option<super::Ipv6Subnet>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DriverField {
    Config(DriverConfig),
    /// Only `bridge` was ever saved this way.
    Legacy(#[allow(dead_code)] String),
}

impl From<NetworkRecord> for Network {
    fn from(r: NetworkRecord) -> Self {
        let driver = match r.driver {
            DriverField::Config(c) => c,
            DriverField::Legacy(_) => DriverConfig::Bridge(BridgeConfig {
                device: r.bridge.unwrap_or_default(),
            }),
        };
        Network {
            name: r.name,
            id: r.id,
            driver,
            subnet: r.subnet,
            gateway: r.gateway,
            ip_range: r.ip_range,
            internal: r.internal,
            options: r.options,
            net_id: r.net_id,
            default: r.default,
            user_subnet: r.user_subnet,
            created: r.created,
            ipv6: r.ipv6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing;

    #[test]
    fn a_record_from_before_drivers_reads_as_a_bridge_network() {
        let old = r#"{"name":"web","id":"ab","driver":"bridge","subnet":"172.18.0.0/16",
            "gateway":"172.18.0.1","ip_range":null,"internal":false,"options":{},
            "bridge":"br-ab","net_id":2,"default":false,"user_subnet":false,"created":7}"#;
        let n: Network = serde_json::from_str(old).unwrap();
        assert_eq!(
            n.driver,
            DriverConfig::Bridge(BridgeConfig {
                device: "br-ab".into()
            })
        );
        assert_eq!((n.net_id, n.created), (2, 7));
    }

    #[test]
    fn a_network_reads_back_as_saved() {
        let mut n = testing::network("mac", "172.21.0.0/24", 3);
        n.driver = DriverConfig::Macvlan(MacvlanConfig {
            parent: "eth1.1".into(),
            mode: MacvlanMode::Private,
            made_parent: Some(VlanParent {
                base: "eth1".into(),
                vid: 1,
                kind: VlanKind::Ebpf {
                    inner: "nvl001abcdef0".into(),
                },
            }),
        });
        let text = serde_json::to_string(&n).unwrap();
        assert_eq!(serde_json::from_str::<Network>(&text).unwrap(), n);
        let bridge = testing::network("web", "172.18.0.0/16", 2);
        let text = serde_json::to_string(&bridge).unwrap();
        assert_eq!(serde_json::from_str::<Network>(&text).unwrap(), bridge);
    }
}
