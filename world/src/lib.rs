//! The throwaway world that netd's tests, its demo and its benchmark all run in, described once:
//! "host" network namespaces, each with an uplink veth to an "outside" namespace that plays the
//! rest of the world (`10.99.0.2` on the host's `uplink0`, `10.99.0.1` on the outside's
//! `outside0`, the host's default route out through it), and any number of hosts on one
//! underlay: a "fabric" namespace with a bridge, and an `eth1` port of each host on it, as
//! machines on one switch.
//!
//! Multi-host worlds also run etcd, the cluster store of overlay networks, in a namespace of its
//! own on the fabric ([`etcd`]), at [`ETCD_IP`].
//!
//! Every command names or enters a namespace the caller made: nothing touches the machine's own
//! interfaces. The builders make; the callers own what they made and remove it (each reports
//! teardown its own way). [`wait_until`] is the one way to wait for something to be so.
use std::{
    process::Command,
    thread::sleep,
    time::{Duration, Instant},
};

use thiserror::Error;

/// The host's end of the uplink, and its address (where published ports answer from outside).
pub const UPLINK: &str = "uplink0";
pub const UPLINK_IP: &str = "10.99.0.2";
/// The outside's end of the uplink, and its address.
pub const OUTSIDE_PORT: &str = "outside0";
pub const OUTSIDE_IP: &str = "10.99.0.1";
/// Each host's port on the fabric, as the seeds name it, and the fabric's bridge.
pub const UNDERLAY_PORT: &str = "eth1";
pub const FABRIC_BRIDGE: &str = "fab0";
/// The fabric's subnet: host `i` (from 1) is at `10.98.0.(10 + i)`, etcd at [`ETCD_IP`].
pub const FABRIC_PREFIX: &str = "10.98.0";
pub const ETCD_IP: &str = "10.98.0.100";
pub const ETCD_PORT: u16 = 2379;

/// The underlay address of the fabric's host number `i` (from 1).
pub fn fabric_ip(i: usize) -> String {
    format!("{FABRIC_PREFIX}.{}", 10 + i)
}

/// `--cluster-store` for the etcd of a fabric.
pub fn cluster_store() -> String {
    format!("etcd://{ETCD_IP}:{ETCD_PORT}")
}

#[derive(Debug, Error)]
pub enum WorldError {
    #[error("`ip {args}` failed: {stderr}")]
    Ip { args: String, stderr: String },
    #[error("cannot run `ip`: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("cannot start etcd: {0}")]
    Etcd(String),
    #[error("{what}: not within {timeout:?}")]
    Timeout { what: String, timeout: Duration },
}

/// Runs `ip ARGS`; its stderr is the error.
pub fn ip(args: &[&str]) -> Result<(), WorldError> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(WorldError::Ip {
        args: args.join(" "),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Runs `ip -n NS ARGS`.
fn ip_in(ns: &str, args: &[&str]) -> Result<(), WorldError> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    ip(&all)
}

/// Creates the namespaces `host` and `outside` joined by the uplink veth, loopback up in both,
/// the host's default route through the outside.
pub fn uplink_pair(host: &str, outside: &str) -> Result<(), WorldError> {
    ip(&["netns", "add", host])?;
    ip(&["netns", "add", outside])?;
    ip_in(
        host,
        &[
            "link",
            "add",
            UPLINK,
            "type",
            "veth",
            "peer",
            "name",
            OUTSIDE_PORT,
            "netns",
            outside,
        ],
    )?;
    for (ns, dev, addr) in [
        (host, UPLINK, UPLINK_IP),
        (outside, OUTSIDE_PORT, OUTSIDE_IP),
    ] {
        ip_in(ns, &["addr", "add", &format!("{addr}/24"), "dev", dev])?;
        ip_in(ns, &["link", "set", dev, "up"])?;
        ip_in(ns, &["link", "set", "lo", "up"])?;
    }
    ip_in(host, &["route", "add", "default", "via", OUTSIDE_IP])
}

/// Creates the fabric namespace `ns` with its bridge up: a switch with no port yet.
pub fn fabric(ns: &str) -> Result<(), WorldError> {
    ip(&["netns", "add", ns])?;
    ip_in(ns, &["link", "set", "lo", "up"])?;
    ip_in(ns, &["link", "add", FABRIC_BRIDGE, "type", "bridge"])?;
    ip_in(ns, &["link", "set", FABRIC_BRIDGE, "up"])
}

/// Plugs the host namespace `host` into the fabric `fabric`: `eth1` there (up, no address),
/// its other end `port` on the fabric's bridge.
pub fn plug(fabric: &str, port: &str, host: &str) -> Result<(), WorldError> {
    ip_in(
        fabric,
        &[
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            UNDERLAY_PORT,
            "netns",
            host,
        ],
    )?;
    ip_in(
        fabric,
        &["link", "set", port, "master", FABRIC_BRIDGE, "up"],
    )?;
    ip_in(host, &["link", "set", UNDERLAY_PORT, "up"])?;
    ip_in(host, &["link", "set", "lo", "up"])
}

/// Gives the host namespace `host`, plugged into a fabric, its underlay address `addr` (/24).
pub fn address_underlay(host: &str, addr: &str) -> Result<(), WorldError> {
    ip_in(
        host,
        &["addr", "add", &format!("{addr}/24"), "dev", UNDERLAY_PORT],
    )
}

/// Starts etcd (Debian's `etcd-server`) in the namespace `ns`, which gets a port on the fabric
/// `fabric` with [`ETCD_IP`], its data in `dir` and its log in `dir/etcd.log`; returns once it
/// serves clients. The caller owns the process (and the namespace).
pub fn etcd(
    fabric: &str,
    ns: &str,
    dir: &std::path::Path,
) -> Result<std::process::Child, WorldError> {
    ip(&["netns", "add", ns])?;
    plug(fabric, &format!("{ns}p"), ns)?;
    address_underlay(ns, ETCD_IP)?;
    start_etcd(ns, dir)
}

/// Starts etcd again in `ns` (made by [`etcd`]) with the data it had.
pub fn start_etcd(ns: &str, dir: &std::path::Path) -> Result<std::process::Child, WorldError> {
    std::fs::create_dir_all(dir)?;
    let log_path = dir.join("etcd.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let start = std::fs::metadata(&log_path)?.len() as usize;
    let client = format!("http://{ETCD_IP}:{ETCD_PORT}");
    let peer = format!("http://{ETCD_IP}:2380");
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "etcd", "--name", "netd-test"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("netd-test={peer}")])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|e| {
            WorldError::Etcd(format!("cannot run etcd (is etcd-server installed?): {e}"))
        })?;
    let ready = || {
        std::fs::read_to_string(&log_path)
            .map(|l| {
                l.get(start..)
                    .unwrap_or_default()
                    .contains("ready to serve client requests")
            })
            .unwrap_or(false)
    };
    wait_until("etcd serving clients", Duration::from_secs(30), ready)?;
    Ok(child)
}

/// Waits until `done` holds, looking every 20 ms, for at most `timeout`.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), WorldError> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return Err(WorldError::Timeout {
                what: what.into(),
                timeout,
            });
        }
        sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_ends_when_the_condition_holds_or_names_what_never_did() {
        let mut calls = 0;
        wait_until("third call", Duration::from_secs(5), || {
            calls += 1;
            calls == 3
        })
        .unwrap();
        assert_eq!(calls, 3);
        let err = wait_until("never", Duration::from_millis(50), || false).unwrap_err();
        assert_eq!(err.to_string(), "never: not within 50ms");
    }
}
