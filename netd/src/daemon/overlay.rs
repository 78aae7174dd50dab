//! Overlay networks, the daemon's side of the cluster store ([`crate::cluster`]): joining it at
//! start (the VXLAN device and its program), creating and removing overlay networks through it,
//! claiming addresses there, and following it: the other hosts' networks into the state, and
//! their endpoints into the tunnel map, the ARP responder and the embedded DNS.
use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context as _};
use ipnet::{IpNet, Ipv4Net};
use netd_common::{Tunnel, VXLAN_OVERHEAD, VXLAN_PORT};
use tokio::sync::Mutex;

use super::{
    drivers,
    error::{conflict, invalid, OpError, OpResult},
    networks::{new_id, plan_addresses},
    undo::{Step, Undo},
    Daemon,
};
use crate::{
    api::{NetworkCreate, Reply},
    cluster::{
        records::{self, EndpointRecord, NetworkRecord, Snapshot},
        Cluster, ClusterError,
    },
    datapath::{
        plan::{self, MapDiff},
        Underlay,
    },
    ipam,
    state::{now, Attachment, DriverConfig, Network, OverlayConfig, State, Status},
};

/// The host's VXLAN device, shared by every overlay network (the VNI tells them apart).
pub const VXLAN_DEVICE: &str = "netd_vxlan";

/// What a request that needs the cluster store says without one.
const NO_STORE: &str =
    "overlay networks need a cluster store: start the daemon with --cluster-store etcd://HOST:PORT";

/// How many times a create or an address claim looks again after another host took what it
/// chose.
const ATTEMPTS: usize = 16;

impl From<ClusterError> for OpError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Conflict(msg) => OpError::Conflict(msg),
            ClusterError::BadUrl { .. } => OpError::Invalid(e.to_string()),
            other => OpError::Unavailable(other.to_string()),
        }
    }
}

/// Refuses bad cluster flags before the daemon touches anything: a store URL that does not
/// parse, an `--advertise-addr` that is not this host's.
pub async fn check_args(config: &super::Config) -> anyhow::Result<()> {
    let Some(store) = &config.cluster_store else {
        return Ok(());
    };
    records::parse_store(store).map_err(|reason| ClusterError::BadUrl {
        url: store.clone(),
        reason,
    })?;
    if let Some(given) = config.advertise_addr {
        let addrs = crate::netlink::Netlink::current()?.ipv4_addresses().await?;
        check_advertise(given, &addrs)?;
    }
    Ok(())
}

/// `--advertise-addr` must be one of this host's IPv4 addresses.
fn check_advertise(given: IpAddr, addrs: &[(u32, Ipv4Addr)]) -> anyhow::Result<Ipv4Addr> {
    let IpAddr::V4(v4) = given else {
        return Err(anyhow!(
            "--advertise-addr {given}: an IPv6 underlay is not supported yet"
        ));
    };
    if !addrs.iter().any(|(_, a)| *a == v4) {
        return Err(anyhow!(
            "--advertise-addr {v4} is not an address of this host"
        ));
    }
    Ok(v4)
}

impl Daemon {
    fn cluster(&self) -> OpResult<Cluster> {
        self.cluster.clone().ok_or_else(|| invalid(NO_STORE))
    }

