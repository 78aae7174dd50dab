//! Container requests: create, start, stop, remove, connect, disconnect, and the views and exec
//! details the client asks for.
use std::{path::PathBuf, time::Duration};

use nix::{sys::signal::Signal, unistd::Pid};

use super::{
    error::{conflict, invalid, OpError, OpResult},
    networks::{new_id, DEFAULT_NETWORK},
    undo::{Step, Undo},
    validate, Daemon,
};
use crate::{
    api::{format_mac, ContainerCreate, ContainerView, EndpointView, ExecInfo, Reply},
    netlink::Netlink,
    netns,
    state::{now, Attachment, Container, EndpointState, NetworkMode, Status},
};

impl Daemon {
    /// A container by name, full ID or unique ID prefix.
    pub(super) fn container(&self, key: &str) -> OpResult<&Container> {
        self.state
            .find_container(key)
            .ok_or_else(|| OpError::NotFound(format!("{}: {key}", crate::api::NO_SUCH_CONTAINER)))
    }

    /// A container known to exist (it was looked up at the start of the request).
    pub(super) fn entry_mut(&mut self, name: &str) -> &mut Container {
        self.state
            .containers
            .get_mut(name)
            .expect("looked up at the start of the request")
    }

    /// The namespace file of a container that has its own namespace.
    pub(super) fn netns_path(&self, c: &Container) -> PathBuf {
        c.adopted_netns
            .clone()
            .unwrap_or_else(|| self.config.netns_dir().join(&c.name))
    }

    fn parse_mode(&self, network: &str) -> OpResult<NetworkMode> {
        Ok(match network {
            "host" => NetworkMode::Host,
            "none" => NetworkMode::None,
            _ => match network.strip_prefix("container:") {
                Some(target) => NetworkMode::Container(self.container(target)?.name.clone()),
                None => {
                    self.network(network)?;
                    NetworkMode::Bridge
                }
            },
        })
    }

    /// Validates a create request completely before anything is recorded.
    fn plan_container(&self, req: &ContainerCreate) -> OpResult<Container> {
        match req.runtime {
            None => validate::container_name(&req.name)?,
            Some(_) => validate::name("container", &req.name)?,
        }
        if let Some(other) = self.state.containers.get(&req.name) {
            return Err(conflict(format!(
                "container name {} is already in use by container \"{}\": remove it or choose another name",
                req.name, other.id
            )));
        }
        let links = self.plan_links(&req.name, &req.links)?;
        validate::key_values("environment variable", &req.env)?;
        let mode = self.parse_mode(&req.network)?;
        let mut attachments = self.plan_attachments(req, &mode)?;
        let links = self.place_links(links, &mut attachments)?;
        if let Some(path) = &req.netns {
            if !matches!(mode, NetworkMode::Bridge | NetworkMode::None) {
                return Err(invalid(
                    "--netns cannot be combined with --network host or container:",
                ));
            }
            // A namespace the runtime mounts only when the container starts (Docker's sandbox,
            // whose devices are handed over) cannot be checked yet.
            if req.handover.is_none() {
                netns::check(path)?;
            }
        }
        let (publish, expose) = self.plan_publish(req, &mode, &attachments)?;
        let publish_allow = super::policy::parse_rules(&req.name, &publish, &req.publish_allow)?;
        let publish_allow = crate::policy::merge(&[], &publish_allow);
        let id = new_id();
        let hostname = self.plan_hostname(&mode, req.hostname.as_deref(), &id)?;
        Ok(Container {
            name: req.name.clone(),
            id,
            mode,
            attachments,
            publish,
            ports: vec![],
            publish_allow,
            expose,
            links,
            link_env: vec![],
            env: req.env.clone(),
            hostname,
            adopted_netns: req.netns.clone(),
            runtime: req.runtime.clone(),
            runtime_id: req.runtime_id.clone(),
            status: Status::Created,
            endpoints: vec![],
            created: now(),
        })
    }

    /// Where `links` go. On a user-defined network a link is what Docker makes of it there: a
    /// name that the linking container alone resolves (the attachment's link table, which the
    /// DNS answers from), no environment, no hosts line; the legacy links returned (environment
    /// and hosts line) are the default bridge's.
    fn place_links(
        &self,
        links: Vec<String>,
        attachments: &mut [Attachment],
    ) -> OpResult<Vec<String>> {
        match attachments.first_mut() {
            Some(a) if !self.network(&a.network)?.default => {
                a.links = links;
                Ok(vec![])
            }
            _ => Ok(links),
        }
    }

