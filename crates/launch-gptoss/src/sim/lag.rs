//! A lock-free latency histogram for emission lag (how late an emission reaches the
//! client compared with the engine's model time).
//!
//! Buckets: 1 µs wide up to 1 ms, 100 µs wide up to 100 ms, 10 ms wide up to 10 s, one
//! overflow bucket; the maximum is tracked exactly. Quantiles report the upper edge of their bucket.

use std::sync::atomic::{AtomicU64, Ordering};

const FINE: usize = 1000; // 0..1000 µs, 1 µs wide
const COARSE: usize = 990; // 1..100 ms, 100 µs wide
const WIDE: usize = 990; // 100 ms..10 s, 10 ms wide
const BUCKETS: usize = FINE + COARSE + WIDE + 1;

/// Concurrent histogram of durations (recorded in seconds, stored in µs buckets).
#[derive(Debug)]
pub struct LagHistogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

/// A summary of a [`LagHistogram`], in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LagSummary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Default for LagHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LagHistogram {
    pub fn new() -> Self {
        LagHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }

    fn bucket_of(us: u64) -> usize {
        if us < 1_000 {
            us as usize
        } else if us < 100_000 {
            FINE + ((us - 1_000) / 100) as usize
        } else {
            let i = FINE + COARSE + ((us - 100_000) / 10_000) as usize;
            i.min(BUCKETS - 1)
        }
    }

    /// Upper edge of a bucket in µs.
    fn upper_us(i: usize) -> u64 {
        if i < FINE {
            i as u64 + 1
        } else if i < FINE + COARSE {
            1_000 + (i - FINE + 1) as u64 * 100
        } else {
            100_000 + (i - FINE - COARSE + 1) as u64 * 10_000
        }
    }

    /// Record one lag in seconds (negative values count as 0).
    pub fn record(&self, seconds: f64) {
        let ns = if seconds > 0.0 {
            (seconds * 1e9) as u64
        } else {
            0
        };
        self.buckets[Self::bucket_of(ns / 1000)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// Forget everything recorded so far.
    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
        self.count.store(0, Ordering::Relaxed);
        self.sum_ns.store(0, Ordering::Relaxed);
        self.max_ns.store(0, Ordering::Relaxed);
    }

    pub fn summary(&self) -> LagSummary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return LagSummary::default();
        }
        let max = self.max_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let quantile = |q: f64| -> f64 {
            let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    if i == BUCKETS - 1 {
                        return max;
                    }
                    return (Self::upper_us(i) as f64 / 1e6).min(max);
                }
            }
            max
        };
        LagSummary {
            count: total,
            mean: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9 / total as f64,
            p50: quantile(0.5),
            p90: quantile(0.9),
            p99: quantile(0.99),
            p999: quantile(0.999),
            max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_from_buckets() {
        let h = LagHistogram::new();
        assert_eq!(h.summary().count, 0);
        for i in 0..100 {
            h.record(i as f64 * 1e-6 + 0.5e-6); // 0.5 µs .. 99.5 µs
        }
        h.record(0.0505); // 50.5 ms outlier
        h.record(-1.0);
        let s = h.summary();
        assert_eq!(s.count, 102);
        assert!((s.p50 - 50e-6).abs() < 2e-6, "{s:?}");
        assert!((s.p99 - 100e-6).abs() < 2e-6, "{s:?}");
        assert!((s.max - 0.0505).abs() < 1e-9);
        assert!(s.p999 <= s.max && s.p999 > 0.05, "{s:?}");
        h.reset();
        assert_eq!(h.summary(), LagSummary::default());
        h.record(0.0123);
        h.record(0.0121);
        assert!((h.summary().p50 - 0.0122).abs() < 1e-9, "{:?}", h.summary());
        h.reset();
        h.record(0.305);
        h.record(0.351);
        assert!((h.summary().p50 - 0.31).abs() < 1e-9, "{:?}", h.summary());
        h.reset();
        h.record(50.0);
        assert_eq!(h.summary().p50, 50.0, "overflow reports the exact max");
    }
}
