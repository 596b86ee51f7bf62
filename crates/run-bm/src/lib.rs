//! `run-bm`: a native streaming load generator for OpenAI-compatible LLM servers, a
//! drop-in for the seed's `run_bm.sh` + `vllm bench serve`.
//!
//! * [`cli`] / [`config`]: flags and their resolution with the deployment record.
//! * [`prompt`], [`dataset`], [`tokenizer`], [`chat_template`]: what each request asks
//!   for (token ids or decode-stable text of the asked length, file datasets).
//! * [`request`]: the request body (completions or chat, sampling, extra body).
//! * [`client`], [`h1`], [`tls`], [`sse`], [`chunk`], [`chunk_scan`]: the HTTP(S) client, its
//!   streaming hot path and the streaming reader (with its fast JSON path).
//! * [`preflight`]: waiting for the server, checking the deployment record and learning
//!   the server's limits before load.
//! * [`schedule`], [`runner`], [`cancel`]: arrivals, concurrency, signals;
//!   [`selfcheck`]: cold-start handling and the saturation self-check of a point.
//! * metrics: `pd_common::bench` (shared with the simulator's virtual client).
//! * [`output`], [`summary`], [`progress`]: files, console summaries (of a point and of
//!   the sweep), progress display (the sweep line with its ETA and the point's bar).
//! * [`capture`]: the server's Prometheus metrics around each point.
//! * [`sweep`], [`smoke`], [`probe`]: the two commands and the start-of-run check.
//! * [`correctness`]: greedy completions compared with a reference (part of `--smoke`,
//!   and before a sweep with `--check-correctness`): "PD transfer corrupts outputs".
//! * [`limits`], [`resultdir`], [`deployment_check`]: what is checked before anything
//!   is sent (resource limits, the result directory, a stale deployment record).

pub mod cancel;
pub mod capture;
pub mod chat_template;
pub mod chunk;
pub mod chunk_scan;
pub mod cli;
pub mod client;
pub mod config;
pub mod correctness;
pub mod dataset;
pub mod deployment_check;
pub mod h1;
pub mod limits;
pub mod output;
pub mod preflight;
pub mod probe;
pub mod progress;
pub mod prompt;
pub mod reactor;
pub mod request;
pub mod resultdir;
pub mod runner;
pub mod schedule;
pub mod selfcheck;
pub mod smoke;
pub mod sse;
pub mod summary;
pub mod sweep;
pub mod tls;
pub mod tokenizer;

use anyhow::Context;
use pd_common::exit;

use crate::config::{ConfigError, UrlSource};
use crate::progress::note;
use crate::resultdir::DirError;

/// A run refused before anything was sent, for a reason the user must change (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The exit code of a run that ended with `err` (`pd_common::exit`): 2 for a usage error
/// or a refusal, nothing was sent: the configuration cannot be resolved (bad flags or
/// values, a dataset, tokenizer or deployment record that cannot be read), flags this
/// server cannot serve (context, vocabulary), results of another experiment in the result
/// directory, limits the run cannot fit. 1 otherwise: the run failed (an unreachable
/// server, a stale deployment record, an unwritable directory, …).
pub fn exit_code_of(err: &anyhow::Error) -> i32 {
    let usage = err.chain().any(|c| {
        c.downcast_ref::<Refused>().is_some()
            || c.downcast_ref::<ConfigError>().is_some()
            || c.downcast_ref::<preflight::PreflightError>()
                .is_some_and(|p| p.is_usage())
            || matches!(c.downcast_ref::<DirError>(), Some(DirError::Conflict(_)))
            || matches!(
                c.downcast_ref::<correctness::CheckError>(),
                Some(
                    correctness::CheckError::NoReference
                        | correctness::CheckError::BadReference { .. }
                )
            )
            || matches!(
                c.downcast_ref::<sweep::SweepError>(),
                Some(sweep::SweepError::Check(
                    correctness::CheckError::NoReference
                        | correctness::CheckError::BadReference { .. }
                ))
            )
            || matches!(
                c.downcast_ref::<sweep::SweepError>(),
                Some(sweep::SweepError::Dir(DirError::Conflict(_)))
            )
    });
    if usage {
        exit::USAGE
    } else {
        exit::FAILED
    }
}

