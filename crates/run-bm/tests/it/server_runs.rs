//! The load generator against the in-test fake OpenAI server: failures of every kind
//! are recorded with the server's message, the concurrency limit holds, the request
//! body is what vLLM expects, and the rate schedule is followed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pd_common::bench::{compute, MetricName, MetricOptions};
use pd_common::{BenchMode, Workload};
use pd_testkit::fake_openai::{FakeServer, GenSpec, Reply, RequestInfo, Script};
use run_bm::cancel::Cancel;
use run_bm::client::HttpClient;
use run_bm::prompt::{PromptFormat, PromptGen};
use run_bm::runner::{run_point, LiveStats, PointPlan, PointRun, RunSettings};

fn settings(url: &str, itl: u32, otl: u32, timeout: Duration) -> Arc<RunSettings> {
    let w = Workload::new(itl, otl, BenchMode::Mixed).unwrap();
    Arc::new(RunSettings {
        client: HttpClient::new(url, "/v1/completions", Some("sk-test")).unwrap(),
        model: "fake".into(),
        prompts: PromptGen::new(&w, PromptFormat::TokenIds, 3, 1000),
        max_tokens: w.output_len(),
        timeout,
        keep_text: false,
        continuous_usage: true,
        grace: Duration::from_millis(200),
        request_id_prefix: "t-".into(),
        expect_full_output: true,
        prewarm: true,
    })
}

fn plan(n: u64, rate: f64, c: Option<u64>) -> PointPlan {
    PointPlan {
        num_prompts: n,
        rate,
        burstiness: 1.0,
        max_concurrency: c,
        seed: 1,
        index_base: 0,
    }
}

async fn run(s: Arc<RunSettings>, p: &PointPlan) -> PointRun {
    run_point(s, p, &Cancel::new(), Arc::new(LiveStats::default())).await
}

