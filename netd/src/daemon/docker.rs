//! The Docker plugin socket (`--docker-plugin`): HTTP/1 on a Unix socket (hyper), one handler
//! per method of the remote network driver API. Each handler turns Docker's request into the
//! requests `netd` itself sends ([`crate::docker::plan`]) and runs them on the daemon, which is
//! locked for the whole of one Docker request; the endpoint book is changed under the same lock.
use std::{
    convert::Infallible,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use http_body_util::{BodyExt as _, Full};
use hyper::{
    body::{Bytes, Incoming},
    server::conn::http1,
    service::service_fn,
    Request as HttpRequest, Response, StatusCode,
};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::{net::UnixListener, sync::Mutex};

use super::Daemon;
use crate::{
    api::{ContainerCreate, Reply, Request},
    docker::{
        book::{Book, Endpoint},
        engine::{self, EngineError},
        plan,
        wire::{
            label, CreateEndpoint, CreateEndpointReply, CreateNetwork, EndpointInterface,
            EndpointRef, ExternalConnectivity, InterfaceName, Join, JoinReply, NetworkRef,
            OperInfo, Options,
        },
        PluginError, RUNTIME,
    },
    ipam,
};

/// The plugin: the daemon and the endpoints Docker has made.
pub struct Plugin {
    daemon: Arc<Mutex<Daemon>>,
    book: Mutex<Book>,
}

/// Binds `path` for dockerd (its dir made if missing; a stale socket replaced).
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    use anyhow::Context as _;
    super::server::make_room(path)?;
    UnixListener::bind(path)
        .with_context(|| format!("--docker-plugin: cannot listen on {}", path.display()))
}

impl Plugin {
    pub fn new(daemon: Arc<Mutex<Daemon>>, book: Book) -> Arc<Plugin> {
        Arc::new(Plugin {
            daemon,
            book: Mutex::new(book),
        })
    }
}

/// What `--docker-plugin` serves and follows.
pub struct Serve {
    pub listener: UnixListener,
    pub book: Book,
    /// dockerd's API socket.
    pub engine: PathBuf,
}

/// Starts serving the plugin API and following dockerd's events.
pub fn spawn(serve_it: Serve, daemon: Arc<Mutex<Daemon>>) {
    let plugin = Plugin::new(daemon.clone(), serve_it.book);
    tokio::spawn(async move {
        if let Err(e) = serve(serve_it.listener, plugin).await {
            tracing::error!(%e, "the Docker plugin server stopped");
        }
    });
    tokio::spawn(follow_names(daemon, serve_it.engine));
}

/// Serves dockerd until the daemon stops.
pub async fn serve(listener: UnixListener, plugin: Arc<Plugin>) -> anyhow::Result<()> {
    tracing::info!(socket = ?listener.local_addr()?, "serving Docker's network driver API");
    loop {
        let (stream, _) = listener.accept().await?;
        let plugin = plugin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let plugin = plugin.clone();
                async move { Ok::<_, Infallible>(plugin.respond(req).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%e, "Docker plugin connection failed");
            }
        });
    }
}

