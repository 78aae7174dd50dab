//! `netd exec`: enter the container's network namespace in a child process, give it a private
//! mount namespace with the container's `hosts`, `resolv.conf` and a `/sys` of its own network
//! namespace (as `ip netns exec` does), its hostname, then run the command.
use std::{
    fs::File,
    os::{fd::AsFd, unix::process::CommandExt as _},
    path::Path,
    process::{Command, Stdio},
};

use anyhow::Context as _;
use nix::{
    mount::{mount, umount2, MntFlags, MsFlags},
    sched::{setns, unshare, CloneFlags},
    unistd::{sethostname, setsid},
};

use crate::{api::ExecInfo, cli::ExecArgs};

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A command that could not be started: missing (Docker: "executable file not found in
/// $PATH"), not executable, or the container's namespaces could not be entered.
#[derive(Debug, thiserror::Error)]
#[error("cannot run {cmd}: {}", explain(source))]
pub struct CannotRun {
    pub cmd: String,
    #[source]
    pub source: std::io::Error,
}

/// Docker's words for the usual reasons, the system's for the others.
fn explain(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "executable file not found in $PATH".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

pub fn run(info: &ExecInfo, args: &ExecArgs) -> anyhow::Result<i32> {
    let netns =
        File::open(&info.netns).with_context(|| format!("cannot open {}", info.netns.display()))?;
    let mut cmd = Command::new(&args.cmd[0]);
    cmd.args(&args.cmd[1..])
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", "/root");
    if let Some(h) = &info.hostname {
        cmd.env("HOSTNAME", h);
    }
    if let Ok(term) = std::env::var("TERM") {
        cmd.env("TERM", term);
    }
    for kv in info.env.iter().chain(&args.env) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        cmd.env(k, v);
    }
    let info = info.clone();
    let detach = args.detach;
    // SAFETY: the client is single-threaded, so the child may allocate; every call is a plain
    // syscall wrapper and errors are returned, never unwound.
    unsafe {
        cmd.pre_exec(move || {
            enter(netns.as_fd(), &info).map_err(std::io::Error::from)?;
            if detach {
                setsid().map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
    if args.detach {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(|source| CannotRun {
            cmd: args.cmd[0].clone(),
            source,
        })?;
        println!("{}", child.id());
        return Ok(0);
    }
    let status = cmd.status().map_err(|source| CannotRun {
        cmd: args.cmd[0].clone(),
        source,
    })?;
    Ok(status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    }))
}

fn enter(netns: std::os::fd::BorrowedFd<'_>, info: &ExecInfo) -> nix::Result<()> {
    setns(netns, CloneFlags::CLONE_NEWNET)?;
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )?;
    for (file, target) in [
        (&info.hosts, "/etc/hosts"),
        (&info.resolv_conf, "/etc/resolv.conf"),
    ] {
        if let Some(file) = file {
            bind(file, Path::new(target))?;
        }
    }
    // A /sys that shows this network namespace; if it cannot be remounted the old one stays,
    // which only affects tools that read /sys/class/net.
    if umount2("/sys", MntFlags::MNT_DETACH).is_ok() {
        mount(
            Some("sysfs"),
            "/sys",
            Some("sysfs"),
            MsFlags::empty(),
            None::<&str>,
        )?;
    }
    if let Some(h) = &info.hostname {
        sethostname(h)?;
    }
    Ok(())
}

fn bind(file: &Path, target: &Path) -> nix::Result<()> {
    mount(
        Some(file),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
}