/// Run the command; returns the process exit code (see `pd_common::exit`).
pub fn run(cli: cli::Cli, argv: Vec<String>) -> anyhow::Result<i32> {
    progress::set_quiet(
        cli.verbosity.tracing_level_filter() < tracing::level_filters::LevelFilter::WARN,
    );
    let fd_limits = limits::raise_nofile_limit();
    let mut cfg = config::RunConfig::resolve(&cli, argv)?;
    if !cli.smoke {
        if let Some(l) = fd_limits {
            if l.soft > l.was {
                tracing::debug!("raised the open-file limit from {} to {}", l.was, l.soft);
            }
            for w in limits::check_fds(&cfg.points, l).map_err(Refused)? {
                tracing::warn!("{w}");
            }
        }
        limits::check_memory(
            &cfg.points,
            cfg.workload.output_len(),
            cfg.save_detailed,
            limits::available_memory(),
        )
        .map_err(Refused)?;
    }
    announce_endpoint(&cfg);
    output::process_origin();
    // Before any request: the result directory is writable and holds nothing this run
    // would wrongly mix with or overwrite.
    let dir = if cli.smoke {
        None
    } else {
        Some(resultdir::inspect(&cfg)?)
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.client_threads {
        builder.worker_threads(n as usize);
    }
    let rt = builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let cancel = cancel::Cancel::new();
        let Some(dir) = dir else {
            // No signal handler: the default (terminate) is right for one request.
            let report = smoke::run_smoke(&cfg).await?;
            return Ok(if report.ok { exit::OK } else { exit::FAILED });
        };
        cancel
            .install_signals()
            .context("cannot install the signal handlers")?;
        // Wait for the server, check the deployment record, learn the server's limits; a
        // signal meanwhile (e.g. during a long --ready-check-timeout-sec) ends the run at
        // once: nothing was measured, nothing is written.
        tokio::select! {
            r = preflight::prepare(&mut cfg) => r?,
            _ = cancel.reached(cancel::Level::StopSending) => {
                let none = sweep::SweepOutcome {
                    interrupted: true,
                    ..Default::default()
                };
                return Ok(exit_code(&none, cancel.signal()));
            }
        }
        // Where the server's metrics come from (refused when --metrics-url does not answer).
        let for_scraper = cfg.clone();
        let scraper = tokio::task::spawn_blocking(move || capture::resolve(&for_scraper))
            .await
            .context("the server-metrics check did not finish")?
            .map_err(Refused)?;
        let outcome = sweep::run_sweep(&cfg, &cancel, dir, scraper).await?;
        Ok(exit_code(&outcome, cancel.signal()))
    })
}

/// Say which endpoint is benchmarked when no record or flag chose it.
fn announce_endpoint(cfg: &config::RunConfig) {
    match cfg.url_source {
        UrlSource::Default => tracing::warn!(
            "no deployment record ({} not found) and no -u/--base-url: benchmarking {}, the default URL; whatever answers there is measured and the results carry no deployment label. Give -u, or launch a deployment with launch-gptoss (it writes the record)",
            cfg.record_path
                .as_deref()
                .map_or_else(|| "--no-deployment".into(), |p| p.display().to_string()),
            cfg.base_url
        ),
        UrlSource::Record => note(format_args!(
            "run-bm: endpoint {} from the deployment record {} ({})",
            cfg.base_url,
            cfg.record_path
                .as_deref()
                .map_or_else(String::new, |p| p.display().to_string()),
            cfg.record.as_ref().map_or("", |r| r.label.as_str())
        )),
        UrlSource::Flag => {}
    }
}

/// The exit code of a finished sweep.
fn exit_code(outcome: &sweep::SweepOutcome, signal: Option<i32>) -> i32 {
    if let (Some(sig), true) = (signal, outcome.interrupted) {
        return exit::interrupted_by(sig);
    }
    if let Some(sig) = signal {
        // The signal came after the last point was written: still an interruption.
        return exit::interrupted_by(sig);
    }
    if !outcome.empty_points.is_empty() {
        tracing::warn!(
            "no request succeeded in: {} (results written; see the errors above); exit {}",
            outcome.empty_points.join(", "),
            exit::FAILED
        );
        return exit::FAILED;
    }
    if !outcome.failures.is_empty() {
        let list: Vec<String> = outcome
            .failures
            .iter()
            .map(|f| format!("{} ({} of {})", f.file, f.failed, f.total))
            .collect();
        tracing::warn!(
            "completed with failed requests in: {} (results written; failed requests are excluded from the metrics); exit {}",
            list.join(", "),
            exit::PARTIAL
        );
        return exit::PARTIAL;
    }
    exit::OK
}
