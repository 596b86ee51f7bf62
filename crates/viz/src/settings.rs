//! How metrics are derived and plotted (the original viz.py's options).

use std::fmt;

/// What the throughput panel puts on its x axis when not in interactivity mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LatencyMode {
    /// `(chunk_size - 1) × TPOT + TTFT`.
    Chunk,
    /// TTFT.
    #[value(name = "first_token", alias = "first-token")]
    FirstToken,
    /// TPOT.
    #[default]
    Token,
}

/// Which throughput the throughput plots and SLA picks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ThroughputMetric {
    /// Input (prefill) token/s = total_input_tokens / duration.
    Input,
    /// Output (decode) token/s.
    #[default]
    Output,
    /// Input + output token/s.
    Total,
}

impl ThroughputMetric {
    /// `Output Throughput` etc. (as in the original's labels).
    pub fn title(self) -> &'static str {
        match self {
            ThroughputMetric::Input => "Input Throughput",
            ThroughputMetric::Output => "Output Throughput",
            ThroughputMetric::Total => "Total Throughput",
        }
    }
}

impl fmt::Display for ThroughputMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ThroughputMetric::Input => "input",
            ThroughputMetric::Output => "output",
            ThroughputMetric::Total => "total",
        })
    }
}

/// Options shared by tables, plots and SLA picks.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Normalise throughput to one node: value × gpus_per_node / total GPUs.
    pub use_normalized: bool,
    pub latency_mode: LatencyMode,
    /// Chunk size of the chunk latency mode.
    pub chunk_size: u32,
    /// Log scale on the latency / interactivity axis of throughput plots.
    pub log_latency: bool,
    /// Log scale on the latency axis of latency-vs-concurrency plots.
    pub log_concurrency: bool,
    /// Interactivity (1000 / TPOT) instead of latency on the comprehensive throughput panel.
    pub use_interactivity: bool,
    pub throughput_metric: ThroughputMetric,
    /// GPUs of one node (normalisation baseline).
    pub gpus_per_node: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            use_normalized: true,
            latency_mode: LatencyMode::Token,
            chunk_size: 16,
            log_latency: true,
            log_concurrency: true,
            use_interactivity: false,
            throughput_metric: ThroughputMetric::Output,
            gpus_per_node: 8,
        }
    }
}
