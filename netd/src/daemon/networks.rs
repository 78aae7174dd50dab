//! Network requests: create, list, inspect, remove. What a network is on the host is its driver's
//! business ([`super::drivers`]); here are the rules every network follows (names, subnets,
//! gateways, removal only when no container is on it).
use std::collections::BTreeMap;

use ipnet::{Ipv4Net, Ipv6Net};

use super::{
    drivers,
    error::{conflict, invalid, OpError, OpResult},
    undo::Undo,
    validate, Daemon,
};
use crate::{
    api::{format_mac, NetworkCreate, NetworkMember, NetworkView, Reply},
    ipam,
    state::{now, BridgeConfig, DriverConfig, Ipv6Subnet, Network},
};

/// Names that are not networks but modes.
const RESERVED: [&str; 3] = ["bridge", "host", "none"];
/// Name of the default network and its device.
pub const DEFAULT_NETWORK: &str = "bridge";
pub const DEFAULT_BRIDGE: &str = "netd0";

/// A new 64-hex-digit identifier, as Docker's.
pub fn new_id() -> String {
    (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

impl Daemon {
    /// Turns a create request into a complete network, or says what is wrong with it.
    /// Refuses a name that is not valid or that a network (or a mode) has.
    pub(super) fn check_new_name(&self, name: &str) -> OpResult<()> {
        validate::name("network", name)?;
        if RESERVED.contains(&name) || self.state.networks.contains_key(name) {
            return Err(conflict(format!("network with name {name} already exists")));
        }
        Ok(())
    }

    /// An ID given with the request: 64 hex digits, no network's yet.
    fn check_new_id(&self, id: &str) -> OpResult<String> {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(format!(
                "invalid network ID {id:?}: expected 64 hex digits"
            )));
        }
        if self.state.networks.values().any(|n| n.id == id) {
            return Err(conflict(format!("a network with ID {id} already exists")));
        }
        Ok(id.to_ascii_lowercase())
    }

    fn plan_network(&self, req: &NetworkCreate) -> OpResult<Network> {
        self.check_new_name(&req.name)?;
        let options = validate::key_values("option", &req.options)?;
        let id = match &req.id {
            Some(id) => self.check_new_id(id)?,
            None => new_id(),
        };
        let networks: Vec<&Network> = self.state.networks.values().collect();
        let driver = drivers::plan(&drivers::PlanInput {
            driver: &req.driver,
            id: &id,
            options: &options,
            internal: req.internal,
            networks: &networks,
        })?;
        let taken: Vec<(&str, Ipv4Net)> = networks
            .iter()
            .map(|n| (n.name.as_str(), n.subnet))
            .collect();
        let (subnet, gateway) = plan_addresses(req, &taken, ipam::auto_subnet)?;
        let taken6: Vec<(&str, Ipv6Net)> = networks
            .iter()
            .filter_map(|n| Some((n.name.as_str(), n.ipv6?.subnet)))
            .collect();
        let ipv6 = plan_ipv6(req, &taken6)?;
        if ipv6.is_some() && !matches!(driver, DriverConfig::Bridge(_)) {
            return Err(invalid(format!(
                "--ipv6 is not supported on {} networks yet (only on bridge networks)",
                req.driver
            )));
        }
        Ok(Network {
            name: req.name.clone(),
            id,
            driver,
            subnet,
            gateway,
            ip_range: req.ip_range,
            internal: req.internal,
            options,
            net_id: self.state.free_net_id(),
            default: false,
            user_subnet: req.subnet.is_some(),
            created: now(),
            ipv6,
        })
    }

    pub(super) async fn network_create(&mut self, req: NetworkCreate) -> OpResult<Reply> {
        if req.driver == "overlay" {
            return self.overlay_create(&req).await;
        }
        let network = self.plan_network(&req)?;
        let id = network.id.clone();
        self.install_network(network).await?;
        // The gateway is a new host address: published ports answer on it at once.
        self.sync_local_addrs().await?;
        Ok(Reply::Created(id))
    }

    /// Has the driver make the network, records it; undoes all on failure.
    pub(super) async fn install_network(&mut self, network: Network) -> OpResult<()> {
        let mut undo = Undo::default();
        let result = self.install_network_steps(network.clone(), &mut undo).await;
        if let Err(e) = result {
            for err in undo.rollback(self).await {
                tracing::error!(%err, "rollback of network {} incomplete", network.name);
            }
            self.state.networks.remove(&network.name);
            return Err(e);
        }
        undo.commit();
        Ok(())
    }

    async fn install_network_steps(
        &mut self,
        mut network: Network,
        undo: &mut Undo,
    ) -> OpResult<()> {
        let mut env = drivers::Env {
            nl: &self.nl,
            dp: &mut self.dp,
        };
        network.driver = drivers::ops(&network.driver)
            .create(&mut env, &network, undo)
            .await?;
        self.state.networks.insert(network.name.clone(), network);
        self.save()
    }

    /// The default network `bridge`, created on first start.
    pub(super) fn default_network(&self) -> Network {
        let subnet = self.config.default_subnet.trunc();
        let gateway = ipam::default_gateway(subnet);
        let ipv6 = self.config.default_subnet6.map(|subnet| Ipv6Subnet {
            subnet,
            gateway: ipam::default_gateway6(subnet),
            ip_range: None,
        });
        Network {
            name: DEFAULT_NETWORK.into(),
            id: new_id(),
            driver: DriverConfig::Bridge(BridgeConfig {
                device: DEFAULT_BRIDGE.into(),
            }),
            subnet,
            gateway,
            ip_range: None,
            internal: false,
            options: BTreeMap::from([(
                drivers::OPT_BRIDGE_NAME.to_string(),
                DEFAULT_BRIDGE.to_string(),
            )]),
            net_id: self.state.free_net_id(),
            default: true,
            user_subnet: false,
            created: now(),
            ipv6,
        }
    }

    pub(super) async fn network_rm(&mut self, names: &[String]) -> OpResult<Reply> {
        for name in names {
            self.check_removable(name)?;
        }
        for name in names {
            let network = self.network(name)?.clone();
            if network.is_global() {
                self.withdraw_overlay(&network).await?;
            }
            self.remove_network(&network.name).await?;
        }
        self.sync_local_addrs().await?;
        Ok(Reply::Done)
    }

    /// Takes network `name` out of the state and has its driver remove what it made.
    pub(super) async fn remove_network(&mut self, name: &str) -> OpResult<()> {
        let network = self
            .state
            .networks
            .remove(name)
            .expect("checked by the caller");
        if let Err(e) = self.save() {
            self.restore_saved();
            return Err(e);
        }
        let mut env = drivers::Env {
            nl: &self.nl,
            dp: &mut self.dp,
        };
        let errors = drivers::ops(&network.driver)
            .delete(&mut env, &network)
            .await;
        if !errors.is_empty() {
            return Err(OpError::Conflict(format!(
                "removing network {name} met errors: {}",
                errors.join("; ")
            )));
        }
        Ok(())
    }

    fn check_removable(&self, name: &str) -> OpResult<()> {
        if RESERVED.contains(&name) {
            return Err(conflict(format!(
                "{name} is a pre-defined network and cannot be removed"
            )));
        }
        self.network(name)?;
        let users: Vec<&str> = self
            .state
            .containers_on(name)
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        if !users.is_empty() {
            return Err(conflict(format!(
                "network {name} has active endpoints: connected containers: {}",
                users.join(", ")
            )));
        }
        Ok(())
    }

    /// A network by name, full ID or unique ID prefix.
    pub(super) fn network(&self, key: &str) -> OpResult<&Network> {
        if let Some(n) = self.state.networks.get(key) {
            return Ok(n);
        }
        let mut by_id = self
            .state
            .networks
            .values()
            .filter(|n| !key.is_empty() && n.id.starts_with(key));
        match (by_id.next(), by_id.next()) {
            (Some(n), None) => Ok(n),
            _ => Err(OpError::NotFound(format!("network {key} not found"))),
        }
    }

    pub(super) fn network_views(&self, names: Option<&[String]>) -> OpResult<Vec<NetworkView>> {
        let mut views: Vec<NetworkView> = match names {
            Some(names) => names
                .iter()
                .map(|n| self.named_network_view(n))
                .collect::<OpResult<_>>()?,
            None => self
                .state
                .networks
                .values()
                .map(|n| self.network_view(n))
                .collect(),
        };
        if names.is_none() {
            views.extend(["host", "none"].map(mode_view));
            views.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(views)
    }

    fn named_network_view(&self, name: &str) -> OpResult<NetworkView> {
        match name {
            "host" | "none" => Ok(mode_view(name)),
            _ => Ok(self.network_view(self.network(name)?)),
        }
    }

    fn network_view(&self, n: &Network) -> NetworkView {
        let containers = self
            .state
            .containers_on(&n.name)
            .into_iter()
            .map(|c| {
                let ep = c.endpoints.iter().find(|e| e.network == n.name);
                let aliases = c
                    .attachments
                    .iter()
                    .find(|a| a.network == n.name)
                    .map(|a| a.aliases.clone())
                    .unwrap_or_default();
                let member = NetworkMember {
                    id: c.id.clone(),
                    ip_address: ep.map(|e| {
                        Ipv4Net::new(e.ip, n.subnet.prefix_len()).expect("prefix from a subnet")
                    }),
                    ipv6_address: ep.and_then(|e| {
                        let prefix = n.ipv6?.subnet.prefix_len();
                        Some(Ipv6Net::new(e.ip6?, prefix).expect("prefix from a subnet"))
                    }),
                    mac_address: ep.map(|e| format_mac(e.mac)),
                    aliases,
                };
                (c.name.clone(), member)
            })
            .collect();
        NetworkView {
            name: n.name.clone(),
            id: n.id.clone(),
            driver: n.driver.name().into(),
            scope: if n.is_global() { "global" } else { "local" }.into(),
            devices: drivers::ops(&n.driver).host_devices(),
            subnet: Some(n.subnet),
            gateway: Some(n.gateway),
            ip_range: n.ip_range,
            enable_ipv6: n.ipv6.is_some(),
            ipv6_subnet: n.ipv6.map(|v6| v6.subnet),
            ipv6_gateway: n.ipv6.map(|v6| v6.gateway),
            ipv6_ip_range: n.ipv6.and_then(|v6| v6.ip_range),
            internal: n.internal,
            bridge: n.bridge().map(Into::into),
            options: view_options(n),
            containers,
            created: n.created,
        }
    }
}

/// Where a network without `--subnet` gets one: the first free subnet of a pool.
pub(super) type AutoSubnet = fn(&[Ipv4Net]) -> Result<Ipv4Net, ipam::IpamError>;

/// The subnet and gateway of a new network, from the request and the (name, subnet) of every
/// network there is; the `--ip-range` must lie inside the subnet. Pure, so that every rule can be
/// checked without a daemon.
pub(super) fn plan_addresses(
    req: &NetworkCreate,
    taken: &[(&str, Ipv4Net)],
    pool: AutoSubnet,
) -> OpResult<(Ipv4Net, std::net::Ipv4Addr)> {
    let subnet = pick_subnet(req, taken, pool)?;
    let gateway = check_gateway(subnet, req)?;
    if let Some(range) = req.ip_range {
        if req.subnet.is_none() || !subnet.contains(&range) {
            return Err(invalid(format!(
                "ip-range {range} must lie inside the network's --subnet"
            )));
        }
    }
    Ok((subnet, gateway))
}

/// The requested subnet (no host bits, room for a gateway and a container, overlapping no other
/// network), or the first free default pool.
fn pick_subnet(
    req: &NetworkCreate,
    taken: &[(&str, Ipv4Net)],
    pool: AutoSubnet,
) -> OpResult<Ipv4Net> {
    let Some(subnet) = req.subnet else {
        let taken: Vec<Ipv4Net> = taken.iter().map(|(_, s)| *s).collect();
        return Ok(pool(&taken)?);
    };
    if subnet.network() != subnet.addr() {
        return Err(invalid(format!(
            "invalid subnet {subnet}: host bits are set (did you mean {}?)",
            subnet.trunc()
        )));
    }
    if subnet.prefix_len() > 30 {
        return Err(invalid(format!(
            "subnet {subnet} is too small: the prefix must be /30 or shorter"
        )));
    }
    if let Some((name, other)) = taken.iter().find(|(_, s)| ipam::overlaps(*s, subnet)) {
        return Err(conflict(format!(
            "subnet {subnet} overlaps with network {name} ({other}): Pool overlaps with other one on this address space"
        )));
    }
    Ok(subnet)
}

/// The gateway: given (inside the subnet, not its network or broadcast address) or the first host.
fn check_gateway(subnet: Ipv4Net, req: &NetworkCreate) -> OpResult<std::net::Ipv4Addr> {
    let Some(gw) = req.gateway else {
        return Ok(ipam::default_gateway(subnet));
    };
    if req.subnet.is_none() {
        return Err(invalid("--gateway needs --subnet"));
    }
    if !subnet.contains(&gw) || gw == subnet.network() || gw == subnet.broadcast() {
        return Err(invalid(format!(
            "gateway {gw} is not a usable address of subnet {subnet}"
        )));
    }
    Ok(gw)
}

/// The IPv6 half of a new network: none without `--ipv6` (and then no IPv6 `--subnet`,
/// `--gateway` or `--ip-range` either); with it, the IPv6 subnet given (no host bits, /126 or
/// shorter, overlapping no other network's, as `taken` lists them by name), its gateway (given,
/// or the subnet's `::1`) and range (inside the subnet). netd has no default IPv6 pool, as
/// Docker before 27: `--ipv6` needs the subnet. Pure, tested below.
pub(super) fn plan_ipv6(
    req: &NetworkCreate,
    taken: &[(&str, Ipv6Net)],
) -> OpResult<Option<Ipv6Subnet>> {
    if !req.ipv6 {
        return match (req.subnet6, req.gateway6, req.ip_range6) {
            (None, None, None) => Ok(None),
            _ => Err(invalid(
                "an IPv6 --subnet, --gateway or --ip-range needs --ipv6",
            )),
        };
    }
    let Some(subnet) = req.subnet6 else {
        return Err(invalid(
            "--ipv6 needs an IPv6 --subnet (netd has no default IPv6 pool)",
        ));
    };
    if subnet.network() != subnet.addr() {
        return Err(invalid(format!(
            "invalid subnet {subnet}: host bits are set (did you mean {}?)",
            subnet.trunc()
        )));
    }
    if subnet.prefix_len() > ipam::MAX_PREFIX6 {
        return Err(invalid(format!(
            "subnet {subnet} is too small: the prefix must be /{} or shorter",
            ipam::MAX_PREFIX6
        )));
    }
    if let Some((name, other)) = taken.iter().find(|(_, s)| ipam::overlaps6(*s, subnet)) {
        return Err(conflict(format!(
            "subnet {subnet} overlaps with network {name} ({other}): Pool overlaps with other one on this address space"
        )));
    }
    let gateway = match req.gateway6 {
        None => ipam::default_gateway6(subnet),
        Some(gw) if subnet.contains(&gw) && gw != subnet.network() => gw,
        Some(gw) => {
            return Err(invalid(format!(
                "gateway {gw} is not a usable address of subnet {subnet}"
            )))
        }
    };
    if let Some(range) = req.ip_range6 {
        if !subnet.contains(&range) {
            return Err(invalid(format!(
                "ip-range {range} must lie inside the network's --subnet {subnet}"
            )));
        }
    }
    Ok(Some(Ipv6Subnet {
        subnet,
        gateway,
        ip_range: req.ip_range6,
    }))
}

/// A network's options as `inspect` shows them: an overlay's VNI as Docker's overlay driver
/// names it.
fn view_options(n: &Network) -> BTreeMap<String, String> {
    let mut options = n.options.clone();
    if let Some(vni) = n.vni() {
        options.insert(
            "com.docker.network.driver.overlay.vxlanid_list".into(),
            vni.to_string(),
        );
    }
    options
}

/// The built-in `host` and `none` networks, which are modes rather than devices.
fn mode_view(name: &str) -> NetworkView {
    NetworkView {
        name: name.into(),
        id: name.into(),
        driver: if name == "host" { "host" } else { "null" }.into(),
        scope: "local".into(),
        devices: vec![],
        subnet: None,
        gateway: None,
        ip_range: None,
        enable_ipv6: false,
        ipv6_subnet: None,
        ipv6_gateway: None,
        ipv6_ip_range: None,
        internal: false,
        bridge: None,
        options: BTreeMap::new(),
        containers: BTreeMap::new(),
        created: 0,
    }
}

/// Property tests of a new network's addresses: whatever the request and the networks there
/// are, the plan is a usable subnet of its own with a usable gateway, or a one-line refusal.
/// `PROPTEST_CASES` sets the number of cases.
#[cfg(test)]
mod props {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;

    fn net() -> impl Strategy<Value = Ipv4Net> {
        prop_oneof![
            (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, p)| Ipv4Net::new(a.into(), p).unwrap()),
            // Near the default pools, where overlaps are likely.
            (0u8..40, 16u8..=31)
                .prop_map(|(b, p)| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), p).unwrap()),
            (0u8..=255, 20u8..=32).prop_map(|(c, p)| Ipv4Net::new(
                Ipv4Addr::new(192, 168, c, 0),
                p
            )
            .unwrap()),
        ]
    }

    /// A request's addressing: a subnet, maybe host bits, a gateway and a range near it.
    fn request() -> impl Strategy<Value = NetworkCreate> {
        (
            proptest::option::of(net()),
            proptest::option::of((any::<u32>(), any::<bool>())),
            proptest::option::of((any::<u32>(), 0u8..=32, any::<bool>())),
        )
            .prop_map(|(subnet, gateway, range)| {
                let inside = |seed: u32| match subnet {
                    Some(s) => {
                        Ipv4Addr::from(u32::from(s.network()) | (seed & !u32::from(s.netmask())))
                    }
                    None => Ipv4Addr::from(seed),
                };
                NetworkCreate {
                    name: "n".into(),
                    driver: "bridge".into(),
                    subnet,
                    gateway: gateway.map(|(g, near)| if near { inside(g) } else { g.into() }),
                    ip_range: range.map(|(r, p, near)| {
                        let a = if near { inside(r) } else { r.into() };
                        Ipv4Net::new(a, p.max(subnet.map_or(0, |s| s.prefix_len()))).unwrap()
                    }),
                    ipv6: false,
                    subnet6: None,
                    gateway6: None,
                    ip_range6: None,
                    internal: false,
                    options: vec![],
                    id: None,
                }
            })
    }

    /// The networks there are: the default bridge, and a few more that do not overlap.
    fn existing() -> impl Strategy<Value = Vec<Ipv4Net>> {
        proptest::collection::vec(net(), 0..5).prop_map(|nets| {
            let mut taken = vec!["172.17.0.0/16".parse::<Ipv4Net>().unwrap()];
            for n in nets.into_iter().map(|n| n.trunc()) {
                if taken.iter().all(|t| !ipam::overlaps(*t, n)) {
                    taken.push(n);
                }
            }
            taken
        })
    }

    proptest! {
        #[test]
        fn a_planned_network_has_a_usable_subnet_and_gateway_of_its_own(
            req in request(), existing in existing()
        ) {
            let names: Vec<String> = (0..existing.len()).map(|i| format!("net{i}")).collect();
            let taken: Vec<(&str, Ipv4Net)> =
                names.iter().map(String::as_str).zip(existing.iter().copied()).collect();
            match plan_addresses(&req, &taken, ipam::auto_subnet) {
                Ok((subnet, gateway)) => {
                    prop_assert_eq!(subnet.network(), subnet.addr(), "host bits in {}", subnet);
                    prop_assert!(subnet.prefix_len() <= 30);
                    prop_assert!(existing.iter().all(|t| !ipam::overlaps(*t, subnet)));
                    prop_assert!(subnet.contains(&gateway));
                    prop_assert!(gateway != subnet.network() && gateway != subnet.broadcast());
                    prop_assert_eq!(gateway, req.gateway.unwrap_or(ipam::default_gateway(subnet)));
                    if let Some(s) = req.subnet {
                        prop_assert_eq!(s, subnet);
                    }
                    if let Some(range) = req.ip_range {
                        prop_assert!(subnet.contains(&range.network()) && subnet.contains(&range.broadcast()));
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    prop_assert!(!text.contains('\n') && !text.is_empty(), "{}", text);
                    // Only a request that names something wrong, or a full address space, fails.
                    let refusable = req.subnet.is_some() || req.gateway.is_some() || req.ip_range.is_some()
                        || matches!(e, OpError::Ipam(ipam::IpamError::NoSubnet));
                    prop_assert!(refusable, "{}", text);
                }
            }
        }
    }
}
