//! Small load generators and a server that `cargo xtask bench` runs inside the benchmark's
//! namespaces as `xtask bench --helper MODE ARGS...` (a copy of the xtask binary, so that a rebuild
//! during the run changes nothing). Each prints one JSON line.
//!
//! - `serve PORT`: answers every TCP connection with 64 bytes once it has read the request, then
//!   closes it (the server closes first, so TIME_WAIT stays on the server side).
//! - `connect ADDR SECS THREADS`: short connections in a loop (connect, send 16 bytes, read the
//!   answer to EOF, close); prints how many completed.
//! - `probe ADDR`: waits up to 10 s for one such exchange to succeed (is the path up?).
//! - `dns ADDR NAME SECS THREADS [BIND_IP]`: closed-loop DNS A queries over UDP (one outstanding
//!   per thread); prints answered queries, losses and the latency percentiles.
//! - `resolve ADDR NAME PORT SECS`: asks the DNS server ADDR for NAME every few milliseconds and
//!   tries a short connection to the answer's address on PORT, until one succeeds (for at most
//!   SECS); prints when, as nanoseconds since the Unix epoch (the overlay phase's
//!   create-and-resolve rounds, [`super::overlay`]).
//! - `hold-serve PORT` and `hold ADDR CONNS SECS INTERVAL_MS`: long-lived connections with a
//!   periodic checked ping, for the load phase ([`super::hold`]).

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    process::ExitCode,
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use serde_json::json;

/// The answer the server writes.
const ANSWER: [u8; 64] = [b'a'; 64];
const REQUEST: [u8; 16] = [b'q'; 16];
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs one helper mode; `args[0]` is the mode.
pub fn main(args: &[String]) -> Result<ExitCode> {
    let arg = |i: usize| -> Result<&str> {
        args.get(i)
            .map(String::as_str)
            .with_context(|| format!("helper {args:?}: argument {i} missing"))
    };
    match arg(0)? {
        "serve" => serve(arg(1)?.parse()?),
        "connect" => connect(arg(1)?.parse()?, arg(2)?.parse()?, arg(3)?.parse()?),
        "probe" => probe(arg(1)?.parse()?),
        "hold-serve" => super::hold::serve(arg(1)?.parse()?),
        "hold" => super::hold::hold(
            arg(1)?.parse()?,
            arg(2)?.parse()?,
            arg(3)?.parse()?,
            arg(4)?.parse()?,
        ),
        "dns" => dns(
            arg(1)?.parse()?,
            arg(2)?,
            arg(3)?.parse()?,
            arg(4)?.parse()?,
            args.get(5).map(|s| s.parse()).transpose()?,
        ),
        "resolve" => resolve(
            arg(1)?.parse()?,
            arg(2)?,
            arg(3)?.parse()?,
            arg(4)?.parse()?,
        ),
        other => bail!("unknown helper mode {other}"),
    }
}

fn serve(port: u16) -> Result<ExitCode> {
    let listener = Arc::new(TcpListener::bind(("0.0.0.0", port))?);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let listener = Arc::clone(&listener);
            thread::spawn(move || loop {
                if let Ok((mut stream, _)) = listener.accept() {
                    stream.set_read_timeout(Some(IO_TIMEOUT)).ok();
                    let mut buf = [0u8; 64];
                    if matches!(stream.read(&mut buf), Ok(n) if n > 0) {
                        stream.write_all(&ANSWER).ok();
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().ok();
    }
    Ok(ExitCode::SUCCESS)
}

/// One short connection; whether it got the whole answer.
fn exchange(addr: SocketAddr) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(&REQUEST)?;
    let mut buf = Vec::with_capacity(64);
    stream.read_to_end(&mut buf)?;
    Ok(buf.len() == ANSWER.len())
}

fn connect(addr: SocketAddr, secs: f64, threads: usize) -> Result<ExitCode> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            thread::spawn(move || {
                let (mut ok, mut errors) = (0u64, 0u64);
                while Instant::now() < deadline {
                    match exchange(addr) {
                        Ok(true) => ok += 1,
                        _ => {
                            errors += 1;
                            thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
                (ok, errors)
            })
        })
        .collect();
    let (mut ok, mut errors) = (0, 0);
    for w in workers {
        let (o, e) = w.join().unwrap_or((0, 1));
        ok += o;
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"conns": ok, "errors": errors, "secs": elapsed, "rate": ok as f64 / elapsed})
    );
    Ok(ExitCode::SUCCESS)
}

