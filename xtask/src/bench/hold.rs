//! Long-lived connections for the load phase (issue 12), on tokio so that one process holds
//! tens of thousands of them: run as `xtask bench --helper hold-serve PORT` and
//! `xtask bench --helper hold ADDR CONNS SECS INTERVAL_MS` inside the benchmark's namespaces.
//!
//! The protocol is a ping with a check: the client writes an 8-byte sequence number and the
//! server answers with its bitwise complement, so a reply from another flow, or a stale one, is
//! noticed. The client opens all its connections (a bounded number of connects in flight), prints
//! a `ready` line with the setup time, then has every connection exchange one ping per interval
//! (their phases spread over the interval) until the hold time is over, and prints a `done` line:
//! how many exchanges completed and how many connections broke, by cause, with the local ports of
//! those that broke. A connection stops at its first failure, so each is counted once.

use std::{
    collections::BTreeMap,
    io::{ErrorKind, Write as _},
    net::SocketAddr,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpSocket, TcpStream},
    sync::Semaphore,
    task::JoinSet,
    time,
};

const LISTEN_BACKLOG: u32 = 4096;
/// A connect may see its SYN retransmitted once or twice on a loaded machine.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECTS_IN_FLIGHT: usize = 256;
/// Most file descriptors a process may have (the kernel's default `fs.nr_open`).
const NOFILE: u64 = 1 << 20;

/// Why a connection did not open or stopped working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    Connect,
    ConnectTimeout,
    Reset,
    Timeout,
    WrongReply,
    Closed,
    Other,
}

impl Failure {
    pub fn name(self) -> &'static str {
        match self {
            Failure::Connect => "connect_error",
            Failure::ConnectTimeout => "connect_timeout",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::WrongReply => "wrong_reply",
            Failure::Closed => "closed",
            Failure::Other => "other",
        }
    }

    fn of(e: &std::io::Error) -> Self {
        match e.kind() {
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted => {
                Failure::Reset
            }
            ErrorKind::UnexpectedEof => Failure::Closed,
            ErrorKind::TimedOut => Failure::Timeout,
            _ => Failure::Other,
        }
    }
}

/// The server's answer to `seq`.
pub fn answer(seq: u64) -> u64 {
    !seq
}

/// Raises this process's open-file limit as far as it may: to the kernel's `fs.nr_open` with
/// CAP_SYS_RESOURCE, else to the hard limit. Returns the soft limit now in force.
fn raise_nofile() -> Result<u64> {
    let max = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NOFILE);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error()).context("read RLIMIT_NOFILE");
        }
        let all = libc::rlimit {
            rlim_cur: max.max(lim.rlim_max),
            rlim_max: max.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &all) == 0 {
            return Ok(all.rlim_cur);
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return Err(std::io::Error::last_os_error()).context("raise RLIMIT_NOFILE");
        }
    }
    Ok(lim.rlim_cur)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")
}

