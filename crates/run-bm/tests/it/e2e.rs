//! The `run-bm` binary end to end against the fake server: result files (with every key
//! of the real vLLM results), CSV, manifest, `--resume`, a rate point, the smoke test,
//! and Ctrl-C writing a valid partial point.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{run_bm, ChildGuard};
use pd_common::requests::read_requests_csv;
use pd_common::{BenchResult, ExperimentManifest, RequestRate};
use pd_testkit::fake_openai::{FakeOptions, FakeServer, GenSpec, Reply, RequestInfo};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

async fn gen_server(ttft: u64, interval: u64) -> FakeServer {
    let spec = GenSpec {
        ttft: ms(ttft),
        interval: ms(interval),
        tokens: None,
        tokens_per_chunk: 1,
    };
    FakeServer::start(
        "fake",
        Arc::new(move |_: &RequestInfo| Reply::Generate(spec)),
        false,
    )
    .await
    .unwrap()
}

/// Run the binary to completion (off the async runtime).
async fn run_to_end(dir: &Path, args: Vec<String>) -> (i32, String, String) {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = ChildGuard::spawn(&mut run_bm(&dir, &args));
        let (status, out, err) = child.wait_timeout(Duration::from_secs(60));
        (status.code().unwrap_or(-1), out, err)
    })
    .await
    .unwrap()
}

