//! `cargo xtask compare-docker`: the seeds' scenarios on netd's own CLI beside stock dockerd
//! 20.10, each in namespaces of its own (`tests/tests/docker_compare.rs`), printed as a table
//! SAME/DIFFERENT per observable; fails on a difference that README.md does not list as
//! intended ("netd's CLI beside stock Docker").

use anyhow::Result;

use crate::{build, prereqs, util};

/// Builds netd (debug) and runs the comparison, its table on stdout.
pub fn compare_docker() -> Result<()> {
    prereqs::ensure()?;
    let netd = build::build_netd(false)?;
    let mut cmd = util::cargo();
    cmd.args(["test", "-p", "netd-tests", "--test", "docker_compare", "--"])
        .args(["--include-ignored", "--nocapture", "--test-threads", "1"])
        .env("NETD_BIN", &netd)
        .env("RUST_BACKTRACE", "1");
    util::run(&mut cmd, "the comparison with stock Docker")
}
