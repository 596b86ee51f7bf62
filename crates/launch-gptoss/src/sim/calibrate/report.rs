//! Compare simulated and real points: rows, coverage, errors overall and per category,
//! rank agreement (Spearman) of configurations by throughput per GPU at equal load, and
//! their text and Markdown renderings.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use pd_common::result::percentile_sorted;
use pd_common::workload::SweepKind;

use super::data::{categories, RealConfig, RealSet, CATEGORY_ORDER};
use super::run::{ConfigRun, SimPoint};

pub const METRICS: [&str; 3] = [
    "median TTFT (ms)",
    "median TPOT (ms)",
    "output throughput (tok/s)",
];
/// Targets (median absolute % error) of the project.
pub const TARGETS: [f64; 3] = [15.0, 10.0, 8.0];
/// Coverage target (simulated / found points).
pub const COVERAGE_TARGET: f64 = 0.95;
/// Rank-agreement target (Spearman).
pub const SPEARMAN_TARGET: f64 = 0.9;

/// One compared point.
#[derive(Debug, Clone)]
pub struct Row {
    pub dir: String,
    /// Index of the configuration in the real set.
    pub config: usize,
    pub coord: String,
    pub kind: SweepKind,
    pub value: f64,
    pub max_concurrency: Option<u32>,
    /// `itl/otl/mode` of the point, to group configurations at equal load.
    pub workload: (u32, u32, String),
    pub gpus: u32,
    pub categories: Vec<&'static str>,
    /// Counted in the summary (false for a directory duplicating another).
    pub counted: bool,
    pub real: [f64; 3],
    pub sim: Option<[f64; 3]>,
    /// Why the point was not simulated.
    pub refused: Option<String>,
}

impl Row {
    /// Signed % error of metric `i`; NaN when not simulated or undefined (TPOT of
    /// one-token outputs).
    pub fn err(&self, i: usize) -> f64 {
        match self.sim {
            Some(s) if self.real[i].is_finite() && self.real[i] > 0.0 && s[i].is_finite() => {
                (s[i] - self.real[i]) / self.real[i] * 100.0
            }
            _ => f64::NAN,
        }
    }
}

fn metric_values(m: &pd_common::bench::PointMetrics) -> [f64; 3] {
    let md = crate::sim::vclient::Medians::of(m);
    [md.ttft_ms, md.tpot_ms, md.output_throughput]
}

/// Rows of all configurations (`runs[i]` belongs to `set.configs[i]`).
pub fn rows(set: &RealSet, runs: &[ConfigRun]) -> Vec<Row> {
    let mut out = Vec::new();
    for (ci, (cfg, run)) in set.configs.iter().zip(runs).enumerate() {
        for (pi, p) in cfg.points.iter().enumerate() {
            let r = &p.result;
            let real = [
                r.median_ttft_ms().unwrap_or(f64::NAN),
                r.median_tpot_ms().unwrap_or(f64::NAN),
                r.output_throughput,
            ];
            let (sim, refused) = match run {
                ConfigRun::Refused(m) => (None, Some(m.clone())),
                ConfigRun::Points(pts) => match pts.get(pi) {
                    Some(SimPoint::Done { metrics, .. }) => (Some(metric_values(metrics)), None),
                    Some(SimPoint::Failed(m)) => (None, Some(m.clone())),
                    None => (None, Some("not simulated".into())),
                },
            };
            out.push(Row {
                dir: cfg.name.clone(),
                config: ci,
                coord: p.coordinate(),
                kind: p.kind,
                value: p.value,
                max_concurrency: p.max_concurrency,
                workload: (p.input_len, p.output_len, cfg.workload.mode.to_string()),
                gpus: cfg.label.total_gpus,
                categories: categories(cfg, p),
                counted: cfg.counted(),
                real,
                sim,
                refused,
            });
        }
    }
    out
}

/// Median of |err| of metric `i` over the rows that have it, and how many.
pub fn median_abs(rows: &[&Row], i: usize) -> (f64, usize) {
    let mut v: Vec<f64> = rows
        .iter()
        .map(|r| r.err(i).abs())
        .filter(|e| e.is_finite())
        .collect();
    v.sort_by(f64::total_cmp);
    (
        if v.is_empty() {
            f64::NAN
        } else {
            percentile_sorted(&v, 50.0)
        },
        v.len(),
    )
}

