//! The metrics of one sweep point, exactly as `vllm bench serve` computes them, plus
//! pd-lab's extra measurements (see `docs/VLLM-METRICS.md`).
//!
//! vLLM-compatible (written under the usual keys):
//! * TTFT per successful request; TPOT = (E2EL − TTFT) / (output_len − 1) for
//!   output_len > 1; ITL = the gaps between SSE *chunk events*, pooled over requests
//!   (a chunk carrying 3 tokens is one gap); E2EL = last chunk − send.
//! * `max_output_tokens_per_s` / `max_concurrent_requests`: the released one-second
//!   bucket algorithm, counting chunk events and inclusive second ranges.
//!
//! pd-lab extras (under `pd_lab`):
//! * `token_itl`: token-accurate inter-token latency (see
//!   [`ChunkTimeline::push_token_itl`](super::ChunkTimeline::push_token_itl)).
//! * `max_concurrent_requests_exact`: sweep-line peak over half-open [start, end)
//!   intervals (the unreleased vLLM fix, #56647).
//! * `max_output_tokens_per_s_tokens`: the bucket peak weighted by tokens per chunk.

use super::goodput::Goodput;
use super::outcome::RequestOutcome;
use super::streamed::stats_of;
use crate::result::{percentile_sorted, percentile_word, summarize_with_sorted};

/// A metric with a statistics block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricName {
    Ttft,
    Tpot,
    Itl,
    E2el,
    ClientQueueTime,
    E2elIncludingClientQueue,
}

impl MetricName {
    /// Block order fixed by vLLM.
    pub const ORDER: [MetricName; 6] = [
        MetricName::Ttft,
        MetricName::Tpot,
        MetricName::Itl,
        MetricName::E2el,
        MetricName::ClientQueueTime,
        MetricName::E2elIncludingClientQueue,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            MetricName::Ttft => "ttft",
            MetricName::Tpot => "tpot",
            MetricName::Itl => "itl",
            MetricName::E2el => "e2el",
            MetricName::ClientQueueTime => "client_queue_time",
            MetricName::E2elIncludingClientQueue => "e2el_including_client_queue",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ORDER.into_iter().find(|m| m.as_str() == s)
    }
    /// Console section title (spec G.10).
    pub fn title(self) -> &'static str {
        match self {
            MetricName::Ttft => "Time to First Token",
            MetricName::Tpot => "Time per Output Token (excl. 1st token)",
            MetricName::Itl => "Inter-token Latency",
            MetricName::E2el => "End-to-end Latency",
            MetricName::ClientQueueTime => "Client Queue Time",
            MetricName::E2elIncludingClientQueue => "E2E Latency incl. Client Queue",
        }
    }
    /// Console abbreviation.
    pub fn short(self) -> &'static str {
        match self {
            MetricName::Ttft => "TTFT",
            MetricName::Tpot => "TPOT",
            MetricName::Itl => "ITL",
            MetricName::E2el => "E2EL",
            MetricName::ClientQueueTime => "queue",
            MetricName::E2elIncludingClientQueue => "E2EL+queue",
        }
    }
}

/// What to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricOptions {
    /// Metrics with statistic blocks (emitted in [`MetricName::ORDER`]).
    pub metrics: Vec<MetricName>,
    /// Percentiles, in the order given.
    pub percentiles: Vec<f64>,
    pub goodput: Option<Goodput>,
    /// Whether a concurrency limit was set (client queue blocks need it).
    pub has_max_concurrency: bool,
    /// Whether the request rate is finite (`e2el_including_client_queue` needs it).
    pub finite_rate: bool,
}

impl MetricOptions {
    /// What `vllm bench serve` computes without metric flags: TTFT, TPOT, ITL and E2EL
    /// blocks with the 99th percentile, no goodput.
    pub fn vllm_defaults(has_max_concurrency: bool, finite_rate: bool) -> Self {
        MetricOptions {
            metrics: vec![
                MetricName::Ttft,
                MetricName::Tpot,
                MetricName::Itl,
                MetricName::E2el,
            ],
            percentiles: vec![99.0],
            goodput: None,
            has_max_concurrency,
            finite_rate,
        }
    }
}

