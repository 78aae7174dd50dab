//! The eBPF side seen from userspace: the embedded object, loading it with its maps pinned under
//! `--bpffs`, attaching the endpoint program to bridge ports with pinned tcx links, and reading
//! and writing the maps.
//!
//! Layout under the bpffs directory: `maps/NETD_*` (pinned by the loader, reused by a restarted
//! daemon) and `links/<veth>` (one tcx link per container port; a restarted daemon swaps its
//! freshly loaded program into each one atomically, so traffic never passes unchecked).
pub mod plan;

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
};

use aya::{
    maps::{lpm_trie::Key, HashMap, LpmTrie, MapData, MapError, PerCpuArray},
    programs::{
        links::{FdLink, LinkError, PinnedLink},
        tc::{SchedClassifierLink, TcAttachOptions},
        LinkOrder, ProgramError, SchedClassifier, TcAttachType,
    },
    Ebpf, EbpfError, EbpfLoader,
};
use ipnet::Ipv4Net;
use netd_common::{maps, DropReason, Endpoint, NetworkInfo};
use nix::{
    mount::{mount, umount2, MntFlags, MsFlags},
    sys::statfs::{statfs, BPF_FS_MAGIC},
};
use thiserror::Error;

/// The eBPF object built from `netd-ebpf` by `build.rs`, embedded in the binary.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netd"));

