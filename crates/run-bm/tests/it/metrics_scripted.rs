//! Metrics of scripted streams equal hand-computed values.
//!
//! The streams are fed through the real SSE parser and stream recorder with scripted
//! (virtual) timestamps, so the expected values are exact on any machine load.

use std::time::{Duration, Instant};

use pd_common::bench::{compute, FailureKind, Goodput, MetricName, MetricOptions, RequestOutcome};
use run_bm::chunk::StreamRecorder;
use run_bm::client::RequestError;
use run_bm::runner::{outcome_from, RequestPlacement};
use run_bm::sse::SseParser;

/// Feed `frames` (ms after `st`, bytes) and return the outcome.
fn scripted(t0: Instant, sent_ms: u64, frames: &[(u64, &str)], index: u64) -> RequestOutcome {
    let st = t0 + Duration::from_millis(sent_ms);
    let mut rec = StreamRecorder::new(st, 8, true);
    let mut parser = SseParser::new();
    let mut result = Ok(());
    for (ms, bytes) in frames {
        let t = st + Duration::from_millis(*ms);
        if let Err(e) = parser.feed(bytes.as_bytes(), |p| rec.on_payload(p, t)) {
            result = Err(RequestError::new(
                FailureKind::Malformed,
                200,
                e.to_string(),
            ));
            break;
        }
    }
    if result.is_ok() {
        parser.finish(|p| rec.on_payload(p, st)).unwrap();
    }
    outcome_from(
        &mut rec,
        result,
        t0,
        RequestPlacement {
            index,
            scheduled_s: 0.0,
            arrival_s: 0.0,
            client_prompt_len: 10,
        },
    )
}

fn chunk(text: &str, usage: Option<u64>) -> String {
    let u = usage.map_or(String::new(), |c| {
        format!(",\"usage\":{{\"prompt_tokens\":10,\"completion_tokens\":{c}}}")
    });
    format!("data: {{\"id\":\"c\",\"choices\":[{{\"index\":0,\"text\":\"{text}\",\"finish_reason\":null}}]{u}}}\n\n")
}

fn close(f64a: f64, f64b: f64) -> bool {
    (f64a - f64b).abs() < 1e-6
}

fn opts(goodput: Option<Goodput>) -> MetricOptions {
    MetricOptions {
        metrics: vec![
            MetricName::Ttft,
            MetricName::Tpot,
            MetricName::Itl,
            MetricName::E2el,
        ],
        percentiles: vec![50.0, 99.0],
        goodput,
        has_max_concurrency: true,
        finite_rate: false,
    }
}

fn scripted_point() -> Vec<RequestOutcome> {
    let t0 = Instant::now();
    // A: sent at 0; chunks at 100 (1 token), 130 (two messages in one read: 1 token and
    // a 2-token chunk), 170 (1 token, then the usage message and [DONE] in the same read).
    let a_130 = format!("{}{}", chunk("b", Some(2)), chunk("cd", Some(4)));
    let a_170 = format!(
        "{}data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":10,\"completion_tokens\":5}}}}\n\ndata: [DONE]\n\n",
        chunk("e", Some(5))
    );
    let a1 = chunk("a", Some(1));
    let a = scripted(t0, 0, &[(100, &a1), (130, &a_130), (170, &a_170)], 0);
    // B: sent at 950; no per-chunk usage; chunks at +200 and +250, usage says 2 tokens
    // and 20 prompt tokens; the SSE message is split across reads.
    let b1 = chunk("x", None);
    let (b1a, b1b) = b1.split_at(7);
    let b_tail = format!(
        "{}data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":20,\"completion_tokens\":2}}}}\n\n",
        chunk("y", None)
    );
    let b = scripted(t0, 950, &[(190, b1a), (200, b1b), (250, &b_tail)], 1);
    // C: malformed SSE after one chunk: failed, excluded.
    let c1 = chunk("z", Some(1));
    let c = scripted(t0, 10, &[(50, &c1), (60, "data: {not json}\n\n")], 2);
    // D: an error event inside a 200 stream: failed, excluded.
    let d1 = chunk("z", Some(1));
    let d = scripted(
        t0,
        20,
        &[(30, &d1), (40, "data: {\"error\":{\"message\":\"token id 300000 is out of vocabulary\",\"code\":400}}\n\n")],
        3,
    );
    vec![a, b, c, d]
}

