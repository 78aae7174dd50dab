//! Housekeeping of translated flows: expired ones are removed from the NAT table every few
//! seconds, and the host's addresses are refreshed (they can change under the daemon).
use netd_common::{maps, FlowKey, NatEntry};

use super::{error::OpResult, Daemon};
use crate::datapath::{conntrack, plan::MapDiff};

impl Daemon {
    /// One housekeeping round; returns how many NAT entries expired.
    pub async fn tick(&mut self) -> OpResult<usize> {
        self.sync_local_addrs().await?;
        let entries = self.dp.dump::<FlowKey, NatEntry>(maps::NAT)?;
        let now = super::maps::monotonic_ns();
        let expired = conntrack::expired(&entries, now, &self.config.timeouts);
        let count = expired.len();
        self.dp.apply::<FlowKey, NatEntry>(
            maps::NAT,
            MapDiff {
                upsert: vec![],
                remove: expired,
            },
        )?;
        Ok(count)
    }
}
