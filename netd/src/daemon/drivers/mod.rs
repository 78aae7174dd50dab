//! Network drivers behind one seam. A driver turns a network's [`DriverConfig`] into devices:
//! what the network needs on the host ([`Driver::create`]), and for each container an endpoint
//! inside its namespace ([`Driver::attach`]). The daemon keeps everything drivers share: names,
//! IPAM, the state and its journal, DNS, published ports, and the order of steps with their undo.
//!
//! Planning a network is pure ([`plan`]): the request and the networks there are in, the
//! driver's configuration or a one-line refusal out, checked by unit tests without root.
pub(super) mod bridge;
mod macvlan;
mod overlay;

pub use bridge::OPT_BRIDGE_NAME;
pub use macvlan::delete_inside;
pub use overlay::device_name as overlay_device;

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use async_trait::async_trait;
use ipnet::{IpNet, Ipv6Net};

use super::{
    error::{invalid, OpResult},
    undo::Undo,
};
use crate::{
    datapath::Datapath,
    netlink::Netlink,
    state::{DriverConfig, EndpointState, Network},
};

/// The drivers `network create -d` accepts.
pub const NAMES: [&str; 3] = ["bridge", "macvlan", "overlay"];

/// What a driver works with: the host's netlink connection and the datapath.
pub struct Env<'a> {
    pub nl: &'a Netlink,
    pub dp: &'a mut Datapath,
}

/// One endpoint to make, as the daemon decided it: which container, where, and its addressing.
pub struct EndpointSpec<'a> {
    pub container_id: &'a str,
    /// The container's namespace, and a connection inside it.
    pub netns: &'a Path,
    pub inside: &'a Netlink,
    /// The device's name inside (`eth0`, ...).
    pub ifname: &'a str,
    /// The container's address with the network's prefix length.
    pub address: IpNet,
    pub mac: [u8; 6],
    /// The gateway of the default route, if this endpoint carries it.
    pub default_gateway: Option<IpAddr>,
    /// On a dual-stack network: the container's IPv6 address with the subnet's prefix length,
    /// and the gateway of its IPv6 default route if this endpoint carries the default route.
    pub address6: Option<Ipv6Net>,
    pub default_gateway6: Option<Ipv6Addr>,
    /// The runtime moves the device in and configures it (Docker): the peer is left in the
    /// host's namespace under this name, and nothing is done inside.
    pub handover: Option<&'a str>,
    /// The network's bridge is full: a driver with one gives the endpoint a routed port of its
    /// own ([`bridge::beyond_bridge`]).
    pub beyond_bridge: bool,
}

/// An endpoint the state has, with where it lives: its container's ID and namespace.
pub struct Placed<'a> {
    pub ep: &'a EndpointState,
    pub container_id: &'a str,
    /// The container's namespace (it may be gone already).
    pub netns: &'a Path,
}

/// A network driver. Implemented by each driver's configuration type, so a network's record
/// leads straight to its driver ([`ops`]).
#[async_trait]
pub trait Driver: Send + Sync {
    /// Makes what the network needs on the host, each step recorded in `undo`, and returns the
    /// configuration to record (with what the driver found or made filled in).
    async fn create(
        &self,
        env: &mut Env<'_>,
        network: &Network,
        undo: &mut Undo,
    ) -> OpResult<DriverConfig>;

