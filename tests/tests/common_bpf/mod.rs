//! Harness for running netd's eBPF programs through `BPF_PROG_TEST_RUN`.
//!
//! Each [`Harness`] loads the embedded object ([`netd::datapath::EBPF_OBJECT`]) with its pinned
//! maps in a fresh directory of its own under `/sys/fs/bpf`, so tests run in parallel without
//! seeing each other's maps, and removes that directory when dropped (also when a test panics).
//! Frames are built by hand with the small builders at the bottom of this file.
#![allow(dead_code)] // Each test binary uses its own subset of the helpers.

use std::{
    ffi::CString,
    fs::{self, File},
    io,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU32, Ordering},
        OnceLock,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use aya::{
    maps::{lpm_trie::Key, HashMap, LpmTrie, MapData, PerCpuArray, PerCpuHashMap},
    programs::{ProgramError, SchedClassifier, TestRun, TestRunOptions},
    Ebpf, EbpfLoader,
};
use netd_common::{
    maps, Backend, DropReason, Endpoint, Endpoint6, FlowKey, NatEntry, Neighbor, NetworkInfo,
    PortKey, PortStats, Uplink,
};

/// Where the kernel mounts the BPF filesystem by convention.
pub const BPFFS: &str = "/sys/fs/bpf";
/// `BPF_FS_MAGIC` from `linux/magic.h` (0xcafe4a11; not 0xcafe4711).
const BPF_FS_MAGIC: u32 = 0xcafe_4a11;
/// `TC_ACT_OK`: let the frame through.
pub const TC_ACT_OK: u32 = 0;
/// `TC_ACT_SHOT`: drop the frame.
pub const TC_ACT_SHOT: u32 = 2;
/// `TC_ACT_REDIRECT`: what `bpf_redirect`, `bpf_redirect_peer` and `bpf_redirect_neigh`
/// return; the frame leaves through another device.
pub const TC_ACT_REDIRECT: u32 = 7;
/// The device of the skb `BPF_PROG_TEST_RUN` builds is the loopback device, so the program sees
/// this ifindex unless a `__sk_buff` context says otherwise.
pub const TEST_RUN_IFINDEX: u32 = 1;

/// Whether the caller may run BPF tests. Without root: `None` after printing a skip message, or
/// a panic when `CI=true` (a CI job that silently skips its datapath tests tests nothing).
pub fn require_root(test: &str) -> Option<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Some(());
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: BPF tests need root, and CI=true forbids skipping them");
    }
    eprintln!("skipping {test}: BPF tests need root");
    None
}

fn is_bpffs(path: &Path) -> io::Result<bool> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statfs is plain old data; the kernel fills it in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is NUL-terminated and st is a valid out pointer.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // f_type is a signed long on some targets, a 32-bit int on others: compare the low 32 bits.
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as u32 == BPF_FS_MAGIC)
}

/// Makes sure a BPF filesystem is mounted on [`BPFFS`], mounting one if needed. Serialised across
/// threads and across test processes (an `flock`), so that two test binaries starting at once do
/// not stack two mounts and lose each other's pins.
fn ensure_bpffs() {
    // The outcome is remembered, failure included: a mount that "does not work" must never be
    // retried by every following test (that stacks one bpffs per test on /sys/fs/bpf).
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = DONE.get_or_init(mount_bpffs_once) {
        panic!("{e}");
    }
}

fn mount_bpffs_once() -> Result<(), String> {
    let lock = File::create("/run/netd-tests-bpffs.lock")
        .or_else(|_| File::create(std::env::temp_dir().join("netd-tests-bpffs.lock")))
        .map_err(|e| format!("create the bpffs mount lock file: {e}"))?;
    // SAFETY: valid fd; the lock goes away with the file when `lock` is dropped.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!("flock bpffs lock: {}", io::Error::last_os_error()));
    }
    let path = Path::new(BPFFS);
    if is_bpffs(path).unwrap_or(false) {
        return Ok(());
    }
    fs::create_dir_all(path).map_err(|e| format!("create {BPFFS}: {e}"))?;
    let c_path = CString::new(BPFFS).unwrap();
    let fstype = CString::new("bpf").unwrap();
    // SAFETY: all strings are NUL-terminated, data is NULL.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            c_path.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mount -t bpf bpf {BPFFS}: {}",
            io::Error::last_os_error()
        ));
    }
    match is_bpffs(path) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("{BPFFS} is still not a bpffs after mounting")),
        Err(e) => Err(format!("statfs {BPFFS}: {e}")),
    }
}

