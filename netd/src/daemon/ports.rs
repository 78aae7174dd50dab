//! Published ports: Docker's `-p`, `-P` and `--expose`, host ports chosen at start and released
//! at stop, and the `NETD_PORTS` map kept equal to what running containers publish. Also
//! `container publish` / `unpublish`, which change a running container's ports with a map
//! update and leave its connections alone.
use std::collections::BTreeMap;

use netd_common::{maps, Backend, PortKey, IPPROTO_TCP, IPPROTO_UDP};

use super::{
    error::{conflict, invalid, OpError, OpResult},
    Daemon,
};
use crate::{
    api::{ContainerCreate, Reply},
    datapath::plan,
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
            out.insert(port_key(m), with_port(&to, m));
        }
    }
    out
}

/// Where published ports lead: endpoint `ep` on `net`, host-side veth `ifindex` (port left 0).
fn backend(ep: &EndpointState, net: &Network, ifindex: u32) -> Backend {
    Backend {
        addr: ep.ip.octets(),
        port_be: 0,
        _pad: 0,
        ifindex,
        mac: ep.mac,
        _pad2: [0; 2],
        gateway: net.gateway.octets(),
    }
}

/// `to` with the container port of mapping `m`.
fn with_port(to: &Backend, m: &PortMapping) -> Backend {
    Backend {
        port_be: m.container_port.to_be(),
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
        Ok(self.dp.apply(maps::PORTS, plan::diff(&current, &wanted))?)
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
        if !added.is_empty() {
            let backend = self.backend_of(name).await?;
            diff.upsert = added
                .iter()
                .map(|m| (port_key(m), with_port(&backend, m)))
                .collect();
        }
        Ok(self.dp.apply(maps::PORTS, diff)?)
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

    /// `container publish NAME SPEC`.
    pub(super) async fn container_publish(&mut self, key: &str, spec: &str) -> OpResult<Reply> {
        let c = self.container(key)?;
        let (name, status) = (c.name.clone(), c.status);
        let mappings = ports::parse_publish(spec).map_err(spec_err)?;
        let first = c.attachments.first().cloned();
        let mode = c.mode.clone();
        self.check_publishable(&mode, first.as_slice())?;
        // Clashes among the new mappings and with other containers first, then with its own.
        self.check_free(&name, &mappings)?;
        let c = &self.state.containers[&name];
        if let Some(dup) = ports::first_clash(&mappings, &c.publish) {
            return Err(conflict(format!(
                "{name} already publishes {}:{}",
                dup.host_ip, dup.host_port
            )));
        }
        let bound = match status {
            Status::Running => {
                self.allocate(&name, &mappings, &self.state.containers[&name].ports)?
            }
            _ => vec![],
        };
        let entry = self.entry_mut(&name);
        entry.publish.extend(mappings);
        entry.ports.extend(&bound);
        let result = self.write_ports(&name, &bound, &[]).await;
        self.finish(&name, result).await
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
