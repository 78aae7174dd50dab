//! Who is called what, per network: the names the embedded DNS server answers for, built from
//! the state alone. A container is known on each user-defined network it is connected to by its
//! name, its short ID and its aliases on that network; the default `bridge` network has no names,
//! as Docker's has none. A container on a dual-stack network is known there by both of its
//! addresses (A and AAAA records).
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use crate::{
    api::Request,
    state::{Container, EndpointState, Network, State, Status},
};

/// The names of every user-defined network.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Names {
    /// network -> lowercase name -> addresses, in the order containers were found.
    names: BTreeMap<String, BTreeMap<String, Vec<IpAddr>>>,
    /// network -> address -> container name.
    ptr: BTreeMap<String, BTreeMap<IpAddr, String>>,
    /// container -> the user-defined networks it is on (what it may resolve).
    scope: BTreeMap<String, BTreeSet<String>>,
    /// container address (on any network) -> container, to know who asks the gateway.
    by_addr: BTreeMap<IpAddr, String>,
    /// (container, network) -> lowercase link alias -> the name it stands for there (Docker's
    /// `--link NAME:ALIAS` on a user-defined network).
    links: BTreeMap<(String, String), BTreeMap<String, String>>,
}

impl Names {
    pub fn from_state(state: &State) -> Self {
        let mut names = Names::default();
        for c in state
            .containers
            .values()
            .filter(|c| c.status == Status::Running)
        {
            let user_networks: Vec<_> = c
                .endpoints
                .iter()
                .filter_map(|ep| Some((ep, state.networks.get(&ep.network)?)))
                .filter(|(_, net)| !net.default)
                .collect();
            // A container on no user-defined network resolves nothing here (its queries go
            // upstream whoever asks), so the default bridge's many cost nothing per request.
            if user_networks.is_empty() {
                continue;
            }
            for ep in &c.endpoints {
                for ip in addresses(ep) {
                    names.by_addr.insert(ip, c.name.clone());
                }
            }
            for (ep, net) in user_networks {
                names.add_endpoint(c, ep, net);
            }
        }
        names
    }

    /// Container `c` known on user-defined network `net` at endpoint `ep`'s address.
    fn add_endpoint(&mut self, c: &Container, ep: &EndpointState, net: &Network) {
        self.scope
            .entry(c.name.clone())
            .or_default()
            .insert(net.name.clone());
        let attachment = c.attachments.iter().find(|a| a.network == net.name);
        let aliases = attachment.map(|a| a.aliases.as_slice()).unwrap_or_default();
        self.add_links(&c.name, &net.name, attachment.map(|a| a.links.as_slice()));
        let table = self.names.entry(net.name.clone()).or_default();
        for name in [&c.name, &c.id[..12].to_string()]
            .into_iter()
            .chain(aliases)
        {
            let addrs = table.entry(name.to_ascii_lowercase()).or_default();
            for ip in addresses(ep) {
                if !addrs.contains(&ip) {
                    addrs.push(ip);
                }
            }
        }
        let ptr = self.ptr.entry(net.name.clone()).or_default();
        for ip in addresses(ep) {
            ptr.insert(ip, c.name.clone());
        }
    }

    /// Whether the tables may differ after `request` (and so need building again): reads never
    /// change them, nor creating a container (the tables hold running containers only) or
    /// publishing a port, nor starting, stopping or removing a container that is on no
    /// user-defined network (the default bridge's many). Building them walks every container:
    /// half a millisecond at 4,000, on every start.
    pub fn may_change(state: &State, request: &Request) -> bool {
        let on_user_network = |name: &str| {
            state.find_container(name).is_some_and(|c| {
                c.attachments
                    .iter()
                    .any(|a| state.networks.get(&a.network).is_none_or(|n| !n.default))
            })
        };
        match request {
            Request::NetworkLs
            | Request::NetworkInspect { .. }
            | Request::ContainerCreate(_)
            | Request::ContainerLs
            | Request::ContainerInspect { .. }
            | Request::Stats { .. }
            | Request::Explain { .. }
            | Request::Monitor { .. }
            | Request::ContainerPublish { .. }
            | Request::ContainerUnpublish { .. }
            | Request::ContainerPort { .. }
            | Request::Exec { .. }
            | Request::MapsDump { .. }
            | Request::PolicyShow
            | Request::PolicyReload
            | Request::Check => false,
            Request::ContainerStart { name }
            | Request::ContainerStop { name }
            | Request::ContainerRm { name, .. } => on_user_network(name),
            Request::NetworkCreate(_)
            | Request::NetworkRm { .. }
            | Request::NetworkConnect { .. }
            | Request::NetworkDisconnect { .. } => true,
        }
    }

