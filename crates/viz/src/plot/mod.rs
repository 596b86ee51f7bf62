//! Plots: figure model ([`figure`]), panels from experiments ([`panels`]), Pareto
//! frontier ([`pareto`]) and PNG/SVG output ([`output`]).

pub mod figure;
pub mod output;
pub mod panels;
pub mod pareto;

use std::path::{Path, PathBuf};

pub use figure::{Figure, LegendEntry, Panel, Series};
pub use output::Format;

use crate::error::Result;
use crate::load::Experiment;
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
    /// Per-GPU throughput vs tokens/s/user with the Pareto frontier.
    Pareto,
    /// Every type above.
    All,
}

impl PlotType {
    /// Every concrete type.
    pub const CONCRETE: [PlotType; 7] = [
        PlotType::Comprehensive,
        PlotType::ThroughputVsTpot,
        PlotType::ThroughputVsTtft,
        PlotType::ThroughputVsInteractivity,
        PlotType::TpotVsConcurrency,
        PlotType::TtftVsConcurrency,
        PlotType::Pareto,
    ];

    /// The name used on the command line and in file names.
    pub fn as_str(self) -> &'static str {
        match self {
            PlotType::Comprehensive => "comprehensive",
            PlotType::ThroughputVsTpot => "throughput-vs-tpot",
            PlotType::ThroughputVsTtft => "throughput-vs-ttft",
            PlotType::ThroughputVsInteractivity => "throughput-vs-interactivity",
            PlotType::TpotVsConcurrency => "tpot-vs-concurrency",
            PlotType::TtftVsConcurrency => "ttft-vs-concurrency",
            PlotType::Pareto => "pareto",
            PlotType::All => "all",
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

/// `<dir>/<name>_<plot-type>.<ext>`.
pub fn output_path(dir: &Path, name: &str, plot_type: PlotType, format: Format) -> PathBuf {
    dir.join(format!(
        "{name}_{}.{}",
        plot_type.as_str(),
        format.extension()
    ))
}

/// Panel sizes: the 3-panel figure is 3 × 1200 px wide, single panels 2100 px.
const PANEL_3: (u32, u32) = (1200, 1050);
const PANEL_1: (u32, u32) = (2100, 1400);

/// Build the figure of `plot_type`. `name` and `workload` go into the title.
pub fn figure(
    plot_type: PlotType,
    experiments: &[Experiment],
    settings: &Settings,
    name: &str,
    workload: Option<&str>,
) -> Figure {
    let panels = match plot_type {
        PlotType::Comprehensive | PlotType::All => vec![
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
    let mut sub = Vec::new();
    if let Some(w) = workload {
        sub.push(w.to_string());
    }
    sub.push(if plot_type == PlotType::Pareto {
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
    let notes = if plot_type == PlotType::Pareto {
        panels::pareto_key(experiments, settings)
    } else {
        Vec::new()
    };
    Figure {
        title: format!("{name}: {}", plot_type.as_str()),
        subtitle: Some(sub.join("  ·  ")),
        panels,
        legend,
        notes,
        panel_size,
    }
}

/// Render `plot_type` in every format into `dir`; returns the written paths.
pub fn write_plot(
    plot_type: PlotType,
    experiments: &[Experiment],
    settings: &Settings,
    name: &str,
    workload: Option<&str>,
    dir: &Path,
    formats: &[Format],
) -> Result<Vec<PathBuf>> {
    let fig = figure(plot_type, experiments, settings, name, workload);
    formats
        .iter()
        .map(|f| {
            let path = output_path(dir, name, plot_type, *f);
            output::write(&fig, *f, &path).map(|()| path)
        })
        .collect()
}
