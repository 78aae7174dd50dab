//! What the podman and dockerd harnesses share: an image made from the machine's
//! busybox-static (no registry here), and the cgroup parent a runtime's containers go under,
//! removed with whatever is left in it.
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{cgroup2_root, run};

/// A rootfs tarball in `dir`: busybox-static with its applets, and a web root whose index says
/// `greeting` and whose CGI script `/cgi-bin/ip` answers with the client's address. Its path.
pub fn busybox_tarball(dir: &Path, greeting: &str) -> String {
    let rootfs = dir.join("rootfs");
    let bin = rootfs.join("bin");
    for sub in [bin.clone(), rootfs.join("www/cgi-bin"), rootfs.join("tmp")] {
        std::fs::create_dir_all(sub).expect("rootfs");
    }
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static");
    for applet in run("/bin/busybox", &["--list"]).stdout.lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet link");
        }
    }
    let cgi = rootfs.join("www/cgi-bin/ip");
    let script = "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"$REMOTE_ADDR\"\n";
    std::fs::write(&cgi, script).expect("cgi script");
    run("chmod", &["+x", &cgi.display().to_string()]);
    std::fs::write(rootfs.join("www/index.html"), format!("{greeting}\n")).expect("index");
    let tar = dir.join("busybox.tar").display().to_string();
    let made = run(
        "tar",
        &["-C", &rootfs.display().to_string(), "-cf", &tar, "."],
    );
    assert!(made.ok(), "tar: {}", made.stderr);
    tar
}

/// A cgroup parent (`NAME` under every hierarchy's root) for a runtime's containers.
pub struct CgroupParent(pub String);

impl CgroupParent {
    /// `/NAME`, as runtimes take it.
    pub fn path(&self) -> String {
        format!("/{}", self.0)
    }

    /// Its dirs in every hierarchy, deepest first.
    fn dirs(&self) -> Vec<PathBuf> {
        let mut roots = vec![cgroup2_root()];
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            roots.extend(entries.flatten().map(|e| e.path()));
        }
        let mut dirs = Vec::new();
        for root in roots {
            collect_dirs(&root.join(&self.0), &mut dirs);
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        dirs.dedup();
        dirs
    }

    /// Kills what is left in it (a monitor process leaves a moment after its container), waits
    /// for it to be empty and removes it; reports what it could not remove (drop code: no
    /// panic).
    pub fn remove(&self) {
        for dir in self.dirs() {
            let procs = dir.join("cgroup.procs");
            for pid in std::fs::read_to_string(&procs)
                .unwrap_or_default()
                .split_whitespace()
            {
                run("kill", &["-KILL", pid]);
            }
            settle(Duration::from_secs(10), || {
                std::fs::read_to_string(&procs).map_or(true, |p| p.trim().is_empty())
            });
            if let Err(e) = std::fs::remove_dir(&dir) {
                eprintln!("cannot remove {}: {e}", dir.display());
            }
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    out.push(dir.to_path_buf());
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&entry.path(), out);
        }
    }
}

/// Waits up to `limit` for `done`, without panicking (drop code).
pub fn settle(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}
