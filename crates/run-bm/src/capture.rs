//! Capturing the server's own metrics around each point (`pd_common::server_metrics`).
//!
//! Before the sweep, [`resolve`] decides whether to capture: with `--no-server-metrics`
//! never; with `--metrics-url` (Ray clusters: each node's metrics agent) those endpoints,
//! which must answer (else the run is refused before anything is sent); otherwise
//! `<base-url>/metrics`, used only when it serves vLLM's metrics (a plain vLLM server, the
//! simulator; a Ray Serve ingress does not, and is told to use `--metrics-url`).
//!
//! Around each run of a point, a [`PointCapture`] scrapes once before it, every
//! `--metrics-interval` seconds while it runs (the first after half an interval) and once
//! after it. Scrapes use the shared blocking control-plane client (`pd_common::http`) on
//! tokio's blocking pool, bounded by a short timeout: a slow or dead metrics endpoint
//! never delays the measurement, it only loses samples (counted and reported).
//!
//! Exporters that publish with a lag (Ray's metrics agent) would make the counter deltas
//! short: the `after` scrape is repeated until the server's `generation_tokens` counter
//! shows the tokens the client received (at most [`SETTLE_LIMIT`]); with a warmup, the
//! `before` scrape likewise waits for the warmup's tokens. A server that publishes at once
//! (vLLM's own `/metrics`, the simulator) satisfies this on the first scrape.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pd_common::http::{Client, ClientOptions};
use pd_common::prometheus::{self, Sample};
use pd_common::server_metrics::{
    counter_total, is_captured, metrics_csv_name, summarize, Phase, Scrape,
};
use pd_common::url::BaseUrl;
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::RunConfig;

/// Whole-request timeout of one scrape.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// One endpoint serving Prometheus text.
#[derive(Debug, Clone)]
struct Source {
    base: BaseUrl,
    /// `""` when the URL names the page itself, else `/metrics`.
    path: &'static str,
}

impl Source {
    fn new(base: BaseUrl) -> Self {
        let path = if base.prefix.ends_with("/metrics") {
            ""
        } else {
            "/metrics"
        };
        Source { base, path }
    }

    fn url(&self) -> String {
        self.base.join(self.path)
    }
}

/// Scrapes the metrics endpoints of a deployment.
#[derive(Debug)]
pub struct Scraper {
    client: Client,
    sources: Vec<Source>,
    /// Between scrapes during a point.
    pub interval: Duration,
}

/// The captured samples of every source at one instant, or why none came.
#[derive(Debug, Default)]
struct Taken {
    samples: Vec<Sample>,
    errors: Vec<String>,
}

impl Scraper {
    fn new(sources: Vec<Source>, interval: Duration) -> Self {
        let client = Client::new(ClientOptions {
            timeout: SCRAPE_TIMEOUT,
            connect_timeout: Duration::from_secs(2),
            max_body_bytes: 32 << 20,
            ..ClientOptions::default()
        });
        Scraper {
            client,
            sources,
            interval,
        }
    }

    /// The page URLs scraped (for messages and the result).
    pub fn urls(&self) -> Vec<String> {
        self.sources
            .iter()
            .map(|s| pd_common::url::redact_userinfo(&s.url()))
            .collect()
    }

    /// One page: its captured samples, or why it failed.
    fn page(&self, s: &Source) -> Result<Vec<Sample>, String> {
        let r = self
            .client
            .get(&s.base, s.path)
            .map_err(|e| pd_common::diag::error_chain(&e))?;
        if !r.is_success() {
            return Err(format!("{} answered HTTP {}", s.url(), r.status));
        }
        Ok(prometheus::parse(&r.text())
            .samples
            .into_iter()
            .filter(|x| is_captured(&x.name))
            .collect())
    }

    /// Scrape every source (blocking). With several sources each sample gets the label
    /// `instance="<host:port>"`, as Prometheus adds it.
    fn take(&self) -> Taken {
        let mut t = Taken::default();
        let tag = self.sources.len() > 1;
        for s in &self.sources {
            match self.page(s) {
                Ok(samples) => t.samples.extend(samples.into_iter().map(|mut x| {
                    if tag {
                        x.labels.push(("instance".into(), s.base.authority()));
                    }
                    x
                })),
                Err(e) => t.errors.push(e),
            }
        }
        t
    }
}

