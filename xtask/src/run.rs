//! `cargo xtask run [-- ARGS]`: build the release binary, then replace this process with
//! `netd daemon ARGS` on the real host.

use std::os::unix::process::CommandExt as _;

use anyhow::{Context as _, Result};

use crate::{build, util};

/// Builds netd and execs `netd daemon ARGS`; returns only if the exec fails.
pub fn run(args: &[String]) -> Result<()> {
    let netd = build::build(true)?;
    let mut cmd = util::command(&netd);
    cmd.arg("daemon").args(args);
    println!("run: {}", util::describe(&cmd));
    let err = cmd.exec();
    Err(err).with_context(|| format!("exec {}", netd.display()))
}
