//! The embedded DNS server. Every container on a user-defined network gets a server at
//! 127.0.0.11:53 inside its own namespace (UDP and TCP sockets the daemon opens there, so no
//! address translation is needed); each user-defined network's gateway address answers too. The
//! server knows who asks (the namespace a socket lives in, or the source address at a gateway),
//! answers names of the networks the asker is on, and forwards the rest upstream.
pub mod answer;
pub mod names;
pub mod upstream;

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, RwLock,
    },
};

use hickory_proto::op::{Message, ResponseCode};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream, UdpSocket},
    task::JoinHandle,
};

use self::{
    answer::{answer, Answer, Transport, MAX_UDP_PAYLOAD},
    names::Names,
    upstream::Upstream,
};
use crate::netns;

/// Where the server listens inside each container, as Docker's does.
pub const CONTAINER_DNS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// What every query needs: the names, the upstream, the rotation counter.
struct Shared {
    names: RwLock<Names>,
    upstream: Upstream,
    rotation: AtomicUsize,
    counters: Counters,
}

/// What the server has done since the daemon started.
#[derive(Debug, Default)]
pub struct Counters {
    pub queries: AtomicU64,
    pub answered_locally: AtomicU64,
    pub forwarded: AtomicU64,
    pub failures: AtomicU64,
}

/// Who is asking on a listener.
#[derive(Clone)]
enum Asker {
    /// Every query on this listener comes from this container.
    Container(String),
    /// Look the asker up by source address (a gateway listener).
    BySource,
}

/// Sockets of one listener; dropping it stops them.
struct Listener(Vec<JoinHandle<()>>);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.iter().for_each(JoinHandle::abort);
    }
}

pub struct Dns {
    shared: Arc<Shared>,
    listeners: BTreeMap<String, Listener>,
}

impl Dns {
    pub fn new(resolv_conf: PathBuf) -> Self {
        let shared = Shared {
            names: RwLock::new(Names::default()),
            upstream: Upstream::new(resolv_conf),
            rotation: AtomicUsize::new(0),
            counters: Counters::default(),
        };
        Self {
            shared: Arc::new(shared),
            listeners: BTreeMap::new(),
        }
    }

    /// Queries, local answers, forwards and failures so far.
    pub fn counters(&self) -> [u64; 4] {
        let c = &self.shared.counters;
        [&c.queries, &c.answered_locally, &c.forwarded, &c.failures]
            .map(|n| n.load(Ordering::Relaxed))
    }

    /// Makes the names and listeners match: `containers` are (name, namespace file) of running
    /// containers that have a namespace of their own; `gateways` the gateway addresses of
    /// user-defined networks.
    pub fn update(
        &mut self,
        names: Names,
        containers: &[(String, PathBuf)],
        gateways: &[Ipv4Addr],
    ) {
        let mut wanted: BTreeMap<String, (Asker, Target)> = BTreeMap::new();
        for (name, path) in containers.iter().filter(|(name, _)| names.has_scope(name)) {
            let Ok(meta) = std::fs::metadata(path) else {
                continue;
            };
            wanted.insert(
                format!("container {name} {}", meta.ino()),
                (Asker::Container(name.clone()), Target::Netns(path.clone())),
            );
        }
        for gw in gateways {
            wanted.insert(
                format!("gateway {gw}"),
                (Asker::BySource, Target::Host(*gw)),
            );
        }
        *self.shared.names.write().expect("names lock") = names;
        self.listeners.retain(|key, _| wanted.contains_key(key));
        for (key, (asker, target)) in wanted {
            if self.listeners.contains_key(&key) {
                continue;
            }
            match listen(&self.shared, asker, &target) {
                Ok(listener) => {
                    self.listeners.insert(key, listener);
                }
                Err(e) => tracing::warn!(%e, %key, "cannot start a DNS listener"),
            }
        }
    }
}

/// Where a listener's sockets are bound.
enum Target {
    Netns(PathBuf),
    Host(Ipv4Addr),
}

