//! The planner's ranking against measured runs (`--compare-with DIR`): every real result
//! directory of the same workload, GPU kind and network whose layout the planner
//! enumerated gets the same score as the planner gives its simulation (best throughput
//! per GPU under the objectives, over the loads both have), and the two orders are
//! compared with Spearman's rank correlation.

use std::path::PathBuf;

use anyhow::Result;
use pd_common::deployment::DeployMode;
use pd_common::workload::{SweepKind, Workload};
use serde::Serialize;

use super::evaluate::{Evaluation, PlanPoint, Sweep};
use super::rank::{best_point, Slo};
use crate::sim::calibrate::data::{self, RealConfig};
use crate::sim::calibrate::report::spearman;
use crate::sim::engine::NetworkKind;

/// One real configuration matched to a planned layout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    pub layout: String,
    pub real_dir: String,
    /// Best throughput per GPU under the objectives: simulated, measured.
    pub sim: f64,
    pub real: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Comparison {
    pub matched: Vec<Match>,
    /// Spearman rank correlation of `sim` and `real` over the matches (NaN below 3).
    pub spearman: f64,
    /// Real directories not compared, with the reason.
    pub unmatched: Vec<(String, String)>,
}

fn real_points(cfg: &RealConfig, xs: &[f64]) -> Vec<PlanPoint> {
    let gpus = f64::from(cfg.label.total_gpus.max(1));
    cfg.points
        .iter()
        .filter(|p| p.kind == SweepKind::Concurrency && xs.contains(&p.value))
        .map(|p| {
            let r = &p.result;
            PlanPoint {
                x: p.value,
                ttft_ms: r.median_ttft_ms().unwrap_or(f64::NAN),
                tpot_ms: r.median_tpot_ms().unwrap_or(f64::NAN),
                output_throughput: r.output_throughput,
                throughput_per_gpu: r.output_throughput / gpus,
                completed: r.completed,
                failed: r.failed.unwrap_or(0),
            }
        })
        .collect()
}

/// Compare the evaluations with the real runs under `roots`.
pub fn compare(
    evals: &[Evaluation],
    roots: &[PathBuf],
    sweep: &Sweep,
    network: NetworkKind,
    slo: &Slo,
    workload: &Workload,
) -> Result<Comparison> {
    let set = crate::sim::calibrate::load_real(roots)?;
    let Sweep::Concurrency(cs) = sweep else {
        anyhow::bail!(
            "--compare-with needs a concurrency sweep (the reference runs are closed-loop)"
        );
    };
    let Some(first) = evals.first() else {
        return Ok(Comparison::default());
    };
    let gpu = first.layout.spec.gpu;
    let mut out = Comparison::default();
    for cfg in set.configs.iter().filter(|c| c.counted()) {
        let skip = |why: &str| (cfg.name.clone(), why.to_string());
        if cfg.gpu != gpu {
            out.unmatched.push(skip("another GPU kind"));
            continue;
        }
        let Some(eval) = evals.iter().find(|e| {
            e.layout.groups() == cfg.label.groups && e.layout.spec.mode() == cfg.spec.mode()
        }) else {
            out.unmatched
                .push(skip("a layout the planner does not enumerate"));
            continue;
        };
        if cfg.spec.mode() == DeployMode::PdSpread
            && data::network_from_label(&cfg.label, gpu) != network
            || data::network_from_label(&cfg.label, gpu) == NetworkKind::Tcp
                && network != NetworkKind::Tcp
        {
            out.unmatched.push(skip("another network"));
            continue;
        }
        let same_workload = cfg.workload.mode == workload.mode
            && cfg.points.iter().all(|p| {
                (p.input_len, p.output_len) == (workload.input_len(), workload.output_len())
            });
        if !same_workload {
            out.unmatched.push(skip("another workload"));
            continue;
        }
        let xs: Vec<f64> = cs.iter().map(|&c| f64::from(c)).collect();
        let real = real_points(cfg, &xs);
        let common: Vec<f64> = real.iter().map(|p| p.x).collect();
        let sim: Vec<PlanPoint> = eval
            .points
            .iter()
            .filter(|p| common.contains(&p.x))
            .cloned()
            .collect();
        match (best_point(&sim, slo), best_point(&real, slo)) {
            (Some(s), Some(r)) => out.matched.push(Match {
                layout: eval.layout.name(),
                real_dir: cfg.name.clone(),
                sim: sim[s].throughput_per_gpu,
                real: real[r].throughput_per_gpu,
            }),
            _ => out
                .unmatched
                .push(skip("no load meets the objectives (measured or simulated)")),
        }
    }
    let s: Vec<f64> = out.matched.iter().map(|m| m.sim).collect();
    let r: Vec<f64> = out.matched.iter().map(|m| m.real).collect();
    out.spearman = spearman(&s, &r);
    Ok(out)
}