/// A directory of pinned maps that belongs to one test and is removed with everything in it when
/// dropped.
pub struct PinDir {
    path: PathBuf,
}

impl PinDir {
    /// Creates a fresh, uniquely named directory under [`BPFFS`].
    pub fn new(test: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        ensure_bpffs();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "netd-test-{}-{}-{nanos}-{test}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = Path::new(BPFFS).join(name);
        fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        // Unlinking a pin does not care about open fds: the map lives on until the last one is
        // closed. Best effort, and never a panic while unwinding.
        if let Ok(entries) = fs::read_dir(&self.path) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
        if let Err(e) = fs::remove_dir(&self.path) {
            eprintln!("warning: could not remove {}: {e}", self.path.display());
        }
    }
}

/// The loaded object plus the pin directory of its maps. Fields drop in order: the object (and
/// its fds) first, then the directory.
pub struct Harness {
    ebpf: Ebpf,
    pins: PinDir,
}

/// Name of the TC program on the host side of container veths.
pub const ENDPOINT_INGRESS: &str = "netd_endpoint_ingress";
/// Name of the TC ingress program of the uplinks (published ports, replies of SNAT flows).
pub const UPLINK_INGRESS: &str = "netd_uplink_ingress";
/// Name of the TC egress program of the uplinks (SNAT, replies of published-port flows).
pub const UPLINK_EGRESS: &str = "netd_uplink_egress";

impl Harness {
    /// Loads netd's object with its maps pinned in a fresh directory and loads (without
    /// attaching) the classifier `program`. `None` when the test is skipped (not root).
    pub fn new(test: &str, program: &str) -> Option<Self> {
        Self::with_nat_entries(test, program, netd_common::DEFAULT_NAT_ENTRIES)
    }

    /// As [`Harness::new`], with NAT tables of `nat_entries` entries each (as the daemon's
    /// `--nat-entries`).
    pub fn with_nat_entries(test: &str, program: &str, nat_entries: u32) -> Option<Self> {
        require_root(test)?;
        let pins = PinDir::new(test);
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(pins.path())
            .map_max_entries(maps::NAT, nat_entries)
            .map_max_entries(maps::NAT_NEW, nat_entries)
            .load(netd::datapath::EBPF_OBJECT)
            .expect("load the netd eBPF object");
        let prog: &mut SchedClassifier = ebpf
            .program_mut(program)
            .unwrap_or_else(|| panic!("no program {program} in the object"))
            .try_into()
            .expect("program is a classifier");
        if let Err(e) = prog.load() {
            // The verifier log is in the error's Display output, not its Debug output.
            panic!("loading {program} failed: {e}");
        }
        if program == ENDPOINT_INGRESS {
            // Its IPv6 half, which it tail-calls.
            let six: &mut SchedClassifier = ebpf
                .program_mut(netd::datapath::ENDPOINT6_PROGRAM)
                .expect("the IPv6 endpoint program")
                .try_into()
                .expect("program is a classifier");
            if let Err(e) = six.load() {
                panic!("loading {} failed: {e}", netd::datapath::ENDPOINT6_PROGRAM);
            }
            netd::datapath::set_tail_calls(&mut ebpf).expect("tail calls");
        }
        for name in [maps::ENDPOINTS, maps::NETWORKS, maps::DROPS] {
            let pin = pins.path().join(name);
            assert!(
                pin.exists(),
                "map {name} was not pinned at {}",
                pin.display()
            );
        }
        Some(Self { ebpf, pins })
    }

    /// The pin directory of this harness's maps.
    pub fn pin_dir(&self) -> &Path {
        self.pins.path()
    }

    /// Plugs `ep` in behind bridge port `ifindex`.
    pub fn set_endpoint(&mut self, ifindex: u32, ep: Endpoint) {
        let mut map: HashMap<_, u32, Endpoint> =
            HashMap::try_from(self.ebpf.map_mut(maps::ENDPOINTS).expect("endpoints map"))
                .expect("endpoints map type");
        map.insert(ifindex, ep, 0).expect("insert endpoint");
    }

