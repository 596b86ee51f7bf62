//! "Best under SLA": for each experiment the highest throughput among the points that
//! meet the latency objectives, interpolating linearly between neighbouring measured
//! points (of the same sweep kind), and the winner across experiments.
//!
//! Between two measured points A and B every metric is taken as linear in the segment
//! parameter t ∈ [0, 1]. The set of t where TPOT(t) ≤ SLO and TTFT(t) ≤ SLO is an
//! interval (an intersection of half-lines); throughput is linear in t, so its maximum
//! there is at an end of that interval. The pick is the best such end over all
//! segments and measured points.

use std::fmt::Write as _;

use pd_common::SweepKind;

use crate::load::Experiment;
use crate::metrics;
use crate::settings::Settings;
use crate::table::format_sweep_value;

/// Latency objectives (ms); `None` = not constrained.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Slo {
    pub tpot_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
}

impl Slo {
    pub fn is_set(&self) -> bool {
        self.tpot_ms.is_some() || self.ttft_ms.is_some()
    }

    /// `TPOT ≤ 20 ms, TTFT ≤ 1000 ms`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = self.tpot_ms {
            parts.push(format!("TPOT <= {t} ms"));
        }
        if let Some(t) = self.ttft_ms {
            parts.push(format!("TTFT <= {t} ms"));
        }
        parts.join(", ")
    }
}

/// A measured point reduced to what the SLA pick needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Sweep value (concurrency or rate).
    pub x: f64,
    pub tpot: f64,
    pub ttft: f64,
    pub throughput: f64,
    pub request_throughput: f64,
}

/// The best operating point of one experiment under the SLA.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pick {
    pub kind: SweepKind,
    /// Sweep value (interpolated when between points).
    pub x: f64,
    pub throughput: f64,
    pub request_throughput: f64,
    pub tpot: f64,
    pub ttft: f64,
    /// True when the pick lies strictly between two measured points.
    pub interpolated: bool,
}

fn lerp(a: f64, b: f64, t: f64) -> f64 {
    a + (b - a) * t
}

fn at(a: &Sample, b: &Sample, t: f64) -> Sample {
    Sample {
        x: lerp(a.x, b.x, t),
        tpot: lerp(a.tpot, b.tpot, t),
        ttft: lerp(a.ttft, b.ttft, t),
        throughput: lerp(a.throughput, b.throughput, t),
        request_throughput: lerp(a.request_throughput, b.request_throughput, t),
    }
}

/// Interval of t ∈ [lo, hi] where `a + (b − a)·t ≤ limit`; `None` when empty.
fn constrain(lo: f64, hi: f64, a: f64, b: f64, limit: Option<f64>) -> Option<(f64, f64)> {
    let Some(limit) = limit else {
        return Some((lo, hi));
    };
    let slope = b - a;
    let (lo, hi) = if slope == 0.0 {
        if a <= limit {
            (lo, hi)
        } else {
            return None;
        }
    } else {
        let t = (limit - a) / slope;
        if slope > 0.0 {
            (lo, hi.min(t))
        } else {
            (lo.max(t), hi)
        }
    };
    (lo <= hi).then_some((lo, hi))
}

const EPS: f64 = 1e-9;

/// Best sample under the SLO among `samples` (sorted by x, one sweep kind), with
/// interpolation between neighbours. Returns the sample and whether it is interpolated.
pub fn best_under_slo(samples: &[Sample], slo: &Slo) -> Option<(Sample, bool)> {
    let meets = |s: &Sample| {
        slo.tpot_ms.is_none_or(|l| s.tpot <= l) && slo.ttft_ms.is_none_or(|l| s.ttft <= l)
    };
    let mut best: Option<(Sample, bool)> = None;
    let mut consider = |s: Sample, interpolated: bool| {
        if best.is_none_or(|(b, _)| s.throughput > b.throughput) {
            best = Some((s, interpolated));
        }
    };
    for s in samples.iter().filter(|s| meets(s)) {
        consider(*s, false);
    }
    for w in samples.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let Some((lo, hi)) = constrain(0.0, 1.0, a.tpot, b.tpot, slo.tpot_ms)
            .and_then(|(lo, hi)| constrain(lo, hi, a.ttft, b.ttft, slo.ttft_ms))
        else {
            continue;
        };
        for t in [lo, hi] {
            if t > EPS && t < 1.0 - EPS {
                consider(at(a, b, t), true);
            }
        }
    }
    best
}

