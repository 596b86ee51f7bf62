//! Statistics of repeated runs: mean, sample standard deviation, the 95 % confidence
//! interval of the mean (Student t, n − 1 degrees of freedom) and Welch's two-sample
//! t-test. The t distribution is evaluated through the regularized incomplete beta
//! function (continued fraction, Lentz's method) and the log-gamma function (Lanczos).

/// Summary of one metric over repeated runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator).
    pub sd: f64,
}

impl Stats {
    /// Mean and sample sd of `values`; `None` for fewer than two finite values.
    pub fn of(values: &[f64]) -> Option<Stats> {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.len() < 2 || v.len() != values.len() {
            return None;
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
        Some(Stats {
            n: v.len(),
            mean,
            sd: var.sqrt(),
        })
    }

    /// 95 % confidence interval of the mean: mean ± t(0.975, n − 1) · sd / √n.
    pub fn ci95(&self) -> (f64, f64) {
        let half = t_quantile(0.975, (self.n - 1) as f64) * self.sd / (self.n as f64).sqrt();
        (self.mean - half, self.mean + half)
    }

    /// The same runs with every value multiplied by `k` (normalisation).
    pub fn scaled(&self, k: f64) -> Stats {
        Stats {
            n: self.n,
            mean: self.mean * k,
            sd: self.sd * k.abs(),
        }
    }
}

/// ln Γ(x) for x > 0 (Lanczos approximation, g = 7, nine coefficients).
pub fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1 − x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).abs().ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let nonzero = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / nonzero(1.0 - qab * x / qap);
    let mut h = d;
    // One Lentz step with coefficient `aa`: returns the factor it multiplies `h` by.
    let step = |aa: f64, c: &mut f64, d: &mut f64| {
        *d = 1.0 / nonzero(1.0 + aa * *d);
        *c = nonzero(1.0 + aa / *c);
        *d * *c
    };
    for m in 1..=500 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        h *= step(m * (b - m) * x / ((qam + m2) * (a + m2)), &mut c, &mut d);
        let last = step(
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
            &mut c,
            &mut d,
        );
        h *= last;
        if (last - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// The regularized incomplete beta function I_x(a, b).
pub fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// P(|T| ≥ |t|) for Student's t with `df` degrees of freedom (two-sided p-value).
pub fn t_two_sided_p(t: f64, df: f64) -> f64 {
    if !t.is_finite() {
        return 0.0;
    }
    inc_beta(df / 2.0, 0.5, df / (df + t * t))
}

/// The `q` quantile (0.5 < q < 1) of Student's t with `df` degrees of freedom.
pub fn t_quantile(q: f64, df: f64) -> f64 {
    let target = 2.0 * (1.0 - q);
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while t_two_sided_p(hi, df) > target && hi < 1e12 {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_two_sided_p(mid, df) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Welch's two-sample t-test (unequal variances): the two-sided p-value of "the means
/// are equal".
pub fn welch_p(a: &Stats, b: &Stats) -> f64 {
    let (va, vb) = (a.sd * a.sd / a.n as f64, b.sd * b.sd / b.n as f64);
    let se2 = va + vb;
    if se2 <= 0.0 {
        return if a.mean == b.mean { 1.0 } else { 0.0 };
    }
    let t = (a.mean - b.mean) / se2.sqrt();
    let df = se2 * se2 / (va * va / (a.n as f64 - 1.0) + vb * vb / (b.n as f64 - 1.0));
    t_two_sided_p(t, df)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_tables() {
        // Student t, 0.975 quantile (two-sided 95 %), from standard tables.
        for (df, want) in [
            (1.0, 12.706),
            (2.0, 4.303),
            (3.0, 3.182),
            (4.0, 2.776),
            (9.0, 2.262),
            (29.0, 2.045),
            (1000.0, 1.962),
        ] {
            let got = t_quantile(0.975, df);
            assert!((got - want).abs() < 1e-3, "df {df}: {got} vs {want}");
        }
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        assert!((inc_beta(2.0, 3.0, 0.4) - 0.5248).abs() < 1e-4);
        assert!((t_two_sided_p(2.0, 10.0) - 0.07339).abs() < 1e-4);
    }

    #[test]
    fn ci_of_three_runs_by_hand() {
        // 10, 12, 14: mean 12, sd 2, half-width 4.303 · 2 / √3 = 4.9687.
        let s = Stats::of(&[10.0, 12.0, 14.0]).unwrap();
        assert_eq!((s.n, s.mean, s.sd), (3, 12.0, 2.0));
        let (lo, hi) = s.ci95();
        assert!((hi - 12.0 - 4.968_7).abs() < 1e-3, "{lo} {hi}");
        assert!((12.0 - lo - 4.968_7).abs() < 1e-3);
        assert_eq!(Stats::of(&[1.0]), None);
        assert_eq!(Stats::of(&[1.0, f64::NAN]), None);
        let k = s.scaled(2.0);
        assert_eq!((k.mean, k.sd), (24.0, 4.0));
    }

    #[test]
    fn welch_test() {
        // Well separated: significant; overlapping: not.
        let a = Stats::of(&[100.0, 101.0, 99.0, 100.5]).unwrap();
        let b = Stats::of(&[90.0, 91.0, 89.5, 90.5]).unwrap();
        assert!(welch_p(&a, &b) < 1e-4);
        let c = Stats::of(&[99.0, 102.0, 98.0, 101.5]).unwrap();
        assert!(welch_p(&a, &c) > 0.5);
        // A worked example: means 20 and 22, sd 2 and 3, n 10 and 12 → t = -1.86,
        // df ≈ 19.3, p ≈ 0.078.
        let x = Stats {
            n: 10,
            mean: 20.0,
            sd: 2.0,
        };
        let y = Stats {
            n: 12,
            mean: 22.0,
            sd: 3.0,
        };
        let p = welch_p(&x, &y);
        assert!((p - 0.078).abs() < 0.003, "{p}");
        let same = Stats {
            n: 3,
            mean: 5.0,
            sd: 0.0,
        };
        assert_eq!(welch_p(&same, &same), 1.0);
    }
}