    /// At start, with `--cluster-store`: the VXLAN device and its program, and the store's
    /// handle. Without one, a state with overlay networks is refused (their traffic would stop).
    pub(super) async fn join_cluster(&mut self) -> anyhow::Result<()> {
        let Some(store) = self.config.cluster_store.clone() else {
            if let Some(n) = self.state.networks.values().find(|n| n.is_global()) {
                return Err(anyhow!(
                    "network {} is an overlay network: start the daemon with --cluster-store",
                    n.name
                ));
            }
            return Ok(());
        };
        let advertise = self.advertise_addr().await?;
        let (underlay, underlay_mtu) = self.underlay_device(advertise).await?;
        self.overlay_mtu = underlay_mtu - VXLAN_OVERHEAD;
        let index = match self.nl.link_index(VXLAN_DEVICE).await? {
            Some(index) => index,
            None => {
                // A link pinned for a device that is gone is severed: attach afresh.
                self.dp.unpin_link(crate::datapath::TUNNEL_PIN)?;
                self.nl
                    .create_vxlan(VXLAN_DEVICE, "cluster", VXLAN_PORT, self.overlay_mtu)
                    .await
                    .with_context(|| format!("cannot create {VXLAN_DEVICE} on UDP {VXLAN_PORT}"))?
            }
        };
        self.dp.attach_tunnel(VXLAN_DEVICE, index)?;
        self.dp.attach_underlay(Underlay {
            device: &underlay.1,
            ifindex: underlay.0,
            addr: advertise,
        })?;
        let ttl = self.config.cluster_lease_ttl;
        let cluster = Cluster::new(&store, advertise, ttl, &self.config.state_dir).await?;
        tracing::info!(%store, %advertise, mtu = self.overlay_mtu, "cluster store configured");
        self.cluster = Some(cluster);
        Ok(())
    }

    /// `--advertise-addr`, which must be this host's, or the first uplink's address.
    async fn advertise_addr(&self) -> anyhow::Result<Ipv4Addr> {
        let addrs = self.nl.ipv4_addresses().await?;
        if let Some(given) = self.config.advertise_addr {
            return check_advertise(given, &addrs);
        }
        let uplinks = self.uplink_names().await?;
        for name in &uplinks {
            let Some(index) = self.nl.link_index(name).await? else {
                continue;
            };
            if let Some((_, a)) = addrs.iter().find(|(i, _)| *i == index) {
                return Ok(*a);
            }
        }
        Err(anyhow!(
            "no uplink with an IPv4 address to advertise (uplinks: {}): give --advertise-addr",
            uplinks.join(", ")
        ))
    }

    /// The device that has `addr` (index and name), where the tunnel's frames leave and arrive,
    /// and its MTU.
    async fn underlay_device(&self, addr: Ipv4Addr) -> anyhow::Result<((u32, String), u32)> {
        let addrs = self.nl.ipv4_addresses().await?;
        let (index, _) = addrs
            .iter()
            .find(|(_, a)| *a == addr)
            .ok_or_else(|| anyhow!("{addr} is not an address of this host"))?;
        let name = self
            .nl
            .link_name(*index)
            .await?
            .ok_or_else(|| anyhow!("the device with {addr} is gone"))?;
        if name == "lo" {
            return Err(anyhow!(
                "{addr} is on the loopback device: advertise an address of the underlay's interface"
            ));
        }
        let mtu = self.nl.mtu(*index).await?.unwrap_or(1500);
        if mtu < 576 + VXLAN_OVERHEAD {
            return Err(anyhow!(
                "the underlay's MTU ({mtu}) leaves too little for VXLAN"
            ));
        }
        Ok(((*index, name), mtu))
    }

    /// `network create -d overlay`: the network is recorded in the store (its name, VNI and
    /// subnet claimed there, all or nothing), then made here; every other host makes it when it
    /// sees it.
    pub(super) async fn overlay_create(&mut self, req: &NetworkCreate) -> OpResult<Reply> {
        let cluster = self.cluster()?;
        self.check_new_name(&req.name)?;
        let options = super::validate::key_values("option", &req.options)?;
        if let Some(key) = options.keys().next() {
            return Err(invalid(format!(
                "unsupported option {key:?} for the overlay driver (it takes none)"
            )));
        }
        for _ in 0..ATTEMPTS {
            let record = self.plan_overlay(&cluster, req, &options).await?;
            let Some(revision) = cluster.create_network(&record).await? else {
                continue; // another host took its VNI or subnet meanwhile
            };
            self.overlay_changes.insert(record.id.clone(), revision);
            let network = self.overlay_network(&record)?;
            if let Err(e) = self.install_network(network).await {
                if let Err(undo) = cluster.delete_network(&record).await {
                    tracing::error!(%undo, "cannot take network {} back from the store", record.name);
                }
                return Err(e);
            }
            self.sync_local_addrs().await?;
            return Ok(Reply::Created(record.id));
        }
        Err(conflict(
            "the cluster's networks kept changing while this one was made; try again",
        ))
    }