    /// `NAME:ALIAS` links of `container` on `network` (a link without `:ALIAS` names itself).
    fn add_links(&mut self, container: &str, network: &str, links: Option<&[String]>) {
        for link in links.into_iter().flatten() {
            let (target, alias) = link.split_once(':').unwrap_or((link, link));
            self.links
                .entry((container.to_string(), network.to_string()))
                .or_default()
                .insert(alias.to_ascii_lowercase(), target.to_ascii_lowercase());
        }
    }

    /// A container on another host of an overlay network: known there by its name, short ID
    /// and aliases, and its address by its name.
    pub fn add_remote(
        &mut self,
        network: &str,
        container: &str,
        id: &str,
        aliases: &[String],
        ip: IpAddr,
    ) {
        let table = self.names.entry(network.to_string()).or_default();
        let short = &id[..12.min(id.len())];
        for name in [container, short]
            .into_iter()
            .chain(aliases.iter().map(String::as_str))
        {
            let addrs = table.entry(name.to_ascii_lowercase()).or_default();
            if !addrs.contains(&ip) {
                addrs.push(ip);
            }
        }
        self.ptr
            .entry(network.to_string())
            .or_default()
            .insert(ip, container.to_string());
    }

    /// A table from (container, network, address, aliases) rows, for tests elsewhere.
    #[cfg(test)]
    pub fn for_tests(rows: &[(&str, &str, &str, &[&str])]) -> Self {
        let mut names = Names::default();
        for (c, net, ip, aliases) in rows {
            let ip: IpAddr = ip.parse().unwrap();
            names
                .scope
                .entry(c.to_string())
                .or_default()
                .insert(net.to_string());
            names.by_addr.insert(ip, c.to_string());
            names
                .ptr
                .entry(net.to_string())
                .or_default()
                .insert(ip, c.to_string());
            for n in std::iter::once(c).chain(aliases.iter()) {
                names
                    .names
                    .entry(net.to_string())
                    .or_default()
                    .entry(n.to_string())
                    .or_default()
                    .push(ip);
            }
        }
        names
    }

    /// The container that has address `ip`.
    pub fn container_at(&self, ip: IpAddr) -> Option<&str> {
        self.by_addr.get(&ip).map(String::as_str)
    }

    /// Whether `container` is on any user-defined network (and so uses the embedded server).
    pub fn has_scope(&self, container: &str) -> bool {
        self.scope.contains_key(container)
    }

    /// Addresses `name` has on the networks `container` shares with it; `None` if netd does not
    /// own the name there (it goes upstream).
    pub fn lookup(&self, container: &str, name: &str) -> Option<Vec<IpAddr>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let mut found: Vec<IpAddr> = vec![];
        for net in self.scope.get(container)? {
            // A link alias stands for its container, before any name of that spelling.
            let linked = self
                .links
                .get(&(container.to_string(), net.clone()))
                .and_then(|l| l.get(&name));
            let name = linked.unwrap_or(&name);
            for ip in self
                .names
                .get(net)
                .and_then(|t| t.get(name))
                .into_iter()
                .flatten()
            {
                if !found.contains(ip) {
                    found.push(*ip);
                }
            }
        }
        (!found.is_empty()).then_some(found)
    }

    /// The container name of `ip`, if `container` shares a network with it.
    pub fn reverse(&self, container: &str, ip: IpAddr) -> Option<&str> {
        self.scope
            .get(container)?
            .iter()
            .find_map(|net| self.ptr.get(net)?.get(&ip))
            .map(String::as_str)
    }
}

