//! Integration tests of `launch-gptoss`, one test binary (shorter link time than one per file).

mod cli_doc;
mod doc_commands;
mod e2e_pipeline;
mod e2e_server_metrics;
mod faults;
mod module_graph;
mod planner;
mod probe;
mod ray_cli;
mod ray_common;
mod ray_flow;
mod ray_golden;
mod sim_cli;
mod sim_common;
mod sim_engine;
mod sim_engine_calibration;
mod sim_http;
mod sim_process;
mod sim_text;
