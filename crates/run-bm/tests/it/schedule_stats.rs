//! The open-loop arrival schedule has the right mean and shape (fixed seeds, so the
//! test is deterministic; the bounds are several standard errors wide).

use pd_common::bench::arrival_offsets;

fn gaps(d: &[f64]) -> Vec<f64> {
    let mut g = vec![d[0]];
    g.extend(d.windows(2).map(|w| w[1] - w[0]));
    g
}

fn mean_cv(g: &[f64]) -> (f64, f64) {
    let n = g.len() as f64;
    let mean = g.iter().sum::<f64>() / n;
    let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt() / mean)
}

#[test]
fn poisson_arrivals_have_exponential_gaps() {
    let n = 20_000;
    let rate = 5.0;
    let d = arrival_offsets(n, rate, 1.0, 42);
    assert!(
        (d[n - 1] - n as f64 / rate).abs() < 1e-6,
        "last send at N / rate"
    );
    let g = gaps(&d);
    let (mean, cv) = mean_cv(&g);
    assert!((mean - 0.2).abs() < 1e-9, "normalised mean gap {mean}");
    assert!(
        (cv - 1.0).abs() < 0.04,
        "exponential gaps have CV 1, got {cv}"
    );
    // Shape: P(gap ≤ t) = 1 − exp(−t/mean) at a few quantiles.
    for q in [0.1f64, 0.25, 0.5, 0.75, 0.9, 0.99] {
        let t = -mean * (1.0 - q).ln();
        let frac = g.iter().filter(|&&x| x <= t).count() as f64 / n as f64;
        assert!((frac - q).abs() < 0.015, "quantile {q}: empirical {frac}");
    }
}

#[test]
fn burstiness_sets_the_coefficient_of_variation() {
    for (b, expected_cv) in [(0.25, 2.0), (4.0, 0.5), (16.0, 0.25)] {
        let d = arrival_offsets(20_000, 2.0, b, 7);
        let (mean, cv) = mean_cv(&gaps(&d));
        assert!((mean - 0.5).abs() < 1e-9);
        assert!(
            (cv - expected_cv).abs() / expected_cv < 0.06,
            "burstiness {b}: cv {cv}"
        );
    }
    let d = arrival_offsets(100, 2.0, f64::INFINITY, 7);
    let (_, cv) = mean_cv(&gaps(&d));
    assert!(cv < 1e-9, "constant spacing");
}

#[test]
fn seeds_reproduce() {
    assert_eq!(
        arrival_offsets(50, 3.0, 1.0, 1),
        arrival_offsets(50, 3.0, 1.0, 1)
    );
    assert_ne!(
        arrival_offsets(50, 3.0, 1.0, 1),
        arrival_offsets(50, 3.0, 1.0, 2)
    );
    assert_eq!(arrival_offsets(5, f64::INFINITY, 1.0, 1), vec![0.0; 5]);
}
