//! The deployment record on disk, and the `shutdown` / `status` subcommands.

use std::path::PathBuf;

use anyhow::{Context, Result};
use pd_common::deployment::{default_record_path, DeploymentRecord, StopHandle};

use crate::cli::RecordArgs;

/// The record path chosen by flags or environment.
pub fn record_path(explicit: Option<&PathBuf>) -> PathBuf {
    explicit.cloned().unwrap_or_else(default_record_path)
}

/// `launch-gptoss shutdown`: stop what the record describes, then remove the record.
/// Idempotent: no record, or an already-stopped deployment, is success.
pub fn shutdown(args: &RecordArgs) -> Result<i32> {
    let path = record_path(args.deployment_file.as_ref());
    let Some(record) = DeploymentRecord::read_optional(&path)
        .with_context(|| format!("reading deployment record {}", path.display()))?
    else {
        eprintln!(
            "no deployment record at {}: nothing to stop",
            path.display()
        );
        return Ok(0);
    };
    match &record.stop {
        StopHandle::Pid { pid } => crate::sim::stop_pid(*pid)?,
        StopHandle::Ray { address, app_name } => crate::ray::shutdown(address, app_name)?,
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    eprintln!(
        "stopped {} deployment {} and removed {}",
        record.backend,
        record.label,
        path.display()
    );
    Ok(0)
}

/// `launch-gptoss status`: print the record and the live state.
pub fn status(args: &RecordArgs) -> Result<i32> {
    let path = record_path(args.deployment_file.as_ref());
    let Some(record) = DeploymentRecord::read_optional(&path)
        .with_context(|| format!("reading deployment record {}", path.display()))?
    else {
        println!("no deployment record at {}", path.display());
        return Ok(1);
    };
    println!("# {}", path.display());
    print!("{}", record.to_toml_string()?);
    let alive = match &record.stop {
        StopHandle::Pid { pid } => crate::sim::status(&record, *pid)?,
        StopHandle::Ray { address, app_name } => {
            crate::ray::status(address, app_name, args.verbose)?
        }
    };
    Ok(if alive { 0 } else { 1 })
}
