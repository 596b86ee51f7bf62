//! One result file per sweep point: a superset of `vllm bench serve --save-result` JSON.
//!
//! Every key `vllm bench serve` writes keeps its name, type and meaning (see
//! `docs/FORMATS.md`), so vLLM's own tooling and the original viz.py read our files and
//! we read theirs. pd-lab's own data lives under the extra key `pd_lab` (and the
//! top-level `interrupted` flag of a partial point). Statistic keys (`mean_ttft_ms`,
//! `p99_itl_ms`, …) and any key this type does not know are kept, in order, in
//! [`BenchResult::rest`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::bench::PointMetrics;
use crate::deployment::{DeployMode, ServingBackend};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::workload::{SweepKind, Workload};

/// `request_rate`: a number, or the string `"inf"` for "all at once".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RequestRate {
    Finite(f64),
    Inf,
}

impl RequestRate {
    pub fn from_f64(v: f64) -> Self {
        if v.is_infinite() {
            RequestRate::Inf
        } else {
            RequestRate::Finite(v)
        }
    }
    pub fn as_f64(self) -> f64 {
        match self {
            RequestRate::Finite(v) => v,
            RequestRate::Inf => f64::INFINITY,
        }
    }
    pub fn is_finite(self) -> bool {
        matches!(self, RequestRate::Finite(_))
    }
}

impl Serialize for RequestRate {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            RequestRate::Finite(v) => s.serialize_f64(*v),
            RequestRate::Inf => s.serialize_str("inf"),
        }
    }
}

