//! Fault matrix, misbehaving servers: every way a response can go wrong fails that request
//! with its kind and a clear message, the run completes with exit 3 and an error summary
//! per kind, and memory stays bounded against an endless SSE line.

use std::sync::Arc;
use std::time::Duration;

use pd_common::requests::read_requests_csv;
use pd_common::BenchResult;
use pd_testkit::fake_openai::{Reply, RequestInfo};
use pd_testkit::faults;

use crate::faults_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_responses_fail_with_their_kind_and_exit_3() {
    // 4 tokens: the request's own task reads the body.
    misbehaving_responses(4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_long_responses_fail_alike_on_the_stream_reading_thread() {
    // From run_bm::reactor::MIN_CHUNKS tokens on, the stream-reading thread does.
    misbehaving_responses(run_bm::reactor::MIN_CHUNKS as u32 + 8).await;
}

async fn misbehaving_responses(otl: u32) {
    let srv = server(Arc::new(|info: &RequestInfo| match index_of(info) {
        1 => faults::http_error(500, "engine crashed"),
        2 => faults::cut_mid_stream(2),
        3 => faults::clean_close_without_done(4),
        4 => faults::short_stream(2),
        5 => faults::malformed(),
        6 => faults::stall_after_first_chunk(ms(60_000)),
        7 => faults::oversized_line(6 << 20),
        9 => faults::http_error(503, "overloaded"),
        _ => gen(2, 1),
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = base(&srv.url(), "mis");
    let otl_s = otl.to_string();
    args.extend(strings(&[
        "-c",
        "2",
        "--num-prompts",
        "10",
        "--stall-timeout",
        "1",
        "--timeout",
        "100",
        "--otl",
        &otl_s,
    ]));
    let r = run_to_end(dir.path(), args).await;
    assert_eq!(r.code, 3, "completed with failed requests: {r}");
    assert!(
        r.out.contains("pd-lab: 8 of 10 requests failed: "),
        "error summary on stdout: {r}"
    );
    for kind in [
        "http 2",
        "transport 1",
        "incomplete 2",
        "malformed 2",
        "stalled 1",
    ] {
        assert!(r.out.contains(kind), "{kind} missing: {r}");
    }
    let d = dir
        .path()
        .join(format!("bm_results/fake_itl8_otl{otl}_mixed_mis"));
    let res = BenchResult::read(&d.join("conc2.json")).unwrap();
    assert_eq!((res.completed, res.failed), (2, Some(8)));
    let rows = read_requests_csv(&d.join("conc2.requests.csv")).unwrap();
    let short = format!("carried 2 of the {otl} tokens");
    let expect: [(u64, &str); 8] = [
        (1, "HTTP 500 Internal Server Error: engine crashed"),
        (2, "stream broken"),
        (3, "without data: [DONE]"),
        (4, &short),
        (5, "invalid JSON in SSE event"),
        (6, "stalled: no data for 1.0 s"),
        (7, "exceeded 4194304 bytes"),
        (9, "HTTP 503"),
    ];
    for (i, msg) in expect {
        let row = rows.iter().find(|r| r.index == i).unwrap();
        assert!(!row.success, "request {i} must fail");
        assert!(row.error.contains(msg), "request {i}: {}", row.error);
    }
    assert!(rows
        .iter()
        .filter(|r| r.success)
        .all(|r| r.index == 0 || r.index == 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_sse_line_fails_the_request_with_bounded_memory() {
    // 300 MiB without a newline: the client must give up early, not buffer it.
    let srv = server(Arc::new(|_: &RequestInfo| {
        faults::oversized_line(300 << 20)
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = base(&srv.url(), "flood");
    args.extend(strings(&["-c", "1", "--num-prompts", "1"]));
    let mut cmd = run_bm(
        dir.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    // This child's own peak memory (other tests' children run in parallel).
    let (r, rss) = tokio::task::spawn_blocking(move || {
        let mut child = ChildGuard::spawn(&mut cmd);
        let (status, out, err, rss) = child.wait_timeout_peak_rss(Duration::from_secs(120));
        (
            Ran {
                code: status.code().unwrap_or(-1),
                out,
                err,
            },
            rss,
        )
    })
    .await
    .unwrap();
    assert_eq!(r.code, 1, "the only request failed: {r}");
    let rows = read_requests_csv(&rdir(dir.path(), "flood").join("conc1.requests.csv")).unwrap();
    assert!(rows[0].error.contains("exceeded"), "{}", rows[0].error);
    assert!(
        rss < 150 << 20,
        "run-bm used {} MiB: the SSE buffer is not bounded",
        rss >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out() {
    let srv = server(Arc::new(|_: &RequestInfo| Reply::Hang)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = base(&srv.url(), "hang");
    args.extend(strings(&[
        "-c",
        "1",
        "--num-prompts",
        "2",
        "--timeout",
        "1",
    ]));
    let r = run_to_end(dir.path(), args).await;
    assert_eq!(r.code, 1, "{r}");
    assert!(r.out.contains("2 of 2 requests failed: timeout 2"), "{r}");
}

#[test]
fn request_timeouts_have_sane_defaults() {
    let out = std::process::Command::new(crate::common::bin())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--timeout <TIMEOUT>"), "{help}");
    let after = help.split("--timeout <TIMEOUT>").nth(1).unwrap_or("");
    assert!(after.contains("[default: 3600]"), "not 6 h: {help}");
    assert!(help.contains("--stall-timeout"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_output_fails_only_when_the_body_asks_for_every_token() {
    // Every stream is well formed (usage, [DONE]) but carries 2 of the 4 tokens asked.
    let srv = server(Arc::new(|_: &RequestInfo| faults::short_stream(2))).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |exp: &str, extra: &[&str]| {
        let mut args = base(&srv.url(), exp);
        args.extend(strings(&["-c", "1", "--num-prompts", "2"]));
        args.extend(strings(extra));
        run_to_end(dir.path(), args)
    };
    // ignore_eos (the default): fewer tokens than max_tokens is an incomplete stream.
    let r = run("eos", &[]).await;
    assert_eq!(r.code, 1, "no request succeeded: {r}");
    let rows = read_requests_csv(&rdir(dir.path(), "eos").join("conc1.requests.csv")).unwrap();
    assert!(
        rows.iter()
            .all(|r| !r.success && r.error.contains("carried 2 of the 4 tokens")),
        "{rows:?}"
    );
    // Without ignore_eos (the flag, or the body's own key) an output may end early.
    for (exp, extra) in [
        ("noeos", &["--no-ignore-eos"][..]),
        ("body", &["--extra-body", r#"{"ignore_eos": false}"#]),
        ("stop", &["--extra-body", r#"{"stop": ["\n"]}"#]),
    ] {
        let r = run(exp, extra).await;
        assert_eq!(r.code, 0, "{extra:?}: {r}");
        let res = BenchResult::read(&rdir(dir.path(), exp).join("conc1.json")).unwrap();
        assert_eq!(
            (res.completed, res.total_output_tokens),
            (2, 4),
            "{extra:?}"
        );
    }
    // The chat endpoint: its usage is not a count of exactly the tokens asked for.
    let r = run("chat", &["--backend", "openai-chat"]).await;
    assert_eq!(r.code, 0, "{r}");
    let res = BenchResult::read(&rdir(dir.path(), "chat").join("conc1.json")).unwrap();
    assert_eq!((res.completed, res.total_output_tokens), (2, 4));
    // A chat stream cut before [DONE] still fails.
    let cut = server(Arc::new(|_: &RequestInfo| faults::cut_mid_stream(2))).await;
    let mut args = base(&cut.url(), "chatcut");
    args.extend(strings(&[
        "-c",
        "1",
        "--num-prompts",
        "1",
        "--backend",
        "openai-chat",
    ]));
    let r = run_to_end(dir.path(), args).await;
    assert_eq!(r.code, 1, "{r}");
}
