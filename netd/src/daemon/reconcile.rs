//! Start-up reconciliation: make the kernel match the saved state. What a previous daemon left
//! running is adopted (maps reused, the new program swapped into pinned links); what a crash left
//! half-made (devices tagged as netd's but not in the state, stray namespace files, map entries
//! and link pins) is removed; containers whose devices vanished are marked stopped.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use super::{drivers, error::OpResult, Daemon};
use crate::{
    datapath::plan,
    netns,
    state::{EndpointState, NetworkMode, Status},
};

impl Daemon {
    pub(super) async fn reconcile(&mut self) -> OpResult<()> {
        self.reap_devices().await?;
        self.drop_broken_containers().await?;
        self.adopt_networks().await?;
        self.reap_netns_files().await;
        self.reap_container_files();
        self.sync_maps().await?;
        self.save()
    }

    /// Deletes devices tagged as netd's that the state does not know.
    async fn reap_devices(&mut self) -> OpResult<()> {
        let known: BTreeSet<String> = self
            .state
            .networks
            .values()
            .flat_map(|n| drivers::ops(&n.driver).host_devices())
            .chain(
                self.state
                    .endpoints()
                    .filter_map(|(_, ep)| ep.host_veth.clone()),
            )
            .chain(
                self.cluster
                    .is_some()
                    .then(|| super::overlay::VXLAN_DEVICE.to_string()),
            )
            .collect();
        for link in self.nl.owned_links().await? {
            if !known.contains(&link.name) {
                tracing::warn!(device = %link.name, owner = %link.owner, "removing a device left half-made");
                self.nl.delete_link(&link.name).await?;
            }
        }
        Ok(())
    }

    /// Running containers whose namespace or devices are gone are marked stopped, and removed if
    /// a runtime manages them (it deleted the namespace).
    async fn drop_broken_containers(&mut self) -> OpResult<()> {
        let mut broken = vec![];
        let running: Vec<_> = self
            .state
            .containers
            .values()
            .filter(|c| c.status == Status::Running)
            .cloned()
            .collect();
        for c in &running {
            let own = matches!(c.mode, NetworkMode::Bridge | NetworkMode::None);
            let netns = self.netns_path(c);
            let mut ok = !own || netns.exists();
            for ep in &c.endpoints {
                ok &= self.endpoint_alive(&c.id, ep, &netns).await?;
            }
            if !ok {
                broken.push(c);
            }
        }
        for c in broken {
            tracing::warn!(container = %c.name, "its namespace or devices are gone; marking it stopped");
            for err in self.stop_steps(c).await? {
                tracing::warn!(container = %c.name, %err, "teardown of a broken container");
            }
            // A runtime's container whose namespace is gone was deleted by the runtime while the
            // daemon was away (CNI DEL succeeds then): netd forgets it as DEL would have.
            if c.runtime.is_some() && !self.netns_path(c).exists() {
                tracing::info!(container = %c.name, "its runtime removed it while the daemon was away");
                self.container_rm(&c.name, true).await?;
            }
        }
        Ok(())
    }

    /// Every network has what its driver made for it, matched to the endpoints on it (the
    /// default network is created on first start).
    async fn adopt_networks(&mut self) -> OpResult<()> {
        if !self
            .state
            .networks
            .contains_key(super::networks::DEFAULT_NETWORK)
        {
            let network = self.default_network();
            for device in drivers::ops(&network.driver).host_devices() {
                self.nl.delete_link(&device).await?;
            }
            self.install_network(network).await?;
        }
        let networks: Vec<_> = self.state.networks.values().cloned().collect();
        for network in networks {
            let endpoints: Vec<(EndpointState, String, PathBuf)> = self
                .state
                .endpoints()
                .filter(|(_, ep)| ep.network == network.name)
                .map(|(c, ep)| (ep.clone(), c.id.clone(), self.netns_path(c)))
                .collect();
            let placed: Vec<drivers::Placed> = endpoints
                .iter()
                .map(|(ep, id, netns)| drivers::Placed {
                    ep,
                    container_id: id,
                    netns,
                })
                .collect();
            let mut env = drivers::Env {
                nl: &self.nl,
                dp: &mut self.dp,
            };
            drivers::ops(&network.driver)
                .adopt(&mut env, &network, &placed)
                .await?;
        }
        Ok(())
    }

    /// Whether the devices of an endpoint (of container `container_id`, whose namespace is at
    /// `netns`) are all there; one whose network is gone is not.
    async fn endpoint_alive(
        &mut self,
        container_id: &str,
        ep: &EndpointState,
        netns: &Path,
    ) -> OpResult<bool> {
        let Some(network) = self.state.networks.get(&ep.network) else {
            return Ok(false);
        };
        let env = drivers::Env {
            nl: &self.nl,
            dp: &mut self.dp,
        };
        let at = drivers::Placed {
            ep,
            container_id,
            netns,
        };
        drivers::ops(&network.driver)
            .endpoint_alive(&env, &at)
            .await
    }

