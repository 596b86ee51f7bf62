//! How well the dispatcher kept to the arrival schedule (the schedule itself is
//! [`pd_common::bench::arrival_offsets`]).

/// How well the dispatcher kept to the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ScheduleReport {
    /// Requests actually sent per second over the dispatch span.
    pub achieved_rate: f64,
    /// Mean / p99 / max of (sent − scheduled), seconds.
    pub mean_delay: f64,
    pub p99_delay: f64,
    pub max_delay: f64,
}

impl ScheduleReport {
    /// `sent` and `scheduled` are matching per-request offsets (seconds).
    pub fn from_times(scheduled: &[f64], sent: &[f64]) -> Self {
        if sent.is_empty() {
            return ScheduleReport::default();
        }
        let mut delays: Vec<f64> = scheduled
            .iter()
            .zip(sent)
            .map(|(s, t)| (t - s).max(0.0))
            .collect();
        delays.sort_by(f64::total_cmp);
        let last_sent = sent.iter().copied().fold(0.0, f64::max);
        ScheduleReport {
            achieved_rate: if last_sent > 0.0 {
                sent.len() as f64 / last_sent
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
        let slow = self.achieved_rate < 0.95 * asked_rate;
        let late = self.p99_delay > (0.1f64).max(1.0 / asked_rate);
        (slow || late).then(|| {
            format!(
                "the client fell behind the schedule: asked {asked_rate:.3} req/s, achieved \
                 {:.3} req/s; send delay mean {:.1} ms, p99 {:.1} ms, max {:.1} ms \
                 (a concurrency cap or an overloaded client machine queues requests)",
                self.achieved_rate,
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
