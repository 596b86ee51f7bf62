//! Running a whole sweep (after [`crate::preflight`]: server ready, deployment record
//! checked, limits learned): check the server, then each point in order (skipping finished
//! ones with `--resume`, warming up with `--warmup N`), writing each point as soon as it is
//! done.
//!
//! A point's console summary and its error summary are printed before its files are
//! written, so a failed write (disk full) never hides them; a few file descriptors are
//! held back during the point and released for the write.

use std::sync::Arc;

use crate::cancel::Cancel;
use crate::client::{ClientError, HttpClient};
use crate::config::{PointSpec, RunConfig};
use crate::limits::FdReserve;
use crate::output::{build_result, write_point, RunFacts};
use crate::probe::{check_server, ProbeError};
use crate::progress::{note, Progress};
use crate::resultdir::{resume_state, DirError, DirPlan, ResumeState};
use crate::runner::{run_point, LiveStats, PointPlan, RunSettings};
use crate::schedule::ScheduleReport;
use crate::summary::{render, FailureSummary, SummaryHeader};
use pd_common::bench::{compute, MetricOptions};

/// Why a sweep could not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error("cannot write the results of {point} (its summary is printed above)")]
    Write {
        point: String,
        #[source]
        source: Box<pd_common::Error>,
    },
}

/// A point with failed requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointFailures {
    pub file: String,
    pub failed: usize,
    pub total: usize,
}

/// How a sweep ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SweepOutcome {
    /// Points written (including a partial one).
    pub written: Vec<String>,
    /// Points skipped by `--resume`.
    pub skipped: Vec<String>,
    /// A signal cut the sweep short.
    pub interrupted: bool,
    /// Points where no request succeeded.
    pub empty_points: Vec<String>,
    /// Points with some failed requests.
    pub failures: Vec<PointFailures>,
}

/// Index offset of warmup prompts (never used by measured requests).
const WARMUP_INDEX_BASE: u64 = 1 << 40;

/// Build the client settings of a run.
pub fn settings(cfg: &RunConfig, client: HttpClient) -> RunSettings {
    let tag: u32 = rand::random();
    RunSettings {
        client,
        model: cfg.served_model.clone(),
        prompts: cfg.prompts(),
        max_tokens: cfg.workload.output_len(),
        timeout: cfg.timeout,
        keep_text: cfg.keep_text(),
        continuous_usage: cfg.continuous_usage,
        grace: cfg.grace,
        request_id_prefix: cfg
            .request_id_prefix
            .clone()
            .unwrap_or_else(|| format!("run-bm-{tag:08x}-")),
        expect_full_output: cfg.body.expects_full_output(),
        prewarm: cfg.prewarm,
    }
}

