//! HTTP protocol of the simulator server: vLLM's SSE shape, usage, errors, endpoints.

use std::time::Duration;

use crate::sim_common::{post, send, sse_events, TestServer, MAX_MODEL_LEN};
use serde_json::{json, Value};

fn ids(n: usize) -> Vec<u32> {
    ids_from(0, n)
}

/// `n` token ids; different `start`s give prompts with no common prefix.
fn ids_from(start: u32, n: usize) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (start + i * 7919) % 200_000)
        .collect()
}

fn parse_chunks(events: &[String]) -> Vec<Value> {
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "stream ends with [DONE]"
    );
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_like_vllm_with_final_usage() {
    let srv = TestServer::start().await;
    let r = post(
        srv.addr,
        &json!({"model": "gptoss", "prompt": ids(100), "max_tokens": 5, "stream": true,
                "ignore_eos": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(r.header("x-pd-lab-backend"), Some("sim"));
    let chunks = parse_chunks(&sse_events(&r.body));
    let (usage, tokens) = chunks.split_last().unwrap();
    let id = tokens[0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("cmpl-"));
    assert_eq!(r.header("x-request-id"), Some(id.as_str()));
    let mut words = 0;
    for (i, c) in tokens.iter().enumerate() {
        assert_eq!(c["id"], id.as_str());
        assert_eq!(c["object"], "text_completion");
        assert!(c["created"].as_u64().unwrap() > 1_700_000_000);
        assert_eq!(c["model"], "gptoss");
        assert_eq!(c["usage"], Value::Null);
        let ch = c["choices"].as_array().unwrap();
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0]["index"], 0);
        assert_eq!(ch[0]["logprobs"], Value::Null);
        assert_eq!(ch[0]["stop_reason"], Value::Null);
        let last = i == tokens.len() - 1;
        assert_eq!(
            ch[0]["finish_reason"],
            if last { json!("length") } else { Value::Null }
        );
        words += ch[0]["text"].as_str().unwrap().matches(' ').count();
    }
    assert_eq!(words, 5, "one filler word per token");
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 100, "total_tokens": 105, "completion_tokens": 5})
    );
    assert_eq!(usage["id"], id.as_str());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_without_usage_and_with_continuous_usage() {
    let srv = TestServer::start().await;
    let r = post(
        srv.addr,
        &json!({"prompt": ids(32), "max_tokens": 3, "stream": true}),
    )
    .await;
    let chunks = parse_chunks(&sse_events(&r.body));
    assert!(chunks
        .iter()
        .all(|c| c["choices"].as_array().unwrap().len() == 1 && c["usage"].is_null()));

    let r = post(
        srv.addr,
        &json!({"prompt": ids(32), "max_tokens": 4, "stream": true, "return_token_ids": true,
                "stream_options": {"include_usage": true, "continuous_usage_stats": true}}),
    )
    .await;
    let chunks = parse_chunks(&sse_events(&r.body));
    let (usage, tokens) = chunks.split_last().unwrap();
    let mut seen = 0;
    for c in tokens {
        let n = c["choices"][0]["token_ids"].as_array().unwrap().len() as u64;
        seen += n;
        assert_eq!(c["usage"]["completion_tokens"], seen, "running usage");
        assert_eq!(c["usage"]["prompt_tokens"], 32);
        assert_eq!(c["usage"]["total_tokens"], 32 + seen);
    }
    assert_eq!(seen, 4);
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_text_prompt_and_clamp() {
    let srv = TestServer::start().await;
    // Text prompt: 40 characters count as 10 tokens; default max_tokens is 16.
    let r = post(
        srv.addr,
        &json!({"model": "gptoss", "prompt": "abcd".repeat(10)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(
        v["choices"][0]["text"]
            .as_str()
            .unwrap()
            .matches(' ')
            .count(),
        16
    );
    assert_eq!(v["usage"]["prompt_tokens"], 10);
    assert_eq!(v["usage"]["completion_tokens"], 16);
    assert_eq!(v["usage"]["total_tokens"], 26);

    // Silent clamp: prompt + max_tokens over the context is cut, not refused.
    let len = MAX_MODEL_LEN as usize - 3;
    let r = post(
        srv.addr,
        &json!({"prompt": ids(len), "max_tokens": 100, "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let chunks = parse_chunks(&sse_events(&r.body));
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 3);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_like_vllm() {
    let srv = TestServer::start().await;
    // Over the context: 400 plain JSON even with stream: true.
    let n = MAX_MODEL_LEN as usize + 500;
    let r = post(
        srv.addr,
        &json!({"model": "gptoss", "prompt": ids(n), "max_tokens": 10, "stream": true}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let e = &r.json()["error"];
    assert_eq!(e["type"], "BadRequestError");
    assert_eq!(e["param"], "input_tokens");
    assert_eq!(e["code"], 400);
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "This model's maximum context length is 16000 tokens. However, your prompt contains {n} input tokens"
        )),
        "{msg}"
    );
    // Unknown model: 404.
    let r = post(srv.addr, &json!({"model": "llama", "prompt": [1, 2]})).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "NotFoundError");
    assert_eq!(
        r.json()["error"]["message"],
        "The model `llama` does not exist."
    );
    // Token id out of vocabulary: 400.
    let r = post(srv.addr, &json!({"prompt": [1, 201088], "stream": true})).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("201088"));
    // Malformed JSON: 400.
    let r = send(
        srv.addr,
        "POST",
        "/v1/completions",
        Some("{\"prompt\": [1,"),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_u64()),
        (400, Some(400))
    );
    // Unknown route and wrong method.
    assert_eq!(send(srv.addr, "GET", "/nope", None).await.status, 404);
    assert_eq!(
        send(srv.addr, "GET", "/v1/completions", None).await.status,
        405
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_health_version_metrics() {
    let srv = TestServer::start().await;
    let r = send(srv.addr, "GET", "/v1/models", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-pd-lab-backend"), Some("sim"));
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "gptoss");
    assert_eq!(v["data"][0]["object"], "model");
    assert_eq!(v["data"][0]["root"], "openai/gpt-oss-120b");
    assert_eq!(v["data"][0]["max_model_len"], MAX_MODEL_LEN);
    assert_eq!(send(srv.addr, "GET", "/health", None).await.status, 200);
    let v = send(srv.addr, "GET", "/version", None).await.json();
    assert_eq!(
        (v["server"].as_str(), v["backend"].as_str()),
        (Some("pd-lab-sim"), Some("sim"))
    );

    post(
        srv.addr,
        &json!({"prompt": ids_from(1, 50), "max_tokens": 7}),
    )
    .await;
    post(
        srv.addr,
        &json!({"prompt": ids_from(2, 30), "max_tokens": 3, "stream": true}),
    )
    .await;
    let r = send(srv.addr, "GET", "/metrics", None).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let page = &r.body;
    use launch_gptoss::sim::metrics::{quantile, sample};
    for name in [
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:gpu_cache_usage_perc",
        "vllm:kv_cache_usage_perc",
        "pdlab_sim_uptime_seconds",
    ] {
        assert!(sample(page, name).is_some(), "{name} missing:\n{page}");
    }
    assert_eq!(
        sample(page, "vllm:prompt_tokens_total"),
        Some(80.0),
        "{page}"
    );
    assert_eq!(sample(page, "vllm:generation_tokens_total"), Some(10.0));
    assert_eq!(sample(page, "pdlab_sim_requests_total"), Some(2.0));
    assert_eq!(
        sample(page, "pdlab_sim_emission_lag_seconds_count"),
        Some(srv.monitor.emission_lag().count as f64)
    );
    assert!(quantile(page, "pdlab_sim_emission_lag_seconds", "0.99").is_some());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_cancels_the_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::start().await;
    let body = json!({"prompt": ids(64), "max_tokens": 10000, "stream": true}).to_string();
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let head = format!(
        "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = String::new();
    while !got.contains("text_completion") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    drop(s);
    let mut page = String::new();
    for _ in 0..250 {
        page = send(srv.addr, "GET", "/metrics", None).await.body;
        let m = |n| launch_gptoss::sim::metrics::sample(&page, n);
        if m("pdlab_sim_requests_cancelled_total") == Some(1.0)
            && m("pdlab_sim_active_streams") == Some(0.0)
            && m("vllm:num_requests_running") == Some(0.0)
        {
            srv.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("request not cancelled after disconnect:\n{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_streams_all_complete() {
    let srv = TestServer::start().await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            let r = post(
                addr,
                &json!({"prompt": ids(16 + i), "max_tokens": 8, "stream": true,
                        "stream_options": {"include_usage": true}}),
            )
            .await;
            let chunks = parse_chunks(&sse_events(&r.body));
            chunks.last().unwrap()["usage"]["completion_tokens"]
                .as_u64()
                .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 8);
    }
    let lag = srv.monitor.emission_lag();
    assert!(lag.count >= 64, "{lag:?}");
    srv.stop().await;
}
