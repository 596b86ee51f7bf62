//! The console summary of a point, in `vllm bench serve`'s layout (spec G.10), followed
//! by pd-lab's extra lines; and the summary of a whole sweep ([`SweepRow`]): a table on
//! stdout, or one JSON object with `--json`.

use std::fmt::Write;

use pd_common::repeats::recorded;
use pd_common::result::percentile_word;
use pd_common::{BenchResult, SweepKind};
use serde_json::{json, Map, Value};

use crate::schedule::ScheduleReport;
use pd_common::bench::{FailureKind, PointMetrics, RequestOutcome};

/// Inputs of the summary that are not metrics.
#[derive(Debug, Clone, Copy)]
pub struct SummaryHeader {
    pub max_concurrency: Option<u64>,
    /// Asked request rate (printed when finite).
    pub rate: f64,
}

fn row(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{:<40} {:<10}", label, value);
}

fn rowf(out: &mut String, label: &str, value: f64) {
    let _ = writeln!(out, "{:<40} {:<10.2}", label, value);
}

/// Render the summary.
pub fn render(h: &SummaryHeader, m: &PointMetrics, sched: Option<&ScheduleReport>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:=^50}", " Serving Benchmark Result ");
    row(&mut out, "Successful requests:", m.completed);
    row(&mut out, "Failed requests:", m.failed);
    if let Some(c) = h.max_concurrency {
        row(&mut out, "Maximum request concurrency:", c);
    }
    if h.rate.is_finite() {
        rowf(&mut out, "Request rate configured (RPS):", h.rate);
    }
    rowf(&mut out, "Benchmark duration (s):", m.duration);
    row(&mut out, "Total input tokens:", m.total_input_tokens);
    row(&mut out, "Total generated tokens:", m.total_output_tokens);
    rowf(
        &mut out,
        "Request throughput (req/s):",
        m.request_throughput,
    );
    if let Some(g) = m.request_goodput {
        rowf(&mut out, "Request goodput (req/s):", g);
    }
    rowf(
        &mut out,
        "Output token throughput (tok/s):",
        m.output_throughput,
    );
    rowf(
        &mut out,
        "Peak output token throughput (tok/s):",
        m.max_output_tokens_per_s,
    );
    row(
        &mut out,
        "Peak concurrent requests:",
        m.max_concurrent_requests,
    );
    rowf(
        &mut out,
        "Total token throughput (tok/s):",
        m.total_token_throughput,
    );
    for (name, stats) in &m.blocks {
        let _ = writeln!(out, "{:-^50}", name.title());
        let abbr = name.short();
        rowf(&mut out, &format!("Mean {abbr} (ms):"), stats.mean);
        rowf(&mut out, &format!("Median {abbr} (ms):"), stats.median);
        for (p, v) in &stats.percentiles {
            let word = percentile_word(*p);
            rowf(&mut out, &format!("P{} {abbr} (ms):", &word[1..]), *v);
        }
    }
    let _ = writeln!(out, "{}", "=".repeat(50));
    let _ = writeln!(
        out,
        "pd-lab: token ITL mean {:.2} ms, median {:.2} ms (per-chunk usage: {}; {:.1}% multi-token chunks)",
        m.token_itl.mean,
        m.token_itl.median,
        if m.continuous_usage { "yes" } else { "no" },
        m.multi_token_chunk_fraction * 100.0
    );
    let _ = writeln!(
        out,
        "pd-lab: exact peak concurrency {}, token-weighted peak output {:.2} tok/s",
        m.max_concurrent_requests_exact, m.max_output_tokens_per_s_tokens
    );
    if let (Some(s), true) = (sched, h.rate.is_finite()) {
        let _ = writeln!(
            out,
            "pd-lab: dispatch rate {:.3} req/s (asked {:.3}); dispatch delay mean {:.1} ms, p99 {:.1} ms",
            s.dispatch_rate,
            h.rate,
            s.mean_delay * 1e3,
            s.p99_delay * 1e3
        );
    }
    out
}