impl<'de> Deserialize<'de> for RequestRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RequestRate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or \"inf\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<RequestRate, E> {
                Ok(RequestRate::from_f64(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<RequestRate, E> {
                Ok(RequestRate::Finite(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<RequestRate, E> {
                Ok(RequestRate::Finite(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<RequestRate, E> {
                match v.trim().to_ascii_lowercase().as_str() {
                    "inf" | "infinity" => Ok(RequestRate::Inf),
                    other => other
                        .parse::<f64>()
                        .map(RequestRate::from_f64)
                        .map_err(|_| E::custom(format!("invalid request_rate '{v}'"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One sweep point's results, as written by `vllm bench serve --save-result` plus our extras.
///
/// Field order is the order `vllm bench serve` writes them (v0.11.1+ layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub endpoint_type: String,
    #[serde(default)]
    pub backend: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub model_id: String,
    #[serde(default)]
    pub tokenizer_id: Option<String>,
    #[serde(default)]
    pub num_prompts: u64,
    pub request_rate: RequestRate,
    #[serde(default = "one")]
    pub burstiness: f64,
    #[serde(default)]
    pub max_concurrency: Option<u64>,
    pub duration: f64,
    pub completed: u64,
    /// Absent in files from vLLM 0.11.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<u64>,
    pub total_input_tokens: u64,
    pub total_output_tokens: u64,
    pub request_throughput: f64,
    #[serde(default)]
    pub request_goodput: Option<f64>,
    pub output_throughput: f64,
    pub total_token_throughput: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_lens: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_lens: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfts: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itls: Option<Vec<Vec<f64>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latencies: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_times: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_times: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_texts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_requests: Option<u64>,
    /// True when the point was cut short (Ctrl-C): its metrics cover what finished.
    #[serde(default, skip_serializing_if = "is_false")]
    pub interrupted: bool,
    /// pd-lab's own data (absent in plain `vllm bench serve` files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pd_lab: Option<PdLabExtra>,
    /// Statistic keys (`mean_ttft_ms`, `median_tpot_ms`, `p99_itl_ms`, …) and any other
    /// key, in file order.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

fn one() -> f64 {
    1.0
}

/// pd-lab's extra data in a result file (key `pd_lab`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PdLabExtra {
    /// Tool that wrote the file and its version, e.g. `run-bm 0.1.0`.
    #[serde(default)]
    pub tool: String,
    #[serde(default)]
    pub tool_version: String,
    /// `sim` when the results came from the simulated cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_backend: Option<ServingBackend>,
    /// Canonical deployment label (`4xtp2`, `p1xtp2-d2xtp2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_mode: Option<DeployMode>,
    /// GPUs of the deployment (for per-node normalisation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_gpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_per_node: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepKind>,
    /// Concurrency or request rate of this point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_value: Option<f64>,
    /// Anything else run-bm records (token-accurate ITL statistics, schedule delay,
    /// achieved rate, exact peak concurrency, …); see docs/FORMATS.md.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl BenchResult {
    /// A result holding what the point's metrics give: the aggregate fields and every
    /// statistic key (`mean_ttft_ms`…) in the order vLLM writes them. The caller fills the
    /// rest (header, per-request lists, `pd_lab`) with `..BenchResult::from_metrics(m)`.
    pub fn from_metrics(m: &PointMetrics) -> Self {
        let mut r = BenchResult {
            date: String::new(),
            endpoint_type: String::new(),
            backend: String::new(),
            label: None,
            model_id: String::new(),
            tokenizer_id: None,
            num_prompts: 0,
            request_rate: RequestRate::Inf,
            burstiness: 1.0,
            max_concurrency: None,
            duration: m.duration,
            completed: m.completed,
            failed: Some(m.failed),
            total_input_tokens: m.total_input_tokens,
            total_output_tokens: m.total_output_tokens,
            request_throughput: m.request_throughput,
            request_goodput: m.request_goodput,
            output_throughput: m.output_throughput,
            total_token_throughput: m.total_token_throughput,
            input_lens: None,
            output_lens: None,
            ttfts: None,
            itls: None,
            latencies: None,
            start_times: None,
            queue_times: None,
            generated_texts: None,
            errors: None,
            max_output_tokens_per_s: Some(m.max_output_tokens_per_s),
            max_concurrent_requests: Some(m.max_concurrent_requests),
            interrupted: false,
            pd_lab: None,
            rest: Map::new(),
        };
        for (k, v) in m.stat_keys() {
            r.set_stat(k, v);
        }
        r
    }

    /// Parse a result from JSON text.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        serde_json::from_str(text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Read one result file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = fsutil::read_to_string(path)?;
        Self::from_json_str(&text, path)
    }

    /// Serialize (one line, like `vllm bench serve`).
    pub fn to_json_string(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|source| Error::Json {
            path: Default::default(),
            source,
        })
    }

    /// Write the file atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = self.to_json_string()?;
        fsutil::write_atomic(path, text.as_bytes())
    }

    /// A statistic key such as `median_ttft_ms` (`None` if absent or not a number).
    pub fn stat(&self, key: &str) -> Option<f64> {
        self.rest.get(key).and_then(Value::as_f64)
    }

    /// Set a statistic key (appended in insertion order if new).
    pub fn set_stat(&mut self, key: impl Into<String>, value: f64) {
        let v = serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.rest.insert(key.into(), v);
    }

    pub fn median_ttft_ms(&self) -> Option<f64> {
        self.stat("median_ttft_ms")
    }
    pub fn median_tpot_ms(&self) -> Option<f64> {
        self.stat("median_tpot_ms")
    }
    pub fn median_itl_ms(&self) -> Option<f64> {
        self.stat("median_itl_ms")
    }

    /// The sweep coordinate: (`Concurrency`, max_concurrency) when a concurrency limit
    /// was set, else (`RequestRate`, request_rate).
    pub fn sweep_point(&self) -> (SweepKind, f64) {
        if let Some(extra) = &self.pd_lab {
            if let (Some(kind), Some(v)) = (extra.sweep, extra.sweep_value) {
                return (kind, v);
            }
        }
        match (self.max_concurrency, self.request_rate) {
            (_, RequestRate::Finite(r)) if r < 1e8 => (SweepKind::RequestRate, r),
            (Some(c), _) => (SweepKind::Concurrency, c as f64),
            (None, r) => (SweepKind::RequestRate, r.as_f64()),
        }
    }

    /// Total GPUs recorded in the file by pd-lab, if any.
    pub fn total_gpus(&self) -> Option<u32> {
        self.pd_lab.as_ref().and_then(|x| x.total_gpus)
    }
}

/// Statistics of a list of samples, numpy semantics (see `docs/FORMATS.md`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Summary {
    pub mean: f64,
    pub median: f64,
    /// Population standard deviation (ddof = 0).
    pub std: f64,
}

/// numpy's default (linear, type 7) percentile of *sorted* values; 0.0 when empty.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let h = (n - 1) as f64 * (p / 100.0).clamp(0.0, 1.0);
            let lo = h.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
        }
    }
}

/// Mean, median and population std of `values` (any order); all 0.0 when empty.
pub fn summarize(values: &[f64]) -> Summary {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    summarize_with_sorted(values, &sorted)
}

/// [`summarize`] when the caller also has `values` sorted (saves the sort). The mean and
/// std are summed in the original order, as numpy does.
pub fn summarize_with_sorted(values: &[f64], sorted: &[f64]) -> Summary {
    if values.is_empty() {
        return Summary::default();
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    Summary {
        mean,
        median: percentile_sorted(sorted, 50.0),
        std: var.sqrt(),
    }
}

/// The name of a percentile key: `99.0` → `p99`, `99.9` → `p99.9`.
pub fn percentile_word(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("p{}", p as i64)
    } else {
        format!("p{p}")
    }
}

/// Statistics keyed by name, kept for result writers that want a sorted map.
pub type StatMap = BTreeMap<String, f64>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_rate_serde() {
        assert_eq!(serde_json::to_string(&RequestRate::Inf).unwrap(), "\"inf\"");
        assert_eq!(
            serde_json::to_string(&RequestRate::Finite(1e9)).unwrap(),
            "1000000000.0"
        );
        let r: RequestRate = serde_json::from_str("\"inf\"").unwrap();
        assert_eq!(r, RequestRate::Inf);
        let r: RequestRate = serde_json::from_str("4").unwrap();
        assert_eq!(r, RequestRate::Finite(4.0));
    }

    #[test]
    fn numpy_statistics() {
        let v = [1.0, 2.0, 3.0, 4.0];
        let s = summarize(&v);
        assert_eq!(s.mean, 2.5);
        assert_eq!(s.median, 2.5);
        assert!((s.std - 1.118033988749895).abs() < 1e-12);
        assert!((percentile_sorted(&v, 99.0) - 3.97).abs() < 1e-12);
        assert_eq!(percentile_sorted(&[], 99.0), 0.0);
        assert_eq!(summarize(&[]), Summary::default());
        assert_eq!(percentile_word(99.0), "p99");
        assert_eq!(percentile_word(99.9), "p99.9");
    }
}
