//! What a point says about itself besides the metrics: how it started (cold-start
//! handling) and whether the client or the server side was saturated while it ran.
//!
//! * **Start.** A closed-loop point opens its C connections before the clock starts
//!   ([`crate::client::HttpClient::prewarm`]), so its first wave of requests does not pay
//!   C simultaneous TCP (and TLS) handshakes that the following waves never pay.
//!   [`StartReport`] records what was opened and reused (`pd_lab.connections`).
//! * **Client saturation.** A probe task measures, every 10 ms, how long a task that
//!   became ready waits before it runs (a `yield` round trip through the runtime's
//!   queue, after the I/O driver's turn): that is exactly how late a chunk's timestamp can
//!   be. With the client's CPU time over the point it says whether the client kept up.
//! * **Read bursts.** A chunk that arrived in the same network read as the previous chunk
//!   of its stream has a zero gap. A high share of them collapses the median ITL. With
//!   the probe quiet, the bursts came from the server side (a saturated server or
//!   network, or a server that batches its writes, as Ray Serve's stream batching does).
//!
//! [`LoadReport::assess`] turns the figures into flags and warnings
//! (`pd_lab.self_check`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a point started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartReport {
    /// Connections asked for before the point (0: not a closed-loop point, or turned off).
    pub prewarm_wanted: u64,
    /// Connections idle in the pool when the point's clock started.
    pub prewarmed: u64,
    /// Seconds spent opening them.
    pub prewarm_s: f64,
    /// The first connection error while pre-warming, if any.
    pub prewarm_error: Option<String>,
    /// Connections opened during the point.
    pub opened: u64,
    /// Requests sent on a connection that carried one before.
    pub reused: u64,
    /// Pooled connections the server had closed, replaced during the point.
    pub stale: u64,
}

/// Period of the event-loop probe.
pub const PROBE_PERIOD: Duration = Duration::from_millis(10);

/// Samples of the event-loop probe, µs.
#[derive(Debug, Default)]
pub struct LoopProbe {
    samples: Mutex<Vec<u32>>,
}

impl LoopProbe {
    /// Start probing on the current runtime until the returned guard is dropped.
    pub fn start() -> (Arc<LoopProbe>, tokio::task::JoinHandle<()>) {
        let probe = Arc::new(LoopProbe::default());
        let p = probe.clone();
        let handle = tokio::spawn(async move {
            let mut next = tokio::time::Instant::now();
            loop {
                next += PROBE_PERIOD;
                tokio::time::sleep_until(next).await;
                let t = Instant::now();
                tokio::task::yield_now().await;
                let us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
                if let Ok(mut s) = p.samples.lock() {
                    s.push(us);
                }
                if next < tokio::time::Instant::now() {
                    // Far behind (a stopped process, a starved runtime): don't catch up.
                    next = tokio::time::Instant::now();
                }
            }
        });
        (probe, handle)
    }

    /// The samples so far, µs.
    pub fn samples(&self) -> Vec<u32> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Counters the requests of a point add to.
#[derive(Debug, Default)]
pub struct BurstCounter {
    /// Chunk events after the first of their stream.
    pub later_chunks: AtomicU64,
    /// Of those, the ones that arrived in the same read as the previous chunk.
    pub same_read: AtomicU64,
}

impl BurstCounter {
    pub fn add(&self, later_chunks: u64, same_read: u64) {
        self.later_chunks.fetch_add(later_chunks, Ordering::Relaxed);
        self.same_read.fetch_add(same_read, Ordering::Relaxed);
    }
}

/// CPU seconds (user + system) of this process.
pub fn process_cpu_s() -> f64 {
    // SAFETY: getrusage writes into a zeroed local struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// What the client saw of the load while a point ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// CPU seconds of the process during the point (user + system).
    pub cpu_s: f64,
    /// Worker threads of the runtime.
    pub threads: usize,
    /// Event-loop probe: ready-to-run delay, ms.
    pub loop_lag_p50_ms: f64,
    pub loop_lag_p99_ms: f64,
    pub loop_lag_max_ms: f64,
    pub loop_samples: usize,
    /// Chunk events after the first of their stream, and those that came in the same
    /// read as the previous one.
    pub later_chunks: u64,
    pub same_read_chunks: u64,
}

/// The verdict of [`LoadReport::assess`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assessment {
    pub client_saturated: bool,
    pub server_bursts: bool,
    /// Human-readable warnings (empty when nothing was found).
    pub warnings: Vec<String>,
    /// The loop-lag threshold used, ms.
    pub lag_limit_ms: f64,
}