/// What happened to a point of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointStatus {
    /// Measured in this run.
    Measured,
    /// Already done (`--resume`).
    Skipped,
    /// Cut short by a signal (partial results).
    Interrupted,
}

impl PointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PointStatus::Measured => "measured",
            PointStatus::Skipped => "skipped",
            PointStatus::Interrupted => "interrupted",
        }
    }
}

/// One point in the sweep's summary: its result (the aggregate of a repeated point).
#[derive(Debug, Clone)]
pub struct SweepRow {
    /// The point's file (`conc16.json`; a repeated point's aggregate).
    pub file: String,
    /// Its runs' files (empty for a single run).
    pub run_files: Vec<String>,
    pub status: PointStatus,
    pub result: BenchResult,
}

impl SweepRow {
    fn stem(&self) -> &str {
        self.file.strip_suffix(".json").unwrap_or(&self.file)
    }

    fn runs(&self) -> usize {
        self.run_files.len().max(1)
    }

    /// `value ±half` of a metric (± the half-width of its 95 % interval, when repeated).
    fn with_ci(&self, key: &str, value: Option<f64>, prec: usize) -> String {
        let Some(v) = value.filter(|v| v.is_finite()) else {
            return "-".into();
        };
        let half = recorded(&self.result)
            .and_then(|r| r.ci95.get(key).copied())
            .map(|(lo, hi)| (hi - lo) / 2.0);
        match half {
            Some(h) if h.is_finite() => format!("{v:.prec$} ±{h:.prec$}"),
            _ => format!("{v:.prec$}"),
        }
    }

    fn server(&self, key: &str) -> Option<f64> {
        self.result
            .pd_lab
            .as_ref()?
            .other
            .get("server_metrics")?
            .get(key)?
            .as_f64()
    }

    /// The row as JSON (for `--json`).
    pub fn to_json(&self) -> Value {
        let r = &self.result;
        let (kind, value) = r.sweep_point();
        let mut m = Map::new();
        m.insert("point".into(), json!(self.stem()));
        m.insert("file".into(), json!(self.file));
        m.insert("status".into(), json!(self.status.as_str()));
        m.insert("sweep".into(), json!(kind.to_string()));
        m.insert("value".into(), json!(value));
        m.insert("runs".into(), json!(self.runs()));
        m.insert("run_files".into(), json!(self.run_files));
        m.insert("completed".into(), json!(r.completed));
        m.insert("failed".into(), json!(r.failed.unwrap_or(0)));
        m.insert("duration".into(), json!(r.duration));
        m.insert("request_throughput".into(), json!(r.request_throughput));
        m.insert("output_throughput".into(), json!(r.output_throughput));
        m.insert(
            "total_token_throughput".into(),
            json!(r.total_token_throughput),
        );
        for (k, v) in &r.rest {
            if k.ends_with("_ms") {
                m.insert(k.clone(), v.clone());
            }
        }
        if let Some(rec) = recorded(r) {
            m.insert(
                "ci95".into(),
                Value::Object(
                    rec.ci95
                        .iter()
                        .map(|(k, (lo, hi))| (k.clone(), json!([lo, hi])))
                        .collect(),
                ),
            );
        }
        if let Some(sm) = r
            .pd_lab
            .as_ref()
            .and_then(|x| x.other.get("server_metrics"))
        {
            m.insert("server_metrics".into(), sm.clone());
        }
        Value::Object(m)
    }
}

