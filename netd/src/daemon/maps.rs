//! `netd maps dump`: every BPF map decoded into names users know.
use std::collections::BTreeMap;

use netd_common::maps;

use super::{error::OpError, error::OpResult, Daemon};
use crate::api::{format_mac, MapView};

impl Daemon {
    pub(super) fn maps_dump(&self, only: Option<&str>) -> OpResult<Vec<MapView>> {
        let all = [maps::ENDPOINTS, maps::NETWORKS, maps::DROPS];
        if let Some(name) = only {
            if !all.iter().any(|m| {
                m.eq_ignore_ascii_case(name)
                    || m.trim_start_matches("NETD_").eq_ignore_ascii_case(name)
            }) {
                return Err(OpError::NotFound(format!(
                    "no such map {name:?}; maps are {}",
                    all.join(", ")
                )));
            }
        }
        let wanted = |m: &str| {
            only.is_none_or(|n| {
                m.eq_ignore_ascii_case(n) || m.trim_start_matches("NETD_").eq_ignore_ascii_case(n)
            })
        };
        let mut views = vec![];
        if wanted(maps::ENDPOINTS) {
            views.push(self.endpoints_view()?);
        }
        if wanted(maps::NETWORKS) {
            views.push(self.networks_view()?);
        }
        if wanted(maps::DROPS) {
            views.push(self.drops_view()?);
        }
        Ok(views)
    }

    fn view(&self, name: &str, columns: &[&str], rows: Vec<Vec<String>>) -> MapView {
        MapView {
            name: name.into(),
            pin: self.dp.map_pin(name),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
        }
    }

    fn endpoints_view(&self) -> OpResult<MapView> {
        let owners: BTreeMap<&str, (&str, &str)> = self
            .state
            .endpoints()
            .map(|(c, ep)| {
                (
                    ep.host_veth.as_str(),
                    (c.name.as_str(), ep.network.as_str()),
                )
            })
            .collect();
        let names = self
            .state
            .networks
            .values()
            .map(|n| (n.net_id, n.name.as_str()))
            .collect::<BTreeMap<_, _>>();
        let mut rows = vec![];
        for (ifindex, ep) in self.dp.endpoints()? {
            let veth = nix::net::if_::if_indextoname(ifindex)
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "?".into());
            let (container, _) = owners.get(veth.as_str()).copied().unwrap_or(("?", "?"));
            rows.push(vec![
                ifindex.to_string(),
                veth,
                container.into(),
                names.get(&ep.net_id).copied().unwrap_or("?").into(),
                std::net::Ipv4Addr::from(ep.addr).to_string(),
                format_mac(ep.mac),
                if ep.flags & netd_common::ENDPOINT_FLAG_INTERNAL != 0 {
                    "internal"
                } else {
                    "-"
                }
                .into(),
            ]);
        }
        Ok(self.view(
            maps::ENDPOINTS,
            &[
                "ifindex",
                "port",
                "container",
                "network",
                "ip",
                "mac",
                "flags",
            ],
            rows,
        ))
    }

    fn networks_view(&self) -> OpResult<MapView> {
        let names = self
            .state
            .networks
            .values()
            .map(|n| (n.net_id, n.name.as_str()))
            .collect::<BTreeMap<_, _>>();
        let rows = self
            .dp
            .networks()?
            .into_iter()
            .map(|(subnet, info)| {
                vec![
                    subnet.to_string(),
                    info.net_id.to_string(),
                    names.get(&info.net_id).copied().unwrap_or("?").into(),
                ]
            })
            .collect();
        Ok(self.view(maps::NETWORKS, &["subnet", "net_id", "network"], rows))
    }

    fn drops_view(&self) -> OpResult<MapView> {
        let rows = self
            .dp
            .drops()?
            .into_iter()
            .map(|(reason, n)| vec![reason.name().into(), n.to_string()])
            .collect();
        Ok(self.view(maps::DROPS, &["reason", "packets"], rows))
    }
}
