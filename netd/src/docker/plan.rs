//! What Docker's requests mean in netd's terms, as pure functions: a network to create from
//! `CreateNetwork`, `-p` specs from a port map, the names netd gives a sandbox's container and
//! the device it hands over, and the port map `docker port` reads back.
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde_json::Value;

use super::{
    wire::{label, CreateNetwork, Options, PortBinding},
    PluginError,
};
use crate::{
    api::NetworkCreate,
    ports::{PortMapping, Proto},
};

/// The netd network of Docker network `id` at first: named by the ID's first 12 digits, as
/// `docker network ls` shows it, with Docker's ID as its own. (Docker does not tell its driver
/// the name; dockerd's `create` event does, and netd renames the network then.)
pub fn network_name(id: &str) -> String {
    id.chars().take(12).collect()
}

/// The names a Docker container is known by on one network: its name, then its aliases
/// (Docker's list holds its short ID too), each once.
pub fn docker_names(name: &str, aliases: &[String]) -> Vec<String> {
    let mut names = vec![name.to_string()];
    for alias in aliases {
        if !names.contains(alias) {
            names.push(alias.clone());
        }
    }
    names
}

/// The netd container of the Docker sandbox whose namespace is at `key`
/// (`EXEC_ROOT/netns/SANDBOX`): `docker-SANDBOX`.
pub fn sandbox_name(key: &str) -> Result<String, PluginError> {
    let sandbox = key.rsplit('/').next().unwrap_or_default();
    let valid = !sandbox.is_empty() && sandbox.chars().all(|c| c.is_ascii_alphanumeric());
    if !valid {
        return Err(PluginError::Invalid(format!("invalid sandbox key {key:?}")));
    }
    Ok(format!("docker-{sandbox}"))
}

/// The name the veth's container end waits under on the host until dockerd moves it in:
/// `ndk` and the endpoint ID's first 12 digits (15 bytes, the kernel's limit).
pub fn handover_name(endpoint_id: &str) -> String {
    format!("ndk{}", endpoint_id.chars().take(12).collect::<String>())
}

/// `docker network create -d netd [--ipv6] [--subnet]... [--gateway]... [--internal] [-o K=V]`,
/// as the netd bridge network to make. Docker's IPAM chose the pools and the gateways (and
/// keeps `--ip-range` to itself); netd takes them as given.
pub fn network_create(req: &CreateNetwork) -> Result<NetworkCreate, PluginError> {
    let ipv6 = flag(&req.options, label::ENABLE_IPV6) || !req.ipv6_data.is_empty();
    let (subnet6, gateway6) = match req.ipv6_data.as_slice() {
        [] => (None, None),
        [pool] => {
            let (subnet, gateway) = pool_of::<Ipv6Net>(pool)?;
            (Some(subnet), gateway)
        }
        more => {
            return Err(PluginError::Invalid(format!(
                "a netd network has one IPv6 subnet, not {}",
                more.len()
            )))
        }
    };
    let [pool] = req.ipv4_data.as_slice() else {
        return Err(PluginError::Invalid(format!(
            "a netd network has one IPv4 subnet, not {}",
            req.ipv4_data.len()
        )));
    };
    let (subnet, gateway) = pool_of::<Ipv4Net>(pool)?;
    Ok(NetworkCreate {
        name: network_name(&req.network_id),
        driver: "bridge".into(),
        subnet: Some(subnet),
        gateway,
        ip_range: None,
        ipv6,
        subnet6,
        gateway6,
        ip_range6: None,
        internal: flag(&req.options, label::INTERNAL),
        options: generic_options(&req.options)?,
        id: Some(req.network_id.clone()),
    })
}