/// Decide whether and where to capture (blocking: call it off the async workers). `Err`
/// is a refusal: `--metrics-url` was given and does not answer.
pub fn resolve(cfg: &RunConfig) -> Result<Option<Arc<Scraper>>, String> {
    let Some(opts) = &cfg.server_metrics else {
        tracing::debug!("server metrics: off (--no-server-metrics)");
        return Ok(None);
    };
    if !opts.urls.is_empty() {
        let scraper = Scraper::new(
            opts.urls.iter().cloned().map(Source::new).collect(),
            opts.interval,
        );
        let mut found = 0;
        for s in &scraper.sources {
            match scraper.page(s) {
                Ok(samples) => found += samples.len(),
                Err(e) => {
                    return Err(format!(
                        "--metrics-url: cannot read the server's metrics: {e}. Give the metrics endpoint of each node (on Ray: http://<node>:<metrics-export-port>, set by `ray start --metrics-export-port`), or --no-server-metrics"
                    ))
                }
            }
        }
        if found == 0 {
            tracing::warn!(
                "server metrics: {} serve(s) no vLLM metrics yet (names vllm:… or ray_vllm_…); captured anyway, the summaries stay empty until they appear",
                scraper.urls().join(", ")
            );
        }
        crate::progress::note(format_args!(
            "run-bm: server metrics from {} every {} s",
            scraper.urls().join(", "),
            opts.interval.as_secs_f64()
        ));
        return Ok(Some(Arc::new(scraper)));
    }
    let base = match BaseUrl::parse(&cfg.base_url, 80) {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!("server metrics: off ({e})");
            return Ok(None);
        }
    };
    let scraper = Scraper::new(vec![Source::new(base)], opts.interval);
    let Some(source) = scraper.sources.first() else {
        return Ok(None);
    };
    let why = match scraper.page(source) {
        Ok(samples) if !samples.is_empty() => {
            crate::progress::note(format_args!(
                "run-bm: server metrics from {} every {} s",
                source.url(),
                opts.interval.as_secs_f64()
            ));
            return Ok(Some(Arc::new(scraper)));
        }
        Ok(_) => format!("{} serves no vLLM metrics", source.url()),
        Err(e) => e,
    };
    let ray = cfg
        .record
        .as_ref()
        .is_some_and(|r| r.backend == pd_common::ServingBackend::Ray);
    crate::progress::note(format_args!(
        "run-bm: server metrics not captured ({why}){}",
        if ray {
            "; on Ray give --metrics-url http://<node>:<metrics-export-port>"
        } else {
            ""
        }
    ));
    Ok(None)
}

/// A scrape as taken: when (midpoint of the request) and what.
#[derive(Debug)]
pub struct Timed {
    at: Instant,
    phase: Phase,
    taken: Taken,
    /// Failed attempts before this one ([`take_before`]).
    retried: usize,
}

impl Timed {
    fn generation_tokens(&self) -> Option<f64> {
        counter_total(&self.taken.samples, "generation_tokens")
    }

    /// Whether the scrape holds any of vLLM's metrics (`vllm:*`, Ray's `ray_vllm_*`).
    fn has_vllm_metrics(&self) -> bool {
        self.taken
            .samples
            .iter()
            .any(|s| s.name.starts_with("vllm:") || s.name.starts_with("ray_vllm"))
    }
}

async fn take(scraper: &Arc<Scraper>, phase: Phase) -> Timed {
    let s = scraper.clone();
    let started = Instant::now();
    let taken = tokio::task::spawn_blocking(move || s.take())
        .await
        .unwrap_or_else(|e| Taken {
            samples: vec![],
            errors: vec![format!("scrape task failed: {e}")],
        });
    let at = started + started.elapsed() / 2;
    Timed {
        at,
        phase,
        taken,
        retried: 0,
    }
}

/// Attempts at a `before` scrape: the deltas of a point start from it, and the point has
/// not started yet, so a failed one (a timeout on a loaded machine, a refused connection)
/// is tried again.
pub const BEFORE_ATTEMPTS: usize = 3;
const BEFORE_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// A `before` scrape, tried up to [`BEFORE_ATTEMPTS`] times until one brings samples.
async fn take_before(scraper: &Arc<Scraper>) -> Timed {
    let mut retried = 0;
    loop {
        let mut t = take(scraper, Phase::Before).await;
        if !t.taken.samples.is_empty() || retried + 1 >= BEFORE_ATTEMPTS {
            t.retried = retried;
            return t;
        }
        tracing::debug!(
            "server metrics: the scrape before the point failed ({}); trying again",
            t.taken.errors.join("; ")
        );
        retried += 1;
        tokio::time::sleep(BEFORE_RETRY_PAUSE).await;
    }
}

