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

// PLACEHOLDER IMPLEMENTATION: fixed TTFT/TPOT per request, no batching. The real
// model (SIM_MODEL.md) replaces the internals without changing this API.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use pd_common::deployment::{DeploymentSpec, GpuKind};

/// Simulated time in seconds since the engine was created.
pub type SimTime = f64;

/// Errors of the engine (bad configuration).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulator configuration: {0}")]
    Config(String),
}

/// Network between P and D nodes in pd-spread (pd-pack always uses NVLink).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkKind {
    EfaSrd,
    Ib,
    Tcp,
    Custom,
}

/// Simulator constants for one GPU kind (see `SIM_MODEL.md`), loaded from TOML.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SimConstants {
    /// Placeholder: fixed TTFT in seconds.
    pub ttft_s: f64,
    /// Placeholder: fixed time per output token in seconds.
    pub tpot_s: f64,
}

impl SimConstants {
    /// The built-in constants for a GPU kind.
    pub fn builtin(_gpu: GpuKind) -> Result<Self, SimError> {
        Ok(SimConstants { ttft_s: 0.1, tpot_s: 0.01 })
    }
    /// Load constants from a TOML file (replacing the built-in ones).
    pub fn load(path: &std::path::Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SimError::Config(format!("{}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| SimError::Config(format!("{}: {e}", path.display())))
    }
}

/// Everything the engine needs to build a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub spec: DeploymentSpec,
    pub gpus_per_node: u32,
    /// Network between P and D nodes (pd-spread only).
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
}

#[derive(Debug)]
struct Ev {
    time: SimTime,
    seq: u64,
    id: u64,
}
impl PartialEq for Ev {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Ev {}
impl PartialOrd for Ev {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ev {
    fn cmp(&self, o: &Self) -> Ordering {
        o.time.total_cmp(&self.time).then(o.seq.cmp(&self.seq))
    }
}

/// The simulated cluster.
#[derive(Debug)]
pub struct Engine {
    cfg: ClusterConfig,
    heap: BinaryHeap<Ev>,
    remaining: HashMap<u64, u32>,
    seq: u64,
    stats: EngineStats,
}

impl Engine {
    pub fn new(cfg: ClusterConfig) -> Result<Self, SimError> {
        Ok(Engine {
            cfg,
            heap: BinaryHeap::new(),
            remaining: HashMap::new(),
            seq: 0,
            stats: EngineStats::default(),
        })
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    pub fn submit(&mut self, now: SimTime, req: SimRequest) {
        self.stats.prompt_tokens_total += u64::from(req.prompt_tokens);
        self.remaining.insert(req.id, req.max_tokens.max(1));
        self.seq += 1;
        self.heap.push(Ev { time: now + self.cfg.constants.ttft_s, seq: self.seq, id: req.id });
        self.stats.running = self.remaining.len() as u64;
    }

    pub fn next_event_time(&self) -> Option<SimTime> {
        self.heap.peek().map(|e| e.time)
    }

    pub fn advance(&mut self, until: SimTime, out: &mut Vec<Emission>) {
        while self.heap.peek().is_some_and(|e| e.time <= until) {
            let Some(ev) = self.heap.pop() else { break };
            let Some(left) = self.remaining.get_mut(&ev.id) else { continue };
            *left -= 1;
            self.stats.generation_tokens_total += 1;
            out.push(Emission { id: ev.id, time: ev.time, kind: EmissionKind::Tokens(1) });
            if *left == 0 {
                self.remaining.remove(&ev.id);
                out.push(Emission { id: ev.id, time: ev.time, kind: EmissionKind::Finished });
            } else {
                self.seq += 1;
                self.heap.push(Ev { time: ev.time + self.cfg.constants.tpot_s, seq: self.seq, id: ev.id });
            }
        }
        self.stats.running = self.remaining.len() as u64;
    }

    pub fn cancel(&mut self, _now: SimTime, id: u64) {
        self.remaining.remove(&id);
        self.stats.running = self.remaining.len() as u64;
    }

    pub fn stats(&self) -> EngineStats {
        self.stats.clone()
    }
}