    /// A new overlay network's record: a subnet no network here or in the cluster has, the
    /// lowest free VNI.
    async fn plan_overlay(
        &self,
        cluster: &Cluster,
        req: &NetworkCreate,
        options: &BTreeMap<String, String>,
    ) -> OpResult<NetworkRecord> {
        let others = cluster.networks().await?;
        if others.iter().any(|n| n.name == req.name) {
            return Err(conflict(format!(
                "network with name {} already exists in the cluster",
                req.name
            )));
        }
        let mut taken: Vec<(String, Ipv4Net)> = self
            .state
            .networks
            .values()
            .map(|n| (n.name.clone(), n.subnet))
            .collect();
        taken.extend(others.iter().filter_map(|n| match n.subnet {
            IpNet::V4(s) => Some((n.name.clone(), s)),
            IpNet::V6(_) => None,
        }));
        let taken: Vec<(&str, Ipv4Net)> = taken.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        let (subnet, gateway) = plan_addresses(req, &taken, ipam::auto_overlay_subnet)?;
        let vni = records::free_vni(&cluster.vnis().await?, records::VNI_MIN)
            .ok_or_else(|| conflict("no free VNI left"))?;
        Ok(NetworkRecord {
            id: new_id(),
            name: req.name.clone(),
            subnet: IpNet::V4(subnet),
            gateway: IpAddr::V4(gateway),
            ip_range: req.ip_range.map(IpNet::V4),
            internal: req.internal,
            vni,
            options: options.clone(),
            user_subnet: req.subnet.is_some(),
            created: now(),
        })
    }

    /// This host's network for an overlay record.
    fn overlay_network(&self, rec: &NetworkRecord) -> OpResult<Network> {
        let v4_only = || {
            invalid(format!(
                "overlay network {}: IPv6 is not supported yet",
                rec.name
            ))
        };
        let (IpNet::V4(subnet), IpAddr::V4(gateway)) = (rec.subnet, rec.gateway) else {
            return Err(v4_only());
        };
        let ip_range = match rec.ip_range {
            Some(IpNet::V4(r)) => Some(r),
            Some(IpNet::V6(_)) => return Err(v4_only()),
            None => None,
        };
        Ok(Network {
            name: rec.name.clone(),
            id: rec.id.clone(),
            driver: DriverConfig::Overlay(OverlayConfig {
                device: drivers::overlay_device(&rec.id),
                vni: rec.vni,
                mtu: self.overlay_mtu,
            }),
            subnet,
            gateway,
            ip_range,
            internal: rec.internal,
            options: rec.options.clone(),
            net_id: self.state.free_net_id(),
            default: false,
            user_subnet: rec.user_subnet,
            created: rec.created,
            ipv6: None,
        })
    }

    /// Takes an overlay network out of the store, unless a host has a container on it.
    pub(super) async fn withdraw_overlay(&mut self, network: &Network) -> OpResult<()> {
        let cluster = self.cluster()?;
        let revision = cluster.delete_network(&record_of(network)).await?;
        self.overlay_changes.insert(network.id.clone(), revision);
        Ok(())
    }

