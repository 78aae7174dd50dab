//! `cargo xtask test [ARGS]`: prerequisites, a debug build of netd, then `cargo test --workspace`
//! with `NETD_BIN` pointing at that binary, so the integration tests drive the real daemon.

use anyhow::Result;

use crate::{build, prereqs, util};

/// Builds netd and runs every test of the workspace; `args` go to `cargo test`.
pub fn test(args: &[String]) -> Result<()> {
    prereqs::ensure()?;
    let netd = build::build_netd(false)?;
    let mut cmd = util::cargo();
    cmd.args(["test", "--workspace"])
        .args(args)
        .env("NETD_BIN", &netd)
        .env("RUST_BACKTRACE", "1");
    util::run(&mut cmd, "cargo test")
}