/// The SLA pick of every experiment and the winner.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaSummary {
    pub slo: Slo,
    /// Name of the throughput compared (`Output Throughput Normalized (token/s/node)`).
    pub metric: String,
    /// (experiment name, GPUs, pick) per experiment, in input order.
    pub picks: Vec<(String, Option<u32>, Option<Pick>)>,
    /// Index into `picks` of the best one.
    pub winner: Option<usize>,
}

/// Samples of an experiment for one sweep kind (points missing a needed value are left out).
pub fn samples(e: &Experiment, kind: SweepKind, settings: &Settings) -> Vec<Sample> {
    e.points
        .iter()
        .filter(|p| p.kind == kind)
        .filter_map(|p| {
            Some(Sample {
                x: p.value,
                tpot: metrics::tpot(p)?,
                ttft: metrics::ttft(p)?,
                throughput: metrics::throughput(e, p, settings)?,
                request_throughput: metrics::request_throughput(e, p, settings)?,
            })
        })
        // The loader rejects such points; a negative latency must never win a pick.
        .filter(|s| {
            [s.tpot, s.ttft, s.throughput, s.request_throughput]
                .iter()
                .all(|v| v.is_finite() && *v >= 0.0)
        })
        .collect()
}

/// Pick the best point of every experiment under `slo`.
pub fn summarize(experiments: &[Experiment], settings: &Settings, slo: Slo) -> SlaSummary {
    let picks: Vec<(String, Option<u32>, Option<Pick>)> = experiments
        .iter()
        .map(|e| {
            let pick = e
                .kinds()
                .into_iter()
                .filter_map(|kind| {
                    best_under_slo(&samples(e, kind, settings), &slo).map(|(s, interpolated)| {
                        Pick {
                            kind,
                            x: s.x,
                            throughput: s.throughput,
                            request_throughput: s.request_throughput,
                            tpot: s.tpot,
                            ttft: s.ttft,
                            interpolated,
                        }
                    })
                })
                .max_by(|a, b| a.throughput.total_cmp(&b.throughput));
            (e.name.clone(), e.total_gpus, pick)
        })
        .collect();
    let mut winner: Option<usize> = None;
    for (i, (_, _, p)) in picks.iter().enumerate() {
        if let Some(p) = p {
            let better = match winner.and_then(|w| picks[w].2) {
                Some(w) => p.throughput > w.throughput,
                None => true,
            };
            if better {
                winner = Some(i);
            }
        }
    }
    let normalized = if settings.use_normalized {
        " Normalized"
    } else {
        ""
    };
    SlaSummary {
        slo,
        metric: format!(
            "{}{} ({})",
            settings.throughput_metric.title(),
            normalized,
            metrics::throughput_unit(settings)
        ),
        picks,
        winner,
    }
}

impl SlaSummary {
    fn rows(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let head = vec![
            "Experiment",
            "GPUs",
            "Best throughput",
            "At point",
            "TPOT (ms)",
            "TTFT (ms)",
            "Req/s",
            "How",
        ];
        let rows = self
            .picks
            .iter()
            .enumerate()
            .map(|(i, (name, gpus, pick))| {
                let mark = if Some(i) == self.winner {
                    " (winner)"
                } else {
                    ""
                };
                let gpus = gpus.map_or("?".to_string(), |g| g.to_string());
                match pick {
                    Some(p) => {
                        let point = match p.kind {
                            SweepKind::Concurrency => format!("conc {:.1}", p.x),
                            SweepKind::RequestRate => format!("rate {:.2}", p.x),
                        };
                        let point = if p.interpolated {
                            point
                        } else {
                            match p.kind {
                                SweepKind::Concurrency => {
                                    format!("conc {}", format_sweep_value(p.x))
                                }
                                SweepKind::RequestRate => {
                                    format!("rate {}", format_sweep_value(p.x))
                                }
                            }
                        };
                        vec![
                            format!("{name}{mark}"),
                            gpus,
                            format!("{:.1}", p.throughput),
                            point,
                            format!("{:.2}", p.tpot),
                            format!("{:.2}", p.ttft),
                            format!("{:.3}", p.request_throughput),
                            if p.interpolated {
                                "interpolated"
                            } else {
                                "measured"
                            }
                            .to_string(),
                        ]
                    }
                    None => vec![
                        name.clone(),
                        gpus,
                        "-".into(),
                        "no point meets the SLA".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                    ],
                }
            })
            .collect();
        (head, rows)
    }

