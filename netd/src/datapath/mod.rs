//! The eBPF side seen from userspace: the embedded object, loading it with its maps pinned under
//! `--bpffs`, attaching the programs, and reading and writing the maps.
//!
//! Layout under the bpffs directory: `maps/NETD_*` (pinned by the loader, reused by a restarted
//! daemon) and `links/` (the uplinks' tcx links and the cgroup hooks' links; a restarted daemon
//! swaps its freshly loaded programs into them atomically).
//!
//! The endpoint program sits on every container veth as a classic `clsact` filter instead of a
//! tcx link: attaching a tcx program waits for an RCU grace period (tens of milliseconds on a
//! small VM), which would dominate `container start`, while a filter on a fresh device is a
//! netlink round trip. The filter lives as long as the veth and needs no pin; a restarted daemon
//! replaces its program in place (same priority and handle), so traffic never passes unchecked.
pub mod conntrack;
pub mod plan;
mod tunnel;

pub use tunnel::{Underlay, TUNNEL_PIN, UNDERLAY_PIN};

use std::{
    collections::BTreeMap,
    fs, io,
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use aya::{
    maps::{
        lpm_trie::Key, Array, HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray, PerCpuHashMap,
        ProgramArray, RingBuf,
    },
    programs::{
        links::{FdLink, LinkError, PinnedLink},
        tc::{
            qdisc_add_clsact, NlOptions, SchedClassifierLink, TcAttachOptions, TcError, TcHandle,
        },
        CgroupAttachMode, CgroupSockAddr, LinkOrder, ProgramError, SchedClassifier, TcAttachType,
        TestRun, TestRunOptions,
    },
    Ebpf, EbpfError, EbpfLoader, Pod,
};
use ipnet::{Ipv4Net, Ipv6Net};
use netd_common::{
    maps, DropReason, Endpoint, Endpoint6, MacvlanKey, Neighbor, NetworkInfo, PolicyPrefix, Uplink,
    VlanPort, CONFIG_NETNS_COOKIE,
};
use nix::{
    mount::{mount, umount2, MntFlags, MsFlags},
    sys::statfs::{statfs, BPF_FS_MAGIC},
};
use thiserror::Error;

/// The eBPF object built from `netd-ebpf` by `build.rs`, embedded in the binary.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netd"));

/// The program on the host side of every container veth.
pub const ENDPOINT_PROGRAM: &str = "netd_endpoint_ingress";
/// Its IPv6 half, which it tail-calls ([`maps::PROGS`]).
pub const ENDPOINT6_PROGRAM: &str = "netd_endpoint6";
/// The programs on the uplinks.
pub const UPLINK_INGRESS: &str = "netd_uplink_ingress";
pub const UPLINK_EGRESS: &str = "netd_uplink_egress";
/// The programs of eBPF 802.1q sub-interfaces: on the inner end, and on the trunk.
pub const SUBIF_PROGRAM: &str = "netd_subif";
pub const TRUNK_PROGRAM: &str = "netd_trunk";
/// The program on a container's macvlan device (egress, inside its namespace).
pub const MACVLAN_PROGRAM: &str = "netd_macvlan_egress";
/// The program on the host's VXLAN device (ingress: decapsulated overlay frames).
pub const TUNNEL_PROGRAM: &str = "netd_tunnel_ingress";
/// The program on the underlay device (ingress: the tunnel's frames, decapsulated there).
pub const UNDERLAY_PROGRAM: &str = "netd_underlay_ingress";
const TC_PROGRAMS: [&str; 9] = [
    TUNNEL_PROGRAM,
    UNDERLAY_PROGRAM,
    MACVLAN_PROGRAM,
    ENDPOINT_PROGRAM,
    ENDPOINT6_PROGRAM,
    UPLINK_INGRESS,
    UPLINK_EGRESS,
    SUBIF_PROGRAM,
    TRUNK_PROGRAM,
];

/// The cgroup socket hooks, with their pin names.
pub const SOCK_PROGRAMS: [&str; 4] = [
    "netd_sock_connect4",
    "netd_sock_sendmsg4",
    "netd_sock_getpeername4",
    "netd_sock_recvmsg4",
];

/// Link pins of containers' macvlan devices start with this.
pub const MACVLAN_PIN_PREFIX: &str = "mv-";

/// Pin name of the anti-spoofing link on container `container_id`'s macvlan device `ifname`.
pub fn macvlan_pin(container_id: &str, ifname: &str) -> String {
    format!(
        "{MACVLAN_PIN_PREFIX}{}-{ifname}",
        &container_id[..12.min(container_id.len())]
    )
}

/// Pin names of the links of an eBPF sub-interface: the trunk's (shared by its VLANs) and the
/// inner end's.
pub fn vlan_pins(trunk: &str, inner: &str) -> [String; 2] {
    [format!("trunk-{trunk}"), format!("subif-{inner}")]
}

/// One eBPF 802.1q sub-interface, as the datapath sees it: the trunk and the inner end of the
/// veth pair (name and index each), and the VLAN.
#[derive(Debug, Clone, Copy)]
pub struct SoftVlan<'a> {
    pub trunk: (&'a str, u32),
    pub inner: (&'a str, u32),
    pub vid: u16,
}

/// Pin name of an uplink's link in one direction (`in` or `out`).
pub fn uplink_pin(iface: &str, dir: &str) -> String {
    format!("uplink-{dir}-{iface}")
}

#[derive(Debug, Error)]
pub enum DatapathError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot mount bpffs at {path}: {source}")]
    Mount { path: PathBuf, source: nix::Error },
    #[error("cannot load the eBPF object: {0}")]
    Load(#[from] EbpfError),
    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        source: ProgramError,
    },
    #[error("endpoint filter on {veth}: {source}")]
    Filter { veth: String, source: ProgramError },
    #[error("link pin {path}: {source}")]
    Link { path: PathBuf, source: LinkError },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        source: MapError,
    },
    #[error("the eBPF object has no {0}")]
    Missing(&'static str),
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
    #[error("macvlan device {ifname} in {netns}: {source}")]
    Macvlan {
        ifname: String,
        netns: PathBuf,
        source: io::Error,
    },
    #[error("pinned map {name} was made by another netd version ({found}; this one needs {wanted}): stop the daemon and run `netd daemon --cleanup` first")]
    PinMismatch {
        name: String,
        found: String,
        wanted: String,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DatapathError {
    let path = path.to_path_buf();
    move |source| DatapathError::Io { what, path, source }
}

fn map_err(name: &'static str) -> impl FnOnce(MapError) -> DatapathError {
    move |source| DatapathError::Map { name, source }
}

/// The loaded programs and maps of one daemon.
pub struct Datapath {
    ebpf: Ebpf,
    root: PathBuf,
}

impl Datapath {
    /// Mounts bpffs at `root` if needed, loads the object (reusing pinned maps) and the programs.
    /// `nat_entries` sizes each NAT table (assured and new) when it is created.
    pub fn open(root: &Path, nat_entries: u32) -> Result<Self, DatapathError> {
        ensure_bpffs(root)?;
        for dir in [root.join("maps"), root.join("links")] {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        check_pins(&root.join("maps"))?;
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(root.join("maps"))
            .map_max_entries(maps::NAT, nat_entries)
            .map_max_entries(maps::NAT_NEW, nat_entries)
            .load(EBPF_OBJECT)?;
        for name in TC_PROGRAMS {
            tc_program(&mut ebpf, name)?
                .load()
                .map_err(|source| DatapathError::Program { name, source })?;
        }
        for name in SOCK_PROGRAMS {
            sock_program(&mut ebpf, name)?
                .load()
                .map_err(|source| DatapathError::Program { name, source })?;
        }
        set_tail_calls(&mut ebpf)?;
        Ok(Self {
            ebpf,
            root: root.to_path_buf(),
        })
    }

    fn link_pin(&self, veth: &str) -> PathBuf {
        self.root.join("links").join(veth)
    }

    /// Pinned link names (host-side veths) currently under `links/`.
    pub fn pinned_links(&self) -> Result<Vec<String>, DatapathError> {
        let dir = self.root.join("links");
        let entries = fs::read_dir(&dir).map_err(io_err("read", &dir))?;
        Ok(entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect())
    }

    /// Records `ep` for the port `ifindex` and puts the endpoint program on the ingress of `veth`,
    /// a device netd has just created.
    pub fn attach_endpoint(
        &mut self,
        veth: &str,
        ifindex: u32,
        ep: Endpoint,
    ) -> Result<(), DatapathError> {
        let program = self.record_endpoint(ifindex, ep)?;
        qdisc_add_clsact(veth).map_err(|e| endpoint_err(veth, e.into()))?;
        new_filter(program, veth)
    }

    /// Records `ep` for the port `ifindex` and its address for the ARP responder; returns the
    /// endpoint program.
    fn record_endpoint(
        &mut self,
        ifindex: u32,
        ep: Endpoint,
    ) -> Result<&mut SchedClassifier, DatapathError> {
        self.endpoints_mut()?
            .insert(ifindex, ep, 0)
            .map_err(map_err(maps::ENDPOINTS))?;
        let (addr, neighbor) = plan::endpoint_neighbor(&ep);
        self.apply_neighbors(plan::MapDiff {
            upsert: vec![(addr, neighbor)],
            remove: vec![],
        })?;
        self.apply_veths(plan::MapDiff {
            upsert: vec![(addr, ifindex)],
            remove: vec![],
        })?;
        tc_program(&mut self.ebpf, ENDPOINT_PROGRAM)
    }

    /// Records `ep` for the port `ifindex` and swaps this daemon's endpoint program into the
    /// filter on `veth` (found at start); a port without one (a crash came between creating it
    /// and attaching, or an older netd used a tcx link) gets a new filter.
    pub fn reattach_endpoint(
        &mut self,
        veth: &str,
        ifindex: u32,
        ep: Endpoint,
    ) -> Result<(), DatapathError> {
        let program = self.record_endpoint(ifindex, ep)?;
        let link = SchedClassifierLink::attached(
            veth,
            TcAttachType::Ingress,
            ENDPOINT_PRIORITY,
            ENDPOINT_HANDLE,
            None,
        )
        .map_err(|e| endpoint_err(veth, TcError::IoError(e).into()))?;
        if let Ok(id) = program.attach_to_link(link) {
            return keep_filter(program, id, veth);
        }
        match qdisc_add_clsact(veth) {
            Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc_eexist()) => {}
            other => other.map_err(|e| endpoint_err(veth, e.into()))?,
        }
        new_filter(program, veth)
    }

    /// Attaches the uplink programs to `iface` (ingress and egress) and records its SNAT address.
    pub fn attach_uplink(
        &mut self,
        iface: &str,
        ifindex: u32,
        uplink: Uplink,
    ) -> Result<(), DatapathError> {
        let mut map: HashMap<&mut MapData, u32, Uplink> = self.typed_mut(maps::UPLINKS)?;
        map.insert(ifindex, uplink, 0)
            .map_err(map_err(maps::UPLINKS))?;
        self.attach_tc(
            UPLINK_INGRESS,
            iface,
            TcAttachType::Ingress,
            &uplink_pin(iface, "in"),
        )?;
        self.attach_tc(
            UPLINK_EGRESS,
            iface,
            TcAttachType::Egress,
            &uplink_pin(iface, "out"),
        )
    }

    /// Attaches the socket hooks to the cgroup at `path` with bpf links (which always coexist
    /// with other programs there; the kernel refuses the multi flag on links), each
    /// link pinned as `links/<program>`; hooks a previous daemon pinned are kept. Returns the pins.
    pub fn attach_cgroup(
        &mut self,
        path: &Path,
        netns_cookie: u64,
    ) -> Result<Vec<String>, DatapathError> {
        let mut config: Array<&mut MapData, u64> = self.typed_mut(maps::CONFIG)?;
        config
            .set(CONFIG_NETNS_COOKIE, netns_cookie, 0)
            .map_err(map_err(maps::CONFIG))?;
        let cgroup = fs::File::open(path).map_err(io_err("open cgroup", path))?;
        for name in SOCK_PROGRAMS {
            let pin = self.link_pin(name);
            if pin.exists() {
                continue;
            }
            let program = sock_program(&mut self.ebpf, name)?;
            let prog_err = |source| DatapathError::Program { name, source };
            let id = program
                .attach(&cgroup, CgroupAttachMode::Single)
                .map_err(prog_err)?;
            let link: FdLink = program
                .take_link(id)
                .map_err(prog_err)?
                .try_into()
                .map_err(|source| DatapathError::Link {
                    path: pin.clone(),
                    source,
                })?;
            link.pin(&pin).map_err(|e| DatapathError::Io {
                what: "pin link",
                path: pin.clone(),
                source: io::Error::other(e),
            })?;
        }
        Ok(SOCK_PROGRAMS.iter().map(|s| s.to_string()).collect())
    }

    /// Attaches `program` to `iface` with a tcx link pinned as `links/<pin>`; an existing pinned
    /// link gets the current program swapped in atomically.
    fn attach_tc(
        &mut self,
        name: &'static str,
        iface: &str,
        kind: TcAttachType,
        pin: &str,
    ) -> Result<(), DatapathError> {
        self.attach_tc_in_order(name, iface, kind, pin, LinkOrder::default())
    }

    /// As [`Datapath::attach_tc`], placed on the device's tcx chain as `order` says (a program
    /// attached afresh; one already pinned keeps its place).
    fn attach_tc_in_order(
        &mut self,
        name: &'static str,
        iface: &str,
        kind: TcAttachType,
        pin: &str,
        order: LinkOrder,
    ) -> Result<(), DatapathError> {
        let pin = self.link_pin(pin);
        let program = tc_program(&mut self.ebpf, name)?;
        let prog_err = |source| DatapathError::Program { name, source };
        let link_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DatapathError::Link { path, source }
        };
        if let Ok(old) = PinnedLink::from_pin(&pin) {
            let link = SchedClassifierLink::try_from(FdLink::from(old)).map_err(link_err(&pin))?;
            let id = program.attach_to_link(link).map_err(prog_err)?;
            // The pin keeps the link (now running the new program) alive; drop our handle.
            drop(program.take_link(id).map_err(prog_err)?);
            return Ok(());
        }
        let order = TcAttachOptions::TcxOrder(order);
        let id = program
            .attach_with_options(iface, kind, order)
            .map_err(prog_err)?;
        let link: FdLink = program
            .take_link(id)
            .map_err(prog_err)?
            .try_into()
            .map_err(link_err(&pin))?;
        link.pin(&pin).map_err(|e| DatapathError::Io {
            what: "pin link",
            path: pin.clone(),
            source: io::Error::other(e),
        })?;
        Ok(())
    }

    /// Joins an eBPF sub-interface to its VLAN: the map entries both ways, then the programs on
    /// the inner end and on the trunk (whose link the trunk's other VLANs share).
    pub fn attach_vlan(&mut self, vlan: SoftVlan<'_>) -> Result<(), DatapathError> {
        let port = VlanPort {
            trunk: vlan.trunk.1,
            vid: vlan.vid,
            _pad: 0,
        };
        let mut tag: HashMap<&mut MapData, u32, VlanPort> = self.typed_mut(maps::VLAN_TAG)?;
        tag.insert(vlan.inner.1, port, 0)
            .map_err(map_err(maps::VLAN_TAG))?;
        let mut untag: HashMap<&mut MapData, VlanPort, u32> = self.typed_mut(maps::VLAN_UNTAG)?;
        untag
            .insert(port, vlan.inner.1, 0)
            .map_err(map_err(maps::VLAN_UNTAG))?;
        let [trunk_pin, inner_pin] = vlan_pins(vlan.trunk.0, vlan.inner.0);
        self.attach_tc(
            SUBIF_PROGRAM,
            vlan.inner.0,
            TcAttachType::Ingress,
            &inner_pin,
        )?;
        self.attach_tc(
            TRUNK_PROGRAM,
            vlan.trunk.0,
            TcAttachType::Ingress,
            &trunk_pin,
        )
    }

    /// Takes an eBPF sub-interface out of its VLAN (the caller deletes its devices), and the
    /// trunk's program too once no other sub-interface uses it. Goes on past errors.
    pub fn detach_vlan(&mut self, vlan: SoftVlan<'_>) -> Vec<DatapathError> {
        let mut errors = vec![];
        let port = VlanPort {
            trunk: vlan.trunk.1,
            vid: vlan.vid,
            _pad: 0,
        };
        match self.typed_mut::<HashMap<&mut MapData, u32, VlanPort>>(maps::VLAN_TAG) {
            Ok(mut tag) => match tag.remove(&vlan.inner.1) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => errors.push(map_err(maps::VLAN_TAG)(e)),
            },
            Err(e) => errors.push(e),
        }
        match self.typed_mut::<HashMap<&mut MapData, VlanPort, u32>>(maps::VLAN_UNTAG) {
            Ok(mut untag) => match untag.remove(&port) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => errors.push(map_err(maps::VLAN_UNTAG)(e)),
            },
            Err(e) => errors.push(e),
        }
        let [trunk_pin, inner_pin] = vlan_pins(vlan.trunk.0, vlan.inner.0);
        errors.extend(self.unpin_link(&inner_pin).err());
        let trunk_shared = self
            .typed::<HashMap<&MapData, VlanPort, u32>>(maps::VLAN_UNTAG)
            .map(|m| m.keys().flatten().any(|k| k.trunk == vlan.trunk.1))
            .unwrap_or(true);
        if !trunk_shared {
            errors.extend(self.unpin_link(&trunk_pin).err());
        }
        errors
    }

    /// Puts the anti-spoofing program on the macvlan device `ifname` inside the namespace at
    /// `netns` (its egress: what the container sends), pinned as `pin`, with the addresses the
    /// device may send from (`ep`).
    pub fn attach_macvlan(
        &mut self,
        netns: &Path,
        ifname: &str,
        ep: Endpoint,
        pin: &str,
    ) -> Result<(), DatapathError> {
        let failed = |source: io::Error| DatapathError::Macvlan {
            ifname: ifname.into(),
            netns: netns.into(),
            source,
        };
        crate::netns::run_in(netns, || {
            nix::net::if_::if_nametoindex(ifname).map_err(|e| failed(io::Error::from(e)))?;
            let key = MacvlanKey {
                mac: ep.mac,
                _pad: [0; 2],
            };
            let mut map: HashMap<&mut MapData, MacvlanKey, Endpoint> =
                self.typed_mut(maps::MACVLAN)?;
            map.insert(key, ep, 0).map_err(map_err(maps::MACVLAN))?;
            self.attach_tc(MACVLAN_PROGRAM, ifname, TcAttachType::Egress, pin)
        })?
    }

    /// Takes the anti-spoofing entry allowing `ep` and the link pinned as `pin` away (a device
    /// gone, or going). Goes on past errors.
    pub fn forget_macvlan(&mut self, ep: &Endpoint, pin: &str) -> Vec<DatapathError> {
        let mut errors = self.remove_macvlan_entries(|e| e != ep);
        errors.extend(self.unpin_link(pin).err());
        errors
    }

    /// Removes the anti-spoofing entries of every macvlan device that `keep` rejects (by the
    /// addresses they allow) and the link pins under `links/` that start with `mv-` and are
    /// not in `pins`. Goes on past errors.
    pub fn prune_macvlan(
        &mut self,
        keep: impl Fn(&Endpoint) -> bool,
        pins: &std::collections::BTreeSet<String>,
    ) -> Vec<DatapathError> {
        let mut errors = self.remove_macvlan_entries(keep);
        for pin in self.pinned_links().unwrap_or_default() {
            if pin.starts_with(MACVLAN_PIN_PREFIX) && !pins.contains(&pin) {
                errors.extend(self.unpin_link(&pin).err());
            }
        }
        errors
    }

    fn remove_macvlan_entries(&mut self, keep: impl Fn(&Endpoint) -> bool) -> Vec<DatapathError> {
        let mut errors = vec![];
        match self.typed_mut::<HashMap<&mut MapData, MacvlanKey, Endpoint>>(maps::MACVLAN) {
            Ok(mut map) => {
                let stale: Vec<MacvlanKey> = map
                    .iter()
                    .flatten()
                    .filter(|(_, ep)| !keep(ep))
                    .map(|(k, _)| k)
                    .collect();
                for key in stale {
                    if let Err(e) = map.remove(&key) {
                        errors.push(map_err(maps::MACVLAN)(e));
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        errors
    }

    /// Forgets the port `ifindex`; the veth, and its filter with it, is deleted by the caller.
    pub fn forget_endpoint(&mut self, ifindex: u32) -> Result<(), DatapathError> {
        let mut endpoints = self.endpoints_mut()?;
        let ep = match endpoints.get(&ifindex, 0) {
            Ok(ep) => ep,
            Err(MapError::KeyNotFound) => return Ok(()),
            Err(e) => return Err(map_err(maps::ENDPOINTS)(e)),
        };
        endpoints
            .remove(&ifindex)
            .map_err(map_err(maps::ENDPOINTS))?;
        // Only the entries this endpoint made: the address may have gone to another one since.
        let (addr, neighbor) = plan::endpoint_neighbor(&ep);
        self.remove_if(maps::VETHS, addr, ifindex)?;
        self.remove_if(maps::NEIGHBORS, addr, neighbor)
    }

    /// Removes `key` from the hash map `name` if it still holds `value`.
    fn remove_if<K: Pod, V: Pod + PartialEq>(
        &mut self,
        name: &'static str,
        key: K,
        value: V,
    ) -> Result<(), DatapathError> {
        let mut map: HashMap<&mut MapData, K, V> = self.typed_mut(name)?;
        match map.get(&key, 0) {
            Ok(v) if v == value => map.remove(&key).map_err(map_err(name)),
            Ok(_) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(name)(e)),
        }
    }

    /// Removes the pinned link `links/<pin>`, which detaches its program (a hook of an uplink
    /// that is gone, or the tcx link an older netd pinned for a container veth).
    pub fn unpin_link(&self, pin: &str) -> Result<(), DatapathError> {
        let path = self.link_pin(pin);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("unpin", &path)(e)),
            _ => Ok(()),
        }
    }

    fn endpoints_mut(&mut self) -> Result<HashMap<&mut MapData, u32, Endpoint>, DatapathError> {
        self.typed_mut(maps::ENDPOINTS)
    }

    /// A map by name as the type `T` (`HashMap<_, K, V>` and so on).
    fn typed_mut<'a, T>(&'a mut self, name: &'static str) -> Result<T, DatapathError>
    where
        T: TryFrom<&'a mut Map, Error = MapError>,
    {
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(DatapathError::Missing(name))?;
        T::try_from(map).map_err(map_err(name))
    }

    fn typed<'a, T>(&'a self, name: &'static str) -> Result<T, DatapathError>
    where
        T: TryFrom<&'a Map, Error = MapError>,
    {
        let map = self.ebpf.map(name).ok_or(DatapathError::Missing(name))?;
        T::try_from(map).map_err(map_err(name))
    }

    /// Every translated flow's entries, from both NAT tables, with the table each is in (the new
    /// table is read first, so that an entry promoted meanwhile is still seen).
    pub fn nat_entries(
        &self,
    ) -> Result<
        BTreeMap<netd_common::FlowKey, (conntrack::Table, netd_common::NatEntry)>,
        DatapathError,
    > {
        let new = self.dump(maps::NAT_NEW)?;
        Ok(conntrack::merged(self.dump(maps::NAT)?, new))
    }

    /// The `NAT_STAT_*` counters summed over CPUs: flows promoted to the assured table, demoted
    /// from it, and promotions refused because the assured one was full (the flow stays new and
    /// tries again at its next packet that could assure it).
    pub fn nat_moves(&self) -> Result<[u64; 3], DatapathError> {
        let stats: PerCpuArray<&MapData, u64> = self.typed(maps::NAT_STATS)?;
        let read = |i: u32| -> Result<u64, DatapathError> {
            Ok(stats
                .get(&i, 0)
                .map_err(map_err(maps::NAT_STATS))?
                .iter()
                .sum())
        };
        Ok([
            read(netd_common::NAT_STAT_PROMOTED)?,
            read(netd_common::NAT_STAT_DEMOTED)?,
            read(netd_common::NAT_STAT_ASSURED_FULL)?,
        ])
    }

    /// Every entry of the hash map `name`, as it is in the kernel.
    pub fn dump<K: Pod + Ord, V: Pod>(
        &self,
        name: &'static str,
    ) -> Result<BTreeMap<K, V>, DatapathError> {
        let map: HashMap<&MapData, K, V> = self.typed(name)?;
        map.iter().collect::<Result<_, _>>().map_err(map_err(name))
    }

    /// Writes and deletes entries of the hash map `name`; a key already gone is no error.
    pub fn apply<K: Pod, V: Pod>(
        &mut self,
        name: &'static str,
        diff: plan::MapDiff<K, V>,
    ) -> Result<(), DatapathError> {
        let mut map: HashMap<&mut MapData, K, V> = self.typed_mut(name)?;
        for (k, v) in diff.upsert {
            map.insert(k, v, 0).map_err(map_err(name))?;
        }
        for k in diff.remove {
            match map.remove(&k) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(map_err(name)(e)),
            }
        }
        Ok(())
    }

    /// The endpoint entries as they are in the kernel.
    pub fn endpoints(&self) -> Result<BTreeMap<u32, Endpoint>, DatapathError> {
        self.dump(maps::ENDPOINTS)
    }

    /// Overwrites or removes endpoint entries.
    pub fn apply_endpoints(
        &mut self,
        diff: plan::MapDiff<u32, Endpoint>,
    ) -> Result<(), DatapathError> {
        self.apply(maps::ENDPOINTS, diff)
    }

    /// The host-side veth of every container address, as [`maps::VETHS`] holds them.
    pub fn veths(&self) -> Result<BTreeMap<[u8; 4], u32>, DatapathError> {
        self.dump(maps::VETHS)
    }

    /// Brings [`maps::VETHS`] to what `diff` says.
    pub fn apply_veths(&mut self, diff: plan::MapDiff<[u8; 4], u32>) -> Result<(), DatapathError> {
        self.apply(maps::VETHS, diff)
    }

    /// The ARP responder's entries as they are in the kernel.
    pub fn neighbors(&self) -> Result<BTreeMap<[u8; 4], Neighbor>, DatapathError> {
        self.dump(maps::NEIGHBORS)
    }

    /// Overwrites or removes entries of the ARP responder.
    pub fn apply_neighbors(
        &mut self,
        diff: plan::MapDiff<[u8; 4], Neighbor>,
    ) -> Result<(), DatapathError> {
        self.apply(maps::NEIGHBORS, diff)
    }

    /// The subnet entries as they are in the kernel.
    pub fn networks(&self) -> Result<BTreeMap<Ipv4Net, NetworkInfo>, DatapathError> {
        self.subnets()
    }

    /// Overwrites or removes subnet entries; a subnet already gone is no error.
    pub fn apply_networks(
        &mut self,
        diff: plan::MapDiff<Ipv4Net, NetworkInfo>,
    ) -> Result<(), DatapathError> {
        self.apply_subnets(diff)
    }

    /// The entries of the subnet trie of `S`'s family.
    fn subnets<S: Subnet>(&self) -> Result<BTreeMap<S, NetworkInfo>, DatapathError> {
        let map: LpmTrie<&MapData, S::Bytes, NetworkInfo> = self.typed(S::MAP)?;
        map.iter()
            .map(|r| r.map(|(k, v)| (S::of(&k), v)))
            .collect::<Result<_, _>>()
            .map_err(map_err(S::MAP))
    }

    /// Writes, then deletes, entries of the subnet trie of `S`'s family; a subnet already gone
    /// is no error.
    fn apply_subnets<S: Subnet>(
        &mut self,
        diff: plan::MapDiff<S, NetworkInfo>,
    ) -> Result<(), DatapathError> {
        let mut map: LpmTrie<&mut MapData, S::Bytes, NetworkInfo> = self.typed_mut(S::MAP)?;
        for (k, v) in diff.upsert {
            map.insert(&k.key(), v, 0).map_err(map_err(S::MAP))?;
        }
        for k in diff.remove {
            match map.remove(&k.key()) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(map_err(S::MAP)(e)),
            }
        }
        Ok(())
    }

    /// Records a network: its subnet in the trie and its gateway for the ARP responder.
    pub fn record_network(
        &mut self,
        subnet: Ipv4Net,
        info: NetworkInfo,
        gateway: ([u8; 4], Neighbor),
    ) -> Result<(), DatapathError> {
        self.apply_networks(plan::MapDiff {
            upsert: vec![(subnet, info)],
            remove: vec![],
        })?;
        self.apply_neighbors(plan::MapDiff {
            upsert: vec![gateway],
            remove: vec![],
        })
    }

    /// Removes what [`Self::record_network`] wrote; entries already gone are no error. Tries
    /// both and returns every error.
    pub fn forget_network(&mut self, subnet: Ipv4Net, gateway: Ipv4Addr) -> Vec<DatapathError> {
        let trie = self.apply_subnets(plan::MapDiff {
            upsert: vec![],
            remove: vec![subnet],
        });
        let neighbors = self.apply_neighbors(plan::MapDiff {
            upsert: vec![],
            remove: vec![gateway.octets()],
        });
        [trie, neighbors]
            .into_iter()
            .filter_map(Result::err)
            .collect()
    }

    /// Records the IPv6 addresses `ep` of the port `ifindex`, whose interface has `mac` and is
    /// on network `net_id`: the port's entry, the NDP responder's entry for its address and the
    /// straight path to its veth. The port's IPv4 [`Endpoint`] (MAC, network, flags) must be
    /// recorded too ([`Self::attach_endpoint`]).
    pub fn record_endpoint6(
        &mut self,
        ifindex: u32,
        ep: Endpoint6,
        mac: [u8; 6],
        net_id: u32,
    ) -> Result<(), DatapathError> {
        self.apply(
            maps::ENDPOINTS6,
            plan::MapDiff {
                upsert: vec![(ifindex, ep)],
                remove: vec![],
            },
        )?;
        self.apply(
            maps::NEIGHBORS6,
            plan::MapDiff {
                upsert: vec![(ep.addr, plan::neighbor(mac, net_id))],
                remove: vec![],
            },
        )?;
        self.apply(
            maps::VETHS6,
            plan::MapDiff {
                upsert: vec![(ep.addr, ifindex)],
                remove: vec![],
            },
        )
    }

    /// Removes what [`Self::record_endpoint6`] wrote for the port `ifindex` with address
    /// `addr`, but only what still belongs to it (the address may have gone to another port
    /// since); entries already gone are no error.
    pub fn forget_endpoint6(&mut self, ifindex: u32, addr: Ipv6Addr) -> Result<(), DatapathError> {
        let addr = addr.octets();
        let mine = {
            let veths: HashMap<&MapData, [u8; 16], u32> = self.typed(maps::VETHS6)?;
            match veths.get(&addr, 0) {
                Ok(i) => i == ifindex,
                Err(MapError::KeyNotFound) => false,
                Err(e) => return Err(map_err(maps::VETHS6)(e)),
            }
        };
        if mine {
            self.apply(
                maps::NEIGHBORS6,
                plan::MapDiff::<[u8; 16], netd_common::Neighbor> {
                    upsert: vec![],
                    remove: vec![addr],
                },
            )?;
            self.remove_if(maps::VETHS6, addr, ifindex)?;
        }
        let current = {
            let endpoints: HashMap<&MapData, u32, Endpoint6> = self.typed(maps::ENDPOINTS6)?;
            match endpoints.get(&ifindex, 0) {
                Ok(ep) => Some(ep),
                Err(MapError::KeyNotFound) => None,
                Err(e) => return Err(map_err(maps::ENDPOINTS6)(e)),
            }
        };
        match current {
            Some(ep) if ep.addr == addr => self.remove_if(maps::ENDPOINTS6, ifindex, ep),
            _ => Ok(()),
        }
    }

    /// Records a dual-stack network's IPv6 side: its subnet in the trie and its gateway for
    /// the NDP responder.
    pub fn record_network6(
        &mut self,
        subnet: Ipv6Net,
        info: NetworkInfo,
        gateway: Ipv6Addr,
        gateway_neighbor: Neighbor,
    ) -> Result<(), DatapathError> {
        self.apply_networks6(plan::MapDiff {
            upsert: vec![(subnet, info)],
            remove: vec![],
        })?;
        self.apply(
            maps::NEIGHBORS6,
            plan::MapDiff {
                upsert: vec![(gateway.octets(), gateway_neighbor)],
                remove: vec![],
            },
        )
    }

    /// Removes what [`Self::record_network6`] wrote; entries already gone are no error. Tries
    /// both and returns every error.
    pub fn forget_network6(&mut self, subnet: Ipv6Net, gateway: Ipv6Addr) -> Vec<DatapathError> {
        let trie = self.apply_networks6(plan::MapDiff {
            upsert: vec![],
            remove: vec![subnet],
        });
        let neighbors = self.apply(
            maps::NEIGHBORS6,
            plan::MapDiff::<[u8; 16], Neighbor> {
                upsert: vec![],
                remove: vec![gateway.octets()],
            },
        );
        [trie, neighbors]
            .into_iter()
            .filter_map(Result::err)
            .collect()
    }

    /// The IPv6 ports' entries as they are in the kernel.
    pub fn endpoints6(&self) -> Result<BTreeMap<u32, Endpoint6>, DatapathError> {
        self.dump(maps::ENDPOINTS6)
    }

    /// The NDP responder's entries as they are in the kernel.
    pub fn neighbors6(&self) -> Result<BTreeMap<[u8; 16], Neighbor>, DatapathError> {
        self.dump(maps::NEIGHBORS6)
    }

    /// The host-side veth of every container IPv6 address, as [`maps::VETHS6`] holds them.
    pub fn veths6(&self) -> Result<BTreeMap<[u8; 16], u32>, DatapathError> {
        self.dump(maps::VETHS6)
    }

    /// The IPv6 subnet entries as they are in the kernel.
    pub fn networks6(&self) -> Result<BTreeMap<Ipv6Net, NetworkInfo>, DatapathError> {
        self.subnets()
    }

    /// Writes and deletes IPv6 subnet entries; a subnet already gone is no error.
    pub fn apply_networks6(
        &mut self,
        diff: plan::MapDiff<Ipv6Net, NetworkInfo>,
    ) -> Result<(), DatapathError> {
        self.apply_subnets(diff)
    }

    /// The four IPv6 maps as they are in the kernel.
    pub fn maps6(&self) -> Result<plan::Maps6, DatapathError> {
        Ok(plan::Maps6 {
            endpoints: self.endpoints6()?,
            networks: self.networks6()?,
            neighbors: self.neighbors6()?,
            veths: self.veths6()?,
        })
    }

    /// Applies `diff` to the IPv6 maps: every write first (subnets, neighbours, ports, then
    /// the straight paths, which the programs follow only to a port whose entry has the
    /// address), then every removal in the opposite order.
    pub fn apply6(&mut self, diff: plan::Diff6) -> Result<(), DatapathError> {
        let plan::Diff6 {
            endpoints,
            networks,
            neighbors,
            veths,
        } = diff;
        let (networks, networks_gone) = networks.split();
        let (neighbors, neighbors_gone) = neighbors.split();
        let (endpoints, endpoints_gone) = endpoints.split();
        let (veths, veths_gone) = veths.split();
        self.apply_networks6(networks)?;
        self.apply(maps::NEIGHBORS6, neighbors)?;
        self.apply(maps::ENDPOINTS6, endpoints)?;
        self.apply(maps::VETHS6, veths)?;
        self.apply(maps::VETHS6, veths_gone)?;
        self.apply(maps::ENDPOINTS6, endpoints_gone)?;
        self.apply(maps::NEIGHBORS6, neighbors_gone)?;
        self.apply_networks6(networks_gone)
    }

    /// Brings the IPv6 maps to `desired` (the restart path: [`plan::maps6`] of the state).
    pub fn sync6(&mut self, desired: &plan::Maps6) -> Result<(), DatapathError> {
        let current = self.maps6()?;
        self.apply6(plan::diff6(&current, desired))
    }

    /// The published-port policy trie as it is in the kernel.
    pub fn publish_policy(&self) -> Result<BTreeMap<crate::policy::TrieKey, u32>, DatapathError> {
        let map: LpmTrie<&MapData, PolicyPrefix, u32> = self.typed(maps::PUBLISH_POLICY)?;
        map.iter()
            .map(|r| r.map(|(k, v)| ((k.prefix_len(), k.data()), v)))
            .collect::<Result<_, _>>()
            .map_err(map_err(maps::PUBLISH_POLICY))
    }

    /// Writes and deletes prefixes of the published-port policy trie (writes first, so that a
    /// changed rule is never missing); a prefix already gone is no error.
    pub fn apply_publish_policy(
        &mut self,
        diff: plan::MapDiff<crate::policy::TrieKey, u32>,
    ) -> Result<(), DatapathError> {
        let mut map: LpmTrie<&mut MapData, PolicyPrefix, u32> =
            self.typed_mut(maps::PUBLISH_POLICY)?;
        for ((bits, data), v) in diff.upsert {
            map.insert(&Key::new(bits, data), v, 0)
                .map_err(map_err(maps::PUBLISH_POLICY))?;
        }
        for (bits, data) in diff.remove {
            match map.remove(&Key::new(bits, data)) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(map_err(maps::PUBLISH_POLICY)(e)),
            }
        }
        Ok(())
    }

    /// Deletes NAT entries from the table each is in; an entry already gone is no error.
    pub fn remove_nat(
        &mut self,
        entries: &[(netd_common::FlowKey, conntrack::Table)],
    ) -> Result<(), DatapathError> {
        for (key, table) in entries {
            let name = match table {
                conntrack::Table::Assured => maps::NAT,
                conntrack::Table::New => maps::NAT_NEW,
            };
            let mut map: HashMap<&mut MapData, netd_common::FlowKey, netd_common::NatEntry> =
                self.typed_mut(name)?;
            match map.remove(key) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(map_err(name)(e)),
            }
        }
        Ok(())
    }

    /// Dropped packets per reason, summed over CPUs.
    pub fn drops(&self) -> Result<Vec<(DropReason, u64)>, DatapathError> {
        let map = self
            .ebpf
            .map(maps::DROPS)
            .ok_or(DatapathError::Missing(maps::DROPS))?;
        let map: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(map_err(maps::DROPS))?;
        DropReason::ALL
            .iter()
            .map(|r| {
                Ok((
                    *r,
                    map.get(&(*r as u32), 0)
                        .map_err(map_err(maps::DROPS))?
                        .iter()
                        .sum(),
                ))
            })
            .collect()
    }

    /// Per-CPU hash map `name`, summed over CPUs with `add`.
    pub fn dump_per_cpu<K: Pod + Ord, V: Pod + Default>(
        &self,
        name: &'static str,
        add: impl Fn(V, &V) -> V,
    ) -> Result<BTreeMap<K, V>, DatapathError> {
        let map: PerCpuHashMap<&MapData, K, V> = self.typed(name)?;
        map.iter()
            .map(|r| r.map(|(k, values)| (k, values.iter().fold(V::default(), &add))))
            .collect::<Result<_, _>>()
            .map_err(map_err(name))
    }

    /// Sets a `CONFIG_*` value the programs read.
    pub fn set_config(&mut self, index: u32, value: u64) -> Result<(), DatapathError> {
        let mut config: Array<&mut MapData, u64> = self.typed_mut(maps::CONFIG)?;
        config.set(index, value, 0).map_err(map_err(maps::CONFIG))
    }

    /// The events ring buffer, moved out (once) for the reader task.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, DatapathError> {
        let map = self
            .ebpf
            .take_map(maps::EVENTS)
            .ok_or(DatapathError::Missing(maps::EVENTS))?;
        RingBuf::try_from(map).map_err(map_err(maps::EVENTS))
    }

    /// Runs the loaded program `name` on `frame` as if it arrived at `ifindex`, marked as an
    /// explain probe (the programs decide and rewrite but write no map). Returns the verdict and
    /// the frame as the program left it.
    pub fn probe(
        &mut self,
        name: &'static str,
        frame: &[u8],
        ifindex: u32,
    ) -> Result<(u32, Vec<u8>, Option<DropReason>), DatapathError> {
        self.set_config(netd_common::CONFIG_PROBE_DROP, 0)?;
        let program: &SchedClassifier = self
            .ebpf
            .program(name)
            .ok_or(DatapathError::Missing(name))?
            .try_into()
            .map_err(|source| DatapathError::Program { name, source })?;
        // A `struct __sk_buff` with only `mark` (offset 8) and `ifindex` (offset 40) set.
        let mut ctx = [0u8; 192];
        ctx[8..12].copy_from_slice(&netd_common::EXPLAIN_MARK.to_ne_bytes());
        ctx[40..44].copy_from_slice(&ifindex.to_ne_bytes());
        let mut out = vec![0u8; frame.len() + 256];
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ctx_in: Some(&ctx),
                ..TestRunOptions::default()
            })
            .map_err(|source| DatapathError::Program { name, source })?;
        out.truncate(result.data_size_out as usize);
        let config: Array<&MapData, u64> = self.typed(maps::CONFIG)?;
        let noted = config
            .get(&netd_common::CONFIG_PROBE_DROP, 0)
            .map_err(map_err(maps::CONFIG))?;
        let reason = noted
            .checked_sub(1)
            .and_then(|r| DropReason::from_index(r as u32));
        Ok((result.return_value, out, reason))
    }

    /// The aya-log reader of the programs' log records, moved out (once) for its task.
    pub fn take_logger(
        &mut self,
    ) -> Result<aya_log::EbpfLogger<&'static dyn log::Log>, aya_log::Error> {
        aya_log::EbpfLogger::init(&mut self.ebpf)
    }

    /// Where a map is pinned.
    pub fn map_pin(&self, name: &str) -> PathBuf {
        self.root.join("maps").join(name)
    }
}

