//! Which differences between configurations are significant.
//!
//! At every sweep point measured by at least two experiments, for the plotted throughput
//! (normalised per the settings), median TPOT and median TTFT: the best configuration
//! (highest throughput, lowest latency) is compared with each other one by Welch's
//! two-sample t-test (two-sided, α = 0.05) on the per-run values. A comparison needs at
//! least two runs on each side (`run-bm --repeat K`); without repeats no difference can
//! be called significant, and the report says so.

use std::fmt::Write as _;

use pd_common::{BenchResult, SweepKind};

use crate::load::{Experiment, Point};
use crate::metrics;
use crate::settings::Settings;
use crate::stats::{welch_p, Stats};
use crate::table::format_sweep_value;

/// Significance level of the tests.
pub const ALPHA: f64 = 0.05;

/// A compared metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Throughput,
    Tpot,
    Ttft,
}

impl Metric {
    const ALL: [Metric; 3] = [Metric::Throughput, Metric::Tpot, Metric::Ttft];

    fn higher_is_better(self) -> bool {
        self == Metric::Throughput
    }

    /// Name with unit.
    pub fn label(self, settings: &Settings) -> String {
        match self {
            Metric::Throughput => format!(
                "{} ({})",
                settings.throughput_metric.title(),
                metrics::throughput_unit(settings)
            ),
            Metric::Tpot => "TPOT median (ms)".to_string(),
            Metric::Ttft => "TTFT median (ms)".to_string(),
        }
    }

    fn value(self, e: &Experiment, p: &Point, settings: &Settings) -> Option<f64> {
        match self {
            Metric::Throughput => metrics::throughput(e, p, settings),
            Metric::Tpot => metrics::tpot(p),
            Metric::Ttft => metrics::ttft(p),
        }
    }

    fn stats(self, e: &Experiment, p: &Point, settings: &Settings) -> Option<Stats> {
        let tm = settings.throughput_metric;
        match self {
            Metric::Throughput => metrics::point_stats(
                p,
                |r: &BenchResult| metrics::throughput_of(r, tm),
                metrics::throughput_key(tm),
            )
            .map(|s| s.scaled(metrics::norm_factor(e, settings))),
            Metric::Tpot => metrics::point_stats(p, metrics::tpot_of, Some("median_tpot_ms")),
            Metric::Ttft => metrics::point_stats(p, metrics::ttft_of, Some("median_ttft_ms")),
        }
    }
}

/// One test: the best configuration at a point against another.
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    pub kind: SweepKind,
    pub value: f64,
    pub metric: Metric,
    /// Experiment indices.
    pub best: usize,
    pub other: usize,
    pub best_stats: Stats,
    pub other_stats: Stats,
    /// (other − best) / best, in percent.
    pub diff_pct: f64,
    pub p: f64,
}

impl Test {
    pub fn significant(&self) -> bool {
        self.p < ALPHA
    }
}

/// All tests of a comparison.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub tests: Vec<Test>,
    /// Comparisons that could not be tested (a side with a single run).
    pub untested: usize,
    /// Experiment names (for rendering).
    pub names: Vec<String>,
    /// Metric labels (for rendering).
    pub labels: Vec<(Metric, String)>,
}

/// `p = 0.042`, `p < 0.001`.
pub fn fmt_p(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".to_string()
    } else {
        format!("p = {p:.3}")
    }
}

fn tag(kind: SweepKind, value: f64) -> String {
    match kind {
        SweepKind::Concurrency => format!("conc {}", format_sweep_value(value)),
        SweepKind::RequestRate => format!("rate {}", format_sweep_value(value)),
    }
}

