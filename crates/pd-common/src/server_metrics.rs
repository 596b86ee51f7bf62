//! The server's own view of a sweep point, from its Prometheus metrics (vLLM's names):
//! the series file `P.metrics.csv` and the summary `pd_lab.server_metrics` of `P.json`.
//!
//! run-bm scrapes the server before the point (`before`), every few seconds while it runs
//! (`during`) and once after it (`after`). Every scrape keeps the samples of vLLM's
//! namespace ([`is_captured`]): names starting with `vllm:` (a vLLM server, the simulator),
//! or `ray_vllm_` / `ray_vllm:` (vLLM's metrics exported through Ray's metrics agent,
//! where `:` becomes `_`), without histogram buckets.
//!
//! The file is long format, one sample per row: `t_s,phase,metric,labels,value`
//! ([`MetricsRow`]), `t_s` in seconds from the point's start (negative before it).
//!
//! The summary ([`summarize`]) combines label sets (engines, replicas, prefill and
//! decode instances) per scrape:
//! * gauges over the `during` scrapes: KV-cache usage (fraction 0–1, mean over label sets;
//!   `kv_cache_usage_perc`, else `gpu_cache_usage_perc`), running and waiting requests
//!   (sums over label sets): `<name>_mean` and `<name>_max` over the scrapes;
//! * counters as deltas `after − before` summed over label sets (a label set that appears
//!   only after the point counts from 0): preemptions, prompt and generation tokens,
//!   finished requests, prefix-cache queries and hits (tokens; their ratio is
//!   `prefix_cache_hit_rate`), and vLLM's NIXL KV-transfer metrics (transfers, mean
//!   transfer and post time, bytes, failures, expired requests). A counter that went down
//!   (the server restarted) gives no delta and is listed under `counter_resets`.
//!
//! A metric the server does not expose is absent from the summary, never zero.
//!
//! Exporters that publish with a lag (Ray's metrics agent reports every few seconds) are
//! handled by the writer: run-bm takes the `after` scrape once the server's
//! `generation_tokens` counter has caught up with the tokens its client received
//! ([`counter_total`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::csvfile;
use crate::error::{Error, Result};
use crate::prometheus::Sample;

/// Suffix of a point's server-metrics file (`conc16.metrics.csv`).
pub const METRICS_CSV_SUFFIX: &str = ".metrics.csv";

/// `conc16.json` → `conc16.metrics.csv`.
pub fn metrics_csv_name(result_file: &str) -> String {
    let stem = result_file.strip_suffix(".json").unwrap_or(result_file);
    format!("{stem}{METRICS_CSV_SUFFIX}")
}

/// When a scrape was taken, relative to the point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Before,
    During,
    After,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::During => "during",
            Phase::After => "after",
        }
    }
}

/// One scrape: when, and the captured samples (of every source scraped at that instant).
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape {
    /// Seconds from the point's start (negative before it).
    pub t_s: f64,
    pub phase: Phase,
    pub samples: Vec<Sample>,
}

/// One row of `P.metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    pub t_s: f64,
    pub phase: Phase,
    pub metric: String,
    pub labels: String,
    pub value: f64,
}

/// The metric name without vLLM's `vllm:` prefix or Ray's `ray_vllm:` / `ray_vllm_`
/// export prefixes (`vllm_` too, as some exporters write it).
pub fn base_name(metric: &str) -> &str {
    for p in ["ray_vllm:", "ray_vllm_", "vllm:", "vllm_"] {
        if let Some(rest) = metric.strip_prefix(p) {
            return rest;
        }
    }
    metric
}

/// Whether a sample belongs in the metrics file: vLLM's namespace, not a histogram bucket
/// or a `_created` timestamp.
pub fn is_captured(metric: &str) -> bool {
    base_name(metric) != metric && !metric.ends_with("_bucket") && !metric.ends_with("_created")
}

/// The rows of `scrapes`, in scrape order.
pub fn rows(scrapes: &[Scrape]) -> Vec<MetricsRow> {
    scrapes
        .iter()
        .flat_map(|s| {
            s.samples.iter().map(move |x| MetricsRow {
                t_s: s.t_s,
                phase: s.phase,
                metric: x.name.clone(),
                labels: x.labels_text(),
                value: x.value,
            })
        })
        .collect()
}

