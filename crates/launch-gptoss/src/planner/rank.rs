//! Ranking: the best point of each layout under the latency objectives (goodput per GPU),
//! the order of the layouts, the margin to the next one and whether that margin is within
//! the simulator's known error, and the latency/throughput frontier.

use serde::Serialize;

use super::evaluate::{Evaluation, PlanPoint};

/// Latency objectives on the median TTFT and median TPOT (ms); `None` = free.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Slo {
    pub ttft_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
}

impl Slo {
    pub fn meets(&self, p: &PlanPoint) -> bool {
        let ok = |v: f64, limit: Option<f64>| limit.is_none_or(|l| v.is_finite() && v <= l);
        p.completed > 0 && ok(p.ttft_ms, self.ttft_ms) && ok(p.tpot_ms, self.tpot_ms)
    }
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = self.ttft_ms {
            parts.push(format!("median TTFT ≤ {t} ms"));
        }
        if let Some(t) = self.tpot_ms {
            parts.push(format!("median TPOT ≤ {t} ms"));
        }
        if parts.is_empty() {
            "none (best throughput per GPU over the sweep)".into()
        } else {
            parts.join(", ")
        }
    }
}

/// The best point of a sweep under the objectives: the highest output throughput per GPU
/// among the points that meet them (measured or simulated points, no interpolation).
pub fn best_point(points: &[PlanPoint], slo: &Slo) -> Option<usize> {
    points
        .iter()
        .enumerate()
        .filter(|(_, p)| slo.meets(p))
        .max_by(|a, b| a.1.throughput_per_gpu.total_cmp(&b.1.throughput_per_gpu))
        .map(|(i, _)| i)
}

/// One ranked layout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    /// Index into the evaluations.
    pub eval: usize,
    /// Index of its best point.
    pub point: usize,
    pub throughput_per_gpu: f64,
    /// (this − next) / next, % (None for the last).
    pub margin_pct: Option<f64>,
    /// The margin to the next layout is within the simulator's known throughput error:
    /// the simulator cannot tell the two apart.
    pub within_error: bool,
}

/// Rank the layouts that have a point meeting the objectives, best first.
pub fn rank(evals: &[Evaluation], slo: &Slo, known_error_pct: f64) -> Vec<Ranked> {
    let mut out: Vec<Ranked> = evals
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            best_point(&e.points, slo).map(|p| Ranked {
                eval: i,
                point: p,
                throughput_per_gpu: e.points[p].throughput_per_gpu,
                margin_pct: None,
                within_error: false,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.throughput_per_gpu
            .total_cmp(&a.throughput_per_gpu)
            .then(a.eval.cmp(&b.eval))
    });
    for i in 0..out.len().saturating_sub(1) {
        let next = out[i + 1].throughput_per_gpu;
        if next > 0.0 {
            let m = (out[i].throughput_per_gpu - next) / next * 100.0;
            out[i].margin_pct = Some(m);
            out[i].within_error = m <= known_error_pct;
        }
    }
    out
}

/// A point of the latency/throughput frontier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrontierPoint {
    pub eval: usize,
    pub point: usize,
    pub tpot_ms: f64,
    pub throughput_per_gpu: f64,
}

/// The points no other point beats on both median TPOT (lower) and throughput per GPU
/// (higher), over every layout and load, ordered by TPOT.
pub fn frontier(evals: &[Evaluation]) -> Vec<FrontierPoint> {
    let mut all: Vec<FrontierPoint> = evals
        .iter()
        .enumerate()
        .flat_map(|(i, e)| {
            e.points.iter().enumerate().filter_map(move |(j, p)| {
                (p.completed > 0 && p.tpot_ms.is_finite()).then_some(FrontierPoint {
                    eval: i,
                    point: j,
                    tpot_ms: p.tpot_ms,
                    throughput_per_gpu: p.throughput_per_gpu,
                })
            })
        })
        .collect();
    all.sort_by(|a, b| {
        a.tpot_ms
            .total_cmp(&b.tpot_ms)
            .then(b.throughput_per_gpu.total_cmp(&a.throughput_per_gpu))
    });
    let mut out: Vec<FrontierPoint> = Vec::new();
    let mut best = f64::NEG_INFINITY;
    for p in all {
        if p.throughput_per_gpu > best {
            best = p.throughput_per_gpu;
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::enumerate::Layout;
    use crate::sim::engine::ExpertParallel;
    use pd_common::deployment::DeploymentSpec;

    fn pt(x: f64, ttft: f64, tpot: f64, thr: f64) -> PlanPoint {
        PlanPoint {
            x,
            ttft_ms: ttft,
            tpot_ms: tpot,
            output_throughput: thr,
            throughput_per_gpu: thr,
            completed: 1,
            failed: 0,
        }
    }

    fn ev(points: Vec<PlanPoint>) -> Evaluation {
        Evaluation {
            layout: Layout {
                spec: DeploymentSpec::collocated(1, 1),
                ep: ExpertParallel::default(),
            },
            points,
            files: Vec::new(),
            refused: None,
        }
    }

    #[test]
    fn best_point_respects_the_objectives() {
        let pts = vec![
            pt(4.0, 100.0, 5.0, 10.0),
            pt(8.0, 200.0, 8.0, 20.0),
            pt(16.0, 900.0, 15.0, 30.0),
        ];
        assert_eq!(best_point(&pts, &Slo::default()), Some(2));
        let slo = Slo {
            ttft_ms: Some(500.0),
            tpot_ms: None,
        };
        assert_eq!(best_point(&pts, &slo), Some(1));
        let slo = Slo {
            ttft_ms: None,
            tpot_ms: Some(6.0),
        };
        assert_eq!(best_point(&pts, &slo), Some(0));
        let slo = Slo {
            ttft_ms: Some(50.0),
            tpot_ms: None,
        };
        assert_eq!(best_point(&pts, &slo), None);
        // a failed point never counts
        let mut bad = pt(32.0, 10.0, 1.0, 99.0);
        bad.completed = 0;
        assert_eq!(best_point(&[bad], &Slo::default()), None);
    }

    #[test]
    fn ranking_margins_and_ties() {
        let evals = vec![
            ev(vec![pt(4.0, 1.0, 1.0, 100.0)]),
            ev(vec![pt(4.0, 1.0, 1.0, 104.0)]),
            ev(vec![pt(4.0, 1.0, 1.0, 150.0)]),
            ev(vec![pt(4.0, 1e9, 1.0, 999.0)]),
        ];
        let slo = Slo {
            ttft_ms: Some(10.0),
            tpot_ms: None,
        };
        let r = rank(&evals, &slo, 5.0);
        assert_eq!(r.iter().map(|x| x.eval).collect::<Vec<_>>(), vec![2, 1, 0]);
        assert!(!r[0].within_error, "150 vs 104 is a clear win");
        assert!(r[1].within_error, "104 vs 100 is within ±5 %");
        assert!((r[1].margin_pct.unwrap() - 4.0).abs() < 1e-9);
        assert_eq!(r[2].margin_pct, None);
    }

    #[test]
    fn frontier_keeps_only_undominated_points() {
        let evals = vec![
            ev(vec![pt(4.0, 1.0, 5.0, 10.0), pt(8.0, 1.0, 9.0, 30.0)]),
            ev(vec![pt(4.0, 1.0, 6.0, 8.0), pt(8.0, 1.0, 7.0, 20.0)]),
        ];
        let f = frontier(&evals);
        let got: Vec<(usize, usize)> = f.iter().map(|p| (p.eval, p.point)).collect();
        assert_eq!(got, vec![(0, 0), (1, 1), (0, 1)]);
    }
}