/// Statistics of one metric, milliseconds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricStats {
    pub mean: f64,
    pub median: f64,
    pub std: f64,
    /// (percentile, value), in the asked order.
    pub percentiles: Vec<(f64, f64)>,
}

impl MetricStats {
    /// numpy semantics on seconds, reported in ms; all 0.0 when empty.
    pub fn of_seconds(values: &[f64], percentiles: &[f64]) -> Self {
        // one sort serves the median and the percentiles (hot in the simulator's loops)
        let mut sorted = values.to_vec();
        sorted.sort_unstable_by(f64::total_cmp);
        let s = summarize_with_sorted(values, &sorted);
        MetricStats {
            mean: s.mean * 1000.0,
            median: s.median * 1000.0,
            std: s.std * 1000.0,
            percentiles: percentiles
                .iter()
                .map(|&p| (p, percentile_sorted(&sorted, p) * 1000.0))
                .collect(),
        }
    }

    /// `(key, value)` pairs: mean, median, std, then each percentile.
    pub fn keys(&self, name: &str) -> Vec<(String, f64)> {
        let mut out = vec![
            (format!("mean_{name}_ms"), self.mean),
            (format!("median_{name}_ms"), self.median),
            (format!("std_{name}_ms"), self.std),
        ];
        for (p, v) in &self.percentiles {
            out.push((format!("{}_{name}_ms", percentile_word(*p)), *v));
        }
        out
    }
}

/// The metrics of one point.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PointMetrics {
    pub completed: u64,
    pub failed: u64,
    pub total_input_tokens: u64,
    pub total_output_tokens: u64,
    pub duration: f64,
    pub request_throughput: f64,
    pub request_goodput: Option<f64>,
    pub output_throughput: f64,
    pub total_token_throughput: f64,
    pub max_output_tokens_per_s: f64,
    pub max_concurrent_requests: u64,
    /// Statistic blocks in emission order.
    pub blocks: Vec<(MetricName, MetricStats)>,
    /// pd-lab extras.
    pub token_itl: MetricStats,
    pub max_concurrent_requests_exact: u64,
    pub max_output_tokens_per_s_tokens: f64,
    /// True when at least one request got per-chunk usage.
    pub continuous_usage: bool,
    /// Chunks per request carrying more than one token, over all chunks.
    pub multi_token_chunk_fraction: f64,
}

impl PointMetrics {
    /// Statistic keys in emission order.
    pub fn stat_keys(&self) -> Vec<(String, f64)> {
        self.blocks
            .iter()
            .flat_map(|(m, s)| s.keys(m.as_str()))
            .collect()
    }
    pub fn block(&self, m: MetricName) -> Option<&MetricStats> {
        self.blocks.iter().find(|(n, _)| *n == m).map(|(_, s)| s)
    }
}

