//! Developer verbs for netd, run as `cargo xtask <verb>` (alias in `.cargo/config.toml`).
//!
//! One module per verb, as aya-rs/aya's xtask does. Every verb installs what it needs first, so the
//! README's commands work on a fresh Debian 12 machine (root, apt, crates.io and rustup reachable).

mod bench;
mod build;
mod compare;
mod demo;
mod fuzz;
mod lab;
mod prereqs;
mod run;
mod test;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run, test and demonstrate netd")]
struct Cli {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Install every prerequisite (toolchains, bpf-linker, runtime tools, bpffs); skips what is present.
    Prereqs,
    /// Build target/release/netd, one binary with the eBPF programs embedded.
    Build {
        /// Build target/debug/netd instead.
        #[arg(long)]
        debug: bool,
    },
    /// Build, then run `netd daemon ARGS` on this host (touches the real host's networking).
    Run {
        /// Arguments for `netd daemon`, after `--`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build netd (debug) and run every test in the workspace; extra args go to `cargo test`.
    Test {
        /// Arguments for `cargo test`, e.g. a test name filter.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Fuzz the parsers, the API decoder, the DNS server and the BPF programs for a while.
    Fuzz {
        /// Total time, shared by property tests, the BPF fuzzer and the libFuzzer targets.
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
    },
    /// Walk through netd's scenarios with real traffic in throwaway namespaces.
    Demo,
    /// Run the seeds on netd's CLI and on stock dockerd 20.10 side by side and print what
    /// differs; fails on a difference README.md does not list as intended.
    CompareDocker,
    /// Benchmark netd against Docker's iptables datapath, docker-proxy and plain routing.
    Bench {
        /// Short rounds, no scale figures (about a minute; what CI runs).
        #[arg(long)]
        quick: bool,
        /// Run one phase alone (`load`: the load phase in the netd world; `conns`: short
        /// connections through netd's published port and plain routing; `overlay`: netd's
        /// overlay network across hosts against the underlay and a kernel VXLAN overlay; with
        /// --quick their short forms); the report goes to target/bench/report.md only.
        #[arg(long, value_name = "PHASE")]
        only: Option<String>,
        /// Internal: a load generator or server run inside the benchmark's namespaces.
        #[arg(long, hide = true, num_args = 1.., allow_hyphen_values = true)]
        helper: Vec<String>,
    },
}

fn main() -> ExitCode {
    match dispatch(Cli::parse().verb) {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` gives the whole context chain on one line, without anyhow's backtrace.
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(verb: Verb) -> anyhow::Result<ExitCode> {
    match verb {
        Verb::Prereqs => prereqs::ensure().map(|()| ExitCode::SUCCESS),
        Verb::Build { debug } => build::build(!debug).map(|_| ExitCode::SUCCESS),
        Verb::Run { args } => run::run(&args).map(|()| ExitCode::SUCCESS),
        Verb::Test { args } => test::test(&args).map(|()| ExitCode::SUCCESS),
        Verb::Demo => demo::demo(),
        Verb::CompareDocker => compare::compare_docker().map(|()| ExitCode::SUCCESS),
        Verb::Fuzz { minutes } => fuzz::fuzz(minutes),
        Verb::Bench {
            quick,
            only,
            helper,
        } => bench::main(quick, only.as_deref(), &helper),
    }
}