/// Write `P.metrics.csv` atomically (a header even without rows). Non-finite values are
/// written as Python/Prometheus spell them (`NaN`, `inf`).
pub fn write_metrics_csv(path: &Path, scrapes: &[Scrape]) -> Result<()> {
    let csv_err = |source| Error::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["t_s", "phase", "metric", "labels", "value"])
        .map_err(csv_err)?;
    for r in rows(scrapes) {
        w.write_record([
            format!("{:.3}", r.t_s),
            r.phase.as_str().to_string(),
            r.metric,
            r.labels,
            r.value.to_string(),
        ])
        .map_err(csv_err)?;
    }
    csvfile::write_atomic(path, w)
}

/// Read `P.metrics.csv` (strict: every row must parse).
pub fn read_metrics_csv(path: &Path) -> Result<Vec<MetricsRow>> {
    csvfile::read_rows(path)
}

/// Samples of the canonical metric `base` (a [`base_name`] without the `_total` suffix of
/// counters): when a page has both `x_total` and `x` (Ray exports a counter both ways),
/// only the `_total` form is used.
fn samples_of<'a>(samples: &'a [Sample], base: &str) -> Vec<&'a Sample> {
    let total: Vec<&Sample> = samples
        .iter()
        .filter(|s| base_name(&s.name).strip_suffix("_total") == Some(base))
        .collect();
    if !total.is_empty() {
        return total;
    }
    samples
        .iter()
        .filter(|s| base_name(&s.name) == base)
        .collect()
}

/// Sum of a metric's samples by label set (first of several names wins per label set).
fn by_labels(samples: &[&Sample]) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for s in samples {
        if s.value.is_finite() {
            m.entry(s.labels_text()).or_insert(s.value);
        }
    }
    m
}

/// A counter's change over a point.
enum Delta {
    By(f64),
    /// It went down: the server restarted.
    Reset,
}

/// The value of counter `base` (canonical name, e.g. `generation_tokens`) summed over its
/// label sets; `None` when the samples do not have it.
pub fn counter_total(samples: &[Sample], base: &str) -> Option<f64> {
    let m = by_labels(&samples_of(samples, base));
    (!m.is_empty()).then(|| m.values().sum())
}

/// `after − before` summed over label sets (`None`: not exposed).
fn counter_delta(before: &[Sample], after: &[Sample], base: &str) -> Option<Delta> {
    let a = by_labels(&samples_of(after, base));
    if a.is_empty() {
        return None;
    }
    let b = by_labels(&samples_of(before, base));
    let mut total = 0.0;
    for (labels, va) in &a {
        let vb = b.get(labels).copied().unwrap_or(0.0);
        if *va + 1e-9 < vb {
            return Some(Delta::Reset);
        }
        total += va - vb;
    }
    Some(Delta::By(total))
}

fn num(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        return Value::from(v as i64);
    }
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// Counters summarised as deltas: (summary key, canonical names tried in order).
const COUNTERS: [(&str, &[&str]); 6] = [
    ("num_preemptions", &["num_preemptions"]),
    ("prompt_tokens", &["prompt_tokens"]),
    ("generation_tokens", &["generation_tokens"]),
    ("request_success", &["request_success"]),
    (
        "prefix_cache_queries",
        &["prefix_cache_queries", "gpu_prefix_cache_queries"],
    ),
    (
        "prefix_cache_hits",
        &["prefix_cache_hits", "gpu_prefix_cache_hits"],
    ),
];

/// vLLM's NIXL counters (`vllm:nixl_*_total`).
const NIXL_COUNTERS: [&str; 3] = [
    "nixl_num_failed_transfers",
    "nixl_num_failed_notifications",
    "nixl_num_kv_expired_reqs",
];

/// Gauges summarised over the `during` scrapes: (summary key, canonical names tried in
/// order, sum over label sets (else mean)).
const GAUGES: [(&str, &[&str], bool); 3] = [
    (
        "kv_cache_usage",
        &["kv_cache_usage_perc", "gpu_cache_usage_perc"],
        false,
    ),
    ("num_requests_running", &["num_requests_running"], true),
    ("num_requests_waiting", &["num_requests_waiting"], true),
];