/// Compute the metrics of a point from its requests and its duration (seconds).
pub fn compute(outcomes: &[RequestOutcome], duration: f64, opts: &MetricOptions) -> PointMetrics {
    let ok: Vec<&RequestOutcome> = outcomes.iter().filter(|r| r.is_success()).collect();
    let completed = ok.len() as u64;
    let failed = outcomes.len() as u64 - completed;
    let total_input_tokens: u64 = ok.iter().map(|r| r.prompt_len).sum();
    let total_output_tokens: u64 = ok.iter().map(|r| r.output_len()).sum();
    let per_s = |x: f64| if duration > 0.0 { x / duration } else { 0.0 };

    let ttfts: Vec<f64> = ok.iter().map(|r| r.ttft).collect();
    let tpots: Vec<f64> = ok.iter().filter_map(|r| r.tpot()).collect();
    // One sample per chunk (and per token): never collected, see `streamed`.
    let itls = |emit: &mut dyn FnMut(f64, u32)| {
        for r in &ok {
            for g in r.chunks.gaps() {
                emit(g, 1);
            }
        }
    };
    let token_itls = |emit: &mut dyn FnMut(f64, u32)| {
        for r in &ok {
            r.chunks.for_each_token_itl(&mut *emit);
        }
    };
    let e2els: Vec<f64> = ok.iter().map(|r| r.latency).collect();
    let queues: Vec<f64> = ok.iter().map(|r| r.client_queue_time()).collect();
    let e2el_q: Vec<f64> = ok
        .iter()
        .map(|r| r.latency + r.client_queue_time())
        .collect();

    let mut blocks = Vec::new();
    for m in MetricName::ORDER {
        if !opts.metrics.contains(&m) {
            continue;
        }
        if m == MetricName::Itl {
            blocks.push((m, stats_of(&itls, &opts.percentiles)));
            continue;
        }
        let values = match m {
            MetricName::Ttft => &ttfts,
            MetricName::Tpot => &tpots,
            MetricName::E2el => &e2els,
            MetricName::ClientQueueTime if opts.has_max_concurrency => &queues,
            MetricName::E2elIncludingClientQueue
                if opts.has_max_concurrency && opts.finite_rate =>
            {
                &e2el_q
            }
            _ => continue,
        };
        blocks.push((m, MetricStats::of_seconds(values, &opts.percentiles)));
    }

    let total_chunks: usize = ok.iter().map(|r| r.chunks.len()).sum();
    let multi: usize = ok.iter().map(|r| r.chunks.multi_token_chunks()).sum();

    let (peak_chunks, peak_tokens, peak_conc) = bucket_peaks(&ok);
    PointMetrics {
        completed,
        failed,
        total_input_tokens,
        total_output_tokens,
        duration,
        request_throughput: per_s(completed as f64),
        request_goodput: opts
            .goodput
            .map(|g| per_s(ok.iter().filter(|r| g.is_good(r)).count() as f64)),
        output_throughput: per_s(total_output_tokens as f64),
        total_token_throughput: per_s((total_input_tokens + total_output_tokens) as f64),
        max_output_tokens_per_s: peak_chunks,
        max_concurrent_requests: peak_conc,
        blocks,
        token_itl: stats_of(&token_itls, &opts.percentiles),
        max_concurrent_requests_exact: exact_peak_concurrency(&ok),
        max_output_tokens_per_s_tokens: peak_tokens,
        continuous_usage: ok.iter().any(|r| r.continuous_usage),
        multi_token_chunk_fraction: if total_chunks > 0 {
            multi as f64 / total_chunks as f64
        } else {
            0.0
        },
    }
}

/// The released one-second bucket algorithm (B.8): (peak chunk events per bucket, peak
/// tokens per bucket, peak concurrency per bucket).
fn bucket_peaks(ok: &[&RequestOutcome]) -> (f64, f64, u64) {
    if ok.is_empty() {
        return (0.0, 0.0, 0);
    }
    let t0 = ok.iter().map(|r| r.sent_s).fold(f64::INFINITY, f64::min);
    let t_end = ok
        .iter()
        .map(|r| r.sent_s + r.latency)
        .fold(f64::NEG_INFINITY, f64::max);
    let nb = ((t_end - t0).ceil().max(0.0) as usize) + 1;
    let bucket = |t: f64| (((t - t0).floor().max(0.0)) as usize).min(nb - 1);
    let mut chunks = vec![0u64; nb];
    let mut tokens = vec![0u64; nb];
    let mut conc = vec![0u64; nb];
    for r in ok {
        for (t, n) in r.chunk_times().zip(r.chunks.tokens()) {
            let b = bucket(t);
            chunks[b] += 1;
            tokens[b] += u64::from(n);
        }
        for c in &mut conc[bucket(r.sent_s)..=bucket(r.sent_s + r.latency)] {
            *c += 1;
        }
    }
    let max = |v: &[u64]| v.iter().copied().max().unwrap_or(0);
    (max(&chunks) as f64, max(&tokens) as f64, max(&conc))
}