/// Where the endpoint filter sits on a container veth's ingress: netd's device, netd's filter.
const ENDPOINT_PRIORITY: u16 = 1;
const ENDPOINT_HANDLE: TcHandle = TcHandle::new(0, 1);

fn endpoint_filter() -> TcAttachOptions {
    TcAttachOptions::Netlink(NlOptions {
        priority: ENDPOINT_PRIORITY,
        handle: ENDPOINT_HANDLE,
        classid: None,
    })
}

fn libc_eexist() -> i32 {
    nix::errno::Errno::EEXIST as i32
}

fn endpoint_err(veth: &str, source: ProgramError) -> DatapathError {
    DatapathError::Filter {
        veth: veth.to_string(),
        source,
    }
}

/// Puts `program` on `veth`'s ingress as netd's filter (the clsact qdisc is there) and keeps it.
fn new_filter(program: &mut SchedClassifier, veth: &str) -> Result<(), DatapathError> {
    let id = program
        .attach_with_options(veth, TcAttachType::Ingress, endpoint_filter())
        .map_err(|e| endpoint_err(veth, e))?;
    keep_filter(program, id, veth)
}

/// Leaves the filter `id` on `veth` for good: the daemon keeps no handle that would take it off
/// when the daemon exits (the filter goes with the device).
fn keep_filter(
    program: &mut SchedClassifier,
    id: aya::programs::tc::SchedClassifierLinkId,
    veth: &str,
) -> Result<(), DatapathError> {
    let link = program.take_link(id).map_err(|e| endpoint_err(veth, e))?;
    std::mem::forget(link);
    Ok(())
}

