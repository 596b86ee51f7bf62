//! Errors of `launch-gptoss probe`, each with its exit code.

use pd_common::exit;

use crate::error::{Classify, UsageError};
use crate::ray::error::RayError;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// Talking to the cluster failed.
    #[error(transparent)]
    Ray(#[from] RayError),
    /// The simulator constants cannot be loaded.
    #[error("simulator constants: {0}")]
    Sim(String),
    /// The probe job ended without results (failed, stopped, or timed out).
    #[error("probe job {job} {what}")]
    Job { job: String, what: String },
    /// SIGINT/SIGTERM/SIGHUP while the job ran (the job was stopped).
    #[error("interrupted by {}: probe job {job} stopped", crate::interrupt::signal_name(*signal))]
    Interrupted { job: String, signal: i32 },
    /// Writing the result file failed.
    #[error("writing the probe result")]
    Write(#[source] pd_common::Error),
}

impl Classify for ProbeError {
    fn exit_code(&self) -> i32 {
        match self {
            ProbeError::Usage(e) => e.exit_code(),
            ProbeError::Ray(e) => e.exit_code(),
            ProbeError::Sim(_) => exit::USAGE,
            ProbeError::Interrupted { signal, .. } => exit::interrupted_by(*signal),
            ProbeError::Job { .. } | ProbeError::Write(_) => exit::FAILED,
        }
    }
}
