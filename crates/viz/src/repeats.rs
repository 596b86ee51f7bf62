//! Repeated runs of a sweep point (`run-bm --repeat K`): run k of point `P` is `P-<k>.json`;
//! the aggregate `P.json` holds the means with
//! `pd_lab.repeats = {"count", "files", "std": {key: v}, "ci95": {key: [lo, hi]}}`.
//! A directory with only `P-<k>.json` files is aggregated here the same way.

use std::collections::BTreeMap;

use pd_common::naming::parse_point_file_name;
use pd_common::BenchResult;
use serde_json::Value;

/// The statistics an aggregate file records under `pd_lab.repeats`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recorded {
    pub count: usize,
    pub files: Vec<String>,
    pub std: BTreeMap<String, f64>,
    pub ci95: BTreeMap<String, (f64, f64)>,
}

/// `pd_lab.repeats` of a result, when present and well-formed.
pub fn recorded(r: &BenchResult) -> Option<Recorded> {
    let rep = r.pd_lab.as_ref()?.other.get("repeats")?.as_object()?;
    let count = rep.get("count")?.as_u64()? as usize;
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

/// `conc16-2.json` → (`conc16.json`, 2): the file of run k of a point. The part before
/// `-<k>` must itself be a point file name.
pub fn split_run_name(name: &str) -> Option<(String, u32)> {
    let stem = name.strip_suffix(".json")?;
    let (base, k) = stem.rsplit_once('-')?;
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let k: u32 = k.parse().ok().filter(|k| *k > 0)?;
    let base = format!("{base}.json");
    parse_point_file_name(&base)?;
    Some((base, k))
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// The aggregate of `runs` (at least one): every number the runs share is replaced by
/// its mean over the runs (token counts rounded), `completed` and `failed` included.
/// Per-request lists are dropped (they belong to the runs).
pub fn aggregate(runs: &[BenchResult]) -> Option<BenchResult> {
    let first = runs.first()?;
    let mut agg = first.clone();
    let avg = |f: &dyn Fn(&BenchResult) -> f64| mean(runs.iter().map(f));
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
    agg.interrupted = runs.iter().any(|r| r.interrupted);
    for (key, v) in first.rest.iter() {
        if v.is_number() {
            let vals: Vec<f64> = runs.iter().filter_map(|r| r.stat(key)).collect();
            if vals.len() == runs.len() {
                agg.set_stat(key.clone(), mean(vals.into_iter()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(tpot: f64, thr: f64) -> BenchResult {
        serde_json::from_value(json!({
            "request_rate": "inf", "max_concurrency": 4, "duration": thr / 10.0,
            "completed": 20, "failed": 0, "total_input_tokens": 1000, "total_output_tokens": 100,
            "request_throughput": 2.0, "output_throughput": thr, "total_token_throughput": thr * 11.0,
            "median_tpot_ms": tpot, "p99_ttft_ms": 10.0
        }))
        .unwrap()
    }

    #[test]
    fn run_names() {
        assert_eq!(
            split_run_name("conc16-2.json"),
            Some(("conc16.json".into(), 2))
        );
        assert_eq!(
            split_run_name("rr2.5-10.json"),
            Some(("rr2.5.json".into(), 10))
        );
        for bad in [
            "conc16.json",
            "conc16-0.json",
            "conc16-x.json",
            "notes-1.json",
            "conc16-.json",
        ] {
            assert_eq!(split_run_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn aggregates_are_means() {
        let agg = aggregate(&[run(10.0, 100.0), run(12.0, 110.0), run(14.0, 120.0)]).unwrap();
        assert_eq!(agg.median_tpot_ms(), Some(12.0));
        assert_eq!(agg.output_throughput, 110.0);
        assert!((agg.duration - 11.0).abs() < 1e-12);
        assert_eq!(agg.stat("p99_ttft_ms"), Some(10.0));
        assert_eq!(agg.failed, Some(0));
        assert!(aggregate(&[]).is_none());
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
}