/// Puts the programs the endpoint program tail-calls in [`maps::PROGS`] (replacing those of an
/// earlier daemon, which a pinned array still holds).
pub fn set_tail_calls(ebpf: &mut Ebpf) -> Result<(), DatapathError> {
    let name = ENDPOINT6_PROGRAM;
    let fd = tc_program(ebpf, name)?
        .fd()
        .and_then(|fd| fd.try_clone().map_err(ProgramError::from))
        .map_err(|source| DatapathError::Program { name, source })?;
    let map = ebpf
        .map_mut(maps::PROGS)
        .ok_or(DatapathError::Missing(maps::PROGS))?;
    let mut progs: ProgramArray<&mut MapData> =
        ProgramArray::try_from(map).map_err(map_err(maps::PROGS))?;
    progs
        .set(netd_common::PROG_ENDPOINT6, &fd, 0)
        .map_err(map_err(maps::PROGS))
}

fn sock_program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut CgroupSockAddr, DatapathError> {
    let program = ebpf.program_mut(name).ok_or(DatapathError::Missing(name))?;
    program
        .try_into()
        .map_err(|source| DatapathError::Program { name, source })
}

fn tc_program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, DatapathError> {
    let program = ebpf.program_mut(name).ok_or(DatapathError::Missing(name))?;
    program
        .try_into()
        .map_err(|source| DatapathError::Program { name, source })
}

