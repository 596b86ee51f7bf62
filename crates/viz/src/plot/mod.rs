//! Plots: figure model ([`figure`]), axes ([`ticks`]), label placement ([`labels`]),
//! panels from experiments ([`panels`]), Pareto frontier ([`pareto`]) and PNG/SVG
//! output ([`output`]).

pub mod figure;
pub mod labels;
pub mod output;
pub mod panels;
pub mod pareto;
pub mod ticks;

pub use figure::{Figure, LegendEntry, Panel, Series};
pub use output::Format;

use crate::load::Experiment;
use crate::outputs::sanitize;
use crate::server_metrics;
use crate::settings::{LatencyMode, Settings};
use panels::{LatencyMetric, XAxis};

/// Plot types (`--plot-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum PlotType {
    /// TPOT vs concurrency, TTFT vs concurrency, throughput vs latency (or interactivity).
    Comprehensive,
    ThroughputVsTpot,
    ThroughputVsTtft,
    ThroughputVsInteractivity,
    TpotVsConcurrency,
    TtftVsConcurrency,
    /// Per-GPU throughput vs token/s/user with the Pareto frontier.
    Pareto,
    /// KV-cache usage, running and waiting requests over time per sweep point (from
    /// P.metrics.csv), one figure per experiment.
    ServerMetrics,
    /// Every type above.
    All,
}

