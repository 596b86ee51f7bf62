//! `launch-gptoss`: deploy GPT-OSS-120B collocated or PD-disaggregated.
//!
//! * [`cli`]: the command line (drop-in for the seed's `launch_gptoss.py`).
//! * [`ray`]: the real backend (Ray Serve LLM + vLLM + NIXL over Ray's Serve REST API).
//! * [`sim`]: the embedded simulated cluster (engine, server, process management).
//! * [`planner`]: `plan`, the best deployment for a workload from the simulator.
//! * [`record`]: writing, reading and removing the deployment record.

pub mod cli;
pub mod planner;
pub mod ray;
pub mod record;
pub mod sim;

use anyhow::{Context, Result};
use cli::{Backend, Cli, Command};

/// Run the tool; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Some(Command::Shutdown(args)) => record::shutdown(&args),
        Some(Command::Status(args)) => record::status(&args),
        Some(Command::ServeSim(args)) => sim::serve_main(&args),
        Some(Command::SimCalibrate(args)) => sim::calibrate::main(&args),
        Some(Command::Plan(args)) => planner::main(&args),
        None => {
            let launch = cli.launch;
            let spec = launch
                .spec()
                .context("--mode is required (collocated, pd-pack or pd-spread)")?;
            spec.validate(launch.gpus_per_node)
                .context("invalid deployment")?;
            match launch.backend {
                Backend::Sim => sim::launch(&spec, &launch),
                Backend::Ray => ray::launch(&spec, &launch),
            }
        }
    }
}
