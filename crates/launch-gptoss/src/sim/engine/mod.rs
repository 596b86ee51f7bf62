//! Discrete-event engine of the simulated cluster, independent of tokio and HTTP.
//!
//! The engine runs in *simulated seconds* ([`SimTime`]). The same code runs in real time
//! (the HTTP server maps wall-clock time to `SimTime` and calls [`Engine::advance`] when
//! the next event is due) and in virtual time (calibration, planners: advance straight
//! from event to event).
//!
//! API contract (shared by the server and the calibration tooling):
//! * [`Engine::new`] builds the cluster (replicas, routers, links) from a [`ClusterConfig`].
//! * [`Engine::submit`] hands a request to the cluster at time `now`.
//! * [`Engine::next_event_time`] tells when something happens next (None = idle).
//! * [`Engine::advance`] processes every event with time ≤ `until`, appending the
//!   resulting [`Emission`]s (tokens, completions, failures) in time order.
//! * [`Engine::cancel`] drops a request (client went away) and frees its resources.
//! * [`Engine::stats`] reports gauges and counters for `/metrics`.
//!
//! Emission times are what a client sees: they include the frontend overhead (`t_fe`,
//! half on the way in, half on the way out) and, in PD, the proxy hop `t_pd`.
//!
//! Modules: [`error`] (the engine's error type), [`config`] (constants TOML, network
//! kinds), [`model`] (step time, KV capacity), [`kv`] (a replica's KV blocks and prefix
//! cache), [`scheduler`] (one vLLM-V1 replica), [`router`] (Ray Serve po2 routers),
//! [`transfer`] (PD KV links and handshakes), [`placement`] (replicas on nodes),
//! [`cluster`] (the event loop). Dependencies point one way: `error` and `config` are
//! leaves, this file's types ([`ClusterConfig`], [`SimRequest`], [`Emission`]) use only
//! them, and no module here uses an async runtime, a socket or HTTP (a test in
//! `tests/it/module_graph.rs` checks both).

pub mod cluster;
pub mod config;
pub mod error;
pub mod kv;
pub mod model;
pub mod placement;
pub mod router;
pub mod scheduler;
pub mod transfer;

pub use cluster::{Engine, EngineExtras, ExpertParallel};
pub use config::{NetworkKind, SimConstants};
pub use error::SimError;

use pd_common::deployment::DeploymentSpec;

/// Simulated time in seconds since the engine was created.
pub type SimTime = f64;

/// Everything the engine needs to build a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub spec: DeploymentSpec,
    pub gpus_per_node: u32,
    /// Network between P and D nodes (pd-spread; `Tcp` also applies to pd-pack).
    pub network: NetworkKind,
    pub constants: SimConstants,
    pub max_model_len: u32,
    pub seed: u64,
}

/// One request as the engine sees it.
#[derive(Debug, Clone)]
pub struct SimRequest {
    pub id: u64,
    pub prompt_tokens: u32,
    /// Output tokens to generate (already clamped to the context by the caller).
    pub max_tokens: u32,
    /// Hashes of the prompt's full 16-token blocks, chained (for prefix caching);
    /// empty when unknown.
    pub block_hashes: Vec<u64>,
}

/// What happened to a request.
#[derive(Debug, Clone, PartialEq)]
pub enum EmissionKind {
    /// `n` output tokens became available (n ≥ 1; the first emission is the first token).
    Tokens(u32),
    /// The request finished (all tokens emitted).
    Finished,
    /// The request failed (e.g. it can never fit in the KV cache).
    Failed(String),
}

/// An event visible to the client of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Emission {
    pub id: u64,
    pub time: SimTime,
    pub kind: EmissionKind,
}

/// Gauges and counters for `/metrics` (vLLM names in the server).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStats {
    pub running: u64,
    pub waiting: u64,
    /// KV-cache usage, 0..1, averaged over replicas.
    pub kv_cache_usage: f64,
    pub prompt_tokens_total: u64,
    pub generation_tokens_total: u64,
    pub preemptions_total: u64,
    pub prefix_cache_hit_tokens_total: u64,
    /// Requests that finished (all tokens emitted).
    pub finished_total: u64,
    /// Requests that failed.
    pub failed_total: u64,
    /// Engine steps executed over all replicas.
    pub steps_total: u64,
    /// PD KV transfers completed.
    pub kv_transfers_total: u64,
    /// PD: seconds the completed transfers spent moving bytes, and their bytes.
    pub kv_transfer_seconds_total: f64,
    pub kv_transfer_bytes_total: f64,
}
