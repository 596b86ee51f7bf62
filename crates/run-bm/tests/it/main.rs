//! Integration tests of `run-bm`, one test binary (shorter link time than one per file).

mod cli;
mod cli_doc;
mod common;
mod correctness;
mod datasets;
mod drop_in;
mod e2e;
mod faults_common;
mod faults_files;
mod faults_limits;
mod faults_server;
mod faults_signals;
mod metrics_scripted;
mod observe;
mod schedule_stats;
mod server_runs;
mod tok;
