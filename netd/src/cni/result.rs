//! The success result of ADD (CNI spec 1.0): the container's interface in its namespace, its
//! address with the gateway and the default route (of each family, on a dual-stack network) and
//! netd's DNS server, from the daemon's view of the container.
use std::path::Path;

use serde::Serialize;

use super::conf::{code, CniError, SUPPORTED_VERSIONS};
use crate::api::ContainerView;

/// Where the embedded DNS server answers inside every container namespace.
pub const DNS_SERVER: &str = "127.0.0.11";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    pub cni_version: String,
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interface {
    pub name: String,
    pub mac: String,
    /// The namespace the interface is in (only for interfaces inside the container).
    pub sandbox: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpConfig {
    /// `ADDRESS/PREFIX`.
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    pub interface: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub dst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dns {
    pub nameservers: Vec<String>,
}

/// The result for `view` attached to `network` as `ifname` in `netns`.
pub fn of(
    view: &ContainerView,
    network: &str,
    ifname: &str,
    netns: &Path,
) -> Result<CniResult, CniError> {
    let ep = view.networks.get(network).ok_or_else(|| {
        CniError::new(
            code::DAEMON,
            format!("container {} is not on network {network}", view.name),
        )
    })?;
    let (Some(ip), Some(mac)) = (ep.ip_address, ep.mac_address.clone()) else {
        return Err(CniError::new(
            code::DAEMON,
            format!("container {} has no address on {network}", view.name),
        ));
    };
    let gateway = ep.gateway.map(|g| g.to_string());
    let mut ips = vec![IpConfig {
        address: format!("{ip}/{}", ep.prefix_len),
        gateway: gateway.clone(),
        interface: 0,
    }];
    let mut routes: Vec<Route> = gateway
        .iter()
        .map(|gw| Route {
            dst: "0.0.0.0/0".into(),
            gw: Some(gw.clone()),
        })
        .collect();
    if let Some(ip6) = ep.global_ipv6_address {
        let gateway6 = ep.ipv6_gateway.map(|g| g.to_string());
        ips.push(IpConfig {
            address: format!("{ip6}/{}", ep.global_ipv6_prefix_len),
            gateway: gateway6.clone(),
            interface: 0,
        });
        routes.extend(gateway6.map(|gw| Route {
            dst: "::/0".into(),
            gw: Some(gw),
        }));
    }
    Ok(CniResult {
        cni_version: SUPPORTED_VERSIONS[0].into(),
        interfaces: vec![Interface {
            name: ifname.into(),
            mac,
            sandbox: netns.display().to_string(),
        }],
        ips,
        routes,
        dns: Dns {
            nameservers: vec![DNS_SERVER.into()],
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::EndpointView;

    fn view() -> ContainerView {
        let ep = EndpointView {
            ip_address: Some("10.89.0.2".parse().unwrap()),
            prefix_len: 24,
            gateway: Some("10.89.0.1".parse().unwrap()),
            global_ipv6_address: None,
            global_ipv6_prefix_len: 0,
            ipv6_gateway: None,
            mac_address: Some("02:42:0a:59:00:02".into()),
            interface: Some("eth0".into()),
            host_interface: Some("vethabc".into()),
            aliases: vec![],
        };
        ContainerView {
            name: "web".into(),
            id: "0123".into(),
            status: "running".into(),
            network_mode: "front".into(),
            hostname: "web".into(),
            netns: Some("/run/netns/cni-x".into()),
            runtime: Some("cni".into()),
            runtime_id: None,
            networks: BTreeMap::from([("front".to_string(), ep)]),
            ports: vec![],
            expose: vec![],
            env: vec![],
            created: 0,
        }
    }

    #[test]
    fn the_result_has_the_interface_in_its_sandbox_the_address_the_route_and_netds_dns() {
        let r = of(&view(), "front", "eth0", Path::new("/run/netns/cni-x")).unwrap();
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "eth0", "mac": "02:42:0a:59:00:02",
                                "sandbox": "/run/netns/cni-x"}],
                "ips": [{"address": "10.89.0.2/24", "gateway": "10.89.0.1", "interface": 0}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.89.0.1"}],
                "dns": {"nameservers": ["127.0.0.11"]}
            })
        );
    }

    #[test]
    fn a_dual_stack_endpoint_has_an_address_and_a_default_route_of_each_family() {
        let mut v = view();
        let ep = v.networks.get_mut("front").unwrap();
        ep.global_ipv6_address = Some("fd00:89::2".parse().unwrap());
        ep.global_ipv6_prefix_len = 64;
        ep.ipv6_gateway = Some("fd00:89::1".parse().unwrap());
        let json = serde_json::to_value(of(&v, "front", "eth0", Path::new("/x")).unwrap()).unwrap();
        assert_eq!(
            json["ips"][1],
            serde_json::json!({"address": "fd00:89::2/64", "gateway": "fd00:89::1", "interface": 0})
        );
        assert_eq!(
            json["routes"],
            serde_json::json!([{"dst": "0.0.0.0/0", "gw": "10.89.0.1"}, {"dst": "::/0", "gw": "fd00:89::1"}])
        );
    }

    #[test]
    fn a_container_not_on_the_network_is_an_error() {
        let err = of(&view(), "back", "eth0", Path::new("/x")).unwrap_err();
        assert_eq!(err.code, code::DAEMON);
        assert!(err.msg.contains("not on network back"), "{}", err.msg);
    }
}
