//! The daemon: owns the state, the netlink connection and the loaded datapath, serves requests
//! on its socket one at a time, and leaves the datapath in place when it stops.
mod check;
mod cleanup;
mod containers;
pub mod docker;
mod drivers;
mod endpoint;
pub mod error;
mod explain;
mod files;
mod flows;
mod hostfs;
mod links;
mod lock;
mod maps;
pub mod metrics;
mod networks;
mod observe;
mod overlay;
mod policy;
mod ports;
mod reconcile;
mod server;
mod undo;
mod uplinks;
mod validate;

use std::path::PathBuf;

use anyhow::Context as _;
use ipnet::Ipv4Net;

use crate::{
    api::{Reply, Request},
    cli::DaemonArgs,
    datapath::{conntrack::Timeouts, Datapath},
    dns::{names::Names, Dns},
    netlink::Netlink,
    netns,
    state::{store::Store, Attachment, NetworkMode, State, Status},
};
pub use cleanup::cleanup;
use error::{OpError, OpResult};

/// Where things live, from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    pub bpffs: PathBuf,
    pub uplinks: Vec<String>,
    pub default_subnet: Ipv4Net,
    /// `--default-subnet-v6`: the default network is dual-stack with this IPv6 subnet.
    pub default_subnet6: Option<ipnet::Ipv6Net>,
    pub resolv_conf: PathBuf,
    /// Where the socket hooks go: `--cgroup` as given until [`run`] settles it (`None` then
    /// means `--no-cgroup-hooks`).
    pub cgroup: Option<PathBuf>,
    /// Whether socket hooks are attached at all (`--no-cgroup-hooks` turns them off).
    pub cgroup_hooks: bool,
    /// Group that may use the API socket besides root.
    pub group: Option<String>,
    pub nat_entries: u32,
    pub timeouts: Timeouts,
    /// `--cluster-store`, `--advertise-addr` and `--cluster-lease-ttl`.
    pub cluster_store: Option<String>,
    pub advertise_addr: Option<std::net::IpAddr>,
    pub cluster_lease_ttl: std::time::Duration,
    /// `--publish-allow` and `--publish-deny`: the host-wide policy's own prefixes.
    pub publish_allow: Vec<ipnet::IpNet>,
    pub publish_deny: Vec<ipnet::IpNet>,
    /// `--publish-policy`: the file as given, and the path it is read at (the launch's mount
    /// namespace may not be the daemon's).
    pub publish_policy: Option<(PathBuf, PathBuf)>,
}

impl Config {
    pub fn new(args: &DaemonArgs) -> Self {
        Self {
            state_dir: absolute(&args.state_dir),
            run_dir: absolute(&args.run_dir),
            bpffs: absolute(&args.bpffs),
            uplinks: args.uplink.clone(),
            default_subnet: args.default_subnet,
            default_subnet6: args.default_subnet_v6,
            resolv_conf: absolute(&args.resolv_conf),
            cgroup: args.cgroup.as_deref().map(absolute),
            cgroup_hooks: !args.no_cgroup_hooks,
            group: args.group.clone(),
            nat_entries: args.nat_entries,
            timeouts: Timeouts::with(
                args.nat_timeout_tcp,
                args.nat_timeout_udp,
                args.nat_timeout_icmp,
            ),
            cluster_store: args.cluster_store.clone(),
            advertise_addr: args.advertise_addr,
            cluster_lease_ttl: std::time::Duration::from_secs(args.cluster_lease_ttl),
            publish_allow: args.publish_allow.clone(),
            publish_deny: args.publish_deny.clone(),
            publish_policy: args.publish_policy.as_deref().map(|p| {
                let p = absolute(p);
                (p.clone(), p)
            }),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.run_dir.join("netd.sock")
    }

    pub fn netns_dir(&self) -> PathBuf {
        self.run_dir.join("netns")
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.run_dir.join("containers")
    }
}

/// The directories only one daemon may use at a time, with the flags that name them.
pub fn lock_dirs(config: &Config) -> anyhow::Result<lock::DirLocks> {
    let mut locks = lock::DirLocks::default();
    for (flag, dir) in [
        ("--state-dir", &config.state_dir),
        ("--run-dir", &config.run_dir),
    ] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        locks.lock(flag, dir)?;
    }
    crate::datapath::ensure_bpffs(&config.bpffs)?;
    locks.lock("--bpffs", &config.bpffs)?;
    Ok(locks)
}

