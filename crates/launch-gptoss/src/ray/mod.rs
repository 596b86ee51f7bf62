//! The real backend: Ray Serve LLM + vLLM + NIXL over Ray's Serve REST API.
//! (Being built: see issue "launch-gptoss on a real Ray cluster".)

use anyhow::{bail, Result};
use pd_common::deployment::DeploymentSpec;

use crate::cli::LaunchArgs;

/// Deploy on a Ray cluster, wait until ready, write the record.
pub fn launch(_spec: &DeploymentSpec, _args: &LaunchArgs) -> Result<i32> {
    bail!("the Ray backend is not built yet")
}

/// Delete the Serve application (idempotent).
pub fn shutdown(_address: &str, _app_name: &str) -> Result<()> {
    bail!("the Ray backend is not built yet")
}

/// Print the application's state; true when it is RUNNING.
pub fn status(_address: &str, _app_name: &str, _verbose: bool) -> Result<bool> {
    bail!("the Ray backend is not built yet")
}
