//! Fitting the simulator's free constants, and the leave-one-configuration-out (LOCO)
//! protocol that measures how well the fitted simulator predicts a configuration it has
//! never seen.
//!
//! Free constants ([`PARAMS`]): the per-step overhead c0 and c_seq, the effective shares of
//! HBM bandwidth (H100, H200) and of bf16 peak, the frontend latency t_fe, the PD proxy hop
//! t_pd, the cold NIXL handshake t_hs and the heterogeneous-TP transfer penalty. Everything
//! else (hardware, model, memory, scheduler limits, links) comes from data sheets, the model
//! card and vLLM's defaults.
//!
//! Loss: for every counted, simulated point, the Huber loss (δ = 0.1) of the log ratio
//! sim/real of median TTFT, median TPOT (when defined) and output throughput, averaged
//! over all of them (every point weighs the same, like the median errors of the targets). Optimiser: Nelder–Mead on the logarithms of the constants, bounded,
//! started from the documented starting values [`Param::start`] (not from a previous fit),
//! a fixed budget of evaluations.
//!
//! LOCO: for every counted configuration, fit on all the others from the same starting
//! values with the same budget, then simulate the held-out configuration with those
//! constants. The errors of the held-out predictions are the out-of-sample errors.

use std::fmt::Write as _;

use super::data::RealSet;
use super::report::{self, Row, Summary};
use super::run::{self, ConfigRun, ConstSet, SimPoint};
use crate::sim::parallel;

/// One free constant.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    /// `[section]` and key in the constants file.
    pub section: &'static str,
    pub key: &'static str,
    /// The GPU kind's file it lives in; `None` = both files.
    pub gpu: Option<&'static str>,
    /// Starting value of every fit (a physical guess, see the docs).
    pub start: f64,
    pub lo: f64,
    pub hi: f64,
    get: fn(&ConstSet) -> f64,
    set: fn(&mut ConstSet, f64),
}

impl Param {
    pub fn get(&self, c: &ConstSet) -> f64 {
        (self.get)(c)
    }
    pub fn set(&self, c: &mut ConstSet, v: f64) {
        (self.set)(c, v.clamp(self.lo, self.hi))
    }
}

/// A constant shared by both GPU kinds.
macro_rules! both {
    ($name:expr, $section:expr, $key:expr, $start:expr, $lo:expr, $hi:expr, $($field:ident).+) => {
        Param {
            name: $name,
            section: $section,
            key: $key,
            gpu: None,
            start: $start,
            lo: $lo,
            hi: $hi,
            get: |c| c.h100.$($field).+,
            set: |c, v| {
                c.h100.$($field).+ = v;
                c.h200.$($field).+ = v;
            },
        }
    };
}

/// A constant of one GPU kind's file (`$gpu` is the `ConstSet` field and the file's name).
macro_rules! per_gpu {
    ($name:expr, $gpu:ident, $section:expr, $key:expr, $start:expr, $lo:expr, $hi:expr, $($field:ident).+) => {
        Param {
            name: $name,
            section: $section,
            key: $key,
            gpu: Some(stringify!($gpu)),
            start: $start,
            lo: $lo,
            hi: $hi,
            get: |c| c.$gpu.$($field).+,
            set: |c, v| c.$gpu.$($field).+ = v,
        }
    };
}

/// The free constants, in fit order, with their starting values: typical figures for
/// vLLM on Hopper and for the Ray Serve request path, not fitted to anything.
#[rustfmt::skip] // one row per constant: a table reads best on one line a row
pub const PARAMS: [Param; 11] = [
    both!("step.c0", "step", "c0", 4e-3, 1e-3, 12e-3, step.c0),
    both!("step.c_seq", "step", "c_seq", 20e-6, 1e-6, 200e-6, step.c_seq),
    per_gpu!("step.eta_bw (h100)", h100, "step", "eta_bw", 0.7, 0.2, 1.0, step.eta_bw),
    per_gpu!("step.eta_bw (h200)", h200, "step", "eta_bw", 0.7, 0.2, 1.0, step.eta_bw),
    Param {
        name: "step.eta_lin = eta_att",
        section: "step",
        key: "eta_lin",
        gpu: None,
        start: 0.4,
        lo: 0.1,
        hi: 0.9,
        get: |c| c.h100.step.eta_lin,
        set: |c, v| {
            for k in [&mut c.h100, &mut c.h200] {
                k.step.eta_lin = v;
                k.step.eta_att = v;
            }
        },
    },
    both!("frontend.t_fe", "frontend", "t_fe", 0.05, 0.005, 0.4, frontend.t_fe),
    both!("frontend.t_fe_per_token", "frontend", "t_fe_per_token", 10e-6, 0.1e-6, 100e-6, frontend.t_fe_per_token),
    both!("frontend.t_pd", "frontend", "t_pd", 0.02, 0.001, 0.4, frontend.t_pd),
    both!("pd.t_hs", "pd", "t_hs", 1.0, 0.01, 10.0, pd.t_hs),
    both!("pd.hetero_per_block", "pd", "hetero_per_block", 0.1e-3, 1e-6, 5e-3, pd.hetero_per_block),
    both!("frontend.t_chunk", "frontend", "t_chunk", 50e-6, 1e-6, 1e-3, frontend.t_chunk),
];

