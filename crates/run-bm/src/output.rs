//! Writing one point: the vLLM-compatible result JSON, the per-request CSV, the server's
//! metrics (`P.metrics.csv`, when captured) and the experiment manifest (all through
//! pd-common, all atomic: temp file + rename).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use pd_common::manifest::{
    capture_env, sanitize_record, ClientHost, PointEntry, MANIFEST_FORMAT_VERSION,
};
use pd_common::naming::{MANIFEST_FILE, REQUESTS_CSV_SUFFIX};
use pd_common::requests::{write_requests_csv, RequestRecord};
use pd_common::server_metrics::{metrics_csv_name, write_metrics_csv, Scrape};
use pd_common::{BenchResult, ExperimentManifest, PdLabExtra};
use serde_json::{Map, Value};

use crate::config::{PointSpec, RunConfig};
use crate::runner::PointRun;
use crate::schedule::ScheduleReport;
use pd_common::bench::PointMetrics;

/// A monotonic origin for `start_times` (seconds since the process's first use).
pub fn process_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Facts about the run that are not in the configuration.
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    /// `model_id` / `tokenizer_id` of the result.
    pub model_id: String,
    /// Server-side software versions found at start (e.g. `vllm` from `/version`).
    pub server_software: BTreeMap<String, String>,
    /// Warmup requests sent before this point.
    pub warmup_sent: u64,
    /// The correctness check run before the sweep (`manifest.json` → `correctness`).
    pub correctness: Option<Value>,
}

/// The per-request CSV file name of a result file name.
pub fn csv_name(result_file: &str) -> String {
    let stem = result_file.strip_suffix(".json").unwrap_or(result_file);
    format!("{stem}{REQUESTS_CSV_SUFFIX}")
}