    /// Declares `addr/prefix_len` a subnet of network `net_id`.
    pub fn add_network(&mut self, addr: [u8; 4], prefix_len: u32, net_id: u32) {
        let mut map: LpmTrie<_, [u8; 4], NetworkInfo> =
            LpmTrie::try_from(self.ebpf.map_mut(maps::NETWORKS).expect("networks map"))
                .expect("networks map type");
        map.insert(
            &Key::new(prefix_len, addr),
            NetworkInfo { net_id, flags: 0 },
            0,
        )
        .expect("insert network");
    }

    /// Declares `ifindex` the host-side veth of the container at `addr` (`NETD_VETHS`).
    pub fn add_veth(&mut self, addr: [u8; 4], ifindex: u32) {
        let mut map: HashMap<_, [u8; 4], u32> =
            HashMap::try_from(self.ebpf.map_mut(maps::VETHS).expect("veths map"))
                .expect("veths map type");
        map.insert(addr, ifindex, 0).expect("insert veth");
    }

    /// Lets the ARP responder answer for `addr` on network `net_id` with `mac`.
    pub fn add_neighbor(&mut self, addr: [u8; 4], mac: [u8; 6], net_id: u32) {
        let mut map: HashMap<_, [u8; 4], Neighbor> =
            HashMap::try_from(self.ebpf.map_mut(maps::NEIGHBORS).expect("neighbors map"))
                .expect("neighbors map type");
        let neighbor = Neighbor {
            mac,
            _pad: [0; 2],
            net_id,
        };
        map.insert(addr, neighbor, 0).expect("insert neighbor");
    }

    /// Gives the port `ifindex` IPv6 (`NETD_ENDPOINTS6`).
    pub fn set_endpoint6(&mut self, ifindex: u32, ep: Endpoint6) {
        let mut map: HashMap<_, u32, Endpoint6> =
            HashMap::try_from(self.ebpf.map_mut(maps::ENDPOINTS6).expect("endpoints6 map"))
                .expect("endpoints6 map type");
        map.insert(ifindex, ep, 0).expect("insert IPv6 endpoint");
    }

    /// Declares `addr/prefix_len` an IPv6 subnet of network `net_id`.
    pub fn add_network6(&mut self, addr: [u8; 16], prefix_len: u32, net_id: u32) {
        let mut map: LpmTrie<_, [u8; 16], NetworkInfo> =
            LpmTrie::try_from(self.ebpf.map_mut(maps::NETWORKS6).expect("networks6 map"))
                .expect("networks6 map type");
        map.insert(
            &Key::new(prefix_len, addr),
            NetworkInfo { net_id, flags: 0 },
            0,
        )
        .expect("insert IPv6 network");
    }

    /// Lets the NDP responder answer for `addr` on network `net_id` with `mac`.
    pub fn add_neighbor6(&mut self, addr: [u8; 16], mac: [u8; 6], net_id: u32) {
        let mut map: HashMap<_, [u8; 16], Neighbor> =
            HashMap::try_from(self.ebpf.map_mut(maps::NEIGHBORS6).expect("neighbors6 map"))
                .expect("neighbors6 map type");
        let neighbor = Neighbor {
            mac,
            _pad: [0; 2],
            net_id,
        };
        map.insert(addr, neighbor, 0).expect("insert IPv6 neighbor");
    }

    /// Declares `ifindex` the host-side veth of the container at IPv6 `addr` (`NETD_VETHS6`).
    pub fn add_veth6(&mut self, addr: [u8; 16], ifindex: u32) {
        let mut map: HashMap<_, [u8; 16], u32> =
            HashMap::try_from(self.ebpf.map_mut(maps::VETHS6).expect("veths6 map"))
                .expect("veths6 map type");
        map.insert(addr, ifindex, 0).expect("insert IPv6 veth");
    }

