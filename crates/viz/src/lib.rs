//! `viz`: comparison plots, tables and SLA picks from result directories.
//!
//! A result directory holds one JSON file per sweep point (`conc<N>.json`, `rr<R>.json`),
//! written by `run-bm` or by `vllm bench serve --save-result`. `viz` reads one or several
//! directories ([`load`]), derives the metrics of the original `viz.py` ([`metrics`]),
//! prints comparison tables ([`table`]), picks the best configuration under a latency SLA
//! ([`sla`]), draws plots with plotters ([`plot`]) and writes a findings report
//! ([`report`]). [`app::run`] ties them together for the binary.

pub mod app;
pub mod cli;
pub mod error;
pub mod load;
pub mod metrics;
pub mod names;
pub mod plot;
pub mod report;
pub mod settings;
pub mod sla;
pub mod style;
pub mod table;

pub use error::{Result, VizError};
pub use load::{load_experiments, Experiment, Loaded, Point};
pub use settings::{LatencyMode, Settings, ThroughputMetric};
