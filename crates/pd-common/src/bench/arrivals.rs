//! Open-loop arrival schedule, computed up front (as `vllm bench serve` does).
//!
//! Gaps are Gamma(shape = burstiness, scale = 1 / (rate × burstiness)): mean 1/rate,
//! coefficient of variation 1/√burstiness (burstiness 1 = Poisson arrivals). The first
//! request also waits its own gap. The cumulative offsets are then rescaled so the last
//! request is sent at exactly N / rate, as vLLM does. `rate = inf` sends everything at
//! t = 0; `burstiness = inf` gives a constant spacing of 1/rate.

use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Gamma};

/// Offsets (seconds from the start of the dispatch loop) at which each of `n` requests
/// is to be sent.
pub fn arrival_offsets(n: usize, rate: f64, burstiness: f64, seed: u64) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    if !rate.is_finite() || rate <= 0.0 {
        return vec![0.0; n];
    }
    let mut offsets = Vec::with_capacity(n);
    let mut t = 0.0;
    if burstiness.is_infinite() {
        for _ in 0..n {
            t += 1.0 / rate;
            offsets.push(t);
        }
    } else {
        let shape = if burstiness > 0.0 { burstiness } else { 1.0 };
        let gamma = match Gamma::new(shape, 1.0 / (rate * shape)) {
            Ok(g) => g,
            Err(_) => return vec![0.0; n],
        };
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_a11c_e5ca_1e00);
        for _ in 0..n {
            t += gamma.sample(&mut rng);
            offsets.push(t);
        }
    }
    let last = offsets[n - 1];
    if last > 0.0 {
        let k = (n as f64 / rate) / last;
        for d in &mut offsets {
            *d *= k;
        }
    }
    offsets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inf_rate_is_all_at_once() {
        assert_eq!(arrival_offsets(3, f64::INFINITY, 1.0, 0), vec![0.0; 3]);
    }

    #[test]
    fn constant_spacing_with_infinite_burstiness() {
        let d = arrival_offsets(4, 2.0, f64::INFINITY, 0);
        assert_eq!(d, vec![0.5, 1.0, 1.5, 2.0]);
    }

    #[test]
    fn normalised_last_offset_and_seeded() {
        let d = arrival_offsets(500, 4.0, 1.0, 7);
        assert!((d[499] - 125.0).abs() < 1e-9);
        assert!(d.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(d, arrival_offsets(500, 4.0, 1.0, 7));
        assert_ne!(d, arrival_offsets(500, 4.0, 1.0, 8));
    }
}
