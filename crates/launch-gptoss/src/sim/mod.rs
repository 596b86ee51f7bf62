//! The embedded simulated cluster (being built).

pub mod calibrate;
pub mod engine;

use anyhow::{bail, Result};
use pd_common::deployment::{DeploymentRecord, DeploymentSpec};

use crate::cli::{LaunchArgs, ServeSimArgs};

/// `launch-gptoss --backend sim`: start the simulated deployment in the background,
/// wait until it answers, write the record.
pub fn launch(_spec: &DeploymentSpec, _args: &LaunchArgs) -> Result<i32> {
    bail!("the simulated backend is not built yet")
}

/// The hidden `serve-sim` subcommand: run the simulator server in this process.
pub fn serve_main(_args: &ServeSimArgs) -> Result<i32> {
    bail!("the simulated backend is not built yet")
}

/// Stop a simulator process (idempotent).
pub fn stop_pid(_pid: u32) -> Result<()> {
    bail!("the simulated backend is not built yet")
}

/// Print the simulator's state; true when it is alive.
pub fn status(_record: &DeploymentRecord, _pid: u32) -> Result<bool> {
    bail!("the simulated backend is not built yet")
}