/// Exact peak of simultaneous requests: half-open intervals [start, end), ends before
/// starts at equal times.
fn exact_peak_concurrency(ok: &[&RequestOutcome]) -> u64 {
    let mut events: Vec<(f64, i64)> = Vec::with_capacity(ok.len() * 2);
    for r in ok {
        events.push((r.sent_s, 1));
        events.push((r.sent_s + r.latency, -1));
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut cur, mut peak) = (0i64, 0i64);
    for (_, d) in events {
        cur += d;
        peak = peak.max(cur);
    }
    peak as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{ChunkTimeline, Failure, FailureKind};

    fn req(sent: f64, ttft: f64, itl: &[f64], out: u64) -> RequestOutcome {
        RequestOutcome {
            sent_s: sent,
            prompt_len: 10,
            client_prompt_len: 10,
            output_tokens: out,
            ttft,
            chunks: ChunkTimeline::single_tokens(itl.to_vec()),
            latency: ttft + itl.iter().sum::<f64>(),
            ..Default::default()
        }
    }

    fn opts() -> MetricOptions {
        MetricOptions::vllm_defaults(true, false)
    }

    #[test]
    fn peaks_follow_released_buckets() {
        // Two requests that touch the same seconds without overlapping in time.
        let a = req(0.0, 0.5, &[0.4], 2); // [0, 0.9]
        let b = req(0.95, 0.2, &[0.2], 2); // [0.95, 1.35]
        let m = compute(&[a, b], 1.35, &opts());
        assert_eq!(m.max_concurrent_requests, 2);
        assert_eq!(m.max_concurrent_requests_exact, 1);
        // events: 0.5, 0.9 in bucket 0; 1.15, 1.35 in bucket 1.
        assert_eq!(m.max_output_tokens_per_s, 2.0);
    }

    #[test]
    fn failed_are_excluded_and_empty_is_zero() {
        let bad = RequestOutcome {
            failure: Some(Failure::new(FailureKind::Transport, "x")),
            ..Default::default()
        };
        let m = compute(&[bad], 1.0, &opts());
        assert_eq!((m.completed, m.failed), (0, 1));
        assert!(m.stat_keys().iter().all(|(_, v)| *v == 0.0));
        assert_eq!(m.stat_keys().len(), 16);
    }

    #[test]
    fn pooled_itl_stats_equal_the_sorted_samples() {
        // Requests with multi-token, empty and long-gap chunks: the streamed statistics
        // must be exactly numpy's over the materialized samples.
        let mut outs = Vec::new();
        for i in 0..40u32 {
            let gaps: Vec<f64> = (0..(5 + i % 7))
                .map(|k| match (i + k) % 11 {
                    0 => 0.0,
                    1 => 4.5 + f64::from(k),
                    _ => 0.01 + f64::from((i * 31 + k * 17) % 1000) * 1e-6,
                })
                .collect();
            let tokens: Vec<u32> = (0..=gaps.len() as u32)
                .map(|k| [1, 1, 3, 0, 1, 300][((i + k) % 6) as usize])
                .collect();
            outs.push(RequestOutcome {
                sent_s: f64::from(i) * 0.1,
                ttft: 0.05,
                latency: 0.05 + gaps.iter().sum::<f64>(),
                chunks: ChunkTimeline::from_parts(gaps, tokens).unwrap(),
                ..Default::default()
            });
        }
        let o = MetricOptions {
            percentiles: vec![50.0, 90.0, 99.0, 99.9],
            ..opts()
        };
        let m = compute(&outs, 10.0, &o);
        let itls: Vec<f64> = outs.iter().flat_map(|r| r.chunks.gaps()).collect();
        let mut tok = Vec::new();
        for r in &outs {
            r.chunks.push_token_itl(&mut tok);
        }
        assert_eq!(
            m.block(MetricName::Itl),
            Some(&MetricStats::of_seconds(&itls, &o.percentiles))
        );
        assert_eq!(m.token_itl, MetricStats::of_seconds(&tok, &o.percentiles));
    }

    #[test]
    fn goodput_counts_requests_meeting_every_slo() {
        let mut g = Goodput::default();
        g.add_token("ttft:300").unwrap();
        let o = MetricOptions {
            goodput: Some(g),
            ..opts()
        };
        let m = compute(
            &[req(0.0, 0.2, &[0.1], 2), req(0.0, 0.4, &[0.1], 2)],
            2.0,
            &o,
        );
        assert_eq!(m.request_goodput, Some(0.5));
    }
}
