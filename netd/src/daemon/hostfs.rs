//! The host filesystems the datapath hangs on besides bpffs: the cgroup2 hierarchy that the
//! socket hooks attach to. Found where the host mounted it (`/sys/fs/cgroup`, or
//! `/sys/fs/cgroup/unified` on a hybrid hierarchy), or mounted by netd under its run dir when
//! nothing is (as Cilium does under `/run/cilium/cgroupv2`). Never silently left out: the hooks
//! are off only when the user says so (`--no-cgroup-hooks`).
use std::{
    fs,
    path::{Path, PathBuf},
};

use nix::{
    mount::{mount, umount2, MntFlags, MsFlags},
    sys::statfs::{statfs, CGROUP2_SUPER_MAGIC},
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HostFsError {
    #[error("--cgroup {0} is not a directory of a cgroup2 hierarchy")]
    NotCgroup2(PathBuf),
    #[error(
        "no cgroup2 hierarchy is mounted and mounting one at {path} failed: {source}; mount one \
         (`mount -t cgroup2 none /sys/fs/cgroup`), give --cgroup DIR, or run without host access \
         to published ports (--no-cgroup-hooks)"
    )]
    Mount { path: PathBuf, source: nix::Error },
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where netd mounts cgroup2 when the host has not.
pub fn own_cgroup2(run_dir: &Path) -> PathBuf {
    run_dir.join("cgroup2")
}

pub fn is_cgroup2(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// The first cgroup2 mount in a `/proc/self/mounts` text.
pub fn cgroup2_in(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, target, kind) = (fields.next()?, fields.next()?, fields.next()?);
        (kind == "cgroup2").then(|| PathBuf::from(target))
    })
}

/// The cgroup the socket hooks go on (see the module docs); `None` with `--no-cgroup-hooks`.
pub fn hook_cgroup(
    given: Option<&Path>,
    hooks: bool,
    run_dir: &Path,
) -> Result<Option<PathBuf>, HostFsError> {
    if !hooks {
        return Ok(None);
    }
    if let Some(dir) = given {
        return match is_cgroup2(dir) {
            true => Ok(Some(dir.to_path_buf())),
            false => Err(HostFsError::NotCgroup2(dir.to_path_buf())),
        };
    }
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if let Some(root) = cgroup2_in(&mounts) {
        return Ok(Some(root));
    }
    let path = own_cgroup2(run_dir);
    fs::create_dir_all(&path).map_err(|source| HostFsError::Create {
        path: path.clone(),
        source,
    })?;
    if !is_cgroup2(&path) {
        mount(
            Some("cgroup2"),
            &path,
            Some("cgroup2"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(|source| HostFsError::Mount {
            path: path.clone(),
            source,
        })?;
        tracing::info!(path = %path.display(), "mounted a cgroup2 hierarchy for the socket hooks (none was mounted)");
    }
    Ok(Some(path))
}

/// Unmounts the cgroup2 hierarchy netd mounted under `run_dir`, if it did (`--cleanup`).
pub fn remove_own_cgroup2(run_dir: &Path) -> Result<(), String> {
    let path = own_cgroup2(run_dir);
    if is_cgroup2(&path) {
        umount2(&path, MntFlags::MNT_DETACH)
            .map_err(|e| format!("unmount {}: {e}", path.display()))?;
    }
    match fs::remove_dir(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("remove {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unified_hierarchy_of_a_hybrid_host_is_found() {
        let mounts = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
                      cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(
            cgroup2_in(mounts),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            cgroup2_in("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n"),
            None
        );
    }

    #[test]
    fn a_given_cgroup_that_is_not_cgroup2_is_refused() {
        let err = hook_cgroup(Some(Path::new("/tmp")), true, Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "--cgroup /tmp is not a directory of a cgroup2 hierarchy"
        );
        assert_eq!(
            hook_cgroup(Some(Path::new("/tmp")), false, Path::new("/x")).unwrap(),
            None
        );
    }
}