/// A scrape of `phase`, `before` ones tried again when they fail.
async fn take_phase(scraper: &Arc<Scraper>, phase: Phase) -> Timed {
    match phase {
        Phase::Before => take_before(scraper).await,
        _ => take(scraper, phase).await,
    }
}

/// Scrape until the server's `generation_tokens` counter shows at least `tokens` more than
/// in `since` (an exporter that publishes with a lag, like Ray's metrics agent, has caught
/// up with what the client received), at most [`SETTLE_LIMIT`]. A counter missing from
/// `since` counts from 0; a counter missing from the scrape is waited for when the scrape
/// holds other vLLM metrics (the exporter has not published it yet), else the first scrape
/// is taken (a server without it).
async fn settled(scraper: &Arc<Scraper>, phase: Phase, since: &Timed, tokens: u64) -> Timed {
    let started = Instant::now();
    loop {
        let t = take_phase(scraper, phase).await;
        let caught_up = match (since.generation_tokens(), t.generation_tokens()) {
            (Some(a), Some(b)) => b - a + 0.5 >= tokens as f64,
            // The counter appeared during the run: it counts from 0.
            (None, Some(b)) => b + 0.5 >= tokens as f64,
            // A vLLM exporter that has not published the counter yet (Ray's metrics agent
            // before its first report of this engine): wait for it, as for a lag.
            (_, None) => tokens == 0 || !t.has_vllm_metrics(),
        };
        if caught_up || !t.taken.errors.is_empty() {
            return t;
        }
        if started.elapsed() >= SETTLE_LIMIT {
            tracing::warn!(
                "server metrics: the server's generation_tokens counter still lags the {tokens} tokens received after {} s; its deltas may be short",
                SETTLE_LIMIT.as_secs()
            );
            return t;
        }
        tracing::debug!("server metrics: counters lag the client, scraping again");
        tokio::time::sleep(SETTLE_PAUSE).await;
    }
}

/// Longest wait for lagging counters ([`settled`]); Ray's metrics agent reports every 10 s
/// by default.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(15);
const SETTLE_PAUSE: Duration = Duration::from_millis(500);

/// A scrape taken before a warmup, so that the `before` scrape of the run can wait for
/// the warmup's tokens to show.
#[derive(Debug)]
pub struct Baseline(Timed);

impl Baseline {
    pub async fn take(scraper: &Arc<Scraper>) -> Baseline {
        Baseline(take_before(scraper).await)
    }
}

/// The capture of one run of a point.
#[derive(Debug)]
pub struct PointCapture {
    scraper: Arc<Scraper>,
    taken: Arc<Mutex<Vec<Timed>>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// What a run's capture produced.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Scrapes with at least one sample, times relative to the run's start.
    pub scrapes: Vec<Scrape>,
    /// Scrapes (per source) that failed, and the last reason.
    pub failed: usize,
    /// Failed `before` attempts that were tried again (not counted in `failed`).
    pub retried: usize,
    pub last_error: Option<String>,
    pub urls: Vec<String>,
    pub interval_s: f64,
}

