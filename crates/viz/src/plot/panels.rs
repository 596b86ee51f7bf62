//! Panels built from experiments: latency vs concurrency, throughput vs latency or
//! interactivity, and the Pareto view.

use pd_common::SweepKind;

use super::figure::{Frontier, Panel, Series};
use super::pareto::frontier;
use crate::load::Experiment;
use crate::metrics;
use crate::settings::{LatencyMode, Settings};
use crate::table::format_sweep_value;

/// Which latency a latency-vs-concurrency panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyMetric {
    Tpot,
    Ttft,
}

/// What a throughput panel puts on its x axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    Latency(LatencyMode),
    Interactivity,
}

/// `Concurrency`, `Request rate (req/s)` or both.
pub fn sweep_axis_label(experiments: &[Experiment]) -> &'static str {
    let kinds: Vec<SweepKind> = experiments.iter().flat_map(|e| e.kinds()).collect();
    let conc = kinds.contains(&SweepKind::Concurrency);
    let rate = kinds.contains(&SweepKind::RequestRate);
    match (conc, rate) {
        (true, true) => "Concurrency / request rate (req/s)",
        (false, true) => "Request rate (req/s)",
        _ => "Concurrency",
    }
}

fn sweep_word(experiments: &[Experiment]) -> &'static str {
    match sweep_axis_label(experiments) {
        "Concurrency" => "Concurrency",
        "Request rate (req/s)" => "Request Rate",
        _ => "Sweep Point",
    }
}

/// Median TPOT or TTFT vs the sweep value (log y when `settings.log_concurrency`).
pub fn latency_vs_sweep(
    experiments: &[Experiment],
    settings: &Settings,
    which: LatencyMetric,
) -> Panel {
    let (name, f): (&str, fn(&crate::load::Point) -> Option<f64>) = match which {
        LatencyMetric::Tpot => ("TPOT", metrics::tpot),
        LatencyMetric::Ttft => ("TTFT", metrics::ttft),
    };
    let series = experiments
        .iter()
        .enumerate()
        .map(|(i, e)| Series {
            index: i,
            name: e.name.clone(),
            points: e
                .points
                .iter()
                .filter_map(|p| f(p).map(|v| (p.value, v)))
                .collect(),
            annotations: Vec::new(),
        })
        .collect();
    Panel {
        title: format!("{name} Median vs {}", sweep_word(experiments)),
        x_label: sweep_axis_label(experiments).to_string(),
        y_label: format!("{name} Median (ms)"),
        x_log: false,
        y_log: settings.log_concurrency,
        series,
        frontier: None,
    }
}

fn x_value(axis: XAxis, p: &crate::load::Point, settings: &Settings) -> Option<f64> {
    match axis {
        XAxis::Interactivity => metrics::interactivity(metrics::tpot(p)),
        XAxis::Latency(mode) => metrics::latency(
            mode,
            metrics::tpot(p),
            metrics::ttft(p),
            settings.chunk_size,
        ),
    }
}

fn x_labels(axis: XAxis, settings: &Settings) -> (String, &'static str) {
    match axis {
        XAxis::Interactivity => ("Interactivity (token/s/usr)".into(), "Interactivity"),
        XAxis::Latency(LatencyMode::Token) => ("TPOT (ms)".into(), "TPOT"),
        XAxis::Latency(LatencyMode::FirstToken) => ("TTFT (ms)".into(), "TTFT"),
        XAxis::Latency(LatencyMode::Chunk) => (
            format!("Chunk Latency (ms, size={})", settings.chunk_size),
            "Chunk Latency",
        ),
    }
}

