//! The state dir under stress: a full disk refuses requests with a one-line error and leaves
//! the kernel and the saved state as they were (the request's undo runs), requests work again
//! once there is space, and a corrupt journal line at start is reported and skipped while the
//! rest of the journal is recovered.
use std::path::{Path, PathBuf};

use netd_tests::{run, Host};

/// A tmpfs mounted over a directory, lazily unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Moves what `dir` holds onto a new tmpfs of `size` mounted over it.
    fn over(dir: &Path, size: &str) -> Tmpfs {
        let saved = dir.with_extension("saved");
        std::fs::rename(dir, &saved).expect("move the state dir aside");
        std::fs::create_dir(dir).expect("mount point");
        let d = dir.display().to_string();
        let out = run(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &d],
        );
        assert!(out.ok(), "mount tmpfs: {}", out.stderr);
        let guard = Tmpfs(dir.to_path_buf());
        let out = run("cp", &["-a", &format!("{}/.", saved.display()), &d]);
        assert!(out.ok(), "copy the state: {}", out.stderr);
        guard
    }

    /// Fills the tmpfs to the last byte.
    fn fill(&self) {
        let of = format!("of={}", self.0.join("fill").display());
        run("dd", &["if=/dev/zero", &of, "bs=4096"]);
        let out = run("df", &["--output=avail", &self.0.display().to_string()]);
        let avail = out.stdout.lines().nth(1).unwrap_or("").trim().to_string();
        assert_eq!(avail, "0", "the tmpfs is full");
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("fill")).expect("remove the filler");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        run("umount", &["-l", &self.0.display().to_string()]);
    }
}

/// What a refused request must leave as it was: devices, namespace files, containers,
/// networks, and `netd check` agreeing.
fn snapshot(host: &Host) -> (Vec<String>, Vec<String>, String, String) {
    let check = host.netd(&["check"]);
    assert!(check.ok(), "netd check: {}{}", check.stdout, check.stderr);
    (
        host.devices(),
        host.netns_files().into_iter().collect(),
        host.ok(&["container", "ls", "--format", "json"]),
        host.ok(&["network", "ls", "--format", "json"]),
    )
}

#[test]
fn a_full_state_disk_refuses_requests_changes_nothing_and_loses_nothing() {
    let Some(mut host) = Host::start() else {
        return;
    };
    host.container("kept", &["-p", "8080:80"]);
    host.ok(&["container", "create", "waiting"]);
    host.ok(&["network", "create", "n0"]);
    host.stop_daemon("TERM");
    let disk = Tmpfs::over(&host.dir.join("state"), "1m");
    host.start_daemon();
    disk.fill();
    let before = snapshot(&host);
    let kept_ip = host.ip("kept", "bridge");
    for request in [
        &["container", "create", "new"][..],
        &["container", "start", "waiting"],
        &["network", "create", "n1"],
        &["network", "connect", "n0", "kept"],
        &["container", "publish", "kept", "8081:80"],
        &["container", "unpublish", "kept", "8080:80"],
        &["container", "stop", "kept"],
        &["container", "rm", "-f", "kept"],
        &["network", "rm", "n0"],
    ] {
        let err = host.fails(request);
        assert!(
            err.contains("No space left on device") && err.contains("journal.jsonl"),
            "{request:?}: {err}"
        );
        assert_eq!(snapshot(&host), before, "{request:?} changed something");
    }
    assert!(
        host.on_host(&["busybox", "ping", "-c", "1", "-W", "1", &kept_ip])
            .ok(),
        "the running container still answers"
    );
    disk.free();
    host.ok(&["container", "start", "waiting"]);
    host.ok(&["container", "create", "new"]);
    host.ok(&["container", "publish", "kept", "8081:80"]);
    let after = snapshot(&host);
    // A daemon killed on a full disk comes back (its journal cannot be folded into the object
    // files now, and is kept), then once there is space again.
    disk.fill();
    host.stop_daemon("KILL");
    host.start_daemon();
    assert_eq!(
        snapshot(&host),
        after,
        "everything committed is still there"
    );
    disk.free();
    host.stop_daemon("KILL");
    host.start_daemon();
    assert_eq!(snapshot(&host), after, "and still after a start with space");
    assert!(
        host.daemon_log()
            .contains("cannot compact the state journal"),
        "the start on a full disk put compaction off"
    );
}

#[test]
fn a_corrupt_journal_line_is_reported_kept_aside_and_the_rest_recovered() {
    let Some(mut host) = Host::start() else {
        return;
    };
    host.ok(&["container", "create", "aa"]);
    host.ok(&["container", "start", "aa"]);
    host.ok(&["network", "create", "n1"]);
    let listed = host.ok(&["container", "ls", "--format", "json"]);
    host.stop_daemon("KILL");
    let journal = host.dir.join("state/journal.jsonl");
    let text = std::fs::read_to_string(&journal).expect("journal");
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "one line per commit: {text}");
    lines.insert(1, "{\"containers\":{\"a\":{\"name\":");
    std::fs::write(&journal, lines.join("\n") + "\n").expect("corrupt the journal");
    host.start_daemon();
    let log = host.daemon_log();
    let reported = log
        .lines()
        .find(|l| l.contains("journal.jsonl:2:"))
        .unwrap_or_else(|| panic!("no report of line 2:\n{log}"));
    assert!(reported.contains("ERROR"), "{reported}");
    let kept: Vec<String> = std::fs::read_dir(host.dir.join("state"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("journal.jsonl.corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let side = std::fs::read_to_string(host.dir.join("state").join(&kept[0])).unwrap();
    assert_eq!(side, "2\t{\"containers\":{\"a\":{\"name\":\n");
    assert_eq!(
        host.ok(&["container", "ls", "--format", "json"]),
        listed,
        "the lines around the bad one are recovered"
    );
    host.ok(&["network", "inspect", "n1"]);
    let check = host.netd(&["check"]);
    assert!(check.ok(), "{}", check.stdout);
}
