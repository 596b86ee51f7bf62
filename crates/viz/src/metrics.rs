//! Derived metrics, exactly as the original viz.py computes them, and their 95 %
//! confidence intervals when a point was run several times.
//!
//! * normalised = value × gpus_per_node / total GPUs;
//! * input throughput = total_input_tokens / duration;
//! * total throughput = input + output throughput;
//! * chunk latency = (chunk_size − 1) × TPOT + TTFT;
//! * interactivity = 1000 / TPOT (token/s per user).
//!
//! A point's value is computed from its result (the mean over the runs for a repeated
//! point, as the aggregate file records it). Its interval comes from the runs when
//! their files are there (Student t over the per-run values of the same formula),
//! else from the aggregate's recorded `pd_lab.repeats.ci95` of the same key.

use pd_common::BenchResult;

use crate::load::{Experiment, Point};
use crate::settings::{LatencyMode, Settings, ThroughputMetric};
use crate::stats::Stats;

/// value × gpus_per_node / total_gpus.
pub fn normalize(value: f64, gpus_per_node: u32, total_gpus: u32) -> f64 {
    if total_gpus == 0 {
        return value;
    }
    value * f64::from(gpus_per_node) / f64::from(total_gpus)
}

/// total_input_tokens / duration (`None` when the duration is not positive).
pub fn input_throughput_of(r: &BenchResult) -> Option<f64> {
    let d = r.duration;
    (d > 0.0 && d.is_finite()).then(|| r.total_input_tokens as f64 / d)
}

/// Median TPOT (ms) of a result.
pub fn tpot_of(r: &BenchResult) -> Option<f64> {
    r.median_tpot_ms().filter(|v| v.is_finite())
}

/// Median TTFT (ms) of a result.
pub fn ttft_of(r: &BenchResult) -> Option<f64> {
    r.median_ttft_ms().filter(|v| v.is_finite())
}

/// Throughput of a result (token/s, not normalised).
pub fn throughput_of(r: &BenchResult, metric: ThroughputMetric) -> Option<f64> {
    let out = Some(r.output_throughput).filter(|v| v.is_finite());
    match metric {
        ThroughputMetric::Output => out,
        ThroughputMetric::Input => input_throughput_of(r),
        ThroughputMetric::Total => Some(input_throughput_of(r)? + out?),
    }
}

/// Request throughput of a result (req/s, not normalised).
pub fn request_throughput_of(r: &BenchResult) -> Option<f64> {
    Some(r.request_throughput).filter(|v| v.is_finite())
}

/// The result-file key recorded for a throughput metric (for recorded intervals).
pub fn throughput_key(metric: ThroughputMetric) -> Option<&'static str> {
    match metric {
        ThroughputMetric::Output => Some("output_throughput"),
        ThroughputMetric::Input => None,
        ThroughputMetric::Total => Some("total_token_throughput"),
    }
}

/// total_input_tokens / duration of a point.
pub fn input_throughput(p: &Point) -> Option<f64> {
    input_throughput_of(&p.result)
}

/// Median TPOT (ms) of a point.
pub fn tpot(p: &Point) -> Option<f64> {
    tpot_of(&p.result)
}

/// Median TTFT (ms) of a point.
pub fn ttft(p: &Point) -> Option<f64> {
    ttft_of(&p.result)
}

/// Latency in the given mode (ms); `None` when a needed value is missing or not
/// positive (as in the original).
pub fn latency(
    mode: LatencyMode,
    tpot: Option<f64>,
    ttft: Option<f64>,
    chunk_size: u32,
) -> Option<f64> {
    let tpot = tpot.filter(|v| *v > 0.0);
    let ttft = ttft.filter(|v| *v > 0.0);
    match mode {
        LatencyMode::Token => tpot,
        LatencyMode::FirstToken => ttft,
        LatencyMode::Chunk => Some(f64::from(chunk_size.saturating_sub(1)) * tpot? + ttft?),
    }
}

/// Latency of a result in the given mode.
pub fn latency_of(r: &BenchResult, mode: LatencyMode, chunk_size: u32) -> Option<f64> {
    latency(mode, tpot_of(r), ttft_of(r), chunk_size)
}

/// The result key a latency mode reads (for recorded intervals).
pub fn latency_key(mode: LatencyMode) -> Option<&'static str> {
    match mode {
        LatencyMode::Token => Some("median_tpot_ms"),
        LatencyMode::FirstToken => Some("median_ttft_ms"),
        LatencyMode::Chunk => None,
    }
}

/// 1000 / TPOT (token/s/user).
pub fn interactivity(tpot: Option<f64>) -> Option<f64> {
    tpot.filter(|v| *v > 0.0).map(|t| 1000.0 / t)
}

