//! What a runtime hands the plugin (CNI spec 1.0 and 1.1): the network configuration on stdin and the
//! `CNI_*` environment, read and checked here as pure functions, and the errors the plugin
//! answers with (the spec's error object and codes).
use std::{collections::BTreeMap, net::IpAddr, path::PathBuf};

use serde::{Deserialize, Serialize};

/// The spec versions this plugin speaks; the first is the one of its own error objects and
/// VERSION answer (what runtimes that speak only 1.0, as podman 4.3, read).
pub const SUPPORTED_VERSIONS: [&str; 2] = ["1.0.0", "1.1.0"];
/// The daemon's socket when the configuration names none.
pub const DEFAULT_SOCKET: &str = "/run/netd/netd.sock";

/// Error codes of the spec (well-known ones, 1-99), and netd's own (100 and up).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const INVALID_ENV: u32 = 4;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin cannot serve ADD now.
    pub const NOT_AVAILABLE: u32 = 50;
    /// The daemon refused the request (its one-line error is the message).
    pub const DAEMON: u32 = 100;
}

/// The error object a plugin prints on stdout when it fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CniError {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self {
            cni_version: SUPPORTED_VERSIONS[0].into(),
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }
}

/// One port the runtime asks to publish (`runtimeConfig.portMappings`, capability
/// `portMappings`), as the portmap plugin reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default = "tcp")]
    pub protocol: String,
    #[serde(default, rename = "hostIP")]
    pub host_ip: Option<String>,
}

fn tcp() -> String {
    "tcp".into()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
}

/// The network configuration: `{"cniVersion", "name", "type": "netd", "network", "socket",
/// "capabilities": {"portMappings": true}}`, with what the runtime adds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The netd network to attach to (the CNI network's name if absent).
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub socket: Option<PathBuf>,
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    #[serde(default)]
    pub capabilities: BTreeMap<String, bool>,
    /// GC (1.1): the attachments the runtime still has; every other one of this network goes.
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Vec<ValidAttachment>,
}

/// One attachment GC keeps.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ValidAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

impl NetConf {
    /// The configuration on stdin, checked: a version this plugin speaks, its own type.
    pub fn parse(stdin: &[u8]) -> Result<Self, CniError> {
        let conf: NetConf = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                code::DECODE,
                format!("cannot read the network configuration: {e}"),
            )
        })?;
        if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "CNI version {} is not supported (netd speaks {})",
                    conf.cni_version,
                    SUPPORTED_VERSIONS.join(", ")
                ),
            ));
        }
        if conf.kind != "netd" {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!("the configuration is for plugin {:?}, not netd", conf.kind),
            ));
        }
        Ok(conf)
    }

    /// The netd network this configuration attaches to.
    pub fn network(&self) -> &str {
        self.network.as_deref().unwrap_or(&self.name)
    }

    pub fn socket(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
    }

    /// `runtimeConfig.portMappings` as `-p` specs (`[HOST_IP:]HOST_PORT:CONTAINER_PORT/PROTO`).
    pub fn publish_specs(&self) -> Result<Vec<String>, CniError> {
        self.runtime_config
            .port_mappings
            .iter()
            .map(publish_spec)
            .collect()
    }
}

fn publish_spec(m: &PortMapping) -> Result<String, CniError> {
    let proto = m.protocol.to_ascii_lowercase();
    if proto != "tcp" && proto != "udp" {
        return Err(CniError::new(
            code::UNSUPPORTED_FIELD,
            format!(
                "port mapping protocol {:?}: netd publishes tcp and udp",
                m.protocol
            ),
        ));
    }
    let host = match m.host_ip.as_deref().filter(|h| !h.is_empty()) {
        None => String::new(),
        Some(ip) => match ip.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => format!("{v4}:"),
            _ => {
                return Err(CniError::new(
                    code::UNSUPPORTED_FIELD,
                    format!("port mapping host IP {ip:?}: netd publishes on IPv4 addresses"),
                ))
            }
        },
    };
    Ok(format!(
        "{host}{}:{}/{proto}",
        m.host_port, m.container_port
    ))
}

/// The operation and the `CNI_*` environment it comes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
    /// `CNI_ARGS`, `KEY=VALUE;...`.
    pub args: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    /// 1.1: whether ADD can be served.
    Status,
    /// 1.1: everything on the network but the valid attachments removed.
    Gc,
}

