//! The messages of Docker's remote network driver API (libnetwork's `remote/api`), as dockerd
//! 20.10 sends them: JSON bodies of `POST /NetworkDriver.METHOD`, every answer carrying `Err`
//! (empty on success).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Options of networks and endpoints: free-form, keyed by libnetwork's labels.
pub type Options = BTreeMap<String, Value>;

/// libnetwork's labels that netd reads.
pub mod label {
    /// `-o KEY=VALUE` of `docker network create`, as a map.
    pub const GENERIC: &str = "com.docker.network.generic";
    pub const INTERNAL: &str = "com.docker.network.internal";
    pub const ENABLE_IPV6: &str = "com.docker.network.enable_ipv6";
    /// `-p`, as a list of [`super::PortBinding`].
    pub const PORT_MAP: &str = "com.docker.network.portmap";
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamData {
    #[serde(default)]
    pub address_space: String,
    /// `CIDR`.
    pub pool: String,
    /// `ADDRESS/PREFIX`.
    #[serde(default)]
    pub gateway: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreateNetwork {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "Options", default)]
    pub options: Options,
    #[serde(rename = "IPv4Data", default)]
    pub ipv4_data: Vec<IpamData>,
    #[serde(rename = "IPv6Data", default)]
    pub ipv6_data: Vec<IpamData>,
}

/// The request of `DeleteNetwork`.
#[derive(Debug, Clone, Deserialize)]
pub struct NetworkRef {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// The request of `DeleteEndpoint`, `EndpointOperInfo`, `Leave` and
/// `RevokeExternalConnectivity`.
#[derive(Debug, Clone, Deserialize)]
pub struct EndpointRef {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointInterface {
    /// `ADDRESS/PREFIX` from Docker's IPAM.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(
        default,
        rename = "AddressIPv6",
        skip_serializing_if = "String::is_empty"
    )]
    pub address_ipv6: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreateEndpoint {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "Interface", default)]
    pub interface: EndpointInterface,
    #[serde(rename = "Options", default)]
    pub options: Options,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateEndpointReply {
    /// Only what the driver chose (the MAC address when Docker gave none).
    pub interface: EndpointInterface,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Join {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The container's namespace (`EXEC_ROOT/netns/SANDBOX`).
    #[serde(rename = "SandboxKey")]
    pub sandbox_key: String,
    #[serde(rename = "Options", default)]
    pub options: Options,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InterfaceName {
    /// The device in the host's namespace that dockerd moves into the container.
    pub src_name: String,
    /// What dockerd names it inside, with an index: `eth` gives `eth0`, `eth1`, ...
    pub dst_prefix: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinReply {
    pub interface_name: InterfaceName,
    /// The default route's gateway; empty on an internal network.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// The IPv6 default route's gateway, on a dual-stack network that is not internal.
    #[serde(rename = "GatewayIPv6", skip_serializing_if = "String::is_empty")]
    pub gateway_ipv6: String,
    /// No `docker_gwbridge`: netd's network is the container's way out.
    pub disable_gateway_service: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExternalConnectivity {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "Options", default)]
    pub options: Options,
}

/// One `-p` as libnetwork's `types.PortBinding` (`Proto` 6 TCP, 17 UDP, 132 SCTP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    pub proto: u8,
    #[serde(rename = "IP", default)]
    pub ip: String,
    pub port: u16,
    #[serde(rename = "HostIP", default)]
    pub host_ip: String,
    #[serde(default)]
    pub host_port: u16,
    #[serde(default)]
    pub host_port_end: u16,
}

/// The answer of `EndpointOperInfo`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperInfo {
    pub value: Options,
}