/// Evaluations per fit (Nelder–Mead steps are 1–2 evaluations each).
pub const FIT_BUDGET: usize = 200;

/// Errors beyond ±10 % count linearly (the targets are median errors: robust to outliers).
pub const HUBER_DELTA: f64 = 0.1;

fn huber(x: f64, d: f64) -> f64 {
    let a = x.abs();
    if a <= d {
        0.5 * x * x
    } else {
        d * (a - 0.5 * d)
    }
}

/// The loss of a set of runs (`runs[i]` for `set.configs[idx[i]]`): the mean over every
/// compared metric of every simulated point (each point weighs the same, as in the
/// median errors the targets are stated in).
fn loss_of(set: &RealSet, idx: &[usize], runs: &[ConfigRun]) -> f64 {
    let mut sum = 0.0;
    let mut n = 0usize;
    for (&ci, run) in idx.iter().zip(runs) {
        let cfg = &set.configs[ci];
        let ConfigRun::Points(points) = run else {
            continue;
        };
        for (p, sp) in cfg.points.iter().zip(points) {
            let SimPoint::Done { metrics, .. } = sp else {
                continue;
            };
            let r = &p.result;
            let md = crate::sim::vclient::Medians::of(metrics);
            let sim = [md.ttft_ms, md.tpot_ms, md.output_throughput];
            let real = [
                r.median_ttft_ms().unwrap_or(f64::NAN),
                r.median_tpot_ms().unwrap_or(f64::NAN),
                r.output_throughput,
            ];
            for (s, q) in sim.iter().zip(real) {
                if s.is_finite() && q.is_finite() && *s > 0.0 && q > 0.0 {
                    sum += huber((s / q).ln(), HUBER_DELTA);
                    n += 1;
                }
            }
        }
    }
    if n == 0 {
        f64::INFINITY
    } else {
        sum / n as f64
    }
}

fn with_params(base: &ConstSet, free: &[usize], x: &[f64]) -> ConstSet {
    let mut c = base.clone();
    for (&i, v) in free.iter().zip(x) {
        PARAMS[i].set(&mut c, v.exp());
    }
    c
}

