//! Panels built from experiments: latency vs concurrency, throughput vs latency or
//! interactivity, the Pareto view, and server metrics over time.

use pd_common::{BenchResult, SweepKind};

use super::figure::{Frontier, Panel, Series};
use super::pareto::frontier;
use crate::load::{Experiment, Point};
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

fn flagged(e: &Experiment, keep: impl Fn(&Point) -> bool) -> Vec<bool> {
    e.points
        .iter()
        .filter(|p| keep(p))
        .map(|p| p.failed > 0)
        .collect()
}

/// Median TPOT or TTFT vs the sweep value (log y when `settings.log_concurrency`); a
/// band shows the 95 % CI where points were repeated.
pub fn latency_vs_sweep(
    experiments: &[Experiment],
    settings: &Settings,
    which: LatencyMetric,
) -> Panel {
    type Metric = fn(&BenchResult) -> Option<f64>;
    let (name, key, f): (&str, &str, Metric) = match which {
        LatencyMetric::Tpot => ("TPOT", "median_tpot_ms", metrics::tpot_of),
        LatencyMetric::Ttft => ("TTFT", "median_ttft_ms", metrics::ttft_of),
    };
    let series = experiments
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let keep = |p: &Point| f(&p.result).is_some();
            let mut s = Series::new(
                i,
                e.name.clone(),
                e.points
                    .iter()
                    .filter_map(|p| f(&p.result).map(|v| (p.value, v)))
                    .collect(),
            );
            s.y_err = e
                .points
                .iter()
                .filter(|p| keep(p))
                .map(|p| metrics::ci(p, f, Some(key)))
                .collect();
            s.band = true;
            s.flagged = flagged(e, keep);
            s
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

fn x_value(axis: XAxis, r: &BenchResult, settings: &Settings) -> Option<f64> {
    match axis {
        XAxis::Interactivity => metrics::interactivity(metrics::tpot_of(r)),
        XAxis::Latency(mode) => metrics::latency_of(r, mode, settings.chunk_size),
    }
}

fn x_ci(axis: XAxis, p: &Point, settings: &Settings) -> Option<(f64, f64)> {
    match axis {
        XAxis::Interactivity => {
            metrics::interactivity_ci(metrics::ci(p, metrics::tpot_of, Some("median_tpot_ms")))
        }
        XAxis::Latency(mode) => metrics::ci(
            p,
            |r| metrics::latency_of(r, mode, settings.chunk_size),
            metrics::latency_key(mode),
        ),
    }
}

fn x_labels(axis: XAxis, settings: &Settings) -> (String, &'static str) {
    match axis {
        XAxis::Interactivity => ("Interactivity (token/s/user)".into(), "Interactivity"),
        XAxis::Latency(LatencyMode::Token) => ("TPOT (ms)".into(), "TPOT"),
        XAxis::Latency(LatencyMode::FirstToken) => ("TTFT (ms)".into(), "TTFT"),
        XAxis::Latency(LatencyMode::Chunk) => (
            format!("Chunk Latency (ms, size={})", settings.chunk_size),
            "Chunk Latency",
        ),
    }
}

/// Throughput (per settings) vs latency or interactivity, each point labelled with its
/// request throughput (req/s, normalised per the settings); error bars on both axes
/// where points were repeated.
pub fn throughput_vs(experiments: &[Experiment], settings: &Settings, axis: XAxis) -> Panel {
    let tm = settings.throughput_metric;
    let series = experiments
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let k = metrics::norm_factor(e, settings);
            let mut s = Series::new(i, e.name.clone(), Vec::new());
            for p in &e.points {
                let (Some(x), Some(y)) = (
                    x_value(axis, &p.result, settings),
                    metrics::throughput(e, p, settings),
                ) else {
                    continue;
                };
                s.points.push((x, y));
                let rps = metrics::request_throughput(e, p, settings).unwrap_or(0.0);
                s.annotations.push(format!("{rps:.1}"));
                s.x_err.push(x_ci(axis, p, settings));
                s.y_err.push(
                    metrics::ci(
                        p,
                        |r| metrics::throughput_of(r, tm),
                        metrics::throughput_key(tm),
                    )
                    .map(|(a, b)| (a * k, b * k)),
                );
                s.flagged.push(p.failed > 0);
            }
            s
        })
        .collect();
    let (x_label, suffix) = x_labels(axis, settings);
    let what = tm.title();
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

