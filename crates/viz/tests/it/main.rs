//! Integration tests of `viz`, one test binary (shorter link time than one per file).

mod bad_input;
mod cli;
mod cli_doc;
mod common;
mod faults;
mod plots;
mod real_results;
mod repeats;
mod report;
mod server_metrics;
mod sla;
mod snapshots;