fn real_key_union() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for dir in pd_testkit::fixtures::later_run_dirs() {
        for f in std::fs::read_dir(&dir).unwrap() {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(f.unwrap().path()).unwrap()).unwrap();
            keys.extend(v.as_object().unwrap().keys().cloned());
        }
    }
    assert!(keys.len() >= 30, "real results found: {keys:?}");
    keys
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_sweep_writes_vllm_compatible_files() {
    let server = gen_server(5, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let args = strings(&[
        "-e",
        "t1",
        "-c",
        "2,3",
        "--itl",
        "8",
        "--otl",
        "5",
        "-u",
        &url,
        "-m",
        "fake",
        "--vocab-size",
        "1000",
        "--save-detailed",
        "--goodput",
        "ttft:5000",
    ]);
    let (code, out, err) = run_to_end(dir.path(), args.clone()).await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("============ Serving Benchmark Result ============"),
        "{out}"
    );
    assert!(
        out.contains("Successful requests:                     10"),
        "{out}"
    );
    let rdir = dir.path().join("bm_results/fake_itl8_otl5_mixed_t1");
    let path = rdir.join("conc2.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ours: BTreeSet<String> = v.as_object().unwrap().keys().cloned().collect();
    let missing: Vec<_> = real_key_union().difference(&ours).cloned().collect();
    assert!(
        missing.is_empty(),
        "keys missing from our result: {missing:?}"
    );
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        &keys[..8],
        [
            "date",
            "endpoint_type",
            "backend",
            "label",
            "model_id",
            "tokenizer_id",
            "num_prompts",
            "request_rate"
        ]
    );
    let r = BenchResult::read(&path).unwrap();
    assert_eq!(
        (r.num_prompts, r.completed, r.failed, r.max_concurrency),
        (10, 10, Some(0), Some(2))
    );
    // As the seed's run_bm.sh writes a concurrency point (its viz.py reads it).
    assert_eq!(r.request_rate, RequestRate::Finite(1e9));
    assert_eq!(v["request_rate"], 1e9);
    assert_eq!((r.total_input_tokens, r.total_output_tokens), (80, 50));
    assert_eq!(
        r.model_id, "fake/root-model",
        "model_id from /v1/models root"
    );
    assert_eq!(r.request_goodput, Some(r.request_throughput));
    assert_eq!(r.ttfts.as_ref().unwrap().len(), 10);
    assert_eq!(r.itls.as_ref().unwrap()[0].len(), 4);
    assert!(!r.interrupted);
    assert!(r.stat("mean_e2el_ms").unwrap() > 0.0);
    let extra = r.pd_lab.as_ref().unwrap();
    assert_eq!(extra.tool, "run-bm");
    assert_eq!(extra.sweep_value, Some(2.0));
    assert_eq!(extra.other["prompt_format"], "token-ids");
    assert!(extra.other.contains_key("mean_token_itl_ms"));
    // A closed loop has no schedule: no dispatch keys; its 2 connections were opened
    // before the clock started and carried every request.
    for k in [
        "dispatch_rate",
        "achieved_request_rate",
        "mean_schedule_delay_ms",
    ] {
        assert!(!extra.other.contains_key(k), "{k}");
    }
    let conns = &extra.other["connections"];
    assert_eq!(conns["prewarm"], true, "{conns}");
    assert_eq!(conns["prewarmed"], 2, "{conns}");
    assert_eq!(conns["opened_during_point"], 0, "{conns}");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(
        extra.other["self_check"]["client_threads"], cores,
        "one client thread per core by default"
    );
    assert!(extra.other["self_check"]["loop_lag_p99_ms"]
        .as_f64()
        .is_some());
    assert_eq!(
        extra.other["continuous_usage"], true,
        "the fake server sends running usage when asked (continuous_usage_stats)"
    );
    let rows = read_requests_csv(&rdir.join("conc2.requests.csv")).unwrap();
    assert_eq!(rows.len(), 10);
    assert!(rows
        .iter()
        .all(|r| r.success && r.output_tokens == 5 && r.chunks == 5));
    let m = ExperimentManifest::read(&rdir.join("manifest.json")).unwrap();
    assert_eq!(m.points.len(), 2);
    assert_eq!(m.sweep_values, vec![2.0, 3.0]);
    assert_eq!(m.command[1..], args[..]);
    assert!(rdir.join("conc3.json").exists());

    // --resume skips existing points and leaves them untouched.
    let before = std::fs::read_to_string(&path).unwrap();
    let mut again = args.clone();
    again.push("--resume".into());
    let (code, _, err) = run_to_end(dir.path(), again).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("skipped (--resume)"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_point_and_result_file_options() {
    let server = gen_server(2, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let args = strings(&[
        "-t",
        "request-rate",
        "-r",
        "40",
        "--num-prompts",
        "12",
        "--itl",
        "4",
        "--otl",
        "3",
        "-u",
        &server.url(),
        "-m",
        "fake",
        "--vocab-size",
        "100",
        "--result-dir",
        "out",
        "--result-filename",
        "run=0.json",
        "--percentile-metrics",
        "ttft,e2el",
        "--metric-percentiles",
        "50,99.9",
        "--mode",
        "prefill-only",
        "--prompt-format",
        "text",
        "--warmup",
        "2",
        "--client-threads",
        "1",
    ]);
    let (code, out, err) = run_to_end(dir.path(), args).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("Request rate configured (RPS):           40.00"),
        "{out}"
    );
    let r = BenchResult::read(&dir.path().join("out/run=0.json")).unwrap();
    // An uncapped rate point: max_concurrency 1e9, as the seed's run_bm.sh writes it.
    assert_eq!(
        (r.num_prompts, r.completed, r.max_concurrency),
        (12, 12, Some(1_000_000_000))
    );
    assert_eq!(r.request_rate, RequestRate::Finite(40.0));
    assert_eq!(r.total_output_tokens, 12, "prefill-only asks for 1 token");
    let keys: Vec<&String> = r.rest.keys().collect();
    assert_eq!(
        keys,
        [
            "mean_ttft_ms",
            "median_ttft_ms",
            "std_ttft_ms",
            "p50_ttft_ms",
            "p99.9_ttft_ms",
            "mean_e2el_ms",
            "median_e2el_ms",
            "std_e2el_ms",
            "p50_e2el_ms",
            "p99.9_e2el_ms"
        ]
    );
    let extra = r.pd_lab.unwrap();
    assert_eq!(extra.other["warmup_requests"], 2);
    assert_eq!(extra.other["prompt_format"], "text");
    // An open-loop point reports its dispatch against the schedule, and every point
    // how it started and whether it was saturated.
    assert!(extra.other["dispatch_rate"].as_f64().unwrap() > 0.0);
    assert!(extra.other["p99_dispatch_delay_ms"].as_f64().unwrap() >= 0.0);
    assert!(extra.other.get("achieved_request_rate").is_none());
    assert_eq!(
        extra.other["connections"]["prewarm"], false,
        "open loop: no prewarm"
    );
    assert!(extra.other["self_check"]["client_cpu_s"].as_f64().unwrap() > 0.0);
    assert_eq!(
        extra.other["self_check"]["client_threads"], 1,
        "--client-threads 1"
    );
    assert!(extra.other["self_check"]["client_saturated"].is_boolean());
    assert!(dir.path().join("out/run=0.requests.csv").exists());
    assert_eq!(
        server.stats.requests.load(Ordering::SeqCst),
        14,
        "12 measured + 2 warmup"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_test_streams_and_reports() {
    let server = gen_server(5, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run_to_end(
        dir.path(),
        strings(&["-s", "-u", &server.url(), "-m", "fake"]),
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Prompt: Count: 1, 2, 3,"), "{out}");
    assert!(out.contains(&" x".repeat(100)), "streamed text printed");
    assert!(
        out.contains("TTFT: ") && out.contains("TPOT: mean "),
        "{out}"
    );
    assert!(
        out.contains("Usage: prompt_tokens 4, completion_tokens 100"),
        "{out}"
    );
    assert!(out.contains("Smoke test passed."));
    assert!(!dir.path().join("bm_results").exists());

    let bad = FakeServer::start(
        "fake",
        Arc::new(|_: &RequestInfo| Reply::Status {
            status: 400,
            body: r#"{"error":{"message":"bad prompt"}}"#.into(),
        }),
        false,
    )
    .await
    .unwrap();
    let (code, out, _) =
        run_to_end(dir.path(), strings(&["-s", "-u", &bad.url(), "-m", "fake"])).await;
    assert_eq!(code, 1);
    assert!(
        out.contains("Smoke test FAILED: HTTP 400 Bad Request: bad prompt"),
        "{out}"
    );
    // A model the server does not serve is caught before any request.
    let (code, _, err) = run_to_end(
        dir.path(),
        strings(&["-s", "-u", &server.url(), "-m", "other"]),
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("does not serve model 'other' (it serves: fake)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_writes_a_valid_partial_point() {
    // Requests 0 and 1 finish at once; later ones stream for minutes.
    let server = FakeServer::start(
        "fake",
        Arc::new(|info: &RequestInfo| {
            let id = info
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let quick = id.ends_with("-0") || id.ends_with("-1");
            Reply::Generate(GenSpec {
                ttft: ms(5),
                interval: ms(if quick { 0 } else { 50 }),
                tokens: None,
                tokens_per_chunk: if quick { 500 } else { 1 },
            })
        }),
        false,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let url = server.url();
    let stats = server.stats.clone();
    let (code, err) = tokio::task::spawn_blocking(move || {
        let mut child = ChildGuard::spawn(&mut run_bm(
            &d,
            &[
                "-c",
                "2",
                "--itl",
                "8",
                "--otl",
                "10000",
                "-u",
                &url,
                "-m",
                "fake",
                "--vocab-size",
                "100",
                "--grace",
                "0.3",
                "-e",
                "cc",
            ],
        ));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while stats.requests.load(Ordering::SeqCst) < 4 {
            child.assert_running();
            assert!(
                std::time::Instant::now() < deadline,
                "requests never reached the server"
            );
            std::thread::sleep(ms(20));
        }
        std::thread::sleep(ms(200));
        // SAFETY: sending SIGINT to our own child process.
        assert_eq!(unsafe { libc::kill(child.pid(), libc::SIGINT) }, 0);
        let (status, _, err) = child.wait_timeout(Duration::from_secs(30));
        (status.code().unwrap_or(-1), err)
    })
    .await
    .unwrap();
    assert_eq!(code, 130, "{err}");
    assert!(err.contains("partial point written"), "{err}");
    let rdir = dir.path().join("bm_results/fake_itl8_otl10000_mixed_cc");
    let r = BenchResult::read(&rdir.join("conc2.json")).unwrap();
    assert!(r.interrupted);
    assert_eq!(r.completed, 2, "the two quick requests");
    assert_eq!(
        r.failed,
        Some(2),
        "the two in-flight requests were aborted after the grace period"
    );
    assert_eq!(r.num_prompts, 10);
    let rows = read_requests_csv(&rdir.join("conc2.requests.csv")).unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows
        .iter()
        .filter(|r| !r.success)
        .all(|r| r.error.contains("interrupted")));
    let m = ExperimentManifest::read(&rdir.join("manifest.json")).unwrap();
    assert!(m.points[0].interrupted);
    assert!(!rdir.join("conc4.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_record_supplies_endpoint_model_and_labels() {
    use pd_common::deployment::{
        DeploymentRecord, DeploymentSpec, Replicas, ServingBackend, StopHandle,
    };
    // The record's deployment must be what answers: the simulator serving its label.
    let server = FakeServer::start_with(
        "127.0.0.1:0".parse().unwrap(),
        FakeOptions::new(
            "fake",
            Arc::new(|_: &RequestInfo| {
                Reply::Generate(GenSpec {
                    ttft: ms(2),
                    interval: ms(1),
                    tokens: None,
                    tokens_per_chunk: 1,
                })
            }),
        )
        .like_simulator("p1xtp2-d2xtp2"),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = DeploymentSpec::pd(
        pd_common::PdPlacement::Pack,
        Replicas { num: 1, tp: 2 },
        Replicas { num: 2, tp: 2 },
    );
    let record = DeploymentRecord {
        format_version: 1,
        backend: ServingBackend::Sim,
        base_url: server.url(),
        served_model_name: "fake".into(),
        label: spec.label(),
        total_gpus: spec.total_gpus(),
        gpus_per_node: 8,
        nodes: vec!["sim-node-0".into()],
        command: vec!["launch-gptoss".into()],
        tool_version: "0.1.0".into(),
        created_at: "2026-11-29T00:00:00+00:00".into(),
        network: None,
        software: Default::default(),
        env: Default::default(),
        spec,
        stop: StopHandle::Pid {
            pid: std::process::id(),
        },
    };
    let rec_path = dir.path().join("dep.toml");
    record.write(&rec_path).unwrap();
    let args = strings(&[
        "-c",
        "2",
        "--itl",
        "4",
        "--otl",
        "3",
        "--vocab-size",
        "100",
        "-e",
        "pd",
        "--deployment-file",
        rec_path.to_str().unwrap(),
    ]);
    let (code, out, err) = run_to_end(dir.path(), args).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let rdir = dir.path().join("bm_results/fake_itl4_otl3_mixed_pd");
    let r = BenchResult::read(&rdir.join("conc2.json")).unwrap();
    assert_eq!(
        r.model_id, "openai/gpt-oss-120b",
        "model source of the deployment"
    );
    let x = r.pd_lab.unwrap();
    assert_eq!(x.deployment_label.as_deref(), Some("p1xtp2-d2xtp2"));
    assert_eq!((x.total_gpus, x.gpus_per_node), (Some(6), Some(8)));
    assert_eq!(x.serving_backend, Some(ServingBackend::Sim));
    assert_eq!(x.deploy_mode, Some(pd_common::DeployMode::PdPack));
    let m = ExperimentManifest::read(&rdir.join("manifest.json")).unwrap();
    assert_eq!(m.deployment.unwrap().label, "p1xtp2-d2xtp2");
    assert!(!m.client_host.hostname.is_empty());
    assert_eq!(m.software["run-bm"], pd_common::VERSION);
    assert_eq!(
        m.software["vllm"], "fake-0",
        "server version from GET /version"
    );
}