/// (interactivity, per-GPU throughput) of the points of an experiment of known GPUs.
fn pareto_points<'a>(e: &'a Experiment, settings: &Settings) -> Vec<(&'a Point, (f64, f64))> {
    let gpus = e.total_gpus.filter(|g| *g > 0);
    e.points
        .iter()
        .filter_map(|p| {
            let x = metrics::interactivity(metrics::tpot(p))?;
            let y = metrics::raw_throughput(p, settings.throughput_metric)?;
            Some((p, (x, gpus.map_or(y, |g| y / f64::from(g)))))
        })
        .collect()
}

/// Per-GPU throughput vs token/s/user with the frontier across all experiments.
/// Experiments of unknown GPU count are drawn per deployment and left out of the frontier.
pub fn pareto(experiments: &[Experiment], settings: &Settings) -> Panel {
    let mut series = Vec::new();
    let mut all: Vec<(f64, f64)> = Vec::new();
    let tm = settings.throughput_metric;
    for (i, e) in experiments.iter().enumerate() {
        let gpus = e.total_gpus.filter(|g| *g > 0);
        let per_gpu = gpus.map_or(1.0, |g| 1.0 / f64::from(g));
        let pts = pareto_points(e, settings);
        if gpus.is_some() {
            all.extend(pts.iter().map(|(_, xy)| *xy));
        }
        let name = if gpus.is_some() {
            e.name.clone()
        } else {
            format!("{} (GPUs unknown: per deployment)", e.name)
        };
        let mut s = Series::new(i, name, pts.iter().map(|(_, xy)| *xy).collect());
        s.x_err = pts
            .iter()
            .map(|(p, _)| {
                metrics::interactivity_ci(metrics::ci(p, metrics::tpot_of, Some("median_tpot_ms")))
            })
            .collect();
        s.y_err = pts
            .iter()
            .map(|(p, _)| {
                metrics::ci(
                    p,
                    |r| metrics::throughput_of(r, tm),
                    metrics::throughput_key(tm),
                )
                .map(|(a, b)| (a * per_gpu, b * per_gpu))
            })
            .collect();
        s.flagged = pts.iter().map(|(p, _)| p.failed > 0).collect();
        series.push(s);
    }
    let front = frontier(&all);
    let what = tm.title();
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

/// `conc 16` / `rate 2.5`.
pub fn point_tag(p: &Point) -> String {
    match p.kind {
        SweepKind::Concurrency => format!("conc {}", format_sweep_value(p.value)),
        SweepKind::RequestRate => format!("rate {}", format_sweep_value(p.value)),
    }
}

/// Key of the frontier labels of a Pareto panel: `F1 = name conc 64 (85.2 token/s/user, 551.0 token/s/GPU)`.
pub fn pareto_key(experiments: &[Experiment], settings: &Settings) -> Vec<String> {
    let mut all: Vec<(f64, f64)> = Vec::new();
    let mut tags: Vec<String> = Vec::new();
    for e in experiments
        .iter()
        .filter(|e| e.total_gpus.is_some_and(|g| g > 0))
    {
        for (p, xy) in pareto_points(e, settings) {
            all.push(xy);
            tags.push(format!("{} {}", e.name, point_tag(p)));
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

/// The three server-metrics panels of one experiment: KV-cache usage, running and
/// waiting requests over time, one line per sweep point (style index = point index).
/// `series[i]` is the data of `points[i]` (points without a metrics file are absent).
pub fn server_metrics(points: &[(&Point, crate::server_metrics::Series)]) -> Vec<Panel> {
    let make =
        |title: &str, y: &str, pick: fn(&crate::server_metrics::Series) -> &Vec<(f64, f64)>| {
            Panel {
                title: title.to_string(),
                x_label: "Time from the start of the point (s)".into(),
                y_label: y.to_string(),
                x_log: false,
                y_log: false,
                series: points
                    .iter()
                    .enumerate()
                    .map(|(i, (p, s))| {
                        let mut line = Series::new(i, point_tag(p), pick(s).clone());
                        line.markers = pick(s).len() <= 40;
                        line
                    })
                    .collect(),
                frontier: None,
            }
        };
    vec![
        make("KV-Cache Usage", "KV-cache usage (%)", |s| &s.kv_usage_pct),
        make("Running Requests", "Running requests", |s| &s.running),
        make("Waiting Requests", "Waiting requests", |s| &s.waiting),
    ]
}
