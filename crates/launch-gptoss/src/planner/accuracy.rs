//! The simulator's known error, stated next to every ranking. The numbers are the
//! leave-one-configuration-out errors of `launch-gptoss sim-calibrate --loco` on
//! `bm_results/reference` (docs/SIMULATOR.md, "Out of sample"): what to expect on a
//! configuration the simulator was not fitted on.

use serde::Serialize;

/// Median absolute errors (%) and rank agreement of the simulator out of sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KnownError {
    pub ttft_pct: f64,
    pub tpot_pct: f64,
    pub throughput_pct: f64,
    /// Median Spearman, configurations ranked by throughput per GPU at equal load.
    pub spearman: f64,
}

/// Measured by `launch-gptoss sim-calibrate --loco` (see the module documentation).
pub const KNOWN_ERROR: KnownError = KnownError {
    ttft_pct: 15.0,
    tpot_pct: 10.0,
    throughput_pct: 8.0,
    spearman: 0.8,
};

impl KnownError {
    pub fn describe(&self) -> String {
        format!(
            "simulator error out of sample (leave-one-configuration-out on the reference runs): \
             median |error| TTFT {:.0} %, TPOT {:.0} %, throughput {:.0} %; rank agreement \
             (Spearman) {:.2}",
            self.ttft_pct, self.tpot_pct, self.throughput_pct, self.spearman
        )
    }
}