    /// Claims an address on overlay network `network` for the container `container_id` in the
    /// store: the requested one if nobody has it, else the lowest free one. The claim is undone with the request.
    pub(super) async fn claim_address(
        &mut self,
        network: &Network,
        attachment: &Attachment,
        container_id: &str,
        undo: &mut Undo,
    ) -> OpResult<Ipv4Addr> {
        let cluster = self.cluster()?;
        let record = |ip| self.endpoint_record(&cluster, container_id, attachment, ip, false);
        let mut in_use: Vec<Ipv4Addr> = cluster
            .endpoints_of(&network.id)
            .await?
            .keys()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
            .collect();
        in_use.extend(self.state.addresses_in_use(&network.name));
        for _ in 0..ATTEMPTS {
            let ip = match attachment.ip {
                Some(ip) => {
                    network.pool().check_static(ip, &in_use)?;
                    ip
                }
                None => network.pool().allocate(&in_use)?,
            };
            if cluster
                .claim(&network.id, IpAddr::V4(ip), &record(ip))
                .await?
            {
                undo.push(Step::ReleaseAddress(network.id.clone(), IpAddr::V4(ip)));
                return Ok(ip);
            }
            if attachment.ip.is_some() {
                return Err(ipam::IpamError::InUse(ip.into()).into());
            }
            in_use.push(ip);
        }
        Err(conflict(format!(
            "could not claim an address on {} after {ATTEMPTS} attempts",
            network.name
        )))
    }

    /// The store's record of container `container_id`'s endpoint at `ip` on this host.
    fn endpoint_record(
        &self,
        cluster: &Cluster,
        container_id: &str,
        attachment: &Attachment,
        ip: Ipv4Addr,
        ready: bool,
    ) -> EndpointRecord {
        let container = self
            .state
            .containers
            .values()
            .find(|c| c.id == container_id)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        EndpointRecord {
            host: IpAddr::V4(cluster.advertise),
            container_id: container_id.into(),
            container,
            aliases: attachment.aliases.clone(),
            mac: ipam::mac_for(ip),
            ready,
        }
    }

    /// Tells the other hosts that the endpoint claimed at `ep.ip` is wired here: they may send
    /// to it and answer its name from now on.
    pub(super) async fn announce_endpoint(
        &self,
        network: &Network,
        container_id: &str,
        attachment: &Attachment,
        ip: Ipv4Addr,
    ) -> OpResult<()> {
        let cluster = self.cluster()?;
        let record = self.endpoint_record(&cluster, container_id, attachment, ip, true);
        cluster
            .publish(&network.id, IpAddr::V4(ip), &record)
            .await?;
        Ok(())
    }

    /// Gives an overlay endpoint's address back to the store (a stopped container's).
    pub(super) async fn release_address(&self, network: &Network, ip: Ipv4Addr) -> Vec<String> {
        let Some(cluster) = &self.cluster else {
            return vec![];
        };
        match cluster.release(&network.id, IpAddr::V4(ip)).await {
            Ok(()) => vec![],
            Err(e) => vec![e.to_string()],
        }
    }