/// The summary of a point's scrapes for `pd_lab.server_metrics` (see the module doc);
/// `None` when no scrape captured anything.
pub fn summarize(scrapes: &[Scrape]) -> Option<Map<String, Value>> {
    if scrapes.iter().all(|s| s.samples.is_empty()) {
        return None;
    }
    let mut out = Map::new();
    // Gauges over the scrapes taken while the point ran.
    let during: Vec<&Scrape> = scrapes
        .iter()
        .filter(|s| s.phase == Phase::During && !s.samples.is_empty())
        .collect();
    for (key, names, sum) in GAUGES {
        let per_scrape: Vec<f64> = names
            .iter()
            .map(|name| {
                during
                    .iter()
                    .filter_map(|s| {
                        let v = by_labels(&samples_of(&s.samples, name));
                        (!v.is_empty()).then(|| {
                            let total: f64 = v.values().sum();
                            if sum {
                                total
                            } else {
                                total / v.len() as f64
                            }
                        })
                    })
                    .collect::<Vec<f64>>()
            })
            .find(|v| !v.is_empty())
            .unwrap_or_default();
        if per_scrape.is_empty() {
            continue;
        }
        let mean = per_scrape.iter().sum::<f64>() / per_scrape.len() as f64;
        let max = per_scrape.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out.insert(format!("{key}_mean"), num(mean));
        out.insert(format!("{key}_max"), num(max));
    }
    // Counters: after − before.
    let before = scrapes.iter().rev().find(|s| s.phase == Phase::Before);
    let after = scrapes.iter().find(|s| s.phase == Phase::After);
    let mut resets: BTreeSet<String> = BTreeSet::new();
    if let (Some(b), Some(a)) = (before, after) {
        let (b, a) = (&b.samples[..], &a.samples[..]);
        let mut delta = |key: &str, base: &str, out: &mut Map<String, Value>| -> Option<f64> {
            match counter_delta(b, a, base)? {
                Delta::By(d) => {
                    out.insert(key.to_string(), num(d));
                    Some(d)
                }
                Delta::Reset => {
                    resets.insert(base.to_string());
                    None
                }
            }
        };
        let mut got: BTreeMap<&str, f64> = BTreeMap::new();
        for (key, names) in COUNTERS {
            if let Some(d) = names.iter().find_map(|n| delta(key, n, &mut out)) {
                got.insert(key, d);
            }
        }
        if let (Some(h), Some(q)) = (
            got.get("prefix_cache_hits"),
            got.get("prefix_cache_queries"),
        ) {
            if *q > 0.0 {
                out.insert("prefix_cache_hit_rate".into(), num(h / q));
            }
        }
        // NIXL histograms: transfers and mean times from _sum/_count.
        let mut nixl = Map::new();
        let xfers = delta("transfers", "nixl_xfer_time_seconds_count", &mut nixl);
        for (key, base, scale) in [
            ("xfer_time_mean_ms", "nixl_xfer_time_seconds", 1e3),
            ("post_time_mean_ms", "nixl_post_time_seconds", 1e3),
            ("bytes_per_transfer", "nixl_bytes_transferred", 1.0),
            ("descriptors_per_transfer", "nixl_num_descriptors", 1.0),
        ] {
            let mut scratch = Map::new();
            let sum = delta("sum", &format!("{base}_sum"), &mut scratch);
            let count = delta("count", &format!("{base}_count"), &mut scratch);
            if let (Some(s), Some(c)) = (sum, count) {
                if base == "nixl_bytes_transferred" {
                    nixl.insert("bytes_transferred".into(), num(s));
                }
                if c > 0.0 {
                    nixl.insert(key.into(), num(s / c * scale));
                }
            }
        }
        for base in NIXL_COUNTERS {
            let key = base.trim_start_matches("nixl_num_");
            delta(key, base, &mut nixl);
        }
        if xfers.is_some() || !nixl.is_empty() {
            out.insert("nixl".into(), Value::Object(nixl));
        }
    }
    if !resets.is_empty() {
        out.insert(
            "counter_resets".into(),
            Value::Array(resets.into_iter().map(Value::String).collect()),
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::parse;

    fn scrape(t_s: f64, phase: Phase, page: &str) -> Scrape {
        Scrape {
            t_s,
            phase,
            samples: parse(page)
                .samples
                .into_iter()
                .filter(|s| is_captured(&s.name))
                .collect(),
        }
    }

    #[test]
    fn captured_names() {
        for yes in [
            "vllm:num_requests_running",
            "ray_vllm_num_requests_running",
            "ray_vllm:prompt_tokens_total",
            "vllm:nixl_xfer_time_seconds_sum",
        ] {
            assert!(is_captured(yes), "{yes}");
        }
        for no in [
            "vllm:time_to_first_token_seconds_bucket",
            "vllm:prompt_tokens_created",
            "process_cpu_seconds_total",
            "ray_serve_num_requests",
            "pdlab_sim_uptime_seconds",
        ] {
            assert!(!is_captured(no), "{no}");
        }
        assert_eq!(metrics_csv_name("conc16-2.json"), "conc16-2.metrics.csv");
    }

    #[test]
    fn deltas_gauges_and_nixl_by_hand() {
        let before = "vllm:prompt_tokens_total{engine=\"0\"} 100\n\
             vllm:prompt_tokens_total{engine=\"1\"} 50\n\
             vllm:generation_tokens_total{engine=\"0\"} 10\n\
             vllm:num_preemptions_total{engine=\"0\"} 2\n\
             vllm:prefix_cache_queries_total{engine=\"0\"} 1000\n\
             vllm:prefix_cache_hits_total{engine=\"0\"} 100\n\
             vllm:nixl_xfer_time_seconds_sum{engine=\"0\"} 1.0\n\
             vllm:nixl_xfer_time_seconds_count{engine=\"0\"} 10\n\
             vllm:nixl_bytes_transferred_sum{engine=\"0\"} 1000\n\
             vllm:nixl_bytes_transferred_count{engine=\"0\"} 10\n\
             vllm:nixl_num_failed_transfers_total{engine=\"0\"} 0\n\
             vllm:num_requests_running{engine=\"0\"} 0\n";
        let during1 = "vllm:kv_cache_usage_perc{engine=\"0\"} 0.2\n\
             vllm:kv_cache_usage_perc{engine=\"1\"} 0.4\n\
             vllm:gpu_cache_usage_perc{engine=\"0\"} 0.9\n\
             vllm:num_requests_running{engine=\"0\"} 3\n\
             vllm:num_requests_running{engine=\"1\"} 5\n\
             vllm:num_requests_waiting{engine=\"0\"} 1\n";
        let during2 = "vllm:kv_cache_usage_perc{engine=\"0\"} 0.6\n\
             vllm:kv_cache_usage_perc{engine=\"1\"} 0.8\n\
             vllm:num_requests_running{engine=\"0\"} 4\n\
             vllm:num_requests_running{engine=\"1\"} 4\n\
             vllm:num_requests_waiting{engine=\"0\"} 0\n";
        let after = "vllm:prompt_tokens_total{engine=\"0\"} 1100\n\
             vllm:prompt_tokens_total{engine=\"1\"} 550\n\
             vllm:prompt_tokens_total{engine=\"2\"} 7\n\
             vllm:generation_tokens_total{engine=\"0\"} 110\n\
             vllm:num_preemptions_total{engine=\"0\"} 2\n\
             vllm:prefix_cache_queries_total{engine=\"0\"} 2000\n\
             vllm:prefix_cache_hits_total{engine=\"0\"} 350\n\
             vllm:nixl_xfer_time_seconds_sum{engine=\"0\"} 1.5\n\
             vllm:nixl_xfer_time_seconds_count{engine=\"0\"} 14\n\
             vllm:nixl_bytes_transferred_sum{engine=\"0\"} 5000\n\
             vllm:nixl_bytes_transferred_count{engine=\"0\"} 14\n\
             vllm:nixl_num_failed_transfers_total{engine=\"0\"} 1\n";
        let scrapes = [
            scrape(-0.2, Phase::Before, before),
            scrape(1.0, Phase::During, during1),
            scrape(3.0, Phase::During, during2),
            scrape(4.1, Phase::After, after),
        ];
        let s = summarize(&scrapes).unwrap();
        let f = |k: &str| s[k].as_f64().unwrap();
        // Prompt tokens: (1100 − 100) + (550 − 50) + (7 − 0, a new label set).
        assert_eq!(f("prompt_tokens"), 1507.0);
        assert_eq!(
            counter_total(&scrapes[3].samples, "prompt_tokens"),
            Some(1657.0)
        );
        assert_eq!(counter_total(&scrapes[1].samples, "prompt_tokens"), None);
        assert_eq!(f("generation_tokens"), 100.0);
        assert_eq!(f("num_preemptions"), 0.0);
        assert_eq!(f("prefix_cache_queries"), 1000.0);
        assert_eq!(f("prefix_cache_hits"), 250.0);
        assert!((f("prefix_cache_hit_rate") - 0.25).abs() < 1e-12);
        // KV usage: mean over engines per scrape (0.3, 0.7), kv_cache_usage_perc preferred.
        assert!((f("kv_cache_usage_mean") - 0.5).abs() < 1e-12);
        assert!((f("kv_cache_usage_max") - 0.7).abs() < 1e-12);
        // Running: sum over engines per scrape (8, 8); waiting (1, 0).
        assert_eq!(
            (
                f("num_requests_running_mean"),
                f("num_requests_running_max")
            ),
            (8.0, 8.0)
        );
        assert_eq!(
            (
                f("num_requests_waiting_mean"),
                f("num_requests_waiting_max")
            ),
            (0.5, 1.0)
        );
        let nixl = s["nixl"].as_object().unwrap();
        assert_eq!(nixl["transfers"], 4);
        // 0.5 s over 4 transfers = 125 ms; 4000 bytes over 4 = 1000.
        assert!((nixl["xfer_time_mean_ms"].as_f64().unwrap() - 125.0).abs() < 1e-9);
        assert_eq!(nixl["bytes_transferred"], 4000);
        assert_eq!(nixl["bytes_per_transfer"], 1000);
        assert_eq!(nixl["failed_transfers"], 1);
        assert!(!nixl.contains_key("post_time_mean_ms"));
        assert!(!s.contains_key("request_success"), "absent, not zero");
        assert!(!s.contains_key("counter_resets"));
    }

    #[test]
    fn ray_names_resets_and_empty_pages() {
        // Ray exports a counter both as `_total` and as a gauge: counted once.
        let before = "ray_vllm_prompt_tokens_total{ReplicaId=\"a\"} 10\n\
                      ray_vllm_prompt_tokens{ReplicaId=\"a\"} 10\n\
                      ray_vllm_generation_tokens_total{ReplicaId=\"a\"} 50\n\
                      ray_vllm_gpu_prefix_cache_queries_total{ReplicaId=\"a\"} 5\n";
        let after = "ray_vllm_prompt_tokens_total{ReplicaId=\"a\"} 30\n\
                     ray_vllm_prompt_tokens{ReplicaId=\"a\"} 30\n\
                     ray_vllm_generation_tokens_total{ReplicaId=\"a\"} 5\n\
                     ray_vllm_gpu_prefix_cache_queries_total{ReplicaId=\"a\"} 9\n\
                     ray_vllm_num_requests_running{ReplicaId=\"a\"} 0\n";
        let s = summarize(&[
            scrape(-1.0, Phase::Before, before),
            scrape(9.0, Phase::After, after),
        ])
        .unwrap();
        assert_eq!(s["prompt_tokens"], 20);
        assert_eq!(s["prefix_cache_queries"], 4);
        assert!(!s.contains_key("prefix_cache_hit_rate"));
        assert!(!s.contains_key("generation_tokens"), "went down: no delta");
        assert_eq!(
            s["counter_resets"],
            serde_json::json!(["generation_tokens"])
        );
        assert!(
            !s.contains_key("num_requests_running_mean"),
            "no during scrape"
        );
        assert!(summarize(&[scrape(0.0, Phase::Before, "other 1\n")]).is_none());
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn csv_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("conc4.metrics.csv");
        let scrapes = [
            scrape(
                -0.25,
                Phase::Before,
                "vllm:num_requests_running{engine=\"0\",model_name=\"m,x\"} 0\n",
            ),
            scrape(
                1.5,
                Phase::During,
                "vllm:kv_cache_usage_perc{engine=\"0\"} 0.125\n",
            ),
        ];
        write_metrics_csv(&p, &scrapes).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("t_s,phase,metric,labels,value\n"),
            "{text}"
        );
        let rows = read_metrics_csv(&p).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].t_s, -0.25);
        assert_eq!(rows[0].phase, Phase::Before);
        assert_eq!(rows[0].labels, "engine=\"0\",model_name=\"m,x\"");
        assert_eq!(rows[1].metric, "vllm:kv_cache_usage_perc");
        assert_eq!(rows[1].value, 0.125);
        write_metrics_csv(&p, &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "t_s,phase,metric,labels,value\n"
        );
    }
}