/// A pool Docker's IPAM gave (`Pool` a CIDR of `N`'s family, `Gateway` `ADDRESS/PREFIX` or
/// empty), as the subnet and the gateway's address.
fn pool_of<N>(pool: &super::wire::IpamData) -> Result<(N, Option<N::Addr>), PluginError>
where
    N: std::str::FromStr + Family,
    N::Addr: std::str::FromStr,
{
    let subnet: N = pool
        .pool
        .parse()
        .map_err(|_| PluginError::Invalid(format!("invalid pool {:?}", pool.pool)))?;
    let gateway = match pool.gateway.split('/').next().filter(|g| !g.is_empty()) {
        None => None,
        Some(g) => Some(
            g.parse::<N::Addr>()
                .map_err(|_| PluginError::Invalid(format!("invalid gateway {:?}", pool.gateway)))?,
        ),
    };
    Ok((subnet, gateway))
}

/// A subnet type and its address type.
trait Family {
    type Addr;
}

impl Family for Ipv4Net {
    type Addr = Ipv4Addr;
}

impl Family for Ipv6Net {
    type Addr = std::net::Ipv6Addr;
}

fn flag(options: &Options, key: &str) -> bool {
    match options.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// `-o KEY=VALUE` as `KEY=VALUE` strings.
fn generic_options(options: &Options) -> Result<Vec<String>, PluginError> {
    let Some(generic) = options.get(label::GENERIC) else {
        return Ok(vec![]);
    };
    let Some(map) = generic.as_object() else {
        return Err(PluginError::Invalid(format!(
            "{}: expected a map",
            label::GENERIC
        )));
    };
    Ok(map
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect())
}

/// The port map in `options` (`com.docker.network.portmap`).
pub fn port_map(options: &Options) -> Result<Vec<PortBinding>, PluginError> {
    match options.get(label::PORT_MAP) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| PluginError::Invalid(format!("{}: {e}", label::PORT_MAP))),
    }
}

/// One binding as netd's `-p` spec: `[HOST_IP:][HOST_PORT[-END]]:PORT/PROTO`, or `PORT/PROTO`
/// for a host port netd chooses.
pub fn publish_spec(b: &PortBinding) -> Result<String, PluginError> {
    let proto = match b.proto {
        6 => "tcp",
        17 => "udp",
        other => {
            return Err(PluginError::Invalid(format!(
                "port {}: protocol {other} is not published by netd (tcp and udp are)",
                b.port
            )))
        }
    };
    let host_ip = match b.host_ip.parse::<IpAddr>() {
        _ if b.host_ip.is_empty() => String::new(),
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => String::new(),
        Ok(IpAddr::V4(ip)) => format!("{ip}:"),
        _ => {
            return Err(PluginError::Invalid(format!(
                "port {}: host address {:?} is not IPv4",
                b.port, b.host_ip
            )))
        }
    };
    let host_port = match (b.host_port, b.host_port_end) {
        (0, _) if host_ip.is_empty() => return Ok(format!("{}/{proto}", b.port)),
        (0, _) => String::new(),
        (start, end) if end > start => format!("{start}-{end}"),
        (start, _) => start.to_string(),
    };
    Ok(format!("{host_ip}{host_port}:{}/{proto}", b.port))
}

