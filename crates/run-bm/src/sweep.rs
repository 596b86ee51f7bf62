//! Running a whole sweep: check the server, then each point in order (skipping existing
//! results with `--resume`, warming up with `--warmup N`), writing each point as soon as
//! it is done.

use std::sync::Arc;

use crate::cancel::Cancel;
use crate::client::{ClientError, HttpClient};
use crate::config::{PointSpec, RunConfig};
use crate::output::{build_result, write_point, RunFacts};
use crate::probe::{check_server, ProbeError};
use crate::progress::Progress;
use crate::prompt::PromptGen;
use crate::runner::{run_point, LiveStats, PointPlan, RunSettings};
use crate::schedule::ScheduleReport;
use crate::summary::{render, SummaryHeader};
use pd_common::bench::{compute, MetricOptions};

/// Why a sweep could not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("cannot write results: {0}")]
    Write(pd_common::Error),
}

impl From<pd_common::Error> for SweepError {
    fn from(e: pd_common::Error) -> Self {
        SweepError::Write(e)
    }
}

/// How a sweep ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepOutcome {
    /// Points written (including a partial one).
    pub written: Vec<String>,
    /// Points skipped by `--resume`.
    pub skipped: Vec<String>,
    /// Ctrl-C cut the sweep short.
    pub interrupted: bool,
    /// Points where no request succeeded.
    pub empty_points: Vec<String>,
}

/// Index offset of warmup prompts (never used by measured requests).
const WARMUP_INDEX_BASE: u64 = 1 << 40;

/// Build the client settings of a run.
pub fn settings(cfg: &RunConfig, client: HttpClient) -> RunSettings {
    let tag: u32 = rand::random();
    RunSettings {
        client,
        model: cfg.served_model.clone(),
        prompts: PromptGen::new(&cfg.workload, cfg.prompt_format, cfg.seed, cfg.vocab_size),
        max_tokens: cfg.workload.output_len(),
        timeout: cfg.timeout,
        keep_text: cfg.save_detailed,
        continuous_usage: cfg.continuous_usage,
        grace: cfg.grace,
        request_id_prefix: format!("run-bm-{tag:08x}-"),
    }
}

/// Run every point of `cfg`.
pub async fn run_sweep(cfg: &RunConfig, cancel: &Cancel) -> Result<SweepOutcome, SweepError> {
    let client = HttpClient::new(&cfg.base_url, &cfg.endpoint, cfg.api_key.as_deref())?;
    let info = check_server(&client, &cfg.served_model).await?;
    let model_id = cfg
        .model_id
        .clone()
        .or(info.model_root.clone())
        .unwrap_or_else(|| cfg.served_model.clone());
    let settings = Arc::new(settings(cfg, client));
    eprintln!(
        "run-bm: {} sweep of {} point(s) against {} (model {}), ITL {} OTL {} mode {}, results in {}",
        cfg.sweep,
        cfg.points.len(),
        cfg.base_url,
        cfg.served_model,
        cfg.workload.itl,
        cfg.workload.otl,
        cfg.workload.mode,
        cfg.result_dir.display()
    );
    let mut outcome = SweepOutcome {
        written: vec![],
        skipped: vec![],
        interrupted: false,
        empty_points: vec![],
    };
    for (pi, point) in cfg.points.iter().enumerate() {
        if cancel.is_stopping() {
            outcome.interrupted = true;
            break;
        }
        let path = cfg.result_dir.join(&point.file_name);
        if cfg.resume && path.exists() {
            eprintln!(
                "[{}] exists, skipped (--resume): {}",
                stem(point),
                path.display()
            );
            outcome.skipped.push(point.file_name.clone());
            continue;
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
            eprintln!("[{}] warmup: {} request(s)", stem(point), cfg.warmup);
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
            let failed = run.outcomes.iter().filter(|o| !o.is_success()).count();
            if failed > 0 {
                eprintln!("[{}] warmup: {failed} request(s) failed", stem(point));
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
        let run = run_point(settings.clone(), &plan, cancel, live).await;
        progress.finish().await;
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
        let scheduled: Vec<f64> = run.outcomes.iter().map(|o| o.scheduled_s).collect();
        let sent: Vec<f64> = run.outcomes.iter().map(|o| o.sent_s).collect();
        let sched = ScheduleReport::from_times(&scheduled, &sent);
        let result = build_result(cfg, point, &run, &metrics, &sched, &facts);
        let written = write_point(cfg, point, &run, &result, &facts)?;
        print!(
            "{}",
            render(
                &SummaryHeader {
                    max_concurrency: point.max_concurrency,
                    rate: point.rate,
                },
                &metrics,
                Some(&sched),
            )
        );
        report_errors(point, &run.outcomes);
        // Falling behind: with a concurrency cap the queue is intended, so only the
        // dispatcher's own lateness (task creation − schedule) counts.
        let behind = if point.max_concurrency.is_some() && point.rate.is_finite() {
            let arrivals: Vec<f64> = run.outcomes.iter().map(|o| o.arrival_s).collect();
            ScheduleReport::from_times(&scheduled, &arrivals).behind_warning(point.rate)
        } else {
            sched.behind_warning(point.rate)
        };
        if let Some(w) = behind {
            tracing::warn!("[{}] {w}", stem(point));
            eprintln!("[{}] warning: {w}", stem(point));
        }
        if run.interrupted {
            eprintln!(
                "[{}] interrupted: partial point written ({} of {} requests sent): {}",
                stem(point),
                run.outcomes.len(),
                point.num_prompts,
                written.result.display()
            );
        } else {
            eprintln!("[{}] wrote {}", stem(point), written.result.display());
        }
        if metrics.completed == 0 {
            outcome.empty_points.push(point.file_name.clone());
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

/// Print the distinct errors of a point (at most 5, with counts).
fn report_errors(point: &PointSpec, outcomes: &[pd_common::bench::RequestOutcome]) {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for o in outcomes.iter().filter(|o| !o.is_success()) {
        match counts.iter_mut().find(|(e, _)| e == o.error_text()) {
            Some((_, n)) => *n += 1,
            None => counts.push((o.error_text().to_string(), 1)),
        }
    }
    for (e, n) in counts.iter().take(5) {
        eprintln!("[{}] {n} request(s) failed: {e}", stem(point));
    }
    if counts.len() > 5 {
        eprintln!(
            "[{}] … and {} other error kinds (see the .requests.csv)",
            stem(point),
            counts.len() - 5
        );
    }
}
