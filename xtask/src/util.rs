//! Shared helpers: where the workspace is, and spawning commands with `~/.cargo/bin` on `PATH`
//! (cargo-installed tools such as bpf-linker live there), with errors that name the step.

use std::{
    env,
    ffi::OsString,
    fs::File,
    io::{Read as _, Seek as _, SeekFrom},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

/// Directories searched for system tools even when the caller's `PATH` lacks the sbin ones.
const SYSTEM_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` if set, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// Where `cargo install` puts binaries: `$CARGO_HOME/bin`, else `~/.cargo/bin`.
pub fn cargo_bin_dir() -> PathBuf {
    match env::var_os("CARGO_HOME") {
        Some(home) => PathBuf::from(home).join("bin"),
        None => {
            PathBuf::from(env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cargo/bin")
        }
    }
}

/// The caller's `PATH` with the cargo bin dir and the system dirs added where missing.
pub fn path_env() -> OsString {
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    let cargo_bin = cargo_bin_dir();
    if !dirs.contains(&cargo_bin) {
        dirs.insert(0, cargo_bin);
    }
    for dir in SYSTEM_DIRS.map(PathBuf::from) {
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    env::join_paths(dirs).unwrap_or_default()
}

/// A command whose `PATH` (used for the program lookup too) includes the cargo bin dir.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("PATH", path_env());
    cmd
}

/// `cargo` (the rustup proxy found on `PATH`), run in the workspace root.
pub fn cargo() -> Command {
    let mut cmd = command("cargo");
    cmd.current_dir(workspace_root());
    cmd
}

/// Finds an executable by name on [`path_env`].
pub fn find_executable(name: &str) -> Option<PathBuf> {
    env::split_paths(&path_env())
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The command line, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Runs a command with inherited stdio; fails, naming `step`, unless it exits with status 0.
pub fn run(cmd: &mut Command, step: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("{step}: cannot run `{}`", describe(cmd)))?;
    if !status.success() {
        bail!("{step}: `{}` failed ({status})", describe(cmd));
    }
    Ok(())
}

/// Runs a command, capturing its output; fails, naming `step` and showing stderr, unless it
/// exits with status 0. Returns stdout.
pub fn output(cmd: &mut Command, step: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{step}: cannot run `{}`", describe(cmd)))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{step}: `{}` failed ({}): {}",
            describe(cmd),
            out.status,
            stderr.trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What a command run by [`run_captured`] did.
pub struct Captured {
    /// Exit status; `None` if it was killed after the timeout.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    /// Whether the command exited with status 0 in time.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs a command with a timeout, capturing stdout and stderr in unlinked files under `scratch`
/// rather than pipes, so a background process it leaves behind cannot keep us waiting.
pub fn run_captured(cmd: &mut Command, timeout: Duration, scratch: &Path) -> Result<Captured> {
    let mut stdout = scratch_file(scratch, "stdout")?;
    let mut stderr = scratch_file(scratch, "stderr")?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(stdout.try_clone()?)
        .stderr(stderr.try_clone()?)
        .spawn()
        .with_context(|| format!("cannot run `{}`", describe(cmd)))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    Ok(Captured {
        status,
        stdout: read_back(&mut stdout)?,
        stderr: read_back(&mut stderr)?,
    })
}

/// Creates a file in `dir` and unlinks it at once; the handle stays usable. Each call gets a
/// name of its own: threads that capture commands at once must not share (or unlink) a file.
fn scratch_file(dir: &Path, what: &str) -> Result<File> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!(".{what}.{}.{n}", std::process::id()));
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .with_context(|| format!("create {}", path.display()))?;
    std::fs::remove_file(&path).with_context(|| format!("unlink {}", path.display()))?;
    Ok(file)
}

fn read_back(file: &mut File) -> Result<String> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// From now on SIGINT and SIGTERM only set a flag (see [`interrupted`]), so that the caller can
/// stop at the next step and still clean up.
pub fn catch_interrupts() {
    let handler = on_interrupt as extern "C" fn(libc::c_int);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, handler as libc::sighandler_t) };
    }
}

/// Whether SIGINT or SIGTERM arrived since [`catch_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