/// The sweep's summary table (one row per point).
pub fn render_sweep_table(rows: &[SweepRow]) -> String {
    let header = [
        "point",
        "runs",
        "ok",
        "failed",
        "req/s",
        "out tok/s",
        "median TTFT ms",
        "median TPOT ms",
        "KV max %",
        "preempt",
    ];
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let r = &row.result;
            let mut point = row.stem().to_string();
            if row.status != PointStatus::Measured {
                point.push_str(&format!(" ({})", row.status.as_str()));
            }
            vec![
                point,
                row.runs().to_string(),
                r.completed.to_string(),
                r.failed.unwrap_or(0).to_string(),
                row.with_ci("request_throughput", Some(r.request_throughput), 2),
                row.with_ci("output_throughput", Some(r.output_throughput), 1),
                row.with_ci("median_ttft_ms", r.median_ttft_ms(), 1),
                row.with_ci("median_tpot_ms", r.median_tpot_ms(), 2),
                row.server("kv_cache_usage_max")
                    .map_or("-".into(), |v| format!("{:.1}", v * 100.0)),
                row.server("num_preemptions")
                    .map_or("-".into(), |v| format!("{v:.0}")),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            body.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| -> String {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string()
    };
    let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    let mut out = String::new();
    let _ = writeln!(out, "{:=^total$}", " Sweep summary ");
    let _ = writeln!(
        out,
        "{}",
        line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>())
    );
    for r in &body {
        let _ = writeln!(out, "{}", line(r));
    }
    if rows
        .iter()
        .any(|r| recorded(&r.result).is_some_and(|x| !x.ci95.is_empty()))
    {
        let _ = writeln!(
            out,
            "± is the half-width of the 95 % confidence interval of the mean over the runs (Student t)."
        );
    }
    let _ = writeln!(out, "{}", "=".repeat(total));
    out
}

/// The sweep's summary as one JSON object (`--json`).
pub fn sweep_json(
    result_dir: &str,
    sweep: SweepKind,
    repeat: u32,
    interrupted: bool,
    rows: &[SweepRow],
) -> Value {
    json!({
        "tool": "run-bm",
        "tool_version": pd_common::VERSION,
        "result_dir": result_dir,
        "sweep": sweep.to_string(),
        "repeat": repeat,
        "interrupted": interrupted,
        "points": rows.iter().map(SweepRow::to_json).collect::<Vec<_>>(),
    })
}

/// Failures of a point counted per kind (in first-seen order) and per distinct message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureSummary {
    pub failed: usize,
    pub total: usize,
    pub by_kind: Vec<(FailureKind, usize)>,
    /// Distinct messages with their counts, most frequent first.
    pub messages: Vec<(String, usize)>,
}

impl FailureSummary {
    pub fn of(outcomes: &[RequestOutcome]) -> Self {
        let mut s = FailureSummary {
            total: outcomes.len(),
            ..Default::default()
        };
        for f in outcomes.iter().filter_map(|o| o.failure.as_ref()) {
            s.failed += 1;
            match s.by_kind.iter_mut().find(|(k, _)| *k == f.kind) {
                Some((_, n)) => *n += 1,
                None => s.by_kind.push((f.kind, 1)),
            }
            match s.messages.iter_mut().find(|(m, _)| *m == f.message) {
                Some((_, n)) => *n += 1,
                None => s.messages.push((f.message.clone(), 1)),
            }
        }
        s.messages.sort_by_key(|m| std::cmp::Reverse(m.1));
        s
    }

