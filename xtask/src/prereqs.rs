//! Idempotent installation of everything netd needs on a fresh Debian 12 machine (root, with apt,
//! crates.io and rustup reachable). Each step prints one line and skips what is already present:
//! the nightly toolchain with `rust-src` (aya-build compiles netd-ebpf with `-Z build-std=core`),
//! bpf-linker (and the LLVM 22 packages it links against), the runtime tools, and bpffs.

use std::{ffi::CString, os::unix::ffi::OsStrExt as _, path::Path};

use anyhow::{Context as _, Result};

use crate::util;

/// Debian packages that `cargo install bpf-linker` links against.
const LLVM_PACKAGES: [&str; 4] = [
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
];

/// Runtime tools: (command, Debian package that provides it).
const TOOLS: [(&str, &str); 16] = [
    ("socat", "socat"),
    ("dnsmasq", "dnsmasq-base"),
    ("dig", "dnsutils"),
    ("ip", "iproute2"),
    ("busybox", "busybox-static"),
    ("bpftool", "bpftool"),
    ("nsenter", "util-linux"),
    ("ps", "procps"),
    // A packet socket in a container counts the ARP frames it sees (tests/tests/neighbors.rs).
    ("python3", "python3"),
    // The etcd client crate compiles etcd's protos when netd builds.
    ("protoc", "protobuf-compiler"),
    // The cluster store of overlay networks, in tests, the demo and the bench.
    ("etcd", "etcd-server"),
    // `ping -M do`: path-MTU discovery through the overlay (tests/tests/overlay.rs).
    ("ping", "iputils-ping"),
    // A real container runtime on netd networks through the CNI plugin (tests/tests/podman.rs).
    ("podman", "podman"),
    // dockerd on netd networks through the Docker plugin (tests/tests/docker.rs); it starts the
    // containerd it needs itself.
    ("dockerd", "docker.io"),
    // Reading rulesets, to show that nothing (netd, podman) added a rule.
    ("nft", "nftables"),
    ("iptables-legacy-save", "iptables"),
];

const BPFFS: &str = "/sys/fs/bpf";
/// `BPF_FS_MAGIC` from linux/magic.h.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Installs what is missing; one line of output per step.
pub fn ensure() -> Result<()> {
    ensure_nightly()?;
    ensure_rust_src()?;
    let linker = util::find_executable("bpf-linker");
    let mut packages = Vec::new();
    match &linker {
        Some(path) => report("bpf-linker", &format!("present ({})", path.display())),
        None => packages.extend(missing_packages(&LLVM_PACKAGES)?),
    }
    packages.extend(missing_tools());
    apt_install(&packages)?;
    if linker.is_none() {
        install_bpf_linker()?;
    }
    ensure_bpffs()
}

fn report(step: &str, outcome: &str) {
    println!("prereqs: {step}: {outcome}");
}

fn ensure_nightly() -> Result<()> {
    let step = "rust nightly toolchain";
    let list = util::output(util::command("rustup").args(["toolchain", "list"]), step)?;
    if list.lines().any(|l| l.starts_with("nightly-")) {
        report(step, "present");
        return Ok(());
    }
    report(step, "installing");
    let mut cmd = util::command("rustup");
    cmd.args(["toolchain", "install", "nightly", "--profile", "minimal"]);
    util::run(&mut cmd, step)
}

fn ensure_rust_src() -> Result<()> {
    let step = "rust-src for nightly";
    let mut list = util::command("rustup");
    list.args(["component", "list", "--toolchain", "nightly", "--installed"]);
    if util::output(&mut list, step)?
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        report(step, "present");
        return Ok(());
    }
    report(step, "installing");
    let mut cmd = util::command("rustup");
    cmd.args(["component", "add", "rust-src", "--toolchain", "nightly"]);
    util::run(&mut cmd, step)
}

/// The packages of `names` that dpkg does not report as installed.
fn missing_packages(names: &[&str]) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    for name in names {
        let mut query = util::command("dpkg-query");
        query.args(["-W", "-f=${Status}", name]);
        let installed = query
            .output()
            .context("apt: cannot run dpkg-query")?
            .stdout
            .ends_with(b" installed");
        report(
            &format!("package {name}"),
            if installed { "present" } else { "missing" },
        );
        if !installed {
            missing.push(name.to_string());
        }
    }
    Ok(missing)
}

/// The packages providing the runtime tools that are not found.
fn missing_tools() -> Vec<String> {
    let mut missing = Vec::new();
    for (tool, package) in TOOLS {
        let step = format!("tool {tool} ({package})");
        match util::find_executable(tool) {
            Some(path) => report(&step, &format!("present ({})", path.display())),
            None => {
                report(&step, "missing");
                missing.push(package.to_string());
            }
        }
    }
    missing
}