/// Run every point of `cfg` into the directory `dir` (already inspected). The server
/// was prepared by [`crate::preflight::prepare`] (ready, deployment record checked).
pub async fn run_sweep(
    cfg: &RunConfig,
    cancel: &Cancel,
    mut dir: DirPlan,
) -> Result<SweepOutcome, SweepError> {
    let client = HttpClient::for_config(cfg)?;
    let info = check_server(&client, &cfg.served_model).await?;
    let model_id = cfg
        .model_id
        .clone()
        .or(info.model_root.clone())
        .unwrap_or_else(|| cfg.served_model.clone());
    let settings = Arc::new(settings(cfg, client));
    note(format_args!(
        "run-bm: {} sweep of {} point(s) against {} (model {}{}), ITL {} OTL {} mode {}, results in {}",
        cfg.sweep,
        cfg.points.len(),
        cfg.base_url,
        cfg.served_model,
        cfg.record
            .as_ref()
            .map_or(String::new(), |r| format!(", deployment {}", r.label)),
        cfg.workload.itl,
        cfg.workload.otl,
        cfg.workload.mode,
        cfg.result_dir.display()
    ));
    dir.apply()?;
    let mut outcome = SweepOutcome::default();
    let mut reserve = FdReserve::acquire();
    for (pi, point) in cfg.points.iter().enumerate() {
        if cancel.is_stopping() {
            outcome.interrupted = true;
            break;
        }
        if cfg.resume {
            match resume_state(&cfg.result_dir, point) {
                ResumeState::Done => {
                    note(format_args!(
                        "[{}] done, skipped (--resume): {}",
                        stem(point),
                        cfg.result_dir.join(&point.file_name).display()
                    ));
                    outcome.skipped.push(point.file_name.clone());
                    continue;
                }
                ResumeState::Redo(why) => note(format_args!(
                    "[{}] run again (--resume): {why}",
                    stem(point)
                )),
                ResumeState::Missing => {}
            }
        }
        let plan = PointPlan {
            num_prompts: point.num_prompts,
            rate: point.rate,
            burstiness: cfg.burstiness,
            max_concurrency: point.max_concurrency,
            seed: cfg.seed.wrapping_add(pi as u64),
            index_base: 0,
        };
        let mut facts = RunFacts {
            model_id: model_id.clone(),
            server_software: info.software.clone(),
            warmup_sent: 0,
        };
        if cfg.warmup > 0 {
            note(format_args!(
                "[{}] warmup: {} request(s)",
                stem(point),
                cfg.warmup
            ));
            let warm = PointPlan {
                num_prompts: cfg.warmup,
                rate: f64::INFINITY,
                index_base: WARMUP_INDEX_BASE + pi as u64 * cfg.warmup,
                ..plan.clone()
            };
            let run = run_point(
                settings.clone(),
                &warm,
                cancel,
                Arc::new(LiveStats::default()),
            )
            .await;
            facts.warmup_sent = run.outcomes.len() as u64;
            if let Some(line) = FailureSummary::of(&run.outcomes).line() {
                tracing::warn!("[{}] warmup: {line}", stem(point));
            }
            if run.interrupted {
                outcome.interrupted = true;
                break;
            }
        }
        tracing::info!(
            point = %point.file_name,
            prompts = point.num_prompts,
            rate = point.rate,
            max_concurrency = ?point.max_concurrency,
            "starting point"
        );
        let live = Arc::new(LiveStats::default());
        let progress = Progress::start(
            &stem(point),
            point.num_prompts,
            live.clone(),
            cfg.progress_bar,
        );
        let mut run = run_point(settings.clone(), &plan, cancel, live).await;
        progress.finish().await;
        settings
            .prompts
            .count_output_tokens(&mut run.outcomes, cfg.save_detailed);
        // Client-queue blocks exist only with a concurrency cap (and, for the one
        // including E2EL, a finite rate), as in vLLM.
        let opts = MetricOptions {
            metrics: cfg.metrics.clone(),
            percentiles: cfg.percentiles.clone(),
            goodput: cfg.goodput,
            has_max_concurrency: point.max_concurrency.is_some(),
            finite_rate: point.rate.is_finite(),
        };
        let metrics = compute(&run.outcomes, run.duration, &opts);
        // Open-loop points only: how well dispatch kept to the schedule.
        let sched = point.rate.is_finite().then(|| {
            let scheduled: Vec<f64> = run.outcomes.iter().map(|o| o.scheduled_s).collect();
            let arrivals: Vec<f64> = run.outcomes.iter().map(|o| o.arrival_s).collect();
            ScheduleReport::from_times(&scheduled, &arrivals)
        });
        let failures = FailureSummary::of(&run.outcomes);
        pd_common::out!(
            "{}",
            render(
                &SummaryHeader {
                    max_concurrency: point.max_concurrency,
                    rate: point.rate,
                },
                &metrics,
                sched.as_ref(),
            )
        );
        if let Some(line) = failures.line() {
            pd_common::outln!("pd-lab: {line}");
        }
        report_errors(point, &failures);
        // Falling behind: the dispatcher's own lateness (a concurrency cap's queue is
        // intended and is client queue time).
        if let Some(w) = sched.and_then(|s| s.behind_warning(point.rate)) {
            tracing::warn!("[{}] {w}", stem(point));
        }
        // Saturation self-check (client event loop, read bursts), every point.
        for w in crate::selfcheck::assess_run(&run).warnings {
            tracing::warn!("[{}] {w}", stem(point));
        }
        let result = build_result(cfg, point, &run, &metrics, sched.as_ref(), &facts);
        // Files first need descriptors: give back the reserve (requests are all done).
        reserve.release();
        let written = dir
            .before_write(point)
            .map_err(SweepError::from)
            .and_then(|()| {
                write_point(cfg, point, &run, &result, &facts).map_err(|source| SweepError::Write {
                    point: point.file_name.clone(),
                    source: Box::new(source),
                })
            });
        reserve.refill();
        let written = written?;
        if run.interrupted {
            tracing::warn!(
                "[{}] interrupted: partial point written ({} of {} requests sent), marked \"interrupted\": {}",
                stem(point),
                run.outcomes.len(),
                point.num_prompts,
                written.result.display()
            );
        } else {
            note(format_args!(
                "[{}] wrote {}",
                stem(point),
                written.result.display()
            ));
        }
        if metrics.completed == 0 {
            outcome.empty_points.push(point.file_name.clone());
        }
        if failures.failed > 0 {
            outcome.failures.push(PointFailures {
                file: point.file_name.clone(),
                failed: failures.failed,
                total: failures.total,
            });
        }
        outcome.written.push(point.file_name.clone());
        if run.interrupted {
            outcome.interrupted = true;
            break;
        }
    }
    Ok(outcome)
}

fn stem(point: &PointSpec) -> String {
    point
        .file_name
        .strip_suffix(".json")
        .unwrap_or(&point.file_name)
        .to_string()
}

/// Warn with the distinct errors of a point (at most 5, with counts), each followed by the
/// flag that fixes it when the error says (out of vocabulary, context length).
fn report_errors(point: &PointSpec, f: &FailureSummary) {
    for (e, n) in f.messages.iter().take(5) {
        tracing::warn!("[{}] {n} request(s) failed: {e}", stem(point));
        if let Some(fix) = crate::preflight::hint(e) {
            tracing::warn!("[{}]   fix: {fix}", stem(point));
        }
    }
    if f.messages.len() > 5 {
        tracing::warn!(
            "[{}] … and {} other errors (see the .requests.csv)",
            stem(point),
            f.messages.len() - 5
        );
    }
}