    /// The hostname, as Docker gives it: `--hostname`, else the short ID; a container that
    /// joins another's namespace has that one's (and may not choose), one on the host's network
    /// the host's.
    fn plan_hostname(&self, mode: &NetworkMode, asked: Option<&str>, id: &str) -> OpResult<String> {
        let hostname = match (mode, asked) {
            (NetworkMode::Container(_), Some(_)) => {
                return Err(invalid(
                    "conflicting options: hostname and the network mode (--hostname with --network container:NAME)",
                ))
            }
            (NetworkMode::Container(target), None) => self.container(target)?.hostname.clone(),
            (NetworkMode::Host, None) => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|h| validate::hostname(h).is_ok())
                .unwrap_or_else(|| id[..12].to_string()),
            (_, Some(name)) => name.to_string(),
            (_, None) => id[..12].to_string(),
        };
        validate::hostname(&hostname)?;
        Ok(hostname)
    }

    fn plan_attachments(
        &self,
        req: &ContainerCreate,
        mode: &NetworkMode,
    ) -> OpResult<Vec<Attachment>> {
        if *mode != NetworkMode::Bridge {
            if req.ip.is_some() || !req.aliases.is_empty() {
                return Err(invalid(format!(
                    "--ip and --network-alias need a bridge network, not {}",
                    req.network
                )));
            }
            return Ok(vec![]);
        }
        let network = self.network(&req.network)?.name.clone();
        let attachment = Attachment {
            network,
            ip: req.ip,
            ip6: req.ip6,
            aliases: req.aliases.clone(),
            ifname: req.ifname.clone(),
            handover: req.handover.clone(),
            links: vec![],
        };
        self.check_attachment(&attachment)?;
        Ok(vec![attachment])
    }

    pub(super) fn container_create(&mut self, req: ContainerCreate) -> OpResult<Reply> {
        let container = self.plan_container(&req)?;
        let (id, name) = (container.id.clone(), container.name.clone());
        self.state.containers.insert(name.clone(), container);
        if let Err(e) = self.save_container(&name) {
            self.restore_saved();
            return Err(e);
        }
        Ok(Reply::Created(id))
    }

    pub(super) async fn container_start(&mut self, key: &str) -> OpResult<Reply> {
        let c = self.container(key)?.clone();
        if c.status == Status::Running {
            return Ok(Reply::Done);
        }
        if let NetworkMode::Container(target) = &c.mode {
            if self.container(target)?.status != Status::Running {
                return Err(conflict(format!(
                    "cannot join the network of container {target}: it is not running"
                )));
            }
        }
        for a in &c.attachments {
            self.check_attachment(a)?;
        }
        let mut undo = Undo::default();
        match self.start_steps(&c, &mut undo).await {
            Ok(()) => {
                undo.commit();
                Ok(Reply::Done)
            }
            Err(e) => {
                self.rollback(undo, &c.name).await;
                Err(e)
            }
        }
    }

    /// Takes back the kernel steps of a failed request and restores the saved state.
    async fn rollback(&mut self, undo: Undo, what: &str) {
        for err in undo.rollback(self).await {
            tracing::error!(%err, "rollback for {what} incomplete");
        }
        self.restore_saved();
        if let Err(err) = self.sync_ports().await {
            tracing::error!(%err, "restoring published ports after a failed {what}");
        }
    }

    async fn start_steps(&mut self, c: &Container, undo: &mut Undo) -> OpResult<()> {
        let link_env = self.link_env(c)?;
        self.entry_mut(&c.name).link_env = link_env;
        let mut endpoints = vec![];
        if matches!(c.mode, NetworkMode::Bridge | NetworkMode::None) {
            let path = self.netns_path(c);
            let inside = if c.handed_over() {
                // Docker's sandbox: its namespace is made when the container starts, after this,
                // and dockerd configures it; `inside` goes unused.
                self.nl.clone()
            } else if c.adopted_netns.is_none() {
                let inside = Netlink::in_new_netns(&path)?;
                undo.push(Step::RemoveNetns(path.clone()));
                inside
            } else {
                netns::check(&path)?;
                Netlink::in_netns(&path)?
            };
            if !c.handed_over() {
                inside.set_up(LOOPBACK_IFINDEX).await?;
                inside.remove_ipv6_loopback(LOOPBACK_IFINDEX).await?;
            }
            for a in &c.attachments {
                let ifname = Self::ifname_for(a, &endpoints, &c.attachments);
                let default_route = !self.has_default_route(&endpoints);
                let ep = self
                    .plug(&c.id, &path, &inside, a, &ifname, default_route, undo)
                    .await?;
                endpoints.push(ep.clone());
                self.entry_mut(&c.name).endpoints.push(ep);
            }
        }
        self.entry_mut(&c.name).status = Status::Running;
        self.bind_ports(&c.name)?;
        let bound = self.state.containers[&c.name].ports.clone();
        self.write_ports(&c.name, &bound, &[]).await?;
        self.write_files(&c.name)?;
        self.save_container(&c.name)
    }

    fn has_default_route(&self, endpoints: &[EndpointState]) -> bool {
        endpoints.iter().any(|e| {
            self.state
                .networks
                .get(&e.network)
                .is_some_and(|n| !n.internal)
        })
    }

    pub(super) async fn container_stop(&mut self, key: &str) -> OpResult<Reply> {
        let c = self.container(key)?.clone();
        if c.status != Status::Running {
            return Ok(Reply::Done);
        }
        let errors = self.stop_steps(&c).await?;
        if !errors.is_empty() {
            return Err(OpError::Conflict(format!(
                "stopping {} met errors: {}",
                c.name,
                errors.join("; ")
            )));
        }
        Ok(Reply::Done)
    }

    /// Records the container as stopped, then ends the processes, unplugs every endpoint and
    /// drops a namespace netd made. The record comes first: a state that cannot be written
    /// refuses the stop before anything is torn down, and a daemon killed half-way leaves only
    /// devices and files the state no longer has, which the next start removes. Teardown goes
    /// on past errors; every error is returned.
    pub(super) async fn stop_steps(&mut self, c: &Container) -> OpResult<Vec<String>> {
        let entry = self.entry_mut(&c.name);
        let bound = std::mem::take(&mut entry.ports);
        entry.endpoints.clear();
        entry.status = Status::Exited;
        if let Err(e) = self.save_container(&c.name) {
            self.restore_saved();
            return Err(e);
        }
        let mut errors = vec![];
        if let Err(e) = self.write_ports(&c.name, &[], &bound).await {
            errors.push(e.to_string());
        }
        let own_netns = matches!(c.mode, NetworkMode::Bridge | NetworkMode::None);
        if own_netns && c.adopted_netns.is_none() {
            kill_all(&self.netns_path(c)).await;
        }
        let netns = self.netns_path(c);
        for ep in &c.endpoints {
            errors.extend(self.unplug(&c.id, ep, &netns).await);
        }
        if own_netns && c.adopted_netns.is_none() {
            if let Err(e) = netns::remove(&self.netns_path(c)) {
                errors.push(e.to_string());
            }
        }
        Ok(errors)
    }

    pub(super) async fn container_rm(&mut self, key: &str, force: bool) -> OpResult<Reply> {
        let c = self.container(key)?.clone();
        let joined: Vec<&str> = self
            .state
            .containers
            .values()
            .filter(|o| o.mode == NetworkMode::Container(c.name.clone()))
            .map(|o| o.name.as_str())
            .collect();
        if !joined.is_empty() {
            return Err(conflict(format!(
                "container {} is joined by {}: remove them first",
                c.name,
                joined.join(", ")
            )));
        }
        if c.status == Status::Running {
            if !force {
                return Err(conflict(format!(
                    "container {} is running: stop it first or use rm -f",
                    c.name
                )));
            }
            let errors = self.stop_steps(&c).await?;
            if !errors.is_empty() {
                return Err(OpError::Conflict(format!(
                    "stopping {} met errors: {}",
                    c.name,
                    errors.join("; ")
                )));
            }
        }
        self.state.containers.remove(&c.name);
        if let Err(e) = self.save() {
            self.restore_saved();
            return Err(e);
        }
        self.remove_files(&c.name)?;
        Ok(Reply::Done)
    }

    pub(super) async fn network_connect(
        &mut self,
        key: &str,
        mut attachment: Attachment,
    ) -> OpResult<Reply> {
        let c = self.container(key)?.clone();
        let network = self.network(&attachment.network)?.name.clone();
        if c.mode != NetworkMode::Bridge {
            return Err(conflict(format!("container {} shares another namespace or has none; it cannot be connected to networks", c.name)));
        }
        if c.attachments.iter().any(|a| a.network == network) {
            return Err(conflict(format!(
                "container {} is already connected to network {network}",
                c.name
            )));
        }
        if let Some(ifname) = &attachment.ifname {
            let taken = c.attachments.iter().filter_map(|a| a.ifname.as_ref());
            let taken = taken.chain(c.endpoints.iter().map(|e| &e.ifname));
            if taken.into_iter().any(|t| t == ifname) {
                return Err(conflict(format!(
                    "container {} already has an interface {ifname}",
                    c.name
                )));
            }
        }
        attachment.network = network;
        self.check_attachment(&attachment)?;
        let mut undo = Undo::default();
        match self.connect_steps(&c, attachment, &mut undo).await {
            Ok(()) => {
                undo.commit();
                Ok(Reply::Done)
            }
            Err(e) => {
                self.rollback(undo, &c.name).await;
                Err(e)
            }
        }
    }

    async fn connect_steps(
        &mut self,
        c: &Container,
        attachment: Attachment,
        undo: &mut Undo,
    ) -> OpResult<()> {
        if c.status == Status::Running {
            let ifname = Self::ifname_for(&attachment, &c.endpoints, &c.attachments);
            let default_route = !self.has_default_route(&c.endpoints);
            let path = self.netns_path(c);
            let inside = match attachment.handover {
                Some(_) => self.nl.clone(),
                None => Netlink::in_netns(&path)?,
            };
            let ep = self
                .plug(
                    &c.id,
                    &path,
                    &inside,
                    &attachment,
                    &ifname,
                    default_route,
                    undo,
                )
                .await?;
            self.entry_mut(&c.name).endpoints.push(ep);
        }
        self.entry_mut(&c.name).attachments.push(attachment);
        if c.status == Status::Running {
            self.write_files(&c.name)?;
        }
        self.save()
    }

    pub(super) async fn network_disconnect(&mut self, network: &str, key: &str) -> OpResult<Reply> {
        let c = self.container(key)?.clone();
        let network = self.network(network)?.name.clone();
        if !c.attachments.iter().any(|a| a.network == network) {
            return Err(conflict(format!(
                "container {} is not connected to network {network}",
                c.name
            )));
        }
        // Recorded first, as a stop is (see `stop_steps`).
        let entry = self.entry_mut(&c.name);
        entry.endpoints.retain(|e| e.network != network);
        entry.attachments.retain(|a| a.network != network);
        if let Err(e) = self.save() {
            self.restore_saved();
            return Err(e);
        }
        let mut errors = vec![];
        if let Some(ep) = c.endpoints.iter().find(|e| e.network == network) {
            errors = self.unplug(&c.id, ep, &self.netns_path(&c)).await;
        }
        if c.status == Status::Running {
            self.write_files(&c.name)?;
        }
        if !errors.is_empty() {
            return Err(OpError::Conflict(format!(
                "disconnected, but teardown met errors: {}",
                errors.join("; ")
            )));
        }
        Ok(Reply::Done)
    }

    pub(super) fn container_view(&self, c: &Container) -> ContainerView {
        let networks = c
            .attachments
            .iter()
            .map(|a| {
                let ep = c.endpoints.iter().find(|e| e.network == a.network);
                let net = self.state.networks.get(&a.network);
                let view = EndpointView {
                    ip_address: ep.map(|e| e.ip),
                    prefix_len: net.map(|n| n.subnet.prefix_len()).unwrap_or(0),
                    gateway: ep.and(net).map(|n| n.gateway),
                    global_ipv6_address: ep.and_then(|e| e.ip6),
                    global_ipv6_prefix_len: ep
                        .and_then(|e| e.ip6)
                        .and(net)
                        .and_then(|n| n.ipv6)
                        .map_or(0, |v6| v6.subnet.prefix_len()),
                    ipv6_gateway: ep
                        .and_then(|e| e.ip6)
                        .and(net)
                        .and_then(|n| n.ipv6)
                        .map(|v6| v6.gateway),
                    mac_address: ep.map(|e| format_mac(e.mac)),
                    interface: ep.map(|e| e.ifname.clone()),
                    host_interface: ep.and_then(|e| e.host_veth.clone()),
                    aliases: a.aliases.clone(),
                };
                (a.network.clone(), view)
            })
            .collect();
        let netns = match &c.mode {
            NetworkMode::Bridge | NetworkMode::None if c.status == Status::Running => {
                Some(self.netns_path(c))
            }
            _ => None,
        };
        ContainerView {
            name: c.name.clone(),
            id: c.id.clone(),
            status: format!("{:?}", c.status).to_lowercase(),
            network_mode: mode_name(&c.mode, c.attachments.first().map(|a| a.network.as_str())),
            hostname: c.hostname.clone(),
            netns,
            runtime: c.runtime.clone(),
            runtime_id: c.runtime_id.clone(),
            networks,
            ports: c.ports.iter().map(ToString::to_string).collect(),
            expose: c.expose.iter().map(ToString::to_string).collect(),
            env: c.env.clone(),
            created: c.created,
        }
    }

    pub(super) fn exec_info(&self, key: &str) -> OpResult<ExecInfo> {
        let c = self.container(key)?;
        if c.status != Status::Running {
            return Err(conflict(format!(
                "container {} is not running: start it with `netd container start {}`",
                c.name, c.name
            )));
        }
        let (netns, files_of) = match &c.mode {
            NetworkMode::Host => (
                PathBuf::from(format!("/proc/{}/ns/net", std::process::id())),
                None,
            ),
            NetworkMode::Container(target) => {
                let t = self.container(target)?;
                if t.status != Status::Running {
                    return Err(conflict(format!(
                        "container {} joins {target}, which is not running",
                        c.name
                    )));
                }
                (self.netns_path(t), Some(t.name.clone()))
            }
            _ => (self.netns_path(c), Some(c.name.clone())),
        };
        let dir = files_of.map(|n| self.config.containers_dir().join(n));
        Ok(ExecInfo {
            netns: through_our_root(&netns),
            // Plain files, visible in every mount namespace; a bind mount cannot take its source
            // from another one.
            hosts: dir.as_ref().map(|d| d.join("hosts")),
            resolv_conf: dir.as_ref().map(|d| d.join("resolv.conf")),
            hostname: Some(match &c.mode {
                NetworkMode::Container(target) => self.container(target)?.hostname.clone(),
                _ => c.hostname.clone(),
            }),
            env: self.link_env(c)?.iter().chain(&c.env).cloned().collect(),
        })
    }
}