/// A subnet of one family as its trie keys it.
trait Subnet: Copy + Ord {
    /// The address bytes, network order.
    type Bytes: aya::Pod;
    /// The family's subnet trie.
    const MAP: &'static str;
    fn key(self) -> Key<Self::Bytes>;
    fn of(key: &Key<Self::Bytes>) -> Self;
}

impl Subnet for Ipv4Net {
    type Bytes = [u8; 4];
    const MAP: &'static str = maps::NETWORKS;
    fn key(self) -> Key<[u8; 4]> {
        Key::new(self.prefix_len().into(), self.network().octets())
    }
    fn of(key: &Key<[u8; 4]>) -> Self {
        Ipv4Net::new(key.data().into(), key.prefix_len() as u8).unwrap_or_default()
    }
}

impl Subnet for Ipv6Net {
    type Bytes = [u8; 16];
    const MAP: &'static str = maps::NETWORKS6;
    fn key(self) -> Key<[u8; 16]> {
        Key::new(self.prefix_len().into(), self.network().octets())
    }
    fn of(key: &Key<[u8; 16]>) -> Self {
        Ipv6Net::new(key.data().into(), key.prefix_len() as u8).unwrap_or_default()
    }
}

/// Refuses to reuse pinned maps whose shape differs from this binary's programs (an older or
/// newer netd made them): reusing them would break in odd ways later.
fn check_pins(dir: &Path) -> Result<(), DatapathError> {
    let object = aya_obj::Object::parse(EBPF_OBJECT).map_err(|e| DatapathError::Io {
        what: "parse the embedded object",
        path: dir.into(),
        source: io::Error::other(e),
    })?;
    for (name, def) in &object.maps {
        let Ok(pinned) = aya::maps::MapInfo::from_pin(dir.join(name)) else {
            continue;
        };
        // The NAT tables keep the size they were created with (`--nat-entries` sizes new ones).
        let entries = if name == maps::NAT || name == maps::NAT_NEW {
            pinned.max_entries()
        } else {
            def.max_entries()
        };
        // The type too: NETD_NAT was an LRU hash before it held only assured flows.
        let pinned_type = pinned.map_type().map_or(u32::MAX, |t| t as u32);
        // And the flags: NETD_PORTS was preallocated when it held 65,536 ports.
        let wanted = (
            def.map_type(),
            def.key_size(),
            def.value_size(),
            entries,
            def.map_flags(),
        );
        let found = (
            pinned_type,
            pinned.key_size(),
            pinned.value_size(),
            pinned.max_entries(),
            pinned.map_flags(),
        );
        if wanted != found {
            let show = |(t, k, v, n, f): (u32, u32, u32, u32, u32)| {
                format!(
                    "{}, key {k} B, value {v} B, {n} entries, flags {f:#x}",
                    map_type_name(t)
                )
            };
            return Err(DatapathError::PinMismatch {
                name: name.clone(),
                found: show(found),
                wanted: show(wanted),
            });
        }
    }
    Ok(())
}

