//! What a host's kernel holds, read from outside the daemon (`ip -j`, the run dir), and the
//! leaks found by comparing it with what the daemon reports: a test that looks this way does not
//! depend on `netd check` being right.
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::{run, Host};

/// Devices of the host namespace that tests make themselves: the uplink, and an underlay port
/// (`eth1`, the parent of macvlan networks) with its peer where a test has no fabric.
const TEST_DEVICES: [&str; 3] = ["uplink0", "eth1", "eth1p"];

/// One device of the host namespace, from `ip -j -d link`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
    pub kind: Option<String>,
    pub master: Option<String>,
    pub up: bool,
}

/// A running container's endpoint as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub container: String,
    pub id: String,
    pub network: String,
    pub ip: String,
    pub veth: String,
}

impl Host {
    /// Every device of the host namespace.
    pub fn kernel_devices(&self) -> Vec<Device> {
        let out = self.on_host(&["ip", "-j", "-d", "link", "show"]);
        assert!(out.ok(), "ip link: {}", out.stderr);
        let links: Vec<Value> = serde_json::from_str(&out.stdout).expect("ip -j link");
        links
            .iter()
            .map(|l| Device {
                index: l["ifindex"].as_u64().unwrap_or(0) as u32,
                name: l["ifname"].as_str().unwrap_or("").to_string(),
                alias: l["ifalias"].as_str().map(str::to_string),
                kind: l["linkinfo"]["info_kind"].as_str().map(str::to_string),
                master: l["master"].as_str().map(str::to_string),
                up: l["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|x| x == "UP")),
            })
            .collect()
    }

    /// Names of the files under the run dir's `netns/`.
    pub fn netns_files(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.dir.join("run/netns"))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `network ls` and `container ls` as JSON, from the daemon.
    pub fn listed(&self) -> (Vec<Value>, Vec<Value>) {
        let parse = |args: &[&str]| -> Vec<Value> {
            serde_json::from_str(&self.ok(args)).expect("JSON list")
        };
        (
            parse(&["network", "ls", "--format", "json"]),
            parse(&["container", "ls", "--format", "json"]),
        )
    }

    /// Every endpoint of a running container, as the daemon reports them.
    pub fn attached(containers: &[Value]) -> Vec<Attached> {
        let mut out = vec![];
        for c in containers.iter().filter(|c| c["status"] == "running") {
            let Some(nets) = c["networks"].as_object() else {
                continue;
            };
            for (net, ep) in nets {
                if let (Some(ip), Some(veth)) =
                    (ep["ip_address"].as_str(), ep["host_interface"].as_str())
                {
                    out.push(Attached {
                        container: c["name"].as_str().unwrap_or("").into(),
                        id: c["id"].as_str().unwrap_or("").into(),
                        network: net.clone(),
                        ip: ip.into(),
                        veth: veth.into(),
                    });
                }
            }
        }
        out
    }

    /// Every difference between the host's devices and namespace files and what the daemon
    /// reports (its networks and containers), one line each.
    pub fn leaks(&self) -> Vec<String> {
        let (networks, containers) = self.listed();
        let devices = self.kernel_devices();
        let mut leaks = device_leaks(&networks, &containers, &devices);
        leaks.extend(self.netns_leaks(&containers));
        leaks
    }

    fn netns_leaks(&self, containers: &[Value]) -> Vec<String> {
        let dir = self.dir.join("run/netns");
        let wanted: BTreeSet<String> = containers
            .iter()
            .filter_map(|c| c["netns"].as_str())
            .map(std::path::Path::new)
            .filter(|p| p.parent() == Some(dir.as_path()))
            .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
            .collect();
        let found = self.netns_files();
        let mut leaks = vec![];
        let known: BTreeSet<&str> = containers
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        for e in std::fs::read_dir(self.dir.join("run/containers"))
            .into_iter()
            .flatten()
        {
            let name = e
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .unwrap_or_default();
            if !known.contains(name.as_str()) {
                leaks.push(format!("files of container {name}, which does not exist"));
            }
        }
        for f in found.difference(&wanted) {
            leaks.push(format!("namespace file {f} without a running container"));
        }
        for f in wanted.difference(&found) {
            leaks.push(format!("running container {f} has no namespace file"));
        }
        for f in found.intersection(&wanted) {
            let path = dir.join(f);
            let out = run("stat", &["-f", "-c", "%T", &path.display().to_string()]);
            if out.stdout.trim() != "nsfs" {
                leaks.push(format!(
                    "namespace file {f} is not a namespace ({})",
                    out.stdout.trim()
                ));
            }
        }
        leaks
    }
}

/// Devices netd owns (or that sit on its bridges) that no network or running endpoint explains,
/// and networks or endpoints whose devices are missing or wrong.
fn device_leaks(networks: &[Value], containers: &[Value], devices: &[Device]) -> Vec<String> {
    let mut leaks = vec![];
    let bridges: BTreeMap<String, String> = networks
        .iter()
        .filter_map(|n| {
            Some((
                n["bridge"].as_str()?.to_string(),
                n["id"].as_str()?.to_string(),
            ))
        })
        .collect();
    // Every device netd made for a network (its bridge, an 802.1q parent) and the network's ID.
    let made: BTreeMap<String, String> = networks
        .iter()
        .flat_map(|n| {
            let id = n["id"].as_str().unwrap_or("").to_string();
            n["devices"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |d| Some((d.as_str()?.to_string(), id.clone())))
        })
        .collect();
    let bridge_of: BTreeMap<String, String> = networks
        .iter()
        .filter_map(|n| {
            Some((
                n["name"].as_str()?.to_string(),
                n["bridge"].as_str()?.to_string(),
            ))
        })
        .collect();
    let attached = Host::attached(containers);
    let by_veth: BTreeMap<&str, &Attached> =
        attached.iter().map(|a| (a.veth.as_str(), a)).collect();
    for d in devices {
        let alias = d.alias.as_deref().unwrap_or("");
        let on_netd_bridge = d.master.as_ref().is_some_and(|m| bridges.contains_key(m));
        if let Some(id) = alias.strip_prefix("netd:network:") {
            if made.get(&d.name).map(String::as_str) != Some(id) {
                leaks.push(format!("device {} ({alias}) belongs to no network", d.name));
            }
        } else if let Some(id) = alias.strip_prefix("netd:container:") {
            match by_veth.get(d.name.as_str()) {
                None => leaks.push(format!(
                    "veth {} ({alias}) belongs to no running container",
                    d.name
                )),
                Some(a) if a.id != id => leaks.push(format!(
                    "veth {} is tagged for {id}, but is {}'s",
                    d.name, a.container
                )),
                Some(a) if d.master.as_ref() != bridge_of.get(&a.network) => leaks.push(format!(
                    "veth {} of {} is on {:?}, not the bridge of {}",
                    d.name, a.container, d.master, a.network
                )),
                Some(a) if !d.up => {
                    leaks.push(format!("veth {} of {} is down", d.name, a.container))
                }
                Some(_) => {}
            }
        } else if alias == "netd:cluster" && d.kind.as_deref() == Some("vxlan") {
            // The overlay tunnel of a daemon with a cluster store.
        } else if alias.starts_with("netd:") || on_netd_bridge {
            leaks.push(format!(
                "device {} ({alias:?}) is netd's but unexplained",
                d.name
            ));
        } else if matches!(d.kind.as_deref(), Some("veth" | "bridge"))
            && !TEST_DEVICES.contains(&d.name.as_str())
        {
            // The host namespace is the test's own: every other veth or bridge is netd's.
            leaks.push(format!(
                "{} {} (untagged) is explained by no network or container",
                d.kind.as_deref().unwrap_or(""),
                d.name
            ));
        }
    }
    for bridge in bridges.keys() {
        match devices.iter().find(|d| &d.name == bridge) {
            None => leaks.push(format!("bridge {bridge} of a network is missing")),
            Some(d) if !d.up => leaks.push(format!("bridge {bridge} is down")),
            Some(_) => {}
        }
    }
    for a in &attached {
        if !devices.iter().any(|d| d.name == a.veth) {
            leaks.push(format!(
                "veth {} of running container {} is missing",
                a.veth, a.container
            ));
        }
    }
    for c in containers.iter().filter(|c| c["status"] == "running") {
        for (net, ep) in c["networks"].as_object().into_iter().flatten() {
            if ep["ip_address"].is_null() {
                leaks.push(format!(
                    "running container {} is attached to {net} without an address",
                    c["name"]
                ));
            }
        }
    }
    leaks
}
