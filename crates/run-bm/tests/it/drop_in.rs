//! Drop-in both ways, asserted on the wire: `vllm bench serve` flags reach the request
//! bytes and headers (fake server recording every request as it arrived), https against a
//! local TLS server with a self-signed certificate made in the test, the seed's and
//! `vllm bench sweep`'s exact command lines, waiting for the server, and learning the
//! server's limits before load.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{run_to_end_env, strs};
use pd_common::{BenchResult, RequestRate};
use pd_testkit::fake_openai::{FakeServer, GenSpec, RecordedRequest, Reply, RequestInfo};
use pd_testkit::tls::TlsFront;

fn spec() -> GenSpec {
    GenSpec {
        ttft: Duration::from_millis(5),
        interval: Duration::from_millis(2),
        tokens: None,
        tokens_per_chunk: 1,
    }
}

async fn recording_server() -> FakeServer {
    FakeServer::start(
        "fake",
        Arc::new(|_: &RequestInfo| Reply::Generate(spec())),
        true,
    )
    .await
    .unwrap()
}

async fn run(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    run_to_end_env(dir, strs(args), vec![]).await
}

/// Measured requests (the one-token vocabulary check has no `stream_options`).
fn measured(server: &FakeServer) -> Vec<RecordedRequest> {
    server
        .stats
        .recorded
        .lock()
        .unwrap()
        .iter()
        .filter(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.raw_body).unwrap();
            v.get("stream_options").is_some()
        })
        .cloned()
        .collect()
}

