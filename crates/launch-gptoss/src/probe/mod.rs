//! `launch-gptoss probe`: a NIXL transfer micro-benchmark between the cluster's nodes, run
//! before the pack-vs-spread experiment to know what the KV link can do.
//!
//! * [`options`]: what to measure (placements × NIXL backends × P/D TP shapes × block
//!   sizes × block counts) and where.
//! * [`plan`]: which nodes each configuration's P and D ranks go to (Ray).
//! * [`script`]: the Python benchmark that runs on the cluster as a Ray job, and the
//!   parser of its result lines.
//! * [`ray`]: submit the job over Ray's Jobs REST API, follow it, collect its results.
//! * [`sim`]: the simulated link's figures, from the simulator constants.
//! * [`report`]: the table printed at the end.
//!
//! The result file is `pd_common::probe::ProbeFile` (docs/FORMATS.md), read by `viz --probe`.

pub mod error;
pub mod options;
pub mod plan;
pub mod ray;
pub mod report;
pub mod script;
pub mod sim;

use pd_common::probe::ProbeFile;

pub use error::ProbeError;
pub use options::{ProbeOptions, ProbeTarget};

/// What a probe run ended with.
#[derive(Debug)]
pub enum ProbeOutcome {
    /// `--dry-run`: what would run (placements, and the job's program).
    DryRun { report: String, program: String },
    /// Measured (some configurations may have failed: see each result's `error`).
    Done(Box<ProbeFile>),
}

/// Run the probe and write its result file.
pub fn run(opts: &ProbeOptions) -> Result<ProbeOutcome, ProbeError> {
    let configs = opts.configs()?;
    let file = match &opts.target {
        ProbeTarget::Sim(sim) => {
            if opts.dry_run {
                return Ok(ProbeOutcome::DryRun {
                    report: format!(
                        "{} configuration(s) on the simulator (figures from its constants); \
                         nothing to run\n",
                        configs.len()
                    ),
                    program: String::new(),
                });
            }
            sim::run(&configs, sim, opts.command.clone())?
        }
        ProbeTarget::Ray(r) => {
            if opts.dry_run {
                let dash = crate::ray::dashboard::Dashboard::new(
                    r.dashboard.clone(),
                    r.request_timeout,
                    r.request_timeout,
                );
                let p = ray::prepare(&configs, r, opts.warmup, &dash)?;
                return Ok(ProbeOutcome::DryRun {
                    report: report::dry_run(&p, r),
                    program: p.program.unwrap_or_default(),
                });
            }
            ray::run(&configs, r, opts.warmup, opts.command.clone())?
        }
    };
    file.write(&opts.out).map_err(ProbeError::Write)?;
    Ok(ProbeOutcome::Done(Box::new(file)))
}
