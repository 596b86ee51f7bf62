//! vLLM's benchmark semantics, implemented once for every pd-lab component that measures:
//! `run-bm` (real requests over HTTP) and the simulator's virtual client
//! (`launch-gptoss sim-calibrate`, the planner). A calibration number and a run-bm number are
//! therefore computed by the same code.
//!
//! * [`outcome`]: what happened to one request ([`RequestOutcome`], [`Failure`]).
//! * [`timeline`]: the chunk events of one streamed response ([`ChunkTimeline`]).
//! * [`metrics`]: the metrics of a point, exactly as `vllm bench serve` computes them, plus
//!   pd-lab's extras ([`compute`]).
//! * [`streamed`]: exact statistics of the pooled per-chunk samples without storing them.
//! * [`goodput`]: service-level objectives for `request_goodput`.
//! * [`arrivals`]: the open-loop arrival schedule (gamma gaps, vLLM's normalisation).
//!
//! The definitions are documented in `docs/VLLM-METRICS.md`.

pub mod arrivals;
pub mod goodput;
pub mod metrics;
pub mod outcome;
pub mod streamed;
pub mod timeline;

pub use arrivals::arrival_offsets;
pub use goodput::Goodput;
pub use metrics::{compute, MetricName, MetricOptions, MetricStats, PointMetrics};
pub use outcome::{Failure, FailureKind, RequestOutcome};
pub use timeline::ChunkTimeline;