/// The program on the host side of every container veth.
pub const ENDPOINT_PROGRAM: &str = "netd_endpoint_ingress";

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
    #[error("link pin {path}: {source}")]
    Link { path: PathBuf, source: LinkError },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        source: MapError,
    },
    #[error("the eBPF object has no {0}")]
    Missing(&'static str),
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
    pub fn open(root: &Path) -> Result<Self, DatapathError> {
        ensure_bpffs(root)?;
        for dir in [root.join("maps"), root.join("links")] {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(root.join("maps"))
            .load(EBPF_OBJECT)?;
        endpoint_program(&mut ebpf)?
            .load()
            .map_err(|source| DatapathError::Program {
                name: ENDPOINT_PROGRAM,
                source,
            })?;
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

    /// Records `ep` for the port `ifindex` and attaches the endpoint program to `veth`'s ingress,
    /// pinning the link. An existing pinned link gets the current program swapped in instead.
    pub fn attach_endpoint(
        &mut self,
        veth: &str,
        ifindex: u32,
        ep: Endpoint,
    ) -> Result<(), DatapathError> {
        self.endpoints_mut()?
            .insert(ifindex, ep, 0)
            .map_err(map_err(maps::ENDPOINTS))?;
        let pin = self.link_pin(veth);
        let program = endpoint_program(&mut self.ebpf)?;
        let prog_err = |source| DatapathError::Program {
            name: ENDPOINT_PROGRAM,
            source,
        };
        let link_id = match PinnedLink::from_pin(&pin) {
            Ok(old) => {
                let link = SchedClassifierLink::try_from(FdLink::from(old)).map_err(|source| {
                    DatapathError::Link {
                        path: pin.clone(),
                        source,
                    }
                })?;
                program.attach_to_link(link).map_err(prog_err)?
            }
            Err(_) => {
                let order = TcAttachOptions::TcxOrder(LinkOrder::default());
                let id = program
                    .attach_with_options(veth, TcAttachType::Ingress, order)
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
                return Ok(());
            }
        };
        // The pin keeps the link (now running the new program) alive; drop our handle to it.
        drop(program.take_link(link_id).map_err(prog_err)?);
        Ok(())
    }

    /// Forgets the port `ifindex` and unpins its link (the veth itself is deleted by the caller).
    pub fn detach_endpoint(&mut self, veth: &str, ifindex: Option<u32>) -> Vec<DatapathError> {
        let mut errors = vec![];
        if let Some(ifindex) = ifindex {
            match self
                .endpoints_mut()
                .and_then(|mut m| m.remove(&ifindex).map_err(map_err(maps::ENDPOINTS)))
            {
                Ok(())
                | Err(DatapathError::Map {
                    source: MapError::KeyNotFound,
                    ..
                }) => {}
                Err(e) => errors.push(e),
            }
        }
        let pin = self.link_pin(veth);
        if let Err(e) = fs::remove_file(&pin) {
            if e.kind() != io::ErrorKind::NotFound {
                errors.push(io_err("unpin", &pin)(e));
            }
        }
        errors
    }

    fn endpoints_mut(&mut self) -> Result<HashMap<&mut MapData, u32, Endpoint>, DatapathError> {
        let map = self
            .ebpf
            .map_mut(maps::ENDPOINTS)
            .ok_or(DatapathError::Missing(maps::ENDPOINTS))?;
        HashMap::try_from(map).map_err(map_err(maps::ENDPOINTS))
    }

    fn networks_mut(
        &mut self,
    ) -> Result<LpmTrie<&mut MapData, [u8; 4], NetworkInfo>, DatapathError> {
        let map = self
            .ebpf
            .map_mut(maps::NETWORKS)
            .ok_or(DatapathError::Missing(maps::NETWORKS))?;
        LpmTrie::try_from(map).map_err(map_err(maps::NETWORKS))
    }

    /// The endpoint entries as they are in the kernel.
    pub fn endpoints(&self) -> Result<BTreeMap<u32, Endpoint>, DatapathError> {
        let map = self
            .ebpf
            .map(maps::ENDPOINTS)
            .ok_or(DatapathError::Missing(maps::ENDPOINTS))?;
        let map: HashMap<&MapData, u32, Endpoint> =
            HashMap::try_from(map).map_err(map_err(maps::ENDPOINTS))?;
        map.iter()
            .collect::<Result<_, _>>()
            .map_err(map_err(maps::ENDPOINTS))
    }

    /// Overwrites or removes endpoint entries.
    pub fn apply_endpoints(
        &mut self,
        diff: plan::MapDiff<u32, Endpoint>,
    ) -> Result<(), DatapathError> {
        let mut map = self.endpoints_mut()?;
        for (k, v) in diff.upsert {
            map.insert(k, v, 0).map_err(map_err(maps::ENDPOINTS))?;
        }
        for k in diff.remove {
            map.remove(&k).map_err(map_err(maps::ENDPOINTS))?;
        }
        Ok(())
    }

    /// The subnet entries as they are in the kernel.
    pub fn networks(&self) -> Result<BTreeMap<Ipv4Net, NetworkInfo>, DatapathError> {
        let map = self
            .ebpf
            .map(maps::NETWORKS)
            .ok_or(DatapathError::Missing(maps::NETWORKS))?;
        let map: LpmTrie<&MapData, [u8; 4], NetworkInfo> =
            LpmTrie::try_from(map).map_err(map_err(maps::NETWORKS))?;
        map.iter()
            .map(|r| r.map(|(k, v)| (subnet_of(&k), v)))
            .collect::<Result<_, _>>()
            .map_err(map_err(maps::NETWORKS))
    }

    /// Overwrites or removes subnet entries.
    pub fn apply_networks(
        &mut self,
        diff: plan::MapDiff<Ipv4Net, NetworkInfo>,
    ) -> Result<(), DatapathError> {
        let mut map = self.networks_mut()?;
        for (k, v) in diff.upsert {
            map.insert(&key_of(k), v, 0)
                .map_err(map_err(maps::NETWORKS))?;
        }
        for k in diff.remove {
            map.remove(&key_of(k)).map_err(map_err(maps::NETWORKS))?;
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

    /// Where a map is pinned.
    pub fn map_pin(&self, name: &str) -> PathBuf {
        self.root.join("maps").join(name)
    }
}

fn endpoint_program(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier, DatapathError> {
    let program = ebpf
        .program_mut(ENDPOINT_PROGRAM)
        .ok_or(DatapathError::Missing(ENDPOINT_PROGRAM))?;
    program.try_into().map_err(|source| DatapathError::Program {
        name: ENDPOINT_PROGRAM,
        source,
    })
}

fn key_of(subnet: Ipv4Net) -> Key<[u8; 4]> {
    Key::new(subnet.prefix_len().into(), subnet.network().octets())
}

fn subnet_of(key: &Key<[u8; 4]>) -> Ipv4Net {
    Ipv4Net::new(key.data().into(), key.prefix_len() as u8).unwrap_or_default()
}

fn is_bpffs(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == BPF_FS_MAGIC)
}

/// Creates `root` and mounts a bpffs there unless it already lies on one. Under a fresh sysfs
/// (as `ip netns exec` gives) `/sys/fs/bpf` is an empty mount point: bpffs is mounted there
/// first, as systemd does at boot.
fn ensure_bpffs(root: &Path) -> Result<(), DatapathError> {
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
