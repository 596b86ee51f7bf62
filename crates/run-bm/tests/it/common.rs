//! Helpers of run-bm's integration tests (generic ones are in `pd_testkit`).

use std::path::Path;
use std::process::{Command, Stdio};

pub use pd_testkit::process::ChildGuard;

/// `run-bm` with output captured, no deployment record, in `dir`.
pub fn run_bm(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_run-bm"));
    cmd.current_dir(dir)
        .env_remove("OPENAI_API_KEY")
        .env("PD_LAB_DEPLOYMENT", dir.join("no-record.toml"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}