/// Share of chunks in bursts above which the median ITL no longer describes the server's
/// token pace.
pub const BURST_LIMIT: f64 = 0.10;

impl LoadReport {
    /// Fill the probe figures from its samples (µs).
    pub fn with_probe(mut self, mut samples: Vec<u32>) -> Self {
        samples.sort_unstable();
        let ms: Vec<f64> = samples.iter().map(|&u| f64::from(u) / 1e3).collect();
        self.loop_samples = ms.len();
        self.loop_lag_p50_ms = pd_common::result::percentile_sorted(&ms, 50.0);
        self.loop_lag_p99_ms = pd_common::result::percentile_sorted(&ms, 99.0);
        self.loop_lag_max_ms = ms.last().copied().unwrap_or(0.0);
        self
    }

    /// Share of later chunks that came in the same read as their predecessor.
    pub fn burst_fraction(&self) -> f64 {
        if self.later_chunks == 0 {
            0.0
        } else {
            self.same_read_chunks as f64 / self.later_chunks as f64
        }
    }

    /// Judge the point. `median_tpot_ms`: the point's median TPOT (0 when unknown): the
    /// client is saturated when its p99 ready-to-run delay exceeds max(2 ms, 10 % of it),
    /// i.e. when timestamps can be late by a tenth of a token interval.
    pub fn assess(&self, median_tpot_ms: f64) -> Assessment {
        let lag_limit_ms = (0.1 * median_tpot_ms).max(2.0);
        let client_saturated = self.loop_samples > 0 && self.loop_lag_p99_ms > lag_limit_ms;
        let bursts = self.burst_fraction() > BURST_LIMIT;
        let mut warnings = Vec::new();
        if client_saturated {
            warnings.push(format!(
                "the client was saturated: a ready task or stream waited {:.1} ms (p99; max {:.1} ms) before it ran, more than {:.1} ms, so chunk timestamps are late by up to that much ({:.1} CPU-s on {} thread(s)); use fewer streams per client, a faster client machine, or run the client apart from the server",
                self.loop_lag_p99_ms, self.loop_lag_max_ms, lag_limit_ms, self.cpu_s, self.threads
            ));
        }
        if bursts {
            let side = if client_saturated {
                "the client read late (see above)"
            } else {
                "the server side delivered them in bursts: a saturated server or network, or a server that batches its writes (e.g. Ray Serve's stream batching)"
            };
            warnings.push(format!(
                "{:.1} % of the chunks arrived in the same read as the previous chunk of their stream (zero gaps that pull the median ITL down): {side}",
                self.burst_fraction() * 100.0
            ));
        }
        Assessment {
            client_saturated,
            server_bursts: bursts && !client_saturated,
            warnings,
            lag_limit_ms,
        }
    }
}

/// Median TPOT of the successful requests of a run, ms (0 when none has one).
pub fn median_tpot_ms(outcomes: &[pd_common::bench::RequestOutcome]) -> f64 {
    let mut t: Vec<f64> = outcomes.iter().filter_map(|o| o.tpot()).collect();
    t.sort_by(f64::total_cmp);
    pd_common::result::percentile_sorted(&t, 50.0) * 1e3
}

