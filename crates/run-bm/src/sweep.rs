//! Running a whole sweep (after [`crate::preflight`]: server ready, deployment record
//! checked, limits learned): check the server, then each point in order (skipping finished
//! ones with `--resume`, warming up with `--warmup N`), writing each point as soon as it is
//! done. With `--repeat K` each point is run K times, each run with its own warmup and
//! prompts, written as `P-<k>.json`; then the aggregate `P.json` (means and 95 %
//! intervals, `pd_common::repeats`). The server's metrics are captured around every run
//! ([`crate::capture`]). At the end, the sweep's summary: a table, or JSON with `--json`.
//!
//! A point's console summary and its error summary are printed before its files are
//! written, so a failed write (disk full) never hides them; a few file descriptors are
//! held back during the point and released for the write.

use std::sync::Arc;
use std::time::Instant;

use pd_common::bench::{compute, MetricOptions};
use pd_common::naming::run_file_name;
use pd_common::BenchResult;

use crate::cancel::{Cancel, Level};
use crate::capture::{Baseline, Captured, PointCapture, Scraper};
use crate::client::{ClientError, HttpClient};
use crate::config::{PointSpec, RunConfig};
use crate::limits::FdReserve;
use crate::output::{build_result, write_point, RunFacts};
use crate::probe::{check_server, ProbeError};
use crate::progress::{note, stdout_text, Eta, Progress, SweepLine};
use crate::resultdir::{resume_state, DirError, DirPlan, ResumeState};
use crate::runner::{run_point, LiveStats, PointPlan, RunSettings};
use crate::schedule::ScheduleReport;
use crate::summary::{render, render_sweep_table, sweep_json, FailureSummary, PointStatus};
use crate::summary::{SummaryHeader, SweepRow};

/// Why a sweep could not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error(transparent)]
    Check(#[from] crate::correctness::CheckError),
    /// The correctness check before the sweep failed: nothing was measured.
    #[error("{0}")]
    Corrupt(String),
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
#[derive(Debug, Clone, Default)]
pub struct SweepOutcome {
    /// Files written (runs and aggregates, a partial one included).
    pub written: Vec<String>,
    /// Points (or runs of a repeated point) skipped by `--resume`.
    pub skipped: Vec<String>,
    /// A signal cut the sweep short.
    pub interrupted: bool,
    /// Runs where no request succeeded.
    pub empty_points: Vec<String>,
    /// Runs with some failed requests.
    pub failures: Vec<PointFailures>,
    /// One row per point reached, for the summary.
    pub rows: Vec<SweepRow>,
}

/// Index offset of warmup prompts (never used by measured requests).
const WARMUP_INDEX_BASE: u64 = 1 << 40;

/// Added to a point's seed for each further run (a fresh arrival schedule per run).
const RUN_SEED_STRIDE: u64 = 0x9E37_79B9_7F4A_7C15;

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

/// What every run of the sweep shares.
struct Ctx<'a> {
    cfg: &'a RunConfig,
    cancel: &'a Cancel,
    settings: Arc<RunSettings>,
    scraper: Option<Arc<Scraper>>,
    facts: RunFacts,
    line: Arc<SweepLine>,
}

/// Print human output: stdout, or stderr with `--json` (stdout then carries the JSON).
fn human(cfg: &RunConfig, text: &str) {
    if cfg.json {
        note(text.trim_end());
    } else {
        stdout_text(text);
    }
}

/// One run of a point, measured and written.
struct RunDone {
    result: BenchResult,
    interrupted: bool,
}

