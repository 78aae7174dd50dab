//! Several hosts on one underlay: a "fabric" namespace with a bridge, and one port on it per
//! host (`eth1` in the host's namespace), as two machines plugged into one switch. Each host is
//! a full [`Host`] with its own daemon, dirs and outside namespace. Dropping the [`Fabric`]
//! deletes its namespace, and with it every host's underlay port.
use std::sync::atomic::Ordering;

use super::{must, run, Host, NEXT};

/// The underlay's switch.
pub struct Fabric {
    pub ns: String,
}

/// The name of each host's underlay port, as the seeds call it.
pub const UNDERLAY_PORT: &str = "eth1";

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
        must("ip", &["netns", "add", &ns]);
        let fabric = Fabric { ns };
        for args in [
            &["link", "set", "lo", "up"][..],
            &["link", "add", "fab0", "type", "bridge"],
            &["link", "set", "fab0", "up"],
        ] {
            fabric.ip(args);
        }
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

    /// Gives `host` an `eth1` port on this switch.
    pub fn plug(&self, host: &Host) {
        let port = format!("{}s", host.name);
        let h = host.host_ns();
        self.ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            UNDERLAY_PORT,
            "netns",
            &h,
        ]);
        self.ip(&["link", "set", &port, "master", "fab0", "up"]);
        must("ip", &["-n", &h, "link", "set", UNDERLAY_PORT, "up"]);
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.ns.as_str()];
        all.extend_from_slice(args);
        must("ip", &all);
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
