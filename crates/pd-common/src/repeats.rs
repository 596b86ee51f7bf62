//! Repeated runs of a sweep point (`run-bm --repeat K`): run k of point `P` is `P-<k>.json`
//! ([`crate::naming::run_file_name`]); the aggregate `P.json` is a normal result whose values
//! are the means over the runs, with
//! `pd_lab.repeats = {"count": K, "files": [...], "std": {key: v}, "ci95": {key: [lo, hi]}}`
//! for every headline metric ([`headline_values`]): the sample standard deviation and the
//! 95 % confidence interval of the mean (Student t, K − 1 degrees of freedom,
//! [`crate::stats`]).
//!
//! run-bm writes aggregates with [`aggregate_with_repeats`]; viz reads `pd_lab.repeats`
//! with [`recorded`] and aggregates a directory of runs without an aggregate with
//! [`aggregate`], so both use one definition.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use crate::result::BenchResult;
use crate::stats::Stats;

/// The top-level metrics of a result that count as headline metrics (besides every
/// `*_ms` statistic key).
pub const HEADLINE_KEYS: [&str; 6] = [
    "duration",
    "request_throughput",
    "request_goodput",
    "output_throughput",
    "total_token_throughput",
    "max_output_tokens_per_s",
];

/// The statistics an aggregate file records under `pd_lab.repeats`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recorded {
    pub count: usize,
    pub files: Vec<String>,
    pub std: BTreeMap<String, f64>,
    pub ci95: BTreeMap<String, (f64, f64)>,
}

impl Recorded {
    /// The statistics of `runs` (in run order; `files` their file names): for every
    /// headline key present as a finite number in all runs, the sample standard deviation
    /// and the Student-t 95 % interval of the mean. Needs two runs for any statistic.
    pub fn of_runs(runs: &[BenchResult], files: Vec<String>) -> Recorded {
        let mut rec = Recorded {
            count: runs.len(),
            files,
            ..Recorded::default()
        };
        let Some(first) = runs.first() else {
            return rec;
        };
        for (key, _) in headline_values(first) {
            let values: Vec<f64> = runs
                .iter()
                .filter_map(|r| headline_value(r, &key))
                .collect();
            if values.len() != runs.len() {
                continue;
            }
            let Some(s) = Stats::of(&values) else {
                continue;
            };
            let (lo, hi) = s.ci95();
            if s.sd.is_finite() && lo.is_finite() && hi.is_finite() {
                rec.std.insert(key.clone(), s.sd);
                rec.ci95.insert(key, (lo, hi));
            }
        }
        rec
    }

    /// The `pd_lab.repeats` object.
    pub fn to_json(&self) -> Value {
        let num = |v: f64| Number::from_f64(v).map_or(Value::Null, Value::Number);
        let mut m = Map::new();
        m.insert("count".into(), Value::from(self.count as u64));
        m.insert(
            "files".into(),
            Value::Array(self.files.iter().cloned().map(Value::String).collect()),
        );
        m.insert(
            "std".into(),
            Value::Object(self.std.iter().map(|(k, v)| (k.clone(), num(*v))).collect()),
        );
        m.insert(
            "ci95".into(),
            Value::Object(
                self.ci95
                    .iter()
                    .map(|(k, (lo, hi))| (k.clone(), Value::Array(vec![num(*lo), num(*hi)])))
                    .collect(),
            ),
        );
        Value::Object(m)
    }
}

/// `pd_lab.repeats` of a result, when present and well-formed.
pub fn recorded(r: &BenchResult) -> Option<Recorded> {
    let rep = r.pd_lab.as_ref()?.other.get("repeats")?.as_object()?;
    let count = usize::try_from(rep.get("count")?.as_u64()?).ok()?;
    let files = rep
        .get("files")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let std = rep
        .get("std")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v)))
                .collect()
        })
        .unwrap_or_default();
    let ci95 = rep
        .get("ci95")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let a = v.as_array()?;
                    Some((k.clone(), (a.first()?.as_f64()?, a.get(1)?.as_f64()?)))
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Recorded {
        count,
        files,
        std,
        ci95,
    })
}

/// One headline value of a result (a [`HEADLINE_KEYS`] entry or a statistic key).
pub fn headline_value(r: &BenchResult, key: &str) -> Option<f64> {
    let v = match key {
        "duration" => Some(r.duration),
        "request_throughput" => Some(r.request_throughput),
        "request_goodput" => r.request_goodput,
        "output_throughput" => Some(r.output_throughput),
        "total_token_throughput" => Some(r.total_token_throughput),
        "max_output_tokens_per_s" => r.max_output_tokens_per_s,
        k if k.ends_with("_ms") => r.stat(k),
        _ => None,
    };
    v.filter(|v| v.is_finite())
}