/// Spearman rank correlation (average ranks for ties); NaN with fewer than 3 values or
/// no variation.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    fn ranks(x: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..x.len()).collect();
        idx.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
        let mut r = vec![0.0; x.len()];
        let mut k = 0;
        while k < idx.len() {
            let mut e = k;
            while e + 1 < idx.len() && x[idx[e + 1]] == x[idx[k]] {
                e += 1;
            }
            let avg = (k + e) as f64 / 2.0 + 1.0;
            for &i in &idx[k..=e] {
                r[i] = avg;
            }
            k = e + 1;
        }
        r
    }
    if a.len() != b.len() || a.len() < 3 {
        return f64::NAN;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let mut cov = 0.0;
    let mut va = 0.0;
    let mut vb = 0.0;
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - ma) * (y - mb);
        va += (x - ma).powi(2);
        vb += (y - mb).powi(2);
    }
    if va == 0.0 || vb == 0.0 {
        return f64::NAN;
    }
    cov / (va * vb).sqrt()
}

/// Rank agreement of configurations by output throughput per GPU at one load.
#[derive(Debug, Clone)]
pub struct RankGroup {
    /// `ITL 5000 / OTL 250 mixed, C=16`.
    pub load: String,
    pub configs: usize,
    pub rho: f64,
}

/// Spearman per load (same workload and sweep point, ≥ 3 counted, simulated configs).
pub fn rank_groups(rows: &[Row]) -> Vec<RankGroup> {
    type Key = (u32, u32, String, bool, u64, Option<u32>);
    let mut groups: BTreeMap<Key, Vec<&Row>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.counted && r.sim.is_some() && r.gpus > 0)
    {
        let key = (
            r.workload.0,
            r.workload.1,
            r.workload.2.clone(),
            r.kind == SweepKind::RequestRate,
            (r.value * 1000.0).round() as u64,
            r.max_concurrency,
        );
        groups.entry(key).or_default().push(r);
    }
    groups
        .into_values()
        .filter(|g| g.len() >= 3)
        .map(|g| {
            let real: Vec<f64> = g.iter().map(|r| r.real[2] / f64::from(r.gpus)).collect();
            let sim: Vec<f64> = g
                .iter()
                .map(|r| r.sim.map_or(f64::NAN, |s| s[2]) / f64::from(r.gpus))
                .collect();
            let f = g[0];
            RankGroup {
                load: format!(
                    "ITL {} / OTL {} {}, {}",
                    f.workload.0, f.workload.1, f.workload.2, f.coord
                ),
                configs: g.len(),
                rho: spearman(&real, &sim),
            }
        })
        .collect()
}

/// The numbers of a calibration.
#[derive(Debug, Clone)]
pub struct Summary {
    pub points_found: usize,
    pub points_simulated: usize,
    pub overall: [(f64, usize); 3],
    /// (category, [(median, n); 3]) in [`CATEGORY_ORDER`].
    pub per_category: Vec<(&'static str, [(f64, usize); 3])>,
    pub ranks: Vec<RankGroup>,
}

impl Summary {
    pub fn coverage(&self) -> f64 {
        if self.points_found == 0 {
            f64::NAN
        } else {
            self.points_simulated as f64 / self.points_found as f64
        }
    }
    /// The three overall rows both renderings show: (metric, median abs error as text,
    /// target in %, "met"/"MISSED", points).
    fn overall_rows(&self) -> [(&'static str, String, f64, &'static str, usize); 3] {
        std::array::from_fn(|i| {
            let (m, n) = self.overall[i];
            (METRICS[i], pct(m), TARGETS[i], met(m, TARGETS[i]), n)
        })
    }
    /// Median Spearman over the load groups.
    pub fn median_rho(&self) -> f64 {
        let mut v: Vec<f64> = self
            .ranks
            .iter()
            .map(|g| g.rho)
            .filter(|r| r.is_finite())
            .collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            f64::NAN
        } else {
            percentile_sorted(&v, 50.0)
        }
    }
}

pub fn summarize(rows: &[Row]) -> Summary {
    let counted: Vec<&Row> = rows.iter().filter(|r| r.counted).collect();
    let overall = [0, 1, 2].map(|i| median_abs(&counted, i));
    let per_category = CATEGORY_ORDER
        .iter()
        .filter_map(|&c| {
            let sel: Vec<&Row> = counted
                .iter()
                .copied()
                .filter(|r| r.categories.contains(&c))
                .collect();
            (!sel.is_empty()).then(|| (c, [0, 1, 2].map(|i| median_abs(&sel, i))))
        })
        .collect();
    Summary {
        points_found: counted.len(),
        points_simulated: counted.iter().filter(|r| r.sim.is_some()).count(),
        overall,
        per_category,
        ranks: rank_groups(rows),
    }
}

