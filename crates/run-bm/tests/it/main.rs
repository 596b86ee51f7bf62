//! Integration tests of `run-bm`, one test binary (shorter link time than one per file).

mod cli;
mod cli_doc;
mod common;
mod e2e;
mod metrics_scripted;
mod schedule_stats;
mod server_runs;
