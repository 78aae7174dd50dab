//! Housekeeping of translated flows: expired ones are removed from the NAT table every few
//! seconds, and the host's addresses are refreshed (they can change under the daemon).
//!
//! The sweep reads the whole NAT table (two syscalls per entry) on its own handle of the pinned
//! map, in a blocking thread and without the daemon's lock, so requests are served while it runs.
use std::{collections::BTreeMap, path::Path};

use aya::maps::{HashMap, MapData, MapError};
use netd_common::{maps, FlowKey, NatEntry};

use super::{error::OpResult, Daemon};
use crate::datapath::{conntrack, conntrack::Timeouts, DatapathError};

impl Daemon {
    /// The part of housekeeping that needs the daemon: the host's addresses.
    pub async fn tick(&mut self) -> OpResult<()> {
        self.sync_local_addrs().await
    }

    /// A sweeper of this daemon's NAT table.
    pub fn nat_sweeper(&self) -> Result<NatSweeper, DatapathError> {
        NatSweeper::open(&self.dp.map_pin(maps::NAT), self.config.timeouts)
    }
}

/// Removes expired flows from the pinned NAT table.
pub struct NatSweeper {
    map: HashMap<MapData, FlowKey, NatEntry>,
    timeouts: Timeouts,
}

fn nat_err(source: MapError) -> DatapathError {
    DatapathError::Map {
        name: maps::NAT,
        source,
    }
}

impl NatSweeper {
    pub fn open(pin: &Path, timeouts: Timeouts) -> Result<Self, DatapathError> {
        let data = MapData::from_pin(pin).map_err(nat_err)?;
        let map = HashMap::try_from(aya::maps::Map::LruHashMap(data)).map_err(nat_err)?;
        Ok(Self { map, timeouts })
    }

    /// One sweep; returns how many entries expired.
    pub fn sweep(&mut self) -> Result<usize, DatapathError> {
        let entries: BTreeMap<FlowKey, NatEntry> =
            self.map.iter().collect::<Result<_, _>>().map_err(nat_err)?;
        let now = super::maps::monotonic_ns();
        let expired = conntrack::expired(&entries, now, &self.timeouts);
        drop(entries);
        release_free_memory();
        for key in &expired {
            match self.map.remove(key) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(nat_err(e)),
            }
        }
        Ok(expired.len())
    }
}

/// Returns the allocator's free memory to the system, once per sweep (a walk of the free lists,
/// well under a millisecond). glibc trims only the top of each heap by itself, and serves each
/// thread from an arena of its own: without this, the sweep's copy of a table that filled up
/// during a burst of connections, or the buffers of a burst of DNS queries, would stay in the
/// daemon's RSS long after the burst.
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