fn num(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// Build the result of a point.
pub fn build_result(
    cfg: &RunConfig,
    point: &PointSpec,
    run: &PointRun,
    m: &PointMetrics,
    sched: Option<&ScheduleReport>,
    facts: &RunFacts,
) -> BenchResult {
    let detailed = cfg.save_detailed;
    let outs = &run.outcomes;
    let origin = process_origin();
    let t0_mono = run.t0.saturating_duration_since(origin).as_secs_f64();
    let list = |f: &dyn Fn(&pd_common::bench::RequestOutcome) -> f64| -> Option<Vec<f64>> {
        detailed.then(|| outs.iter().map(f).collect())
    };
    let record = cfg.record.as_ref();
    let mut other = Map::new();
    other.insert(
        "base_url".into(),
        Value::String(pd_common::url::redact_userinfo(&cfg.base_url)),
    );
    other.insert(
        "served_model_name".into(),
        Value::String(cfg.served_model.clone()),
    );
    other.insert(
        "prompt_format".into(),
        Value::String(cfg.prompt_format.as_str().into()),
    );
    other.insert("seed".into(), Value::from(cfg.seed));
    other.insert("dataset".into(), cfg.dataset_json(outs));
    other.insert("warmup_requests".into(), Value::from(facts.warmup_sent));
    other.insert("requests_planned".into(), Value::from(point.num_prompts));
    other.insert("requests_sent".into(), Value::from(outs.len() as u64));
    other.insert("continuous_usage".into(), Value::Bool(m.continuous_usage));
    other.insert(
        "multi_token_chunk_fraction".into(),
        num(m.multi_token_chunk_fraction),
    );
    for (k, v) in m.token_itl.keys("token_itl") {
        other.insert(k, num(v));
    }
    other.insert(
        "max_concurrent_requests_exact".into(),
        Value::from(m.max_concurrent_requests_exact),
    );
    other.insert(
        "max_output_tokens_per_s_tokens".into(),
        num(m.max_output_tokens_per_s_tokens),
    );
    // Open-loop points: how well dispatch kept to the schedule (never the concurrency
    // wait, which is client queue time).
    if let Some(sched) = sched {
        other.insert(
            "dispatch_rate".into(),
            if sched.dispatch_rate.is_finite() {
                num(sched.dispatch_rate)
            } else {
                Value::String("inf".into())
            },
        );
        other.insert("mean_dispatch_delay_ms".into(), num(sched.mean_delay * 1e3));
        other.insert("p99_dispatch_delay_ms".into(), num(sched.p99_delay * 1e3));
        other.insert("max_dispatch_delay_ms".into(), num(sched.max_delay * 1e3));
    }
    other.insert(
        "connections".into(),
        crate::selfcheck::connections_json(&run.start),
    );
    other.insert(
        "self_check".into(),
        crate::selfcheck::self_check_json(run, m),
    );
    let queue: Vec<f64> = outs
        .iter()
        .filter(|o| o.is_success())
        .map(|o| o.client_queue_time())
        .collect();
    let qs = pd_common::bench::MetricStats::of_seconds(&queue, &cfg.percentiles);
    for (k, v) in qs.keys("client_queue_time") {
        other.entry(k).or_insert(num(v));
    }
    let extra = PdLabExtra {
        tool: "run-bm".into(),
        tool_version: pd_common::VERSION.into(),
        serving_backend: record.map(|r| r.backend),
        deployment_label: record.map(|r| r.label.clone()),
        deploy_mode: record.map(|r| r.spec.mode()),
        total_gpus: record.map(|r| r.total_gpus),
        gpus_per_node: record.map(|r| r.gpus_per_node),
        workload: Some(cfg.workload),
        sweep: Some(point.kind),
        sweep_value: Some(point.value),
        other,
    };
    let mut result = BenchResult {
        date: chrono::Local::now().format("%Y%m%d-%H%M%S").to_string(),
        endpoint_type: cfg.backend.clone(),
        backend: cfg.backend.clone(),
        label: cfg.label.clone(),
        model_id: facts.model_id.clone(),
        tokenizer_id: Some(cfg.tokenizer_id(&facts.model_id)),
        num_prompts: point.result_num_prompts(),
        request_rate: point.result_request_rate(),
        burstiness: cfg.burstiness,
        max_concurrency: point.result_max_concurrency(),
        input_lens: detailed.then(|| {
            outs.iter()
                .map(|o| {
                    if o.is_success() {
                        o.prompt_len
                    } else {
                        o.client_prompt_len
                    }
                })
                .collect()
        }),
        output_lens: detailed.then(|| outs.iter().map(|o| o.output_len()).collect()),
        ttfts: list(&|o| o.ttft),
        itls: detailed.then(|| outs.iter().map(|o| o.chunks.gaps().collect()).collect()),
        latencies: list(&|o| o.latency),
        start_times: list(&|o| t0_mono + o.sent_s),
        queue_times: list(&|o| o.client_queue_time()),
        generated_texts: detailed.then(|| outs.iter().map(|o| o.text.clone()).collect()),
        errors: detailed.then(|| outs.iter().map(|o| o.error_text().to_string()).collect()),
        interrupted: run.interrupted,
        pd_lab: Some(extra),
        ..BenchResult::from_metrics(m)
    };
    crate::request::apply_metadata(&mut result, &cfg.metadata);
    result
}

/// Per-request CSV rows.
pub fn request_records(run: &PointRun) -> Vec<RequestRecord> {
    run.outcomes
        .iter()
        .map(|o| RequestRecord {
            index: o.index,
            scheduled_s: o.scheduled_s,
            sent_s: o.sent_s,
            queue_wait_s: (o.sent_s - o.scheduled_s).max(0.0),
            ttft_s: o.ttft,
            e2el_s: o.latency,
            prompt_tokens: if o.is_success() {
                o.prompt_len
            } else {
                o.client_prompt_len
            },
            output_tokens: o.output_len(),
            chunks: o.chunks.len() as u64,
            success: o.is_success(),
            http_status: o.http_status,
            error: o.error_text().to_string(),
        })
        .collect()
}

/// Paths written for one point.
#[derive(Debug, Clone)]
pub struct WrittenPoint {
    pub result: PathBuf,
    pub requests_csv: PathBuf,
    pub metrics_csv: Option<PathBuf>,
    pub manifest: PathBuf,
}

/// Write the result, the CSVs (requests; the server's metrics when `scrapes` were
/// captured) and update the manifest.
pub fn write_point(
    cfg: &RunConfig,
    point: &PointSpec,
    run: &PointRun,
    result: &BenchResult,
    facts: &RunFacts,
    scrapes: Option<&[Scrape]>,
) -> Result<WrittenPoint, pd_common::Error> {
    let dir = &cfg.result_dir;
    let result_path = dir.join(&point.file_name);
    let csv_file = csv_name(&point.file_name);
    let csv_path = dir.join(&csv_file);
    write_requests_csv(&csv_path, &request_records(run))?;
    let metrics_csv = match scrapes {
        Some(s) => {
            let p = dir.join(metrics_csv_name(&point.file_name));
            write_metrics_csv(&p, s)?;
            Some(p)
        }
        None => None,
    };
    result.write(&result_path)?;
    let manifest_path = dir.join(MANIFEST_FILE);
    let mut manifest = load_or_new_manifest(cfg, &manifest_path, facts);
    manifest.upsert_point(PointEntry {
        file: point.file_name.clone(),
        requests_csv: csv_file,
        sweep: point.kind,
        value: point.value,
        completed: result.completed,
        failed: result.failed.unwrap_or(0),
        interrupted: result.interrupted,
        command: cfg.command.clone(),
        finished_at: pd_common::deployment::now_rfc3339(),
    });
    manifest.write(&manifest_path)?;
    Ok(WrittenPoint {
        result: result_path,
        requests_csv: csv_path,
        metrics_csv,
        manifest: manifest_path,
    })
}

/// The directory's manifest updated for this run (a corrupt one is kept aside and a new
/// one started). Secrets never enter it: the command is redacted, the environment is an
/// allowlist, the deployment record is sanitized.
fn load_or_new_manifest(cfg: &RunConfig, path: &Path, facts: &RunFacts) -> ExperimentManifest {
    let now = pd_common::deployment::now_rfc3339();
    let existing = crate::resultdir::read_manifest_or_keep_aside(path);
    let mut software = existing
        .as_ref()
        .map(|m| m.software.clone())
        .unwrap_or_default();
    if let Some(r) = &cfg.record {
        software.extend(r.software.clone());
    }
    software.extend(facts.server_software.clone());
    software.insert("run-bm".into(), pd_common::VERSION.into());
    let hostname = gethostname::gethostname().to_string_lossy().into_owned();
    let sweep_values: Vec<f64> = cfg.points.iter().map(|p| p.value).collect();
    let mut other = existing
        .as_ref()
        .map(|m| m.other.clone())
        .unwrap_or_default();
    other.insert("model_id".into(), Value::String(facts.model_id.clone()));
    other.insert(
        "prompt_format".into(),
        Value::String(cfg.prompt_format.as_str().into()),
    );
    other.insert("seed".into(), Value::from(cfg.seed));
    other.insert("dataset".into(), cfg.dataset.record.to_json());
    if let Some(c) = &facts.correctness {
        other.insert("correctness".into(), c.clone());
    }
    ExperimentManifest {
        format_version: MANIFEST_FORMAT_VERSION,
        exp_name: cfg.exp_name.clone(),
        created_at: existing
            .as_ref()
            .map(|m| m.created_at.clone())
            .unwrap_or_else(|| now.clone()),
        updated_at: now,
        tool: "run-bm".into(),
        tool_version: pd_common::VERSION.into(),
        command: cfg.command.clone(),
        base_url: pd_common::url::redact_userinfo(&cfg.base_url),
        served_model_name: cfg.served_model.clone(),
        workload: cfg.workload,
        sweep: cfg.sweep,
        sweep_values,
        deployment: cfg.record.as_ref().map(sanitize_record),
        client_host: ClientHost::current(hostname),
        software,
        env: capture_env(),
        points: existing.map(|m| m.points).unwrap_or_default(),
        other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_names() {
        assert_eq!(csv_name("conc16.json"), "conc16.requests.csv");
        assert_eq!(csv_name("run=0.json"), "run=0.requests.csv");
        assert_eq!(csv_name("x"), "x.requests.csv");
    }
}
