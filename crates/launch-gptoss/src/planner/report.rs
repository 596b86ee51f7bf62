//! What `plan` shows: the ranked table (with the simulator's known error and a flag where
//! two layouts are within it), the frontier, the commands that verify the top K, the
//! result directories viz can plot, and the same as JSON.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pd_common::naming::{point_file_name, result_dir_name};
use pd_common::workload::SweepKind;
use serde::Serialize;

use super::accuracy::{KnownError, KNOWN_ERROR};
use super::commands::{commands, exp_name, shell_line, Commands};
use super::evaluate::{evaluate, PlanPoint};
use super::run::Plan;
use crate::sim::plan::network_name;

fn coord(kind: SweepKind, x: f64) -> String {
    match kind {
        SweepKind::Concurrency => format!("C={x}"),
        SweepKind::RequestRate => format!("R={x}"),
    }
}

/// Simulate the top K again keeping their result files and write them under `out`, one
/// directory per layout, named as run-bm names its directories (`<model>_itl…_plan-…`).
/// Returns the directories in rank order.
pub fn write_dirs(p: &Plan, top: usize, out: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for r in p.ranked.iter().take(top) {
        let layout = &p.evals[r.eval].layout;
        let e = evaluate(layout, &p.setup, true);
        let dir = out.join(result_dir_name(
            &p.setup.model_id,
            &p.setup.workload,
            &exp_name(layout),
        ));
        for (c, file) in &e.files {
            let path = dir.join(point_file_name(c.kind, c.value));
            file.write(&path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let cmds = commands(
            layout,
            &p.setup.workload,
            &p.setup.sweep,
            p.setup.gpus_per_node,
            p.setup.network,
        );
        if let Some((name, text)) = &cmds.overrides {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        dirs.push(dir);
    }
    Ok(dirs)
}

fn num(v: f64, d: usize) -> String {
    if v.is_finite() {
        format!("{v:.d$}")
    } else {
        "–".into()
    }
}

/// The table and the rest, for the terminal.
pub fn text(p: &Plan, top: usize, dirs: &[PathBuf]) -> String {
    let mut s = String::new();
    let w = &p.setup.workload;
    let kind = p.setup.sweep.kind();
    let refused = p.evals.iter().filter(|e| e.refused.is_some()).count();
    let _ = writeln!(
        s,
        "{} layouts on {} × {} ({} per node, network {}), ITL {} / OTL {} {}, simulated in {:.1} s{}",
        p.evals.len(),
        p.gpus,
        p.evals
            .first()
            .map_or("?".into(), |e| e.layout.spec.gpu.as_str().to_uppercase()),
        p.setup.gpus_per_node,
        network_name(p.setup.network),
        w.itl,
        w.otl,
        w.mode,
        p.elapsed_s,
        if refused > 0 {
            format!("; {refused} refused as vLLM would (see --json)")
        } else {
            String::new()
        }
    );
    let _ = writeln!(s, "objectives: {}", p.slo.describe());
    let _ = writeln!(s, "{}\n", KNOWN_ERROR.describe());
    let _ = writeln!(
        s,
        "{:>4}  {:<30} {:>4}  {:>7}  {:>9}  {:>9}  {:>8}  {:>8}",
        "rank", "layout", "GPUs", "best at", "tok/s/GPU", "TTFT ms", "TPOT ms", "margin"
    );
    for (i, r) in p.ranked.iter().enumerate().take(top.max(1) * 4) {
        let e = &p.evals[r.eval];
        let pt: &PlanPoint = &e.points[r.point];
        let margin = match r.margin_pct {
            Some(m) if r.within_error => format!("+{m:.1}% ≈"),
            Some(m) => format!("+{m:.1}%"),
            None => "".into(),
        };
        let _ = writeln!(
            s,
            "{:>4}  {:<30} {:>4}  {:>7}  {:>9}  {:>9}  {:>8}  {:>8}",
            i + 1,
            e.layout.name(),
            e.layout.gpus(),
            coord(kind, pt.x),
            num(pt.throughput_per_gpu, 1),
            num(pt.ttft_ms, 0),
            num(pt.tpot_ms, 2),
            margin
        );
    }
    let shown = (top.max(1) * 4).min(p.ranked.len());
    if p.ranked.len() > shown {
        let _ = writeln!(s, "  … {} more (--json lists all)", p.ranked.len() - shown);
    }
    let unranked = p.evals.len() - refused - p.ranked.len();
    if unranked > 0 {
        let _ = writeln!(
            s,
            "  {unranked} layouts meet the objectives at no load of the sweep"
        );
    }
    let _ = writeln!(
        s,
        "≈ = within the simulator's known throughput error ({:.1} %) of the next layout: \
         verify both.",
        KNOWN_ERROR.throughput_pct
    );
    let _ = writeln!(
        s,
        "\nlatency/throughput frontier (no other layout and load has both a lower median \
         TPOT and more tok/s/GPU):"
    );
    for f in &p.frontier {
        let e = &p.evals[f.eval];
        let _ = writeln!(
            s,
            "  TPOT {:>7} ms  {:>8} tok/s/GPU  {} at {}",
            num(f.tpot_ms, 2),
            num(f.throughput_per_gpu, 1),
            e.layout.name(),
            coord(kind, e.points[f.point].x)
        );
    }
    if let Some(c) = &p.comparison {
        let _ = writeln!(
            s,
            "\nagainst the measured runs: Spearman {} over {} layouts",
            num(c.spearman, 2),
            c.matched.len()
        );
        for m in &c.matched {
            let _ = writeln!(
                s,
                "  {:<30} sim {:>7} real {:>7} tok/s/GPU  ({})",
                m.layout,
                num(m.sim, 1),
                num(m.real, 1),
                m.real_dir
            );
        }
        for (d, why) in &c.unmatched {
            let _ = writeln!(s, "  not compared: {d}: {why}");
        }
    }
    if !p.ranked.is_empty() {
        let _ = writeln!(
            s,
            "\nverify the top {} on a real cluster:",
            top.min(p.ranked.len())
        );
        for r in p.ranked.iter().take(top) {
            let l = &p.evals[r.eval].layout;
            let c = commands(
                l,
                &p.setup.workload,
                &p.setup.sweep,
                p.setup.gpus_per_node,
                p.setup.network,
            );
            let _ = writeln!(s, "  # {}", l.name());
            if let Some((name, _)) = &c.overrides {
                let _ = writeln!(s, "  #   ({name} is written next to the result directory)");
            }
            let _ = writeln!(s, "  {}", shell_line(&c.launch));
            let _ = writeln!(s, "  {}", shell_line(&c.run_bm));
            let _ = writeln!(s, "  {}", shell_line(&c.shutdown));
        }
    }
    if !dirs.is_empty() {
        let _ = writeln!(
            s,
            "\nsimulated result directories of the top {}:",
            dirs.len()
        );
        let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        let _ = writeln!(s, "  viz --compare-dirs {}", list.join(" "));
    }
    s
}

#[derive(Debug, Serialize)]
struct JsonLayout {
    rank: Option<usize>,
    layout: String,
    label: String,
    mode: String,
    gpus: u32,
    expert_parallel: (bool, bool),
    best: Option<PlanPoint>,
    margin_pct: Option<f64>,
    within_known_error: bool,
    points: Vec<PlanPoint>,
    refused: Option<String>,
    commands: Option<Commands>,
    result_dir: Option<PathBuf>,
}

/// The JSON form of a plan.
#[derive(Debug, Serialize)]
pub struct JsonPlan {
    gpus: u32,
    gpus_per_node: u32,
    network: String,
    workload: pd_common::workload::Workload,
    max_model_len: u32,
    sweep: super::evaluate::Sweep,
    objectives: super::rank::Slo,
    known_error: KnownError,
    elapsed_s: f64,
    layouts: Vec<JsonLayout>,
    frontier: Vec<super::rank::FrontierPoint>,
    comparison: Option<super::compare::Comparison>,
}

pub fn json(p: &Plan, top: usize, dirs: &[PathBuf]) -> JsonPlan {
    let mut layouts: Vec<JsonLayout> = Vec::new();
    let rank_of = |i: usize| p.ranked.iter().position(|r| r.eval == i);
    let mut order: Vec<usize> = p.ranked.iter().map(|r| r.eval).collect();
    order.extend((0..p.evals.len()).filter(|i| rank_of(*i).is_none()));
    for i in order {
        let e = &p.evals[i];
        let rk = rank_of(i);
        let r = rk.map(|k| &p.ranked[k]);
        layouts.push(JsonLayout {
            rank: rk.map(|k| k + 1),
            layout: e.layout.name(),
            label: e.layout.spec.label(),
            mode: e.layout.spec.mode().to_string(),
            gpus: e.layout.gpus(),
            expert_parallel: (e.layout.ep.first, e.layout.ep.decode),
            best: r.map(|r| e.points[r.point].clone()),
            margin_pct: r.and_then(|r| r.margin_pct),
            within_known_error: r.is_some_and(|r| r.within_error),
            points: e.points.clone(),
            refused: e.refused.clone(),
            commands: rk.filter(|k| *k < top).map(|_| {
                commands(
                    &e.layout,
                    &p.setup.workload,
                    &p.setup.sweep,
                    p.setup.gpus_per_node,
                    p.setup.network,
                )
            }),
            result_dir: rk.and_then(|k| dirs.get(k).cloned()),
        });
    }
    JsonPlan {
        gpus: p.gpus,
        gpus_per_node: p.setup.gpus_per_node,
        network: network_name(p.setup.network).to_string(),
        workload: p.setup.workload,
        max_model_len: p.setup.max_model_len,
        sweep: p.setup.sweep.clone(),
        objectives: p.slo,
        known_error: KNOWN_ERROR,
        elapsed_s: p.elapsed_s,
        layouts,
        frontier: p.frontier.clone(),
        comparison: p.comparison.clone(),
    }
}
