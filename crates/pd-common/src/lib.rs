//! `pd-common`: the file contract shared by the pd-lab tools.
//!
//! The three tools (`launch-gptoss`, `run-bm`, `viz`) never call each other: they
//! exchange files on disk, and every one of those files is defined here.
//!
//! * [`bench`]: vLLM's benchmark semantics (request outcomes, metrics, arrival schedule),
//!   shared by run-bm and the simulator's virtual client.
//! * [`workload`]: input/output lengths, benchmark mode, sweep kind and value lists.
//! * [`deployment`]: the deployment spec (what to deploy) and the deployment record
//!   (what was deployed, written by `launch-gptoss`, read by `run-bm`).
//! * [`result`]: one result file per sweep point, a superset of `vllm bench serve` JSON.
//! * [`manifest`]: the experiment manifest written into every result directory.
//! * [`requests`]: the per-request CSV written next to every sweep point.
//! * [`naming`]: result directory and file names (repeated runs `P-<k>.json` too).
//! * [`probe`]: the NIXL transfer probe's result file.
//! * [`stats`], [`repeats`]: Student-t intervals and the aggregate of repeated runs.
//! * [`prometheus`], [`server_metrics`]: the server's Prometheus text, the per-point
//!   metrics CSV and the `pd_lab.server_metrics` summary.
//! * [`label`]: parser for the configuration labels found in legacy directory names.
//! * [`fsutil`]: atomic file writes.
//! * [`redact`]: keeping secrets out of recorded commands and environments.
//! * [`url`]: base URLs of the endpoints the tools talk to (one parser for every tool).
//! * [`exit`]: the exit-code table shared by all tools.
//! * `diag` (feature `cli`): one diagnostics channel for the tools' binaries.
//! * `http` (feature `http`): one blocking HTTP client for control-plane calls.

pub mod bench;
#[cfg(feature = "cli-assets")]
pub mod cli_assets;
pub mod cli_doc;
pub mod csvfile;
pub mod deployment;
#[cfg(feature = "cli")]
pub mod diag;
pub mod error;
pub mod exit;
pub mod fsutil;
#[cfg(feature = "http")]
pub mod http;
pub mod label;
pub mod manifest;
pub mod naming;
pub mod probe;
pub mod prometheus;
pub mod redact;
pub mod repeats;
pub mod requests;
pub mod result;
pub mod server_metrics;
pub mod stats;
pub mod url;
pub mod workload;

pub use deployment::{
    DeployMode, DeploymentRecord, DeploymentSpec, GpuKind, Layout, NixlBackend, PdPlacement,
    Replicas, ServingBackend, StopHandle,
};
pub use error::{Error, Result};
pub use label::{parse_label, ParsedLabel};
pub use manifest::ExperimentManifest;
pub use result::{BenchResult, PdLabExtra, RequestRate};
pub use workload::{BenchMode, SweepKind, Workload};

/// Version of the pd-lab tools (all crates share the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
