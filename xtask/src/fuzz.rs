//! `cargo xtask fuzz [--minutes N]`: the fuzzing that `cargo xtask test` runs briefly, run for a
//! set time. Three kinds of targets share the time:
//!
//! * the property tests of netd's parsers and DNS handling (`props` modules next to the code,
//!   proptest), in rounds of `PROPTEST_CASES` cases each, every round with fresh random inputs;
//! * the BPF datapath fuzzer (`tests/tests/bpf_fuzz.rs`, `BPF_PROG_TEST_RUN`), in rounds of
//!   `NETD_FUZZ_FRAMES` frames, every round with its own seed (printed, to reproduce a failure);
//! * the coverage-guided libFuzzer targets in `fuzz/` (cargo-fuzz, nightly; `cargo install
//!   cargo-fuzz` first when it is missing), each for its share of the time.
//!
//! It prints the executions of every target and the crashes (failed cases, violated invariants,
//! libFuzzer crash artifacts) found, and fails if there was any.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::{prereqs, util};

/// Cases per property test and round.
const PROPTEST_CASES: u64 = 1000;
/// Frames per BPF program and round.
const BPF_FRAMES: u64 = 5000;

/// What one target did.
#[derive(Default)]
struct Tally {
    executions: u64,
    crashes: Vec<String>,
}

type Results = BTreeMap<String, Tally>;

/// Runs every kind of fuzzing for about `minutes` in total (builds not counted).
pub fn fuzz(minutes: f64) -> Result<ExitCode> {
    prereqs::ensure()?;
    let budget = Duration::from_secs_f64(minutes.max(0.1) * 60.0);
    let props = test_binary(&["-p", "netd", "--lib"], "netd")?;
    let bpf = test_binary(&["-p", "netd-tests", "--test", "bpf_fuzz"], "bpf_fuzz")?;
    let libfuzzer = libfuzzer_targets()?;
    // Coverage-guided fuzzing finds the most: it gets half the time when it is there.
    let share = |part: f64| budget.mul_f64(part);
    let (props_time, bpf_time, libfuzzer_time) = match libfuzzer.is_empty() {
        true => (share(0.5), share(0.5), Duration::ZERO),
        false => (share(0.25), share(0.25), share(0.5)),
    };
    let mut results = Results::new();
    let started = Instant::now();
    run_props(&props, props_time, &mut results)?;
    run_bpf(&bpf, bpf_time, &mut results)?;
    if !libfuzzer.is_empty() {
        let each = libfuzzer_time.div_f64(libfuzzer.len() as f64);
        for target in &libfuzzer {
            run_libfuzzer(target, each, &mut results)?;
        }
    }
    Ok(report(&results, started.elapsed()))
}

/// Builds one test binary with `cargo test --no-run` and returns its path.
fn test_binary(args: &[&str], name: &str) -> Result<PathBuf> {
    let mut cmd = util::cargo();
    cmd.args(["test", "--no-run", "--message-format=json"])
        .args(args);
    let out = util::output(&mut cmd, &format!("build the {name} tests"))?;
    out.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .filter(|m| m["profile"]["test"] == true)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .with_context(|| format!("cargo test --no-run named no test binary {name}"))
}

/// The property tests, in rounds until `time` is used.
fn run_props(binary: &Path, time: Duration, results: &mut Results) -> Result<()> {
    let deadline = Instant::now() + time;
    let mut round = 0;
    while Instant::now() < deadline && !util::interrupted() {
        round += 1;
        let mut cmd = util::command(binary);
        cmd.args(["props::", "--test-threads", "2"])
            .env("PROPTEST_CASES", PROPTEST_CASES.to_string())
            .current_dir(util::workspace_root().join("netd"));
        let out = captured(&mut cmd, deadline + Duration::from_secs(600))?;
        let mut seen = 0;
        for line in out.lines() {
            let Some(rest) = line.strip_prefix("test ") else {
                continue;
            };
            let Some((name, verdict)) = rest.split_once(" ... ") else {
                continue;
            };
            seen += 1;
            let tally = results.entry(format!("proptest {name}")).or_default();
            match verdict.trim() {
                "ok" => tally.executions += PROPTEST_CASES,
                _ => tally.crashes.push(failure_of(&out, name)),
            }
        }
        if seen == 0 {
            bail!("the property tests ran no test: {}", out.trim());
        }
        println!("fuzz: property tests, round {round} done ({seen} tests)");
    }
    Ok(())
}

/// What proptest said about the failing test `name`: its panic message and minimal input.
fn failure_of(out: &str, name: &str) -> String {
    let header = format!("---- {name} stdout ----");
    let text: Vec<&str> = out
        .split(&header)
        .nth(1)
        .unwrap_or("")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take_while(|l| !l.starts_with("---- ") && !l.starts_with("failures:"))
        .take(12)
        .collect();
    text.join("\n    ")
}