    /// At start, before serving: the first session's lease, snapshot and resync, so that the
    /// daemon serves with the store's view (and this host's claims as its state says). With
    /// etcd away, the daemon starts anyway and the follower catches up once it is back.
    pub(super) async fn first_sync(&mut self) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let snap = match cluster.ensure_lease().await {
            Ok(_) => cluster.snapshot().await,
            Err(e) => Err(e),
        };
        match snap {
            Ok(snap) => self.cluster_resync(snap).await,
            Err(e) => {
                tracing::warn!(%e, "starting without the cluster store; following it once it answers");
                // The datapath kept the other hosts' endpoints (pinned maps); the saved view
                // gives their names back to DNS until the store answers.
                if let Some(view) = cluster.saved_view() {
                    self.cluster_view = view;
                    self.refresh_dns();
                }
            }
        }
    }

    /// Where the store's claims of this host and its running overlay endpoints differ.
    pub(super) async fn claim_differences(&self) -> OpResult<Vec<(String, String)>> {
        let Some(cluster) = &self.cluster else {
            return Ok(vec![]);
        };
        let snap = cluster.snapshot().await?;
        Ok(claim_differences(
            &self.state,
            &snap,
            IpAddr::V4(cluster.advertise),
        ))
    }

    /// After (re)connecting to the store: its snapshot replaces what this daemon knew of the
    /// cluster, this host's endpoints are written again on its current lease (and those the
    /// store has for it that it no longer has are removed), and the datapath follows.
    pub(super) async fn cluster_resync(&mut self, snap: Snapshot) {
        self.cluster_view = snap;
        if let Err(e) = self.publish_own().await {
            tracing::error!(%e, "cannot write this host's endpoints to the cluster store");
        }
        self.sync_cluster().await;
    }

    /// Changes the store's watch reported, up to `revision`.
    pub(super) async fn cluster_events(&mut self, events: &[etcd_client::Event], revision: i64) {
        self.cluster_view.revision = self.cluster_view.revision.max(revision);
        for event in events {
            let Some(kv) = event.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key());
            match event.event_type() {
                etcd_client::EventType::Put => {
                    if let Err(bad) = self.cluster_view.put(&key, kv.value()) {
                        tracing::error!(key = %bad.key, reason = %bad.reason, "skipping a record");
                    }
                }
                etcd_client::EventType::Delete => self.cluster_view.delete(&key),
            }
        }
        self.sync_cluster().await;
    }

    async fn publish_own(&mut self) -> Result<(), ClusterError> {
        let Some(cluster) = self.cluster.clone() else {
            return Ok(());
        };
        let me = IpAddr::V4(cluster.advertise);
        let own = own_endpoints(&self.state, me);
        for (id, ip, record) in &own {
            cluster.publish(id, *ip, record).await?;
        }
        let stale: Vec<(String, IpAddr)> = self
            .cluster_view
            .endpoints
            .iter()
            .flat_map(|(id, eps)| eps.iter().map(move |(ip, e)| (id, ip, e)))
            .filter(|(id, ip, e)| e.host == me && !own.iter().any(|(i, a, _)| i == *id && a == *ip))
            .map(|(id, ip, _)| (id.clone(), *ip))
            .collect();
        for (id, ip) in stale {
            cluster.release(&id, ip).await?;
        }
        Ok(())
    }

    /// Makes this host as the cluster view says: overlay networks made and removed, the tunnel
    /// map and the ARP responder with the other hosts' endpoints, DNS with their names. Logs what
    /// it cannot do and goes on.
    async fn sync_cluster(&mut self) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let me = IpAddr::V4(cluster.advertise);
        let view = std::mem::take(&mut self.cluster_view);
        // A network this daemon made or removed after the view's revision is as it made it.
        let settled = |id: &str| {
            self.overlay_changes
                .get(id)
                .is_none_or(|r| *r <= view.revision)
        };
        let mut adopt = vec![];
        for record in view.networks.values() {
            if !settled(&record.id) || self.state.networks.values().any(|n| n.id == record.id) {
                continue;
            }
            adopt.push(record.clone());
        }
        let gone: Vec<String> = self
            .state
            .networks
            .values()
            .filter(|n| n.is_global() && settled(&n.id) && !view.networks.contains_key(&n.id))
            .map(|n| n.name.clone())
            .collect();
        for record in &adopt {
            if let Err(e) = self.adopt_overlay(record).await {
                tracing::error!(%e, network = %record.name, "cannot make the cluster's overlay network here");
            }
        }
        for name in &gone {
            if !self.state.containers_on(name).is_empty() {
                tracing::error!(network = %name, "the overlay network left the cluster store but has containers here; kept");
                continue;
            }
            if let Err(e) = self.remove_network(name).await {
                tracing::error!(%e, network = %name, "cannot remove an overlay network");
            }
        }
        let networks_changed = !adopt.is_empty() || !gone.is_empty();
        if let Err(e) = self.sync_remotes(&view, me) {
            tracing::error!(%e, "cannot bring the tunnel map up to date");
        }
        if let Err(e) = cluster.save_view(&view) {
            tracing::warn!(%e, "cannot keep the cluster view in the state dir");
        }
        self.cluster_view = view;
        // A network's gateway is a host address: published ports answer on it.
        if networks_changed {
            if let Err(e) = self.sync_local_addrs().await {
                tracing::error!(%e, "cannot refresh the host addresses");
            }
        }
        self.refresh_dns();
    }

    async fn adopt_overlay(&mut self, record: &NetworkRecord) -> OpResult<()> {
        if self.state.networks.contains_key(&record.name) {
            return Err(conflict(format!(
                "a network of this host is called {} too",
                record.name
            )));
        }
        let network = self.overlay_network(record)?;
        if let Some(other) = self
            .state
            .networks
            .values()
            .find(|n| ipam::overlaps(n.subnet, network.subnet))
        {
            return Err(conflict(format!(
                "its subnet {} overlaps network {} of this host",
                network.subnet, other.name
            )));
        }
        self.install_network(network).await
    }

    /// The tunnel map holds exactly the other hosts' endpoints on this host's overlay
    /// networks, and the ARP responder answers for them.
    fn sync_remotes(&mut self, view: &Snapshot, me: IpAddr) -> OpResult<()> {
        let wanted = remote_tunnels(&self.state, view, me);
        let current = self.dp.remotes()?;
        let diff = plan::diff(&current, &wanted);
        let local: Vec<[u8; 4]> = self.state.endpoints().map(|(_, e)| e.ip.octets()).collect();
        let neighbors = MapDiff {
            upsert: diff
                .upsert
                .iter()
                .map(|(a, t)| plan::remote_neighbor(*a, t))
                .collect(),
            remove: diff
                .remove
                .iter()
                .filter(|a| !local.contains(a))
                .copied()
                .collect(),
        };
        self.dp.apply_remotes(diff)?;
        self.dp.apply_neighbors(neighbors)?;
        Ok(())
    }

    /// The other hosts' endpoints on this host's overlay networks, for DNS: (network, container,
    /// short ID, aliases, address).
    pub(super) fn remote_names(&self) -> Vec<(String, &EndpointRecord, Ipv4Addr)> {
        let Some(me) = self.cluster.as_ref().map(|c| IpAddr::V4(c.advertise)) else {
            return vec![];
        };
        let mut out = vec![];
        for n in self.state.networks.values().filter(|n| n.is_global()) {
            for (ip, e) in self.cluster_view.endpoints_of(&n.id) {
                if let (IpAddr::V4(ip), true) = (ip, e.host != me && e.ready) {
                    out.push((n.name.clone(), e, *ip));
                }
            }
        }
        out
    }
}

