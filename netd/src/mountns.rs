//! The mount namespace the daemon works in.
//!
//! What the daemon mounts (container namespace files under `--run-dir`, bpffs, cgroup2) lives in
//! the mount namespace of the process that mounts it, and dies with that namespace. `ip netns
//! exec`, `unshare -m` and systemd's `PrivateMounts=yes` start the daemon in a mount namespace
//! made for it alone: a namespace file mounted there is invisible from the host and gone when
//! the daemon is killed. So at start, while the process still has one thread, the daemon looks up
//! its ancestors and, if the farthest one it may inspect is in another mount namespace, joins
//! that one (the mount namespace the launch was split off from). A daemon that cannot join it
//! refuses to start.
//!
//! The one thing taken from the launch namespace is `--resolv-conf`: `ip netns exec NAME`
//! bind-mounts `/etc/netns/NAME/resolv.conf` over `/etc/resolv.conf` there, and that is the file
//! the user means. The launch namespace's root stays open, and the file is read through it.
use std::{
    fs,
    os::{
        fd::{AsFd, AsRawFd, OwnedFd},
        unix::fs::MetadataExt,
    },
    path::{Path, PathBuf},
};

use nix::sched::{setns, CloneFlags};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MountNsError {
    #[error(
        "the daemon was started in a mount namespace of its own (as `ip netns exec`, `unshare -m` or \
         systemd's PrivateMounts make), where container namespaces and pins would die with it, and \
         it cannot join the mount namespace of pid {pid} ({comm}): {source}; start it in the \
         host's mount namespace (`nsenter --net=/run/netns/NAME netd daemon ...`)"
    )]
    Join {
        pid: i32,
        comm: String,
        source: nix::Error,
    },
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot join a mount namespace while other threads run (netd bug)")]
    Threads,
}

/// A mount namespace, identified as `stat` of its nsfs file does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NsId {
    dev: u64,
    ino: u64,
}

/// One ancestor of the daemon, nearest first; `ns` is `None` where it may not be inspected.
#[derive(Debug, Clone)]
pub struct Ancestor {
    pub pid: i32,
    pub comm: String,
    pub ns: Option<NsId>,
}

/// The mount namespace to work in: that of the farthest ancestor that may be inspected, if it
/// differs from ours (`None`: stay). Ancestors past one that may not be inspected are not
/// looked at (their namespace could be anything).
pub fn target(own: NsId, ancestors: &[Ancestor]) -> Option<&Ancestor> {
    let farthest = ancestors.iter().take_while(|a| a.ns.is_some()).last()?;
    (farthest.ns != Some(own)).then_some(farthest)
}

/// Where the daemon ended up, and how to reach files of the namespace it was started in.
#[derive(Debug)]
pub struct Settled {
    /// The process whose mount namespace the daemon joined, if it moved.
    pub joined: Option<(i32, String)>,
    /// The launch namespace's root, kept open while the daemon runs.
    launch_root: Option<OwnedFd>,
    /// The launch namespace itself: an open nsfs file keeps its mounts (and `ip netns exec`'s
    /// resolv.conf) in place after its last process, the daemon, left it.
    _launch_ns: Option<OwnedFd>,
}

impl Settled {
    /// `path` (absolute) as the launch namespace saw it.
    pub fn in_launch_ns(&self, path: &Path) -> PathBuf {
        match (&self.launch_root, path.strip_prefix("/")) {
            (Some(root), Ok(rel)) => {
                PathBuf::from(format!("/proc/self/fd/{}", root.as_raw_fd())).join(rel)
            }
            _ => path.to_path_buf(),
        }
    }
}