    fn winner_line(&self) -> String {
        let Some(w) = self.winner else {
            return "Winner: none (no experiment meets the SLA)".to_string();
        };
        let (name, _, pick) = &self.picks[w];
        let best = pick.map_or(0.0, |p| p.throughput);
        let runner_up = self
            .picks
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != w)
            .filter_map(|(_, (n, _, p))| p.map(|p| (n, p.throughput)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match runner_up {
            Some((n, t)) if t > 0.0 => format!(
                "Winner: {name} ({best:.1}), {:+.1}% over {n} ({t:.1})",
                (best / t - 1.0) * 100.0
            ),
            _ => format!("Winner: {name} ({best:.1})"),
        }
    }

    /// Aligned text.
    pub fn render_text(&self) -> String {
        let (head, rows) = self.rows();
        let widths: Vec<usize> = (0..head.len())
            .map(|c| {
                rows.iter()
                    .map(|r| r[c].chars().count())
                    .chain([head[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Best under SLA ({}): {}",
            self.slo.describe(),
            self.metric
        );
        let _ = writeln!(out, "{}", "-".repeat(80));
        let line = |cells: Vec<String>| {
            let mut l = String::new();
            for (c, cell) in cells.iter().enumerate() {
                if c == 0 {
                    let _ = write!(l, "{cell:<w$}", w = widths[0]);
                } else {
                    let _ = write!(l, "  {cell:>w$}", w = widths[c]);
                }
            }
            l.trim_end().to_string()
        };
        let _ = writeln!(
            out,
            "{}",
            line(head.iter().map(|h| h.to_string()).collect())
        );
        for r in rows {
            let _ = writeln!(out, "{}", line(r));
        }
        let _ = writeln!(out, "{}", self.winner_line());
        out
    }

    /// Markdown.
    pub fn to_markdown(&self) -> String {
        let (head, rows) = self.rows();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "**Best under SLA ({})**: {}\n",
            self.slo.describe(),
            self.metric
        );
        let _ = writeln!(out, "| {} |", head.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(head.len()));
        for r in rows {
            let _ = writeln!(out, "| {} |", r.join(" | ").replace('\n', " "));
        }
        let _ = writeln!(out, "\n{}", self.winner_line());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64, tpot: f64, ttft: f64, thr: f64) -> Sample {
        Sample {
            x,
            tpot,
            ttft,
            throughput: thr,
            request_throughput: thr / 100.0,
        }
    }

    #[test]
    fn interpolates_on_the_binding_constraint() {
        let pts = [s(4.0, 10.0, 100.0, 400.0), s(8.0, 20.0, 200.0, 800.0)];
        let slo = Slo {
            tpot_ms: Some(15.0),
            ttft_ms: None,
        };
        let (best, interp) = best_under_slo(&pts, &slo).unwrap();
        assert!(interp);
        assert!((best.x - 6.0).abs() < 1e-12);
        assert!((best.throughput - 600.0).abs() < 1e-9);
        // TTFT binds first.
        let slo = Slo {
            tpot_ms: Some(15.0),
            ttft_ms: Some(125.0),
        };
        let (best, _) = best_under_slo(&pts, &slo).unwrap();
        assert!((best.x - 5.0).abs() < 1e-12);
        assert!((best.throughput - 500.0).abs() < 1e-9);
    }

    #[test]
    fn measured_points_and_none() {
        let pts = [s(4.0, 10.0, 100.0, 400.0), s(8.0, 20.0, 200.0, 800.0)];
        let all = Slo {
            tpot_ms: Some(50.0),
            ttft_ms: None,
        };
        assert_eq!(best_under_slo(&pts, &all), Some((pts[1], false)));
        let none = Slo {
            tpot_ms: Some(5.0),
            ttft_ms: None,
        };
        assert_eq!(best_under_slo(&pts, &none), None);
        assert_eq!(best_under_slo(&[], &all), None);
        // A non-monotone curve: the best point is the measured middle one.
        let pts = [
            s(4.0, 10.0, 100.0, 400.0),
            s(8.0, 12.0, 100.0, 900.0),
            s(16.0, 30.0, 100.0, 850.0),
        ];
        let slo = Slo {
            tpot_ms: Some(12.0),
            ttft_ms: None,
        };
        assert_eq!(best_under_slo(&pts, &slo), Some((pts[1], false)));
    }
}
