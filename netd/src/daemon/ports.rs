//! Published ports: Docker's `-p`, `-P` and `--expose`, host ports chosen at start and released
//! at stop, and the `NETD_PORTS` map kept equal to what running containers publish. Also
//! `container publish` / `unpublish`, which change a running container's ports with a map
//! update and leave its connections alone. A port with an allowlist of its own
//! (`--publish-allow`) says so in its backend, and its prefixes go in the policy trie first
//! ([`super::policy`]).
use std::collections::BTreeMap;

use netd_common::{
    maps, Backend, PortKey, BACKEND_POLICY_HOST, BACKEND_POLICY_OWN, IPPROTO_TCP, IPPROTO_UDP,
};

use super::{
    error::{conflict, invalid, OpError, OpResult},
    Daemon,
};
use crate::{
    api::{ContainerCreate, Reply},
    datapath::plan,
    policy::PortAllow,
    ports::{self, ExposedPort, PortMapping, Proto},
    state::{Attachment, EndpointState, Network, NetworkMode, State, Status},
};

/// Host ports handed out for `-P` and `-p CONTAINERPORT`.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;

fn spec_err(e: ports::PortSpecError) -> OpError {
    invalid(e.to_string())
}

/// The map key of a bound mapping.
pub fn port_key(m: &PortMapping) -> PortKey {
    let proto = match m.proto {
        Proto::Tcp => IPPROTO_TCP,
        Proto::Udp => IPPROTO_UDP,
    };
    PortKey {
        addr: m.host_ip.octets(),
        port_be: m.host_port.to_be(),
        proto,
        _pad: 0,
    }
}

/// Every published port of every running container, with the endpoint it leads to (the
/// container's first interface). Host-side ifindexes come from `ifindex`.
pub fn desired_ports(state: &State, ifindex: &BTreeMap<String, u32>) -> BTreeMap<PortKey, Backend> {
    let mut out = BTreeMap::new();
    for c in state
        .containers
        .values()
        .filter(|c| c.status == Status::Running)
    {
        let Some(ep) = c.endpoints.first() else {
            continue;
        };
        let Some(net) = state.networks.get(&ep.network) else {
            continue;
        };
        let Some(&index) = ep.host_veth.as_ref().and_then(|v| ifindex.get(v)) else {
            continue;
        };
        let to = backend(ep, net, index);
        for m in &c.ports {
            out.insert(port_key(m), with_port(&to, m, &c.publish_allow));
        }
    }
    out
}

/// Where published ports lead: endpoint `ep` on `net`, host-side veth `ifindex` (port left 0).
fn backend(ep: &EndpointState, net: &Network, ifindex: u32) -> Backend {
    Backend {
        addr: ep.ip.octets(),
        port_be: 0,
        policy: BACKEND_POLICY_HOST,
        ifindex,
        mac: ep.mac,
        _pad2: [0; 2],
        gateway: net.gateway.octets(),
    }
}

/// `to` with the container port of mapping `m`, and whose policy decides for it (the
/// container's `rules`).
fn with_port(to: &Backend, m: &PortMapping, rules: &[PortAllow]) -> Backend {
    let own = !rules.is_empty() && crate::policy::port_policy(rules, m).is_some();
    Backend {
        port_be: m.container_port.to_be(),
        policy: if own {
            BACKEND_POLICY_OWN
        } else {
            BACKEND_POLICY_HOST
        },
        ..*to
    }
}

impl Daemon {
    /// Parses and checks `-p`, `-P` and `--expose` of a create request.
    pub(super) fn plan_publish(
        &self,
        req: &ContainerCreate,
        mode: &NetworkMode,
        attachments: &[Attachment],
    ) -> OpResult<(Vec<PortMapping>, Vec<ExposedPort>)> {
        let mut expose = vec![];
        for spec in &req.expose {
            expose.extend(ports::parse_expose(spec).map_err(spec_err)?);
        }
        let mut publish = vec![];
        for spec in &req.publish {
            let mappings = ports::parse_publish(spec).map_err(spec_err)?;
            expose.extend(mappings.iter().map(|m| ExposedPort {
                port: m.container_port,
                proto: m.proto,
            }));
            publish.extend(mappings);
        }
        if req.publish_all {
            publish.extend(ports::publish_all_unbound(&expose, &publish));
        }
        expose.sort_by_key(|e| (e.port, e.proto));
        expose.dedup();
        if !publish.is_empty() {
            self.check_publishable(mode, attachments)?;
            self.check_free(&req.name, &publish)?;
        }
        Ok((publish, expose))
    }

