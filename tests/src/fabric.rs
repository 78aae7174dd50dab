//! Several hosts on one underlay ([`netd_world::fabric`]): a "fabric" namespace with a bridge,
//! and one port on it per host (`eth1` in the host's namespace), as machines on one switch. Each
//! host is a full [`Host`] with its own daemon, dirs and outside namespace. A fabric may also
//! run etcd in a namespace of its own ([`Fabric::with_etcd`]), for hosts whose daemons share it
//! as their cluster store ([`Fabric::cluster_hosts`]). Dropping the [`Fabric`] stops etcd and
//! deletes its namespaces, and with them every host's underlay port.
use std::{path::PathBuf, process::Child, sync::atomic::Ordering};

use super::{run, Host, Launch, NEXT};

/// The underlay's switch.
pub struct Fabric {
    pub ns: String,
    etcd: Option<Etcd>,
    /// Hosts given an underlay address so far.
    numbered: usize,
}

/// etcd on the fabric: its namespace, data dir and process (while it runs).
struct Etcd {
    ns: String,
    dir: PathBuf,
    process: Option<Child>,
}

pub use netd_world::UNDERLAY_PORT;

impl Fabric {
    /// An empty switch, or `None` when privileged tests are skipped.
    pub fn start() -> Option<Fabric> {
        if !super::privileged() {
            return None;
        }
        let ns = format!(
            "nd{}x{}f",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        netd_world::fabric(&ns).expect("the fabric");
        Some(Fabric {
            ns,
            etcd: None,
            numbered: 0,
        })
    }

    /// A switch with etcd serving on it at [`netd_world::ETCD_IP`].
    pub fn with_etcd() -> Option<Fabric> {
        let mut fabric = Self::start()?;
        let ns = format!("{}e", fabric.ns);
        let dir = std::env::temp_dir().join(format!("netd-test-{ns}"));
        let _ = std::fs::remove_dir_all(&dir);
        let process = netd_world::etcd(&fabric.ns, &ns, &dir).expect("etcd on the fabric");
        fabric.etcd = Some(Etcd {
            ns,
            dir,
            process: Some(process),
        });
        Some(fabric)
    }

    /// `count` hosts, each with its daemon running and `eth1` on this switch (up, no address).
    pub fn hosts(&self, count: usize) -> Vec<Host> {
        (0..count)
            .map(|_| {
                let host = Host::start().expect("privileged, as the fabric is");
                self.plug(&host);
                host
            })
            .collect()
    }

    /// `count` hosts whose daemons share this fabric's etcd (`--cluster-store`), each
    /// advertising its `eth1` address (`10.98.0.11`, `.12`, ...), with `args` besides.
    pub fn cluster_hosts(&mut self, count: usize, args: &[&str]) -> Vec<Host> {
        assert!(self.etcd.is_some(), "a fabric made with_etcd");
        (0..count).map(|_| self.cluster_host(args)).collect()
    }

    /// One more host of the cluster (see [`Fabric::cluster_hosts`]).
    pub fn cluster_host(&mut self, args: &[&str]) -> Host {
        self.cluster_host_with(Launch::Nsenter, args)
    }

    /// One more host of the cluster, its daemon started the way `launch` says.
    pub fn cluster_host_with(&mut self, launch: Launch, args: &[&str]) -> Host {
        self.numbered += 1;
        let addr = netd_world::fabric_ip(self.numbered);
        let store = netd_world::cluster_store();
        let mut all = vec!["--cluster-store", &store, "--advertise-addr", &addr];
        all.extend_from_slice(args);
        let mut host = Host::prepare(launch, &all).expect("privileged");
        self.plug(&host);
        netd_world::address_underlay(&host.host_ns(), &addr).expect("the underlay address");
        host.start_daemon();
        host
    }

    /// Gives `host` an `eth1` port on this switch.
    pub fn plug(&self, host: &Host) {
        let port = format!("{}s", host.name);
        netd_world::plug(&self.ns, &port, &host.host_ns()).expect("a port on the fabric");
    }

    /// Stops etcd (SIGKILL, as a crash) and waits for it to exit.
    pub fn stop_etcd(&mut self) {
        let etcd = self.etcd.as_mut().expect("a fabric with etcd");
        if let Some(mut p) = etcd.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    /// Starts etcd again, with the data it had.
    pub fn start_etcd(&mut self) {
        let etcd = self.etcd.as_mut().expect("a fabric with etcd");
        assert!(etcd.process.is_none(), "etcd is running");
        etcd.process = Some(netd_world::start_etcd(&etcd.ns, &etcd.dir).expect("etcd again"));
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        if let Some(mut etcd) = self.etcd.take() {
            if let Some(mut p) = etcd.process.take() {
                let _ = p.kill();
                let _ = p.wait();
            }
            let out = run("ip", &["netns", "del", &etcd.ns]);
            if !out.ok() {
                eprintln!("cannot delete etcd namespace {}: {}", etcd.ns, out.stderr);
            }
            let _ = std::fs::remove_dir_all(&etcd.dir);
        }
        let out = run("ip", &["netns", "del", &self.ns]);
        if !out.ok() {
            eprintln!("cannot delete fabric {}: {}", self.ns, out.stderr);
        }
    }
}