    /// Runs `program` once on `frame` and returns its verdict, or the error of the syscall (the
    /// kernel refuses some inputs, such as frames shorter than an Ethernet header).
    pub fn try_run(&self, program: &str, frame: &[u8]) -> Result<u32, ProgramError> {
        let prog: &SchedClassifier = self
            .ebpf
            .program(program)
            .unwrap_or_else(|| panic!("no program {program} in the object"))
            .try_into()
            .expect("program is a classifier");
        let result = prog.test_run(TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::default()
        })?;
        Ok(result.return_value)
    }

    /// Runs `program` once on `frame` and returns its verdict.
    pub fn run(&self, program: &str, frame: &[u8]) -> u32 {
        self.try_run(program, frame)
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN of {program}: {}", error_chain(&e)))
    }

    /// Packets dropped for `reason`, summed over CPUs.
    pub fn drops(&self, reason: DropReason) -> u64 {
        let map: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map(maps::DROPS).expect("drops map"))
                .expect("drops map type");
        map.get(&(reason as u32), 0)
            .expect("read drop counter")
            .iter()
            .sum()
    }

    /// Every drop counter, in [`DropReason::ALL`] order.
    pub fn all_drops(&self) -> Vec<(DropReason, u64)> {
        DropReason::ALL
            .iter()
            .map(|&reason| (reason, self.drops(reason)))
            .collect()
    }

    /// Loads (without attaching) one more classifier of the object, so that one test can run
    /// several programs over the same maps.
    pub fn load_program(&mut self, program: &str) {
        let prog: &mut SchedClassifier = self
            .ebpf
            .program_mut(program)
            .unwrap_or_else(|| panic!("no program {program} in the object"))
            .try_into()
            .expect("program is a classifier");
        if let Err(e) = prog.load() {
            panic!("loading {program} failed: {e}");
        }
    }

    /// Runs `program` once on `frame` and returns its verdict and the frame as the program left
    /// it (`data_out`), or the error of the syscall.
    pub fn try_run_out(&self, program: &str, frame: &[u8]) -> Result<(u32, Vec<u8>), ProgramError> {
        let prog: &SchedClassifier = self
            .ebpf
            .program(program)
            .unwrap_or_else(|| panic!("no program {program} in the object"))
            .try_into()
            .expect("program is a classifier");
        // Room for programs that grow the frame; the kernel fails with ENOSPC if it is short.
        let mut out = vec![0u8; frame.len() + 512];
        let result = prog.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        })?;
        out.truncate(result.data_size_out as usize);
        Ok((result.return_value, out))
    }

    /// Runs `program` once on `frame` marked as a `netd explain` probe (as the daemon runs its
    /// probes: `skb->mark` is [`netd_common::EXPLAIN_MARK`]) and returns its verdict and the frame
    /// it left.
    pub fn run_probe(&self, program: &str, frame: &[u8]) -> (u32, Vec<u8>) {
        let prog: &SchedClassifier = self
            .ebpf
            .program(program)
            .unwrap_or_else(|| panic!("no program {program} in the object"))
            .try_into()
            .expect("program is a classifier");
        // A `struct __sk_buff` with only `mark` (offset 8) set.
        let mut ctx = [0u8; 192];
        ctx[8..12].copy_from_slice(&netd_common::EXPLAIN_MARK.to_ne_bytes());
        let mut out = vec![0u8; frame.len() + 512];
        let result = prog
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ctx_in: Some(&ctx),
                ..TestRunOptions::default()
            })
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN of {program}: {}", error_chain(&e)));
        out.truncate(result.data_size_out as usize);
        (result.return_value, out)
    }

    /// Runs `program` once on `frame` and returns its verdict and the frame it left.
    pub fn run_out(&self, program: &str, frame: &[u8]) -> (u32, Vec<u8>) {
        self.try_run_out(program, frame)
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN of {program}: {}", error_chain(&e)))
    }

    /// Publishes `key` (host address or 0.0.0.0, port, protocol) to `backend`.
    pub fn add_port(&mut self, key: PortKey, backend: Backend) {
        let mut map: HashMap<_, PortKey, Backend> =
            HashMap::try_from(self.ebpf.map_mut(maps::PORTS).expect("ports map"))
                .expect("ports map type");
        map.insert(key, backend, 0).expect("insert published port");
    }

    /// Writes entries of the published-port policy trie (as `netd::policy` plans them).
    pub fn add_policy(&mut self, entries: &[((u32, netd_common::PolicyPrefix), u32)]) {
        let mut map: LpmTrie<_, netd_common::PolicyPrefix, u32> =
            LpmTrie::try_from(self.ebpf.map_mut(maps::PUBLISH_POLICY).expect("policy map"))
                .expect("policy map type");
        for ((bits, data), action) in entries {
            map.insert(&Key::new(*bits, *data), *action, 0)
                .unwrap_or_else(|e| panic!("insert policy prefix: {}", error_chain(&e)));
        }
    }

    /// Declares `addr` one of the host's own addresses.
    pub fn add_local_addr(&mut self, addr: [u8; 4]) {
        let mut map: HashMap<_, [u8; 4], u32> = HashMap::try_from(
            self.ebpf
                .map_mut(maps::LOCAL_ADDRS)
                .expect("local addrs map"),
        )
        .expect("local addrs map type");
        map.insert(addr, 0, 0).expect("insert local address");
    }

    /// Declares interface `ifindex` an uplink translating egress to `addr`.
    pub fn set_uplink(&mut self, ifindex: u32, addr: [u8; 4]) {
        let mut map: HashMap<_, u32, Uplink> =
            HashMap::try_from(self.ebpf.map_mut(maps::UPLINKS).expect("uplinks map"))
                .expect("uplinks map type");
        map.insert(ifindex, Uplink { addr, _pad: 0 }, 0)
            .expect("insert uplink");
    }

    /// Packets counted on the published port `key`, summed over CPUs (0 if none).
    pub fn port_packets(&self, key: PortKey) -> u64 {
        let map: PerCpuHashMap<_, PortKey, PortStats> =
            PerCpuHashMap::try_from(self.ebpf.map(maps::PORT_STATS).expect("port stats map"))
                .expect("port stats map type");
        match map.get(&key, 0) {
            Ok(values) => values.iter().map(|s| s.packets).sum(),
            Err(aya::maps::MapError::KeyNotFound) => 0,
            Err(e) => panic!("read port stats {key:?}: {}", error_chain(&e)),
        }
    }

    /// One NAT table: `maps::NAT` (assured flows) or `maps::NAT_NEW` (new and closing ones).
    fn nat_table(&self, name: &str) -> HashMap<&MapData, FlowKey, NatEntry> {
        HashMap::try_from(self.ebpf.map(name).expect("nat map")).expect("nat map type")
    }

    fn nat_table_mut(&mut self, name: &str) -> HashMap<&mut MapData, FlowKey, NatEntry> {
        HashMap::try_from(self.ebpf.map_mut(name).expect("nat map")).expect("nat map type")
    }

    /// Every entry of one NAT table, sorted by key.
    pub fn nat_table_entries(&self, name: &str) -> Vec<(FlowKey, NatEntry)> {
        let mut entries: Vec<_> = self
            .nat_table(name)
            .iter()
            .map(|r| r.expect("iterate a NAT table"))
            .collect();
        entries.sort_by_key(|(k, _)| *k);
        entries
    }

    /// Every entry of both NAT tables (assured and new), sorted by key.
    pub fn nat_entries(&self) -> Vec<(FlowKey, NatEntry)> {
        let mut entries = self.nat_table_entries(maps::NAT);
        entries.extend(self.nat_table_entries(maps::NAT_NEW));
        entries.sort_by_key(|(k, _)| *k);
        entries
    }

    /// The NAT entry under `key` in either table (the assured one first), if any.
    pub fn nat_get(&self, key: &FlowKey) -> Option<NatEntry> {
        [maps::NAT, maps::NAT_NEW]
            .iter()
            .find_map(|name| match self.nat_table(name).get(key, 0) {
                Ok(entry) => Some(entry),
                Err(aya::maps::MapError::KeyNotFound) => None,
                Err(e) => panic!("read NAT entry {key:?}: {}", error_chain(&e)),
            })
    }

    /// Inserts (or replaces) the NAT entry under `key` in the new table, where the datapath
    /// puts a new flow's entries.
    pub fn nat_insert(&mut self, key: FlowKey, entry: NatEntry) {
        self.nat_table_mut(maps::NAT_NEW)
            .insert(key, entry, 0)
            .expect("insert NAT entry");
    }

    /// Inserts (or replaces) the NAT entry under `key` in the table `name`.
    pub fn nat_insert_into(&mut self, name: &str, key: FlowKey, entry: NatEntry) {
        self.nat_table_mut(name)
            .insert(key, entry, 0)
            .unwrap_or_else(|e| panic!("insert into {name}: {}", error_chain(&e)));
    }

    /// The `NAT_STAT_*` counter `index`, summed over CPUs.
    pub fn nat_stat(&self, index: u32) -> u64 {
        let map: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map(maps::NAT_STATS).expect("nat stats map"))
                .expect("nat stats map type");
        map.get(&index, 0).expect("read a NAT counter").iter().sum()
    }

    /// Removes the NAT entry under `key` (which must exist) from whichever table holds it.
    pub fn nat_remove(&mut self, key: &FlowKey) {
        let removed = [maps::NAT, maps::NAT_NEW]
            .iter()
            .filter(|name| self.nat_table_mut(name).remove(key).is_ok())
            .count();
        assert!(removed > 0, "no NAT entry under {key:?} to remove");
    }
}

