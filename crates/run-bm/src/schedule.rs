//! How well the dispatcher kept to the arrival schedule of an open-loop (finite-rate)
//! point (the schedule itself is [`pd_common::bench::arrival_offsets`]).
//!
//! Measured on *dispatch* (the moment a request arrives in the client, vLLM's
//! `request_arrival_time`), never on send: a request that waits for a `--max-concurrency`
//! slot is dispatched on time and its wait is client queue time, a separate metric.
//! A closed-loop (concurrency) point has no schedule and no such report.

/// How well the dispatcher kept to the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ScheduleReport {
    /// Requests dispatched per second: count / time of the last dispatch.
    pub dispatch_rate: f64,
    /// Mean / p99 / max of (dispatched − scheduled), seconds.
    pub mean_delay: f64,
    pub p99_delay: f64,
    pub max_delay: f64,
}

impl ScheduleReport {
    /// `dispatched` and `scheduled` are matching per-request offsets (seconds).
    pub fn from_times(scheduled: &[f64], dispatched: &[f64]) -> Self {
        if dispatched.is_empty() {
            return ScheduleReport::default();
        }
        let mut delays: Vec<f64> = scheduled
            .iter()
            .zip(dispatched)
            .map(|(s, t)| (t - s).max(0.0))
            .collect();
        delays.sort_by(f64::total_cmp);
        let last = dispatched.iter().copied().fold(0.0, f64::max);
        ScheduleReport {
            dispatch_rate: if last > 0.0 {
                dispatched.len() as f64 / last
            } else {
                f64::INFINITY
            },
            mean_delay: delays.iter().sum::<f64>() / delays.len() as f64,
            p99_delay: pd_common::result::percentile_sorted(&delays, 99.0),
            max_delay: delays.last().copied().unwrap_or(0.0),
        }
    }

    /// A warning when the client could not keep up with the asked rate.
    pub fn behind_warning(&self, asked_rate: f64) -> Option<String> {
        if !asked_rate.is_finite() {
            return None;
        }
        let slow = self.dispatch_rate < 0.95 * asked_rate;
        let late = self.p99_delay > (0.1f64).max(1.0 / asked_rate);
        (slow || late).then(|| {
            format!(
                "the client fell behind the schedule: asked {asked_rate:.3} req/s, dispatched \
                 {:.3} req/s; dispatch delay mean {:.1} ms, p99 {:.1} ms, max {:.1} ms \
                 (an overloaded client machine)",
                self.dispatch_rate,
                self.mean_delay * 1e3,
                self.p99_delay * 1e3,
                self.max_delay * 1e3
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behind_warning() {
        let r = ScheduleReport::from_times(&[1.0, 2.0], &[1.0, 2.0]);
        assert!(r.behind_warning(1.0).is_none());
        let r = ScheduleReport::from_times(&[1.0, 2.0], &[1.5, 4.0]);
        assert!(r.behind_warning(1.0).unwrap().contains("fell behind"));
    }
}