impl PlotType {
    /// Every concrete type.
    pub const CONCRETE: [PlotType; 8] = [
        PlotType::Comprehensive,
        PlotType::ThroughputVsTpot,
        PlotType::ThroughputVsTtft,
        PlotType::ThroughputVsInteractivity,
        PlotType::TpotVsConcurrency,
        PlotType::TtftVsConcurrency,
        PlotType::Pareto,
        PlotType::ServerMetrics,
    ];

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            PlotType::Comprehensive => "comprehensive",
            PlotType::ThroughputVsTpot => "throughput-vs-tpot",
            PlotType::ThroughputVsTtft => "throughput-vs-ttft",
            PlotType::ThroughputVsInteractivity => "throughput-vs-interactivity",
            PlotType::TpotVsConcurrency => "tpot-vs-concurrency",
            PlotType::TtftVsConcurrency => "ttft-vs-concurrency",
            PlotType::Pareto => "pareto",
            PlotType::ServerMetrics => "server-metrics",
            PlotType::All => "all",
        }
    }

    /// The word in file names (`comprehensive_analysis`, as the original viz.py).
    pub fn file_word(self) -> &'static str {
        match self {
            PlotType::Comprehensive => crate::outputs::ALIAS_STEM,
            other => other.as_str(),
        }
    }

    /// Expand `all` and drop repeats, keeping order.
    pub fn expand(types: &[PlotType]) -> Vec<PlotType> {
        let mut out: Vec<PlotType> = Vec::new();
        for t in types {
            let add: Vec<PlotType> = if *t == PlotType::All {
                PlotType::CONCRETE.to_vec()
            } else {
                vec![*t]
            };
            for a in add {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }
}

/// Panel sizes: the 3-panel figure is 3 × 1200 px wide, single panels 2100 px.
const PANEL_3: (u32, u32) = (1200, 1050);
const PANEL_1: (u32, u32) = (2100, 1400);

/// A figure of one plot type and the file-name word it is written under
/// (`comprehensive_analysis`, `server-metrics_<experiment>`).
#[derive(Debug, Clone)]
pub struct Planned {
    pub plot_type: PlotType,
    pub word: String,
    pub figure: Figure,
}

fn subtitle_parts(
    experiments: &[Experiment],
    settings: &Settings,
    workload: Option<&str>,
    per_gpu: bool,
) -> Vec<String> {
    let mut sub = Vec::new();
    if let Some(w) = workload {
        sub.push(w.to_string());
    }
    sub.push(if per_gpu {
        "per-GPU throughput = value / GPUs of the deployment".to_string()
    } else if settings.use_normalized {
        format!(
            "throughput normalised to one node of {} GPUs (value × {} / GPUs)",
            settings.gpus_per_node, settings.gpus_per_node
        )
    } else {
        "raw throughput (not normalised)".to_string()
    });
    sub.push(format!("{} experiment(s)", experiments.len()));
    let most_runs = experiments
        .iter()
        .flat_map(|e| e.points.iter().map(|p| p.repeat_count()))
        .max()
        .unwrap_or(1);
    if most_runs > 1 {
        sub.push(format!("up to {most_runs} runs per point"));
    }
    sub
}

/// Notes explaining what the drawn marks mean.
fn notes_for(panels: &[Panel], settings: &Settings) -> Vec<String> {
    let mut notes = Vec::new();
    let series = || panels.iter().flat_map(|p| p.series.iter());
    if series().any(|s| !s.annotations.is_empty()) {
        let unit = if settings.use_normalized {
            "req/s/node"
        } else {
            "req/s"
        };
        notes.push(format!(
            "Point labels: request throughput ({unit}); a label that would overlap another \
             label, a marker or a line is left out."
        ));
    }
    if series().any(|s| s.x_err.iter().chain(&s.y_err).any(Option::is_some)) {
        notes.push(
            "Bars and bands: 95 % confidence interval of the mean over the repeated runs \
             of a point (Student t)."
                .to_string(),
        );
    }
    if series().any(|s| s.flagged.iter().any(|f| *f)) {
        notes.push(
            "Red rings: points where some requests failed; their metrics cover only the \
             requests that succeeded."
                .to_string(),
        );
    }
    notes
}

fn finish(
    title: String,
    subtitle: Vec<String>,
    panels: Vec<Panel>,
    mut notes: Vec<String>,
    settings: &Settings,
) -> Figure {
    let panel_size = if panels.len() > 1 { PANEL_3 } else { PANEL_1 };
    let legend = panels
        .first()
        .map(|p| {
            p.series
                .iter()
                .map(|s| LegendEntry {
                    index: s.index,
                    name: s.name.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut all = notes_for(&panels, settings);
    all.append(&mut notes);
    Figure {
        title,
        subtitle,
        panels,
        legend,
        notes: all,
        panel_size,
    }
}

/// Build the figure of a comparison plot type (every type but server-metrics). `name`
/// and `workload` go into the title.
pub fn figure(
    plot_type: PlotType,
    experiments: &[Experiment],
    settings: &Settings,
    name: &str,
    workload: Option<&str>,
) -> Figure {
    let panels = match plot_type {
        PlotType::Comprehensive | PlotType::All | PlotType::ServerMetrics => vec![
            panels::latency_vs_sweep(experiments, settings, LatencyMetric::Tpot),
            panels::latency_vs_sweep(experiments, settings, LatencyMetric::Ttft),
            panels::throughput_vs(
                experiments,
                settings,
                if settings.use_interactivity {
                    XAxis::Interactivity
                } else {
                    XAxis::Latency(settings.latency_mode)
                },
            ),
        ],
        PlotType::ThroughputVsTpot => vec![panels::throughput_vs(
            experiments,
            settings,
            XAxis::Latency(LatencyMode::Token),
        )],
        PlotType::ThroughputVsTtft => vec![panels::throughput_vs(
            experiments,
            settings,
            XAxis::Latency(LatencyMode::FirstToken),
        )],
        PlotType::ThroughputVsInteractivity => {
            vec![panels::throughput_vs(
                experiments,
                settings,
                XAxis::Interactivity,
            )]
        }
        PlotType::TpotVsConcurrency => vec![panels::latency_vs_sweep(
            experiments,
            settings,
            LatencyMetric::Tpot,
        )],
        PlotType::TtftVsConcurrency => vec![panels::latency_vs_sweep(
            experiments,
            settings,
            LatencyMetric::Ttft,
        )],
        PlotType::Pareto => vec![panels::pareto(experiments, settings)],
    };
    let notes = if plot_type == PlotType::Pareto {
        panels::pareto_key(experiments, settings)
    } else {
        Vec::new()
    };
    finish(
        format!("{name}: {}", plot_type.as_str()),
        subtitle_parts(
            experiments,
            settings,
            workload,
            plot_type == PlotType::Pareto,
        ),
        panels,
        notes,
        settings,
    )
}

/// The server-metrics figures: one per experiment with `P.metrics.csv` files, and the
/// problems met reading them (for warnings).
pub fn server_metrics_figures(
    experiments: &[Experiment],
    settings: &Settings,
    name: &str,
) -> (Vec<Planned>, Vec<String>) {
    let mut problems = Vec::new();
    let mut per_exp: Vec<(
        &Experiment,
        Vec<(&crate::load::Point, server_metrics::Series)>,
    )> = Vec::new();
    for e in experiments {
        let mut pts = Vec::new();
        for p in &e.points {
            let Some(path) = &p.metrics_csv else { continue };
            match server_metrics::read(path) {
                Ok(f) => {
                    if f.bad_rows > 0 {
                        problems.push(format!(
                            "{}: {} row(s) without a numeric time or value skipped",
                            path.display(),
                            f.bad_rows
                        ));
                    }
                    let s = server_metrics::series(&f.samples);
                    if s.is_empty() {
                        problems.push(format!(
                            "{}: no KV-cache usage, running or waiting series",
                            path.display()
                        ));
                    } else {
                        pts.push((p, s));
                    }
                }
                Err(e) => problems.push(format!("cannot read server metrics: {e}")),
            }
        }
        if !pts.is_empty() {
            per_exp.push((e, pts));
        }
    }
    let several = per_exp.len() > 1;
    let planned = per_exp
        .into_iter()
        .map(|(e, pts)| {
            let word = if several {
                format!("server-metrics_{}", sanitize(&e.name))
            } else {
                "server-metrics".to_string()
            };
            let mut sub = vec![format!("{} sweep point(s) with server metrics", pts.len())];
            if e.name != name {
                sub.insert(0, e.name.clone());
            }
            sub.push("summed (running, waiting) or averaged (KV cache) over engines".into());
            let figure = finish(
                format!("{name}: server metrics"),
                sub,
                panels::server_metrics(&pts),
                vec!["t = 0: start of the point; before / after: scrapes around it.".into()],
                settings,
            );
            Planned {
                plot_type: PlotType::ServerMetrics,
                word,
                figure,
            }
        })
        .collect();
    (planned, problems)
}

/// The figures of `plot_type` (server-metrics: one per experiment with metrics files;
/// none when no experiment has any) and the problems met (for warnings).
pub fn plan(
    plot_type: PlotType,
    experiments: &[Experiment],
    settings: &Settings,
    name: &str,
    workload: Option<&str>,
) -> (Vec<Planned>, Vec<String>) {
    if plot_type == PlotType::ServerMetrics {
        return server_metrics_figures(experiments, settings, name);
    }
    (
        vec![Planned {
            plot_type,
            word: plot_type.file_word().to_string(),
            figure: figure(plot_type, experiments, settings, name, workload),
        }],
        Vec::new(),
    )
}
