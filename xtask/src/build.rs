//! `cargo xtask build [--debug]`: prerequisites, then `cargo build -p netd`, whose build script
//! compiles netd-ebpf with aya-build and embeds it, so the result is one self-contained binary.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::{prereqs, util};

/// Installs prerequisites and builds netd; returns the path of the binary.
pub fn build(release: bool) -> Result<PathBuf> {
    prereqs::ensure()?;
    build_netd(release)
}

/// Runs `cargo build -p netd` (with `--release` if asked); returns the path of the binary.
pub fn build_netd(release: bool) -> Result<PathBuf> {
    let mut cmd = util::cargo();
    cmd.args(["build", "-p", "netd"]);
    if release {
        cmd.arg("--release");
    }
    util::run(&mut cmd, "build netd")?;
    let profile = if release { "release" } else { "debug" };
    let netd = util::target_dir().join(profile).join("netd");
    anyhow::ensure!(netd.is_file(), "build netd: {} is missing", netd.display());
    let netd = netd
        .canonicalize()
        .with_context(|| format!("resolve {}", netd.display()))?;
    println!("build: {}", netd.display());
    Ok(netd)
}
