//! Exact numpy statistics of a large multiset of samples that is never stored.
//!
//! The pooled ITL of a point has one sample per chunk of every request (10 million for
//! 10,000 streams × 1,000 tokens): collecting them into a `Vec<f64>` and sorting a copy
//! would cost 16 bytes per token on top of the timelines. Instead the samples are
//! regenerated from the timelines for each pass ([`Samples`]) and the order statistics
//! are found by an exact radix selection on the `f64` bit patterns: 16 bits per pass,
//! four passes, one 65,536-bucket histogram per distinct prefix being narrowed. Memory is
//! O(number of percentiles), time O(samples).
//!
//! The results are **bit-identical** to sorting the samples and applying numpy's
//! definitions as [`crate::result::summarize`] / [`crate::result::percentile_sorted`]
//! do: the mean and the variance are summed in the same order with the same operations,
//! and the order statistics are the same values.

use std::collections::BTreeMap;

use super::metrics::MetricStats;

/// A multiset of samples, produced again on every call: `emit(value, multiplicity)`
/// (seconds; values may repeat, a multiplicity of n is n equal samples).
pub trait Samples {
    fn for_each(&self, emit: &mut dyn FnMut(f64, u32));
}

impl<F: Fn(&mut dyn FnMut(f64, u32))> Samples for F {
    fn for_each(&self, emit: &mut dyn FnMut(f64, u32)) {
        self(emit)
    }
}

