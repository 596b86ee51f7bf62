//! The command layer: flags → options → a [`Backend`] call → output and exit code.
//! `launch` picks the backend from `--backend`; `shutdown` and `status` from the record.

use std::path::Path;

use pd_common::deployment::{DeploymentRecord, StopHandle};
use pd_common::outln;

use crate::backend::{Backend, BackendError, LaunchOutcome};
use crate::cli::{self, Cli, Command, RecordArgs};
use crate::error::{Classify, UsageError};
use crate::ray::backend::RayBackend;
use crate::record::{RecordError, RecordLock};
use crate::sim::backend::SimBackend;

/// Why the tool stops with a non-zero exit code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Probe(Box<crate::probe::ProbeError>),
    #[error("reading deployment record {}", path.display())]
    ReadRecord {
        path: std::path::PathBuf,
        source: Box<pd_common::Error>,
    },
    #[error("removing {}", path.display())]
    RemoveRecord {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// Errors of subcommands that report with context only (sim-calibrate, plan).
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl Classify for AppError {
    fn exit_code(&self) -> i32 {
        match self {
            AppError::Usage(e) => e.exit_code(),
            AppError::Backend(e) => e.exit_code(),
            AppError::Record(e) => e.exit_code(),
            AppError::Probe(e) => e.exit_code(),
            _ => pd_common::exit::FAILED,
        }
    }
}

/// Run the tool; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32, AppError> {
    match cli.command {
        Some(Command::Shutdown(args)) => shutdown(&args),
        Some(Command::Status(args)) => status(&args, cli.output.more > 0),
        Some(Command::ServeSim(args)) => {
            crate::sim::serve::serve_main(&args.plan, args.listen_fd)
                .map_err(|e| AppError::Backend(e.into()))?;
            Ok(pd_common::exit::OK)
        }
        Some(Command::Probe(args)) => probe(&args),
        Some(Command::SimCalibrate(args)) => {
            crate::sim::calibrate::main(&args).map_err(|e| AppError::Other(e.into()))
        }
        Some(Command::Plan(args)) => {
            crate::planner::main(&args).map_err(|e| AppError::Other(e.into()))
        }
        None => launch(&cli.launch),
    }
}

fn launch(args: &cli::LaunchArgs) -> Result<i32, AppError> {
    let command = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let req = args.request(command)?;
    let backend: Box<dyn Backend> = match args.backend {
        cli::Backend::Ray => Box::new(RayBackend {
            opts: args.ray_options()?,
        }),
        cli::Backend::Sim => Box::new(SimBackend {
            opts: args.sim_options()?,
        }),
    };
    match backend.launch(&req)? {
        LaunchOutcome::DryRun { report, output } => {
            use std::io::Write;
            let _ = std::io::stderr().lock().write_all(report.as_bytes());
            outln!("{output}");
        }
        LaunchOutcome::Ready { summary, .. } => {
            for line in summary {
                outln!("{line}");
            }
        }
        LaunchOutcome::Stopped => {}
    }
    Ok(pd_common::exit::OK)
}

/// `launch-gptoss probe`: measure, print the table, write the result file. Exit 0 when
/// every configuration was measured intact, 3 when some were (the others failed or arrived
/// corrupted), 1 when none was.
fn probe(args: &crate::cli_probe::ProbeArgs) -> Result<i32, AppError> {
    let command = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let opts = args.options(command)?;
    let probe_err = |e| AppError::Probe(Box::new(e));
    if opts.backends.contains(&pd_common::NixlBackend::Libfabric)
        && matches!(opts.target, crate::probe::ProbeTarget::Ray(_))
    {
        tracing::info!(
            "--nixl libfabric: the probe compares every transferred slice with its source, so \
             zeroed or corrupted blocks show up in the 'data' column"
        );
    }
    match crate::probe::run(&opts).map_err(probe_err)? {
        crate::probe::ProbeOutcome::DryRun { report, program } => {
            use std::io::Write;
            let _ = std::io::stderr().lock().write_all(report.as_bytes());
            if !program.is_empty() {
                pd_common::out!("{program}");
            }
            Ok(pd_common::exit::OK)
        }
        crate::probe::ProbeOutcome::Done(file) => {
            for line in crate::probe::report::table(&file) {
                outln!("{line}");
            }
            outln!("wrote {}", opts.out.display());
            let ok = file.results.iter().filter(|r| r.ok()).count();
            Ok(if ok == file.results.len() {
                pd_common::exit::OK
            } else if ok > 0 {
                pd_common::exit::PARTIAL
            } else {
                pd_common::exit::FAILED
            })
        }
    }
}

/// The backend that can act on `record`.
fn backend_for(record: &DeploymentRecord) -> Box<dyn Backend> {
    match record.stop {
        StopHandle::Ray { .. } => Box::new(RayBackend::default()),
        StopHandle::Pid { .. } => Box::new(SimBackend::default()),
    }
}

fn read_record(path: &Path) -> Result<Option<DeploymentRecord>, AppError> {
    DeploymentRecord::read_optional(path).map_err(|source| AppError::ReadRecord {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

/// `launch-gptoss shutdown`: stop what the record describes, then remove the record.
/// Idempotent: no record, or an already-stopped deployment, is success.
fn shutdown(args: &RecordArgs) -> Result<i32, AppError> {
    let path = pd_common::deployment::record_path(args.deployment_file.as_deref());
    let _lock = RecordLock::acquire(&path)?;
    let Some(record) = read_record(&path)? else {
        tracing::info!(
            "no deployment record at {}: nothing to stop",
            path.display()
        );
        return Ok(pd_common::exit::OK);
    };
    let stopped = backend_for(&record).shutdown(&record, &path)?;
    tracing::info!("{}", stopped.message);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(AppError::RemoveRecord { path, source }),
    }
    tracing::info!(
        "stopped {} deployment {} and removed {}",
        record.backend,
        record.label,
        path.display()
    );
    Ok(pd_common::exit::OK)
}

/// `launch-gptoss status`: print the record and the live state; exit 1 when it is not
/// running.
fn status(args: &RecordArgs, detail: bool) -> Result<i32, AppError> {
    let path = pd_common::deployment::record_path(args.deployment_file.as_deref());
    let Some(record) = read_record(&path)? else {
        outln!("no deployment record at {}", path.display());
        return Ok(pd_common::exit::FAILED);
    };
    outln!("# {}", path.display());
    match record.to_toml_string() {
        Ok(text) => pd_common::out!("{text}"),
        Err(e) => tracing::warn!("cannot print the record: {e}"),
    }
    let st = backend_for(&record).status(&record, &path, detail)?;
    for line in &st.lines {
        outln!("{line}");
    }
    Ok(if st.alive {
        pd_common::exit::OK
    } else {
        pd_common::exit::FAILED
    })
}