/// A kernel map type as `bpftool` names it (the types netd's object uses), else its number.
fn map_type_name(t: u32) -> String {
    let name = match t {
        1 => "hash",
        2 => "array",
        5 => "percpu_hash",
        6 => "percpu_array",
        9 => "lru_hash",
        11 => "lpm_trie",
        27 => "ringbuf",
        _ => return format!("map type {t}"),
    };
    name.to_string()
}

fn is_bpffs(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == BPF_FS_MAGIC)
}

/// Creates `root` and mounts a bpffs there unless it already lies on one. Under a fresh sysfs
/// (as `ip netns exec` gives) `/sys/fs/bpf` is an empty mount point: bpffs is mounted there
/// first, as systemd does at boot.
pub fn ensure_bpffs(root: &Path) -> Result<(), DatapathError> {
    let sys_bpf = Path::new("/sys/fs/bpf");
    if root.starts_with(sys_bpf) && root != sys_bpf && sys_bpf.is_dir() && !is_bpffs(sys_bpf) {
        mount(
            Some("bpf"),
            sys_bpf,
            Some("bpf"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|source| DatapathError::Mount {
            path: sys_bpf.into(),
            source,
        })?;
    }
    fs::create_dir_all(root).map_err(io_err("create", root))?;
    if !is_bpffs(root) {
        mount(
            Some("bpf"),
            root,
            Some("bpf"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|source| DatapathError::Mount {
            path: root.into(),
            source,
        })?;
    }
    Ok(())
}

/// Removes every pin under `root` (links first, which detaches programs from ports that still
/// exist) and unmounts `root` if netd mounted a bpffs there. Goes on past errors and returns all.
pub fn remove_pins(root: &Path) -> Vec<DatapathError> {
    let mut errors = vec![];
    for sub in ["links", "maps"] {
        let dir = root.join(sub);
        if let Err(e) = fs::remove_dir_all(&dir) {
            if e.kind() != io::ErrorKind::NotFound {
                errors.push(io_err("remove", &dir)(e));
            }
        }
    }
    if is_mount_point(root) && root != Path::new("/sys/fs/bpf") {
        if let Err(source) = umount2(root, MntFlags::MNT_DETACH) {
            errors.push(DatapathError::Mount {
                path: root.into(),
                source,
            });
        }
    }
    if let Err(e) = fs::remove_dir(root) {
        if e.kind() != io::ErrorKind::NotFound {
            errors.push(io_err("remove", root)(e));
        }
    }
    errors
}

fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(me), Some(Ok(parent))) = (fs::metadata(path), path.parent().map(fs::metadata)) else {
        return false;
    };
    me.dev() != parent.dev()
}