/// Raw throughput of a point (token/s).
pub fn raw_throughput(p: &Point, metric: ThroughputMetric) -> Option<f64> {
    throughput_of(&p.result, metric)
}

/// The normalisation factor applied to an experiment's throughputs (1 when not
/// normalising or the GPU count is unknown).
pub fn norm_factor(e: &Experiment, settings: &Settings) -> f64 {
    match (settings.use_normalized, e.total_gpus) {
        (true, Some(g)) if g > 0 => normalize(1.0, settings.gpus_per_node, g),
        _ => 1.0,
    }
}

/// Apply the experiment's normalisation when `settings.use_normalized` and the GPU
/// count is known; otherwise the raw value.
pub fn maybe_normalized(e: &Experiment, settings: &Settings, raw: f64) -> f64 {
    match (settings.use_normalized, e.total_gpus) {
        (true, Some(g)) if g > 0 => normalize(raw, settings.gpus_per_node, g),
        _ => raw,
    }
}

/// Throughput of a point as plotted (normalised per the settings).
pub fn throughput(e: &Experiment, p: &Point, settings: &Settings) -> Option<f64> {
    raw_throughput(p, settings.throughput_metric).map(|v| maybe_normalized(e, settings, v))
}

/// Request throughput of a point as plotted (normalised per the settings).
pub fn request_throughput(e: &Experiment, p: &Point, settings: &Settings) -> Option<f64> {
    request_throughput_of(&p.result).map(|v| maybe_normalized(e, settings, v))
}

/// Unit of plotted throughput: `token/s/node` when normalised, else `token/s`.
pub fn throughput_unit(settings: &Settings) -> &'static str {
    if settings.use_normalized {
        "token/s/node"
    } else {
        "token/s"
    }
}

/// Statistics over a point's runs of `f` (needs at least two runs with a value each).
pub fn run_stats(p: &Point, f: impl Fn(&BenchResult) -> Option<f64>) -> Option<Stats> {
    if p.runs.len() < 2 {
        return None;
    }
    let values: Option<Vec<f64>> = p.runs.iter().map(&f).collect();
    Stats::of(&values?)
}

/// Statistics of `f` for significance tests: from the runs, else from the aggregate's
/// recorded standard deviation of `key` (mean = the point's value of `f`).
pub fn point_stats(
    p: &Point,
    f: impl Fn(&BenchResult) -> Option<f64>,
    key: Option<&str>,
) -> Option<Stats> {
    if let Some(s) = run_stats(p, &f) {
        return Some(s);
    }
    let rec = p.recorded.as_ref()?;
    let sd = *rec.std.get(key?)?;
    (rec.count >= 2 && sd.is_finite()).then_some(Stats {
        n: rec.count,
        mean: f(&p.result)?,
        sd,
    })
}

/// 95 % confidence interval of `f` at a point (see the module doc).
pub fn ci(
    p: &Point,
    f: impl Fn(&BenchResult) -> Option<f64>,
    key: Option<&str>,
) -> Option<(f64, f64)> {
    if let Some(s) = run_stats(p, &f) {
        return Some(s.ci95());
    }
    p.recorded
        .as_ref()
        .filter(|r| r.count >= 2)
        .and_then(|r| r.ci95.get(key?).copied())
        .filter(|(a, b)| a.is_finite() && b.is_finite() && a <= b)
}

/// Interval of 1000 / TPOT from the interval of TPOT (a monotone transform).
pub fn interactivity_ci(tpot_ci: Option<(f64, f64)>) -> Option<(f64, f64)> {
    let (lo, hi) = tpot_ci?;
    (lo > 0.0).then(|| (1000.0 / hi, 1000.0 / lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas() {
        assert_eq!(normalize(600.0, 8, 6), 800.0);
        assert_eq!(normalize(600.0, 8, 0), 600.0);
        assert_eq!(
            latency(LatencyMode::Token, Some(10.0), Some(200.0), 16),
            Some(10.0)
        );
        assert_eq!(
            latency(LatencyMode::FirstToken, Some(10.0), Some(200.0), 16),
            Some(200.0)
        );
        assert_eq!(
            latency(LatencyMode::Chunk, Some(10.0), Some(200.0), 16),
            Some(350.0)
        );
        assert_eq!(latency(LatencyMode::Chunk, Some(10.0), None, 16), None);
        assert_eq!(latency(LatencyMode::Token, Some(0.0), None, 16), None);
        assert_eq!(interactivity(Some(8.0)), Some(125.0));
        assert_eq!(interactivity(Some(0.0)), None);
        assert_eq!(interactivity_ci(Some((8.0, 10.0))), Some((100.0, 125.0)));
        assert_eq!(interactivity_ci(Some((0.0, 10.0))), None);
    }
}
