//! `run-bm`: a native streaming load generator for OpenAI-compatible LLM servers, a
//! drop-in for the seed's `run_bm.sh` + `vllm bench serve`.
//!
//! * [`cli`] / [`config`]: flags and their resolution with the deployment record.
//! * [`prompt`], [`dataset`], [`tokenizer`], [`chat_template`]: what each request asks
//!   for (token ids or decode-stable text of the asked length, file datasets).
//! * [`request`]: the request body (completions or chat, sampling, extra body).
//! * [`client`], [`tls`], [`sse`], [`chunk`]: the HTTP(S) client and the streaming reader.
//! * [`preflight`]: waiting for the server and learning its limits before load.
//! * [`schedule`], [`runner`], [`cancel`]: arrivals, concurrency, Ctrl-C.
//! * metrics: `pd_common::bench` (shared with the simulator's virtual client).
//! * [`output`], [`summary`], [`progress`]: files, console summary, progress display.
//! * [`sweep`], [`smoke`], [`probe`]: the two commands and the start-of-run check.

pub mod cancel;
pub mod chat_template;
pub mod chunk;
pub mod cli;
pub mod client;
pub mod config;
pub mod dataset;
pub mod output;
pub mod preflight;
pub mod probe;
pub mod progress;
pub mod prompt;
pub mod request;
pub mod runner;
pub mod schedule;
pub mod smoke;
pub mod sse;
pub mod summary;
pub mod sweep;
pub mod tls;
pub mod tokenizer;

use anyhow::Context;

/// Exit code after Ctrl-C.
pub const EXIT_INTERRUPTED: i32 = 130;

/// The exit code of an error: 2 for a usage error (bad flags or values, or flags this
/// server cannot serve; nothing was sent), else 1.
pub fn exit_code_of(e: &anyhow::Error) -> i32 {
    let usage = e.chain().any(|c| {
        c.downcast_ref::<config::ConfigError>().is_some()
            || c.downcast_ref::<preflight::PreflightError>()
                .is_some_and(|p| p.is_usage())
    });
    if usage {
        pd_common::exit::USAGE
    } else {
        pd_common::exit::FAILED
    }
}

/// Run the command; returns the process exit code.
pub fn run(cli: cli::Cli, argv: Vec<String>) -> anyhow::Result<i32> {
    let mut cfg = config::RunConfig::resolve(&cli, argv)?;
    output::process_origin();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let cancel = cancel::Cancel::new();
        if cli.smoke {
            // No Ctrl-C handler: the default (terminate) is right for one request.
            let report = smoke::run_smoke(&cfg).await?;
            return Ok(if report.ok { 0 } else { 1 });
        }
        cancel.install_ctrl_c();
        preflight::prepare(&mut cfg).await?;
        let outcome = sweep::run_sweep(&cfg, &cancel).await?;
        if outcome.interrupted {
            return Ok(EXIT_INTERRUPTED);
        }
        if !outcome.empty_points.is_empty() {
            eprintln!(
                "run-bm: no request succeeded in: {} (results written; see the errors above)",
                outcome.empty_points.join(", ")
            );
            return Ok(1);
        }
        Ok(0)
    })
}