/// Order-preserving key of an `f64` (total order, as `f64::total_cmp`).
fn key(v: f64) -> u64 {
    let b = v.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

fn value(k: u64) -> f64 {
    if k >> 63 == 1 {
        f64::from_bits(k & !(1 << 63))
    } else {
        f64::from_bits(!k)
    }
}

const DIGIT_BITS: u32 = 16;
const BUCKETS: usize = 1 << DIGIT_BITS;
const PASSES: u32 = 64 / DIGIT_BITS;

/// The sample of rank `ranks[i]` (0-based, in sorted order) for each i; all ranks < n.
fn select(samples: &dyn Samples, ranks: &[u64]) -> Vec<f64> {
    // Per rank: the key prefix found so far and the rank left inside that prefix.
    let mut prefix: Vec<u64> = vec![0; ranks.len()];
    let mut left: Vec<u64> = ranks.to_vec();
    for pass in 0..PASSES {
        // Bits above this pass's digit are fixed per rank.
        let shift = 64 - DIGIT_BITS * (pass + 1);
        let mut hists: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for &p in &prefix {
            hists.entry(p).or_insert_with(|| vec![0; BUCKETS]);
        }
        let high_shift = shift + DIGIT_BITS;
        if hists.len() == 1 {
            // The common case (one prefix, e.g. the first pass): no lookup per sample.
            let (&p, h) = hists.iter_mut().next().expect("one prefix");
            samples.for_each(&mut |v, m| {
                let k = key(v);
                if pass == 0 || k >> high_shift == p {
                    h[((k >> shift) as usize) & (BUCKETS - 1)] += u64::from(m);
                }
            });
        } else {
            let mut list: Vec<(u64, Vec<u64>)> = std::mem::take(&mut hists).into_iter().collect();
            samples.for_each(&mut |v, m| {
                let k = key(v);
                let high = k >> high_shift;
                if let Some((_, h)) = list.iter_mut().find(|(p, _)| *p == high) {
                    h[((k >> shift) as usize) & (BUCKETS - 1)] += u64::from(m);
                }
            });
            hists = list.into_iter().collect();
        }
        for (p, r) in prefix.iter_mut().zip(left.iter_mut()) {
            let h = &hists[p];
            let mut seen = 0u64;
            let mut digit = BUCKETS - 1;
            for (d, &c) in h.iter().enumerate() {
                if seen + c > *r {
                    digit = d;
                    break;
                }
                seen += c;
            }
            *r -= seen;
            *p = (*p << DIGIT_BITS) | digit as u64;
        }
    }
    prefix.into_iter().map(value).collect()
}

/// numpy's mean, median, population std and linear percentiles of `samples`, in ms (the
/// samples are seconds); all 0.0 when there are none.
pub fn stats_of(samples: &dyn Samples, percentiles: &[f64]) -> MetricStats {
    let mut n = 0u64;
    let mut sum = 0.0f64;
    samples.for_each(&mut |v, m| {
        n += u64::from(m);
        for _ in 0..m {
            sum += v;
        }
    });
    if n == 0 {
        return MetricStats {
            percentiles: percentiles.iter().map(|&p| (p, 0.0)).collect(),
            ..Default::default()
        };
    }
    let mean = sum / n as f64;
    let mut sq = 0.0f64;
    samples.for_each(&mut |v, m| {
        let d = (v - mean) * (v - mean);
        for _ in 0..m {
            sq += d;
        }
    });
    let std = (sq / n as f64).sqrt();
    // Ranks (lo, hi) of each percentile, median first (as percentile_sorted does).
    let bounds = |p: f64| -> (u64, u64, f64) {
        if n == 1 {
            return (0, 0, 0.0);
        }
        let h = (n - 1) as f64 * (p / 100.0).clamp(0.0, 1.0);
        let lo = h.floor() as u64;
        (lo, (lo + 1).min(n - 1), h - lo as f64)
    };
    let all: Vec<f64> = std::iter::once(50.0)
        .chain(percentiles.iter().copied())
        .collect();
    let spans: Vec<(u64, u64, f64)> = all.iter().map(|&p| bounds(p)).collect();
    let mut ranks: Vec<u64> = spans.iter().flat_map(|&(lo, hi, _)| [lo, hi]).collect();
    ranks.sort_unstable();
    ranks.dedup();
    let values = select(samples, &ranks);
    let at = |r: u64| values[ranks.binary_search(&r).unwrap_or(0)];
    let pct: Vec<f64> = spans
        .iter()
        .map(|&(lo, hi, frac)| {
            let (a, b) = (at(lo), at(hi));
            if n == 1 {
                a
            } else {
                a + frac * (b - a)
            }
        })
        .collect();
    MetricStats {
        mean: mean * 1000.0,
        median: pct[0] * 1000.0,
        std: std * 1000.0,
        percentiles: percentiles
            .iter()
            .zip(&pct[1..])
            .map(|(&p, &v)| (p, v * 1000.0))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn reference(values: &[f64], pcts: &[f64]) -> MetricStats {
        MetricStats::of_seconds(values, pcts)
    }

    fn streamed(values: &[f64], pcts: &[f64]) -> MetricStats {
        let f = |emit: &mut dyn FnMut(f64, u32)| {
            for &v in values {
                emit(v, 1)
            }
        };
        stats_of(&f, pcts)
    }

    #[test]
    fn keys_order_like_total_cmp() {
        let vals = [
            -1.5,
            -0.0,
            0.0,
            1e-300,
            0.01,
            0.010000000000000002,
            3.0,
            f64::MAX,
        ];
        for w in vals.windows(2) {
            assert!(key(w[0]) < key(w[1]), "{w:?}");
            assert_eq!(value(key(w[0])).to_bits(), w[0].to_bits());
        }
    }

    #[test]
    fn bit_identical_to_sorting_on_many_shapes() {
        let pcts = [0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 100.0];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut cases: Vec<Vec<f64>> = vec![
            vec![],
            vec![0.01],
            vec![0.02, 0.01],
            vec![0.0; 17],
            vec![0.01; 1000],
        ];
        for n in [2usize, 3, 10, 101, 1000, 20_000] {
            // ITL-like: tight around 10 ms with ns jitter, some zeros and a few stalls.
            cases.push(
                (0..n)
                    .map(|i| match i % 97 {
                        0 => 0.0,
                        1 => 5.0 + rng.gen::<f64>(),
                        _ => (10_000_000 + rng.gen_range(0..20_000)) as f64 / 1e9,
                    })
                    .collect(),
            );
            cases.push((0..n).map(|_| rng.gen::<f64>() * 1e3).collect());
        }
        for values in &cases {
            let (a, b) = (reference(values, &pcts), streamed(values, &pcts));
            assert_eq!(
                a.mean.to_bits(),
                b.mean.to_bits(),
                "mean of {}",
                values.len()
            );
            assert_eq!(a.std.to_bits(), b.std.to_bits(), "std of {}", values.len());
            assert_eq!(
                a.median.to_bits(),
                b.median.to_bits(),
                "median of {}",
                values.len()
            );
            assert_eq!(a.percentiles, b.percentiles, "{} values", values.len());
        }
    }

    #[test]
    fn multiplicities_count_as_repeated_samples() {
        let expanded = [0.5, 0.5, 0.5, 0.2, 0.9, 0.9];
        let f = |emit: &mut dyn FnMut(f64, u32)| {
            emit(0.5, 3);
            emit(0.2, 1);
            emit(0.9, 2);
        };
        let pcts = [10.0, 50.0, 99.0];
        assert_eq!(stats_of(&f, &pcts), reference(&expanded, &pcts));
    }
}
