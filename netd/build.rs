//! Builds `netd-ebpf` for the BPF target with aya-build so that `cargo build -p netd` is the whole
//! build and the daemon binary embeds its programs.
use anyhow::{anyhow, Context as _};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let metadata = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("netd has no parent directory"))?
        .join("netd-ebpf");
    let root_dir = metadata
        .to_str()
        .context("netd-ebpf path is not UTF-8")?
        .to_owned();
    let package = Package {
        name: "netd-ebpf",
        root_dir: &root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::default())
}