impl Plugin {
    async fn respond(&self, req: HttpRequest<Incoming>) -> Response<Full<Bytes>> {
        let method = req.uri().path().trim_start_matches('/').to_string();
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return reply(StatusCode::BAD_REQUEST, json!({ "Err": e.to_string() })),
        };
        tracing::debug!(%method, body = %String::from_utf8_lossy(&body), "Docker plugin request");
        match self.call(&method, &body).await {
            Ok(value) => reply(StatusCode::OK, value),
            // Docker takes a 404 for a method a driver does not have.
            Err(e @ PluginError::NoMethod(_)) => {
                reply(StatusCode::NOT_FOUND, json!({ "Err": e.to_string() }))
            }
            Err(e) => {
                tracing::info!(%method, %e, "Docker plugin request refused");
                reply(StatusCode::OK, json!({ "Err": e.to_string() }))
            }
        }
    }

    async fn call(&self, method: &str, body: &[u8]) -> Result<Value, PluginError> {
        match method {
            "Plugin.Activate" => Ok(json!({ "Implements": ["NetworkDriver"] })),
            "NetworkDriver.GetCapabilities" => {
                Ok(json!({ "Scope": "local", "ConnectivityScope": "local" }))
            }
            "NetworkDriver.CreateNetwork" => self.create_network(parse(body)?).await,
            "NetworkDriver.DeleteNetwork" => self.delete_network(parse(body)?).await,
            "NetworkDriver.CreateEndpoint" => self.create_endpoint(parse(body)?).await,
            "NetworkDriver.DeleteEndpoint" => self.delete_endpoint(parse(body)?).await,
            "NetworkDriver.EndpointOperInfo" => self.oper_info(parse(body)?).await,
            "NetworkDriver.Join" => self.join(parse(body)?).await,
            "NetworkDriver.Leave" => self.leave(parse(body)?).await,
            "NetworkDriver.ProgramExternalConnectivity" => self.program(parse(body)?).await,
            "NetworkDriver.RevokeExternalConnectivity" => self.revoke(parse(body)?).await,
            "NetworkDriver.DiscoverNew" | "NetworkDriver.DiscoverDelete" => Ok(json!({})),
            _ => Err(PluginError::NoMethod(format!("netd has no {method}"))),
        }
    }

    async fn create_network(&self, req: CreateNetwork) -> Result<Value, PluginError> {
        let create = plan::network_create(&req)?;
        let mut daemon = self.daemon.lock().await;
        run(&mut daemon, Request::NetworkCreate(create)).await?;
        Ok(json!({}))
    }

    async fn delete_network(&self, req: NetworkRef) -> Result<Value, PluginError> {
        let mut daemon = self.daemon.lock().await;
        if daemon.network(&req.network_id).is_err() {
            return Ok(json!({}));
        }
        let names = vec![req.network_id];
        run(&mut daemon, Request::NetworkRm { names }).await?;
        Ok(json!({}))
    }

    /// Records the endpoint; netd gives containers the MAC `02:42:` and the address, so it
    /// answers with that MAC when Docker gave none and refuses another.
    async fn create_endpoint(&self, req: CreateEndpoint) -> Result<Value, PluginError> {
        let daemon = self.daemon.lock().await;
        daemon
            .network(&req.network_id)
            .map_err(|e| PluginError::NotFound(e.to_string()))?;
        let address: ipnet::Ipv4Net = req.interface.address.parse().map_err(|_| {
            PluginError::Invalid(format!(
                "netd needs an IPv4 address for the endpoint, not {:?}",
                req.interface.address
            ))
        })?;
        let mac = mac_string(ipam::mac_for(address.addr()));
        let given = &req.interface.mac_address;
        if !given.is_empty() && !given.eq_ignore_ascii_case(&mac) {
            return Err(PluginError::Invalid(format!(
                "netd gives {} the MAC address {mac} (02:42 and the address), not {given}",
                address.addr()
            )));
        }
        let address6 = match req.interface.address_ipv6.as_str() {
            "" => None,
            text => Some(text.parse::<ipnet::Ipv6Net>().map_err(|_| {
                PluginError::Invalid(format!("invalid IPv6 address {text:?} for the endpoint"))
            })?),
        };
        let endpoint = Endpoint {
            network_id: req.network_id,
            address,
            address6,
            mac: mac.clone(),
            sandbox: None,
        };
        self.book.lock().await.put(&req.endpoint_id, endpoint)?;
        let interface = EndpointInterface {
            mac_address: if given.is_empty() { mac } else { String::new() },
            ..Default::default()
        };
        Ok(serde_json::to_value(CreateEndpointReply { interface }).expect("serializable"))
    }

    async fn delete_endpoint(&self, req: EndpointRef) -> Result<Value, PluginError> {
        let _daemon = self.daemon.lock().await;
        self.book.lock().await.remove(&req.endpoint_id)?;
        Ok(json!({}))
    }

    /// Puts the sandbox's container on the network: made and started on the first endpoint,
    /// connected on the next; the veth's container end is left for dockerd to move in.
    async fn join(&self, req: Join) -> Result<Value, PluginError> {
        let mut daemon = self.daemon.lock().await;
        let mut book = self.book.lock().await;
        let mut endpoint = book.get(&req.endpoint_id)?.clone();
        let name = plan::sandbox_name(&req.sandbox_key)?;
        let handover = plan::handover_name(&req.endpoint_id);
        let network = daemon
            .network(&req.network_id)
            .map_err(|e| PluginError::NotFound(e.to_string()))?
            .clone();
        if daemon.state.containers.contains_key(&name) {
            let connect = Request::NetworkConnect {
                network: network.name.clone(),
                container: name.clone(),
                ip: Some(endpoint.address.addr()),
                ip6: endpoint.address6.map(|a| a.addr()),
                aliases: vec![],
                ifname: None,
                handover: Some(handover.clone()),
            };
            run(&mut daemon, connect).await?;
        } else {
            let sandbox = name.trim_start_matches("docker-").to_string();
            let create = ContainerCreate {
                name: name.clone(),
                network: network.name.clone(),
                ip: Some(endpoint.address.addr()),
                ip6: endpoint.address6.map(|a| a.addr()),
                aliases: vec![],
                publish: vec![],
                publish_allow: vec![],
                publish_all: false,
                expose: vec![],
                links: vec![],
                env: vec![],
                hostname: None,
                netns: Some(req.sandbox_key.clone().into()),
                runtime: Some(RUNTIME.into()),
                runtime_id: Some(sandbox),
                ifname: None,
                handover: Some(handover.clone()),
            };
            run(&mut daemon, Request::ContainerCreate(create)).await?;
            let start = Request::ContainerStart { name: name.clone() };
            if let Err(e) = run(&mut daemon, start).await {
                let rm = Request::ContainerRm {
                    name: name.clone(),
                    force: true,
                };
                let _ = run(&mut daemon, rm).await;
                return Err(e);
            }
        }
        endpoint.sandbox = Some(name);
        book.put(&req.endpoint_id, endpoint)?;
        tokio::spawn(dns_when_mounted(
            self.daemon.clone(),
            req.sandbox_key.clone(),
        ));
        let (gateway, gateway_ipv6) = match (network.internal, network.ipv6) {
            (true, _) => (String::new(), String::new()),
            (false, v6) => (
                network.gateway.to_string(),
                v6.map(|v6| v6.gateway.to_string()).unwrap_or_default(),
            ),
        };
        let join = JoinReply {
            interface_name: InterfaceName {
                src_name: handover,
                dst_prefix: "eth".into(),
            },
            gateway,
            gateway_ipv6,
            disable_gateway_service: true,
        };
        Ok(serde_json::to_value(join).expect("serializable"))
    }

    /// Takes the sandbox's container off the network, removing it with its last one.
    async fn leave(&self, req: EndpointRef) -> Result<Value, PluginError> {
        let mut daemon = self.daemon.lock().await;
        let mut book = self.book.lock().await;
        let mut endpoint = book.get(&req.endpoint_id)?.clone();
        let Some(name) = endpoint.sandbox.take() else {
            return Ok(json!({}));
        };
        let networks = daemon
            .state
            .containers
            .get(&name)
            .map_or(0, |c| c.attachments.len());
        let request = match networks {
            0 => None,
            1 => Some(Request::ContainerRm {
                name: name.clone(),
                force: true,
            }),
            _ => Some(Request::NetworkDisconnect {
                network: req.network_id.clone(),
                container: name.clone(),
            }),
        };
        if let Some(request) = request {
            run(&mut daemon, request).await?;
        }
        book.put(&req.endpoint_id, endpoint)?;
        Ok(json!({}))
    }

    /// `-p`: the port map published on the sandbox's container; a failure takes back the ones
    /// published before it.
    async fn program(&self, req: ExternalConnectivity) -> Result<Value, PluginError> {
        let mut daemon = self.daemon.lock().await;
        let name = self.joined(&req.endpoint_id).await?;
        let specs = specs(&req.options)?;
        for (i, spec) in specs.iter().enumerate() {
            let publish = Request::ContainerPublish {
                name: name.clone(),
                spec: spec.clone(),
                allow: vec![],
            };
            if let Err(e) = run(&mut daemon, publish).await {
                for done in &specs[..i] {
                    let unpublish = Request::ContainerUnpublish {
                        name: name.clone(),
                        spec: done.clone(),
                    };
                    let _ = run(&mut daemon, unpublish).await;
                }
                return Err(e);
            }
        }
        Ok(json!({}))
    }

    async fn revoke(&self, req: EndpointRef) -> Result<Value, PluginError> {
        let mut daemon = self.daemon.lock().await;
        let Ok(name) = self.joined(&req.endpoint_id).await else {
            return Ok(json!({}));
        };
        let published = daemon
            .state
            .containers
            .get(&name)
            .map(|c| c.publish.clone())
            .unwrap_or_default();
        for spec in published {
            let unpublish = Request::ContainerUnpublish {
                name: name.clone(),
                spec: spec.to_string(),
            };
            run(&mut daemon, unpublish).await?;
        }
        Ok(json!({}))
    }

    /// The ports netd bound for the endpoint's container, which `docker port` lists.
    async fn oper_info(&self, req: EndpointRef) -> Result<Value, PluginError> {
        let daemon = self.daemon.lock().await;
        let mut value = Options::new();
        if let Ok(name) = self.joined(&req.endpoint_id).await {
            if let Some(c) = daemon.state.containers.get(&name) {
                let map = plan::bound_port_map(&c.ports);
                value.insert(
                    label::PORT_MAP.into(),
                    serde_json::to_value(map).expect("serializable"),
                );
            }
        }
        Ok(serde_json::to_value(OperInfo { value }).expect("serializable"))
    }

    /// The container of the sandbox endpoint `id` joined.
    async fn joined(&self, id: &str) -> Result<String, PluginError> {
        let book = self.book.lock().await;
        book.get(id)?
            .sandbox
            .clone()
            .ok_or_else(|| PluginError::NotFound(format!("endpoint {id} has not joined a sandbox")))
    }
}

