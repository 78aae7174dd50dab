//! Network namespaces: creating them as files (bind mounts of `/proc/thread-self/ns/net`, as
//! `ip netns add` does), running code inside one on a dedicated thread, and finding the processes
//! that live in one.
//!
//! `setns` changes only the calling thread, so every switch happens on a fresh OS thread that
//! ends afterwards; no runtime thread ever changes namespace.
use std::{
    fs,
    os::{fd::AsFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use nix::{
    mount::{mount, umount2, MntFlags, MsFlags},
    sched::{setns, unshare, CloneFlags},
    sys::statfs::{statfs, NSFS_MAGIC},
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum NetnsError {
    #[error("network namespace {0} does not exist")]
    Missing(PathBuf),
    #[error("{0} is not a network namespace")]
    NotANamespace(PathBuf),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {path}: {source}")]
    Sys {
        what: &'static str,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("namespace worker thread panicked")]
    Thread,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> NetnsError {
    let path = path.to_path_buf();
    move |source| NetnsError::Io { what, path, source }
}

fn sys(what: &'static str, path: &Path) -> impl FnOnce(nix::Error) -> NetnsError {
    let path = path.to_path_buf();
    move |source| NetnsError::Sys { what, path, source }
}

/// Checks that `path` names a network namespace (an nsfs file) before anything uses it.
pub fn check(path: &Path) -> Result<(), NetnsError> {
    if !path.exists() {
        return Err(NetnsError::Missing(path.into()));
    }
    let fs = statfs(path).map_err(sys("statfs", path))?;
    if fs.filesystem_type() != NSFS_MAGIC {
        return Err(NetnsError::NotANamespace(path.into()));
    }
    let file = fs::File::open(path).map_err(io("open", path))?;
    // An nsfs file of another kind (mnt, uts) is refused by setns with this flag.
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(|_| NetnsError::NotANamespace(path.into()))
        })
        .join()
        .map_err(|_| NetnsError::Thread)?
    })
}

/// Creates a new network namespace and pins it at `path`.
pub fn create(path: &Path) -> Result<(), NetnsError> {
    create_with(path, || Ok::<(), NetnsError>(()))
}

/// Creates a new network namespace, pins it at `path` and runs `setup` inside it, on the thread
/// that made it (no second thread has to enter it). If anything fails, the pin is removed again.
pub fn create_with<T: Send, E: From<NetnsError> + Send>(
    path: &Path,
    setup: impl FnOnce() -> Result<T, E> + Send,
) -> Result<T, E> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    fs::File::create(path).map_err(io("create", path))?;
    let made = std::thread::scope(|s| {
        s.spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).map_err(sys("unshare for", path))?;
            let own = Path::new("/proc/thread-self/ns/net");
            mount(
                Some(own),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys("bind mount", path))?;
            setup()
        })
        .join()
        .map_err(|_| E::from(NetnsError::Thread))?
    });
    if made.is_err() {
        let _ = remove(path); // best effort: the error that matters is returned below
    }
    made
}

/// Unpins and removes a namespace created by [`create`]; the kernel frees it once no process
/// or device holds it.
pub fn remove(path: &Path) -> Result<(), NetnsError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) => {}
        Err(nix::Error::ENOENT) => return Ok(()),
        Err(e) => return Err(sys("unmount", path)(e)),
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Runs `f` on a fresh thread inside the namespace at `path`.
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    let file = fs::File::open(path).map_err(io("open", path))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(sys("enter", path))?;
            Ok(f())
        })
        .join()
        .map_err(|_| NetnsError::Thread)?
    })
}

/// Writes a sysctl of the calling thread's network namespace.
pub fn set_sysctl(name: &str, value: &str) -> Result<(), NetnsError> {
    let path = PathBuf::from("/proc/sys").join(name.replace('.', "/"));
    fs::write(&path, value).map_err(io("write", &path))
}

/// Turns IPv6 off on device `name` of the calling thread's namespace while it is down, so that
/// bringing it up adds no IPv6 route: each host-side veth would add an `ff00::/8` route to the
/// host's table, and inserting one more costs a walk over all of them. A kernel without IPv6 has
/// nothing to turn off.
pub fn turn_off_ipv6(name: &str) -> Result<(), NetnsError> {
    let path = Path::new("/proc/sys/net/ipv6/conf")
        .join(name)
        .join("disable_ipv6");
    match fs::write(&path, "1") {
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && !Path::new("/proc/sys/net/ipv6").exists() =>
        {
            Ok(())
        }
        result => result.map_err(io("write", &path)),
    }
}

/// The (device, inode) pair that identifies a namespace file.
fn identity(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Processes whose network namespace is the one at `path`.
pub fn pids_in(path: &Path) -> Vec<i32> {
    let Some(target) = identity(path) else {
        return vec![];
    };
    let Ok(entries) = fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| identity(&PathBuf::from(format!("/proc/{pid}/ns/net"))) == Some(target))
        .collect()
}

/// The cookie the kernel gives the calling thread's network namespace (`SO_NETNS_COOKIE`).
pub fn cookie() -> std::io::Result<u64> {
    use std::os::fd::AsRawFd as _;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")
        .or_else(|_| std::net::UdpSocket::bind("0.0.0.0:0"))?;
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cookie`, which is that large.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cookie)
}
