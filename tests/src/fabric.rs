//! Several hosts on one underlay ([`netd_world::fabric`]): a "fabric" namespace with a bridge,
//! and one port on it per host (`eth1` in the host's namespace), as machines on one switch. Each host is
//! a full [`Host`] with its own daemon, dirs and outside namespace. Dropping the [`Fabric`]
//! deletes its namespace, and with it every host's underlay port.
use std::sync::atomic::Ordering;

use super::{run, Host, NEXT};

/// The underlay's switch.
pub struct Fabric {
    pub ns: String,
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
        Some(Fabric { ns })
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

    /// Gives `host` an `eth1` port on this switch.
    pub fn plug(&self, host: &Host) {
        let port = format!("{}s", host.name);
        netd_world::plug(&self.ns, &port, &host.host_ns()).expect("a port on the fabric");
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        let out = run("ip", &["netns", "del", &self.ns]);
        if !out.ok() {
            eprintln!("cannot delete fabric {}: {}", self.ns, out.stderr);
        }
    }
}