/// Follows dockerd's network events (reconnecting when dockerd goes away): netd's network of
/// each Docker network gets Docker's name for it, and netd's container of each Docker container,
/// on each of its netd networks, the names Docker's DNS would answer for it there (its name and
/// aliases, among them its short ID) and its `--link` aliases.
async fn follow_names(daemon: Arc<Mutex<Daemon>>, socket: PathBuf) {
    loop {
        match follow_once(&daemon, &socket).await {
            Ok(()) => tracing::info!("dockerd ended its event stream"),
            Err(e) => tracing::debug!(%e, "following dockerd's events"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn follow_once(daemon: &Arc<Mutex<Daemon>>, socket: &Path) -> Result<(), EngineError> {
    // Subscribed before the networks and containers are read, so that nothing falls between.
    let mut events = engine::network_events(socket).await?;
    tracing::info!(socket = %socket.display(), "following dockerd's events");
    for network in engine::networks(socket).await? {
        name_network(daemon, &network.id, &network.name).await;
    }
    for listed in engine::containers(socket).await? {
        name_container(daemon, socket, &listed.id).await;
    }
    while let Some(event) = events.next().await? {
        let attribute = |key: &str| event.actor.attributes.get(key);
        match (event.kind.as_str(), event.action.as_str()) {
            ("network", "create") => {
                if let Some(name) = attribute("name") {
                    name_network(daemon, &event.actor.id, name).await;
                }
            }
            ("network", "connect") => {
                if let Some(id) = attribute("container") {
                    name_container(daemon, socket, id).await;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

async fn name_network(daemon: &Arc<Mutex<Daemon>>, id: &str, name: &str) {
    let mut daemon = daemon.lock().await;
    match daemon.name_docker_network(id, name) {
        Ok(true) => {
            tracing::info!(network = %name, %id, "named as in Docker");
            daemon.refresh_dns();
            daemon.refresh_link_hosts();
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(%e, network = %name, "cannot give netd's network Docker's name"),
    }
}

async fn name_container(daemon: &Arc<Mutex<Daemon>>, socket: &Path, id: &str) {
    let container = match engine::inspect(socket, id).await {
        Ok(c) => c,
        Err(e) => return tracing::debug!(%e, %id, "cannot inspect a Docker container"),
    };
    let Ok(netd_name) = plan::sandbox_name(&container.network_settings.sandbox_key) else {
        return;
    };
    let name = container.name.trim_start_matches('/');
    let mut daemon = daemon.lock().await;
    for settings in container.network_settings.networks.values() {
        let names = plan::docker_names(name, settings.aliases.as_deref().unwrap_or_default());
        let links = settings.links.clone().unwrap_or_default();
        if let Err(e) = daemon.set_docker_names(&netd_name, &settings.network_id, names, links) {
            tracing::warn!(%e, container = %name, "cannot record a Docker container's names");
        }
    }
    daemon.refresh_dns();
    daemon.refresh_link_hosts();
}

impl Daemon {
    /// Calls the netd network of Docker network `id` by Docker's `name` for it; `false` if
    /// netd has no such network or already calls it that.
    fn name_docker_network(&mut self, id: &str, name: &str) -> super::error::OpResult<bool> {
        let Some(old) = self
            .state
            .networks
            .values()
            .find(|n| n.id == id)
            .map(|n| n.name.clone())
        else {
            return Ok(false);
        };
        if old == name {
            return Ok(false);
        }
        super::validate::name("network", name)?;
        if !self.state.rename_network(&old, name) {
            return Err(super::error::conflict(format!(
                "netd has another network called {name}; Docker's stays {old} in netd"
            )));
        }
        if let Err(e) = self.save() {
            self.restore_saved();
            return Err(e);
        }
        Ok(true)
    }

    /// `names` as the aliases and `links` as the links of container `container` on network
    /// `network_id`; nothing if either is not netd's.
    fn set_docker_names(
        &mut self,
        container: &str,
        network_id: &str,
        names: Vec<String>,
        links: Vec<String>,
    ) -> super::error::OpResult<()> {
        let Ok(network) = self.network(network_id).map(|n| n.name.clone()) else {
            return Ok(());
        };
        let Some(c) = self.state.containers.get_mut(container) else {
            return Ok(());
        };
        let Some(a) = c.attachments.iter_mut().find(|a| a.network == network) else {
            return Ok(());
        };
        if a.aliases == names && a.links == links {
            return Ok(());
        }
        a.aliases = names;
        a.links = links;
        self.save_container(container)
    }
}

/// dockerd mounts the sandbox's namespace when the container starts, after `Join`: once it is
/// there, the DNS server listens inside.
async fn dns_when_mounted(daemon: Arc<Mutex<Daemon>>, key: String) {
    for _ in 0..1500 {
        if crate::netns::check(Path::new(&key)).is_ok() {
            daemon.lock().await.refresh_dns();
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tracing::warn!(%key, "the sandbox's namespace did not appear in 30 s; no DNS there");
}

/// One request on the daemon, with what the socket server does after each.
async fn run(daemon: &mut Daemon, request: Request) -> Result<Reply, PluginError> {
    let result = daemon.handle(request).await;
    daemon.refresh_dns();
    daemon.refresh_link_hosts();
    result.map_err(|e| PluginError::Daemon(e.to_string()))
}

fn specs(options: &Options) -> Result<Vec<String>, PluginError> {
    plan::port_map(options)?
        .iter()
        .map(plan::publish_spec)
        .collect()
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, PluginError> {
    serde_json::from_slice(body)
        .map_err(|e| PluginError::Invalid(format!("cannot read the request: {e}")))
}

fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/vnd.docker.plugins.v1+json"),
    );
    resp
}
