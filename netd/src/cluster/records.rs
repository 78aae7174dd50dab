//! What the daemons of a cluster share, and where each record lives in the store. Pure: the key
//! layout, the records' JSON, the VNI choice and the reading of a snapshot are unit-tested
//! without an etcd.
//!
//! Under [`PREFIX`]:
//! - `networks/<id>`: an overlay network ([`NetworkRecord`]);
//! - `names/<name>`, `vnis/<vni>`, `subnets/<cidr>`: claims (value: the network's ID) that keep
//!   names, VNIs and subnets unique, made in the transaction that creates the network;
//! - `endpoints/<network id>/<address>`: an address in use on a network and who has it
//!   ([`EndpointRecord`]), on the lease of the host that has it. Creating the key is the
//!   allocation: a transaction that fails if the key exists, so no address is handed out twice,
//!   even by two hosts at once.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Every key netd writes starts with this.
pub const PREFIX: &str = "/netd/v1/";

/// VNIs netd hands out: from 4096 (Docker's overlay starts there too, leaving low ones to the
/// operator) to the largest 24-bit one.
pub const VNI_MIN: u32 = 4096;
pub const VNI_MAX: u32 = (1 << 24) - 1;

pub fn network_key(id: &str) -> String {
    format!("{PREFIX}networks/{id}")
}

pub fn networks_prefix() -> String {
    format!("{PREFIX}networks/")
}

pub fn name_key(name: &str) -> String {
    format!("{PREFIX}names/{name}")
}

pub fn vni_key(vni: u32) -> String {
    format!("{PREFIX}vnis/{vni}")
}

pub fn vnis_prefix() -> String {
    format!("{PREFIX}vnis/")
}

pub fn subnet_key(subnet: IpNet) -> String {
    // `/` would read as a level of the layout.
    format!(
        "{PREFIX}subnets/{}_{}",
        subnet.network(),
        subnet.prefix_len()
    )
}

pub fn endpoints_prefix(network_id: &str) -> String {
    format!("{PREFIX}endpoints/{network_id}/")
}

pub fn endpoint_key(network_id: &str, ip: IpAddr) -> String {
    format!("{}{ip}", endpoints_prefix(network_id))
}

/// An overlay network, as every host of the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub subnet: IpNet,
    pub gateway: IpAddr,
    pub ip_range: Option<IpNet>,
    pub internal: bool,
    pub vni: u32,
    pub options: BTreeMap<String, String>,
    pub user_subnet: bool,
    pub created: u64,
}

/// An address in use on an overlay network: the container that has it and the host it is on
/// (that host's underlay address, where its frames are sent). `ready` once that host has wired
/// the endpoint: until then the address is only claimed, and the other hosts neither send to it
/// nor answer its name (a frame sent earlier would find no endpoint there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub host: IpAddr,
    pub container_id: String,
    pub container: String,
    pub aliases: Vec<String>,
    pub mac: [u8; 6],
    pub ready: bool,
}

/// What a key of the store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Network(String),
    Endpoint {
        network: String,
        ip: IpAddr,
    },
    /// A claim, or a key netd does not read.
    Other,
}

pub fn parse_key(key: &str) -> Key {
    let Some(rest) = key.strip_prefix(PREFIX) else {
        return Key::Other;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["networks", id] if !id.is_empty() => Key::Network(id.to_string()),
        ["endpoints", network, ip] if !network.is_empty() => match ip.parse() {
            Ok(ip) => Key::Endpoint {
                network: network.to_string(),
                ip,
            },
            Err(_) => Key::Other,
        },
        _ => Key::Other,
    }
}

/// The lowest VNI at or after `from` that is not taken (wrapping to [`VNI_MIN`]), if any.
pub fn free_vni(taken: &BTreeSet<u32>, from: u32) -> Option<u32> {
    let from = from.clamp(VNI_MIN, VNI_MAX);
    (from..=VNI_MAX)
        .chain(VNI_MIN..from)
        .find(|v| !taken.contains(v))
}

/// The cluster as the store has it at one revision (also as the daemon keeps it in its state
/// dir, for a restart while the store is away).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub networks: BTreeMap<String, NetworkRecord>,
    /// network ID -> address -> endpoint.
    pub endpoints: BTreeMap<String, BTreeMap<IpAddr, EndpointRecord>>,
    pub revision: i64,
}

/// A record that does not read: the key and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    pub key: String,
    pub reason: String,
}

impl Snapshot {
    /// Applies a put of `value` at `key`.
    pub fn put(&mut self, key: &str, value: &[u8]) -> Result<(), BadRecord> {
        let bad = |e: serde_json::Error| BadRecord {
            key: key.into(),
            reason: e.to_string(),
        };
        match parse_key(key) {
            Key::Network(id) => {
                let record: NetworkRecord = serde_json::from_slice(value).map_err(bad)?;
                self.networks.insert(id, record);
            }
            Key::Endpoint { network, ip } => {
                let record: EndpointRecord = serde_json::from_slice(value).map_err(bad)?;
                self.endpoints
                    .entry(network)
                    .or_default()
                    .insert(ip, record);
            }
            Key::Other => {}
        }
        Ok(())
    }

