//! Housekeeping of translated flows: expired ones are removed from the NAT tables (assured and
//! new) every few seconds, and the host's addresses are refreshed (they can change under the
//! daemon).
//!
//! The sweep reads both NAT tables whole (two syscalls per entry) on its own handles of the
//! pinned maps, in a blocking thread and without the daemon's lock, so requests are served
//! while it runs.
use std::{collections::BTreeMap, path::Path};

use aya::maps::{HashMap, MapData, MapError};
use netd_common::{maps, FlowKey, NatEntry};

use super::{error::OpResult, Daemon};
use crate::datapath::{
    conntrack::{self, Table, Timeouts},
    DatapathError,
};

impl Daemon {
    /// The part of housekeeping that needs the daemon: the host's addresses.
    pub async fn tick(&mut self) -> OpResult<()> {
        self.sync_local_addrs().await
    }

    /// A sweeper of this daemon's NAT tables.
    pub fn nat_sweeper(&self) -> Result<NatSweeper, DatapathError> {
        NatSweeper::open(
            &self.dp.map_pin(maps::NAT),
            &self.dp.map_pin(maps::NAT_NEW),
            self.config.timeouts,
        )
    }
}

type NatMap = HashMap<MapData, FlowKey, NatEntry>;

/// Removes expired flows from the pinned NAT tables.
pub struct NatSweeper {
    assured: NatMap,
    new: NatMap,
    timeouts: Timeouts,
}

fn nat_err(name: &'static str) -> impl Fn(MapError) -> DatapathError {
    move |source| DatapathError::Map { name, source }
}

impl NatSweeper {
    pub fn open(assured: &Path, new: &Path, timeouts: Timeouts) -> Result<Self, DatapathError> {
        let open = |pin: &Path, name, lru: bool| -> Result<NatMap, DatapathError> {
            let data = MapData::from_pin(pin).map_err(nat_err(name))?;
            let map = match lru {
                true => aya::maps::Map::LruHashMap(data),
                false => aya::maps::Map::HashMap(data),
            };
            HashMap::try_from(map).map_err(nat_err(name))
        };
        Ok(Self {
            assured: open(assured, maps::NAT, false)?,
            new: open(new, maps::NAT_NEW, true)?,
            timeouts,
        })
    }

    /// One sweep; returns how many entries expired.
    pub fn sweep(&mut self) -> Result<usize, DatapathError> {
        let read = |map: &NatMap, name| -> Result<BTreeMap<FlowKey, NatEntry>, DatapathError> {
            map.iter().collect::<Result<_, _>>().map_err(nat_err(name))
        };
        // The new table first: a flow promoted meanwhile is then seen in the assured one.
        let new = read(&self.new, maps::NAT_NEW)?;
        let entries = conntrack::merged(read(&self.assured, maps::NAT)?, new);
        let now = super::maps::monotonic_ns();
        let expired = conntrack::expired(&entries, now, &self.timeouts);
        drop(entries);
        release_free_memory();
        for (key, table) in &expired {
            let (map, name) = match table {
                Table::Assured => (&mut self.assured, maps::NAT),
                Table::New => (&mut self.new, maps::NAT_NEW),
            };
            match map.remove(key) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(nat_err(name)(e)),
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
