//! One daemon per directory: the state, run and bpffs directories are each locked (`flock` on
//! the directory itself, so nothing is left behind: the kernel drops the lock when the daemon
//! dies, however it dies). A second daemon, or a `--cleanup`, on any of them is refused with the
//! pid that holds it, read from `/proc/locks`.
use std::{
    fs::File,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use nix::fcntl::{Flock, FlockArg};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LockError {
    #[error("another netd daemon{} holds {flag} {path}: stop it first", holder(.pid))]
    Held {
        flag: &'static str,
        path: PathBuf,
        pid: Option<u32>,
    },
    #[error("cannot lock {flag} {path}: {source}")]
    Io {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn holder(pid: &Option<u32>) -> String {
    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

/// Locks held until dropped.
#[derive(Debug, Default)]
pub struct DirLocks(Vec<Flock<File>>);

impl DirLocks {
    /// Locks `path` (a directory, which must exist), named by the flag that set it.
    pub fn lock(&mut self, flag: &'static str, path: &Path) -> Result<(), LockError> {
        let io = |source| LockError::Io {
            flag,
            path: path.into(),
            source,
        };
        let dir = File::open(path).map_err(io)?;
        let id = dir.metadata().map_err(io)?;
        match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                self.0.push(lock);
                Ok(())
            }
            Err((_, nix::Error::EWOULDBLOCK)) => Err(LockError::Held {
                flag,
                path: path.into(),
                pid: std::fs::read_to_string("/proc/locks")
                    .ok()
                    .and_then(|locks| lock_holder(&locks, id.dev(), id.ino())),
            }),
            Err((_, e)) => Err(io(e.into())),
        }
    }
}

/// The pid holding a lock on the inode (`dev`, `ino`) in a `/proc/locks` text, whose lines read
/// `1: FLOCK  ADVISORY  WRITE 1234 fd:00:5678 0 EOF` (device major and minor in hex).
pub fn lock_holder(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let wanted = format!(
        "{:02x}:{:02x}:{ino}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev)
    );
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields.iter().position(|f| *f == wanted)?;
        fields.get(at.checked_sub(1)?)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKS: &str = "1: POSIX  ADVISORY  WRITE 77 00:1a:99 0 EOF\n\
                         2: FLOCK  ADVISORY  WRITE 4242 fe:00:1234 0 EOF\n";

    #[test]
    fn the_holder_of_a_lock_is_found_by_device_and_inode() {
        let dev = nix::sys::stat::makedev(0xfe, 0);
        assert_eq!(lock_holder(LOCKS, dev, 1234), Some(4242));
        assert_eq!(lock_holder(LOCKS, dev, 123), None);
        assert_eq!(
            lock_holder(LOCKS, nix::sys::stat::makedev(0, 0x1a), 99),
            Some(77)
        );
    }

    #[test]
    fn a_second_lock_on_a_directory_is_refused_with_the_holders_pid() {
        let dir = std::env::temp_dir().join(format!("netd-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut first = DirLocks::default();
        first.lock("--state-dir", &dir).unwrap();
        let err = DirLocks::default().lock("--state-dir", &dir).unwrap_err();
        let text = err.to_string();
        std::fs::remove_dir(&dir).unwrap();
        assert!(
            text.starts_with(&format!(
                "another netd daemon (pid {}) holds --state-dir",
                std::process::id()
            )),
            "{text}"
        );
        drop(first);
    }
}
