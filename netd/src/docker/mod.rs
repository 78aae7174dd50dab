//! `netd daemon --docker-plugin`: netd as a Docker network driver (the remote driver API of
//! libnetwork, served by `daemon::docker`), so that `docker network create -d netd` and
//! `docker run --network NAME -p ...` get netd's eBPF datapath instead of iptables and
//! docker-proxy.
//!
//! Addresses are Docker's: netd serves the network driver API only and leaves IPAM to Docker's
//! default driver, which already knows `--subnet`, `--ip-range`, `--ip` and the pools of every
//! network dockerd has; the netd network takes the pool and gateway it is given, and each
//! container its endpoint's address. One netd container stands for one Docker sandbox (all
//! its endpoints); dockerd moves the device netd hands over into it and configures it there.
//! Which container a sandbox is, its name and its aliases come from dockerd's Engine API
//! (`--docker-host`), followed through its events: they are the names netd's DNS answers.
pub mod book;
pub mod engine;
pub mod plan;
pub mod wire;

use thiserror::Error;

/// The default socket, where dockerd looks for plugins.
pub const DEFAULT_SOCKET: &str = "/run/docker/plugins/netd.sock";
/// What netd's containers for Docker sandboxes are marked with (`container inspect`'s
/// `runtime`).
pub const RUNTIME: &str = "docker";

/// Why a plugin request failed; dockerd shows the message.
#[derive(Debug, Error)]
pub enum PluginError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The daemon refused the translated request.
    #[error("{0}")]
    Daemon(String),
    #[error("{0}")]
    Book(String),
    /// A method of the API netd does not serve (answered with 404, as Docker expects).
    #[error("{0}")]
    NoMethod(String),
}
