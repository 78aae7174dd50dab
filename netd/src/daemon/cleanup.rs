//! `netd daemon --cleanup`: remove everything a daemon installed (processes in the namespaces it
//! made, its devices, namespace files, pins, a cgroup2 mount of its own, state and run files),
//! going on past errors and reporting every one. Refused while a daemon holds the directories.
use std::{fs, io::ErrorKind, path::Path};

use anyhow::anyhow;
use nix::{sys::signal::Signal, unistd::Pid};

use super::Config;
use crate::{datapath, netlink::Netlink, netns};

pub async fn cleanup(config: &Config) -> anyhow::Result<()> {
    let mut locks = super::lock::DirLocks::default();
    for (flag, dir) in [
        ("--state-dir", &config.state_dir),
        ("--run-dir", &config.run_dir),
        ("--bpffs", &config.bpffs),
    ] {
        if dir.is_dir() {
            locks.lock(flag, dir)?;
        }
    }
    if std::os::unix::net::UnixStream::connect(config.socket()).is_ok() {
        return Err(anyhow!(
            "a daemon is still serving {}: stop it first",
            config.socket().display()
        ));
    }
    let mut errors: Vec<String> = vec![];
    kill_and_remove_namespaces(&config.netns_dir(), &mut errors);
    match Netlink::current() {
        Ok(nl) => delete_owned_links(&nl, &mut errors).await,
        Err(e) => errors.push(e.to_string()),
    }
    errors.extend(
        datapath::remove_pins(&config.bpffs)
            .iter()
            .map(ToString::to_string),
    );
    remove_file(&config.socket(), &mut errors);
    for kind in ["networks", "containers"] {
        remove_dir(&config.state_dir.join(kind), &mut errors);
    }
    for file in ["journal.jsonl", "state.json"] {
        remove_file(&config.state_dir.join(file), &mut errors);
    }
    remove_dir(&config.containers_dir(), &mut errors);
    remove_dir(&config.netns_dir(), &mut errors);
    errors.extend(super::hostfs::remove_own_cgroup2(&config.run_dir).err());
    if errors.is_empty() {
        return Ok(());
    }
    for e in &errors {
        eprintln!("cleanup: {e}");
    }
    Err(anyhow!("cleanup met {} error(s)", errors.len()))
}

fn kill_and_remove_namespaces(dir: &Path, errors: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(|e| Some(e.ok()?.path())) {
        for pid in netns::pids_in(&path) {
            if let Err(e) = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL) {
                errors.push(format!("kill {pid}: {e}"));
            }
        }
        if let Err(e) = netns::remove(&path) {
            errors.push(e.to_string());
        }
    }
}

async fn delete_owned_links(nl: &Netlink, errors: &mut Vec<String>) {
    match nl.owned_links().await {
        Ok(links) => {
            for link in links {
                if let Err(e) = nl.delete_link(&link.name).await {
                    errors.push(e.to_string());
                }
            }
        }
        Err(e) => errors.push(e.to_string()),
    }
}

fn remove_file(path: &Path, errors: &mut Vec<String>) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != ErrorKind::NotFound {
            errors.push(format!("remove {}: {e}", path.display()));
        }
    }
}

fn remove_dir(path: &Path, errors: &mut Vec<String>) {
    if let Err(e) = fs::remove_dir_all(path) {
        if e.kind() != ErrorKind::NotFound {
            errors.push(format!("remove {}: {e}", path.display()));
        }
    }
}