    /// `16 of 20 requests failed: transport 12, incomplete 4` (None without failures).
    pub fn line(&self) -> Option<String> {
        (self.failed > 0).then(|| {
            let kinds: Vec<String> = self
                .by_kind
                .iter()
                .map(|(k, n)| format!("{} {n}", k.as_str()))
                .collect();
            format!(
                "{} of {} requests failed: {}",
                self.failed,
                self.total,
                kinds.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pd_common::bench::{MetricName, MetricStats};

    #[test]
    fn failures_are_counted_per_kind_and_message() {
        use pd_common::bench::Failure;
        let f = |k, m: &str| RequestOutcome {
            failure: Some(Failure::new(k, m)),
            ..Default::default()
        };
        let outs = vec![
            RequestOutcome::default(),
            f(FailureKind::Transport, "reset"),
            f(FailureKind::Http, "HTTP 500"),
            f(FailureKind::Transport, "reset"),
        ];
        let s = FailureSummary::of(&outs);
        assert_eq!(
            s.line().unwrap(),
            "3 of 4 requests failed: transport 2, http 1"
        );
        assert_eq!(s.messages[0], ("reset".to_string(), 2));
        assert_eq!(FailureSummary::of(&outs[..1]).line(), None);
    }

    #[test]
    fn layout_matches_vllm() {
        let m = PointMetrics {
            completed: 80,
            duration: 12.3255,
            max_concurrent_requests: 32,
            blocks: vec![(
                MetricName::Ttft,
                MetricStats {
                    mean: 239.264,
                    median: 185.9,
                    std: 1.0,
                    percentiles: vec![(99.0, 639.4)],
                },
            )],
            ..Default::default()
        };
        let s = render(
            &SummaryHeader {
                max_concurrency: Some(16),
                rate: f64::INFINITY,
            },
            &m,
            None,
        );
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[0],
            "============ Serving Benchmark Result ============"
        );
        assert_eq!(
            lines[1],
            "Successful requests:                     80        "
        );
        assert_eq!(
            lines[3],
            "Maximum request concurrency:             16        "
        );
        assert_eq!(
            lines[4],
            "Benchmark duration (s):                  12.33     "
        );
        assert!(s.contains("---------------Time to First Token----------------\n"));
        assert!(s.contains("P99 TTFT (ms):                           639.40    \n"));
        assert!(!s.contains("Request rate configured"));
    }

    fn row(file: &str, tpot: [f64; 3], status: PointStatus) -> SweepRow {
        let runs: Vec<BenchResult> = tpot
            .iter()
            .map(|t| {
                serde_json::from_value(json!({
                    "request_rate": "inf", "max_concurrency": 4, "duration": 10.0,
                    "completed": 20, "failed": 0, "total_input_tokens": 1000,
                    "total_output_tokens": 100, "request_throughput": 2.0,
                    "output_throughput": 10.0 * t, "total_token_throughput": 110.0,
                    "median_ttft_ms": 50.0, "median_tpot_ms": t,
                    "pd_lab": {"tool": "run-bm", "sweep": "concurrency", "sweep_value": 4.0,
                               "server_metrics": {"kv_cache_usage_max": 0.25, "num_preemptions": 3}}
                }))
                .unwrap()
            })
            .collect();
        let files: Vec<String> = (1..=3).map(|k| format!("conc4-{k}.json")).collect();
        SweepRow {
            file: file.into(),
            run_files: files.clone(),
            status,
            result: pd_common::repeats::aggregate_with_repeats(&runs, files).unwrap(),
        }
    }

    #[test]
    fn sweep_table_and_json() {
        let rows = [
            row("conc4.json", [10.0, 12.0, 14.0], PointStatus::Measured),
            row("conc8.json", [20.0, 20.0, 20.0], PointStatus::Skipped),
        ];
        let t = render_sweep_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains(" Sweep summary "), "{t}");
        assert!(lines[1].starts_with("point"), "{t}");
        // Median TPOT 12 ± 4.97 (t(0.975, 2) · 2 / √3), KV 25 %, 3 preemptions.
        assert!(lines[2].starts_with("conc4 "), "{t}");
        assert!(lines[2].contains("12.00 ±4.97"), "{t}");
        assert!(lines[2].contains("25.0"), "{t}");
        assert!(lines[3].starts_with("conc8 (skipped)"), "{t}");
        assert!(lines[3].contains("20.00 ±0.00"), "{t}");
        assert!(t.contains("95 % confidence interval"));
        let j = sweep_json("/r", SweepKind::Concurrency, 3, false, &rows);
        assert_eq!(j["repeat"], 3);
        assert_eq!(j["points"][0]["point"], "conc4");
        assert_eq!(j["points"][0]["runs"], 3);
        assert_eq!(j["points"][0]["median_tpot_ms"], 12.0);
        let ci = j["points"][0]["ci95"]["median_tpot_ms"].as_array().unwrap();
        assert!((ci[1].as_f64().unwrap() - 16.968_275).abs() < 1e-5);
        assert_eq!(j["points"][1]["status"], "skipped");
        assert_eq!(j["points"][0]["server_metrics"]["num_preemptions"], 3);
    }
}