/// `hold-serve PORT`: answers every ping on every connection until killed.
pub fn serve(port: u16) -> Result<ExitCode> {
    raise_nofile()?;
    runtime()?.block_on(async move {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from(([0, 0, 0, 0], port)))?;
        let listener = socket.listen(LISTEN_BACKLOG)?;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(answer_pings(stream));
                }
                // Out of file descriptors or memory: say so, and go on with the others.
                Err(e) => {
                    eprintln!("hold-serve: accept: {e}");
                    time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
}

async fn answer_pings(mut stream: TcpStream) {
    stream.set_nodelay(true).ok();
    let mut buf = [0u8; 8];
    while stream.read_exact(&mut buf).await.is_ok() {
        let reply = answer(u64::from_be_bytes(buf)).to_be_bytes();
        if stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}

async fn open(addr: SocketAddr) -> Result<TcpStream, Failure> {
    match time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Err(_) => Err(Failure::ConnectTimeout),
        Ok(Err(_)) => Err(Failure::Connect),
        Ok(Ok(s)) => {
            s.set_nodelay(true).ok();
            Ok(s)
        }
    }
}

/// One ping; its round trip.
async fn ping(stream: &mut TcpStream, seq: u64) -> Result<Duration, Failure> {
    let sent = Instant::now();
    stream
        .write_all(&seq.to_be_bytes())
        .await
        .map_err(|e| Failure::of(&e))?;
    let mut buf = [0u8; 8];
    match time::timeout(REPLY_TIMEOUT, stream.read_exact(&mut buf)).await {
        Err(_) => Err(Failure::Timeout),
        Ok(Err(e)) => Err(Failure::of(&e)),
        Ok(Ok(_)) if u64::from_be_bytes(buf) != answer(seq) => Err(Failure::WrongReply),
        Ok(Ok(_)) => Ok(sent.elapsed()),
    }
}

/// What one held connection did.
struct Held {
    /// The connection's local port, to find its NAT entries.
    port: u16,
    exchanges: u64,
    rtt_us: Vec<u32>,
    failure: Option<Failure>,
}

/// Pings every `interval` (starting at `offset`) until `until`, or the first failure.
async fn keep(
    mut stream: TcpStream,
    id: u64,
    offset: Duration,
    interval: Duration,
    until: time::Instant,
) -> Held {
    let mut held = Held {
        port: stream.local_addr().map_or(0, |a| a.port()),
        exchanges: 0,
        rtt_us: Vec::new(),
        failure: None,
    };
    let mut next = time::Instant::now() + offset;
    let mut seq = id << 32;
    while next < until {
        time::sleep_until(next).await;
        match ping(&mut stream, seq).await {
            Ok(rtt) => {
                held.exchanges += 1;
                held.rtt_us
                    .push(rtt.as_micros().min(u32::MAX as u128) as u32);
            }
            Err(f) => {
                held.failure = Some(f);
                return held;
            }
        }
        seq += 1;
        next += interval;
    }
    held
}

fn print(line: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").ok();
    out.flush().ok();
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

/// `hold ADDR CONNS SECS INTERVAL_MS`.
pub fn hold(addr: SocketAddr, conns: usize, secs: f64, interval_ms: u64) -> Result<ExitCode> {
    let nofile = raise_nofile()?;
    anyhow::ensure!(
        conns as u64 + 64 <= nofile,
        "{conns} connections need more file descriptors than the limit of {nofile}"
    );
    runtime()?.block_on(async move {
        let start = Instant::now();
        let slots = Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT));
        let mut opening = JoinSet::new();
        for _ in 0..conns {
            let permit = Arc::clone(&slots).acquire_owned().await?;
            opening.spawn(async move {
                let r = open(addr).await;
                drop(permit);
                r
            });
        }
        let mut streams = Vec::with_capacity(conns);
        let mut failures: BTreeMap<&'static str, u64> = BTreeMap::new();
        while let Some(r) = opening.join_next().await {
            match r? {
                Ok(s) => streams.push(s),
                Err(f) => *failures.entry(f.name()).or_default() += 1,
            }
        }
        let setup = start.elapsed().as_secs_f64();
        let opened = streams.len();
        print(
            json!({"event": "ready", "opened": opened, "setup_secs": setup, "failures": failures}),
        );

        let interval = Duration::from_millis(interval_ms.max(1));
        let until = time::Instant::now() + Duration::from_secs_f64(secs);
        let mut holding = JoinSet::new();
        for (i, s) in streams.into_iter().enumerate() {
            let offset = interval.mul_f64(i as f64 / opened.max(1) as f64);
            holding.spawn(keep(s, i as u64, offset, interval, until));
        }
        let (mut exchanges, mut rtt, mut broken) = (0u64, Vec::new(), Vec::new());
        while let Some(h) = holding.join_next().await {
            let h = h?;
            exchanges += h.exchanges;
            rtt.extend(h.rtt_us);
            if let Some(f) = h.failure {
                broken.push(h.port);
                *failures.entry(f.name()).or_default() += 1;
            }
        }
        rtt.sort_unstable();
        print(json!({
            "event": "done", "opened": opened, "setup_secs": setup, "broken": broken.len(),
            "broken_ports": broken,
            "exchanges": exchanges, "failures": failures,
            "rtt_p50_ms": percentile(&rtt, 0.5), "rtt_p99_ms": percentile(&rtt, 0.99),
            "rtt_max_ms": percentile(&rtt, 1.0),
        }));
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_tells_sequence_numbers_apart() {
        assert_ne!(answer(1), answer(2));
        assert_ne!(answer(7), 7);
        assert_eq!(answer(answer(42)), 42);
    }

    #[test]
    fn a_reset_and_an_early_close_are_told_apart() {
        let reset = std::io::Error::from(ErrorKind::ConnectionReset);
        let eof = std::io::Error::from(ErrorKind::UnexpectedEof);
        assert_eq!(Failure::of(&reset), Failure::Reset);
        assert_eq!(Failure::of(&eof), Failure::Closed);
    }

    #[test]
    fn held_connections_answer_over_loopback_and_a_dead_server_is_noticed() {
        let rt = runtime().unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (s, _) = listener.accept().await.unwrap();
                answer_pings(s).await;
            });
            let mut s = open(addr).await.unwrap();
            assert!(ping(&mut s, 5).await.is_ok());
            server.abort();
            let _ = server.await;
            // The aborted task dropped its socket: the next ping finds the connection gone.
            let f = ping(&mut s, 6).await.unwrap_err();
            assert!(matches!(f, Failure::Reset | Failure::Closed), "{f:?}");
        });
    }
}
