//! Uplinks (the interfaces that face the outside) and the host's own addresses, as the uplink and
//! endpoint programs need them: which interfaces get the uplink programs and which address egress
//! is translated to, and which destinations a published port answers on.
use std::collections::BTreeMap;

use netd_common::{maps, Uplink};

use super::{
    error::{invalid, OpError, OpResult},
    Daemon,
};
use crate::datapath::{plan, uplink_pin};

impl Daemon {
    /// `--uplink` if given, else every interface that carries a default route.
    pub(super) async fn uplink_names(&self) -> OpResult<Vec<String>> {
        if !self.config.uplinks.is_empty() {
            return Ok(self.config.uplinks.clone());
        }
        Ok(self.nl.default_route_interfaces().await?)
    }

    /// Attaches the uplink programs and records each uplink's SNAT address; forgets uplinks
    /// that are gone. Returns the link pins it owns.
    pub(super) async fn sync_uplinks(&mut self) -> OpResult<Vec<String>> {
        let names = self.uplink_names().await?;
        let addrs = self.nl.ipv4_addresses().await?;
        let mut wanted = BTreeMap::new();
        let mut pins = vec![];
        for name in &names {
            let index = self
                .nl
                .link_index(name)
                .await?
                .ok_or_else(|| invalid(format!("uplink {name} does not exist")))?;
            let Some((_, addr)) = addrs.iter().find(|(i, _)| *i == index) else {
                tracing::warn!(uplink = %name, "no IPv4 address: egress through it is not translated");
                continue;
            };
            let uplink = Uplink {
                addr: addr.octets(),
                _pad: 0,
            };
            self.dp.attach_uplink(name, index, uplink)?;
            wanted.insert(index, uplink);
            pins.extend([uplink_pin(name, "in"), uplink_pin(name, "out")]);
        }
        let current = self.dp.dump::<u32, Uplink>(maps::UPLINKS)?;
        self.dp
            .apply(maps::UPLINKS, plan::diff(&current, &wanted))?;
        self.uplinks = names;
        Ok(pins)
    }

    /// Hooks host sockets of this namespace in the configured cgroup. Returns the link pins.
    pub(super) fn sync_cgroup(&mut self) -> OpResult<Vec<String>> {
        let Some(cgroup) = self.config.cgroup.clone() else {
            tracing::info!("--no-cgroup-hooks: host processes reach published ports only through container addresses");
            return Ok(vec![]);
        };
        let cookie = crate::netns::cookie().map_err(|source| OpError::Io {
            what: "read the netns cookie of",
            path: "this namespace".into(),
            source,
        })?;
        Ok(self.dp.attach_cgroup(&cgroup, cookie)?)
    }

    /// Every IPv4 address of the namespace goes into the local-address map.
    pub(super) async fn sync_local_addrs(&mut self) -> OpResult<()> {
        let wanted: BTreeMap<[u8; 4], u32> = self
            .nl
            .ipv4_addresses()
            .await?
            .into_iter()
            .map(|(_, ip)| (ip.octets(), 0))
            .collect();
        let current = self.dp.dump::<[u8; 4], u32>(maps::LOCAL_ADDRS)?;
        self.dp
            .apply(maps::LOCAL_ADDRS, plan::diff(&current, &wanted))?;
        Ok(())
    }
}