/// Throughput (per settings) vs latency or interactivity, each point annotated with its
/// request throughput (req/s, normalised per the settings).
pub fn throughput_vs(experiments: &[Experiment], settings: &Settings, axis: XAxis) -> Panel {
    let series = experiments
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut points = Vec::new();
            let mut annotations = Vec::new();
            for p in &e.points {
                let (Some(x), Some(y)) = (
                    x_value(axis, p, settings),
                    metrics::throughput(e, p, settings),
                ) else {
                    continue;
                };
                points.push((x, y));
                let rps = metrics::request_throughput(e, p, settings).unwrap_or(0.0);
                annotations.push(format!("{rps:.1}"));
            }
            Series {
                index: i,
                name: e.name.clone(),
                points,
                annotations,
            }
        })
        .collect();
    let (x_label, suffix) = x_labels(axis, settings);
    let what = settings.throughput_metric.title();
    Panel {
        title: format!("{what} vs {suffix} (labels: req/s)"),
        x_label,
        y_label: format!("{what} ({})", metrics::throughput_unit(settings)),
        x_log: settings.log_latency,
        y_log: false,
        series,
        frontier: None,
    }
}

/// Per-GPU throughput vs tokens/s/user with the frontier across all experiments.
/// Experiments of unknown GPU count are drawn per deployment and left out of the frontier.
pub fn pareto(experiments: &[Experiment], settings: &Settings) -> Panel {
    let mut series = Vec::new();
    let mut all: Vec<(f64, f64)> = Vec::new();
    for (i, e) in experiments.iter().enumerate() {
        let gpus = e.total_gpus.filter(|g| *g > 0);
        let mut points = Vec::new();
        for p in &e.points {
            let x = metrics::interactivity(metrics::tpot(p));
            let y = metrics::raw_throughput(p, settings.throughput_metric)
                .map(|v| gpus.map_or(v, |g| v / f64::from(g)));
            let (Some(x), Some(y)) = (x, y) else { continue };
            points.push((x, y));
            if gpus.is_some() {
                all.push((x, y));
            }
        }
        let name = if gpus.is_some() {
            e.name.clone()
        } else {
            format!("{} (GPUs unknown: per deployment)", e.name)
        };
        series.push(Series {
            index: i,
            name,
            points,
            annotations: Vec::new(),
        });
    }
    let front = frontier(&all);
    let what = settings.throughput_metric.title();
    Panel {
        title: format!("{what} per GPU vs Interactivity (Pareto frontier)"),
        x_label: "Interactivity (token/s/user)".into(),
        y_label: format!("{what} (token/s/GPU)"),
        x_log: settings.log_latency,
        y_log: false,
        series,
        frontier: (!front.is_empty()).then(|| Frontier {
            points: front.iter().map(|&k| all[k]).collect(),
            labels: (1..=front.len()).map(|n| format!("F{n}")).collect(),
        }),
    }
}

/// Key of the frontier labels of a Pareto panel: `F1 = name c64 (85.2 token/s/user, 551 token/s/GPU)`.
pub fn pareto_key(experiments: &[Experiment], settings: &Settings) -> Vec<String> {
    let mut all: Vec<(f64, f64)> = Vec::new();
    let mut tags: Vec<String> = Vec::new();
    for e in experiments {
        let Some(g) = e.total_gpus.filter(|g| *g > 0) else {
            continue;
        };
        for p in &e.points {
            let x = metrics::interactivity(metrics::tpot(p));
            let y =
                metrics::raw_throughput(p, settings.throughput_metric).map(|v| v / f64::from(g));
            if let (Some(x), Some(y)) = (x, y) {
                all.push((x, y));
                let at = match p.kind {
                    SweepKind::Concurrency => format!("conc {}", format_sweep_value(p.value)),
                    SweepKind::RequestRate => format!("rate {}", format_sweep_value(p.value)),
                };
                tags.push(format!("{} {at}", e.name));
            }
        }
    }
    frontier(&all)
        .iter()
        .enumerate()
        .map(|(n, &k)| {
            format!(
                "F{} = {} ({:.1} token/s/user, {:.1} token/s/GPU)",
                n + 1,
                tags[k],
                all[k].0,
                all[k].1
            )
        })
        .collect()
}
