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

use super::Daemon;
use crate::api::{Request, Response};

/// How often expired flows are removed and host addresses refreshed.
const HOUSEKEEPING: std::time::Duration = std::time::Duration::from_secs(5);

/// Largest request accepted.
const MAX_REQUEST: u64 = 1 << 20;

/// Binds the socket, refusing to start if another daemon answers on it.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(anyhow!(
            "another netd daemon is already serving {}",
            path.display()
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove stale {}", path.display()))
        }
        _ => {}
    }
    UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))
}

/// Serves until SIGTERM or SIGINT. The datapath stays in place; a new daemon adopts it.
pub async fn serve(listener: UnixListener, daemon: Daemon) -> anyhow::Result<()> {
    let daemon = Arc::new(Mutex::new(daemon));
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    loop {
        tokio::select! {
            _ = housekeeping.tick() => match daemon.lock().await.tick().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(expired = n, "NAT entries expired"),
                Err(e) => tracing::warn!(%e, "housekeeping failed"),
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
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    // Wait for a request in flight, then leave; the socket file stays for the next daemon.
    let _daemon = daemon.lock().await;
    tracing::info!("netd daemon stopping; the datapath stays in place");
    Ok(())
}

async fn serve_one(mut stream: UnixStream, daemon: Arc<Mutex<Daemon>>) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    (&mut stream)
        .take(MAX_REQUEST)
        .read_to_end(&mut buf)
        .await?;
    let response: Response = match serde_json::from_slice::<Request>(&buf) {
        Ok(request) => {
            tracing::debug!(?request, "request");
            let mut daemon = daemon.lock().await;
            let result = daemon.handle(request).await.map_err(|e| e.to_string());
            daemon.refresh_dns();
            daemon.refresh_link_hosts();
            result
        }
        Err(e) => Err(format!("malformed request: {e}")),
    };
    stream.write_all(&serde_json::to_vec(&response)?).await?;
    stream.shutdown().await?;
    Ok(())
}
