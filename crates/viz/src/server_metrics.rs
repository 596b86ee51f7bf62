//! Reader of a point's server-metrics series, `P.metrics.csv` (written by run-bm from the
//! server's Prometheus text): long format with the header `t_s,phase,metric,labels,value`
//! (`t_s` seconds from the point's start, `phase` before | during | after; columns found
//! by name, extra columns ignored).
//!
//! For the plots three series are derived, summed or averaged over the label sets
//! (engines, replicas, prefill and decode) scraped at the same instant:
//! * KV-cache usage (%): the mean over label sets of `kv_cache_usage_perc` (vLLM ≥ 0.10;
//!   `gpu_cache_usage_perc` when that is the only one), a fraction ×100 (values above 1
//!   are taken as percent already);
//! * running and waiting requests: the sums of `num_requests_running` and
//!   `num_requests_waiting`.
//!
//! Metric names match with or without vLLM's `vllm:` prefix and Ray's `ray_vllm:` /
//! `ray_vllm_` export prefixes.

use std::collections::BTreeMap;
use std::path::Path;

/// One sample of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub t_s: f64,
    pub phase: String,
    pub metric: String,
    pub labels: String,
    pub value: f64,
}

/// The series plotted for one point: (t_s, value), by time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    pub kv_usage_pct: Vec<(f64, f64)>,
    pub running: Vec<(f64, f64)>,
    pub waiting: Vec<(f64, f64)>,
}

impl Series {
    pub fn is_empty(&self) -> bool {
        self.kv_usage_pct.is_empty() && self.running.is_empty() && self.waiting.is_empty()
    }
}

/// A file read: its samples and how many rows were unusable.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsFile {
    pub samples: Vec<Sample>,
    pub bad_rows: usize,
}

/// Read `P.metrics.csv`. Errors (unreadable file, missing column) are returned as text;
/// rows whose time or value is not a finite number are counted and skipped.
pub fn read(path: &Path) -> Result<MetricsFile, String> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let headers = rdr
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| format!("{}: no `{name}` column", path.display()))
    };
    let (ct, cp, cm, cl, cv) = (
        col("t_s")?,
        col("phase")?,
        col("metric")?,
        col("labels")?,
        col("value")?,
    );
    let mut out = MetricsFile::default();
    for rec in rdr.records() {
        let Ok(rec) = rec else {
            out.bad_rows += 1;
            continue;
        };
        let num = |i: usize| {
            rec.get(i)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite())
        };
        let (Some(t_s), Some(value)) = (num(ct), num(cv)) else {
            out.bad_rows += 1;
            continue;
        };
        out.samples.push(Sample {
            t_s,
            phase: rec.get(cp).unwrap_or("").trim().to_string(),
            metric: rec.get(cm).unwrap_or("").trim().to_string(),
            labels: rec.get(cl).unwrap_or("").to_string(),
            value,
        });
    }
    Ok(out)
}

/// The metric name without the `vllm:` / `ray_vllm:` / `ray_vllm_` / `vllm_` prefix (the
/// one definition, shared with run-bm's writer).
pub use pd_common::server_metrics::base_name;

/// Combine label sets per instant (`sum` or mean), by time.
fn per_instant(samples: &[&Sample], sum: bool) -> Vec<(f64, f64)> {
    // Instants keyed to the microsecond, so that one scrape's samples group together.
    let mut by_t: BTreeMap<i64, (f64, f64, usize)> = BTreeMap::new();
    for s in samples {
        let key = (s.t_s * 1e6).round() as i64;
        let e = by_t.entry(key).or_insert((s.t_s, 0.0, 0));
        e.1 += s.value;
        e.2 += 1;
    }
    by_t.into_values()
        .map(|(t, total, n)| (t, if sum { total } else { total / n as f64 }))
        .collect()
}

/// The plotted series of a file's samples.
pub fn series(samples: &[Sample]) -> Series {
    let of = |names: &[&str]| -> Vec<&Sample> {
        samples
            .iter()
            .filter(|s| names.contains(&base_name(&s.metric)))
            .collect()
    };
    let mut kv = of(&["kv_cache_usage_perc"]);
    if kv.is_empty() {
        kv = of(&["gpu_cache_usage_perc"]);
    }
    let as_pct = kv.iter().all(|s| s.value <= 1.0 + 1e-9);
    let kv_usage_pct = per_instant(&kv, false)
        .into_iter()
        .map(|(t, v)| (t, if as_pct { v * 100.0 } else { v }))
        .collect();
    Series {
        kv_usage_pct,
        running: per_instant(&of(&["num_requests_running"]), true),
        waiting: per_instant(&of(&["num_requests_waiting"]), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_long_format_and_aggregates_label_sets() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("conc4.metrics.csv");
        std::fs::write(
            &p,
            "t_s,phase,metric,labels,value\n\
             -0.5,before,vllm:kv_cache_usage_perc,\"engine=\"\"0\"\",model_name=\"\"m\"\"\",0.0\n\
             -0.5,before,vllm:gpu_cache_usage_perc,engine=0,0.9\n\
             0.0,during,vllm:kv_cache_usage_perc,engine=0,0.2\n\
             0.0,during,vllm:kv_cache_usage_perc,engine=1,0.4\n\
             0.0,during,ray_vllm:num_requests_running,engine=0,3\n\
             0.0,during,ray_vllm_num_requests_running,engine=1,2\n\
             0.0,during,vllm:num_requests_waiting,engine=0,1\n\
             1.0,during,vllm:num_requests_waiting,engine=0,NaN\n\
             x,during,vllm:num_requests_waiting,engine=0,1\n\
             2.0,after,vllm:prompt_tokens_total,engine=0,1000\n",
        )
        .unwrap();
        let f = read(&p).unwrap();
        assert_eq!(f.bad_rows, 2);
        assert_eq!(f.samples.len(), 8);
        assert_eq!(f.samples[0].labels, "engine=\"0\",model_name=\"m\"");
        let s = series(&f.samples);
        assert_eq!(s.kv_usage_pct.len(), 2);
        assert!(
            (s.kv_usage_pct[1].1 - 30.0).abs() < 1e-9,
            "{:?}",
            s.kv_usage_pct
        );
        assert_eq!(s.running, vec![(0.0, 5.0)]);
        assert_eq!(s.waiting, vec![(0.0, 1.0)]);
        assert!(!s.is_empty());
    }

    #[test]
    fn missing_columns_and_files_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.metrics.csv");
        std::fs::write(&p, "time,metric,value\n1,a,2\n").unwrap();
        assert!(read(&p).unwrap_err().contains("t_s"));
        assert!(read(&tmp.path().join("none.csv")).is_err());
        assert!(series(&[]).is_empty());
        assert_eq!(
            base_name("vllm:num_requests_running"),
            "num_requests_running"
        );
        assert_eq!(base_name("other"), "other");
    }
}
