//! The console summary of a point, in `vllm bench serve`'s layout (spec G.10), followed
//! by pd-lab's extra lines.

use std::fmt::Write;

use pd_common::result::percentile_word;

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
}
