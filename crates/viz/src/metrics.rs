//! Derived metrics, exactly as the original viz.py computes them.
//!
//! * normalised = value × gpus_per_node / total GPUs;
//! * input throughput = total_input_tokens / duration;
//! * total throughput = input + output throughput;
//! * chunk latency = (chunk_size − 1) × TPOT + TTFT;
//! * interactivity = 1000 / TPOT (tokens/s per user).

use crate::load::{Experiment, Point};
use crate::settings::{LatencyMode, Settings, ThroughputMetric};

/// value × gpus_per_node / total_gpus.
pub fn normalize(value: f64, gpus_per_node: u32, total_gpus: u32) -> f64 {
    if total_gpus == 0 {
        return value;
    }
    value * f64::from(gpus_per_node) / f64::from(total_gpus)
}

/// total_input_tokens / duration (`None` when the duration is not positive).
pub fn input_throughput(p: &Point) -> Option<f64> {
    let d = p.result.duration;
    (d > 0.0 && d.is_finite()).then(|| p.result.total_input_tokens as f64 / d)
}

/// Median TPOT (ms).
pub fn tpot(p: &Point) -> Option<f64> {
    p.result.median_tpot_ms().filter(|v| v.is_finite())
}

/// Median TTFT (ms).
pub fn ttft(p: &Point) -> Option<f64> {
    p.result.median_ttft_ms().filter(|v| v.is_finite())
}

/// Latency of a point in the given mode (ms); `None` when a needed value is missing or
/// not positive (as in the original).
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

/// 1000 / TPOT (tokens/s/user).
pub fn interactivity(tpot: Option<f64>) -> Option<f64> {
    tpot.filter(|v| *v > 0.0).map(|t| 1000.0 / t)
}

/// Raw throughput of a point (tokens/s).
pub fn raw_throughput(p: &Point, metric: ThroughputMetric) -> Option<f64> {
    let out = Some(p.result.output_throughput).filter(|v| v.is_finite());
    match metric {
        ThroughputMetric::Output => out,
        ThroughputMetric::Input => input_throughput(p),
        ThroughputMetric::Total => Some(input_throughput(p)? + out?),
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
    Some(p.result.request_throughput)
        .filter(|v| v.is_finite())
        .map(|v| maybe_normalized(e, settings, v))
}

/// Unit of plotted throughput: `token/s/node` when normalised, else `token/s`.
pub fn throughput_unit(settings: &Settings) -> &'static str {
    if settings.use_normalized {
        "token/s/node"
    } else {
        "token/s"
    }
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
    }
}
