//! The overlay's side of the datapath: the program on the host's VXLAN device, the endpoints of
//! other hosts (where their frames are encapsulated to) and this host's overlay endpoints
//! (where decapsulated frames go), and the tunnel's counters.
use std::collections::BTreeMap;

use aya::{
    maps::{MapData, PerCpuArray},
    programs::TcAttachType,
};
use netd_common::{
    maps, OverlayPort, Tunnel, CONFIG_VXLAN_IFINDEX, TUNNEL_STAT_DECAP, TUNNEL_STAT_ENCAP,
};

use super::{map_err, plan::MapDiff, Datapath, DatapathError, TUNNEL_PROGRAM};

/// Pin name of the link of the tunnel program on the VXLAN device.
pub const TUNNEL_PIN: &str = "tunnel";

impl Datapath {
    /// Puts the tunnel program on the ingress of the VXLAN device `dev` (index `ifindex`) and
    /// points the endpoint program's encapsulation at it.
    pub fn attach_tunnel(&mut self, dev: &str, ifindex: u32) -> Result<(), DatapathError> {
        self.attach_tc(TUNNEL_PROGRAM, dev, TcAttachType::Ingress, TUNNEL_PIN)?;
        self.set_config(CONFIG_VXLAN_IFINDEX, ifindex.into())
    }

    /// Endpoints on other hosts, as the kernel has them.
    pub fn remotes(&self) -> Result<BTreeMap<[u8; 4], Tunnel>, DatapathError> {
        self.dump(maps::TUNNEL)
    }

    /// Writes and deletes endpoints of other hosts.
    pub fn apply_remotes(&mut self, diff: MapDiff<[u8; 4], Tunnel>) -> Result<(), DatapathError> {
        self.apply(maps::TUNNEL, diff)
    }

    /// This host's overlay endpoints, as the kernel has them.
    pub fn overlay_ports(&self) -> Result<BTreeMap<[u8; 4], OverlayPort>, DatapathError> {
        self.dump(maps::OVERLAY_PORTS)
    }

    /// Writes and deletes this host's overlay endpoints.
    pub fn apply_overlay_ports(
        &mut self,
        diff: MapDiff<[u8; 4], OverlayPort>,
    ) -> Result<(), DatapathError> {
        self.apply(maps::OVERLAY_PORTS, diff)
    }

    /// Frames encapsulated and decapsulated, summed over CPUs.
    pub fn tunnel_counts(&self) -> Result<[u64; 2], DatapathError> {
        let stats: PerCpuArray<&MapData, u64> = self.typed(maps::TUNNEL_STATS)?;
        let read = |i: u32| -> Result<u64, DatapathError> {
            Ok(stats
                .get(&i, 0)
                .map_err(map_err(maps::TUNNEL_STATS))?
                .iter()
                .sum())
        };
        Ok([read(TUNNEL_STAT_ENCAP)?, read(TUNNEL_STAT_DECAP)?])
    }
}