/// The self-check of a finished point.
pub fn assess_run(run: &crate::runner::PointRun) -> Assessment {
    run.load.assess(median_tpot_ms(&run.outcomes))
}

fn num(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// `pd_lab.connections`: how the point started.
pub fn connections_json(s: &StartReport) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert(
        "prewarm".into(),
        serde_json::Value::Bool(s.prewarm_wanted > 0),
    );
    m.insert("prewarmed".into(), s.prewarmed.into());
    m.insert("prewarm_s".into(), num(s.prewarm_s));
    if let Some(e) = &s.prewarm_error {
        m.insert("prewarm_error".into(), e.clone().into());
    }
    m.insert("opened_during_point".into(), s.opened.into());
    m.insert("reused".into(), s.reused.into());
    m.insert("stale_replaced".into(), s.stale.into());
    serde_json::Value::Object(m)
}

/// `pd_lab.self_check`: the load figures and the verdict.
pub fn self_check_json(
    run: &crate::runner::PointRun,
    m: &pd_common::bench::PointMetrics,
) -> serde_json::Value {
    let l = &run.load;
    let a = assess_run(run);
    let per_token = if m.total_output_tokens > 0 {
        l.cpu_s * 1e6 / m.total_output_tokens as f64
    } else {
        0.0
    };
    serde_json::json!({
        "client_cpu_s": num(l.cpu_s),
        "client_cpu_us_per_output_token": num(per_token),
        "client_threads": l.threads,
        "loop_lag_p50_ms": num(l.loop_lag_p50_ms),
        "loop_lag_p99_ms": num(l.loop_lag_p99_ms),
        "loop_lag_max_ms": num(l.loop_lag_max_ms),
        "loop_lag_limit_ms": num(a.lag_limit_ms),
        "same_read_chunk_fraction": num(l.burst_fraction()),
        "client_saturated": a.client_saturated,
        "server_bursts": a.server_bursts,
        "warnings": a.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_point_has_no_warning() {
        let r = LoadReport {
            later_chunks: 1000,
            same_read_chunks: 5,
            ..Default::default()
        }
        .with_probe(vec![50; 100]);
        let a = r.assess(10.0);
        assert!(
            !a.client_saturated && !a.server_bursts && a.warnings.is_empty(),
            "{a:?}"
        );
        assert_eq!(a.lag_limit_ms, 2.0);
    }

    #[test]
    fn a_lagging_loop_is_client_saturation() {
        let mut samples = vec![100; 90];
        samples.extend([30_000; 10]);
        let r = LoadReport {
            later_chunks: 1000,
            same_read_chunks: 600,
            cpu_s: 3.0,
            threads: 2,
            ..Default::default()
        }
        .with_probe(samples);
        let a = r.assess(10.0);
        assert!(a.client_saturated && !a.server_bursts, "{a:?}");
        assert_eq!(a.warnings.len(), 2);
        assert!(a.warnings[0].contains("client was saturated"));
        assert!(a.warnings[1].contains("client read late"));
        // The limit follows the token pace: 30 ms is fine for a 500 ms TPOT.
        assert!(!r.assess(500.0).client_saturated);
    }

    #[test]
    fn bursts_with_a_quiet_loop_point_at_the_server() {
        let r = LoadReport {
            later_chunks: 1000,
            same_read_chunks: 300,
            ..Default::default()
        }
        .with_probe(vec![80; 50]);
        let a = r.assess(10.0);
        assert!(!a.client_saturated && a.server_bursts);
        assert!(a.warnings[0].contains("server side"), "{a:?}");
        assert!((r.burst_fraction() - 0.3).abs() < 1e-12);
    }

    #[tokio::test]
    async fn the_probe_samples_the_loop() {
        let (probe, handle) = LoopProbe::start();
        tokio::time::sleep(Duration::from_millis(60)).await;
        handle.abort();
        let s = probe.samples();
        assert!(s.len() >= 3, "{s:?}");
        assert!(process_cpu_s() > 0.0);
    }
}