/// A container's endpoint at `addr` with MAC `mac` on network `net_id`, no flags.
pub fn endpoint_on(addr: [u8; 4], mac: [u8; 6], net_id: u32) -> Endpoint {
    Endpoint {
        addr,
        mac,
        _pad: [0; 2],
        net_id,
        flags: 0,
    }
}

// --- Frame builders -------------------------------------------------------------------------

/// EtherType of IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// The broadcast MAC address.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// An Ethernet header followed by `payload`.
pub fn ethernet(dst: [u8; 6], src: [u8; 6], ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + payload.len());
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ether_type.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A 20-byte IPv4 header (no options, valid checksum) followed by `payload`.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let total_len = u16::try_from(20 + payload.len()).expect("IPv4 packet too long");
    let mut packet = Vec::with_capacity(usize::from(total_len));
    packet.push(0x45); // version 4, IHL 5
    packet.push(0); // DSCP/ECN
    packet.extend_from_slice(&total_len.to_be_bytes());
    packet.extend_from_slice(&[0x12, 0x34]); // identification
    packet.extend_from_slice(&[0x40, 0x00]); // don't fragment
    packet.push(64); // TTL
    packet.push(proto);
    packet.extend_from_slice(&[0, 0]); // checksum, filled in below
    packet.extend_from_slice(&src);
    packet.extend_from_slice(&dst);
    let check = inet_checksum(&packet);
    packet[10..12].copy_from_slice(&check.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

/// A UDP datagram (checksum 0: "none", legal over IPv4) carrying `payload`.
pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).expect("UDP datagram too long");
    let mut datagram = Vec::with_capacity(usize::from(len));
    datagram.extend_from_slice(&src_port.to_be_bytes());
    datagram.extend_from_slice(&dst_port.to_be_bytes());
    datagram.extend_from_slice(&len.to_be_bytes());
    datagram.extend_from_slice(&[0, 0]);
    datagram.extend_from_slice(payload);
    datagram
}