/// Run every point of `cfg` into the directory `dir` (already inspected). The server
/// was prepared by [`crate::preflight::prepare`] (ready, deployment record checked);
/// `scraper` captures its metrics ([`crate::capture::resolve`]).
pub async fn run_sweep(
    cfg: &RunConfig,
    cancel: &Cancel,
    mut dir: DirPlan,
    scraper: Option<Arc<Scraper>>,
) -> Result<SweepOutcome, SweepError> {
    let client = HttpClient::for_config(cfg)?;
    let info = check_server(&client, &cfg.served_model).await?;
    let model_id = cfg
        .model_id
        .clone()
        .or(info.model_root.clone())
        .unwrap_or_else(|| cfg.served_model.clone());
    // Outputs before numbers: a deployment that corrupts them is not measured at all.
    let correctness = if cfg.correctness.check_before_sweep {
        Some(check_before(cfg, &client).await?)
    } else {
        None
    };
    note(format_args!(
        "run-bm: {} sweep of {} point(s){} against {} (model {}{}), ITL {} OTL {} mode {}, results in {}",
        cfg.sweep,
        cfg.points.len(),
        if cfg.repeat > 1 {
            format!(", {} runs each", cfg.repeat)
        } else {
            String::new()
        },
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
    let work: Vec<f64> = cfg
        .points
        .iter()
        .flat_map(|p| {
            let w = Eta::work_of(p.num_prompts, p.rate, p.max_concurrency);
            std::iter::repeat_n(w, cfg.repeat as usize)
        })
        .collect();
    let ctx = Ctx {
        cfg,
        cancel,
        settings: Arc::new(settings(cfg, client)),
        scraper,
        facts: RunFacts {
            model_id,
            server_software: info.software.clone(),
            warmup_sent: 0,
            correctness,
        },
        line: SweepLine::new(cfg.points.len(), cfg.repeat, work, cfg.progress_bar),
    };
    let mut outcome = SweepOutcome::default();
    let mut reserve = FdReserve::acquire();
    let result = run_points(&ctx, &mut dir, &mut reserve, &mut outcome).await;
    ctx.line.finish();
    // The summary covers what was done, even when a write failed or a signal came.
    if cfg.json {
        let j = sweep_json(
            &cfg.result_dir.display().to_string(),
            cfg.sweep,
            cfg.repeat,
            outcome.interrupted,
            &outcome.rows,
        );
        pd_common::outln!("{j}");
    } else if !outcome.rows.is_empty() {
        stdout_text(&render_sweep_table(&outcome.rows));
    }
    result.map(|()| outcome)
}

async fn run_points(
    ctx: &Ctx<'_>,
    dir: &mut DirPlan,
    reserve: &mut FdReserve,
    outcome: &mut SweepOutcome,
) -> Result<(), SweepError> {
    let cfg = ctx.cfg;
    for (pi, point) in cfg.points.iter().enumerate() {
        if ctx.cancel.is_stopping() {
            outcome.interrupted = true;
            break;
        }
        if cfg.repeat <= 1 {
            if cfg.resume {
                match resume_state(&cfg.result_dir, point) {
                    ResumeState::Done => {
                        note(format_args!(
                            "[{}] done, skipped (--resume): {}",
                            stem(point),
                            cfg.result_dir.join(&point.file_name).display()
                        ));
                        outcome.skipped.push(point.file_name.clone());
                        ctx.line.skip();
                        push_existing(outcome, cfg, &point.file_name, vec![]);
                        continue;
                    }
                    ResumeState::Redo(why) => note(format_args!(
                        "[{}] run again (--resume): {why}",
                        stem(point)
                    )),
                    ResumeState::Missing => {}
                }
            }
            ctx.line.begin(pi, &stem(point), 1);
            let Some(done) =
                run_once(ctx, pi, 1, point, point, dir, reserve, outcome, true).await?
            else {
                outcome.interrupted = true;
                break;
            };
            let status = if done.interrupted {
                PointStatus::Interrupted
            } else {
                PointStatus::Measured
            };
            outcome.rows.push(SweepRow {
                file: point.file_name.clone(),
                run_files: vec![],
                status,
                result: done.result,
            });
            if done.interrupted {
                outcome.interrupted = true;
                break;
            }
            continue;
        }
        if !run_repeated(ctx, pi, point, dir, reserve, outcome).await? {
            outcome.interrupted = true;
            break;
        }
    }
    Ok(())
}

/// Add the row of a point already on disk (`--resume`).
fn push_existing(outcome: &mut SweepOutcome, cfg: &RunConfig, file: &str, runs: Vec<String>) {
    match BenchResult::read(&cfg.result_dir.join(file)) {
        Ok(result) => outcome.rows.push(SweepRow {
            file: file.to_string(),
            run_files: runs,
            status: PointStatus::Skipped,
            result,
        }),
        Err(e) => tracing::debug!("{file}: not in the summary ({e})"),
    }
}

/// The `K` runs of a repeated point, then its aggregate. `Ok(false)`: interrupted.
async fn run_repeated(
    ctx: &Ctx<'_>,
    pi: usize,
    point: &PointSpec,
    dir: &mut DirPlan,
    reserve: &mut FdReserve,
    outcome: &mut SweepOutcome,
) -> Result<bool, SweepError> {
    let cfg = ctx.cfg;
    let k_max = cfg.repeat;
    let run_specs: Vec<PointSpec> = (1..=k_max)
        .map(|k| PointSpec {
            file_name: run_file_name(&point.file_name, k),
            ..point.clone()
        })
        .collect();
    let run_names: Vec<String> = run_specs.iter().map(|s| s.file_name.clone()).collect();
    // --resume: the whole point is done when its aggregate records these K runs and every
    // run is done.
    if cfg.resume
        && resume_state(&cfg.result_dir, point) == ResumeState::Done
        && run_specs
            .iter()
            .all(|s| resume_state(&cfg.result_dir, s) == ResumeState::Done)
        && BenchResult::read(&cfg.result_dir.join(&point.file_name))
            .ok()
            .and_then(|r| pd_common::repeats::recorded(&r))
            .is_some_and(|r| r.count == k_max as usize)
    {
        note(format_args!(
            "[{}] done, skipped (--resume): {} runs and {}",
            stem(point),
            k_max,
            cfg.result_dir.join(&point.file_name).display()
        ));
        for _ in 0..k_max {
            ctx.line.skip();
        }
        outcome.skipped.push(point.file_name.clone());
        push_existing(outcome, cfg, &point.file_name, run_names);
        return Ok(true);
    }
    let mut runs: Vec<BenchResult> = Vec::new();
    for (i, spec) in run_specs.iter().enumerate() {
        let k = i as u32 + 1;
        if ctx.cancel.is_stopping() {
            return Ok(false);
        }
        if cfg.resume {
            match resume_state(&cfg.result_dir, spec) {
                ResumeState::Done => match BenchResult::read(&cfg.result_dir.join(&spec.file_name))
                {
                    Ok(r) => {
                        note(format_args!(
                            "[{}] run {k}/{k_max} done, skipped (--resume)",
                            stem(point)
                        ));
                        outcome.skipped.push(spec.file_name.clone());
                        ctx.line.skip();
                        runs.push(r);
                        continue;
                    }
                    Err(e) => note(format_args!(
                        "[{}] run {k}/{k_max} run again (--resume): {e}",
                        stem(point)
                    )),
                },
                ResumeState::Redo(why) => note(format_args!(
                    "[{}] run {k}/{k_max} run again (--resume): {why}",
                    stem(point)
                )),
                ResumeState::Missing => {}
            }
        }
        // Without --resume the point's old files (runs and aggregate) are moved aside
        // before its first run; with --resume only the run being redone.
        let clear_all = !cfg.resume && k == 1;
        if clear_all {
            dir.before_write(point)?;
        }
        ctx.line.begin(pi, &stem(point), k);
        let Some(done) =
            run_once(ctx, pi, k, point, spec, dir, reserve, outcome, !clear_all).await?
        else {
            return Ok(false);
        };
        if done.interrupted {
            outcome.rows.push(SweepRow {
                file: spec.file_name.clone(),
                run_files: vec![],
                status: PointStatus::Interrupted,
                result: done.result,
            });
            return Ok(false);
        }
        runs.push(done.result);
    }
    let Some(agg) = pd_common::repeats::aggregate_with_repeats(&runs, run_names.clone()) else {
        return Ok(true);
    };
    reserve.release();
    let written = dir
        .before_write_exact(&point.file_name)
        .map_err(SweepError::from)
        .and_then(|()| {
            agg.write(&cfg.result_dir.join(&point.file_name))
                .map_err(|source| SweepError::Write {
                    point: point.file_name.clone(),
                    source: Box::new(source),
                })
        });
    reserve.refill();
    written?;
    note(format_args!(
        "[{}] wrote {} (means of {} runs, 95 % intervals)",
        stem(point),
        cfg.result_dir.join(&point.file_name).display(),
        runs.len()
    ));
    outcome.written.push(point.file_name.clone());
    outcome.rows.push(SweepRow {
        file: point.file_name.clone(),
        run_files: run_names,
        status: PointStatus::Measured,
        result: agg,
    });
    Ok(true)
}

/// Warm up, run, capture, summarise and write one run of `point` as `spec.file_name`;
/// `None` when a signal came during the warmup (nothing written). `clear_own` moves the old files of `spec` aside first (a point's first run moves all
/// of the point's files instead, before calling this).
#[allow(clippy::too_many_arguments)]
async fn run_once(
    ctx: &Ctx<'_>,
    pi: usize,
    k: u32,
    point: &PointSpec,
    spec: &PointSpec,
    dir: &mut DirPlan,
    reserve: &mut FdReserve,
    outcome: &mut SweepOutcome,
    clear_own: bool,
) -> Result<Option<RunDone>, SweepError> {
    let cfg = ctx.cfg;
    let started = Instant::now();
    let label = stem(spec);
    let run_index = pi as u64 * u64::from(cfg.repeat) + u64::from(k - 1);
    let plan = PointPlan {
        num_prompts: point.num_prompts,
        rate: point.rate,
        burstiness: cfg.burstiness,
        max_concurrency: point.max_concurrency,
        seed: cfg
            .seed
            .wrapping_add(pi as u64)
            .wrapping_add(u64::from(k - 1).wrapping_mul(RUN_SEED_STRIDE)),
        index_base: u64::from(k - 1) * cfg.repeat_stride,
    };
    let mut facts = ctx.facts.clone();
    // With a warmup, the `before` scrape waits for its tokens to show on the server.
    let mut warmed: Option<(Baseline, u64)> = None;
    if cfg.warmup > 0 {
        let mut baseline = None;
        if let Some(s) = &ctx.scraper {
            baseline = Some(Baseline::take(s).await);
        }
        note(format_args!("[{label}] warmup: {} request(s)", cfg.warmup));
        let warm = PointPlan {
            num_prompts: cfg.warmup,
            rate: f64::INFINITY,
            index_base: WARMUP_INDEX_BASE + run_index * cfg.warmup,
            ..plan.clone()
        };
        let run = run_point(
            ctx.settings.clone(),
            &warm,
            ctx.cancel,
            Arc::new(LiveStats::default()),
        )
        .await;
        facts.warmup_sent = run.outcomes.len() as u64;
        let warm_tokens: u64 = run
            .outcomes
            .iter()
            .filter(|o| o.is_success())
            .map(|o| o.output_tokens)
            .sum();
        warmed = baseline.map(|b| (b, warm_tokens));
        if let Some(line) = FailureSummary::of(&run.outcomes).line() {
            tracing::warn!("[{label}] warmup: {line}");
        }
        if run.interrupted {
            // Interrupted while warming up: nothing measured, nothing written.
            return Ok(None);
        }
    }
    tracing::info!(
        point = %spec.file_name,
        prompts = point.num_prompts,
        rate = point.rate,
        max_concurrency = ?point.max_concurrency,
        "starting point"
    );
    let mut capture = match &ctx.scraper {
        Some(s) => Some(PointCapture::start(s.clone(), warmed).await),
        None => None,
    };
    let live = Arc::new(LiveStats::default());
    let progress = Progress::start(&label, point.num_prompts, live.clone(), ctx.line.clone());
    let mut run = run_point(ctx.settings.clone(), &plan, ctx.cancel, live).await;
    if let Some(c) = capture.as_mut() {
        c.stop().await;
    }
    progress.finish().await;
    ctx.settings
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
    let captured: Option<Captured> = match capture {
        Some(c) => Some(
            c.finish(
                run.t0,
                ctx.cancel.level() < Level::Abort,
                metrics.total_output_tokens,
            )
            .await,
        ),
        None => None,
    };
    // Open-loop points only: how well dispatch kept to the schedule.
    let sched = point.rate.is_finite().then(|| {
        let scheduled: Vec<f64> = run.outcomes.iter().map(|o| o.scheduled_s).collect();
        let arrivals: Vec<f64> = run.outcomes.iter().map(|o| o.arrival_s).collect();
        ScheduleReport::from_times(&scheduled, &arrivals)
    });
    let failures = FailureSummary::of(&run.outcomes);
    let mut text = render(
        &SummaryHeader {
            max_concurrency: point.max_concurrency,
            rate: point.rate,
        },
        &metrics,
        sched.as_ref(),
    );
    if let Some(line) = failures.line() {
        text.push_str(&format!("pd-lab: {line}\n"));
    }
    if let Some(c) = &captured {
        if let Some(line) = server_line(c) {
            text.push_str(&line);
        }
    }
    human(cfg, &text);
    report_errors(&label, &failures);
    if let Some(c) = captured.as_ref().filter(|c| c.failed > 0) {
        tracing::warn!(
            "[{label}] server metrics: {} scrape(s) failed ({})",
            c.failed,
            c.last_error.as_deref().unwrap_or("?")
        );
    }
    // Falling behind: the dispatcher's own lateness (a concurrency cap's queue is
    // intended and is client queue time).
    if let Some(w) = sched.as_ref().and_then(|s| s.behind_warning(point.rate)) {
        tracing::warn!("[{label}] {w}");
    }
    // Saturation self-check (client event loop, read bursts), every run.
    for w in crate::selfcheck::assess_run(&run).warnings {
        tracing::warn!("[{label}] {w}");
    }
    let mut result = build_result(cfg, spec, &run, &metrics, sched.as_ref(), &facts);
    if let (Some(c), Some(extra)) = (&captured, result.pd_lab.as_mut()) {
        extra
            .other
            .insert("server_metrics".into(), c.summary_json(&spec.file_name));
    }
    // Files first need descriptors: give back the reserve (requests are all done).
    reserve.release();
    let written = if clear_own {
        dir.before_write(spec).map_err(SweepError::from)
    } else {
        Ok(())
    }
    .and_then(|()| {
        write_point(
            cfg,
            spec,
            &run,
            &result,
            &facts,
            captured.as_ref().map(|c| c.scrapes.as_slice()),
        )
        .map_err(|source| SweepError::Write {
            point: spec.file_name.clone(),
            source: Box::new(source),
        })
    });
    reserve.refill();
    let written = written?;
    if run.interrupted {
        tracing::warn!(
            "[{label}] interrupted: partial point written ({} of {} requests sent), marked \"interrupted\": {}",
            run.outcomes.len(),
            point.num_prompts,
            written.result.display()
        );
    } else {
        note(format_args!("[{label}] wrote {}", written.result.display()));
    }
    if metrics.completed == 0 {
        outcome.empty_points.push(spec.file_name.clone());
    }
    if failures.failed > 0 {
        outcome.failures.push(PointFailures {
            file: spec.file_name.clone(),
            failed: failures.failed,
            total: failures.total,
        });
    }
    outcome.written.push(spec.file_name.clone());
    if !run.interrupted {
        ctx.line.complete(started.elapsed().as_secs_f64());
    }
    Ok(Some(RunDone {
        result,
        interrupted: run.interrupted,
    }))
}

/// `pd-lab: server: KV cache mean 41.0 % (max 87.5 %), running ≤ 16, waiting ≤ 2, …`.
fn server_line(c: &Captured) -> Option<String> {
    let v = c.summary_json("x.json");
    let f = |k: &str| v.get(k).and_then(|x| x.as_f64());
    let mut parts = Vec::new();
    if let (Some(m), Some(x)) = (f("kv_cache_usage_mean"), f("kv_cache_usage_max")) {
        parts.push(format!(
            "KV cache mean {:.1} % (max {:.1} %)",
            m * 100.0,
            x * 100.0
        ));
    }
    if let Some(x) = f("num_requests_running_max") {
        parts.push(format!("running ≤ {x:.0}"));
    }
    if let Some(x) = f("num_requests_waiting_max") {
        parts.push(format!("waiting ≤ {x:.0}"));
    }
    if let Some(x) = f("num_preemptions") {
        parts.push(format!("{x:.0} preemptions"));
    }
    if let Some(x) = f("prefix_cache_hit_rate") {
        parts.push(format!("prefix-cache hits {:.1} %", x * 100.0));
    }
    if let Some(n) = v.get("nixl") {
        let g = |k: &str| n.get(k).and_then(|x| x.as_f64());
        if let Some(t) = g("transfers") {
            let mean =
                g("xfer_time_mean_ms").map_or(String::new(), |m| format!(", mean {m:.1} ms"));
            parts.push(format!("{t:.0} KV transfers{mean}"));
        }
    }
    (!parts.is_empty()).then(|| format!("pd-lab: server: {}\n", parts.join(", ")))
}

/// `--check-correctness`: compare greedy completions with the reference before the first
/// point; a divergence ends the run before anything is written.
async fn check_before(
    cfg: &RunConfig,
    client: &HttpClient,
) -> Result<serde_json::Value, SweepError> {
    use crate::correctness as c;
    let (reference, name) = c::resolve_reference(cfg, client)
        .await?
        .ok_or(c::CheckError::NoReference)?;
    let v = c::check(cfg, client, &reference, &name).await?;
    if !v.passed() {
        return Err(SweepError::Corrupt(c::failure_message(cfg, &name, &v)));
    }
    note(format_args!(
        "run-bm: correctness check passed ({} greedy completions identical to {name})",
        v.checked
    ));
    Ok(c::manifest_entry(&name, &reference, &v))
}

fn stem(point: &PointSpec) -> String {
    point
        .file_name
        .strip_suffix(".json")
        .unwrap_or(&point.file_name)
        .to_string()
}

/// Warn with the distinct errors of a run (at most 5, with counts), each followed by the
/// flag that fixes it when the error says (out of vocabulary, context length).
fn report_errors(label: &str, f: &FailureSummary) {
    for (e, n) in f.messages.iter().take(5) {
        tracing::warn!("[{label}] {n} request(s) failed: {e}");
        if let Some(fix) = crate::preflight::hint(e) {
            tracing::warn!("[{label}]   fix: {fix}");
        }
    }
    if f.messages.len() > 5 {
        tracing::warn!(
            "[{label}] … and {} other errors (see the .requests.csv)",
            f.messages.len() - 5
        );
    }
}
