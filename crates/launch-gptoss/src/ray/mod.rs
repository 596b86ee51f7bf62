//! The real backend: Ray Serve LLM + vLLM + NIXL, deployed over Ray's Serve REST API.
//!
//! * [`config`]: the Serve config (one application, its LLM configs) rendered as data.
//! * [`plan`]: placement of replica groups on nodes, checked before anything is deployed.
//! * [`nodes`], [`version`]: what the cluster reports (`/api/v0/nodes`, `/api/version`).
//! * [`env`]: engine environment variables, redaction of secrets.
//! * [`overrides`]: `--overrides FILE` deep-merged into every LLM config.
//! * [`client`], [`dashboard`]: HTTP client, dashboard and Serve endpoint calls.
//! * [`serve_state`]: reading `GET /api/serve/applications/`.
//! * [`deploy`]: the flow (pre-flight, PUT, poll, cleanup, record), shutdown and status.
//!
//! `PUT /api/serve/applications/` is declarative for the whole cluster: applications left
//! out of the body are deleted. The launcher therefore reads the current state first and
//! includes every other application's `deployed_app_config`, so it never removes someone
//! else's application; `shutdown` removes only ours (PUT without it, or DELETE when it is
//! the only one, which also stops Serve).

pub mod client;
pub mod config;
pub mod dashboard;
pub mod deploy;
pub mod env;
pub mod error;
pub mod nodes;
pub mod overrides;
pub mod plan;
pub mod serve_state;
pub mod version;

use anyhow::{Context, Result};
use pd_common::deployment::DeploymentSpec;

use crate::cli::LaunchArgs;
pub use deploy::{LaunchOptions, Outcome};
pub use error::RayError;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Deploy on a Ray cluster, wait until ready, write the record.
pub fn launch(spec: &DeploymentSpec, args: &LaunchArgs) -> Result<i32> {
    let opts = LaunchOptions::default();
    let mut out = std::io::stdout();
    let mut log = std::io::stderr();
    runtime()?.block_on(deploy::launch(spec, args, &opts, &mut out, &mut log))?;
    Ok(0)
}

/// Remove our Serve application (idempotent: absent is success; unreachable is an error).
pub fn shutdown(address: &str, app_name: &str) -> Result<()> {
    let opts = LaunchOptions::default();
    let mut log = std::io::stderr();
    runtime()?.block_on(deploy::shutdown(address, app_name, &opts, &mut log))?;
    Ok(())
}

/// Print the application's state; true when it is RUNNING.
pub fn status(address: &str, app_name: &str, verbose: bool) -> Result<bool> {
    let opts = LaunchOptions::default();
    let mut out = std::io::stdout();
    Ok(runtime()?.block_on(deploy::status(address, app_name, verbose, &opts, &mut out))?)
}