#[test]
fn per_request_records() {
    let p = scripted_point();
    let (a, b, c, d) = (&p[0], &p[1], &p[2], &p[3]);
    assert!(a.is_success() && b.is_success() && !c.is_success() && !d.is_success());
    assert!(close(a.ttft, 0.1) && close(a.latency, 0.17));
    assert_eq!(a.chunks.gaps().len(), 3);
    assert!(
        close(a.chunks.gaps().next().unwrap_or(f64::NAN), 0.03)
            && close(a.chunks.gaps().nth(1).unwrap_or(f64::NAN), 0.0)
            && close(a.chunks.gaps().nth(2).unwrap_or(f64::NAN), 0.04)
    );
    assert_eq!(a.chunks.tokens().collect::<Vec<_>>(), vec![1, 1, 2, 1]);
    assert_eq!((a.output_len(), a.prompt_len), (5, 10));
    assert_eq!(a.text, "abcde");
    assert!(close(a.tpot().unwrap(), 0.0175));
    assert!(close(b.sent_s, 0.95) && close(b.ttft, 0.2) && close(b.latency, 0.25));
    assert_eq!(
        (
            b.output_len(),
            b.prompt_len,
            b.chunks.tokens().collect::<Vec<_>>()
        ),
        (2, 20, vec![1, 1])
    );
    assert!(
        c.error_text().contains("invalid JSON in SSE event"),
        "{}",
        c.error_text()
    );
    assert!(
        d.error_text()
            .contains("server sent an error event: token id 300000 is out of vocabulary"),
        "{}",
        d.error_text()
    );
    assert_eq!((c.output_len(), c.latency), (0, 0.0));
}

#[test]
fn point_metrics_equal_hand_computed_values() {
    let mut g = Goodput::default();
    g.add_token("ttft:150").unwrap();
    g.add_token("tpot:20").unwrap();
    let m = compute(&scripted_point(), 2.0, &opts(Some(g)));
    assert_eq!((m.completed, m.failed), (2, 2));
    assert_eq!((m.total_input_tokens, m.total_output_tokens), (30, 7));
    assert!(close(m.request_throughput, 1.0));
    assert!(close(m.output_throughput, 3.5));
    assert!(close(m.total_token_throughput, 18.5));
    assert!(
        close(m.request_goodput.unwrap(), 0.5),
        "only A meets ttft ≤ 150 ms and tpot ≤ 20 ms"
    );
    let keys: Vec<(String, f64)> = m.stat_keys();
    let get = |k: &str| {
        keys.iter()
            .find(|(n, _)| n == k)
            .unwrap_or_else(|| panic!("{k}"))
            .1
    };
    // TTFT [100, 200] ms.
    assert!(close(get("mean_ttft_ms"), 150.0) && close(get("median_ttft_ms"), 150.0));
    assert!(close(get("std_ttft_ms"), 50.0) && close(get("p99_ttft_ms"), 199.0));
    assert!(close(get("p50_ttft_ms"), 150.0));
    // TPOT [17.5, 50] ms.
    assert!(close(get("mean_tpot_ms"), 33.75) && close(get("std_tpot_ms"), 16.25));
    assert!(close(get("p99_tpot_ms"), 17.5 + 0.99 * 32.5));
    // ITL pooled [30, 0, 40, 50] ms: one gap per chunk, multi-token chunks not split.
    assert!(close(get("mean_itl_ms"), 30.0) && close(get("median_itl_ms"), 35.0));
    assert!(close(get("std_itl_ms"), 350f64.sqrt()) && close(get("p99_itl_ms"), 49.7));
    // E2EL [170, 250] ms.
    assert!(close(get("mean_e2el_ms"), 210.0) && close(get("p99_e2el_ms"), 170.0 + 0.99 * 80.0));
    // Key order: blocks ttft, tpot, itl, e2el; mean, median, std, then percentiles as given.
    let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).take(5).collect();
    assert_eq!(
        names,
        [
            "mean_ttft_ms",
            "median_ttft_ms",
            "std_ttft_ms",
            "p50_ttft_ms",
            "p99_ttft_ms"
        ]
    );
    // Peaks (released bucket algorithm): t0 = 0, t_end = 1.2 → 3 buckets. A's 4 chunk
    // events fall in bucket 0; B's two in bucket 1. Concurrency: A touches bucket 0, B
    // buckets 0 and 1 → 2, although they never overlap (exact peak 1).
    assert_eq!(m.max_output_tokens_per_s, 4.0);
    assert_eq!(m.max_output_tokens_per_s_tokens, 5.0);
    assert_eq!(m.max_concurrent_requests, 2);
    assert_eq!(m.max_concurrent_requests_exact, 1);
    // Token-accurate ITL: A gives [30, 0, 0, 40] (the 2-token chunk shares its 0 gap),
    // B gives [50] → mean 24 ms.
    assert!(close(m.token_itl.mean, 24.0), "{}", m.token_itl.mean);
    assert!(m.continuous_usage);
}

#[test]
fn tpot_needs_more_than_one_token() {
    let t0 = Instant::now();
    let one = format!(
        "{}data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":10,\"completion_tokens\":1}}}}\n\n",
        chunk("a", None)
    );
    let r = scripted(t0, 0, &[(80, &one)], 0);
    assert_eq!(r.tpot(), None);
    let m = compute(&[r], 1.0, &opts(None));
    assert_eq!(m.request_goodput, None);
    let keys = m.stat_keys();
    assert_eq!(
        keys.iter().find(|(k, _)| k == "mean_tpot_ms").unwrap().1,
        0.0
    );
    assert!(close(
        keys.iter().find(|(k, _)| k == "mean_ttft_ms").unwrap().1,
        80.0
    ));
}
