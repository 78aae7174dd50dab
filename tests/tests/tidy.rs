//! House rules checked as a plain test: every Rust module starts with a `//!` doc comment, and
//! the product (everything but tests, xtask and benchmarks) never names a firewall tool or
//! docker-proxy.
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && !name.to_string_lossy().starts_with('.') {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_has_a_doc_comment() {
    let mut files = vec![];
    rust_files(&workspace(), &mut files);
    assert!(files.len() > 20, "found only {files:?}");
    let undocumented: Vec<_> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "modules without //! docs: {undocumented:?}"
    );
}

#[test]
fn the_product_never_runs_firewall_tools_or_a_proxy() {
    let mut files = vec![];
    for crate_dir in ["netd", "netd-ebpf", "netd-common"] {
        rust_files(&workspace().join(crate_dir), &mut files);
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for tool in ["\"iptables", "\"ip6tables", "\"nft\"", "\"docker-proxy"] {
            assert!(!text.contains(tool), "{} names {tool}", file.display());
        }
    }
}