impl PointCapture {
    /// Take the `before` scrape (after `warmup`'s tokens show, when given: the baseline
    /// taken before the warmup and the output tokens it received) and start scraping in
    /// the background. Call right before the run starts.
    pub async fn start(scraper: Arc<Scraper>, warmup: Option<(Baseline, u64)>) -> PointCapture {
        let first = match warmup {
            Some((Baseline(base), tokens)) => settled(&scraper, Phase::Before, &base, tokens).await,
            None => take_before(&scraper).await,
        };
        let taken = Arc::new(Mutex::new(vec![first]));
        let (tx, mut rx) = oneshot::channel::<()>();
        let (s, store) = (scraper.clone(), taken.clone());
        let task = tokio::spawn(async move {
            let mut next = tokio::time::Instant::now() + s.interval / 2;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => {}
                    _ = &mut rx => return,
                }
                next += s.interval;
                // A scrape started while the run was going is kept even when the run ends
                // before it completes (a large page, e.g. a Ray metrics agent's, parsed in a
                // debug build can take longer than a short point): the measurement is over
                // by then, and the scrape is bounded by its timeout.
                let t = take(&s, Phase::During).await;
                if let Ok(mut v) = store.lock() {
                    v.push(t);
                }
                let now = tokio::time::Instant::now();
                if next < now {
                    next = now + s.interval / 2;
                }
            }
        });
        PointCapture {
            scraper,
            taken,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stop the background scrapes (call as soon as the run ended); a scrape in flight is
    /// completed first (at most one scrape timeout).
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Take the `after` scrape once the server's counters show the `tokens` the client
    /// received (none when `after` is false: an aborted run) and express times relative to
    /// `t0`, the run's start.
    pub async fn finish(mut self, t0: Instant, after: bool, tokens: u64) -> Captured {
        self.stop().await;
        let mut all = self
            .taken
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        if after {
            let last = match all.first() {
                Some(before) => settled(&self.scraper, Phase::After, before, tokens).await,
                None => take(&self.scraper, Phase::After).await,
            };
            all.push(last);
        }
        let mut out = Captured {
            scrapes: Vec::new(),
            failed: 0,
            retried: 0,
            last_error: None,
            urls: self.scraper.urls(),
            interval_s: self.scraper.interval.as_secs_f64(),
        };
        for t in all {
            out.retried += t.retried;
            out.failed += t.taken.errors.len();
            if let Some(e) = t.taken.errors.last() {
                out.last_error = Some(e.clone());
            }
            if t.taken.samples.is_empty() {
                continue;
            }
            let t_s = if t.at >= t0 {
                (t.at - t0).as_secs_f64()
            } else {
                -(t0 - t.at).as_secs_f64()
            };
            out.scrapes.push(Scrape {
                t_s,
                phase: t.phase,
                samples: t.taken.samples,
            });
        }
        out
    }
}

impl Captured {
    /// `pd_lab.server_metrics` of the run whose result file is `result_file`: the summary
    /// of [`pd_common::server_metrics::summarize`] plus where and how it was captured.
    pub fn summary_json(&self, result_file: &str) -> Value {
        let mut m = Map::new();
        m.insert("file".into(), Value::String(metrics_csv_name(result_file)));
        m.insert(
            "sources".into(),
            Value::Array(self.urls.iter().cloned().map(Value::String).collect()),
        );
        m.insert(
            "interval_s".into(),
            serde_json::Number::from_f64(self.interval_s).map_or(Value::Null, Value::Number),
        );
        let count = |p: Phase| self.scrapes.iter().filter(|s| s.phase == p).count() as u64;
        m.insert(
            "scrapes".into(),
            serde_json::json!({
                "before": count(Phase::Before),
                "during": count(Phase::During),
                "after": count(Phase::After),
                "failed": self.failed as u64,
                "retried": self.retried as u64,
            }),
        );
        if let Some(s) = summarize(&self.scrapes) {
            m.extend(s);
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_name_their_page() {
        let s = Source::new(BaseUrl::parse("http://10.0.0.5:8080", 80).unwrap());
        assert_eq!(s.url(), "http://10.0.0.5:8080/metrics");
        let s = Source::new(BaseUrl::parse("http://h:9/custom/metrics", 80).unwrap());
        assert_eq!(s.url(), "http://h:9/custom/metrics");
    }

    #[test]
    fn summary_counts_phases() {
        let sample = |v: f64| Sample {
            name: "vllm:prompt_tokens_total".into(),
            labels: vec![("engine".into(), "0".into())],
            value: v,
        };
        let c = Captured {
            scrapes: vec![
                Scrape {
                    t_s: -0.1,
                    phase: Phase::Before,
                    samples: vec![sample(5.0)],
                },
                Scrape {
                    t_s: 3.0,
                    phase: Phase::After,
                    samples: vec![sample(105.0)],
                },
            ],
            failed: 2,
            retried: 1,
            last_error: Some("x".into()),
            urls: vec!["http://h/metrics".into()],
            interval_s: 2.0,
        };
        let j = c.summary_json("conc4-2.json");
        assert_eq!(j["file"], "conc4-2.metrics.csv");
        assert_eq!(j["scrapes"]["before"], 1);
        assert_eq!(j["scrapes"]["during"], 0);
        assert_eq!(j["scrapes"]["failed"], 2);
        assert_eq!(j["scrapes"]["retried"], 1);
        assert_eq!(j["prompt_tokens"], 100);
    }
}