fn probe(addr: SocketAddr) -> Result<ExitCode> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while Instant::now() < deadline {
        match exchange(addr) {
            Ok(true) => return Ok(ExitCode::SUCCESS),
            Ok(false) => last = "short answer".into(),
            Err(e) => last = e.to_string(),
        }
        thread::sleep(Duration::from_millis(100));
    }
    bail!("{addr} does not answer: {last}")
}

/// A DNS query for `name` A IN with recursion desired.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The first A record's address in `reply`, an answer to query `id`.
fn first_a(reply: &[u8], id: u16) -> Option<std::net::Ipv4Addr> {
    if reply.len() < 12 || reply[..2] != id.to_be_bytes() || reply[3] & 0x0f != 0 {
        return None;
    }
    let count = |at: usize| usize::from(u16::from_be_bytes([reply[at], reply[at + 1]]));
    let (questions, answers) = (count(4), count(6));
    let mut at = 12;
    // A name: labels up to a zero byte, or a compression pointer (two bytes) at the end.
    let skip_name = |mut at: usize| -> Option<usize> {
        loop {
            let len = *reply.get(at)?;
            match len {
                0 => return Some(at + 1),
                l if l & 0xc0 == 0xc0 => return Some(at + 2),
                l => at += 1 + usize::from(l),
            }
        }
    };
    for _ in 0..questions {
        at = skip_name(at)? + 4;
    }
    for _ in 0..answers {
        at = skip_name(at)?;
        let fixed = reply.get(at..at + 10)?;
        let (rtype, rdlen) = (
            u16::from_be_bytes([fixed[0], fixed[1]]),
            usize::from(u16::from_be_bytes([fixed[8], fixed[9]])),
        );
        at += 10;
        let data = reply.get(at..at + rdlen)?;
        if rtype == 1 && rdlen == 4 {
            return Some(std::net::Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += rdlen;
    }
    None
}

/// How long `resolve` waits for one DNS answer, and between two attempts.
const RESOLVE_TIMEOUT: Duration = Duration::from_millis(20);
const RESOLVE_PAUSE: Duration = Duration::from_millis(3);

fn resolve(server: SocketAddr, name: &str, port: u16, secs: f64) -> Result<ExitCode> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.connect(server)?;
    socket.set_read_timeout(Some(RESOLVE_TIMEOUT))?;
    let (mut queries, mut connects, mut last) = (0u32, 0u32, String::from("no answer"));
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        queries += 1;
        let id = (queries % u32::from(u16::MAX)) as u16;
        socket.send(&query(id, name))?;
        let sent = Instant::now();
        let mut found = None;
        // A late answer to an earlier query counts as well.
        while found.is_none() && sent.elapsed() < RESOLVE_TIMEOUT {
            match socket.recv(&mut buf) {
                Ok(n) if n >= 2 => {
                    let got = u16::from_be_bytes([buf[0], buf[1]]);
                    if got != 0 && got <= id {
                        found = Some(first_a(&buf[..n], got));
                    }
                }
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        if let Some(Some(ip)) = found {
            connects += 1;
            match exchange(SocketAddr::from((ip, port))) {
                Ok(true) => {
                    let at = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .as_nanos();
                    println!(
                        "{}",
                        json!({"ip": ip.to_string(), "at_unix_ns": at as u64, "queries": queries, "connects": connects})
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                Ok(false) => last = format!("{ip}:{port}: short answer"),
                Err(e) => last = format!("{ip}:{port}: {e}"),
            }
        } else if found.is_some() {
            last = "an answer without an address".into();
        }
        thread::sleep(RESOLVE_PAUSE);
    }
    bail!("{name} did not resolve and answer within {secs} s ({queries} queries, {connects} connections): {last}")
}

fn dns(
    server: SocketAddr,
    name: &str,
    secs: f64,
    threads: usize,
    bind: Option<std::net::Ipv4Addr>,
) -> Result<ExitCode> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let name = name.to_string();
            thread::spawn(move || -> std::io::Result<(Vec<u32>, u64, u64)> {
                let socket = UdpSocket::bind((bind.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED), 0))?;
                socket.connect(server)?;
                socket.set_read_timeout(Some(Duration::from_millis(500)))?;
                let (mut lat, mut lost, mut errors) = (Vec::new(), 0u64, 0u64);
                let mut id = (t as u16).wrapping_mul(7919);
                let mut buf = [0u8; 512];
                while Instant::now() < deadline {
                    id = id.wrapping_add(1);
                    let q = query(id, &name);
                    let sent = Instant::now();
                    socket.send(&q)?;
                    loop {
                        match socket.recv(&mut buf) {
                            Ok(n) if n >= 12 && buf[..2] == id.to_be_bytes() => {
                                // RCODE 0 and at least one answer.
                                if buf[3] & 0x0f == 0 && buf[6..8] != [0, 0] {
                                    lat.push(sent.elapsed().as_nanos() as u32);
                                } else {
                                    errors += 1;
                                }
                                break;
                            }
                            Ok(_) => continue,
                            Err(_) => {
                                lost += 1;
                                break;
                            }
                        }
                    }
                }
                Ok((lat, lost, errors))
            })
        })
        .collect();
    let (mut lat, mut lost, mut errors) = (Vec::new(), 0, 0);
    for w in workers {
        let (l, lo, e) = w
            .join()
            .map_err(|_| anyhow::anyhow!("dns thread panicked"))??;
        lat.extend(l);
        lost += lo;
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat[i]) / 1000.0
    };
    println!(
        "{}",
        json!({
            "answered": lat.len(), "lost": lost, "errors": errors, "secs": elapsed,
            "qps": lat.len() as f64 / elapsed, "p50_us": pct(0.5), "p99_us": pct(0.99),
        })
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reply a server gives to `query(id, name)`: the question, then answers of `rtype`
    /// with `rdata` whose names point back at the question's.
    fn reply(id: u16, name: &str, answers: &[(u16, &[u8])]) -> Vec<u8> {
        let mut r = query(id, name);
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = answers.len() as u8;
        for (rtype, data) in answers {
            r.extend_from_slice(&[0xc0, 12]);
            r.extend_from_slice(&rtype.to_be_bytes());
            r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            r.extend_from_slice(&(data.len() as u16).to_be_bytes());
            r.extend_from_slice(data);
        }
        r
    }

    #[test]
    fn the_first_a_record_is_found_after_other_records() {
        let cname = [3, b'w', b'w', b'w', 0];
        let r = reply(7, "web3", &[(5, &cname), (1, &[10, 0, 9, 4])]);
        assert_eq!(first_a(&r, 7), Some("10.0.9.4".parse().unwrap()));
    }

    #[test]
    fn no_address_from_an_error_an_empty_answer_or_another_query() {
        let ok = reply(7, "web3", &[(1, &[10, 0, 9, 4])]);
        assert_eq!(first_a(&ok, 8), None, "another query's id");
        let mut nxdomain = reply(7, "web3", &[]);
        nxdomain[3] |= 3;
        assert_eq!(first_a(&nxdomain, 7), None);
        assert_eq!(first_a(&reply(7, "web3", &[]), 7), None);
        assert_eq!(first_a(&ok[..ok.len() - 2], 7), None, "truncated");
    }
}
