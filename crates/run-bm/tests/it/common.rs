//! Helpers of run-bm's integration tests (generic ones are in `pd_testkit`).

use std::path::Path;
use std::process::{Command, Stdio};

pub use pd_testkit::process::ChildGuard;

/// The binary under test (`PD_LAB_RUN_BM_BIN` overrides it, e.g. to check that a fault
/// test fails on an older build).
pub fn bin() -> String {
    std::env::var("PD_LAB_RUN_BM_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_run-bm").to_string())
}

/// `run-bm` with output captured, no deployment record, in `dir`.
pub fn run_bm(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir)
        .env_remove("OPENAI_API_KEY")
        .env("PD_LAB_DEPLOYMENT", dir.join("no-record.toml"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Run the binary in `dir` to completion (off the async runtime): (exit code, stdout,
/// stderr). `env` is set for the child.
pub async fn run_to_end_env(
    dir: &Path,
    args: Vec<String>,
    env: Vec<(String, String)>,
) -> (i32, String, String) {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = run_bm(&dir, &args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = ChildGuard::spawn(&mut cmd);
        let (status, out, err) = child.wait_timeout(std::time::Duration::from_secs(120));
        (status.code().unwrap_or(-1), out, err)
    })
    .await
    .unwrap()
}

/// Owned strings of `v`.
pub fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}
