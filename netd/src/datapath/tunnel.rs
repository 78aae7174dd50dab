//! The overlay's side of the datapath: the programs on the underlay device and on the host's
//! VXLAN device, the endpoints of other hosts (where their frames are encapsulated to) and this
//! host's overlay endpoints (where decapsulated frames go), and the tunnel's counters.
use std::collections::BTreeMap;

use std::net::Ipv4Addr;

use aya::{
    maps::{MapData, PerCpuArray},
    programs::{links::LinkOrder, TcAttachType},
};
use netd_common::{
    maps, OverlayPort, Tunnel, CONFIG_UNDERLAY_ADDR, CONFIG_UNDERLAY_IFINDEX, CONFIG_VXLAN_IFINDEX,
    TUNNEL_STATS_LEN,
};

use super::{map_err, plan::MapDiff, Datapath, DatapathError, TUNNEL_PROGRAM, UNDERLAY_PROGRAM};

/// Pin name of the link of the tunnel program on the VXLAN device.
pub const TUNNEL_PIN: &str = "tunnel";
/// Pin name of the link of the underlay program.
pub const UNDERLAY_PIN: &str = "underlay";

/// Where this host's end of the tunnel is: the device with the advertised address.
#[derive(Clone, Copy, Debug)]
pub struct Underlay<'a> {
    pub device: &'a str,
    pub ifindex: u32,
    pub addr: Ipv4Addr,
}

impl Datapath {
    /// Puts the tunnel program on the ingress of the VXLAN device `dev` (index `ifindex`) and
    /// points the endpoint program's encapsulation at it.
    pub fn attach_tunnel(&mut self, dev: &str, ifindex: u32) -> Result<(), DatapathError> {
        self.attach_tc(TUNNEL_PROGRAM, dev, TcAttachType::Ingress, TUNNEL_PIN)?;
        self.set_config(CONFIG_VXLAN_IFINDEX, ifindex.into())
    }

    /// Puts the underlay program first on the underlay device's ingress (before the uplink
    /// program if the device is also an uplink) and points the encapsulation at the device.
    pub fn attach_underlay(&mut self, underlay: Underlay<'_>) -> Result<(), DatapathError> {
        self.set_config(CONFIG_UNDERLAY_ADDR, u32::from(underlay.addr).into())?;
        self.set_config(CONFIG_UNDERLAY_IFINDEX, underlay.ifindex.into())?;
        self.attach_tc_in_order(
            UNDERLAY_PROGRAM,
            underlay.device,
            TcAttachType::Ingress,
            UNDERLAY_PIN,
            LinkOrder::first(),
        )
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

    /// The tunnel's counters (`TUNNEL_STAT_*`: encapsulated, decapsulated, answered as too
    /// big, fragmented by the device), summed over CPUs.
    pub fn tunnel_counts(&self) -> Result<[u64; TUNNEL_STATS_LEN as usize], DatapathError> {
        let stats: PerCpuArray<&MapData, u64> = self.typed(maps::TUNNEL_STATS)?;
        let read = |i: u32| -> Result<u64, DatapathError> {
            Ok(stats
                .get(&i, 0)
                .map_err(map_err(maps::TUNNEL_STATS))?
                .iter()
                .sum())
        };
        let mut counts = [0; TUNNEL_STATS_LEN as usize];
        for (i, count) in (0..).zip(counts.iter_mut()) {
            *count = read(i)?;
        }
        Ok(counts)
    }
}
