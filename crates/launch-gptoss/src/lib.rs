//! `launch-gptoss`: deploy GPT-OSS-120B collocated or PD-disaggregated.
//!
//! Layers, each using only the ones below it:
//!
//! * [`cli`]: the command line (drop-in for the seed's `launch_gptoss.py`) and its
//!   conversion into option types; [`app`]: the commands (launch, shutdown, status).
//! * [`backend`]: the interface every backend implements; [`options`]: the launch request;
//!   [`error`]: exit-code classification; [`record`]: the record lock; [`interrupt`]:
//!   signals during blocking waits.
//! * [`ray`]: the real backend (Ray Serve LLM + vLLM + NIXL over Ray's Serve REST API).
//! * [`sim`]: the embedded simulated cluster (engine, server, daemon management).
//! * [`planner`]: `plan`, the best deployment for a workload from the simulator (uses
//!   [`sim`]'s engine in virtual time).
//! * [`probe`]: `launch-gptoss probe`, a NIXL transfer micro-benchmark run as a Ray job
//!   (or the simulated link's figures).

pub mod app;
pub mod backend;
pub mod cli;
pub mod cli_probe;
pub mod cli_values;
pub mod error;
pub mod interrupt;
pub mod options;
pub mod planner;
pub mod probe;
pub mod ray;
pub mod record;
pub mod sim;