fn listen(shared: &Arc<Shared>, asker: Asker, target: &Target) -> std::io::Result<Listener> {
    let (udp, tcp) = match target {
        Target::Netns(path) => bind_in(path)?,
        Target::Host(ip) => bind(SocketAddr::new((*ip).into(), 53))?,
    };
    let udp = UdpSocket::from_std(udp)?;
    let tcp = TcpListener::from_std(tcp)?;
    let udp_task = tokio::spawn(serve_udp(shared.clone(), asker.clone(), Arc::new(udp)));
    let tcp_task = tokio::spawn(serve_tcp(shared.clone(), asker, tcp));
    Ok(Listener(vec![udp_task, tcp_task]))
}

fn bind(addr: SocketAddr) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let udp = std::net::UdpSocket::bind(addr)?;
    let tcp = std::net::TcpListener::bind(addr)?;
    udp.set_nonblocking(true)?;
    tcp.set_nonblocking(true)?;
    Ok((udp, tcp))
}

/// Binds 127.0.0.11:53 inside the namespace at `path`; the sockets stay there.
fn bind_in(path: &Path) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    netns::run_in(path, || bind(SocketAddr::new(CONTAINER_DNS.into(), 53)))
        .map_err(std::io::Error::other)?
}

impl Shared {
    /// The reply to one query from `source`, which came over `transport`.
    async fn respond(
        &self,
        asker: &Asker,
        source: SocketAddr,
        query: &[u8],
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let who = match (asker, source.ip()) {
            (Asker::Container(name), _) => Some(name.clone()),
            (Asker::BySource, ip) => self.names.read().ok()?.container_at(ip).map(str::to_string),
        };
        let rotation = self.rotation.fetch_add(1, Ordering::Relaxed);
        let decided = {
            let names = self.names.read().ok()?;
            answer(&names, who.as_deref(), query, rotation, transport)
        };
        let c = &self.counters;
        c.queries.fetch_add(1, Ordering::Relaxed);
        match decided {
            Answer::Reply(bytes) => {
                c.answered_locally.fetch_add(1, Ordering::Relaxed);
                Some(bytes)
            }
            Answer::Ignore => {
                c.failures.fetch_add(1, Ordering::Relaxed);
                None
            }
            Answer::Forward => {
                c.forwarded.fetch_add(1, Ordering::Relaxed);
                Some(match self.upstream.forward(query).await {
                    Some(reply) => reply,
                    None => {
                        c.failures.fetch_add(1, Ordering::Relaxed);
                        servfail(query)?
                    }
                })
            }
        }
    }
}

fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let mut resp = Message::error_msg(
        request.metadata.id,
        request.metadata.op_code,
        ResponseCode::ServFail,
    );
    resp.queries = request.queries;
    resp.to_vec().ok()
}

async fn serve_udp(shared: Arc<Shared>, asker: Asker, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; usize::from(MAX_UDP_PAYLOAD)];
    loop {
        let Ok((n, source)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let query = buf[..n].to_vec();
        let (shared, asker, socket) = (shared.clone(), asker.clone(), socket.clone());
        tokio::spawn(async move {
            if let Some(reply) = shared.respond(&asker, source, &query, Transport::Udp).await {
                if let Err(e) = socket.send_to(&reply, source).await {
                    tracing::debug!(%e, %source, "cannot send a DNS reply");
                }
            }
        });
    }
}

async fn serve_tcp(shared: Arc<Shared>, asker: Asker, listener: TcpListener) {
    loop {
        let Ok((stream, source)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_tcp_conn(
            shared.clone(),
            asker.clone(),
            stream,
            source,
        ));
    }
}

/// Length-prefixed queries on one connection, answered in turn.
async fn serve_tcp_conn(
    shared: Arc<Shared>,
    asker: Asker,
    mut stream: TcpStream,
    source: SocketAddr,
) {
    loop {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let mut query = vec![0u8; len as usize];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        let Some(reply) = shared.respond(&asker, source, &query, Transport::Tcp).await else {
            continue;
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        if stream.write_u16(len).await.is_err() || stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}
