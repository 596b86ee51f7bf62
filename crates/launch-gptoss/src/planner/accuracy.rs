//! The simulator's known error, stated next to every ranking. The numbers are the
//! out-of-sample errors of `launch-gptoss sim-calibrate --loco --folds 3` on
//! `bm_results/reference` (3-fold cross-validation by configuration; docs/SIMULATOR.md,
//! "Results", and docs/sim-calibration.md): what to expect on a configuration the
//! simulator was not fitted on.

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

/// Measured by `launch-gptoss sim-calibrate --loco --folds 3` (see the module
/// documentation).
pub const KNOWN_ERROR: KnownError = KnownError {
    ttft_pct: 14.4,
    tpot_pct: 8.3,
    throughput_pct: 6.6,
    spearman: 0.74,
};

impl KnownError {
    pub fn describe(&self) -> String {
        format!(
            "simulator error out of sample (3-fold cross-validation by configuration on the \
             reference runs): median |error| TTFT {:.1} %, TPOT {:.1} %, throughput {:.1} %; rank agreement \
             (Spearman) {:.2}",
            self.ttft_pct, self.tpot_pct, self.throughput_pct, self.spearman
        )
    }
}