    /// Namespace files under the run dir that no running container owns, and the processes
    /// still in them (a stop recorded before a kill cut its teardown short).
    async fn reap_netns_files(&self) {
        let owned: BTreeSet<_> = self
            .state
            .containers
            .values()
            .filter(|c| c.status == Status::Running && c.adopted_netns.is_none())
            .map(|c| self.netns_path(c))
            .collect();
        let Ok(entries) = std::fs::read_dir(self.config.netns_dir()) else {
            return;
        };
        for path in entries.filter_map(|e| Some(e.ok()?.path())) {
            if !owned.contains(&path) {
                tracing::warn!(path = %path.display(), "removing a namespace file left half-made");
                super::containers::kill_all(&path).await;
                if let Err(e) = netns::remove(&path) {
                    tracing::error!(%e, "cannot remove stray namespace file");
                }
            }
        }
    }

    /// Files under the run dir's `containers/` of containers the state does not have (a removal
    /// recorded before a kill cut it short).
    fn reap_container_files(&self) {
        let Ok(entries) = std::fs::read_dir(self.config.containers_dir()) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !self.state.containers.contains_key(&name) {
                tracing::warn!(container = %name, "removing the files of a removed container");
                if let Err(e) = self.remove_files(&name) {
                    tracing::error!(%e, "cannot remove stray container files");
                }
            }
        }
    }

    /// Maps and link pins as the state says: stale entries and pins go, every live endpoint gets
    /// its entry and the current program in its filter.
    async fn sync_maps(&mut self) -> OpResult<()> {
        let wanted = plan::endpoints(&self.state);
        let mut by_index = BTreeMap::new();
        let mut index_of = BTreeMap::new();
        for (veth, entry) in &wanted {
            let index = self.nl.require_link(veth).await?;
            self.dp.reattach_endpoint(veth, index, *entry)?;
            by_index.insert(index, *entry);
            index_of.insert(veth.clone(), index);
        }
        let current = self.dp.endpoints()?;
        self.dp.apply_endpoints(plan::diff(&current, &by_index))?;
        let current = self.dp.veths()?;
        self.dp
            .apply_veths(plan::diff(&current, &plan::veths(&self.state, &index_of)))?;
        let current = self.dp.overlay_ports()?;
        self.dp.apply_overlay_ports(plan::diff(
            &current,
            &plan::overlay_ports(&self.state, &index_of),
        ))?;
        let current = self.dp.networks()?;
        self.dp
            .apply_networks(plan::diff(&current, &plan::networks(&self.state)))?;
        self.dp.sync6(&plan::state_maps6(&self.state, &index_of))?;
        // Other hosts' endpoints stay as the tunnel map has them (the cluster store's watch
        // brings them up to date), but not those of networks that are gone.
        let remotes = self.dp.remotes()?;
        let live = plan::live_remotes(&self.state, &remotes);
        self.dp.apply_remotes(plan::diff(&remotes, &live))?;
        let current = self.dp.neighbors()?;
        self.dp
            .apply_neighbors(plan::diff(&current, &plan::neighbors(&self.state, &live)))?;
        let mut uplink_pins = self.sync_uplinks().await?;
        uplink_pins.extend(self.sync_cgroup()?);
        uplink_pins.extend(plan::vlan_pins(&self.state));
        if self.cluster.is_some() {
            uplink_pins.push(crate::datapath::TUNNEL_PIN.to_string());
            uplink_pins.push(crate::datapath::UNDERLAY_PIN.to_string());
        }
        let macvlan_pins = plan::macvlan_pins(&self.state);
        let guarded = plan::macvlan_entries(&self.state);
        for err in self
            .dp
            .prune_macvlan(|e| guarded.contains(e), &macvlan_pins)
        {
            tracing::warn!(%err, "removing stale macvlan anti-spoofing state");
        }
        uplink_pins.extend(macvlan_pins);
        self.sync_local_addrs().await?;
        self.sync_ports().await?;
        // Endpoints have filters now; any other pin is an uplink's that is gone, or an endpoint
        // link of an older netd (whose veth already has its filter from above).
        for pin in self.dp.pinned_links()? {
            if !uplink_pins.contains(&pin) {
                tracing::warn!(link = %pin, "unpinning a stale link");
                if let Err(e) = self.dp.unpin_link(&pin) {
                    tracing::error!(%e, "cannot unpin stale link");
                }
            }
        }
        Ok(())
    }
}