/// What netd bound, as the port map `docker port` shows (`EndpointOperInfo`).
pub fn bound_port_map(ports: &[PortMapping]) -> Vec<PortBinding> {
    ports
        .iter()
        .map(|p| PortBinding {
            proto: match p.proto {
                Proto::Tcp => 6,
                Proto::Udp => 17,
            },
            ip: String::new(),
            port: p.container_port,
            host_ip: p.host_ip.to_string(),
            host_port: p.host_port,
            host_port_end: p.host_port,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_containers_names_are_its_name_then_its_aliases_once_each() {
        let aliases = ["www".to_string(), "web".into(), "41d836499820".into()];
        assert_eq!(
            docker_names("web", &aliases),
            ["web", "www", "41d836499820"]
        );
    }

    fn create(json: &str) -> Result<NetworkCreate, PluginError> {
        network_create(&serde_json::from_str(json).unwrap())
    }

    const ID: &str = "755035036ac063b7c2dffdb58147a0dc863c560612c2b67fe15c678be6ea0ee3";

    #[test]
    fn a_docker_network_becomes_a_bridge_network_with_dockers_pool_gateway_and_id() {
        let req = format!(
            r#"{{"NetworkID":"{ID}","Options":{{"com.docker.network.enable_ipv6":false,
            "com.docker.network.generic":{{"foo":"bar"}},"com.docker.network.internal":true}},
            "IPv4Data":[{{"AddressSpace":"LocalDefault","Gateway":"10.12.0.254/24",
            "Pool":"10.12.0.0/24"}}],"IPv6Data":[]}}"#
        );
        let net = create(&req).unwrap();
        assert_eq!(net.name, "755035036ac0");
        assert_eq!(net.id.as_deref(), Some(ID));
        assert_eq!(net.subnet, Some("10.12.0.0/24".parse().unwrap()));
        assert_eq!(net.gateway, Some(Ipv4Addr::new(10, 12, 0, 254)));
        assert!(net.internal);
        assert_eq!(net.options, ["foo=bar"]);
        assert_eq!(net.driver, "bridge");
    }

    #[test]
    fn an_ipv6_network_takes_dockers_ipv6_pool_and_gateway() {
        let v6 = format!(
            r#"{{"NetworkID":"{ID}","Options":{{"com.docker.network.enable_ipv6":true}},
            "IPv4Data":[{{"Pool":"10.1.0.0/24"}}],
            "IPv6Data":[{{"Pool":"fd00:1::/64","Gateway":"fd00:1::1/64"}}]}}"#
        );
        let net = create(&v6).unwrap();
        assert!(net.ipv6);
        assert_eq!(net.subnet6, Some("fd00:1::/64".parse().unwrap()));
        assert_eq!(net.gateway6, Some("fd00:1::1".parse().unwrap()));
        let bad = v6.replace("fd00:1::/64", "fd00:1::/xx");
        assert!(create(&bad)
            .unwrap_err()
            .to_string()
            .contains("invalid pool"));
    }

    #[test]
    fn several_pools_of_a_family_are_refused() {
        let two = format!(
            r#"{{"NetworkID":"{ID}","IPv4Data":[{{"Pool":"10.1.0.0/24"}},{{"Pool":"10.2.0.0/24"}}]}}"#
        );
        assert!(create(&two)
            .unwrap_err()
            .to_string()
            .contains("one IPv4 subnet"));
        let two6 = format!(
            r#"{{"NetworkID":"{ID}","IPv4Data":[{{"Pool":"10.1.0.0/24"}}],
            "IPv6Data":[{{"Pool":"fd00:1::/64"}},{{"Pool":"fd00:2::/64"}}]}}"#
        );
        assert!(create(&two6)
            .unwrap_err()
            .to_string()
            .contains("one IPv6 subnet"));
    }

    #[test]
    fn port_bindings_become_publish_specs() {
        let b = |proto, host_ip: &str, host_port, end, port| PortBinding {
            proto,
            ip: String::new(),
            port,
            host_ip: host_ip.into(),
            host_port,
            host_port_end: end,
        };
        let spec = |binding| publish_spec(&binding).unwrap();
        assert_eq!(spec(b(6, "", 8080, 8080, 80)), "8080:80/tcp");
        assert_eq!(spec(b(17, "", 5353, 0, 53)), "5353:53/udp");
        assert_eq!(spec(b(6, "", 0, 0, 9000)), "9000/tcp");
        assert_eq!(spec(b(6, "127.0.0.1", 0, 0, 80)), "127.0.0.1::80/tcp");
        assert_eq!(spec(b(6, "0.0.0.0", 8000, 8010, 80)), "8000-8010:80/tcp");
        assert!(publish_spec(&b(132, "", 1, 1, 1)).is_err(), "sctp");
        assert!(publish_spec(&b(6, "::", 1, 1, 1)).is_err(), "IPv6");
    }

    #[test]
    fn sandbox_and_device_names_fit_netd_and_the_kernel() {
        assert_eq!(
            sandbox_name("/run/docker/netns/8ac8ec7e5f24").unwrap(),
            "docker-8ac8ec7e5f24"
        );
        assert!(sandbox_name("/run/docker/netns/").is_err());
        assert!(sandbox_name("/x/../y z").is_err());
        assert_eq!(handover_name(ID).len(), 15);
    }
}