/// A complete Ethernet/IPv4/UDP frame.
pub fn ipv4_udp_frame(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let udp = udp(40000, 53, b"netd test payload");
    ethernet(dst_mac, src_mac, ETH_P_IP, &ipv4(src, dst, 17, &udp))
}

/// ARP operation: request.
pub const ARP_REQUEST: u16 = 1;
/// ARP operation: reply.
pub const ARP_REPLY: u16 = 2;

/// An Ethernet/IPv4 ARP packet (28 bytes).
pub fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(28);
    packet.extend_from_slice(&1u16.to_be_bytes()); // HTYPE Ethernet
    packet.extend_from_slice(&ETH_P_IP.to_be_bytes()); // PTYPE IPv4
    packet.push(6); // HLEN
    packet.push(4); // PLEN
    packet.extend_from_slice(&op.to_be_bytes());
    packet.extend_from_slice(&sha);
    packet.extend_from_slice(&spa);
    packet.extend_from_slice(&tha);
    packet.extend_from_slice(&tpa);
    packet
}

/// A broadcast ARP request frame from `sha`/`spa` asking for `tpa`.
pub fn arp_request_frame(eth_src: [u8; 6], sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    ethernet(
        BROADCAST_MAC,
        eth_src,
        ETH_P_ARP,
        &arp(ARP_REQUEST, sha, spa, [0; 6], tpa),
    )
}

