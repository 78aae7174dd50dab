//! Library target so that `netd` can name this crate as a build dependency (cargo then rebuilds
//! the programs when they change); the programs themselves are the `netd` binary target.
#![no_std]