    /// Removes what `create` made. Goes on past errors and returns them all.
    async fn delete(&self, env: &mut Env<'_>, network: &Network) -> Vec<String>;

    /// Makes the endpoint's device inside the container (with its address up), and whatever
    /// the driver keeps on the host for it, each step recorded in `undo`. Returns the host-side
    /// device, if the driver has one.
    async fn attach(
        &self,
        env: &mut Env<'_>,
        network: &Network,
        spec: &EndpointSpec<'_>,
        undo: &mut Undo,
    ) -> OpResult<Option<String>>;

    /// Takes an endpoint out. Goes on past errors and returns them all.
    async fn detach(&self, env: &mut Env<'_>, network: &Network, at: &Placed<'_>) -> Vec<String>;

    /// After a restart, makes what the network had on the host there again where it is missing
    /// and matches it to the endpoints the state has on it.
    async fn adopt(
        &self,
        env: &mut Env<'_>,
        network: &Network,
        endpoints: &[Placed<'_>],
    ) -> OpResult<()>;

    /// Whether the endpoint's devices are all still there.
    async fn endpoint_alive(&self, env: &Env<'_>, at: &Placed<'_>) -> OpResult<bool>;

    /// Host devices that belong to the network (those netd tagged and must not reap).
    fn host_devices(&self) -> Vec<String>;

    /// Whether containers on the network can publish ports on the host.
    fn publishes_ports(&self) -> bool;
}

/// The driver of a network.
pub fn ops(config: &DriverConfig) -> &dyn Driver {
    match config {
        DriverConfig::Bridge(c) => c,
        DriverConfig::Macvlan(c) => c,
        DriverConfig::Overlay(c) => c,
    }
}

/// What a new network's driver is given to plan with.
pub struct PlanInput<'a> {
    pub driver: &'a str,
    /// The new network's ID.
    pub id: &'a str,
    pub options: &'a BTreeMap<String, String>,
    pub internal: bool,
    /// Every network there is.
    pub networks: &'a [&'a Network],
}

/// The configuration of a new network's driver, or why there cannot be one.
pub fn plan(input: &PlanInput<'_>) -> OpResult<DriverConfig> {
    match input.driver {
        "bridge" => bridge::plan(input),
        "macvlan" => macvlan::plan(input),
        // Planned with the cluster store, which hands out its VNI and subnet.
        "overlay" => Err(invalid(
            "overlay networks are planned with the cluster store",
        )),
        other => Err(invalid(format!(
            "unsupported network driver {other:?}: netd supports {}",
            NAMES.map(|n| format!("{n:?}")).join(", ")
        ))),
    }
}

/// Refuses any option a driver does not know.
fn only_options(driver: &str, options: &BTreeMap<String, String>, known: &[&str]) -> OpResult<()> {
    match options.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(invalid(format!(
            "unsupported option {key:?} for the {driver} driver (it takes {})",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// The IPv4 address of `ip`, for the parts of netd that are IPv4-only yet.
fn v4(ip: IpAddr) -> OpResult<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Ok(v4),
        IpAddr::V6(v6) => Err(invalid(format!(
            "{v6}: IPv6 endpoints are not supported yet"
        ))),
    }
}

/// The loopback device's index in every namespace.
const LOOPBACK: u32 = 1;

/// Inside the container: the addresses on the device, the device up, the default routes. An
/// IPv4-only endpoint gets no IPv6 address at all (not even link-local); a dual-stack one its
/// IPv6 address and the link-local address the kernel makes from its MAC.
async fn configure_inside(spec: &EndpointSpec<'_>) -> OpResult<()> {
    let nl = spec.inside;
    let index = nl.require_link(spec.ifname).await?;
    nl.add_address(
        index,
        v4(spec.address.addr())?.into(),
        spec.address.prefix_len(),
    )
    .await?;
    match spec.address6 {
        Some(address6) => {
            nl.add_address(index, address6.addr().into(), address6.prefix_len())
                .await?;
            // A dual-stack container has IPv6's loopback address too, as Docker's have.
            match nl
                .add_address(LOOPBACK, Ipv6Addr::LOCALHOST.into(), 128)
                .await
            {
                Err(e) if e.already_exists() => {}
                other => other?,
            }
        }
        None => nl.turn_off_ipv6_addresses(index).await?,
    }
    nl.set_up(index).await?;
    if let Some(gateway) = spec.default_gateway {
        nl.add_default_route(v4(gateway)?.into()).await?;
    }
    if let Some(gateway) = spec.default_gateway6 {
        nl.add_default_route(gateway.into()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_driver_is_refused_naming_those_there_are() {
        let options = BTreeMap::new();
        let err = plan(&PlanInput {
            driver: "ipvlan",
            id: "ab",
            options: &options,
            internal: false,
            networks: &[],
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "unsupported network driver \"ipvlan\": netd supports \"bridge\", \"macvlan\", \"overlay\""
        );
    }
}
