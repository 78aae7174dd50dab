//! The socket server: one JSON request per connection (read to end of input), one JSON reply.
//! Requests run one at a time, so each sees and leaves a consistent state.
use std::{path::Path, sync::Arc};

use anyhow::{anyhow, Context as _};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{UnixListener, UnixStream},
    signal::unix::{signal, SignalKind},
    sync::Mutex,
};

use aya::maps::{MapData, RingBuf};
use netd_common::{CONFIG_EVENTS, EVENTS_DROPS, EVENTS_FLOWS};
use tokio::{io::unix::AsyncFd, sync::broadcast};

use super::{maps::monotonic_ns, observe, Daemon};
use crate::{
    api::{decode_request, Reply, Request, Response, MAX_REQUEST},
    dns::names::Names,
};

/// The daemon and the events the datapath reports.
struct Shared {
    daemon: Arc<Mutex<Daemon>>,
    events: broadcast::Sender<observe::RingEvent>,
}

/// How often a monitor connection is checked for a client that went away.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);

/// How often expired flows are removed and host addresses refreshed.
const HOUSEKEEPING: std::time::Duration = std::time::Duration::from_secs(5);

/// Binds the socket, refusing to start if another daemon answers on it. The socket is root's
/// alone (0600), or also `group`'s (0660) when one is named, from the moment it exists.
pub fn bind(path: &Path, group: Option<&str>) -> anyhow::Result<UnixListener> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(anyhow!(
            "another netd daemon is already serving {}",
            path.display()
        ));
    }
    let gid = group.map(group_id).transpose()?;
    make_room(path)?;
    // The mode a socket is created with comes from the umask alone; no other thread creates
    // files while the daemon starts.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = listener.with_context(|| format!("cannot listen on {}", path.display()))?;
    if let Some(gid) = gid {
        use std::os::unix::fs::PermissionsExt as _;
        std::os::unix::fs::chown(path, None, Some(gid.as_raw()))
            .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)))
            .with_context(|| {
                format!(
                    "cannot give {} to group {}",
                    path.display(),
                    group.unwrap_or_default()
                )
            })?;
    }
    Ok(listener)
}

/// The socket's dir made if missing, and a stale socket at `path` removed.
pub(super) fn make_room(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove stale {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn group_id(name: &str) -> anyhow::Result<nix::unistd::Gid> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => Err(anyhow!("--group {name}: no such group")),
        Err(e) => Err(anyhow!("--group {name}: {e}")),
    }
}

/// Serves until SIGTERM or SIGINT. The datapath stays in place; a new daemon adopts it.
pub async fn serve(
    listener: UnixListener,
    mut daemon: Daemon,
    metrics: Option<std::net::SocketAddr>,
    docker: Option<super::docker::Serve>,
) -> anyhow::Result<()> {
    let (events, _) = broadcast::channel::<observe::RingEvent>(4096);
    let ring = daemon
        .dp
        .take_events()
        .context("cannot read the datapath's events (what `netd monitor` shows)")?;
    tokio::spawn(read_events(ring, events.clone()));
    match daemon.dp.take_logger() {
        Ok(logger) => {
            tokio::spawn(read_logs(logger));
        }
        Err(e) => tracing::warn!(%e, "no eBPF log records"),
    }
    let cluster = daemon.cluster.clone();
    let shared = Arc::new(Shared {
        daemon: Arc::new(Mutex::new(daemon)),
        events,
    });
    if let Some(cluster) = cluster {
        tokio::spawn(super::overlay::follow(cluster, shared.daemon.clone()));
    }
    if let Some(addr) = metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        let daemon = shared.daemon.clone();
        tokio::spawn(async move {
            if let Err(e) = super::metrics::serve(listener, daemon).await {
                tracing::error!(%e, "the metrics server stopped");
            }
        });
    }
    if let Some(docker) = docker {
        super::docker::spawn(docker, shared.daemon.clone());
    }
    let daemon = shared.clone();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let sweeper = daemon.daemon.lock().await.nat_sweeper()?;
    tokio::spawn(sweep_nat(sweeper));
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    loop {
        tokio::select! {
            _ = housekeeping.tick() => if let Err(e) = daemon.daemon.lock().await.tick().await {
                tracing::warn!(%e, "housekeeping failed");
            },
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                let daemon = daemon.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_one(stream, daemon).await {
                        tracing::warn!(%e, "client connection failed");
                    }
                });
            }
            _ = hup.recv() => match daemon.daemon.lock().await.policy_reload() {
                Ok(_) => tracing::info!("SIGHUP: the publish policy file was read again"),
                Err(e) => tracing::error!(%e, "SIGHUP: the publish policy stays as it was"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    // Wait for a request in flight, then leave; the socket file stays for the next daemon.
    let _daemon = daemon.daemon.lock().await;
    tracing::info!("netd daemon stopping; the datapath stays in place");
    Ok(())
}

async fn serve_one(mut stream: UnixStream, shared: Arc<Shared>) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    // One byte more than a request may have, so that a longer one is seen and refused.
    (&mut stream)
        .take(MAX_REQUEST as u64 + 1)
        .read_to_end(&mut buf)
        .await?;
    let response: Response = match decode_request(&buf) {
        Ok(Request::Monitor {
            container,
            port,
            drops_only,
        }) => {
            return monitor(stream, shared, container, port, drops_only).await;
        }
        Ok(request) => {
            tracing::debug!(?request, "request");
            let mut daemon = shared.daemon.lock().await;
            let names_may_change = Names::may_change(&daemon.state, &request);
            let result = daemon.handle(request).await.map_err(|e| e.to_string());
            if names_may_change {
                daemon.refresh_dns();
            }
            daemon.refresh_link_hosts();
            result
        }
        Err(e) => Err(e),
    };
    stream.write_all(&serde_json::to_vec(&response)?).await?;
    stream.shutdown().await?;
    Ok(())
}