/// Follows the cluster store for as long as the daemon runs: a session keeps this host's lease
/// alive and applies the store's changes; when etcd goes away the session ends (the datapath
/// keeps what it has) and the next one starts from a fresh snapshot once etcd answers again.
pub async fn follow(cluster: Cluster, daemon: Arc<Mutex<Daemon>>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let started = Instant::now();
        if let Err(e) = session(&cluster, &daemon).await {
            tracing::warn!(%e, "cluster store session ended; starting again");
        }
        backoff = if started.elapsed() > Duration::from_secs(10) {
            Duration::from_millis(200)
        } else {
            (backoff * 2).min(Duration::from_secs(2))
        };
        tokio::time::sleep(backoff).await;
    }
}

async fn session(cluster: &Cluster, daemon: &Mutex<Daemon>) -> Result<(), ClusterError> {
    let lease = cluster.ensure_lease().await?;
    let (mut keeper, mut answers) = cluster.keep_alive(lease).await?;
    // Read and applied under the daemon's lock: no request of this host comes between.
    let revision = {
        let mut daemon = daemon.lock().await;
        let snap = cluster.snapshot().await?;
        let revision = snap.revision;
        daemon.cluster_resync(snap).await;
        revision
    };
    let mut watch = cluster.watch(revision + 1).await?;
    tracing::info!(lease, revision, "following the cluster store");
    let mut tick = tokio::time::interval(cluster.ttl / 3);
    loop {
        tokio::select! {
            _ = tick.tick() => keeper.keep_alive().await.map_err(|e| cluster.unreachable(e))?,
            answer = answers.message() => match answer.map_err(|e| cluster.unreachable(e))? {
                Some(a) if a.ttl() > 0 => {}
                _ => {
                    cluster.drop_lease();
                    return Err(ClusterError::LeaseLost { store: cluster.store.clone() });
                }
            },
            message = watch.message() => {
                let message = message.map_err(|e| cluster.unreachable(e))?;
                let Some(resp) = message.filter(|r| !r.canceled()) else {
                    return Err(ClusterError::Unreachable {
                        store: cluster.store.clone(),
                        reason: "the watch ended".into(),
                    });
                };
                let revision = resp.header().map_or(0, |h| h.revision());
                daemon.lock().await.cluster_events(resp.events(), revision).await;
            }
        }
    }
}

