//! What a launch needs, independent of the backend and of the command line: the command
//! layer builds it from the flags ([`crate::cli`]), the backends read it.

use std::path::PathBuf;
use std::time::Duration;

use pd_common::deployment::DeploymentSpec;

/// A validated launch request.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchRequest {
    /// What to deploy (layout checked for shape; node fit is checked by the backend).
    pub spec: DeploymentSpec,
    /// Where the record goes.
    pub record_path: PathBuf,
    /// Readiness timeout.
    pub timeout: Duration,
    /// `max_model_len` of every engine.
    pub max_model_len: u32,
    /// GPUs per node: of the simulated nodes, and of the nodes a Ray dry run assumes when
    /// it has neither a cluster nor `--nodes`.
    pub gpus_per_node: u32,
    /// Engine/NIXL debug logging in the deployment (changes performance).
    pub engine_debug: bool,
    /// Render and check only; start nothing, write nothing.
    pub dry_run: bool,
    /// The command line to record.
    pub command: Vec<String>,
}