fn header<'a>(r: &'a RecordedRequest, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The prompt of a recorded body, serialized compactly (as run-bm writes it).
fn prompt_json(raw: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(raw).unwrap();
    serde_json::to_string(&v["prompt"]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_body_bytes_are_unchanged() {
    let server = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let (code, out, err) = run(
        dir.path(),
        &[
            "-c",
            "1",
            "--num-prompts",
            "1",
            "--itl",
            "3",
            "--otl",
            "2",
            "--vocab-size",
            "50",
            "-u",
            &url,
            "-m",
            "fake",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let reqs = measured(&server);
    assert_eq!(reqs.len(), 1);
    let raw = String::from_utf8(reqs[0].raw_body.to_vec()).unwrap();
    assert_eq!(
        raw,
        format!(
            r#"{{"model":"fake","prompt":{},"repetition_penalty":1.0,"max_tokens":2,"logprobs":null,"stream":true,"stream_options":{{"include_usage":true,"continuous_usage_stats":true}},"ignore_eos":true}}"#,
            prompt_json(&reqs[0].raw_body)
        )
    );
    assert_eq!(reqs[0].path, "/v1/completions");
    assert!(header(&reqs[0], "x-request-id").starts_with("run-bm-"));
    assert!(reqs[0].headers.get("authorization").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_sampling_and_extra_body_reach_the_wire() {
    let server = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let (code, out, err) = run(
        dir.path(),
        &[
            "-c",
            "1",
            "--num-prompts",
            "2",
            "--itl",
            "4",
            "--otl",
            "3",
            "--vocab-size",
            "50",
            "-u",
            &url,
            "-m",
            "fake",
            "-e",
            "w",
            "--api-key",
            "sk-1",
            "--header",
            "x-team=perf",
            "x-trace = a=b",
            "--temperature",
            "0",
            "--top-p",
            "0.9",
            "--top-k",
            "-1",
            "--min-p",
            "0.1",
            "--frequency-penalty",
            "0.5",
            "--presence-penalty",
            "-0.5",
            "--repetition-penalty",
            "1.1",
            "--extra-body",
            r#"{"top_k": 5, "chat_template_kwargs": {"enable_thinking": false}}"#,
            "--no-ignore-eos",
            "--logprobs",
            "2",
            "--request-id-prefix",
            "pfx-",
            "--metadata",
            "run=7",
            "note = x y",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let reqs = measured(&server);
    assert_eq!(reqs.len(), 2);
    let mut ids: Vec<&str> = reqs.iter().map(|r| header(r, "x-request-id")).collect();
    ids.sort();
    assert_eq!(ids, ["pfx-0", "pfx-1"]);
    for r in &reqs {
        assert_eq!(header(r, "x-team"), "perf");
        assert_eq!(header(r, "x-trace"), "a=b");
        assert_eq!(header(r, "authorization"), "Bearer sk-1");
        assert_eq!(header(r, "content-type"), "application/json");
        // vLLM's key order; sampling flags then --extra-body merged as dict.update (a key
        // already there keeps its place), no ignore_eos.
        assert_eq!(
            String::from_utf8(r.raw_body.to_vec()).unwrap(),
            format!(
                r#"{{"model":"fake","prompt":{},"repetition_penalty":1.1,"max_tokens":3,"logprobs":2,"stream":true,"stream_options":{{"include_usage":true,"continuous_usage_stats":true}},"top_p":0.9,"top_k":5,"min_p":0.1,"temperature":0.0,"frequency_penalty":0.5,"presence_penalty":-0.5,"chat_template_kwargs":{{"enable_thinking":false}}}}"#,
                prompt_json(&r.raw_body)
            )
        );
    }
    let path = dir
        .path()
        .join("bm_results/fake_itl4_otl3_mixed_w/conc1.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        (v["run"].as_str(), v["note"].as_str()),
        (Some("7"), Some("x y"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_endpoint_streams_deltas() {
    let server = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let (code, out, err) = run(
        dir.path(),
        &[
            "--backend",
            "openai-chat",
            "-c",
            "2",
            "--num-prompts",
            "4",
            "--itl",
            "5",
            "--otl",
            "3",
            "-u",
            &url,
            "-m",
            "fake",
            "--save-detailed",
            "--result-dir",
            "out",
            "--result-filename",
            "chat.json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let reqs = server.stats.recorded.lock().unwrap().clone();
    assert_eq!(reqs.len(), 4, "no vocabulary check for text prompts");
    for r in &reqs {
        assert_eq!(r.path, "/v1/chat/completions");
        let v: serde_json::Value = serde_json::from_slice(&r.raw_body).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "model",
                "messages",
                "max_completion_tokens",
                "stream",
                "stream_options",
                "ignore_eos"
            ]
        );
        assert_eq!(v["messages"][0]["role"], "user");
        let text = v["messages"][0]["content"][0]["text"].as_str().unwrap();
        assert_eq!(text.split(' ').count(), 5);
        assert_eq!(v["max_completion_tokens"], 3);
    }
    let r = BenchResult::read(&dir.path().join("out/chat.json")).unwrap();
    assert_eq!(
        (r.backend.as_str(), r.completed, r.total_output_tokens),
        ("openai-chat", 4, 12)
    );
    assert_eq!(r.generated_texts.unwrap(), vec![" x x x"; 4]);
    // A role-only delta before the content: 4 chunk events (3 gaps) for 3 tokens.
    assert!(r.itls.unwrap().iter().all(|g| g.len() == 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_test_on_the_chat_endpoint() {
    let server = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let (code, out, err) = run(
        dir.path(),
        &["-s", "--backend", "openai-chat", "-u", &url, "-m", "fake"],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Smoke test passed"), "{out}");
    let reqs = server.stats.recorded.lock().unwrap().clone();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    let v: serde_json::Value = serde_json::from_slice(&reqs[0].raw_body).unwrap();
    assert_eq!(v["messages"][0]["content"][0]["text"], "Count: 1, 2, 3,");
    assert_eq!(v["max_completion_tokens"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_self_signed_certificate() {
    let server = recording_server().await;
    let front = TlsFront::start(server.addr).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &front.cert.cert_pem).unwrap();
    let ca = ca.to_str().unwrap().to_string();
    let https = front.url();
    let localhost = format!("https://localhost:{}", front.addr.port());
    let base = [
        "-c",
        "1",
        "--num-prompts",
        "2",
        "--itl",
        "2",
        "--otl",
        "2",
        "--vocab-size",
        "10",
        "-m",
        "fake",
    ];
    let with = |extra: &[&str]| {
        let mut v: Vec<&str> = base.to_vec();
        v.extend_from_slice(extra);
        strs(&v)
    };
    let (code, out, err) =
        run_to_end_env(dir.path(), with(&["-u", &https, "--ca-cert", &ca]), vec![]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(server.stats.requests.load(Ordering::SeqCst), 2);
    let (code, _, err) = run_to_end_env(
        dir.path(),
        with(&["-u", &localhost, "--ca-cert", &ca]),
        vec![],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    // Not trusted: refused before any load.
    let (code, _, err) = run_to_end_env(dir.path(), with(&["-u", &https]), vec![]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let (code, _, err) =
        run_to_end_env(dir.path(), with(&["-u", &https, "--insecure"]), vec![]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(server.stats.requests.load(Ordering::SeqCst), 6);
}

/// The `vllm bench serve` lines of the seed's run_bm.sh (a concurrency point and a
/// request-rate point), given to run-bm unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_bm_sh_command_lines_replay() {
    let server = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let common = |n: &str, c: &str, r: &str, file: &str| {
        strs(&[
            "--model",
            "openai/gpt-oss-120b",
            "--served-model-name",
            "fake",
            "--backend",
            "vllm",
            "--base-url",
            &url,
            "--ignore-eos",
            "--num-prompts",
            n,
            "--max-concurrency",
            c,
            "--request-rate",
            r,
            "--dataset-name",
            "prefix_repetition",
            "--prefix-repetition-prefix-len",
            "0",
            "--prefix-repetition-suffix-len",
            "16",
            "--prefix-repetition-num-prefixes",
            "1",
            "--prefix-repetition-output-len",
            "5",
            "--save-result",
            "--result-dir",
            "res",
            "--result-filename",
            file,
        ])
    };
    let (code, out, err) = run_to_end_env(
        dir.path(),
        common("8", "4", "1000000000", "conc4.json"),
        vec![],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = run_to_end_env(
        dir.path(),
        common("6", "1000000000", "50", "rr50.json"),
        vec![],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let c = BenchResult::read(&dir.path().join("res/conc4.json")).unwrap();
    assert_eq!(
        (
            c.num_prompts,
            c.completed,
            c.max_concurrency,
            c.request_rate
        ),
        (8, 8, Some(4), RequestRate::Finite(1e9))
    );
    assert_eq!(
        (c.model_id.as_str(), c.total_output_tokens),
        ("openai/gpt-oss-120b", 40)
    );
    let r = BenchResult::read(&dir.path().join("res/rr50.json")).unwrap();
    assert_eq!(
        (
            r.num_prompts,
            r.completed,
            r.max_concurrency,
            r.request_rate
        ),
        (6, 6, Some(1_000_000_000), RequestRate::Finite(50.0))
    );
    // GPT-OSS model: no vocabulary check; 16-token id prompts.
    let reqs = server.stats.recorded.lock().unwrap().clone();
    assert_eq!(reqs.len(), 14);
    for q in &reqs {
        let v: serde_json::Value = serde_json::from_slice(&q.raw_body).unwrap();
        assert_eq!(v["prompt"].as_array().unwrap().len(), 16);
        assert_eq!(v["max_tokens"], 5);
    }
}

/// `vllm bench sweep serve` runs `<bench cmd with the params applied> --percentile-metrics
/// ttft,tpot,itl,e2el --save-result --result-dir DIR --result-filename run=N.json`
/// (vllm/benchmarks/sweep/serve.py `run_benchmark`), applying params as
/// `ParameterSweepItem.apply_to_cmd` does: a flag already in the command is replaced in
/// place (a false boolean becomes `--no-<flag>`), a new one is appended. This is the
/// line it builds for bench params `{"max_concurrency": 2, "ignore_eos": false,
/// "request_rate": 50, "save_detailed": true}` and the bench command below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_bench_sweep_command_line_runs() {
    let server = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let bench_cmd = [
        "--backend",
        "vllm",
        "--base-url",
        &url,
        "--model",
        "fake",
        "--dataset-name",
        "random",
        "--random-input-len",
        "8",
        "--random-output-len",
        "4",
        "--num-prompts",
        "6",
        "--ignore-eos",
    ];
    let mut argv: Vec<&str> = bench_cmd.to_vec();
    let i = argv.iter().position(|a| *a == "--ignore-eos").unwrap();
    argv[i] = "--no-ignore-eos";
    argv.extend([
        "--max-concurrency",
        "2",
        "--request-rate",
        "50",
        "--save-detailed",
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--save-result",
        "--result-dir",
        "SERVE--BENCH-max_concurrency=2",
        "--result-filename",
        "run=0.json",
    ]);
    let (code, out, err) = run(dir.path(), &argv).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let path = dir.path().join("SERVE--BENCH-max_concurrency=2/run=0.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for key in [
        "request_throughput",
        "mean_e2el_ms",
        "p99_e2el_ms",
        "output_throughput",
        "total_token_throughput",
        "median_ttft_ms",
    ] {
        assert!(v[key].is_number(), "{key}");
    }
    assert_eq!(
        (v["request_rate"].as_f64(), v["max_concurrency"].as_u64()),
        (Some(50.0), Some(2))
    );
    assert_eq!(v["num_prompts"], 6);
    assert_eq!(v["input_lens"], serde_json::json!([8, 8, 8, 8, 8, 8]));
    let reqs = measured(&server);
    assert_eq!(reqs.len(), 6);
    for q in &reqs {
        let b: serde_json::Value = serde_json::from_slice(&q.raw_body).unwrap();
        assert!(b.get("ignore_eos").is_none(), "--no-ignore-eos");
        assert_eq!(
            (
                b["prompt"].as_array().unwrap().len(),
                b["max_tokens"].as_u64()
            ),
            (8, Some(4))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_check_waits_for_the_server() {
    let port = pd_testkit::net::free_port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let args = strs(&[
        "--ready-check-timeout-sec",
        "60",
        "-u",
        &url,
        "-m",
        "fake",
        "--vocab-size",
        "10",
        "-c",
        "1",
        "--num-prompts",
        "1",
        "--itl",
        "2",
        "--otl",
        "2",
    ]);
    let d = dir.path().to_path_buf();
    let child = tokio::spawn(async move { run_to_end_env(&d, args, vec![]).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let server = FakeServer::start_on(
        format!("127.0.0.1:{port}").parse().unwrap(),
        "fake",
        Arc::new(|_: &RequestInfo| Reply::Generate(spec())),
        false,
    )
    .await
    .unwrap();
    let (code, out, err) = child.await.unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("waiting up to 60 s"), "{err}");
    assert_eq!(server.stats.requests.load(Ordering::SeqCst), 1);
    // Nobody answers: a clear error after the timeout.
    let port = pd_testkit::net::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let (code, _, err) = run(
        dir.path(),
        &[
            "--ready-check-timeout-sec",
            "1",
            "-u",
            &url,
            "-m",
            "fake",
            "-c",
            "1",
        ],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not ready within 1 s"), "{err}");
}

/// A server with a 50-token vocabulary, rejecting larger ids as vLLM does.
async fn small_vocab_server() -> FakeServer {
    FakeServer::start(
        "fake",
        Arc::new(|info: &RequestInfo| {
            let too_big = info.body["prompt"]
                .as_array()
                .and_then(|a| a.iter().filter_map(|x| x.as_u64()).find(|&x| x >= 50));
            match too_big {
                Some(id) => Reply::Status {
                    status: 400,
                    body: format!(
                        r#"{{"object":"error","message":"Token id {id} is out of vocabulary","type":"BadRequestError","param":null,"code":400}}"#
                    ),
                },
                None => Reply::Generate(spec()),
            }
        }),
        false,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vocabulary_is_learned_or_the_fix_is_named() {
    let server = small_vocab_server().await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let (code, out, err) = run(
        dir.path(),
        &[
            "-c",
            "1",
            "--num-prompts",
            "3",
            "--itl",
            "30",
            "--otl",
            "2",
            "-u",
            &url,
            "-m",
            "fake",
            "--result-dir",
            "o",
            "--result-filename",
            "a.json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("rejects token ids ≥ 50"), "{err}");
    let r = BenchResult::read(&dir.path().join("o/a.json")).unwrap();
    assert_eq!((r.completed, r.failed), (3, Some(0)));
    assert_eq!(r.pd_lab.unwrap().other["dataset"]["vocab_size"], 50);
    // An explicit --vocab-size is trusted; the failures name the fix.
    let (code, _, err) = run(
        dir.path(),
        &[
            "-c",
            "1",
            "--num-prompts",
            "2",
            "--itl",
            "30",
            "--otl",
            "2",
            "-u",
            &url,
            "-m",
            "fake",
            "--vocab-size",
            "100",
        ],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("out of vocabulary"), "{err}");
    // Each distinct error once, each followed by its fix.
    let failed: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("request(s) failed:"))
        .collect();
    let distinct: std::collections::HashSet<&&str> = failed.iter().collect();
    assert_eq!(distinct.len(), failed.len(), "{err}");
    assert_eq!(
        err.matches("fix: give --tokenizer").count(),
        failed.len(),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_length_is_checked_before_load() {
    let server = recording_server().await;
    server.stats.max_model_len.store(50, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let (code, _, err) = run(
        dir.path(),
        &[
            "-c",
            "1",
            "--itl",
            "40",
            "--otl",
            "20",
            "--vocab-size",
            "10",
            "-u",
            &url,
            "-m",
            "fake",
        ],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("context of 50 tokens") && err.contains("--itl/--otl"),
        "{err}"
    );
    assert_eq!(server.stats.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_without_type_runs_a_rate_point() {
    let server = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let (code, out, err) = run(
        dir.path(),
        &[
            "-r",
            "40.0",
            "--num-prompts",
            "4",
            "--itl",
            "2",
            "--otl",
            "2",
            "--vocab-size",
            "10",
            "-u",
            &url,
            "-m",
            "fake",
            "-e",
            "r",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let r = BenchResult::read(
        &dir.path()
            .join("bm_results/fake_itl2_otl2_mixed_r/rr40.0.json"),
    )
    .unwrap();
    assert_eq!(
        (r.request_rate, r.max_concurrency, r.completed),
        (RequestRate::Finite(40.0), Some(1_000_000_000), 4)
    );
}
