//! Running one sweep point: dispatch on schedule, limit concurrency, stream every
//! request, and collect what happened (spec B.2, B.6, C.1, C.2).
//!
//! Closed loop (concurrency C): every task is created at t = 0 and waits on a semaphore
//! of C permits. Open loop (rate R): tasks are created at the precomputed arrival
//! offsets; with `--max-concurrency` they also wait on the semaphore. The send time
//! (`sent_s`) is taken right before the HTTP request is issued, after the semaphore.
//! `duration` runs from just before the dispatch loop to when the last task finished.
//!
//! Before a closed-loop point's clock starts, its C connections are opened
//! ([`RunSettings::prewarm`]); while it runs, the event-loop probe and the burst counter
//! of [`crate::selfcheck`] watch for saturation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::cancel::{Cancel, Level};
use crate::chunk::StreamRecorder;
use crate::client::{HttpClient, RequestError, RequestLimits};
use crate::prompt::PromptGen;
use crate::selfcheck::{process_cpu_s, BurstCounter, LoadReport, LoopProbe, StartReport};
use pd_common::bench::arrival_offsets;
use pd_common::bench::RequestOutcome;

/// What every request of a run shares.
#[derive(Debug)]
pub struct RunSettings {
    pub client: HttpClient,
    /// Served model name, as put in the request body.
    pub model: String,
    pub prompts: PromptGen,
    /// `max_tokens` of the workload (each request's own is `prompts.output_len(i)`).
    pub max_tokens: u32,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Keep the streamed text (for `--save-detailed`).
    pub keep_text: bool,
    /// Ask for per-chunk usage (`stream_options.continuous_usage_stats`).
    pub continuous_usage: bool,
    /// After Ctrl-C, how long in-flight requests may still finish.
    pub grace: Duration,
    /// `x-request-id` prefix.
    pub request_id_prefix: String,
    /// Every body asks for exactly its `max_tokens` tokens
    /// ([`crate::request::BodyOptions::expects_full_output`]): a stream that reports fewer
    /// is a failure (`Incomplete`).
    pub expect_full_output: bool,
    /// Open a closed-loop point's connections before its clock starts (cold-start
    /// handling, on by default; `--no-prewarm` turns it off).
    pub prewarm: bool,
}

/// One point's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PointPlan {
    pub num_prompts: u64,
    /// Requests per second (`inf` = all at once).
    pub rate: f64,
    pub burstiness: f64,
    pub max_concurrency: Option<u64>,
    pub seed: u64,
    /// Added to request indices (warmups use prompts the measured run never sends).
    pub index_base: u64,
}

/// What a point produced.
#[derive(Debug, Clone)]
pub struct PointRun {
    /// Requests that were sent, in dispatch order.
    pub outcomes: Vec<RequestOutcome>,
    /// Seconds, dispatch start → last task done.
    pub duration: f64,
    /// Cut short by Ctrl-C.
    pub interrupted: bool,
    /// Dispatch start.
    pub t0: Instant,
    /// Scheduled offsets of every planned request.
    pub schedule: Vec<f64>,
    /// How the point started (connections).
    pub start: StartReport,
    /// What the client saw of the load (CPU, event-loop lag, read bursts).
    pub load: LoadReport,
}

/// Live counters for the progress display.
#[derive(Debug, Default)]
pub struct LiveStats {
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    /// Chunks in bursts (same read as the previous chunk of their stream).
    pub bursts: BurstCounter,
    /// (TTFTs, TPOTs) of successful requests, seconds.
    samples: Mutex<(Vec<f64>, Vec<f64>)>,
}