/// `path` as the daemon sees it, reachable from a client in another mount namespace (a daemon
/// started by `ip netns exec` has a private one, where its namespace bind mounts live).
fn through_our_root(path: &std::path::Path) -> PathBuf {
    let root = PathBuf::from(format!("/proc/{}/root", std::process::id()));
    match path.strip_prefix("/") {
        Ok(rel) if path.is_absolute() && !path.starts_with("/proc") => root.join(rel),
        _ => path.to_path_buf(),
    }
}

/// The `--network` value a container was created with.
fn mode_name(mode: &NetworkMode, first: Option<&str>) -> String {
    match mode {
        NetworkMode::Bridge => first.unwrap_or(DEFAULT_NETWORK).to_string(),
        NetworkMode::Host => "host".into(),
        NetworkMode::None => "none".into(),
        NetworkMode::Container(t) => format!("container:{t}"),
    }
}

/// The loopback device's index: the same in every namespace.
const LOOPBACK_IFINDEX: u32 = 1;

/// SIGTERM to every process in the namespace, SIGKILL to those left after a grace period.
pub(super) async fn kill_all(path: &std::path::Path) {
    let signal_all = |sig| {
        for pid in netns::pids_in(path) {
            if let Err(e) = nix::sys::signal::kill(Pid::from_raw(pid), sig) {
                tracing::warn!(pid, %e, "cannot signal process");
            }
        }
    };
    signal_all(Signal::SIGTERM);
    for _ in 0..20 {
        if netns::pids_in(path).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal_all(Signal::SIGKILL);
}
