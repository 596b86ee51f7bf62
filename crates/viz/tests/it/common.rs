//! Helpers of viz's integration tests (generic ones are in `pd_testkit`).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// The 14 reference directories of the study's later runs, sorted by name.
pub fn real_dirs() -> Vec<PathBuf> {
    pd_testkit::fixtures::later_run_dirs()
}

/// A later-run reference directory by the end of its name.
pub fn real_dir(suffix: &str) -> PathBuf {
    pd_testkit::fixtures::later_run_dir(suffix)
}

/// A minimal `vllm bench serve` result of a concurrency point.
pub fn point_json(conc: u64, tpot: f64, ttft: f64, output_tps: f64, req_tps: f64) -> Value {
    json!({
        "date": "20251020-000000",
        "backend": "vllm",
        "model_id": "m",
        "num_prompts": conc * 5,
        "request_rate": "inf",
        "burstiness": 1.0,
        "max_concurrency": conc,
        "duration": 10.0,
        "completed": conc * 5,
        "total_input_tokens": conc * 5 * 1000,
        "total_output_tokens": conc * 5 * 100,
        "request_throughput": req_tps,
        "request_goodput": null,
        "output_throughput": output_tps,
        "total_token_throughput": output_tps * 11.0,
        "mean_ttft_ms": ttft,
        "median_ttft_ms": ttft,
        "mean_tpot_ms": tpot,
        "median_tpot_ms": tpot,
    })
}

/// Write `conc<N>.json` into `dir`.
pub fn write_point(dir: &Path, value: &Value) {
    std::fs::create_dir_all(dir).unwrap();
    let conc = value["max_concurrency"].as_u64().unwrap();
    std::fs::write(
        dir.join(format!("conc{conc}.json")),
        serde_json::to_string(value).unwrap(),
    )
    .unwrap();
}