/// The BPF fuzzer, in rounds with a seed each until `time` is used.
fn run_bpf(binary: &Path, time: Duration, results: &mut Results) -> Result<()> {
    let deadline = Instant::now() + time;
    let base: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut round = 0;
    while Instant::now() < deadline && !util::interrupted() {
        let seed = base + round;
        round += 1;
        let mut cmd = util::command(binary);
        cmd.args(["--nocapture", "--test-threads", "1"])
            .env("NETD_FUZZ_FRAMES", BPF_FRAMES.to_string())
            .env("NETD_FUZZ_SEED", seed.to_string());
        let out = captured(&mut cmd, deadline + Duration::from_secs(600))?;
        let mut programs = 0;
        for line in out.lines() {
            // "bpf_fuzz: netd_endpoint_ingress: 907 runs (93 frames refused ...), ..."
            let Some(rest) = line.strip_prefix("bpf_fuzz: ") else {
                continue;
            };
            let Some((program, rest)) = rest.split_once(": ") else {
                continue;
            };
            let words: Vec<&str> = rest.split_whitespace().collect();
            let (Some(runs), Some(refused)) = (
                words.first().and_then(|w| w.parse::<u64>().ok()),
                words
                    .get(2)
                    .and_then(|w| w.trim_start_matches('(').parse::<u64>().ok()),
            ) else {
                continue;
            };
            programs += 1;
            let tally = results.entry(format!("bpf {program}")).or_default();
            tally.executions += runs + refused;
            let violations = rest
                .rsplit(", ")
                .next()
                .and_then(|w| w.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            if violations > 0 {
                let first = out
                    .lines()
                    .find(|l| l.starts_with(&format!("{program}: ")))
                    .unwrap_or("");
                tally.crashes.push(format!(
                    "seed {seed}: {violations} violations, first: {first}"
                ));
            }
        }
        if programs == 0 {
            bail!("the BPF fuzzer printed no figures: {}", out.trim());
        }
        println!("fuzz: BPF fuzzer, round {round} (seed {seed}) done");
    }
    Ok(())
}

/// The libFuzzer targets of `fuzz/`, built; none when cargo-fuzz cannot be had.
fn libfuzzer_targets() -> Result<Vec<String>> {
    let dir = util::workspace_root().join("fuzz");
    if !dir.join("Cargo.toml").is_file() {
        return Ok(vec![]);
    }
    if util::find_executable("cargo-fuzz").is_none() {
        let mut install = util::cargo();
        install.args(["install", "cargo-fuzz", "--locked"]);
        util::run(&mut install, "install cargo-fuzz")?;
    }
    let mut list = cargo_fuzz(&dir);
    list.arg("list");
    let targets: Vec<String> = util::output(&mut list, "cargo fuzz list")?
        .lines()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect();
    let mut build = cargo_fuzz(&dir);
    build.args(["build", "-O"]);
    util::run(&mut build, "cargo fuzz build")?;
    Ok(targets)
}

/// `cargo +nightly fuzz` in `dir` (cargo-fuzz needs nightly for the sanitizer flags).
fn cargo_fuzz(dir: &Path) -> Command {
    let mut cmd = util::command("cargo");
    cmd.args(["+nightly", "fuzz"]).current_dir(dir);
    cmd
}

/// One libFuzzer target for `time`; libFuzzer's final stats give the executions.
fn run_libfuzzer(target: &str, time: Duration, results: &mut Results) -> Result<()> {
    let dir = util::workspace_root().join("fuzz");
    let mut cmd = cargo_fuzz(&dir);
    cmd.args(["run", "-O", target, "--"])
        .arg(format!("-max_total_time={}", time.as_secs().max(1)))
        .args(["-print_final_stats=1", "-max_len=4096"]);
    let scratch = util::target_dir();
    std::fs::create_dir_all(&scratch)?;
    let out = util::run_captured(&mut cmd, time + Duration::from_secs(300), &scratch)?;
    let stats = format!("{}\n{}", out.stdout, out.stderr);
    let tally = results.entry(format!("libfuzzer {target}")).or_default();
    tally.executions += stats
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if !out.success() {
        let artifact = stats
            .lines()
            .find(|l| l.contains("Test unit written to"))
            .unwrap_or("no artifact named");
        let why = stats
            .lines()
            .find(|l| l.contains("panicked at") || l.contains("ERROR: "))
            .unwrap_or("exited with failure");
        tally.crashes.push(format!("{why} ({artifact})"));
    }
    println!("fuzz: libFuzzer {target} done");
    Ok(())
}

/// Runs a command with its output captured (stdout and stderr together), killed after
/// `until`.
fn captured(cmd: &mut Command, until: Instant) -> Result<String> {
    let scratch = util::target_dir();
    std::fs::create_dir_all(&scratch)?;
    let timeout = until.saturating_duration_since(Instant::now());
    let out = util::run_captured(cmd, timeout, &scratch)?;
    Ok(format!("{}\n{}", out.stdout, out.stderr))
}

/// Prints executions and crashes per target; failure if anything crashed.
fn report(results: &Results, elapsed: Duration) -> ExitCode {
    println!("\nfuzz: {:.1} minutes", elapsed.as_secs_f64() / 60.0);
    println!("{:<80} {:>12} {:>8}", "target", "executions", "crashes");
    for (name, t) in results {
        println!("{name:<80} {:>12} {:>8}", t.executions, t.crashes.len());
    }
    let total: u64 = results.values().map(|t| t.executions).sum();
    let crashes: Vec<(&String, &String)> = results
        .iter()
        .flat_map(|(n, t)| t.crashes.iter().map(move |c| (n, c)))
        .collect();
    println!("{:<80} {total:>12} {:>8}", "total", crashes.len());
    for (name, crash) in &crashes {
        println!("\ncrash in {name}:\n    {crash}");
    }
    match crashes.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}