impl Invocation {
    /// Reads the invocation from `get` (the process environment in the plugin). VERSION, STATUS
    /// and GC need nothing else; ADD and CHECK need a namespace; all but VERSION need a container ID and an
    /// interface name.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, CniError> {
        let missing = |var: &str| CniError::new(code::INVALID_ENV, format!("{var} is not set"));
        let command = match get("CNI_COMMAND").as_deref() {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("VERSION") => Command::Version,
            Some("STATUS") => Command::Status,
            Some("GC") => Command::Gc,
            Some(other) => {
                return Err(CniError::new(
                    code::INVALID_ENV,
                    format!(
                        "CNI_COMMAND {other:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC"
                    ),
                ))
            }
            None => return Err(missing("CNI_COMMAND")),
        };
        let mut inv = Invocation {
            command,
            container_id: String::new(),
            netns: get("CNI_NETNS")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            ifname: String::new(),
            args: parse_args(&get("CNI_ARGS").unwrap_or_default())?,
        };
        if matches!(command, Command::Version | Command::Status | Command::Gc) {
            return Ok(inv);
        }
        inv.container_id = get("CNI_CONTAINERID")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("CNI_CONTAINERID"))?;
        inv.ifname = get("CNI_IFNAME")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("CNI_IFNAME"))?;
        if matches!(command, Command::Add | Command::Check) && inv.netns.is_none() {
            return Err(missing("CNI_NETNS"));
        }
        Ok(inv)
    }

    /// The name the container gets in netd (and in its DNS): the runtime's name for it
    /// (`K8S_POD_NAME`, which podman sets to the container's name), else `cni-` and the start
    /// of its ID.
    pub fn container_name(&self) -> String {
        match self.args.get("K8S_POD_NAME").filter(|n| valid_name(n)) {
            Some(name) => name.clone(),
            None => format!(
                "cni-{}",
                &self.container_id[..12.min(self.container_id.len())]
            ),
        }
    }
}

/// A name netd accepts for a container, as Docker's: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`.
fn parse_args(raw: &str) -> Result<BTreeMap<String, String>, CniError> {
    raw.split(';')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    CniError::new(
                        code::INVALID_ENV,
                        format!("CNI_ARGS: {pair:?} is not KEY=VALUE"),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    const CONF: &str = r#"{"cniVersion":"1.0.0","name":"web","type":"netd","network":"front",
        "capabilities":{"portMappings":true},
        "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},
            {"hostPort":5353,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"}]}}"#;

    #[test]
    fn a_configuration_names_its_network_and_port_mappings_become_publish_specs() {
        let conf = NetConf::parse(CONF.as_bytes()).unwrap();
        assert_eq!(conf.network(), "front");
        assert_eq!(conf.socket(), PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(
            conf.publish_specs().unwrap(),
            ["8080:80/tcp", "127.0.0.1:5353:53/udp"]
        );
    }

    #[test]
    fn status_and_gc_need_no_container_and_gc_reads_the_valid_attachments() {
        for command in ["STATUS", "GC"] {
            let inv = Invocation::from_env(env(&[("CNI_COMMAND", command)])).unwrap();
            assert!(matches!(inv.command, Command::Status | Command::Gc));
        }
        let gc = r#"{"cniVersion":"1.1.0","name":"web","type":"netd",
            "cni.dev/valid-attachments":[{"containerID":"abc","ifname":"eth0"}]}"#;
        let conf = NetConf::parse(gc.as_bytes()).unwrap();
        assert_eq!(
            conf.valid_attachments,
            [ValidAttachment {
                container_id: "abc".into(),
                ifname: "eth0".into()
            }]
        );
    }

    #[test]
    fn bad_configurations_get_the_specs_error_codes() {
        let err = |s: &str| NetConf::parse(s.as_bytes()).unwrap_err().code;
        assert_eq!(err("{"), code::DECODE);
        assert_eq!(
            err(r#"{"cniVersion":"0.3.1","name":"n","type":"netd"}"#),
            code::INCOMPATIBLE_VERSION
        );
        assert_eq!(
            err(r#"{"cniVersion":"1.0.0","name":"n","type":"bridge"}"#),
            code::INVALID_CONFIG
        );
        let sctp = CONF.replace("\"udp\"", "\"sctp\"");
        let conf = NetConf::parse(sctp.as_bytes()).unwrap();
        assert_eq!(
            conf.publish_specs().unwrap_err().code,
            code::UNSUPPORTED_FIELD
        );
    }

    #[test]
    fn the_environment_is_read_and_checked_per_command() {
        let add = Invocation::from_env(env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "0123456789abcdef"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_NAME=web",
            ),
        ]))
        .unwrap();
        assert_eq!(add.command, Command::Add);
        assert_eq!(add.container_name(), "web");
        let del = Invocation::from_env(env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "0123456789abcdef"),
            ("CNI_IFNAME", "eth0"),
        ]))
        .unwrap();
        assert_eq!(del.netns, None, "DEL may come after the namespace is gone");
        assert_eq!(del.container_name(), "cni-0123456789ab");
        let version = Invocation::from_env(env(&[("CNI_COMMAND", "VERSION")])).unwrap();
        assert_eq!(version.command, Command::Version);
        let no_netns = Invocation::from_env(env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c"),
            ("CNI_IFNAME", "eth0"),
        ]));
        assert_eq!(no_netns.unwrap_err().code, code::INVALID_ENV);
        let bogus = Invocation::from_env(env(&[("CNI_COMMAND", "FROB")]));
        assert_eq!(bogus.unwrap_err().code, code::INVALID_ENV);
    }

    #[test]
    fn a_runtime_name_netd_would_refuse_falls_back_to_the_id() {
        let inv = Invocation::from_env(env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "K8S_POD_NAME=-bad name"),
        ]))
        .unwrap();
        assert_eq!(inv.container_name(), "cni-abc");
    }
}
