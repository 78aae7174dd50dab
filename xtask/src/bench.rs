//! `cargo xtask bench`: benchmarks are a separate issue; until then this says so and fails.

use std::process::ExitCode;

/// Reports that benchmarks do not exist yet; exit status 2.
pub fn bench() -> ExitCode {
    eprintln!("not implemented yet (a separate issue)");
    ExitCode::from(2)
}