/// The store's record of a local overlay network (what removing it needs).
fn record_of(n: &Network) -> NetworkRecord {
    NetworkRecord {
        id: n.id.clone(),
        name: n.name.clone(),
        subnet: IpNet::V4(n.subnet),
        gateway: IpAddr::V4(n.gateway),
        ip_range: n.ip_range.map(IpNet::V4),
        internal: n.internal,
        vni: n.vni().unwrap_or_default(),
        options: n.options.clone(),
        user_subnet: n.user_subnet,
        created: n.created,
    }
}

/// This host's running endpoints on overlay networks, as the store records them.
fn own_endpoints(state: &State, me: IpAddr) -> Vec<(String, IpAddr, EndpointRecord)> {
    let mut out = vec![];
    for c in state
        .containers
        .values()
        .filter(|c| c.status == Status::Running)
    {
        for ep in &c.endpoints {
            let Some(n) = state.networks.get(&ep.network).filter(|n| n.is_global()) else {
                continue;
            };
            let aliases = c
                .attachments
                .iter()
                .find(|a| a.network == n.name)
                .map(|a| a.aliases.clone())
                .unwrap_or_default();
            let record = EndpointRecord {
                host: me,
                container_id: c.id.clone(),
                container: c.name.clone(),
                aliases,
                mac: ep.mac,
                ready: true,
            };
            out.push((n.id.clone(), IpAddr::V4(ep.ip), record));
        }
    }
    out
}

/// The store's claims of host `me` against its running overlay endpoints: (address, problem).
pub fn claim_differences(state: &State, snap: &Snapshot, me: IpAddr) -> Vec<(String, String)> {
    let own = own_endpoints(state, me);
    let mut out = vec![];
    for (id, eps) in &snap.endpoints {
        for (ip, e) in eps.iter().filter(|(_, e)| e.host == me) {
            match own.iter().find(|(i, a, _)| i == id && a == ip) {
                None => out.push((
                    ip.to_string(),
                    format!("claimed for {}, which does not run here", e.container),
                )),
                Some((_, _, r)) if r != e => out.push((
                    ip.to_string(),
                    format!("claimed for {}, the state has {}", e.container, r.container),
                )),
                Some(_) => {}
            }
        }
    }
    for (id, ip, r) in &own {
        if !snap.endpoints_of(id).any(|(a, _)| a == ip) {
            out.push((
                ip.to_string(),
                format!("{} runs here, but the store has no claim", r.container),
            ));
        }
    }
    out
}

