//! The daemon's socket protocol: one JSON request per connection, one JSON reply.
//!
//! Requests carry typed values (addresses, subnets), so a malformed value is refused by the
//! decoder before the daemon looks at it. Replies are views made for users: what `inspect`
//! prints is exactly what the daemon sent.
use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

// One request per connection, decoded once: a box for the large create requests would buy
// nothing.
#[allow(clippy::large_enum_variant)]
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
        /// `--ip6`, on a dual-stack network.
        #[serde(default)]
        ip6: Option<Ipv6Addr>,
        aliases: Vec<String>,
        /// The interface name inside the container; the lowest free `ethN` if none.
        #[serde(default)]
        ifname: Option<String>,
        /// The runtime moves the device in itself: the name it waits under on the host.
        #[serde(default)]
        handover: Option<String>,
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
    /// Publish `spec` (empty: none) and give host ports the allowlists of `allow`
    /// (`PORT[-END][/PROTO]=CIDR,...`).
    ContainerPublish {
        name: String,
        spec: String,
        #[serde(default)]
        allow: Vec<String>,
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
    /// The published-port policy in force, host-wide and per port.
    PolicyShow,
    /// Read the policy file again and put what it says in force.
    PolicyReload,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkCreate {
    pub name: String,
    pub driver: String,
    /// The IPv4 `--subnet`, `--gateway` and `--ip-range`.
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Ipv4Net>,
    /// `--ipv6`: a dual-stack network (it needs [`Self::subnet6`]).
    #[serde(default)]
    pub ipv6: bool,
    /// The IPv6 `--subnet`, `--gateway` and `--ip-range`.
    #[serde(default)]
    pub subnet6: Option<Ipv6Net>,
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    #[serde(default)]
    pub ip_range6: Option<Ipv6Net>,
    pub internal: bool,
    pub options: Vec<String>,
    /// The ID, when another engine already gave the network one (Docker's plugin API).
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerCreate {
    pub name: String,
    /// `bridge`, `host`, `none`, `container:NAME` or a network name.
    pub network: String,
    pub ip: Option<Ipv4Addr>,
    /// `--ip6`, on a dual-stack network.
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    pub aliases: Vec<String>,
    pub publish: Vec<String>,
    /// `--publish-allow PORT[-END][/PROTO]=CIDR,...`.
    #[serde(default)]
    pub publish_allow: Vec<String>,
    pub publish_all: bool,
    pub expose: Vec<String>,
    pub links: Vec<String>,
    pub env: Vec<String>,
    pub hostname: Option<String>,
    pub netns: Option<PathBuf>,
    /// The runtime that manages the container and its namespace (`cni`): netd removes such a
    /// container itself when it finds its namespace gone.
    #[serde(default)]
    pub runtime: Option<String>,
    /// The runtime's own ID for the container (`CNI_CONTAINERID`).
    #[serde(default)]
    pub runtime_id: Option<String>,
    /// The interface name on `network` inside the container (a CNI runtime's `CNI_IFNAME`).
    #[serde(default)]
    pub ifname: Option<String>,
    /// The runtime moves the device in and configures it (Docker): the name the veth's peer
    /// waits under in the host's namespace.
    #[serde(default)]
    pub handover: Option<String>,
}

/// The daemon's answer: a view, or a one-line error.
pub type Response = Result<Reply, String>;

/// How the error for a container that does not exist begins (Docker's words, which scripts
/// match): `No such container: NAME`.
pub const NO_SUCH_CONTAINER: &str = "No such container";

/// Whether a daemon's error says that the container does not exist.
pub fn is_no_such_container(error: &str) -> bool {
    error.starts_with(NO_SUCH_CONTAINER)
}

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
    Policy(PolicyView),
}

/// The published-port policy in force (`netd policy show`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyView {
    /// The policy file the host-wide policy is read from (`--publish-policy`), if any.
    pub file: Option<String>,
    /// The host-wide policy first, then each published port with an allowlist of its own.
    pub rows: Vec<PolicyRow>,
    /// Prefixes in the datapath's trie (`NETD_PUBLISH_POLICY`), defaults included.
    pub prefixes: usize,
}