/// The headline metrics of a result, in file order: the [`HEADLINE_KEYS`] it has, then
/// every statistic key (`mean_ttft_ms`, `p99_itl_ms`, …).
pub fn headline_values(r: &BenchResult) -> Vec<(String, f64)> {
    HEADLINE_KEYS
        .iter()
        .map(|k| k.to_string())
        .chain(r.rest.keys().filter(|k| k.ends_with("_ms")).cloned())
        .filter_map(|k| headline_value(r, &k).map(|v| (k, v)))
        .collect()
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// The mean of JSON values that are all numbers (a whole number stays an integer when
/// every value is one and the mean is whole); objects are averaged key by key (keys present
/// in all); anything else is kept when every run has the same value, else left out.
fn mean_json(values: &[&Value]) -> Option<Value> {
    let first = values.first()?;
    if values.iter().all(|v| v.is_number()) {
        let nums: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
        let m = mean(nums.iter().copied());
        let ints = values.iter().all(|v| v.is_u64() || v.is_i64());
        if ints && m.fract() == 0.0 && m.abs() < 9e15 {
            return Some(Value::from(m as i64));
        }
        return Number::from_f64(m).map(Value::Number);
    }
    if let Some(obj) = first.as_object() {
        if values.iter().all(|v| v.is_object()) {
            let mut out = Map::new();
            for k in obj.keys() {
                let all: Option<Vec<&Value>> = values.iter().map(|v| v.get(k)).collect();
                if let Some(v) = all.and_then(|all| mean_json(&all)) {
                    out.insert(k.clone(), v);
                }
            }
            return Some(Value::Object(out));
        }
    }
    values.iter().all(|v| v == first).then(|| (*first).clone())
}

/// The aggregate of `runs` (at least one): every number the runs share is replaced by
/// its mean over the runs (token counts rounded), `completed` and `failed` included, and
/// so are the numbers of `pd_lab`'s extra data (its `server_metrics` among them; other
/// values stay when all runs agree, else are left out, e.g. each run's metrics file).
/// Per-request lists are dropped (they belong to the runs). The date is the last run's;
/// the aggregate is interrupted when a run was.
pub fn aggregate(runs: &[BenchResult]) -> Option<BenchResult> {
    let first = runs.first()?;
    let mut agg = first.clone();
    let avg = |f: &dyn Fn(&BenchResult) -> f64| mean(runs.iter().map(f));
    if let Some(last) = runs.last() {
        agg.date = last.date.clone();
    }
    agg.duration = avg(&|r| r.duration);
    agg.completed = avg(&|r| r.completed as f64).round() as u64;
    agg.failed = first
        .failed
        .map(|_| avg(&|r| r.failed.unwrap_or(0) as f64).round() as u64);
    agg.total_input_tokens = avg(&|r| r.total_input_tokens as f64).round() as u64;
    agg.total_output_tokens = avg(&|r| r.total_output_tokens as f64).round() as u64;
    agg.request_throughput = avg(&|r| r.request_throughput);
    agg.output_throughput = avg(&|r| r.output_throughput);
    agg.total_token_throughput = avg(&|r| r.total_token_throughput);
    if runs.iter().all(|r| r.request_goodput.is_some()) {
        agg.request_goodput = first
            .request_goodput
            .map(|_| avg(&|r| r.request_goodput.unwrap_or(0.0)));
    }
    if runs.iter().all(|r| r.max_output_tokens_per_s.is_some()) {
        agg.max_output_tokens_per_s = first
            .max_output_tokens_per_s
            .map(|_| avg(&|r| r.max_output_tokens_per_s.unwrap_or(0.0)));
    }
    if runs.iter().all(|r| r.max_concurrent_requests.is_some()) {
        agg.max_concurrent_requests = first
            .max_concurrent_requests
            .map(|_| avg(&|r| r.max_concurrent_requests.unwrap_or(0) as f64).round() as u64);
    }
    agg.interrupted = runs.iter().any(|r| r.interrupted);
    for (key, v) in first.rest.iter() {
        if v.is_number() {
            let vals: Vec<f64> = runs.iter().filter_map(|r| r.stat(key)).collect();
            if vals.len() == runs.len() {
                agg.set_stat(key.clone(), mean(vals.into_iter()));
            }
        }
    }
    if let Some(extra) = agg.pd_lab.as_mut() {
        let keys: Vec<String> = extra.other.keys().cloned().collect();
        for key in keys {
            let all: Option<Vec<&Value>> = runs
                .iter()
                .map(|r| r.pd_lab.as_ref().and_then(|x| x.other.get(&key)))
                .collect();
            let Some(all) = all else { continue };
            match mean_json(&all) {
                Some(v) => {
                    extra.other.insert(key, v);
                }
                None => {
                    extra.other.remove(&key);
                }
            }
        }
    }
    agg.input_lens = None;
    agg.output_lens = None;
    agg.ttfts = None;
    agg.itls = None;
    agg.latencies = None;
    agg.start_times = None;
    agg.queue_times = None;
    agg.generated_texts = None;
    agg.errors = None;
    Some(agg)
}

/// The aggregate file of `runs` as run-bm writes it: [`aggregate`] plus
/// `pd_lab.repeats` ([`Recorded::of_runs`]); `files` are the runs' file names.
pub fn aggregate_with_repeats(runs: &[BenchResult], files: Vec<String>) -> Option<BenchResult> {
    let mut agg = aggregate(runs)?;
    let rec = Recorded::of_runs(runs, files);
    agg.pd_lab
        .get_or_insert_with(Default::default)
        .other
        .insert("repeats".into(), rec.to_json());
    Some(agg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(tpot: f64, thr: f64) -> BenchResult {
        serde_json::from_value(json!({
            "request_rate": "inf", "max_concurrency": 4, "duration": thr / 10.0,
            "completed": 20, "failed": 0, "total_input_tokens": 1000, "total_output_tokens": 100,
            "request_throughput": 2.0, "output_throughput": thr, "total_token_throughput": thr * 11.0,
            "median_tpot_ms": tpot, "p99_ttft_ms": 10.0,
            "pd_lab": {"tool": "run-bm", "requests_sent": 20, "base_url": "http://x",
                       "server_metrics": {"prompt_tokens": thr, "kv_cache_usage_max": 0.5,
                                          "file": format!("conc4-{thr}.metrics.csv")}}
        }))
        .unwrap()
    }

    #[test]
    fn aggregates_are_means() {
        let agg = aggregate(&[run(10.0, 100.0), run(12.0, 110.0), run(14.0, 120.0)]).unwrap();
        assert_eq!(agg.median_tpot_ms(), Some(12.0));
        assert_eq!(agg.output_throughput, 110.0);
        assert!((agg.duration - 11.0).abs() < 1e-12);
        assert_eq!(agg.stat("p99_ttft_ms"), Some(10.0));
        assert_eq!(agg.failed, Some(0));
        let x = &agg.pd_lab.as_ref().unwrap().other;
        assert_eq!(x["requests_sent"], json!(20));
        assert_eq!(x["base_url"], json!("http://x"));
        assert_eq!(x["server_metrics"]["prompt_tokens"], json!(110.0));
        assert_eq!(x["server_metrics"]["kv_cache_usage_max"], json!(0.5));
        assert!(
            x["server_metrics"].get("file").is_none(),
            "differs between runs"
        );
        assert!(aggregate(&[]).is_none());
    }

    #[test]
    fn ci_of_three_runs_by_hand() {
        // median TPOT 10, 12, 14 ms: mean 12, sample sd 2, t(0.975, 2) = 4.302653,
        // half-width 4.302653 · 2 / √3 = 4.968275.
        let runs = [run(10.0, 100.0), run(12.0, 110.0), run(14.0, 120.0)];
        let files: Vec<String> = (1..=3).map(|k| format!("conc4-{k}.json")).collect();
        let agg = aggregate_with_repeats(&runs, files.clone()).unwrap();
        let rec = recorded(&agg).unwrap();
        assert_eq!((rec.count, rec.files.clone()), (3, files));
        assert!((rec.std["median_tpot_ms"] - 2.0).abs() < 1e-12);
        let (lo, hi) = rec.ci95["median_tpot_ms"];
        assert!((lo - (12.0 - 4.968_275)).abs() < 1e-5, "{lo}");
        assert!((hi - (12.0 + 4.968_275)).abs() < 1e-5, "{hi}");
        // Output throughput 100, 110, 120: sd 10, half-width 24.841377.
        let (lo, hi) = rec.ci95["output_throughput"];
        assert!((hi - lo - 2.0 * 24.841_377).abs() < 1e-4);
        // A constant metric has a zero-width interval; one absent from a run has none.
        assert_eq!(rec.ci95["p99_ttft_ms"], (10.0, 10.0));
        assert!(!rec.ci95.contains_key("request_goodput"));
        // The object written round-trips.
        let again = recorded(&agg).unwrap();
        assert_eq!(again, rec);
        // One run: counted, no statistics.
        let one = Recorded::of_runs(&runs[..1], vec![]);
        assert_eq!(one.count, 1);
        assert!(one.std.is_empty() && one.ci95.is_empty());
    }

    #[test]
    fn reads_recorded_statistics() {
        let mut r = run(10.0, 100.0);
        r.pd_lab = Some(
            serde_json::from_value(json!({
                "tool": "run-bm",
                "repeats": {"count": 3, "files": ["conc4-1.json"], "std": {"median_tpot_ms": 2.0},
                            "ci95": {"median_tpot_ms": [5.0, 15.0], "bad": [1.0]}}
            }))
            .unwrap(),
        );
        let rec = recorded(&r).unwrap();
        assert_eq!(rec.count, 3);
        assert_eq!(rec.files, vec!["conc4-1.json".to_string()]);
        assert_eq!(rec.std["median_tpot_ms"], 2.0);
        assert_eq!(rec.ci95["median_tpot_ms"], (5.0, 15.0));
        assert!(!rec.ci95.contains_key("bad"));
        assert!(recorded(&run(1.0, 1.0)).is_none());
    }

    #[test]
    fn headline_keys_in_file_order() {
        let r = run(10.0, 100.0);
        let keys: Vec<String> = headline_values(&r).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "duration",
                "request_throughput",
                "output_throughput",
                "total_token_throughput",
                "median_tpot_ms",
                "p99_ttft_ms"
            ]
        );
    }
}