/// The tunnel entries of the other hosts' endpoints on the state's overlay networks (never for
/// an address an endpoint of this host has).
pub fn remote_tunnels(state: &State, view: &Snapshot, me: IpAddr) -> BTreeMap<[u8; 4], Tunnel> {
    let local: Vec<Ipv4Addr> = state.endpoints().map(|(_, e)| e.ip).collect();
    let mut out = BTreeMap::new();
    for n in state.networks.values() {
        let Some(vni) = n.vni() else { continue };
        for (ip, e) in view.endpoints_of(&n.id) {
            let (IpAddr::V4(ip), IpAddr::V4(host)) = (*ip, e.host) else {
                continue;
            };
            if e.host == me || !e.ready || local.contains(&ip) {
                continue;
            }
            let tunnel = Tunnel {
                host: host.octets(),
                vni,
                net_id: n.net_id,
                mac: e.mac,
                _pad: [0; 2],
            };
            out.insert(ip.octets(), tunnel);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing;

    fn overlay(name: &str, subnet: &str, net_id: u32, vni: u32) -> Network {
        let mut n = testing::network(name, subnet, net_id);
        n.driver = DriverConfig::Overlay(OverlayConfig {
            device: drivers::overlay_device(&n.id),
            vni,
            mtu: 1450,
        });
        n
    }

    fn endpoint(host: &str, name: &str, ip: &str) -> (IpAddr, EndpointRecord) {
        let ip: Ipv4Addr = ip.parse().unwrap();
        (
            IpAddr::V4(ip),
            EndpointRecord {
                host: host.parse().unwrap(),
                container_id: format!("{name:0>64}"),
                container: name.into(),
                aliases: vec![],
                mac: ipam::mac_for(ip),
                ready: true,
            },
        )
    }

    #[test]
    fn only_other_hosts_wired_endpoints_on_known_overlays_get_tunnels() {
        let mut state = State::default();
        let ov = overlay("ov", "10.0.0.0/24", 3, 4096);
        let id = ov.id.clone();
        state.networks.insert("ov".into(), ov);
        state
            .networks
            .insert("br".into(), testing::network("br", "172.18.0.0/16", 2));
        let mut view = Snapshot::default();
        let (wiring_ip, mut wiring) = endpoint("10.98.0.3", "wiring", "10.0.0.4");
        wiring.ready = false;
        view.endpoints.insert(
            id,
            [
                endpoint("10.98.0.2", "mine", "10.0.0.2"),
                endpoint("10.98.0.3", "theirs", "10.0.0.3"),
                (wiring_ip, wiring),
            ]
            .into(),
        );
        view.endpoints.insert(
            "unknown".into(),
            [endpoint("10.98.0.3", "x", "10.9.0.3")].into(),
        );
        let tunnels = remote_tunnels(&state, &view, "10.98.0.2".parse().unwrap());
        assert_eq!(
            tunnels,
            BTreeMap::from([(
                [10, 0, 0, 3],
                Tunnel {
                    host: [10, 98, 0, 3],
                    vni: 4096,
                    net_id: 3,
                    mac: ipam::mac_for("10.0.0.3".parse().unwrap()),
                    _pad: [0; 2],
                }
            )])
        );
    }

    #[test]
    fn the_store_must_claim_exactly_the_overlay_endpoints_this_host_runs() {
        let mut state = State::default();
        let ov = overlay("ov", "10.0.0.0/24", 3, 4096);
        let id = ov.id.clone();
        state.networks.insert("ov".into(), ov);
        state.containers.insert(
            "web".into(),
            testing::running("web", &[("ov", "veth1", "10.0.0.2", &["www"])]),
        );
        let me: IpAddr = "10.98.0.11".parse().unwrap();
        let mut snap = Snapshot::default();
        assert_eq!(
            claim_differences(&state, &snap, me),
            [(
                "10.0.0.2".into(),
                "web runs here, but the store has no claim".into()
            )]
        );
        let own = own_endpoints(&state, me);
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].2.aliases, ["www"]);
        let (_, ip, record) = own[0].clone();
        let (stale_ip, mut stale) = endpoint("10.98.0.11", "gone", "10.0.0.9");
        stale.host = me;
        let (other_ip, other) = endpoint("10.98.0.12", "theirs", "10.0.0.3");
        snap.endpoints.insert(
            id,
            [(ip, record), (stale_ip, stale), (other_ip, other)].into(),
        );
        assert_eq!(
            claim_differences(&state, &snap, me),
            [(
                "10.0.0.9".into(),
                "claimed for gone, which does not run here".into()
            )],
            "another host's claims are its own business"
        );
    }
}
