//! `viz`: comparison plots, tables and SLA picks from result directories.
//!
//! A result directory holds one JSON file per sweep point (`conc<N>.json`, `rr<R>.json`),
//! written by `run-bm` or by `vllm bench serve --save-result`. `viz` reads one or several
//! directories ([`load`], checking every number first: [`validate`]; repeated runs:
//! [`repeats`]), derives the metrics of the original `viz.py` ([`metrics`]) and their
//! confidence intervals ([`stats`]), prints comparison tables ([`table`]), picks the best
//! configuration under a latency SLA ([`sla`]), says which differences are significant
//! ([`significance`]), draws plots with plotters ([`plot`], server metrics from
//! [`server_metrics`]) under names that never replace another comparison's ([`outputs`]),
//! and writes a findings report in Markdown ([`report`]) and self-contained HTML
//! ([`html`]); `--probe` shows NIXL transfer probe files of `launch-gptoss probe` ([`probe`]).
//! [`app::run`] ties them together for the binary.

pub mod app;
pub mod cli;
pub mod error;
pub mod html;
pub mod load;
pub mod metrics;
pub mod names;
pub mod outputs;
pub mod plot;
pub mod probe;
pub mod report;
pub mod server_metrics;
pub mod settings;
pub mod significance;
pub mod sla;
pub mod style;
pub mod table;
pub mod validate;

pub use error::{Result, VizError};
pub use load::{load_experiments, Experiment, Loaded, Point};
/// Repeated runs and their statistics: one implementation, shared with run-bm.
pub use pd_common::{repeats, stats};
pub use settings::{LatencyMode, Settings, ThroughputMetric};