/// A minimal IPv6 frame (40-byte header, UDP next header, no payload).
pub fn ipv6_frame(src_mac: [u8; 6], dst_mac: [u8; 6]) -> Vec<u8> {
    let mut header = Vec::with_capacity(40);
    header.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, no traffic class/flow label
    header.extend_from_slice(&0u16.to_be_bytes()); // payload length
    header.push(17); // next header: UDP
    header.push(64); // hop limit
    let mut src = [0u8; 16];
    src[..2].copy_from_slice(&[0xfe, 0x80]);
    src[10..].copy_from_slice(&src_mac);
    header.extend_from_slice(&src);
    let mut dst = [0u8; 16];
    dst[..2].copy_from_slice(&[0xff, 0x02]);
    dst[15] = 1;
    header.extend_from_slice(&dst);
    ethernet(dst_mac, src_mac, ETH_P_IPV6, &header)
}

/// IPv6 next headers the tests use.
pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ICMPV6: u8 = 58;

/// A 40-byte IPv6 header (no traffic class or flow label) followed by `payload`.
pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, hop_limit: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).expect("IPv6 payload too long");
    let mut packet = Vec::with_capacity(40 + payload.len());
    packet.extend_from_slice(&[0x60, 0, 0, 0]);
    packet.extend_from_slice(&len.to_be_bytes());
    packet.push(next);
    packet.push(hop_limit);
    packet.extend_from_slice(&src);
    packet.extend_from_slice(&dst);
    packet.extend_from_slice(payload);
    packet
}

/// The ICMPv6 checksum of `message` (its checksum field zero) from `src` to `dst`: the
/// Internet checksum over the IPv6 pseudo-header (RFC 8200, 8.1) and the message, computed
/// here byte by byte, independently of netd's own.
pub fn icmpv6_checksum(src: [u8; 16], dst: [u8; 16], message: &[u8]) -> u16 {
    let mut data = Vec::with_capacity(40 + message.len());
    data.extend_from_slice(&src);
    data.extend_from_slice(&dst);
    data.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, IPPROTO_ICMPV6]);
    data.extend_from_slice(message);
    inet_checksum(&data)
}

/// An ICMPv6 message of `icmp_type` and `code` with `body` (everything after the checksum),
/// its checksum filled in for `src` to `dst`.
pub fn icmpv6(src: [u8; 16], dst: [u8; 16], icmp_type: u8, code: u8, body: &[u8]) -> Vec<u8> {
    let mut message = vec![icmp_type, code, 0, 0];
    message.extend_from_slice(body);
    let check = icmpv6_checksum(src, dst, &message);
    message[2..4].copy_from_slice(&check.to_be_bytes());
    message
}

/// The Ethernet multicast address of an IPv6 multicast group (RFC 2464, 7).
pub fn ipv6_multicast_mac(group: [u8; 16]) -> [u8; 6] {
    [0x33, 0x33, group[12], group[13], group[14], group[15]]
}

/// The solicited-node multicast group of `addr` (RFC 4291, 2.7.1).
pub fn solicited_node(addr: [u8; 16]) -> [u8; 16] {
    let mut group = [0u8; 16];
    group[..2].copy_from_slice(&[0xff, 0x02]);
    group[11..].copy_from_slice(&[1, 0xff, addr[13], addr[14], addr[15]]);
    group
}

/// A neighbour solicitation frame for `target` from `src_mac`/`src`, to the target's
/// solicited-node group, with a source link-layer address option carrying `sllao` if given.
pub fn neighbor_solicitation_frame(
    src_mac: [u8; 6],
    src: [u8; 16],
    target: [u8; 16],
    sllao: Option<[u8; 6]>,
) -> Vec<u8> {
    let group = solicited_node(target);
    let mut body = vec![0; 4];
    body.extend_from_slice(&target);
    if let Some(mac) = sllao {
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(&mac);
    }
    let message = icmpv6(src, group, 135, 0, &body);
    ethernet(
        ipv6_multicast_mac(group),
        src_mac,
        ETH_P_IPV6,
        &ipv6(src, group, IPPROTO_ICMPV6, 255, &message),
    )
}

/// An IPv6/UDP frame (UDP checksum left zero: the programs never look at it).
pub fn ipv6_udp_frame(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
    let udp = udp(40000, 53, b"netd test payload");
    ethernet(dst_mac, src_mac, ETH_P_IPV6, &ipv6(src, dst, 17, 64, &udp))
}

/// `e` and all its sources on one line (aya's `SyscallError` keeps the errno in its source).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