    /// Applies a delete of `key`.
    pub fn delete(&mut self, key: &str) {
        match parse_key(key) {
            Key::Network(id) => {
                self.networks.remove(&id);
            }
            Key::Endpoint { network, ip } => {
                if let Some(eps) = self.endpoints.get_mut(&network) {
                    eps.remove(&ip);
                    if eps.is_empty() {
                        self.endpoints.remove(&network);
                    }
                }
            }
            Key::Other => {}
        }
    }

    /// The endpoints of network `id`.
    pub fn endpoints_of(&self, id: &str) -> impl Iterator<Item = (&IpAddr, &EndpointRecord)> {
        self.endpoints.get(id).into_iter().flatten()
    }
}

/// The store's addresses from `--cluster-store etcd://HOST:PORT[,HOST:PORT...]`, as the client
/// dials them; a one-line reason for anything else.
pub fn parse_store(url: &str) -> Result<Vec<String>, String> {
    let Some(list) = url.strip_prefix("etcd://") else {
        return Err(
            "expected etcd://HOST:PORT[,HOST:PORT...] (etcd is the store netd supports)".into(),
        );
    };
    list.split(',')
        .map(|member| {
            let (host, port) = member
                .rsplit_once(':')
                .ok_or_else(|| format!("{member:?} has no :PORT"))?;
            if host.is_empty() || host.contains('/') {
                return Err(format!("{member:?} is not HOST:PORT"));
            }
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{member:?} has no valid port"))?;
            Ok(format!("http://{member}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_what_they_hold_and_read_back() {
        assert_eq!(network_key("ab"), "/netd/v1/networks/ab");
        assert_eq!(
            endpoint_key("ab", "10.0.0.2".parse().unwrap()),
            "/netd/v1/endpoints/ab/10.0.0.2"
        );
        assert_eq!(
            subnet_key("10.0.0.0/24".parse().unwrap()),
            "/netd/v1/subnets/10.0.0.0_24"
        );
        assert_eq!(parse_key(&network_key("ab")), Key::Network("ab".into()));
        assert_eq!(
            parse_key(&endpoint_key("ab", "fd00::2".parse().unwrap())),
            Key::Endpoint {
                network: "ab".into(),
                ip: "fd00::2".parse().unwrap()
            }
        );
        for other in [
            name_key("web"),
            vni_key(4096),
            "/netd/v1/endpoints/ab/x".into(),
            "/other/networks/ab".into(),
        ] {
            assert_eq!(parse_key(&other), Key::Other, "{other}");
        }
    }

    #[test]
    fn the_next_free_vni_skips_taken_ones_and_wraps() {
        let taken: BTreeSet<u32> = [4096, 4097].into();
        assert_eq!(free_vni(&taken, 0), Some(4098));
        assert_eq!(free_vni(&taken, VNI_MAX), Some(VNI_MAX));
        let top: BTreeSet<u32> = [VNI_MAX].into();
        assert_eq!(free_vni(&top, VNI_MAX), Some(VNI_MIN));
    }

    #[test]
    fn a_snapshot_follows_puts_and_deletes_and_names_bad_records() {
        let mut snap = Snapshot::default();
        let ep = EndpointRecord {
            host: "10.98.0.2".parse().unwrap(),
            container_id: "c".repeat(64),
            container: "web".into(),
            aliases: vec!["www".into()],
            mac: [2, 0x42, 10, 0, 0, 2],
            ready: true,
        };
        let key = endpoint_key("n1", "10.0.0.2".parse().unwrap());
        snap.put(&key, &serde_json::to_vec(&ep).unwrap()).unwrap();
        assert_eq!(snap.endpoints_of("n1").count(), 1);
        snap.delete(&key);
        assert_eq!(snap.endpoints_of("n1").count(), 0);
        assert!(snap.endpoints.is_empty());
        let err = snap.put(&network_key("n1"), b"{").unwrap_err();
        assert_eq!(err.key, "/netd/v1/networks/n1");
        snap.put(&name_key("x"), b"anything").unwrap();
        assert_eq!(snap, Snapshot::default());
    }

    #[test]
    fn a_store_url_is_etcd_with_host_and_port_members() {
        assert_eq!(
            parse_store("etcd://10.98.0.100:2379,etcd1:2379").unwrap(),
            ["http://10.98.0.100:2379", "http://etcd1:2379"]
        );
        for bad in [
            "consul://h:1",
            "etcd://h",
            "etcd://:1",
            "etcd://h:0",
            "etcd://h:x",
            "etcd://",
        ] {
            let err = parse_store(bad).unwrap_err();
            assert!(!err.contains('\n') && !err.is_empty(), "{bad}: {err}");
        }
    }
}