/// One policy: whose it is, its prefixes, and what a client none of them holds gets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyRow {
    /// `host-wide`, or a port as `container port` prints its host side (`0.0.0.0:8080/tcp`).
    pub port: String,
    pub container: Option<String>,
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    /// `allow` or `deny`.
    pub otherwise: String,
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
    /// `local` (one host's) or `global` (a cluster's), as Docker's.
    pub scope: String,
    /// The host devices netd made for the network (its bridge, an 802.1q parent), each tagged
    /// `netd:network:ID`.
    #[serde(default)]
    pub devices: Vec<String>,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Ipv4Net>,
    /// A dual-stack network (Docker's `EnableIPv6`), with its IPv6 subnet, gateway and range.
    #[serde(default)]
    pub enable_ipv6: bool,
    #[serde(default)]
    pub ipv6_subnet: Option<Ipv6Net>,
    #[serde(default)]
    pub ipv6_gateway: Option<Ipv6Addr>,
    #[serde(default)]
    pub ipv6_ip_range: Option<Ipv6Net>,
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
    /// Its IPv6 address with the subnet's prefix, on a dual-stack network.
    #[serde(default)]
    pub ipv6_address: Option<Ipv6Net>,
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
    /// The runtime that manages it, for a container a runtime made (`cni`).
    #[serde(default)]
    pub runtime: Option<String>,
    /// The runtime's own ID for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
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
    /// On a dual-stack network (Docker's `GlobalIPv6Address`, `GlobalIPv6PrefixLen`,
    /// `IPv6Gateway`): the endpoint's IPv6 address, the subnet's prefix length, and the
    /// gateway of its IPv6 default route if it carries one.
    #[serde(default)]
    pub global_ipv6_address: Option<Ipv6Addr>,
    #[serde(default)]
    pub global_ipv6_prefix_len: u8,
    #[serde(default)]
    pub ipv6_gateway: Option<Ipv6Addr>,
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

/// Largest request the daemon reads; a longer one is refused whole.
pub const MAX_REQUEST: usize = 1 << 20;

/// Decodes one request as the daemon received it (everything the client sent before closing
/// its side), or says in one line why it cannot.
pub fn decode_request(bytes: &[u8]) -> Result<Request, String> {
    if bytes.len() > MAX_REQUEST {
        return Err(format!(
            "request too large: more than {MAX_REQUEST} bytes (1 MiB)"
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| format!("malformed request: {}", one_line(&e)))
}

/// `text` with control characters (newlines among them) escaped, so that an error quoting
/// what a client sent stays on one line.
pub fn one_line(text: &impl std::fmt::Display) -> String {
    text.to_string()
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = match c.is_control() {
                true => c.escape_default().collect(),
                false => vec![c],
            };
            escaped
        })
        .collect()
}

