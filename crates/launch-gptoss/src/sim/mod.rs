//! The embedded simulated cluster.
//!
//! * [`engine`]: the discrete-event model of the cluster (no tokio, no HTTP).
//! * [`realtime`]: runs the engine against the wall clock on its own thread.
//! * [`protocol`], [`server`], [`metrics`], [`lag`]: the vLLM-compatible HTTP server.
//! * [`backend`]: `launch-gptoss --backend sim`, `shutdown` and `status` of a simulator
//!   ([`options`], [`plan`], [`process`] (the daemon), [`identity`] (is that pid ours?),
//!   [`serve`] (the server of a plan in this process)).
//! * [`calibrate`], [`vclient`]: the simulator against real results, in virtual time;
//!   [`bench_file`]: the result file of a simulated point; [`parallel`]: a parallel map
//!   over configurations (calibration, planner).

pub mod backend;
pub mod bench_file;
pub mod calibrate;
pub mod engine;
pub mod fault;
pub mod identity;
pub mod lag;
pub mod metrics;
pub mod options;
pub mod parallel;
pub mod plan;
pub mod process;
pub mod protocol;
pub mod realtime;
pub mod serve;
pub mod server;
pub mod vclient;
