//! The daemon's socket protocol: one JSON request per connection, one JSON reply.
//!
//! Requests carry typed values (addresses, subnets), so a malformed value is refused by the
//! decoder before the daemon looks at it. Replies are views made for users: what `inspect`
//! prints is exactly what the daemon sent.
use std::{collections::BTreeMap, net::Ipv4Addr, path::PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    NetworkCreate(NetworkCreate),
    NetworkLs,
    NetworkInspect {
        names: Vec<String>,
    },
    NetworkRm {
        names: Vec<String>,
    },
    NetworkConnect {
        network: String,
        container: String,
        ip: Option<Ipv4Addr>,
        aliases: Vec<String>,
    },
    NetworkDisconnect {
        network: String,
        container: String,
    },
    ContainerCreate(ContainerCreate),
    ContainerStart {
        name: String,
    },
    ContainerStop {
        name: String,
    },
    ContainerRm {
        name: String,
        force: bool,
    },
    ContainerLs,
    ContainerInspect {
        name: String,
    },
    Stats {
        container: Option<String>,
    },
    Explain {
        from: String,
        to: std::net::SocketAddrV4,
        proto: crate::ports::Proto,
    },
    /// Stream events (one JSON [`EventView`] per line) until the client goes away.
    Monitor {
        container: Option<String>,
        port: Option<u16>,
        drops_only: bool,
    },
    ContainerPublish {
        name: String,
        spec: String,
    },
    ContainerUnpublish {
        name: String,
        spec: String,
    },
    ContainerPort {
        name: String,
    },
    Exec {
        name: String,
    },
    MapsDump {
        map: Option<String>,
    },
    /// Compare the saved state with the kernel.
    Check,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkCreate {
    pub name: String,
    pub driver: String,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Ipv4Net>,
    pub internal: bool,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerCreate {
    pub name: String,
    /// `bridge`, `host`, `none`, `container:NAME` or a network name.
    pub network: String,
    pub ip: Option<Ipv4Addr>,
    pub aliases: Vec<String>,
    pub publish: Vec<String>,
    pub publish_all: bool,
    pub expose: Vec<String>,
    pub links: Vec<String>,
    pub env: Vec<String>,
    pub hostname: Option<String>,
    pub netns: Option<PathBuf>,
}

/// The daemon's answer: a view, or a one-line error.
pub type Response = Result<Reply, String>;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Reply {
    Done,
    /// Name or ID of what was created.
    Created(String),
    Networks(Vec<NetworkView>),
    Containers(Vec<ContainerView>),
    Ports(Vec<String>),
    Exec(ExecInfo),
    Maps(Vec<MapView>),
    Stats(StatsView),
    Explain(ExplainView),
    Check(CheckView),
}

/// What `netd check` found: the size of the state and every difference from the kernel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckView {
    pub networks: usize,
    pub containers: usize,
    pub running: usize,
    pub endpoints: usize,
    pub ports: usize,
    pub differences: Vec<DifferenceView>,
}

/// One difference between the state and the kernel (or within the state).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DifferenceView {
    /// `netns`, `device`, `map NETD_*`, `neighbour`, `pin`, `ipam`, `port`, `uplink`.
    pub area: String,
    pub subject: String,
    pub problem: String,
}

/// What the attached programs do with one synthetic packet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExplainView {
    pub hops: Vec<Hop>,
    /// The container the packet reaches in the end, if any.
    pub delivered_to: Option<String>,
}

/// One program the packet went through.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hop {
    pub program: String,
    pub interface: String,
    /// `pass`, `drop` or `redirect`.
    pub verdict: String,
    pub reason: Option<String>,
    pub matched: Vec<String>,
    pub before: String,
    pub after: String,
}

/// Drops per port and reason, with totals.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatsView {
    pub rows: Vec<StatRow>,
    pub totals: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatRow {
    pub port: String,
    pub container: Option<String>,
    pub reason: String,
    pub packets: u64,
}

/// One datapath event, decoded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventView {
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// `drop` or `flow`.
    pub kind: String,
    pub port: String,
    pub container: Option<String>,
    /// `inbound`, `outbound`, `from-container` (flows) or `-`.
    pub direction: String,
    pub proto: String,
    pub before: String,
    pub after: Option<String>,
    pub verdict: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkView {
    pub name: String,
    pub id: String,
    pub driver: String,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Ipv4Net>,
    pub internal: bool,
    pub bridge: Option<String>,
    pub options: BTreeMap<String, String>,
    pub containers: BTreeMap<String, NetworkMember>,
    pub created: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkMember {
    pub id: String,
    pub ip_address: Option<Ipv4Net>,
    pub mac_address: Option<String>,
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerView {
    pub name: String,
    pub id: String,
    pub status: String,
    pub network_mode: String,
    pub hostname: String,
    pub netns: Option<PathBuf>,
    pub networks: BTreeMap<String, EndpointView>,
    pub ports: Vec<String>,
    pub expose: Vec<String>,
    pub env: Vec<String>,
    pub created: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EndpointView {
    pub ip_address: Option<Ipv4Addr>,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mac_address: Option<String>,
    pub interface: Option<String>,
    pub host_interface: Option<String>,
    pub aliases: Vec<String>,
}

/// What `netd exec` needs to enter a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecInfo {
    pub netns: PathBuf,
    pub hosts: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
    pub hostname: Option<String>,
    pub env: Vec<String>,
}

/// One BPF map, decoded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MapView {
    pub name: String,
    pub pin: PathBuf,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Formats a MAC address as users write it.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