/// Run the tests (see the module doc).
pub fn compare(experiments: &[Experiment], settings: &Settings) -> Summary {
    let mut coords: Vec<(SweepKind, f64)> = experiments
        .iter()
        .flat_map(|e| e.points.iter().map(|p| (p.kind, p.value)))
        .collect();
    coords.sort_by(|a, b| {
        (u8::from(a.0 == SweepKind::RequestRate), a.1)
            .partial_cmp(&(u8::from(b.0 == SweepKind::RequestRate), b.1))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    coords.dedup();
    let mut out = Summary {
        names: experiments.iter().map(|e| e.name.clone()).collect(),
        labels: Metric::ALL
            .iter()
            .map(|m| (*m, m.label(settings)))
            .collect(),
        ..Summary::default()
    };
    for (kind, value) in coords {
        for metric in Metric::ALL {
            let present: Vec<(usize, f64, Option<Stats>)> = experiments
                .iter()
                .enumerate()
                .filter_map(|(i, e)| {
                    let p = e
                        .points
                        .iter()
                        .find(|p| p.kind == kind && p.value == value)?;
                    Some((
                        i,
                        metric.value(e, p, settings)?,
                        metric.stats(e, p, settings),
                    ))
                })
                .collect();
            if present.len() < 2 {
                continue;
            }
            let better = |a: f64, b: f64| {
                if metric.higher_is_better() {
                    a > b
                } else {
                    a < b
                }
            };
            let best = present
                .iter()
                .fold(None::<&(usize, f64, Option<Stats>)>, |acc, c| match acc {
                    Some(b) if !better(c.1, b.1) => Some(b),
                    _ => Some(c),
                })
                .copied();
            let Some((bi, bv, bs)) = best else { continue };
            for &(oi, ov, os) in present.iter().filter(|c| c.0 != bi) {
                match (bs, os) {
                    (Some(b), Some(o)) => out.tests.push(Test {
                        kind,
                        value,
                        metric,
                        best: bi,
                        other: oi,
                        best_stats: b,
                        other_stats: o,
                        diff_pct: if bv != 0.0 {
                            (ov - bv) / bv * 100.0
                        } else {
                            0.0
                        },
                        p: welch_p(&b, &o),
                    }),
                    _ => out.untested += 1,
                }
            }
        }
    }
    out
}

impl Summary {
    fn label(&self, m: Metric) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| *k == m)
            .map_or("", |(_, l)| l.as_str())
    }

    /// The one-line verdict.
    pub fn headline(&self) -> String {
        if self.tests.is_empty() {
            return format!(
                "Significance: no sweep point was run more than once by two configurations \
                 (run-bm --repeat K), so no difference between configurations can be called \
                 significant ({} comparison(s) untested).",
                self.untested
            );
        }
        let sig = self.tests.iter().filter(|t| t.significant()).count();
        format!(
            "Significance (Welch's t-test, two-sided, α = {ALPHA}; differences in % of the best \
             configuration at each point): {sig} of {} are significant{}.",
            self.tests.len(),
            if self.untested > 0 {
                format!("; {} comparison(s) untested (a single run)", self.untested)
            } else {
                String::new()
            }
        )
    }

    /// Text for stdout: the headline and, per point and metric, which configurations
    /// differ significantly from the best.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.headline());
        let mut groups: Vec<(SweepKind, f64, Metric)> = self
            .tests
            .iter()
            .map(|t| (t.kind, t.value, t.metric))
            .collect();
        groups.dedup();
        for (kind, value, metric) in groups {
            let tests: Vec<&Test> = self
                .tests
                .iter()
                .filter(|t| (t.kind, t.value, t.metric) == (kind, value, metric))
                .collect();
            let Some(first) = tests.first() else { continue };
            let list = |sig: bool| {
                tests
                    .iter()
                    .filter(|t| t.significant() == sig)
                    .map(|t| {
                        format!(
                            "{} ({:+.1} %, {})",
                            self.names[t.other],
                            t.diff_pct,
                            fmt_p(t.p)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (yes, no) = (list(true), list(false));
            let _ = write!(
                out,
                "  {}, {}: best {} ({:.2})",
                tag(kind, value),
                self.label(metric),
                self.names[first.best],
                first.best_stats.mean
            );
            if !yes.is_empty() {
                let _ = write!(out, "; significantly better than {yes}");
            }
            if !no.is_empty() {
                let _ = write!(out, "; not significantly different from {no}");
            }
            out.push('\n');
        }
        out
    }

    /// Markdown: the headline and a table of every test.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}\n", self.headline());
        if self.tests.is_empty() {
            return out;
        }
        let _ = writeln!(
            out,
            "| Point | Metric | Best (mean ± sd, runs) | Other (mean ± sd, runs) | Difference | p | Significant |"
        );
        let _ = writeln!(out, "|---|---|---|---|---:|---:|---|");
        for t in &self.tests {
            let side = |i: usize, s: &Stats| {
                format!(
                    "{} ({:.2} ± {:.2}, {})",
                    self.names[i].replace('|', "\\|"),
                    s.mean,
                    s.sd,
                    s.n
                )
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:+.1} % | {} | {} |",
                tag(t.kind, t.value),
                self.label(t.metric),
                side(t.best, &t.best_stats),
                side(t.other, &t.other_stats),
                t.diff_pct,
                fmt_p(t.p).trim_start_matches("p ").trim_start_matches("= "),
                if t.significant() { "yes" } else { "no" }
            );
        }
        out
    }
}