impl LiveStats {
    fn record(&self, o: &RequestOutcome) {
        if o.is_success() {
            self.completed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut s) = self.samples.lock() {
                s.0.push(o.ttft);
                if let Some(t) = o.tpot() {
                    s.1.push(t);
                }
            }
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Finished requests (successful + failed).
    pub fn done(&self) -> u64 {
        self.completed.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }

    /// Median TTFT and TPOT so far, milliseconds.
    pub fn medians_ms(&self) -> (Option<f64>, Option<f64>) {
        let Ok(s) = self.samples.lock() else {
            return (None, None);
        };
        let med = |v: &Vec<f64>| {
            if v.is_empty() {
                return None;
            }
            let mut v = v.clone();
            v.sort_by(f64::total_cmp);
            Some(pd_common::result::percentile_sorted(&v, 50.0) * 1000.0)
        };
        (med(&s.0), med(&s.1))
    }
}

/// Run one point. Never fails: request errors are recorded in the outcomes.
pub async fn run_point(
    settings: Arc<RunSettings>,
    plan: &PointPlan,
    cancel: &Cancel,
    live: Arc<LiveStats>,
) -> PointRun {
    let n = usize::try_from(plan.num_prompts).unwrap_or(usize::MAX);
    let schedule = arrival_offsets(n, plan.rate, plan.burstiness, plan.seed);
    let sem = plan.max_concurrency.map(|c| {
        Arc::new(Semaphore::new(
            usize::try_from(c)
                .unwrap_or(Semaphore::MAX_PERMITS)
                .min(Semaphore::MAX_PERMITS),
        ))
    });
    let mut set = JoinSet::new();
    let pool = settings.client.pool().clone();
    let mut start = StartReport::default();
    if settings.prewarm && !plan.rate.is_finite() {
        if let Some(c) = plan.max_concurrency {
            let want = usize::try_from(c.min(plan.num_prompts)).unwrap_or(usize::MAX);
            start.prewarm_wanted = want as u64;
            let t = Instant::now();
            let (idle, err) = tokio::select! {
                r = settings.client.prewarm(want) => r,
                _ = cancel.reached(Level::StopSending) => (pool.idle(), None),
            };
            start.prewarm_s = t.elapsed().as_secs_f64();
            start.prewarmed = idle.min(want) as u64;
            if let Some(e) = err {
                tracing::warn!(
                    "opened {idle} of {want} connections before the point ({e}); the others open as requests start"
                );
                start.prewarm_error = Some(e.to_string());
            }
        }
    }
    let counters = &pool.counters;
    let (opened0, reused0, stale0) = (
        counters.opened.load(Ordering::Relaxed),
        counters.reused.load(Ordering::Relaxed),
        counters.stale.load(Ordering::Relaxed),
    );
    let (probe, probe_task) = LoopProbe::start();
    // The stream-reading thread's batch times belong to the point they were taken in.
    settings.client.take_stream_lag();
    let cpu0 = process_cpu_s();
    let t0 = Instant::now();
    // Requests take concurrency slots strictly in dispatch order (FIFO, as vLLM's asyncio
    // semaphore does): the dispatcher itself waits for a slot before starting a request.
    // While it waits, later arrivals fall due; they count as arrived on schedule and
    // their wait shows up as client queue time.
    let mut held_back = false;
    for (i, &d) in schedule.iter().enumerate() {
        if cancel.is_stopping() {
            break;
        }
        if d > 0.0 {
            let when = t0 + Duration::from_secs_f64(d);
            if when > Instant::now() {
                held_back = false;
                tokio::select! {
                    _ = tokio::time::sleep_until(when.into()) => {}
                    _ = cancel.reached(Level::StopSending) => break,
                }
            }
        }
        let now_s = t0.elapsed().as_secs_f64();
        let arrival = if held_back { d.min(now_s) } else { now_s };
        let permit = match &sem {
            Some(s) => {
                let before = Instant::now();
                let p = tokio::select! {
                    p = s.clone().acquire_owned() => p.ok(),
                    _ = cancel.reached(Level::StopSending) => None,
                };
                let Some(p) = p else { break };
                if before.elapsed() > Duration::from_micros(200) {
                    held_back = true;
                }
                Some(p)
            }
            None => None,
        };
        set.spawn(run_one(
            settings.clone(),
            plan.index_base + i as u64,
            i as u64,
            d,
            arrival,
            t0,
            permit,
            cancel.clone(),
            live.clone(),
        ));
    }
    let mut outcomes = Vec::with_capacity(set.len());
    let mut grace_deadline: Option<tokio::time::Instant> = None;
    let mut aborted = false;
    loop {
        if grace_deadline.is_none() && cancel.is_stopping() {
            grace_deadline = Some(tokio::time::Instant::now() + settings.grace);
        }
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        let next = tokio::select! {
            r = set.join_next() => r,
            _ = cancel.reached(Level::StopSending), if grace_deadline.is_none() => continue,
            _ = tokio::time::sleep_until(grace_deadline.unwrap_or(far)), if grace_deadline.is_some() && !aborted => {
                aborted = true;
                cancel.raise(Level::Abort);
                continue;
            }
        };
        match next {
            None => break,
            Some(Ok(Some(o))) => outcomes.push(o),
            Some(Ok(None)) => {}
            Some(Err(e)) => tracing::error!("request task failed: {e}"),
        }
    }
    let duration = t0.elapsed().as_secs_f64();
    let cpu_s = process_cpu_s() - cpu0;
    probe_task.abort();
    // Both are ready-to-handle delays sampled per 10 ms: the async runtime's (sending,
    // response heads, TLS streams) and the stream-reading thread's.
    let mut lag = probe.samples();
    lag.extend(settings.client.take_stream_lag());
    start.opened = counters.opened.load(Ordering::Relaxed) - opened0;
    start.reused = counters.reused.load(Ordering::Relaxed) - reused0;
    start.stale = counters.stale.load(Ordering::Relaxed) - stale0;
    let load = LoadReport {
        cpu_s,
        threads: tokio::runtime::Handle::current().metrics().num_workers(),
        later_chunks: live.bursts.later_chunks.load(Ordering::Relaxed),
        same_read_chunks: live.bursts.same_read.load(Ordering::Relaxed),
        ..Default::default()
    }
    .with_probe(lag);
    outcomes.sort_by_key(|o: &RequestOutcome| o.index);
    // Cut short = Ctrl-C came while requests were still unsent or in flight.
    let interrupted =
        cancel.is_stopping() && (outcomes.len() < n || aborted || cancel.level() == Level::Abort);
    tracing::debug!(
        sent = outcomes.len(),
        planned = n,
        duration,
        interrupted,
        "point finished"
    );
    PointRun {
        outcomes,
        duration,
        interrupted,
        t0,
        schedule,
        start,
        load,
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_one(
    settings: Arc<RunSettings>,
    prompt_index: u64,
    index: u64,
    scheduled_s: f64,
    arrival_s: f64,
    t0: Instant,
    permit: Option<OwnedSemaphorePermit>,
    cancel: Cancel,
    live: Arc<LiveStats>,
) -> Option<RequestOutcome> {
    let body = settings.body(prompt_index);
    let request_id = format!("{}{}", settings.request_id_prefix, prompt_index);
    let _permit = permit;
    if cancel.is_stopping() {
        return None;
    }
    // This request's max_tokens (datasets vary it per request).
    let max_tokens = settings.prompts.output_len(prompt_index);
    let mut rec = StreamRecorder::new(Instant::now(), max_tokens as usize, settings.keep_text);
    if settings.expect_full_output {
        rec.expect_tokens = Some(u64::from(max_tokens));
    }
    let result = settings
        .client
        .stream_completion_limited(
            body,
            &request_id,
            &mut rec,
            RequestLimits {
                timeout: Some(settings.timeout),
                cancel: Some(&cancel),
            },
        )
        .await;
    live.bursts
        .add((rec.chunks() as u64).saturating_sub(1), rec.same_read);
    let outcome = outcome_from(
        &mut rec,
        result,
        t0,
        RequestPlacement {
            index,
            scheduled_s,
            arrival_s,
            client_prompt_len: settings.prompts.prompt_len(prompt_index),
        },
    );
    if let Some(f) = &outcome.failure {
        tracing::debug!(index, error = %f, "request failed");
    }
    live.record(&outcome);
    Some(outcome)
}

/// Where a request sits in its point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestPlacement {
    pub index: u64,
    pub scheduled_s: f64,
    pub arrival_s: f64,
    pub client_prompt_len: u64,
}

/// Turn a finished stream record into the request's outcome (times relative to `t0`).
/// Failed requests keep their TTFT (if a chunk arrived) but get latency 0 and no
/// output, as in vLLM.
pub fn outcome_from(
    rec: &mut StreamRecorder,
    result: Result<(), RequestError>,
    t0: Instant,
    place: RequestPlacement,
) -> RequestOutcome {
    let (http_status, failure) = match result {
        Ok(()) => (200, None),
        Err(e) => (e.http_status, Some(e.into_failure())),
    };
    let success = failure.is_none();
    RequestOutcome {
        index: place.index,
        scheduled_s: place.scheduled_s,
        arrival_s: place.arrival_s,
        sent_s: rec.st.saturating_duration_since(t0).as_secs_f64(),
        failure,
        http_status,
        prompt_len: rec.prompt_tokens.unwrap_or(place.client_prompt_len),
        client_prompt_len: place.client_prompt_len,
        output_tokens: if success {
            rec.completion_tokens.unwrap_or(0)
        } else {
            0
        },
        ttft: rec.ttft(),
        chunks: std::mem::take(&mut rec.chunks),
        continuous_usage: rec.continuous_usage,
        latency: if success { rec.latency() } else { 0.0 },
        text: if success {
            rec.text.take().unwrap_or_default()
        } else {
            String::new()
        },
    }
}