    /// Ports are published on a container's first network, which must be a non-internal bridge.
    fn check_publishable(&self, mode: &NetworkMode, attachments: &[Attachment]) -> OpResult<()> {
        if *mode != NetworkMode::Bridge {
            return Err(invalid(
                "published ports need a bridge network (not host, none or container:)",
            ));
        }
        if let Some(net) = attachments
            .first()
            .and_then(|a| self.state.networks.get(&a.network))
        {
            if net.internal {
                return Err(invalid(format!(
                    "network {} is internal: it has no published ports",
                    net.name
                )));
            }
            if !super::drivers::ops(&net.driver).publishes_ports() {
                return Err(invalid(format!(
                    "network {} is a {} network: its containers are on the parent's wire and \
                     publish no ports (reach them at their own addresses)",
                    net.name,
                    net.driver.name()
                )));
            }
        }
        Ok(())
    }

    /// Fixed host ports must be free: not requested by another container, nor bound.
    fn check_free(&self, name: &str, wanted: &[PortMapping]) -> OpResult<()> {
        let others = self
            .state
            .containers
            .values()
            .filter(|c| c.name != name)
            .flat_map(|c| c.publish.iter().chain(&c.ports));
        match ports::first_clash(wanted, others) {
            Some(m) => Err(conflict(format!(
                "Bind for {}:{} failed: port is already allocated",
                m.host_ip, m.host_port
            ))),
            None => Ok(()),
        }
    }

    /// Chooses the host ports of container `name`'s mappings (at start).
    pub(super) fn bind_ports(&mut self, name: &str) -> OpResult<()> {
        let bound = self.allocate(name, &self.state.containers[name].publish, &[])?;
        self.entry_mut(name).ports = bound;
        Ok(())
    }

    /// `wanted` with every host port chosen, avoiding what other containers hold and `own`.
    fn allocate(
        &self,
        name: &str,
        wanted: &[PortMapping],
        own: &[PortMapping],
    ) -> OpResult<Vec<PortMapping>> {
        let mut bound = wanted.to_vec();
        if bound.iter().all(|m| !m.needs_allocation()) {
            return Ok(bound);
        }
        let others = ports::Holders::new(
            self.state
                .containers
                .values()
                .filter(|o| o.name != name)
                .flat_map(|o| o.publish.iter().chain(&o.ports))
                .chain(own),
        );
        let taken = |proto, ip, port| others.taken(proto, ip, port);
        ports::allocate(&mut bound, taken, EPHEMERAL).map_err(spec_err)?;
        Ok(bound)
    }

    /// Makes `NETD_PORTS` hold exactly what running containers publish (at start, and to repair
    /// after a failed request).
    ///
    /// Only the ports of containers that publish are looked at, and the map is diffed against
    /// its content read from the kernel, so the syscalls that change it are for the entries that
    /// differ. (No copy of the map is kept between requests: at 100,000 ports it would cost the
    /// daemon 6 MiB for the rare failed request.)
    pub(super) async fn sync_ports(&mut self) -> OpResult<()> {
        let publishing: Vec<String> = self
            .state
            .containers
            .values()
            .filter(|c| c.status == Status::Running && !c.ports.is_empty())
            .filter_map(|c| c.endpoints.first()?.host_veth.clone())
            .collect();
        let mut ifindex = BTreeMap::new();
        for veth in publishing {
            if let Some(index) = self.nl.link_index(&veth).await? {
                ifindex.insert(veth, index);
            }
        }
        let wanted = desired_ports(&self.state, &ifindex);
        let current = self.dp.dump::<PortKey, Backend>(maps::PORTS)?;
        let policy = self.policy_diff()?;
        self.add_policy_entries(policy.upsert)?;
        self.dp.apply(maps::PORTS, plan::diff(&current, &wanted))?;
        self.remove_policy_entries(policy.remove)
    }

