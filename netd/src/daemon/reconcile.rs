//! Start-up reconciliation: make the kernel match the saved state. What a previous daemon left
//! running is adopted (maps reused, the new program swapped into pinned links); what a crash left
//! half-made (devices tagged as netd's but not in the state, stray namespace files, map entries
//! and link pins) is removed; containers whose devices vanished are marked stopped.
use std::collections::{BTreeMap, BTreeSet};

use super::{error::OpResult, undo::Undo, Daemon};
use crate::{
    datapath::plan,
    netns,
    state::{NetworkMode, Status},
};

impl Daemon {
    pub(super) async fn reconcile(&mut self) -> OpResult<()> {
        self.reap_devices().await?;
        self.drop_broken_containers().await?;
        self.ensure_bridges().await?;
        self.pin_neighbors().await?;
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
            .map(|n| n.bridge.clone())
            .chain(self.state.endpoints().map(|(_, ep)| ep.host_veth.clone()))
            .collect();
        for link in self.nl.owned_links().await? {
            if !known.contains(&link.name) {
                tracing::warn!(device = %link.name, owner = %link.owner, "removing a device left half-made");
                self.nl.delete_link(&link.name).await?;
            }
        }
        Ok(())
    }

    /// Running containers whose namespace or devices are gone are marked stopped.
    async fn drop_broken_containers(&mut self) -> OpResult<()> {
        let mut broken = vec![];
        for c in self
            .state
            .containers
            .values()
            .filter(|c| c.status == Status::Running)
        {
            let own = matches!(c.mode, NetworkMode::Bridge | NetworkMode::None);
            let mut ok = !own || self.netns_path(c).exists();
            for ep in &c.endpoints {
                ok &= self.nl.link_index(&ep.host_veth).await?.is_some();
            }
            if !ok {
                broken.push(c.clone());
            }
        }
        for c in broken {
            tracing::warn!(container = %c.name, "its namespace or devices are gone; marking it stopped");
            for err in self.stop_steps(&c).await? {
                tracing::warn!(container = %c.name, %err, "teardown of a broken container");
            }
        }
        Ok(())
    }

    /// Every network has its bridge (the default network is created on first start).
    async fn ensure_bridges(&mut self) -> OpResult<()> {
        if !self
            .state
            .networks
            .contains_key(super::networks::DEFAULT_NETWORK)
        {
            let network = self.default_network();
            if self.nl.link_index(&network.bridge).await?.is_some() {
                self.nl.delete_link(&network.bridge).await?;
            }
            self.install_network(network).await?;
        }
        let networks: Vec<_> = self.state.networks.values().cloned().collect();
        for network in networks {
            match self.nl.link_index(&network.bridge).await? {
                // A bridge an older netd made without a fixed address gets the one the ARP
                // responder answers with.
                Some(index) => self.nl.set_mac(index, plan::bridge_mac(&network)).await?,
                None => {
                    tracing::warn!(network = %network.name, "bridge missing; creating it again");
                    let mut undo = Undo::default();
                    self.create_bridge(&network, &mut undo).await?;
                    undo.commit();
                }
            }
        }
        Ok(())
    }

    /// Each bridge has exactly the addresses of its running containers pinned (see
    /// [`super::endpoint`]).
    async fn pin_neighbors(&self) -> OpResult<()> {
        for network in self.state.networks.values() {
            let bridge = self.nl.require_link(&network.bridge).await?;
            let wanted: BTreeMap<_, _> = self
                .state
                .endpoints()
                .filter(|(_, ep)| ep.network == network.name)
                .map(|(_, ep)| (ep.ip, ep.mac))
                .collect();
            for ip in self.nl.pinned_neighbors(bridge).await? {
                if !wanted.contains_key(&ip) {
                    self.nl.unpin_neighbor(bridge, ip).await?;
                }
            }
            for (ip, mac) in wanted {
                self.nl.pin_neighbor(bridge, ip, mac).await?;
            }
        }
        Ok(())
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
        for (veth, entry) in &wanted {
            let index = self.nl.require_link(veth).await?;
            self.dp.reattach_endpoint(veth, index, *entry)?;
            by_index.insert(index, *entry);
        }
        let current = self.dp.endpoints()?;
        self.dp.apply_endpoints(plan::diff(&current, &by_index))?;
        let current = self.dp.networks()?;
        self.dp
            .apply_networks(plan::diff(&current, &plan::networks(&self.state)))?;
        let current = self.dp.neighbors()?;
        self.dp
            .apply_neighbors(plan::diff(&current, &plan::neighbors(&self.state)))?;
        let mut uplink_pins = self.sync_uplinks().await?;
        uplink_pins.extend(self.sync_cgroup()?);
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