/// Indices of [`PARAMS`] to fit: all but those named in `fixed` (an unknown name is an
/// error listing the known ones).
pub fn free_params(fixed: &[String]) -> Result<Vec<usize>, String> {
    for f in fixed {
        if !PARAMS.iter().any(|p| p.name == f) {
            return Err(format!(
                "unknown constant '{f}' (the free constants are: {})",
                PARAMS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    Ok((0..PARAMS.len())
        .filter(|&i| !fixed.iter().any(|f| f == PARAMS[i].name))
        .collect())
}

/// Loss of the configurations `idx` with the constants `consts`.
pub fn loss(set: &RealSet, idx: &[usize], consts: &ConstSet, seed: u64, jobs: usize) -> f64 {
    let runs = parallel::map(
        idx,
        jobs,
        |&ci| run::simulate(&set.configs[ci], consts, seed, false),
        || {},
    );
    loss_of(set, idx, &runs)
}

/// A fit's result.
#[derive(Debug, Clone)]
pub struct FitResult {
    pub consts: ConstSet,
    pub loss: f64,
    pub evaluations: usize,
}

/// Fit [`PARAMS`] on the configurations `idx`, starting from [`Param::start`] on top of
/// `base` (which supplies every other constant).
#[allow(clippy::too_many_arguments)]
pub fn fit(
    set: &RealSet,
    idx: &[usize],
    base: &ConstSet,
    free: &[usize],
    seed: u64,
    jobs: usize,
    budget: usize,
) -> FitResult {
    let lo: Vec<f64> = free.iter().map(|&i| PARAMS[i].lo.ln()).collect();
    let hi: Vec<f64> = free.iter().map(|&i| PARAMS[i].hi.ln()).collect();
    let clamp = |x: &mut Vec<f64>| {
        for (i, v) in x.iter_mut().enumerate() {
            *v = v.clamp(lo[i], hi[i]);
        }
    };
    let mut evals = 0usize;
    let mut f = |x: &[f64]| {
        evals += 1;
        loss(set, idx, &with_params(base, free, x), seed, jobs)
    };
    let x0: Vec<f64> = free.iter().map(|&i| PARAMS[i].start.ln()).collect();
    let n = x0.len();
    // initial simplex: +20 % on each constant
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
    let f0 = f(&x0);
    simplex.push((x0.clone(), f0));
    for i in 0..n {
        let mut x = x0.clone();
        x[i] += 0.2f64.ln_1p();
        clamp(&mut x);
        let fx = f(&x);
        simplex.push((x, fx));
    }
    let mut used = n + 1;
    while used < budget {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let centroid: Vec<f64> = (0..n)
            .map(|j| simplex[..n].iter().map(|(x, _)| x[j]).sum::<f64>() / n as f64)
            .collect();
        let worst = simplex[n].clone();
        let point = |t: f64| {
            let mut x: Vec<f64> = (0..n)
                .map(|j| centroid[j] + t * (worst.0[j] - centroid[j]))
                .collect();
            clamp(&mut x);
            x
        };
        let xr = point(-1.0);
        let fr = f(&xr);
        used += 1;
        if fr < simplex[0].1 {
            let xe = point(-2.0);
            let fe = f(&xe);
            used += 1;
            simplex[n] = if fe < fr { (xe, fe) } else { (xr, fr) };
        } else if fr < simplex[n - 1].1 {
            simplex[n] = (xr, fr);
        } else {
            let xc = if fr < worst.1 {
                point(-0.5)
            } else {
                point(0.5)
            };
            let fc = f(&xc);
            used += 1;
            if fc < worst.1.min(fr) {
                simplex[n] = (xc, fc);
            } else {
                // shrink towards the best
                let best = simplex[0].0.clone();
                for vertex in simplex.iter_mut().skip(1) {
                    let x: Vec<f64> = best
                        .iter()
                        .zip(&vertex.0)
                        .map(|(b, v)| b + 0.5 * (v - b))
                        .collect();
                    let fx = f(&x);
                    used += 1;
                    *vertex = (x, fx);
                }
            }
        }
        // converged: the simplex has collapsed
        let spread = simplex
            .iter()
            .map(|s| s.1)
            .fold(f64::NEG_INFINITY, f64::max)
            - simplex.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
        if spread.abs() < 1e-6 {
            break;
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (x, l) = simplex.swap_remove(0);
    FitResult {
        consts: with_params(base, free, &x),
        loss: l,
        evaluations: evals,
    }
}

/// Rewrite the values of the fitted constants in a constants file's text for `gpu`
/// (`h100`/`h200`), keeping every comment; `eta_att` follows `eta_lin`.
pub fn rewrite_toml(text: &str, gpu: &str, consts: &ConstSet) -> String {
    let mut section = String::new();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix('[') {
            section = rest.split(']').next().unwrap_or("").to_string();
        }
        let key = trimmed.split('=').next().unwrap_or("").trim();
        let param = PARAMS.iter().find(|p| {
            p.section == section
                && (p.key == key || (p.key == "eta_lin" && key == "eta_att"))
                && p.gpu.is_none_or(|g| g == gpu)
        });
        match (param, line.split_once('=')) {
            (Some(p), Some((lhs, rhs))) => {
                let comment = rhs.find('#').map(|i| &rhs[i..]).unwrap_or("");
                let value = format!("{:.4e}", p.get(consts));
                let head = format!("{lhs}= {value}");
                if comment.is_empty() {
                    out.push_str(&head);
                } else {
                    out.push_str(&format!("{head:<33}{comment}"));
                }
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The result of the leave-one-configuration-out protocol.
#[derive(Debug, Clone)]
pub struct LocoReport {
    pub rows: Vec<Row>,
    pub summary: Summary,
    /// Per fold: the held-out configurations' names and the fitted constants' values.
    pub folds: Vec<(String, Vec<f64>)>,
    pub budget: usize,
    /// `Some(n)`: n-fold cross-validation by configuration; `None`: one configuration out.
    pub k_fold: Option<usize>,
}

impl LocoReport {
    /// `leave one configuration out` or `4-fold cross-validation by configuration`.
    pub fn protocol(&self) -> String {
        match self.k_fold {
            Some(n) => format!("{n}-fold cross-validation by configuration"),
            None => "leave one configuration out".to_string(),
        }
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Each configuration predicted by constants fitted without it ({}: \
             {} free constants, Nelder–Mead from the same starting values, {} evaluations per \
             fit).\n",
            self.protocol(),
            PARAMS.len(),
            self.budget
        );
        s.push_str(&report::summary_markdown(&self.summary));
        let _ = writeln!(s, "\nFitted constants per fold:\n");
        let _ = write!(s, "| held out |");
        for p in PARAMS {
            let _ = write!(s, " {} |", p.name);
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "|---|{}", "---|".repeat(PARAMS.len()));
        for (name, v) in &self.folds {
            let _ = write!(s, "| {name} |");
            for x in v {
                let _ = write!(s, " {x:.4} |");
            }
            let _ = writeln!(s);
        }
        s
    }

    pub fn text(&self) -> String {
        let mut s = format!("\nout of sample ({}):\n", self.protocol());
        let m = &self.summary;
        let _ = writeln!(
            s,
            "  coverage {} of {} points; median abs error TTFT {:.1}%, TPOT {:.1}%, throughput {:.1}%; Spearman median {:.2} over {} loads",
            m.points_simulated,
            m.points_found,
            m.overall[0].0,
            m.overall[1].0,
            m.overall[2].0,
            m.median_rho(),
            m.ranks.len()
        );
        for (c, v) in &m.per_category {
            let _ = writeln!(
                s,
                "  {:<16} {:>6} / {:>6} / {:>6}",
                c,
                report::pct(v[0].0),
                report::pct(v[1].0),
                report::pct(v[2].0)
            );
        }
        s
    }
}

/// Which fold each counted configuration belongs to: one per configuration (LOCO), or
/// `n` folds over the configurations sorted by name, every n-th in the same fold.
pub fn fold_of(names: &[&str], n: Option<usize>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|&a, &b| names[a].cmp(names[b]));
    let mut fold = vec![0; names.len()];
    for (rank, &i) in order.iter().enumerate() {
        fold[i] = match n {
            Some(n) if n > 0 => rank % n,
            _ => rank,
        };
    }
    fold
}

/// Out of sample: for every fold, fit on the other counted configurations and predict the
/// fold's configurations. `folds`: `None` leaves one configuration out at a time.
pub fn loco(
    set: &RealSet,
    base: &ConstSet,
    free: &[usize],
    seed: u64,
    jobs: usize,
    folds: Option<usize>,
    progress: bool,
) -> LocoReport {
    let counted: Vec<usize> = (0..set.configs.len())
        .filter(|&i| set.configs[i].counted())
        .collect();
    let names: Vec<&str> = counted
        .iter()
        .map(|&i| set.configs[i].name.as_str())
        .collect();
    let fold = fold_of(&names, folds);
    let n_folds = fold.iter().max().map_or(0, |m| m + 1);
    let mut runs: Vec<ConfigRun> = (0..set.configs.len())
        .map(|_| ConfigRun::Refused("not held out (duplicate)".into()))
        .collect();
    let mut fold_consts = Vec::new();
    for k in 0..n_folds {
        let held: Vec<usize> = (0..counted.len())
            .filter(|&j| fold[j] == k)
            .map(|j| counted[j])
            .collect();
        let train: Vec<usize> = counted
            .iter()
            .copied()
            .filter(|i| !held.contains(i))
            .collect();
        let r = fit(set, &train, base, free, seed, jobs, FIT_BUDGET);
        for &h in &held {
            runs[h] = run::simulate(&set.configs[h], &r.consts, seed, false);
        }
        let held_names: Vec<&str> = held.iter().map(|&h| set.configs[h].name.as_str()).collect();
        fold_consts.push((
            held_names.join(", "),
            PARAMS.iter().map(|p| p.get(&r.consts)).collect(),
        ));
        if progress {
            eprintln!(
                "out of sample {}/{}: held out {} (train loss {:.4}, {} evaluations)",
                k + 1,
                n_folds,
                held_names.join(", "),
                r.loss,
                r.evaluations
            );
        }
    }
    let fold_list = fold_consts;
    let rows = report::rows(set, &runs);
    let summary = report::summarize(&rows);
    LocoReport {
        rows,
        summary,
        folds: fold_list,
        budget: FIT_BUDGET,
        k_fold: folds.filter(|_| n_folds < counted.len()).map(|_| n_folds),
    }
}

#[cfg(test)]
mod fold_tests {
    use super::*;

    #[test]
    fn folds_cover_every_configuration_once() {
        let names = ["d", "a", "c", "b", "e"];
        let f = fold_of(&names, None);
        let mut sorted = f.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
        assert_eq!(f[1], 0);
        let f = fold_of(&names, Some(2));
        assert_eq!(f, vec![1, 0, 0, 1, 0]);
    }
}