    /// Changes `NETD_PORTS` for container `name` only: `added` lead to its first endpoint,
    /// `removed` go. Costs one map update per mapping, whatever the number of published ports.
    pub(super) async fn write_ports(
        &mut self,
        name: &str,
        added: &[PortMapping],
        removed: &[PortMapping],
    ) -> OpResult<()> {
        let mut diff = plan::MapDiff {
            upsert: vec![],
            remove: removed.iter().map(port_key).collect(),
        };
        let rules = self.state.containers[name].publish_allow.clone();
        if !added.is_empty() {
            let backend = self.backend_of(name).await?;
            diff.upsert = added
                .iter()
                .map(|m| (port_key(m), with_port(&backend, m, &rules)))
                .collect();
        }
        self.add_policy_entries(super::policy::port_entries(&rules, added))?;
        self.dp.apply(maps::PORTS, diff)?;
        let gone = super::policy::port_entries(&rules, removed);
        self.remove_policy_entries(gone.into_iter().map(|(k, _)| k).collect())
    }

    /// Where container `name`'s published ports lead: its first endpoint (port left 0).
    async fn backend_of(&self, name: &str) -> OpResult<Backend> {
        let c = &self.state.containers[name];
        let ep = c.endpoints.first().ok_or_else(|| {
            invalid(format!(
                "{name} has no network endpoint to publish ports on"
            ))
        })?;
        let net = self.network(&ep.network)?;
        let veth = ep.host_veth.as_deref().ok_or_else(|| {
            invalid(format!(
                "{name} is on {} network {}, which cannot publish ports",
                net.driver.name(),
                net.name
            ))
        })?;
        let ifindex = self.nl.require_link(veth).await?;
        Ok(backend(ep, net, ifindex))
    }

    /// `container publish NAME [SPEC] [--publish-allow PORT=CIDR,...]...`: new mappings, and
    /// allowlists for host ports (new or already published; each replaces one for the same
    /// ports). Flows an allowlist no longer lets in are cut off.
    pub(super) async fn container_publish(
        &mut self,
        key: &str,
        spec: &str,
        allow: &[String],
    ) -> OpResult<Reply> {
        let c = self.container(key)?;
        let (name, status) = (c.name.clone(), c.status);
        let mappings = match spec.is_empty() && !allow.is_empty() {
            true => vec![],
            false => ports::parse_publish(spec).map_err(spec_err)?,
        };
        let published: Vec<PortMapping> = c
            .publish
            .iter()
            .chain(&c.ports)
            .chain(&mappings)
            .copied()
            .collect();
        let rules = super::policy::parse_rules(&name, &published, allow)?;
        if !mappings.is_empty() {
            self.check_new_mappings(&name, &mappings)?;
        }
        let bound = match status {
            Status::Running => {
                self.allocate(&name, &mappings, &self.state.containers[&name].ports)?
            }
            _ => vec![],
        };
        let entry = self.entry_mut(&name);
        let old_rules = std::mem::take(&mut entry.publish_allow);
        entry.publish_allow = crate::policy::merge(&old_rules, &rules);
        // Ports already bound whose allowlist changes get their backend and prefixes anew.
        let changed: Vec<PortMapping> = entry
            .ports
            .iter()
            .filter(|m| {
                crate::policy::port_policy(&old_rules, m)
                    != crate::policy::port_policy(&entry.publish_allow, m)
            })
            .copied()
            .collect();
        entry.publish.extend(mappings);
        entry.ports.extend(&bound);
        let result = self
            .rewrite_ports(&name, &bound, &changed, &old_rules)
            .await;
        self.finish(&name, result).await
    }

    /// Mappings `container publish` adds must be publishable and free.
    fn check_new_mappings(&self, name: &str, mappings: &[PortMapping]) -> OpResult<()> {
        let c = &self.state.containers[name];
        let first = c.attachments.first().cloned();
        self.check_publishable(&c.mode, first.as_slice())?;
        // Clashes among the new mappings and with other containers first, then with its own.
        self.check_free(name, mappings)?;
        if let Some(dup) = ports::first_clash(mappings, &c.publish) {
            return Err(conflict(format!(
                "{name} already publishes {}:{}",
                dup.host_ip, dup.host_port
            )));
        }
        Ok(())
    }

