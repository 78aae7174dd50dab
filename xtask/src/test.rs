//! `cargo xtask test [ARGS]`: prerequisites, a debug build of netd, then `cargo test --workspace`
//! (all but the BPF crate) with `NETD_BIN` pointing at that binary, so the integration tests drive
//! the real daemon.

use anyhow::Result;

use crate::{build, prereqs, util};

/// Builds netd and runs every test of the workspace; `args` go to `cargo test`.
pub fn test(args: &[String]) -> Result<()> {
    prereqs::ensure()?;
    let netd = build::build_netd(false)?;
    let mut cmd = util::cargo();
    // netd-ebpf is a BPF program: it has no host tests, and its `no_main` binary cannot be
    // linked as a host test harness.
    cmd.args(["test", "--workspace", "--exclude", "netd-ebpf"])
        .args(args)
        .env("NETD_BIN", &netd)
        .env("RUST_BACKTRACE", "1");
    util::run(&mut cmd, "cargo test")
}
