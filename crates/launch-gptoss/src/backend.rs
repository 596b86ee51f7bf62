//! The backend interface: what `launch-gptoss` does with a deployment (launch, shutdown,
//! status), implemented by the Ray backend ([`crate::ray::backend`]) and the simulated
//! cluster ([`crate::sim::backend`]). The command layer ([`crate::app`]) picks one: from
//! `--backend` for a launch, from the record's stop handle for `shutdown` and `status`.

use std::fmt;
use std::path::{Path, PathBuf};

use pd_common::deployment::DeploymentRecord;

use crate::error::Classify;
use crate::options::LaunchRequest;

/// What a launch ended with.
#[derive(Debug)]
pub enum LaunchOutcome {
    /// `--dry-run`: nothing was started. `report` is for people (stderr), `output` for
    /// pipelines (stdout: the Serve config, or the simulator plan).
    DryRun { report: String, output: String },
    /// Deployed and answering; the record was written to `path`. `summary` goes to stdout.
    Ready {
        record: Box<DeploymentRecord>,
        path: PathBuf,
        summary: Vec<String>,
    },
    /// A foreground simulator ran in this process and has stopped.
    Stopped,
}

/// What `shutdown` did (the record is removed after an `Ok`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub message: String,
}

/// What `status` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The deployment runs and answers.
    pub alive: bool,
    /// Lines for stdout.
    pub lines: Vec<String>,
}

/// One deployment backend.
pub trait Backend {
    /// Deploy what `req` describes and return once it answers (or render it: dry run).
    fn launch(&self, req: &LaunchRequest) -> Result<LaunchOutcome, BackendError>;
    /// Stop the deployment `record` (read from `record_path`) describes. `Ok` means nothing
    /// of it runs any more, so the record may go; an error keeps the record.
    fn shutdown(
        &self,
        record: &DeploymentRecord,
        record_path: &Path,
    ) -> Result<Stopped, BackendError>;
    /// The live state of the deployment `record` describes; `detail` prints Ray's messages
    /// in full.
    fn status(
        &self,
        record: &DeploymentRecord,
        record_path: &Path,
        detail: bool,
    ) -> Result<Status, BackendError>;
}

/// A backend's typed error, boxed so that the interface does not depend on any backend.
pub trait BackendFailure: std::error::Error + Classify + Send + Sync + 'static {}

impl<T: std::error::Error + Classify + Send + Sync + 'static> BackendFailure for T {}

/// The error of a [`Backend`] call: the backend's own error, with its exit code.
pub struct BackendError(Box<dyn BackendFailure>);

impl BackendError {
    /// The exit code the tool ends with.
    pub fn exit_code(&self) -> i32 {
        self.0.exit_code()
    }

    /// The backend's error.
    pub fn inner(&self) -> &dyn BackendFailure {
        self.0.as_ref()
    }
}

impl<E: BackendFailure> From<E> for BackendError {
    fn from(e: E) -> Self {
        BackendError(Box::new(e))
    }
}

impl fmt::Debug for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