pub(super) fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}%")
    } else {
        "–".into()
    }
}

fn signed(v: f64) -> String {
    if v.is_finite() {
        format!("{v:+.1}%")
    } else {
        "–".into()
    }
}

fn num(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "–".into()
    }
}

fn met(v: f64, target: f64) -> &'static str {
    if v.is_finite() && v <= target {
        "met"
    } else {
        "MISSED"
    }
}

/// The summary block, Markdown.
pub fn summary_markdown(s: &Summary) -> String {
    let mut o = String::new();
    let (found, simulated) = (s.points_found, s.points_simulated);
    let (cov, target) = (s.coverage() * 100.0, COVERAGE_TARGET * 100.0);
    let _ = writeln!(
        o,
        "Coverage: **{simulated} of {found} points simulated ({cov:.1} %)** (target ≥ {target:.0} %; duplicates once).\n"
    );
    let _ = writeln!(o, "| metric | median abs error | target | points |");
    let _ = writeln!(o, "|---|---|---|---|");
    for (metric, err, target, verdict, n) in s.overall_rows() {
        let _ = writeln!(
            o,
            "| {metric} | {err} | ≤ {target:.0} % ({verdict}) | {n} |"
        );
    }
    let _ = writeln!(o, "\nPer category (median abs error; points):\n");
    let _ = writeln!(o, "| category | TTFT | TPOT | throughput |");
    let _ = writeln!(o, "|---|---|---|---|");
    for (c, v) in &s.per_category {
        let _ = writeln!(
            o,
            "| {c} | {} ({}) | {} ({}) | {} ({}) |",
            pct(v[0].0),
            v[0].1,
            pct(v[1].0),
            v[1].1,
            pct(v[2].0),
            v[2].1
        );
    }
    let _ = writeln!(
        o,
        "\nRank agreement by output throughput per GPU at equal load (Spearman; median {} over {} loads, target ≥ {}):\n",
        num(s.median_rho(), 2),
        s.ranks.len(),
        SPEARMAN_TARGET
    );
    let _ = writeln!(o, "| load | configurations | Spearman |");
    let _ = writeln!(o, "|---|---|---|");
    for g in &s.ranks {
        let _ = writeln!(o, "| {} | {} | {} |", g.load, g.configs, num(g.rho, 2));
    }
    o
}