/// Joins the mount namespace the launch was split off from, if it was (see the module docs).
/// Must run before any other thread starts: a process shares its root and working directory
/// between threads, and the kernel lets only a single-threaded one change mount namespace.
pub fn settle() -> Result<Settled, MountNsError> {
    let own = ns_of("self").expect("a process can inspect its own mount namespace");
    let ancestors = ancestors();
    let Some(target) = target(own, &ancestors) else {
        return Ok(Settled {
            joined: None,
            launch_root: None,
            _launch_ns: None,
        });
    };
    if thread_count() != Some(1) {
        return Err(MountNsError::Threads);
    }
    let open = |path: &str, flags: i32| {
        use std::os::unix::fs::OpenOptionsExt as _;
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)
            .map(OwnedFd::from)
            .map_err(|source| MountNsError::Open {
                path: path.into(),
                source,
            })
    };
    let launch_root = open("/", libc::O_PATH | libc::O_DIRECTORY)?;
    let launch_ns = open("/proc/self/ns/mnt", 0)?;
    let ns = open(&format!("/proc/{}/ns/mnt", target.pid), 0)?;
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNS).map_err(|source| MountNsError::Join {
        pid: target.pid,
        comm: target.comm.clone(),
        source,
    })?;
    Ok(Settled {
        joined: Some((target.pid, target.comm.clone())),
        launch_root: Some(launch_root),
        _launch_ns: Some(launch_ns),
    })
}

fn ns_of(pid: &str) -> Option<NsId> {
    let meta = fs::metadata(format!("/proc/{pid}/ns/mnt")).ok()?;
    Some(NsId {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// The parent pid and command name in a `/proc/PID/stat` line (the name may hold spaces and
/// parentheses: it ends at the last `)`).
pub fn parse_stat(stat: &str) -> Option<(i32, String)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let ppid = stat
        .get(close + 1..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ppid, comm))
}

/// The daemon's ancestors, nearest first, up to the first pid 0 (the top of its pid namespace).
fn ancestors() -> Vec<Ancestor> {
    let mut chain = vec![];
    let mut pid = std::os::unix::process::parent_id() as i32;
    while pid > 0 && chain.len() < 4096 {
        let Some((ppid, comm)) = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
        else {
            break;
        };
        chain.push(Ancestor {
            pid,
            comm,
            ns: ns_of(&pid.to_string()),
        });
        pid = ppid;
    }
    chain
}

fn thread_count() -> Option<usize> {
    Some(fs::read_dir("/proc/self/task").ok()?.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: NsId = NsId { dev: 4, ino: 1 };
    const OWN: NsId = NsId { dev: 4, ino: 2 };

    fn at(pid: i32, ns: Option<NsId>) -> Ancestor {
        Ancestor {
            pid,
            comm: format!("p{pid}"),
            ns,
        }
    }

    #[test]
    fn a_daemon_in_its_launchers_namespace_stays() {
        assert!(target(OWN, &[at(10, Some(OWN)), at(1, Some(OWN))]).is_none());
        assert!(target(OWN, &[]).is_none());
    }

    #[test]
    fn a_daemon_in_a_namespace_of_its_own_joins_the_farthest_ancestors() {
        // ip netns exec: the shell that ran it is in the host's namespace.
        let chain = [at(30, Some(HOST)), at(20, Some(HOST)), at(1, Some(HOST))];
        assert_eq!(target(OWN, &chain).map(|a| a.pid), Some(1));
        // A script in a PrivateMounts unit ran it: the unit's namespace is not the host's.
        let chain = [at(30, Some(OWN)), at(20, Some(OWN)), at(1, Some(HOST))];
        assert_eq!(target(OWN, &chain).map(|a| a.pid), Some(1));
    }

    #[test]
    fn ancestors_past_one_that_may_not_be_inspected_are_not_trusted() {
        let chain = [at(30, Some(HOST)), at(1, None)];
        assert_eq!(target(OWN, &chain).map(|a| a.pid), Some(30));
        let chain = [at(30, None), at(1, Some(HOST))];
        assert!(target(OWN, &chain).is_none());
    }

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        assert_eq!(
            parse_stat("42 (ip) S 7 42 42 0 -1"),
            Some((7, "ip".to_string()))
        );
        assert_eq!(
            parse_stat("42 (a (b) c) R 9 1 1"),
            Some((9, "a (b) c".to_string()))
        );
        assert_eq!(parse_stat("42 ip S 7"), None);
    }

    #[test]
    fn launch_paths_go_through_the_kept_root() {
        let stayed = Settled {
            joined: None,
            launch_root: None,
            _launch_ns: None,
        };
        assert_eq!(
            stayed.in_launch_ns(Path::new("/etc/resolv.conf")),
            Path::new("/etc/resolv.conf")
        );
    }
}
