//! Helpers of the fault-injection tests (`faults_*.rs`): run the binary as a user's
//! pipeline would, build deployment records, list every file a run left behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pd_common::deployment::{
    DeploymentRecord, DeploymentSpec, Replicas, ServingBackend, StopHandle,
};
use pd_testkit::fake_openai::{FakeOptions, FakeServer, GenSpec, Reply, RequestInfo, Script};
use std::sync::Arc;

pub use crate::common::{run_bm, ChildGuard};

/// What a finished run-bm printed and returned.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub out: String,
    pub err: String,
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.out, self.err
        )
    }
}

pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Request index from the `x-request-id` header (`…-<index>`).
pub fn index_of(info: &RequestInfo) -> u64 {
    info.headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit('-').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

/// A generated stream: `ttft` then one token every `interval`.
pub fn gen(ttft: u64, interval: u64) -> Reply {
    Reply::Generate(GenSpec {
        ttft: ms(ttft),
        interval: ms(interval),
        tokens: None,
        tokens_per_chunk: 1,
    })
}

/// A fake server named "fake" answering every completion with `script`.
pub async fn server(script: Script) -> FakeServer {
    FakeServer::start("fake", script, false).await.unwrap()
}

/// A fake server that looks like the simulator serving `label`.
pub async fn sim_like(label: &str) -> FakeServer {
    FakeServer::start_with(
        "127.0.0.1:0".parse().unwrap(),
        FakeOptions::new("fake", Arc::new(|_: &RequestInfo| gen(2, 1))).like_simulator(label),
    )
    .await
    .unwrap()
}

/// Run the binary in `dir` to its end (off the async runtime), at most 120 s.
pub async fn run_to_end(dir: &Path, args: Vec<String>) -> Ran {
    run_cmd_to_end(run_bm(
        dir,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ))
    .await
}

/// Run a prepared command to its end (off the async runtime), at most 120 s.
pub async fn run_cmd_to_end(mut cmd: Command) -> Ran {
    tokio::task::spawn_blocking(move || {
        let mut child = ChildGuard::spawn(&mut cmd);
        let (status, out, err) = child.wait_timeout(Duration::from_secs(120));
        Ran {
            code: status.code().unwrap_or(-1),
            out,
            err,
        }
    })
    .await
    .unwrap()
}

/// Common flags: tiny workload, the fake's model, plain progress lines.
pub fn base(url: &str, exp: &str) -> Vec<String> {
    strings(&[
        "-u",
        url,
        "-m",
        "fake",
        "--itl",
        "8",
        "--otl",
        "4",
        "--vocab-size",
        "100",
        "-e",
        exp,
        "--no-progress",
    ])
}

/// The default result directory of [`base`] runs.
pub fn rdir(dir: &Path, exp: &str) -> PathBuf {
    dir.join(format!("bm_results/fake_itl8_otl4_mixed_{exp}"))
}

/// Every file under `dir` (recursively, hidden ones included).
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                _ => out.push(p),
            }
        }
    }
    out.sort();
    out
}

/// A simulator record of `label` (collocated `num`×TP`tp`) for `url`, stopped by `pid`.
pub fn sim_record(url: &str, num: u32, tp: u32, pid: u32) -> DeploymentRecord {
    let spec = DeploymentSpec::collocated(num, tp);
    record(url, spec, ServingBackend::Sim, StopHandle::Pid { pid })
}

pub fn record(
    url: &str,
    spec: DeploymentSpec,
    backend: ServingBackend,
    stop: StopHandle,
) -> DeploymentRecord {
    DeploymentRecord {
        format_version: 1,
        backend,
        base_url: url.to_string(),
        served_model_name: "fake".into(),
        label: spec.label(),
        total_gpus: spec.total_gpus(),
        gpus_per_node: 8,
        nodes: vec!["node-0".into()],
        command: vec!["launch-gptoss".into()],
        tool_version: "0.1.0".into(),
        created_at: "2026-01-01T00:00:00+00:00".into(),
        network: None,
        software: Default::default(),
        env: Default::default(),
        spec,
        stop,
    }
}

/// PD replicas helper.
pub fn reps(num: u32, tp: u32) -> Replicas {
    Replicas { num, tp }
}

/// A pid that is certainly not running (a child that already exited).
pub fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}