/// Moves events from the ring buffer to every monitor.
async fn read_events(ring: RingBuf<MapData>, tx: broadcast::Sender<observe::RingEvent>) {
    // SAFETY: the ring buffer owns its fd for as long as the AsyncFd lives, and nothing else
    // closes it.
    let Ok(mut fd) = (unsafe { AsyncFd::register(ring) }) else {
        return;
    };
    loop {
        let Ok(mut guard) = fd.readable_mut().await else {
            return;
        };
        let ring = guard.get_inner_mut();
        while let Some(item) = ring.next() {
            if let Some(event) = observe::RingEvent::decode(&item) {
                // Nobody listening is fine: the programs only write while someone is.
                let _ = tx.send(event);
            }
        }
        guard.clear_ready();
    }
}

/// `netd monitor`: turns events on, streams the wanted ones as JSON lines (an empty line now and
/// then to notice a client that left), and turns them off when the last monitor goes.
async fn monitor(
    mut stream: UnixStream,
    shared: Arc<Shared>,
    container: Option<String>,
    port: Option<u16>,
    drops_only: bool,
) -> anyhow::Result<()> {
    let container = match &container {
        Some(c) => match shared.daemon.lock().await.container(c) {
            Ok(c) => Some(c.name.clone()),
            Err(e) => {
                let response: Response = Err(e.to_string());
                return Ok(stream.write_all(&serde_json::to_vec(&response)?).await?);
            }
        },
        None => None,
    };
    let mut rx = shared.events.subscribe();
    set_events(&shared, EVENTS_DROPS | EVENTS_FLOWS).await;
    let result = stream_events(
        &mut stream,
        &shared,
        &mut rx,
        container.as_deref(),
        port,
        drops_only,
    )
    .await;
    drop(rx);
    if shared.events.receiver_count() == 0 {
        set_events(&shared, 0).await;
    }
    result
}

async fn stream_events(
    stream: &mut UnixStream,
    shared: &Shared,
    rx: &mut broadcast::Receiver<observe::RingEvent>,
    container: Option<&str>,
    port: Option<u16>,
    drops_only: bool,
) -> anyhow::Result<()> {
    let accepted: Response = Ok(Reply::Done);
    stream.write_all(&serde_json::to_vec(&accepted)?).await?;
    stream.write_all(b"\n").await?;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Ok(e) => {
                    let view = shared.daemon.lock().await.event_view(&e, monotonic_ns(), wall_clock());
                    if observe::wanted(&view, &e, container, port, drops_only) {
                        let mut line = serde_json::to_vec(&view)?;
                        line.push(b'\n');
                        stream.write_all(&line).await?;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => tracing::debug!(n, "a monitor fell behind"),
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            _ = heartbeat.tick() => stream.write_all(b"\n").await?,
        }
    }
}

async fn set_events(shared: &Shared, bits: u64) {
    if let Err(e) = shared
        .daemon
        .lock()
        .await
        .dp
        .set_config(CONFIG_EVENTS, bits)
    {
        tracing::warn!(%e, "cannot switch datapath events");
    }
}

/// Expires NAT entries every [`HOUSEKEEPING`], off the daemon's lock and the async workers.
async fn sweep_nat(mut sweeper: super::flows::NatSweeper) {
    let mut every = tokio::time::interval(HOUSEKEEPING);
    loop {
        every.tick().await;
        let swept = tokio::task::spawn_blocking(move || {
            let result = sweeper.sweep();
            give_back_freed_memory();
            (sweeper, result)
        })
        .await;
        let Ok((back, result)) = swept else {
            tracing::error!("the NAT sweeper panicked; flows no longer expire");
            return;
        };
        sweeper = back;
        match result {
            Ok(0) => {}
            Ok(n) => tracing::debug!(expired = n, "NAT entries expired"),
            Err(e) => tracing::warn!(%e, "NAT sweep failed"),
        }
    }
}

/// Returns the heap's free pages to the kernel. glibc keeps what a burst freed (a large
/// publish, a DNS or monitor load, the sweep's own tables) in its arenas, so the daemon's RSS
/// would stay at its peak; trimming in the sweeper's thread, outside the daemon's lock, costs
/// requests nothing.
fn give_back_freed_memory() {
    // SAFETY: malloc_trim only walks and shrinks the allocator's own arenas.
    unsafe { libc::malloc_trim(0) };
}

fn wall_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Forwards the programs' aya-log records to the daemon's log.
async fn read_logs(logger: aya_log::EbpfLogger<&'static dyn log::Log>) {
    // SAFETY: the logger owns its ring buffer fd for as long as the AsyncFd lives.
    let Ok(mut fd) = (unsafe { AsyncFd::register(logger) }) else {
        return;
    };
    loop {
        let Ok(mut guard) = fd.readable_mut().await else {
            return;
        };
        guard.get_inner_mut().flush();
        guard.clear_ready();
    }
}
