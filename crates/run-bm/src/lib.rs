//! `run-bm`: a native streaming load generator for OpenAI-compatible LLM servers, a
//! drop-in for the seed's `run_bm.sh` + `vllm bench serve`.
//!
//! * [`cli`] / [`config`]: flags and their resolution with the deployment record.
//! * [`prompt`]: token-id (or text) prompts of the asked length.
//! * [`client`], [`sse`], [`chunk`]: the HTTP client and the streaming reader.
//! * [`schedule`], [`runner`], [`cancel`]: arrivals, concurrency, Ctrl-C.
//! * metrics: `pd_common::bench` (shared with the simulator's virtual client).
//! * [`output`], [`summary`], [`progress`]: files, console summary, progress display.
//! * [`sweep`], [`smoke`], [`probe`]: the two commands and the start-of-run check.

pub mod cancel;
pub mod chunk;
pub mod cli;
pub mod client;
pub mod config;
pub mod output;
pub mod probe;
pub mod progress;
pub mod prompt;
pub mod runner;
pub mod schedule;
pub mod smoke;
pub mod sse;
pub mod summary;
pub mod sweep;

use anyhow::Context;

/// Exit code after Ctrl-C.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Run the command; returns the process exit code.
pub fn run(cli: cli::Cli, argv: Vec<String>) -> anyhow::Result<i32> {
    let cfg = config::RunConfig::resolve(&cli, argv)?;
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
