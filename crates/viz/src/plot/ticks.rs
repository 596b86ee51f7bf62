//! Axis ranges and tick values that cover the data: the lowest labelled tick is at or
//! below the smallest value and the highest at or above the largest, on linear and on
//! log axes, so a reader never has to guess what lies beyond the last label.
//!
//! * Linear axes: a "nice" step (1, 2, 2.5 or 5 × 10^k, about six intervals); the axis
//!   runs from the tick below the data to the tick above it.
//! * Log axes spanning at least a factor 3: the axis ends on values of the 1…9 × 10^k
//!   grid just outside the data (or on a rounder value of the labelled family when one
//!   lies between), labelled together with the sparsest family of round values
//!   (decades; 1-2-5; 1-2-3-5-7; 1…9) that gives at least four labels, dropping labels
//!   that would crowd an end.
//! * Narrow log axes (less than a factor 3): linear nice ticks, which read better than
//!   a log family there.

/// An axis: its range, labelled (bold) ticks and grid-only (light) ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    pub bold: Vec<f64>,
    pub light: Vec<f64>,
}

/// Round to 12 significant digits (removes float noise such as 0.30000000000000004).
fn tidy(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let mag = 10f64.powi(11 - v.abs().log10().floor() as i32);
    (v * mag).round() / mag
}

/// The nice step (1, 2, 2.5, 5 × 10^k) nearest to `raw` (in ratio), and its light
/// subdivision.
fn nice_step(raw: f64) -> (f64, f64) {
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let (m, sub) = if norm < 1.41 {
        (1.0, 5.0)
    } else if norm < 2.24 {
        (2.0, 4.0)
    } else if norm < 3.54 {
        (2.5, 5.0)
    } else if norm < 7.07 {
        (5.0, 5.0)
    } else {
        (10.0, 5.0)
    };
    (m * mag, m * mag / sub)
}

/// Multiples of `step` from `lo` to `hi` (both multiples of `step`).
fn multiples(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let k0 = (lo / step).round() as i64;
    let k1 = (hi / step).round() as i64;
    (k0..=k1).map(|k| tidy(k as f64 * step)).collect()
}

/// Linear ticks over [lo, hi] (lo < hi): axis from the tick at or below `lo` to the tick
/// at or above `hi`. `positive`: the axis must stay above zero (a narrow log axis).
fn linear(lo: f64, hi: f64, positive: bool) -> Axis {
    let (step, light_step) = nice_step((hi - lo) / 6.0);
    let mut a = (lo / step).floor() * step;
    let b = (hi / step).ceil() * step;
    if positive && a <= 0.0 {
        a = (lo / light_step).floor() * light_step;
        if a <= 0.0 {
            a = lo;
        }
    }
    let bold: Vec<f64> = multiples((a / step).ceil() * step, b, step)
        .into_iter()
        .filter(|v| *v >= a - step * 1e-9)
        .collect();
    let light = multiples((a / light_step).ceil() * light_step, b, light_step);
    Axis {
        lo: tidy(a),
        hi: tidy(b),
        log: positive,
        bold,
        light,
    }
}

/// Values `m × 10^k` (m in `mults`) within [lo, hi].
fn family(mults: &[f64], lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let (k0, k1) = (lo.log10().floor() as i32 - 1, hi.log10().ceil() as i32 + 1);
    for k in k0..=k1 {
        for m in mults {
            let v = tidy(m * 10f64.powi(k));
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
    }
    out.sort_by(f64::total_cmp);
    out.dedup();
    out
}

const NINE: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
const FAMILIES: [&[f64]; 4] = [&[1.0], &[1.0, 2.0, 5.0], &[1.0, 2.0, 3.0, 5.0, 7.0], &NINE];

/// Log ticks for data in [lo, hi] (0 < lo < hi), with `margin` the range with margins.
fn logarithmic(lo: f64, hi: f64, m_lo: f64, m_hi: f64) -> Axis {
    // Ends on the fine grid just outside the margins.
    let fine = family(&NINE, m_lo / 10.0, m_hi * 10.0);
    let grid_lo = fine
        .iter()
        .copied()
        .filter(|v| *v <= m_lo)
        .fold(f64::NAN, f64::max);
    let grid_hi = fine
        .iter()
        .copied()
        .filter(|v| *v >= m_hi)
        .fold(f64::NAN, f64::min);
    let (grid_lo, grid_hi) = (
        if grid_lo.is_nan() { m_lo } else { grid_lo },
        if grid_hi.is_nan() { m_hi } else { grid_hi },
    );
    for mults in FAMILIES {
        let fam = family(mults, grid_lo / 10.0, grid_hi * 10.0);
        // A rounder end when the family has one between the grid end and the data.
        let t_lo = fam
            .iter()
            .copied()
            .filter(|v| *v > grid_lo && *v <= lo)
            .fold(grid_lo, f64::max);
        let t_hi = fam
            .iter()
            .copied()
            .filter(|v| *v < grid_hi && *v >= hi)
            .fold(grid_hi, f64::min);
        let span = (t_hi / t_lo).log10();
        let min_gap = 0.05 * span;
        let interior: Vec<f64> = fam
            .iter()
            .copied()
            .filter(|v| {
                *v > t_lo
                    && *v < t_hi
                    && (v / t_lo).log10() >= min_gap
                    && (t_hi / v).log10() >= min_gap
            })
            .collect();
        let crowded = interior.windows(2).any(|w| (w[1] / w[0]).log10() < min_gap);
        let mut bold = vec![t_lo];
        bold.extend(interior);
        bold.push(t_hi);
        if bold.len() >= 4 && !crowded {
            return Axis {
                lo: t_lo,
                hi: t_hi,
                log: true,
                light: family(&NINE, t_lo, t_hi),
                bold,
            };
        }
    }
    linear(m_lo, m_hi, true)
}

/// The axis for `values` (non-finite values, and non-positive ones on a log axis, are
/// ignored); `None` when nothing is left.
pub fn axis(values: impl Iterator<Item = f64>, log: bool) -> Option<Axis> {
    let vals: Vec<f64> = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .collect();
    if vals.is_empty() {
        return None;
    }
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if log {
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            (lo / 1.25, hi * 1.25)
        };
        let r = (hi / lo).powf(0.04);
        let (m_lo, m_hi) = (lo / r, hi * r);
        if m_hi / m_lo < 3.0 {
            return Some(linear(m_lo, m_hi, true));
        }
        Some(logarithmic(lo, hi, m_lo, m_hi))
    } else {
        let span = if hi > lo {
            hi - lo
        } else {
            hi.abs().max(1.0) * 0.2
        };
        let (mut a, b) = (lo - span * 0.04, hi + span * 0.04);
        if lo >= 0.0 && a < 0.0 {
            a = 0.0;
        }
        Some(linear(a, b, false))
    }
}

