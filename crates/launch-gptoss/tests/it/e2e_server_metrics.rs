//! Server metrics and repeated runs end to end, against the simulated cluster exactly as
//! against vLLM: `launch-gptoss --backend sim` (PD, so NIXL transfers happen) → `run-bm
//! --repeat 2` capturing `/metrics` → the metrics files have the series, the results the
//! deltas, the aggregate the intervals → `viz --plot-type server-metrics` plots them.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use pd_common::repeats::recorded;
use pd_common::server_metrics::{read_metrics_csv, Phase};
use pd_common::BenchResult;

const LAUNCH: &str = env!("CARGO_BIN_EXE_launch-gptoss");

/// Shuts the deployment down even when an assertion fails.
struct Deployment {
    record: PathBuf,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = Command::new(LAUNCH)
            .args(["shutdown", "--deployment-file"])
            .arg(&self.record)
            .status();
    }
}

fn deploy_pd(dir: &Path) -> Deployment {
    let record = dir.join("deployment.toml");
    let port = pd_testkit::net::free_port().to_string();
    let out = Command::new(LAUNCH)
        .args(["--backend", "sim", "--mode", "pd-pack"])
        .args(["--p-num", "1", "--p-tp", "2", "--d-num", "1", "--d-tp", "2"])
        .args(["--port", &port, "--deployment-file"])
        .arg(&record)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "launch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Deployment { record }
}

#[test]
fn sim_metrics_are_captured_repeated_and_plotted() {
    let tmp = tempfile::tempdir().unwrap();
    let dep = deploy_pd(tmp.path());
    let results = tmp
        .path()
        .join("results/gptoss_itl1000_otl40_mixed_metrics_pd");
    let argv: Vec<String> = [
        "run-bm",
        "-q",
        "-e",
        "metrics_pd",
        "-c",
        "4",
        "--itl",
        "1000",
        "--otl",
        "40",
        "--repeat",
        "2",
        "--metrics-interval",
        "0.2",
        "--deployment-file",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        dep.record.display().to_string(),
        "--result-dir".into(),
        results.display().to_string(),
    ])
    .collect();
    let cli = run_bm::cli::Cli::try_parse_from(&argv).unwrap();
    assert_eq!(run_bm::run(cli, argv).unwrap(), 0, "run-bm sweep failed");

    for k in 1..=2 {
        // The series: every phase, vLLM's names as the simulator serves them.
        let rows = read_metrics_csv(&results.join(format!("conc4-{k}.metrics.csv"))).unwrap();
        for phase in [Phase::Before, Phase::During, Phase::After] {
            assert!(
                rows.iter().any(|r| r.phase == phase),
                "run {k}: no {phase:?}"
            );
        }
        for name in [
            "vllm:kv_cache_usage_perc",
            "vllm:num_requests_running",
            "vllm:num_requests_waiting",
            "vllm:nixl_xfer_time_seconds_sum",
        ] {
            assert!(rows.iter().any(|r| r.metric == name), "run {k}: no {name}");
        }
        assert!(rows.iter().any(|r| r.phase == Phase::During
            && r.metric == "vllm:num_requests_running"
            && r.value > 0.0));
        // The deltas: exactly this run's 20 requests of 1000 + 40 tokens, each moved once
        // from prefill to decode.
        let r = BenchResult::read(&results.join(format!("conc4-{k}.json"))).unwrap();
        assert_eq!(r.completed, 20);
        let sm = &r.pd_lab.as_ref().unwrap().other["server_metrics"];
        assert_eq!(sm["prompt_tokens"], 20_000, "run {k}: {sm}");
        assert_eq!(sm["generation_tokens"], 800, "run {k}: {sm}");
        assert_eq!(sm["request_success"], 20, "run {k}: {sm}");
        assert_eq!(sm["nixl"]["transfers"], 20, "run {k}: {sm}");
        assert!(sm["nixl"]["xfer_time_mean_ms"].as_f64().unwrap() > 0.0);
        let bytes = sm["nixl"]["bytes_transferred"].as_f64().unwrap();
        let per = sm["nixl"]["bytes_per_transfer"].as_f64().unwrap();
        assert!(bytes > 0.0 && (per * 20.0 - bytes).abs() < 1e-6 * bytes);
        assert_eq!(sm["num_preemptions"], 0);
        let running = sm["num_requests_running_max"].as_f64().unwrap();
        assert!((1.0..=8.0).contains(&running), "{running}");
    }
    // The aggregate: means of the two runs with their intervals.
    let agg = BenchResult::read(&results.join("conc4.json")).unwrap();
    let rec = recorded(&agg).unwrap();
    assert_eq!(rec.count, 2);
    assert!(rec.ci95.contains_key("median_tpot_ms"));
    let sm = &agg.pd_lab.as_ref().unwrap().other["server_metrics"];
    assert_eq!(sm["prompt_tokens"], 20_000);
    assert!(sm.get("file").is_none());

    // viz plots the series (from the runs' files).
    let plots = tmp.path().join("plots");
    let viz_cli = viz::cli::Cli::try_parse_from([
        "viz".to_string(),
        "--result-dir".into(),
        results.display().to_string(),
        "--plot-type".into(),
        "server-metrics".into(),
        "--plot-path".into(),
        plots.display().to_string(),
        "--no-show-tables".into(),
    ])
    .unwrap();
    let mut out = Vec::new();
    viz::app::run(&viz_cli, &mut out).unwrap();
    let name = results.file_name().unwrap().to_str().unwrap();
    let svg = std::fs::read_to_string(plots.join(format!("{name}_server-metrics.svg"))).unwrap();
    assert!(
        svg.contains("KV-Cache Usage"),
        "{}",
        &svg[..svg.len().min(400)]
    );
    assert!(plots.join(format!("{name}_server-metrics.png")).is_file());
}