    /// Writes the `bound` mappings and those whose allowlist `changed` (from `old_rules`),
    /// removes the prefixes no longer wanted, and cuts off flows the new lists refuse.
    async fn rewrite_ports(
        &mut self,
        name: &str,
        bound: &[PortMapping],
        changed: &[PortMapping],
        old_rules: &[PortAllow],
    ) -> OpResult<()> {
        let written: Vec<PortMapping> = bound.iter().chain(changed).copied().collect();
        self.write_ports(name, &written, &[]).await?;
        if changed.is_empty() {
            return Ok(());
        }
        let rules = &self.state.containers[name].publish_allow;
        let keep: std::collections::BTreeSet<_> = super::policy::port_entries(rules, changed)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let stale = super::policy::port_entries(old_rules, changed)
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| !keep.contains(k))
            .collect();
        self.remove_policy_entries(stale)?;
        let cut = self.cut_off()?;
        tracing::info!(container = name, cut, "publish allowlist changed");
        Ok(())
    }

    /// `container unpublish NAME SPEC`: removes the mappings the spec names.
    pub(super) async fn container_unpublish(&mut self, key: &str, spec: &str) -> OpResult<Reply> {
        let name = self.container(key)?.name.clone();
        let gone = ports::parse_publish(spec).map_err(spec_err)?;
        let matches = |m: &PortMapping| gone.iter().any(|g| same_mapping(g, m));
        let entry = self.entry_mut(&name);
        if !entry.publish.iter().chain(&entry.ports).any(matches) {
            return Err(OpError::NotFound(format!("{name} does not publish {spec}")));
        }
        let unbound: Vec<PortMapping> = entry.ports.iter().copied().filter(matches).collect();
        entry.ports.retain(|m| !matches(m));
        entry
            .publish
            .retain(|p| !matches(p) && !unbound.iter().any(|b| requested_as(p, b)));
        let result = self.write_ports(&name, &[], &unbound).await;
        // Allowlists that name no port the container still publishes go with the ports.
        let entry = self.entry_mut(&name);
        let (publish, ports) = (entry.publish.clone(), entry.ports.clone());
        entry.publish_allow.retain(|r| {
            publish
                .iter()
                .chain(&ports)
                .any(|m| r.names(m) || r.covers(m))
        });
        self.finish(&name, result).await
    }

    /// Saves a successful change to container `name`, or restores the saved state and the port
    /// map on failure.
    async fn finish(&mut self, name: &str, result: OpResult<()>) -> OpResult<Reply> {
        match result.and_then(|()| self.save_container(name)) {
            Ok(()) => Ok(Reply::Done),
            Err(e) => {
                self.restore_saved();
                if let Err(err) = self.sync_ports().await {
                    tracing::error!(%err, "restoring published ports");
                }
                Err(e)
            }
        }
    }

    /// `container port NAME`, as `docker port` prints it (and in its order).
    pub(super) fn container_port(&self, key: &str) -> OpResult<Reply> {
        let c = self.container(key)?;
        Ok(Reply::Ports(ports::docker_port_lines(&c.ports, &c.publish)))
    }
}

/// Whether the requested mapping `p` is what got bound as `b` (an ephemeral or ranged request
/// got its host port at start).
fn requested_as(p: &PortMapping, b: &PortMapping) -> bool {
    p.container_port == b.container_port
        && p.proto == b.proto
        && p.host_ip == b.host_ip
        && (p.host_port == 0 || p.host_port == b.host_port)
}

/// Whether `spec` (as `unpublish` got it) names the mapping `m`: same container port and
/// protocol, and the same host address and port where the spec gives them.
fn same_mapping(spec: &PortMapping, m: &PortMapping) -> bool {
    spec.container_port == m.container_port
        && spec.proto == m.proto
        && (spec.host_port == 0 || spec.host_port == m.host_port)
        && (spec.host_ip.is_unspecified() || spec.host_ip == m.host_ip)
}