/// Tick label: few digits, no exponent.
pub fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if a == 0.0 {
        "0".to_string()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        trim(format!("{v:.1}"))
    } else if a >= 1.0 {
        trim(format!("{v:.2}"))
    } else {
        trim(format!("{v:.3}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(ax: &Axis, lo: f64, hi: f64) {
        let first = ax.bold.first().copied().unwrap();
        let last = ax.bold.last().copied().unwrap();
        assert!(
            first <= lo && last >= hi,
            "{ax:?} does not cover {lo}..{hi}"
        );
        assert!(ax.lo <= lo && ax.hi >= hi);
        assert!(ax.bold.windows(2).all(|w| w[0] < w[1]), "{ax:?}");
        assert!((3..=10).contains(&ax.bold.len()), "{ax:?}");
    }

    #[test]
    fn log_ticks_cover_the_data_in_every_category() {
        // The case: TPOT 6 … 16.5 ms was labelled 6–10.
        for (lo, hi) in [
            (6.0, 16.5),
            (6.1, 10.6),
            (5.3, 31.0),
            (120.0, 68000.0),
            (0.02, 0.9),
            (1.0, 1.0),
            (3.0, 9.1),
            (99.0, 101.0),
            (1e-3, 1e6),
            (250.0, 260.0),
        ] {
            let (lo, hi): (f64, f64) = (lo, hi);
            let ax = axis([lo, (lo * hi).sqrt(), hi].into_iter(), true).unwrap();
            covers(&ax, lo, hi);
            assert!(ax.lo > 0.0, "{ax:?}");
            // Not wasteful: the data fill most of the axis.
            if hi > lo {
                let used = (hi / lo).ln() / (ax.hi / ax.lo).ln();
                assert!(used > 0.55, "{lo}..{hi}: {ax:?} uses {used}");
            }
        }
        let ax = axis([6.0, 16.5].into_iter(), true).unwrap();
        assert!(ax.bold.iter().any(|v| *v >= 16.5));
        let ax = axis([5.3, 31.0].into_iter(), true).unwrap();
        assert_eq!(ax.bold, vec![5.0, 10.0, 20.0, 40.0]);
        let ax = axis([120.0, 68000.0].into_iter(), true).unwrap();
        assert_eq!(ax.bold.first(), Some(&100.0));
        assert!(ax.bold.contains(&1000.0) && ax.bold.contains(&10000.0));
    }

    #[test]
    fn linear_ticks_cover_the_data() {
        for (lo, hi) in [
            (4.0, 64.0),
            (0.0, 5230.0),
            (4.0, 128.0),
            (-3.0, 7.0),
            (0.31, 0.33),
            (5.0, 5.0),
        ] {
            let ax = axis([lo, hi].into_iter(), false).unwrap();
            covers(&ax, lo, hi);
            if lo >= 0.0 {
                assert!(ax.lo >= 0.0, "{ax:?}");
            }
        }
        let ax = axis([4.0, 64.0].into_iter(), false).unwrap();
        assert_eq!(ax.bold, vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]);
        assert!(axis(std::iter::empty(), false).is_none());
        assert!(axis([-1.0, 0.0, f64::NAN].into_iter(), true).is_none());
    }

    #[test]
    fn labels() {
        assert_eq!(fmt_tick(1234.4), "1234");
        assert_eq!(fmt_tick(12.0), "12");
        assert_eq!(fmt_tick(12.5), "12.5");
        assert_eq!(fmt_tick(5.0), "5");
        assert_eq!(fmt_tick(0.25), "0.25");
        assert_eq!(fmt_tick(0.0), "0");
        assert_eq!(fmt_tick(2.5), "2.5");
    }
}