/// `path` made absolute against the working directory (left as is if that cannot be read).
fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Everything a request may touch.
pub struct Daemon {
    pub config: Config,
    pub state: State,
    /// The state on disk; `state` equals what it saved between requests.
    pub store: Store,
    pub nl: Netlink,
    pub dp: Datapath,
    /// Interfaces the uplink programs are attached to.
    pub uplinks: Vec<String>,
    /// The embedded DNS server.
    pub dns: Dns,
    /// The cluster store, with `--cluster-store`.
    pub cluster: Option<crate::cluster::Cluster>,
    /// The cluster as the store last said (other hosts' networks and endpoints).
    pub cluster_view: crate::cluster::records::Snapshot,
    /// The store's revision of this daemon's latest change to each overlay network (made or
    /// removed), so that a view older than it does not undo it.
    pub overlay_changes: std::collections::BTreeMap<String, i64>,
    /// The MTU of overlay networks' devices on this host (the underlay's minus VXLAN's).
    pub overlay_mtu: u32,
    /// The host-wide published-port policy in force (from the flags and the policy file).
    pub host_policy: crate::policy::Policy,
    /// This daemon's hold on its directories, released when it exits.
    _locks: lock::DirLocks,
}

impl Daemon {
    /// Brings the daemon up: directories, forwarding, datapath, then reconciles the kernel with
    /// the saved state (adopting what a previous daemon left, reaping what a crash left half-made).
    pub async fn start(config: Config, locks: lock::DirLocks) -> anyhow::Result<Self> {
        let host_policy = config.host_policy()?;
        for dir in [config.netns_dir(), config.containers_dir()] {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        netns::set_sysctl("net.ipv4.ip_forward", "1").context("cannot enable IPv4 forwarding")?;
        let store = Store::open(&config.state_dir)?;
        let state = store.saved().clone();
        let dp = Datapath::open(&config.bpffs, config.nat_entries)
            .context("cannot set up the eBPF datapath")?;
        let nl = Netlink::current()?;
        let resolv_conf = config.resolv_conf.clone();
        let mut daemon = Self {
            config,
            state,
            store,
            nl,
            dp,
            uplinks: vec![],
            dns: Dns::new(resolv_conf),
            cluster: None,
            cluster_view: Default::default(),
            overlay_changes: Default::default(),
            overlay_mtu: 0,
            host_policy,
            _locks: locks,
        };
        daemon
            .join_cluster()
            .await
            .context("cannot join the cluster store")?;
        daemon
            .reconcile()
            .await
            .context("cannot reconcile the saved state with the kernel")?;
        // The policy may have changed while no daemon ran.
        let cut = daemon
            .cut_off()
            .context("cannot check established flows against the publish policy")?;
        if cut > 0 {
            tracing::info!(
                cut,
                "flows the publish policy no longer allows were cut off"
            );
        }
        daemon.refresh_dns();
        Ok(daemon)
    }

    /// Points the DNS server at the current names, containers and gateways.
    pub fn refresh_dns(&mut self) {
        let mut names = Names::from_state(&self.state);
        for (network, e, ip) in self.remote_names() {
            names.add_remote(
                &network,
                &e.container,
                &e.container_id,
                &e.aliases,
                ip.into(),
            );
        }
        // Only containers with a name scope get a listener: the default bridge's many do not
        // cost a path each per request.
        let containers: Vec<(String, PathBuf)> = self
            .state
            .containers
            .values()
            .filter(|c| c.status == Status::Running && c.mode == NetworkMode::Bridge)
            .filter(|c| names.has_scope(&c.name))
            .map(|c| (c.name.clone(), self.netns_path(c)))
            .collect();
        let gateways: Vec<_> = self
            .state
            .networks
            .values()
            // A gateway that is a host address (a bridge's; a macvlan network's is a router
            // outside the host).
            .filter(|n| !n.default && n.bridge().is_some())
            .map(|n| n.gateway)
            .collect();
        self.dns.update(names, &containers, &gateways);
    }

    /// Records the state on disk (the objects that changed).
    pub fn save(&mut self) -> OpResult<()> {
        self.store.commit(&self.state).map_err(OpError::from)
    }

    /// Records the state on disk where only container `name` changed (start, stop, publish: the
    /// requests whose cost must not grow with the number of containers).
    pub fn save_container(&mut self, name: &str) -> OpResult<()> {
        let key = crate::state::store::Key::Container(name.to_string());
        self.store
            .commit_only(&self.state, &[key])
            .map_err(OpError::from)
    }

    /// Puts the state back to what was last saved (after a failed request).
    pub fn restore_saved(&mut self) {
        self.state.clone_from(self.store.saved());
    }

    /// Runs one request. A failed request leaves state and kernel as they were.
    pub async fn handle(&mut self, request: Request) -> OpResult<Reply> {
        debug_assert!(
            self.state == *self.store.saved(),
            "a request found unsaved state changes"
        );
        match request {
            Request::NetworkCreate(req) => self.network_create(req).await,
            Request::NetworkLs => Ok(Reply::Networks(self.network_views(None)?)),
            Request::NetworkInspect { names } => {
                Ok(Reply::Networks(self.network_views(Some(&names))?))
            }
            Request::NetworkRm { names } => self.network_rm(&names).await,
            Request::NetworkConnect {
                network,
                container,
                ip,
                ip6,
                aliases,
                ifname,
                handover,
            } => {
                let attachment = Attachment {
                    network,
                    ip,
                    ip6,
                    aliases,
                    ifname,
                    handover,
                    links: vec![],
                };
                self.network_connect(&container, attachment).await
            }
            Request::NetworkDisconnect { network, container } => {
                self.network_disconnect(&network, &container).await
            }
            Request::ContainerCreate(req) => self.container_create(req),
            Request::ContainerStart { name } => self.container_start(&name).await,
            Request::ContainerStop { name } => self.container_stop(&name).await,
            Request::ContainerRm { name, force } => self.container_rm(&name, force).await,
            Request::ContainerLs => Ok(Reply::Containers(
                self.state
                    .containers
                    .values()
                    .map(|c| self.container_view(c))
                    .collect(),
            )),
            Request::ContainerInspect { name } => Ok(Reply::Containers(vec![
                self.container_view(self.container(&name)?)
            ])),
            Request::ContainerPort { name } => self.container_port(&name),
            Request::ContainerPublish { name, spec, allow } => {
                self.container_publish(&name, &spec, &allow).await
            }
            Request::PolicyShow => self.policy_show(),
            Request::PolicyReload => self.policy_reload(),
            Request::ContainerUnpublish { name, spec } => {
                self.container_unpublish(&name, &spec).await
            }
            Request::Exec { name } => self.exec_info(&name).map(Reply::Exec),
            Request::MapsDump { map } => self.maps_dump(map.as_deref()).map(Reply::Maps),
            Request::Stats { container } => self.stats(container.as_deref()).map(Reply::Stats),
            Request::Explain { from, to, proto } => {
                self.explain(&from, to, proto).await.map(Reply::Explain)
            }
            Request::Check => self.check().await,
            Request::Monitor { .. } => Err(error::invalid(
                "monitor streams; it is served by the socket server",
            )),
        }
    }
}

/// `netd daemon`: start, serve until SIGTERM or SIGINT, leave the datapath running.
pub async fn run(args: &DaemonArgs, mut config: Config) -> anyhow::Result<()> {
    overlay::check_args(&config).await?;
    // A bad policy file stops the daemon before it touches anything.
    config.host_policy()?;
    let locks = lock_dirs(&config)?;
    config.cgroup = hostfs::hook_cgroup(
        config.cgroup.as_deref(),
        config.cgroup_hooks,
        &config.run_dir,
    )?;
    let listener = server::bind(&config.socket(), config.group.as_deref())?;
    let plugin = match &args.docker_plugin {
        Some(path) => Some(docker::Serve {
            engine: crate::docker::engine::socket_of(&args.docker_host)?,
            listener: docker::bind(path)?,
            book: crate::docker::book::Book::open(&config.state_dir)?,
        }),
        None => None,
    };
    let mut daemon = Daemon::start(config, locks).await?;
    daemon.first_sync().await;
    daemon
        .dp
        .set_config(netd_common::CONFIG_DEBUG, args.debug_bpf.into())?;
    daemon
        .dp
        .set_config(netd_common::CONFIG_EVENTS_RATE, args.events_rate)?;
    tracing::info!(socket = %daemon.config.socket().display(), "netd daemon ready");
    server::serve(listener, daemon, args.metrics, plugin).await
}