/// The endpoint's addresses: IPv4, then IPv6 on a dual-stack network.
fn addresses(ep: &EndpointState) -> impl Iterator<Item = IpAddr> {
    [Some(IpAddr::V4(ep.ip)), ep.ip6.map(IpAddr::V6)]
        .into_iter()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing::{network, running};

    fn state() -> State {
        let mut s = State::default();
        let mut bridge = network("bridge", "172.17.0.0/16", 1);
        bridge.default = true;
        for n in [
            bridge,
            network("front", "10.1.0.0/24", 2),
            network("back", "10.2.0.0/24", 3),
        ] {
            s.networks.insert(n.name.clone(), n);
        }
        let cs = [
            running(
                "web",
                &[
                    ("front", "vw0", "10.1.0.2", &["www"]),
                    ("back", "vw1", "10.2.0.2", &[]),
                ],
            ),
            running("web2", &[("front", "vx0", "10.1.0.3", &["www"])]),
            running("db", &[("back", "vd0", "10.2.0.3", &["database"])]),
            running("old", &[("bridge", "vo0", "172.17.0.2", &[])]),
            running("old2", &[("bridge", "vp0", "172.17.0.3", &[])]),
        ];
        for c in cs {
            s.containers.insert(c.name.clone(), c);
        }
        s
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn containers_resolve_names_ids_and_aliases_on_shared_networks() {
        let n = Names::from_state(&state());
        assert_eq!(n.lookup("web", "db"), Some(vec![ip("10.2.0.3")]));
        assert_eq!(n.lookup("web", "DATABASE."), Some(vec![ip("10.2.0.3")]));
        assert_eq!(
            n.lookup("web", "db0000000000"),
            Some(vec![ip("10.2.0.3")]),
            "short ID"
        );
        assert_eq!(
            n.lookup("db", "web"),
            Some(vec![ip("10.2.0.2")]),
            "only the address on the shared network"
        );
    }

    #[test]
    fn only_requests_about_containers_on_user_networks_change_the_tables() {
        let s = state();
        let start = |name: &str| Request::ContainerStart { name: name.into() };
        assert!(Names::may_change(&s, &start("web")));
        assert!(Names::may_change(&s, &start("web0")), "by ID prefix");
        assert!(
            !Names::may_change(&s, &start("old")),
            "the default bridge has no names"
        );
        assert!(!Names::may_change(&s, &start("missing")));
        assert!(Names::may_change(
            &s,
            &Request::NetworkDisconnect {
                network: "front".into(),
                container: "old".into()
            }
        ));
        assert!(!Names::may_change(&s, &Request::ContainerLs));
        // What the rule rests on: the default bridge's containers add nothing to the tables.
        let mut without = s.clone();
        without
            .containers
            .retain(|name, _| !name.starts_with("old"));
        assert_eq!(Names::from_state(&s), Names::from_state(&without));
    }

    #[test]
    fn names_on_networks_not_shared_are_not_ours() {
        let n = Names::from_state(&state());
        assert_eq!(n.lookup("web2", "db"), None);
        assert_eq!(n.lookup("db", "web2"), None);
    }

    #[test]
    fn the_default_bridge_has_no_names() {
        let n = Names::from_state(&state());
        assert_eq!(n.lookup("old", "old2"), None);
        assert!(!n.has_scope("old"));
        // Its queries go upstream, known or not: the tables do not hold its address.
        assert_eq!(n.container_at(ip("172.17.0.3")), None);
    }

    #[test]
    fn an_alias_shared_by_several_containers_has_all_their_addresses() {
        let n = Names::from_state(&state());
        assert_eq!(
            n.lookup("web2", "www"),
            Some(vec![ip("10.1.0.2"), ip("10.1.0.3")])
        );
    }

    #[test]
    fn reverse_lookups_give_the_container_name_on_shared_networks() {
        let n = Names::from_state(&state());
        assert_eq!(n.reverse("web", ip("10.2.0.3")), Some("db"));
        assert_eq!(n.reverse("web2", ip("10.2.0.3")), None);
    }

    #[test]
    fn stopped_containers_have_no_names() {
        let mut s = state();
        s.containers.get_mut("db").unwrap().status = Status::Exited;
        s.containers.get_mut("db").unwrap().endpoints.clear();
        assert_eq!(Names::from_state(&s).lookup("web", "db"), None);
    }

    #[test]
    fn a_link_alias_names_its_container_for_the_linking_container_alone() {
        let mut s = state();
        let web = s.containers.get_mut("web").unwrap();
        web.attachments[1].links = vec!["db:webdb".into(), "db".into()];
        let n = Names::from_state(&s);
        assert_eq!(n.lookup("web", "WebDB"), Some(vec![ip("10.2.0.3")]));
        assert_eq!(n.lookup("web", "db"), Some(vec![ip("10.2.0.3")]));
        assert_eq!(n.lookup("db", "webdb"), None, "the alias is web's only");
        assert_eq!(
            n.lookup("web", "www"),
            Some(vec![ip("10.1.0.2"), ip("10.1.0.3")]),
            "a link on one network leaves names on the other alone"
        );
    }
}