/// Request index from the `x-request-id` header (`t-<index>`).
fn index_of(info: &RequestInfo) -> u64 {
    info.headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit('-').next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn sse(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

fn chunk(text: &str, usage: u64) -> String {
    format!("data: {{\"choices\":[{{\"index\":0,\"text\":\"{text}\"}}],\"usage\":{{\"prompt_tokens\":8,\"completion_tokens\":{usage}}}}}\n\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_kind_is_recorded_with_its_message() {
    let script: Script = Arc::new(|info: &RequestInfo| {
        match index_of(info) {
        0 => Reply::Frames {
            frames: vec![
                (ms(60), sse(&chunk("a", 1))),
                (ms(30), sse(&chunk("bcd", 4))),
                (ms(0), sse("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n")),
            ],
            then_break: false,
        },
        1 => Reply::Frames { frames: vec![(ms(5), sse(&chunk("a", 1))), (ms(5), sse(&chunk("b", 2)))], then_break: true },
        2 => Reply::Status {
            status: 400,
            body: r#"{"error":{"message":"This model's maximum context length is 4096 tokens. However, your prompt contains 5000 input tokens","type":"BadRequestError","param":"input_tokens","code":400}}"#.into(),
        },
        3 => Reply::Status {
            status: 404,
            body: r#"{"error":{"message":"The model `x` does not exist.","type":"NotFoundError","code":404}}"#.into(),
        },
        4 => Reply::Status { status: 500, body: "Internal Server Error".into() },
        5 => Reply::Frames { frames: vec![(ms(5), sse(&chunk("a", 1))), (ms(5), sse("data: {\"choices\": [oops\n\n"))], then_break: false },
        6 => Reply::Frames {
            frames: vec![(ms(5), sse(&chunk("a", 1))), (ms(5), sse("data: {\"error\":{\"object\":\"error\",\"message\":\"token id 300000 is out of vocabulary\",\"code\":400}}\n\n"))],
            then_break: false,
        },
        7 => Reply::Frames { frames: vec![(ms(5), sse("data: [DONE]\n\n"))], then_break: false },
        _ => Reply::Status { status: 404, body: r#"{"detail":"Model 'x' not found"}"#.into() },
    }
    });
    let server = FakeServer::start("fake", script, true).await.unwrap();
    let s = settings(&server.url(), 8, 4, Duration::from_secs(30));
    let r = run(s, &plan(9, f64::INFINITY, Some(3))).await;
    assert_eq!(r.outcomes.len(), 9);
    let o = &r.outcomes;
    assert!(o[0].is_success(), "{}", o[0].error_text());
    assert_eq!(
        (
            o[0].output_len(),
            o[0].chunks.tokens().collect::<Vec<_>>(),
            o[0].chunks.gaps().len()
        ),
        (4, vec![1, 3], 1)
    );
    assert!(o[0].ttft >= 0.055 && o[0].ttft < 5.0, "ttft {}", o[0].ttft);
    assert!(
        o[0].chunks.gaps().next().unwrap_or(f64::NAN) >= 0.025,
        "itl {}",
        o[0].chunks.gaps().next().unwrap_or(f64::NAN)
    );
    let expect: [(usize, u16, &str); 8] = [
        (1, 200, "stream broken after "),
        (
            2,
            400,
            "HTTP 400 Bad Request: This model's maximum context length is 4096 tokens",
        ),
        (3, 404, "HTTP 404 Not Found: The model `x` does not exist."),
        (
            4,
            500,
            "HTTP 500 Internal Server Error: Internal Server Error",
        ),
        (5, 200, "invalid JSON in SSE event"),
        (
            6,
            200,
            "server sent an error event: token id 300000 is out of vocabulary",
        ),
        (7, 200, "Never received a valid chunk"),
        (8, 404, "HTTP 404 Not Found: Model 'x' not found"),
    ];
    for (i, status, msg) in expect {
        assert!(!o[i].is_success(), "{i}");
        assert_eq!(o[i].http_status, status, "{i}: {}", o[i].error_text());
        assert!(
            o[i].error_text().contains(msg),
            "{i}: {}",
            o[i].error_text()
        );
    }
    let m = compute(
        &r.outcomes,
        r.duration,
        &MetricOptions {
            metrics: vec![MetricName::Ttft, MetricName::Tpot, MetricName::Itl],
            percentiles: vec![99.0],
            goodput: None,
            has_max_concurrency: true,
            finite_rate: false,
        },
    );
    assert_eq!(
        (
            m.completed,
            m.failed,
            m.total_output_tokens,
            m.total_input_tokens
        ),
        (1, 8, 4, 8)
    );
    // Authorization is sent when an API key is given.
    assert_eq!(
        server
            .stats
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        9
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_is_never_exceeded_and_body_is_vllm_shaped() {
    let spec = GenSpec {
        ttft: ms(5),
        interval: ms(2),
        tokens: None,
        tokens_per_chunk: 1,
    };
    let server = FakeServer::start(
        "fake",
        Arc::new(move |_: &RequestInfo| Reply::Generate(spec)),
        true,
    )
    .await
    .unwrap();
    let s = settings(&server.url(), 32, 6, Duration::from_secs(30));
    let r = run(s, &plan(40, f64::INFINITY, Some(4))).await;
    assert_eq!(r.outcomes.iter().filter(|o| o.is_success()).count(), 40);
    let peak = server
        .stats
        .max_in_flight
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (1..=4).contains(&peak),
        "server saw {peak} requests in flight"
    );
    let m = compute(
        &r.outcomes,
        r.duration,
        &MetricOptions {
            metrics: vec![MetricName::Tpot],
            percentiles: vec![99.0],
            goodput: None,
            has_max_concurrency: true,
            finite_rate: false,
        },
    );
    assert!(m.max_concurrent_requests_exact <= 4);
    assert_eq!(m.total_output_tokens, 240);
    assert_eq!(m.total_input_tokens, 40 * 32);
    let bodies = server.stats.bodies.lock().unwrap().clone();
    let b = &bodies[0];
    let keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "model",
            "prompt",
            "repetition_penalty",
            "max_tokens",
            "logprobs",
            "stream",
            "stream_options",
            "ignore_eos"
        ]
    );
    assert_eq!(b["model"], "fake");
    assert_eq!(b["max_tokens"], 6);
    assert_eq!(b["ignore_eos"], true);
    assert_eq!(b["stream_options"]["include_usage"], true);
    assert_eq!(b["stream_options"]["continuous_usage_stats"], true);
    let prompts: std::collections::HashSet<String> =
        bodies.iter().map(|b| b["prompt"].to_string()).collect();
    assert_eq!(prompts.len(), 40, "every prompt is unique in mixed mode");
    for b in &bodies {
        let ids = b["prompt"].as_array().unwrap();
        assert_eq!(ids.len(), 32);
        assert!(ids.iter().all(|v| v.as_u64().unwrap() < 1000));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_schedule_is_followed_and_timeout_fails_a_request() {
    let spec = GenSpec {
        ttft: ms(2),
        interval: ms(1),
        tokens: None,
        tokens_per_chunk: 2,
    };
    let server = FakeServer::start(
        "fake",
        Arc::new(move |_: &RequestInfo| Reply::Generate(spec)),
        false,
    )
    .await
    .unwrap();
    let s = settings(&server.url(), 4, 4, Duration::from_secs(30));
    let r = run(s, &plan(20, 50.0, None)).await;
    assert_eq!(r.schedule.len(), 20);
    assert!((r.schedule[19] - 0.4).abs() < 1e-9, "normalised to N/rate");
    for o in &r.outcomes {
        assert!(o.is_success());
        assert!(o.sent_s + 1e-6 >= o.scheduled_s, "never sent early");
        assert_eq!(
            o.chunks.tokens().collect::<Vec<_>>(),
            vec![2, 2],
            "2 tokens per chunk counted from usage"
        );
    }
    assert!(r.duration >= 0.4);

    let slow = FakeServer::start(
        "fake",
        Arc::new(|_: &RequestInfo| Reply::Frames {
            frames: vec![(Duration::from_secs(5), sse(&chunk("a", 1)))],
            then_break: false,
        }),
        false,
    )
    .await
    .unwrap();
    let s = settings(&slow.url(), 4, 4, Duration::from_millis(300));
    let r = run(s, &plan(1, f64::INFINITY, Some(1))).await;
    assert!(!r.outcomes[0].is_success());
    assert!(
        r.outcomes[0].error_text().contains("timed out after 0.3 s"),
        "{}",
        r.outcomes[0].error_text()
    );
}