/// The per-configuration tables, Markdown.
pub fn rows_markdown(rows: &[Row], configs: &[RealConfig]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Mean absolute error per configuration\n");
    let _ = writeln!(s, "| directory | points | TTFT | TPOT | throughput |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for (ci, c) in configs.iter().enumerate() {
        let sel: Vec<&Row> = rows.iter().filter(|r| r.config == ci).collect();
        let mean = |i: usize| {
            let v: Vec<f64> = sel
                .iter()
                .map(|r| r.err(i).abs())
                .filter(|e| e.is_finite())
                .collect();
            if v.is_empty() {
                f64::NAN
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        let simulated = sel.iter().filter(|r| r.sim.is_some()).count();
        let dup = c
            .duplicate_of
            .as_ref()
            .map(|o| format!(" (same files as {o}; not counted)"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "| {}{dup} | {simulated}/{} | {} | {} | {} |",
            c.name,
            sel.len(),
            pct(mean(0)),
            pct(mean(1)),
            pct(mean(2))
        );
    }
    for (ci, c) in configs.iter().enumerate() {
        let _ = writeln!(
            s,
            "\n## {}{}\n",
            c.name,
            if c.counted() {
                ""
            } else {
                " (duplicate, not counted)"
            }
        );
        let _ = writeln!(
            s,
            "| point | TTFT real | TTFT sim | err | TPOT real | TPOT sim | err | thr real | thr sim | err |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        for r in rows.iter().filter(|r| r.config == ci) {
            match (&r.sim, &r.refused) {
                (Some(sim), _) => {
                    let _ = writeln!(s, "| {} |", point_cells(r, sim).join(" | "));
                }
                (None, why) => {
                    let _ = writeln!(
                        s,
                        "| {} | {} | not simulated: {} |||||||| ",
                        r.coord,
                        num(r.real[0], 1),
                        why.as_deref().unwrap_or("?").replace('|', "/")
                    );
                }
            }
        }
    }
    s
}

/// The summary for the terminal: coverage, errors, categories, Spearman.
pub fn summary_text(summary: &Summary) -> String {
    let mut s = String::new();
    let (found, simulated) = (summary.points_found, summary.points_simulated);
    let (cov, target) = (summary.coverage() * 100.0, COVERAGE_TARGET * 100.0);
    let _ = writeln!(
        s,
        "coverage: {simulated} of {found} points simulated ({cov:.1}%; target ≥ {target:.0}%)"
    );
    let _ = writeln!(s, "median absolute error (duplicates once):");
    for (metric, err, target, verdict, n) in summary.overall_rows() {
        let _ = writeln!(
            s,
            "  {metric:<28} {err:>6}  over {n:>3} points (target ≤ {target:.0}%: {verdict})"
        );
    }
    let _ = writeln!(s, "per category (TTFT / TPOT / throughput, points):");
    for (c, v) in &summary.per_category {
        let _ = writeln!(
            s,
            "  {:<16} {:>6} / {:>6} / {:>6}  ({} points)",
            c,
            pct(v[0].0),
            pct(v[1].0),
            pct(v[2].0),
            v[0].1.max(v[2].1)
        );
    }
    let _ = writeln!(
        s,
        "Spearman, configurations ranked by throughput per GPU at equal load: median {} over {} loads (target ≥ {})",
        num(summary.median_rho(), 2),
        summary.ranks.len(),
        SPEARMAN_TARGET
    );
    for g in &summary.ranks {
        let _ = writeln!(
            s,
            "  {:<40} {:>2} configs  {}",
            g.load,
            g.configs,
            num(g.rho, 2)
        );
    }
    s
}

/// The cells of a simulated point: the point, then real, simulated and error for median
/// TTFT, median TPOT and output throughput.
fn point_cells(r: &Row, sim: &[f64; 3]) -> [String; 10] {
    const DIGITS: [usize; 3] = [1, 2, 1];
    let mut cells: [String; 10] = Default::default();
    cells[0] = r.coord.clone();
    for k in 0..3 {
        cells[1 + 3 * k] = num(r.real[k], DIGITS[k]);
        cells[2 + 3 * k] = num(sim[k], DIGITS[k]);
        cells[3 + 3 * k] = signed(r.err(k));
    }
    cells
}

/// Right-aligned terminal columns of [`point_cells`], a wider gap before each metric.
fn text_columns(cells: &[String; 10]) -> String {
    const WIDTHS: [usize; 10] = [16, 9, 9, 7, 7, 7, 7, 8, 8, 7];
    let mut line = String::from("  ");
    for (i, (c, w)) in cells.iter().zip(WIDTHS).enumerate() {
        let gap = match i {
            0 => "",
            i if i % 3 == 1 => "  ",
            _ => " ",
        };
        let _ = write!(line, "{gap}{c:>w$}");
    }
    line
}

/// A terminal rendering: per-point lines, then the summary.
pub fn render_text(rows: &[Row], configs: &[RealConfig], summary: &Summary) -> String {
    let mut s = String::new();
    for (ci, c) in configs.iter().enumerate() {
        let _ = writeln!(
            s,
            "\n{}{}",
            c.name,
            if c.counted() {
                ""
            } else {
                "  (duplicate, not counted)"
            }
        );
        let head = [
            "point", "TTFT", "sim", "err", "TPOT", "sim", "err", "thr", "sim", "err",
        ];
        let _ = writeln!(s, "{}", text_columns(&head.map(String::from)));
        for r in rows.iter().filter(|r| r.config == ci) {
            match (&r.sim, &r.refused) {
                (Some(sim), _) => {
                    let _ = writeln!(s, "{}", text_columns(&point_cells(r, sim)));
                }
                (None, why) => {
                    let _ = writeln!(
                        s,
                        "  {:>16}  not simulated: {}",
                        r.coord,
                        why.as_deref().unwrap_or("?")
                    );
                }
            }
        }
    }
    s.push('\n');
    s.push_str(&summary_text(summary));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_basics() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // ties get the average rank
        let r = spearman(&[1.0, 1.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]);
        assert!(r > 0.9 && r < 1.0, "{r}");
        assert!(spearman(&[1.0, 2.0], &[1.0, 2.0]).is_nan());
        assert!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_nan());
    }
}
