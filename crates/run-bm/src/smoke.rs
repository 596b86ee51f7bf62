//! `--smoke`: one streamed completion that proves the deployment works (replaces the
//! seed's `query_completion.py`). Prints the text as it streams, then TTFT, TPOT
//! statistics and the server's usage.

use std::time::{Duration, Instant};

use bytes::Bytes;
use pd_common::result::{percentile_sorted, summarize};

use crate::chunk::StreamRecorder;
use crate::client::{HttpClient, RequestError};
use crate::config::RunConfig;
use crate::probe::check_server;
use pd_common::bench::{FailureKind, RequestOutcome};

/// The smoke prompt.
pub const SMOKE_PROMPT: &str = "Count: 1, 2, 3,";
/// Tokens asked for.
pub const SMOKE_TOKENS: u32 = 100;

/// What the smoke test measured.
#[derive(Debug, Clone, PartialEq)]
pub struct SmokeReport {
    pub ok: bool,
    pub error: Option<String>,
    pub ttft_ms: f64,
    pub tpot_mean_ms: f64,
    pub tpot_std_ms: f64,
    pub tpot_p99_ms: f64,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub chunks: usize,
    /// The correctness check: `None` when it did not run (no reference, or the streamed
    /// completion already failed), else whether it passed.
    pub correctness: Option<bool>,
}

/// The smoke request body.
pub fn smoke_body(model: &str, continuous_usage: bool) -> Bytes {
    let mut body = serde_json::json!({
        "model": model,
        "prompt": SMOKE_PROMPT,
        "max_tokens": SMOKE_TOKENS,
        "stream": true,
        "stream_options": {"include_usage": true},
        "ignore_eos": true,
    });
    if continuous_usage {
        body["stream_options"]["continuous_usage_stats"] = serde_json::Value::Bool(true);
    }
    Bytes::from(body.to_string())
}

/// Run the smoke test; prints as it goes. `Err` only for setup problems (bad URL,
/// unreachable server); a failed completion is a report with `ok = false`.
pub async fn run_smoke(cfg: &RunConfig) -> anyhow::Result<SmokeReport> {
    let client = HttpClient::for_config(cfg)?;
    check_server(&client, &cfg.served_model).await?;
    crate::deployment_check::verify(cfg, &client).await?;
    pd_common::outln!(
        "Smoke test: POST {}{} (model {}, {} tokens)",
        cfg.base_url,
        cfg.endpoint,
        cfg.served_model,
        SMOKE_TOKENS
    );
    pd_common::outln!("Prompt: {SMOKE_PROMPT}");
    let mut rec = StreamRecorder::new(Instant::now(), SMOKE_TOKENS as usize, true);
    rec.echo = true;
    // The smoke body always sends ignore_eos: a completions stream must carry every token.
    let smoke_opts = crate::request::BodyOptions {
        protocol: cfg.body.protocol,
        ..Default::default()
    };
    if smoke_opts.expects_full_output() {
        rec.expect_tokens = Some(u64::from(SMOKE_TOKENS));
    }
    let timeout = cfg.timeout.min(Duration::from_secs(600));
    let result = match tokio::time::timeout(
        timeout,
        client.stream_completion(
            crate::request::for_protocol(
                cfg.body.protocol,
                smoke_body(&cfg.served_model, cfg.continuous_usage),
            ),
            "run-bm-smoke",
            &mut rec,
        ),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(RequestError::new(
            FailureKind::Timeout,
            0,
            format!("timed out after {:.0} s", timeout.as_secs_f64()),
        )),
    };
    pd_common::outln!();
    let outcome = RequestOutcome {
        failure: result.as_ref().err().map(|e| e.clone().into_failure()),
        ttft: rec.ttft(),
        chunks: rec.chunks.clone(),
        continuous_usage: rec.continuous_usage,
        latency: rec.latency(),
        output_tokens: rec.completion_tokens.unwrap_or(0),
        ..Default::default()
    };
    let mut gaps = Vec::new();
    outcome.chunks.push_token_itl(&mut gaps);
    let s = summarize(&gaps);
    gaps.sort_by(f64::total_cmp);
    let mut report = SmokeReport {
        ok: result.is_ok(),
        error: result.err().map(|e| e.message),
        ttft_ms: outcome.ttft * 1e3,
        tpot_mean_ms: s.mean * 1e3,
        tpot_std_ms: s.std * 1e3,
        tpot_p99_ms: percentile_sorted(&gaps, 99.0) * 1e3,
        prompt_tokens: rec.prompt_tokens,
        completion_tokens: rec.completion_tokens,
        chunks: rec.chunks(),
        correctness: None,
    };
    if report.ok && report.completion_tokens == Some(0) {
        report.ok = false;
        report.error = Some("the server reported 0 completion tokens".into());
    }
    pd_common::outln!("TTFT: {:.2} ms", report.ttft_ms);
    pd_common::outln!(
        "TPOT: mean {:.2} ms, std {:.2} ms, p99 {:.2} ms ({} gaps, {} chunks)",
        report.tpot_mean_ms,
        report.tpot_std_ms,
        report.tpot_p99_ms,
        gaps.len(),
        report.chunks
    );
    let show = |v: Option<u64>| v.map_or("not reported".to_string(), |v| v.to_string());
    pd_common::outln!(
        "Usage: prompt_tokens {}, completion_tokens {}",
        show(report.prompt_tokens),
        show(report.completion_tokens)
    );
    if report.ok {
        if let Err(e) = correctness_step(cfg, &client, &mut report).await {
            report.ok = false;
            report.correctness = Some(false);
            report.error = Some(e.to_string());
        }
    }
    match &report.error {
        None => pd_common::outln!("Smoke test passed."),
        Some(e) => pd_common::outln!("Smoke test FAILED: {e}"),
    }
    Ok(report)
}

/// The correctness part of the smoke test: record a reference (`--record-reference`), and
/// compare with the known one (`--reference`, or the simulator's built-in one).
async fn correctness_step(
    cfg: &RunConfig,
    client: &HttpClient,
    report: &mut SmokeReport,
) -> Result<(), crate::correctness::CheckError> {
    use crate::correctness as c;
    pd_common::outln!();
    if let Some(path) = &cfg.correctness.record_reference {
        c::record(cfg, client, path).await?;
    }
    match c::resolve_reference(cfg, client).await? {
        Some((reference, name)) => {
            let v = c::check(cfg, client, &reference, &name).await?;
            report.correctness = Some(v.passed());
            if v.passed() {
                pd_common::outln!(
                    "Correctness check passed: {} of {} greedy completions identical to the reference.",
                    v.checked,
                    v.checked
                );
            } else {
                let msg = c::failure_message(cfg, &name, &v);
                report.ok = false;
                report.error = Some(msg);
            }
        }
        None if cfg.correctness.record_reference.is_none() => pd_common::outln!(
            "Correctness: not checked (no reference for this deployment; record one on a \
             collocated deployment with --smoke --record-reference FILE, then pass --reference FILE)"
        ),
        None => {}
    }
    Ok(())
}
