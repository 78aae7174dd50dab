//! The daemon's error type: what a request can fail with, each variant a one-line message for
//! the user.
use thiserror::Error;

use crate::{
    datapath::DatapathError, ipam::IpamError, netlink::NetlinkError, netns::NetnsError,
    state::store::StateError,
};

#[derive(Debug, Error)]
pub enum OpError {
    /// Bad input: a malformed or contradictory request.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The request is well-formed but conflicts with what exists.
    #[error("{0}")]
    Conflict(String),
    /// Something the request needs is not answering (the cluster store).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

pub fn invalid(msg: impl Into<String>) -> OpError {
    OpError::Invalid(msg.into())
}

pub fn conflict(msg: impl Into<String>) -> OpError {
    OpError::Conflict(msg.into())
}

pub type OpResult<T> = Result<T, OpError>;
