//! Forwarding what netd does not own to the upstream servers of the daemon's resolv.conf, from
//! the daemon's namespace: each server in turn with a timeout, and a bound on queries in flight
//! so that a flood cannot exhaust the daemon.
use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use tokio::{net::UdpSocket, sync::Semaphore, time::timeout};

/// How long one upstream server gets to answer.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Queries forwarded at once; more are answered with SERVFAIL.
const IN_FLIGHT: usize = 256;

pub struct Upstream {
    resolv_conf: PathBuf,
    in_flight: Arc<Semaphore>,
}

/// The `nameserver` addresses of a resolv.conf text.
pub fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next()?.parse().ok())
                .flatten()
        })
        .collect()
}

impl Upstream {
    pub fn new(resolv_conf: PathBuf) -> Self {
        Self {
            resolv_conf,
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
        }
    }

    /// The upstream answer to `query`, or `None` if no server answered (or too many queries are
    /// in flight). The file is read per query, so edits take effect at once.
    pub async fn forward(&self, query: &[u8]) -> Option<Vec<u8>> {
        let _permit = self.in_flight.clone().try_acquire_owned().ok()?;
        let text = tokio::fs::read_to_string(&self.resolv_conf).await.ok()?;
        for server in nameservers(&text) {
            match ask(SocketAddr::new(server, 53), query).await {
                Some(reply) => return Some(reply),
                None => tracing::debug!(%server, "upstream DNS server did not answer"),
            }
        }
        None
    }
}

/// One query to one server over UDP; the reply must carry the query's ID.
async fn ask(server: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .ok()?;
    let socket = UdpSocket::bind(bind).await.ok()?;
    socket.connect(server).await.ok()?;
    socket.send(query).await.ok()?;
    let mut buf = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let n = timeout(
            deadline.saturating_duration_since(tokio::time::Instant::now()),
            socket.recv(&mut buf),
        )
        .await
        .ok()?
        .ok()?;
        if n >= 2 && buf[..2] == query[..2] {
            buf.truncate(n);
            return Some(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_are_read_in_order_and_junk_is_skipped() {
        let text = "# comment\nsearch example.org\nnameserver 10.99.0.1\nnameserver bogus\nnameserver ::1\n";
        assert_eq!(
            nameservers(text),
            [
                "10.99.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
    }
}