/// Property tests of the decoder: arbitrary bytes and arbitrary JSON never panic and are refused
/// in one line, oversized input is refused whatever it holds, and every request a client can
/// send decodes to itself. `PROPTEST_CASES` sets the number of cases.
#[cfg(test)]
mod props {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// The `op` names of [`Request`], as a client writes them.
    const OPS: [&str; 25] = [
        "network_create",
        "network_ls",
        "network_inspect",
        "network_rm",
        "network_connect",
        "network_disconnect",
        "container_create",
        "container_start",
        "container_stop",
        "container_rm",
        "container_ls",
        "container_inspect",
        "stats",
        "explain",
        "monitor",
        "container_publish",
        "container_unpublish",
        "container_port",
        "exec",
        "maps_dump",
        "check",
        "policy_show",
        "policy_reload",
        "run",
        "nonsense",
    ];

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z0-9_.:/-]{0,12}", any::<String>()]
    }

    fn net() -> impl Strategy<Value = Ipv4Net> {
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, p)| Ipv4Net::new(a.into(), p).unwrap())
    }

    fn addr() -> impl Strategy<Value = Ipv4Addr> {
        any::<[u8; 4]>().prop_map(Ipv4Addr::from)
    }

    fn net6() -> impl Strategy<Value = Ipv6Net> {
        (any::<u128>(), 0u8..=128).prop_map(|(a, p)| Ipv6Net::new(a.into(), p).unwrap())
    }

    fn addr6() -> impl Strategy<Value = Ipv6Addr> {
        any::<u128>().prop_map(Ipv6Addr::from)
    }

    fn texts() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(text(), 0..3)
    }

    /// Every request a client can send (the data-carrying ones with arbitrary contents).
    fn request() -> impl Strategy<Value = Request> {
        let v6 = (
            any::<bool>(),
            proptest::option::of(net6()),
            proptest::option::of(addr6()),
            proptest::option::of(net6()),
        );
        let network_create = (
            text(),
            text(),
            proptest::option::of(net()),
            proptest::option::of(addr()),
            proptest::option::of(net()),
            any::<bool>(),
            texts(),
            v6,
        )
            .prop_map(
                |(
                    name,
                    driver,
                    subnet,
                    gateway,
                    ip_range,
                    internal,
                    options,
                    (ipv6, subnet6, gateway6, ip_range6),
                )| {
                    Request::NetworkCreate(NetworkCreate {
                        name,
                        driver,
                        subnet,
                        gateway,
                        ip_range,
                        ipv6,
                        subnet6,
                        gateway6,
                        ip_range6,
                        internal,
                        options,
                        id: None,
                    })
                },
            );
        let container_create = (
            (text(), text(), proptest::option::of(addr()), texts()),
            (texts(), any::<bool>(), texts(), texts(), texts()),
            (
                proptest::option::of(text()),
                proptest::option::of(text()),
                proptest::option::of(addr6()),
            ),
        )
            .prop_map(
                |(
                    (name, network, ip, aliases),
                    (publish, publish_all, expose, links, env),
                    (hostname, netns, ip6),
                )| {
                    Request::ContainerCreate(ContainerCreate {
                        name,
                        network,
                        ip,
                        ip6,
                        aliases,
                        publish,
                        publish_allow: vec![],
                        publish_all,
                        expose,
                        links,
                        env,
                        hostname,
                        netns: netns.map(PathBuf::from),
                        runtime_id: None,
                        ifname: None,
                        handover: None,
                        runtime: None,
                    })
                },
            );
        let proto = prop_oneof![
            Just(crate::ports::Proto::Tcp),
            Just(crate::ports::Proto::Udp)
        ];
        prop_oneof![
            network_create,
            container_create,
            Just(Request::NetworkLs),
            Just(Request::ContainerLs),
            texts().prop_map(|names| Request::NetworkInspect { names }),
            texts().prop_map(|names| Request::NetworkRm { names }),
            (
                text(),
                text(),
                proptest::option::of(addr()),
                proptest::option::of(addr6()),
                texts()
            )
                .prop_map(|(network, container, ip, ip6, aliases)| {
                    Request::NetworkConnect {
                        network,
                        container,
                        ip,
                        ip6,
                        aliases,
                        ifname: None,
                        handover: None,
                    }
                }),
            (text(), text())
                .prop_map(|(network, container)| Request::NetworkDisconnect { network, container }),
            text().prop_map(|name| Request::ContainerStart { name }),
            text().prop_map(|name| Request::ContainerStop { name }),
            (text(), any::<bool>()).prop_map(|(name, force)| Request::ContainerRm { name, force }),
            text().prop_map(|name| Request::ContainerInspect { name }),
            proptest::option::of(text()).prop_map(|container| Request::Stats { container }),
            (text(), addr(), any::<u16>(), proto).prop_map(|(from, ip, port, proto)| {
                Request::Explain {
                    from,
                    to: std::net::SocketAddrV4::new(ip, port),
                    proto,
                }
            }),
            (
                proptest::option::of(text()),
                proptest::option::of(any::<u16>()),
                any::<bool>()
            )
                .prop_map(|(container, port, drops_only)| Request::Monitor {
                    container,
                    port,
                    drops_only
                }),
            (text(), text(), texts()).prop_map(|(name, spec, allow)| Request::ContainerPublish {
                name,
                spec,
                allow
            }),
            (text(), text()).prop_map(|(name, spec)| Request::ContainerUnpublish { name, spec }),
            text().prop_map(|name| Request::ContainerPort { name }),
            text().prop_map(|name| Request::Exec { name }),
            proptest::option::of(text()).prop_map(|map| Request::MapsDump { map }),
            Just(Request::PolicyShow),
            Just(Request::PolicyReload),
        ]
    }

    /// JSON of any shape, with objects that often look like requests.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text().prop_map(Value::String),
            "[0-9.]{1,18}(/[0-9]{1,3})?".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            let key = prop_oneof![
                Just("op".to_string()),
                Just("name".to_string()),
                Just("subnet".to_string()),
                Just("ip".to_string()),
                Just("to".to_string()),
                Just("names".to_string()),
                "[a-z_]{1,10}",
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                (
                    proptest::sample::select(&OPS[..]),
                    proptest::collection::btree_map(key, inner, 0..5)
                )
                    .prop_map(|(op, fields)| {
                        let mut object: serde_json::Map<String, Value> =
                            fields.into_iter().collect();
                        object.entry("op").or_insert_with(|| op.into());
                        Value::Object(object)
                    }),
            ]
        })
    }

    fn check_refusal(e: &str) -> Result<(), TestCaseError> {
        prop_assert!(!e.contains('\n') && !e.contains('\r'), "{e:?}");
        prop_assert!(
            e.starts_with("malformed request: ") || e.starts_with("request too large"),
            "{e}"
        );
        Ok(())
    }

    /// A decoded request is the request encoded: the same JSON again.
    fn check_round_trip(bytes: &[u8], request: &Request) -> Result<(), TestCaseError> {
        let again = serde_json::to_vec(request).unwrap();
        let decoded = decode_request(&again).map_err(TestCaseError::fail)?;
        prop_assert_eq!(
            serde_json::to_value(&decoded).unwrap(),
            serde_json::to_value(request).unwrap(),
            "{}",
            String::from_utf8_lossy(bytes)
        );
        Ok(())
    }

    proptest! {
        #[test]
        fn every_request_a_client_sends_decodes_to_itself(request in request()) {
            let bytes = serde_json::to_vec(&request).unwrap();
            let decoded = decode_request(&bytes).map_err(TestCaseError::fail)?;
            prop_assert_eq!(
                serde_json::to_value(&decoded).unwrap(),
                serde_json::to_value(&request).unwrap()
            );
        }

        #[test]
        fn arbitrary_bytes_decode_or_are_refused_in_one_line(
            bytes in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..256),
                // A request cut short, or with a byte changed.
                (request(), any::<usize>(), any::<u8>(), any::<bool>()).prop_map(|(r, at, b, cut)| {
                    let mut bytes = serde_json::to_vec(&r).unwrap();
                    let at = at % bytes.len();
                    match cut { true => bytes.truncate(at), false => bytes[at] = b }
                    bytes
                }),
            ]
        ) {
            match decode_request(&bytes) {
                Ok(request) => check_round_trip(&bytes, &request)?,
                Err(e) => check_refusal(&e)?,
            }
        }

        #[test]
        fn arbitrary_json_decodes_or_is_refused_in_one_line(value in json()) {
            let bytes = serde_json::to_vec(&value).unwrap();
            match decode_request(&bytes) {
                Ok(request) => check_round_trip(&bytes, &request)?,
                Err(e) => check_refusal(&e)?,
            }
        }

        #[test]
        fn oversized_input_is_refused_whatever_it_holds(request in request(), extra in 1usize..4096) {
            // A valid request, padded past the limit: refused before it is parsed.
            let mut bytes = serde_json::to_vec(&request).unwrap();
            bytes.resize(MAX_REQUEST + extra, b' ');
            let e = decode_request(&bytes).unwrap_err();
            prop_assert!(e.starts_with("request too large"), "{}", e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_of_exactly_the_limit_is_read() {
        let mut bytes = serde_json::to_vec(&Request::ContainerLs).unwrap();
        bytes.resize(MAX_REQUEST, b' ');
        assert!(decode_request(&bytes).is_ok());
        bytes.push(b' ');
        assert!(decode_request(&bytes)
            .unwrap_err()
            .starts_with("request too large"));
    }

    #[test]
    fn a_control_character_in_a_refused_request_stays_escaped() {
        let e = decode_request(b"{\"op\":\"a\\nb\"}").unwrap_err();
        assert!(
            e.starts_with("malformed request: unknown variant `a\\nb`"),
            "{e}"
        );
    }
}