/// `apt-get update` once, then installs `packages`; does nothing if the list is empty.
fn apt_install(packages: &[String]) -> Result<()> {
    if packages.is_empty() {
        report("apt packages", "nothing to install");
        return Ok(());
    }
    report(
        "apt packages",
        &format!("installing {}", packages.join(" ")),
    );
    let mut update = util::command("apt-get");
    update
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive");
    util::run(&mut update, "apt-get update")?;
    let mut install = util::command("apt-get");
    install
        .args(["install", "-y"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    let _no_services = NoServiceStarts::new()?;
    util::run(&mut install, "apt-get install")
}

/// Debian's `policy-rc.d` (exit 101: do not start services) for the time of an install, so
/// that the packages' services (etcd, dockerd) never start on the machine itself: tests and
/// the demo run their own, in namespaces. Left alone if the machine has one already.
struct NoServiceStarts(Option<&'static Path>);

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

impl NoServiceStarts {
    fn new() -> Result<Self> {
        let path = Path::new(POLICY_RC_D);
        if path.exists() {
            return Ok(Self(None));
        }
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(
            path,
            "#!/bin/sh\n# netd's prereqs: no service starts during install\nexit 101\n",
        )
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)))
        .with_context(|| format!("cannot write {POLICY_RC_D}"))?;
        Ok(Self(Some(path)))
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if let Some(path) = self.0 {
            if let Err(e) = std::fs::remove_file(path) {
                eprintln!("prereqs: cannot remove {}: {e}", path.display());
            }
        }
    }
}

fn install_bpf_linker() -> Result<()> {
    let step = "bpf-linker";
    report(step, "installing with cargo install (about a minute)");
    let mut path = std::ffi::OsString::from("/usr/lib/llvm-22/bin:");
    path.push(util::path_env());
    let mut cmd = util::cargo();
    cmd.args([
        "install",
        "bpf-linker",
        "--no-default-features",
        "--features",
        "llvm-22",
    ])
    .env("PATH", path);
    util::run(&mut cmd, step)
}

fn ensure_bpffs() -> Result<()> {
    let step = format!("bpffs at {BPFFS}");
    if is_bpffs(Path::new(BPFFS))? {
        report(&step, "mounted");
        return Ok(());
    }
    report(&step, "mounting");
    let mut cmd = util::command("mount");
    cmd.args(["-t", "bpf", "bpf", BPFFS]);
    util::run(&mut cmd, &step)
}

/// Whether `path` is on a bpf filesystem (statfs magic `BPF_FS_MAGIC`).
fn is_bpffs(path: &Path) -> Result<bool> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: an all-zero statfs is a valid value for the kernel to overwrite.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is NUL-terminated and buf is a valid, writable statfs.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut buf) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("statfs {}", path.display()));
    }
    // f_type's integer type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    let magic = buf.f_type as i64;
    Ok(magic == BPF_FS_MAGIC)
}

/// Tools only `cargo xtask bench` needs: (command or file, Debian package that provides it).
/// docker.io is installed for `/usr/sbin/docker-proxy` alone: dockerd is never started (and a
/// policy-rc.d that forbids starting services is respected by the package's scripts). nft, wrk
/// and dnsperf are not driven by the benchmark; they are there to look into its figures by hand.
const BENCH_TOOLS: [(&str, &str); 9] = [
    ("iperf3", "iperf3"),
    ("sockperf", "sockperf"),
    ("/usr/sbin/docker-proxy", "docker.io"),
    ("iptables-nft-restore", "iptables"),
    ("nft", "nftables"),
    ("/usr/lib/podman/aardvark-dns", "aardvark-dns"),
    ("wrk", "wrk"),
    ("dnsperf", "dnsperf"),
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "fonts-dejavu-core",
    ),
];

/// Installs the benchmark's tools that are missing (called by `cargo xtask bench` only).
pub fn ensure_bench() -> Result<()> {
    let mut missing = Vec::new();
    for (tool, package) in BENCH_TOOLS {
        let step = format!("bench tool {tool} ({package})");
        let found = if tool.starts_with('/') {
            Path::new(tool)
                .exists()
                .then(|| Path::new(tool).to_path_buf())
        } else {
            util::find_executable(tool)
        };
        match found {
            Some(path) => report(&step, &format!("present ({})", path.display())),
            None => {
                report(&step, "missing");
                missing.push(package.to_string());
            }
        }
    }
    if missing.is_empty() {
        report("bench apt packages", "nothing to install");
        return Ok(());
    }
    report(
        "bench apt packages",
        &format!("installing {}", missing.join(" ")),
    );
    let mut update = util::command("apt-get");
    update
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive");
    util::run(&mut update, "apt-get update")?;
    let mut install = util::command("apt-get");
    install
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    let _no_services = NoServiceStarts::new()?;
    util::run(&mut install, "apt-get install")
}
