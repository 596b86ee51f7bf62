//! The event loop: replicas, routers, PD proxy and KV links of one simulated cluster.
//!
//! Collocated path: client → +t_fe/2 → router → replica → tokens → +t_fe/2 → client.
//!
//! PD path: client → +t_fe/2 → router → P replica (prefill, one token, blocks held)
//! → +t_pd → router → D replica; at D's next step boundary D allocates the prompt's blocks
//! and the transfer starts (cold-pair handshake, τ, hetero-TP penalty, then bytes on a
//! processor-sharing link); P's blocks are freed when it ends; D notices at its next step
//! boundary and computes the last prompt token, which emits the first token → +t_fe/2.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use pd_common::deployment::Replicas;

use super::config::{HybridKv, SimConstants};
use super::model::{kv_capacity, KvLayout, StepModel};
use super::placement::place;
use super::router::{PoolRouter, Rng};
use super::scheduler::{Limits, Replica, SeqKind, StepOut};
use super::transfer::{Link, PairState};
use super::{
    ClusterConfig, Emission, EmissionKind, EngineStats, NetworkKind, SimError, SimRequest, SimTime,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EvKind {
    /// The request reaches its ingress router.
    Arrive(u64),
    /// A replica's step ends.
    StepEnd(u32),
    /// PD: the proxy submits the decode request to D.
    DSubmit(u64),
    /// PD: handshake and latency over, the bytes start moving.
    FlowStart(u64),
    /// PD: a link may have a completed flow (valid if the version still matches).
    LinkCheck(u32, u64),
}

#[derive(Debug)]
struct Ev {
    time: SimTime,
    seq: u64,
    kind: EvKind,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Inbound,
    /// On a collocated replica, or P replica (PD).
    First,
    /// PD: between P and D (proxy hop).
    Hop,
    /// PD: queued on D or transferring or decoding.
    Decode,
}

#[derive(Debug)]
struct Req {
    router: u32,
    prompt: u32,
    max_tokens: u32,
    hashes: Vec<u64>,
    stage: Stage,
    /// (replica, slot) on the collocated or P replica.
    first: Option<(u32, u32)>,
    /// (replica, slot) on the D replica.
    decode: Option<(u32, u32)>,
    /// PD transfer: (link, in flight on the link).
    link: Option<(u32, bool)>,
    /// P slot still holds the KV (released when the transfer ends).
    p_held: bool,
}

/// The simulated cluster.
#[derive(Debug)]
pub struct Engine {
    cfg: ClusterConfig,
    now: SimTime,
    heap: BinaryHeap<Ev>,
    seq: u64,
    replicas: Vec<Replica>,
    /// PD: P replicas are 0..n_p, D replicas n_p..; collocated: all in `first`.
    n_first: u32,
    pd: bool,
    first_router: PoolRouter,
    decode_router: PoolRouter,
    links: Vec<Link>,
    /// Fixed latency of each link (s).
    link_tau: Vec<f64>,
    /// Link of each (P, D) pair, index `p * n_decode + d` (into `links`).
    pair_link: Vec<u32>,
    pairs: Vec<PairState>,
    /// Extra transfer time per prompt block when P TP ≠ D TP (0 otherwise).
    hetero_per_block: f64,
    /// Inbound latency per prompt token.
    fe_per_token: f64,
    block_size: u32,
    decode_bench: bool,
    /// HTTP proxy service time per streamed message, and when it is next free.
    t_chunk: f64,
    proxy_free: SimTime,
    t_hs: f64,
    kv_bytes_per_token: f64,
    half_fe: f64,
    t_pd: f64,
    num_routers: u32,
    reqs: HashMap<u64, Req>,
    out_q: VecDeque<Emission>,
    rng: Rng,
    step_out: Vec<StepOut>,
    kv_starts: Vec<u32>,
    done_flows: Vec<u64>,
    stats: EngineStats,
}

/// Expert parallelism (`tpep`) of the replica groups; not part of [`ClusterConfig`]
/// because the launcher has no flag for it (the study's names and the planner do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExpertParallel {
    /// Collocated or prefill replicas.
    pub first: bool,
    /// Decode replicas.
    pub decode: bool,
}

/// Options of a simulated cluster beyond [`ClusterConfig`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineExtras {
    pub expert_parallel: ExpertParallel,
    /// vLLM's DecodeBenchConnector (collocated only): a request's prompt KV is filled with
    /// dummy values when it is admitted instead of being computed, so the replica only
    /// decodes (first token = one step on the last prompt token). As with any KV
    /// connector, the hybrid KV manager is off.
    pub decode_bench: bool,
}

/// The replica groups of a deployment (collocated: one; PD: prefill, decode), checked.
fn replica_groups(cfg: &ClusterConfig, extras: &EngineExtras) -> Result<Vec<Replicas>, SimError> {
    let pd = cfg.spec.mode().is_pd();
    let groups = cfg.spec.layout.groups();
    for g in &groups {
        if g.num == 0 || g.tp == 0 {
            return Err(SimError::Config(
                "replica count and TP must be at least 1".into(),
            ));
        }
        if g.tp > cfg.gpus_per_node {
            return Err(SimError::Config(format!(
                "TP {} exceeds the {} GPUs of a node",
                g.tp, cfg.gpus_per_node
            )));
        }
    }
    if extras.decode_bench && pd {
        return Err(SimError::Config(
            "--decode-bench deploys vLLM's DecodeBenchConnector, which skips prefill; it is \
             meant for --mode collocated, not for PD modes"
                .into(),
        ));
    }
    Ok(groups)
}

/// The KV layout: the hybrid KV manager is on by default unless a KV connector is in use
/// (PD's NIXL, the decode-bench connector).
fn kv_layout(c: &SimConstants, pd: bool, extras: &EngineExtras) -> KvLayout {
    let hybrid = match c.memory.hybrid_kv {
        HybridKv::Auto => !pd && !extras.decode_bench,
        HybridKv::On => true,
        HybridKv::Off => false,
    };
    KvLayout {
        block_size: c.memory.block_size,
        hybrid,
        window_blocks: c.model.sliding_window.div_ceil(c.memory.block_size) + 1,
    }
}

/// Every replica, group by group (PD: P replicas first).
fn build_replicas(
    cfg: &ClusterConfig,
    groups: &[Replicas],
    layout: KvLayout,
    ep: ExpertParallel,
) -> Result<Vec<Replica>, SimError> {
    let c = &cfg.constants;
    let limits = Limits {
        max_num_batched_tokens: c.scheduler.max_num_batched_tokens,
        max_num_seqs: c.scheduler.max_num_seqs,
    };
    let mut replicas = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        let cap = kv_capacity(c, g.tp, &layout, cfg.max_model_len)?;
        let ep_on = if gi == 0 { ep.first } else { ep.decode };
        for _ in 0..g.num {
            replicas.push(Replica::new(
                StepModel::with_ep(c, g.tp, ep_on),
                layout,
                cap.units,
                limits,
            ));
        }
    }
    Ok(replicas)
}

/// The KV links of a PD cluster.
#[derive(Debug, Default)]
struct PdLinks {
    links: Vec<Link>,
    /// Fixed latency of each link (s).
    link_tau: Vec<f64>,
    /// Link of each (P, D) pair, index `p * n_decode + d`.
    pair_link: Vec<u32>,
}

/// PD links: a transfer between replicas on one node uses that D replica's NVLink (NIXL
/// cuda_ipc) unless UCX is forced to TCP (`UCX_TLS=tcp`, NetworkKind::Tcp), which
/// disables cuda_ipc too (then one loopback TCP path per node); between nodes it uses the
/// node pair's network path, shared by every transfer on it. Also sets the D replicas'
/// CPU-progress penalty per transfer.
fn pd_links(cfg: &ClusterConfig, groups: &[Replicas], replicas: &mut [Replica]) -> PdLinks {
    let c = &cfg.constants;
    let (n_first, n_decode) = (groups[0].num, groups[1].num);
    let placement = place(cfg.spec.mode(), groups, cfg.gpus_per_node);
    let tcp = cfg.network == NetworkKind::Tcp;
    let net = *c.network.link(cfg.network);
    let mut out = PdLinks::default();
    let mut keyed: HashMap<(u32, u32, u32), u32> = HashMap::new();
    for p in 0..n_first {
        for d in 0..n_decode {
            let np = placement.node_of[p as usize];
            let nd = placement.node_of[(n_first + d) as usize];
            let (key, lc) = if np == nd && !tcp {
                ((0, d, 0), c.network.nvlink)
            } else if np == nd {
                ((1, np, np), net)
            } else {
                ((2, np.min(nd), np.max(nd)), net)
            };
            let id = *keyed.entry(key).or_insert_with(|| {
                out.links
                    .push(Link::new(lc.bandwidth, lc.per_flow_bandwidth));
                out.link_tau.push(lc.tau);
                (out.links.len() - 1) as u32
            });
            out.pair_link.push(id);
        }
    }
    // CPU-progress transports slow the decode steps of the D replicas using them
    let c_xfer = if tcp {
        net.c_xfer
    } else {
        c.network.nvlink.c_xfer.max(net.c_xfer)
    };
    for r in replicas.iter_mut().skip(n_first as usize) {
        r.c_xfer = c_xfer;
    }
    out
}

impl Engine {
    pub fn new(cfg: ClusterConfig) -> Result<Self, SimError> {
        Self::with_extras(cfg, EngineExtras::default())
    }

    /// Build the cluster; `ep` selects expert parallelism per replica group.
    pub fn with_expert_parallel(cfg: ClusterConfig, ep: ExpertParallel) -> Result<Self, SimError> {
        Self::with_extras(
            cfg,
            EngineExtras {
                expert_parallel: ep,
                decode_bench: false,
            },
        )
    }

    /// Build the cluster with its extra options.
    ///
    /// Phases: validate the constants and the replica groups, lay out the KV cache, build
    /// the replicas, then (PD) the links between P and D replicas.
    pub fn with_extras(cfg: ClusterConfig, extras: EngineExtras) -> Result<Self, SimError> {
        let c = &cfg.constants;
        c.validate().map_err(SimError::Config)?;
        let groups = replica_groups(&cfg, &extras)?;
        let pd = cfg.spec.mode().is_pd();
        let layout = kv_layout(c, pd, &extras);
        let mut replicas = build_replicas(&cfg, &groups, layout, extras.expert_parallel)?;
        let n_first = groups[0].num;
        let n_decode = if pd { groups[1].num } else { 0 };
        let routers = c.frontend.num_routers;
        let links = if pd {
            pd_links(&cfg, &groups, &mut replicas)
        } else {
            PdLinks::default()
        };
        // heterogeneous TP: every block of every layer is split for each D rank
        let hetero_per_block = if pd && groups[0].tp != groups[1].tp {
            c.pd.hetero_per_block * f64::from(groups[1].tp)
        } else {
            0.0
        };

        Ok(Engine {
            now: 0.0,
            heap: BinaryHeap::new(),
            seq: 0,
            replicas,
            n_first,
            pd,
            first_router: PoolRouter::new(routers, n_first),
            decode_router: PoolRouter::new(routers, n_decode.max(1)),
            links: links.links,
            link_tau: links.link_tau,
            pair_link: links.pair_link,
            pairs: vec![PairState::Cold; (n_first * n_decode) as usize],
            hetero_per_block,
            fe_per_token: c.frontend.t_fe_per_token,
            block_size: c.memory.block_size.max(1),
            decode_bench: extras.decode_bench,
            t_chunk: c.frontend.t_chunk,
            proxy_free: 0.0,
            t_hs: c.pd.t_hs,
            kv_bytes_per_token: c.model.kv_bytes_per_token(),
            half_fe: c.frontend.t_fe / 2.0,
            t_pd: c.frontend.t_pd,
            num_routers: routers,
            reqs: HashMap::new(),
            out_q: VecDeque::new(),
            rng: Rng::new(cfg.seed),
            step_out: Vec::new(),
            kv_starts: Vec::new(),
            done_flows: Vec::new(),
            stats: EngineStats::default(),
            cfg,
        })
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    /// Current simulated time (the latest `advance` bound or submit time).
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Step-time model of replica `i` (P replicas first in PD).
    pub fn replica_model(&self, i: usize) -> Option<&StepModel> {
        self.replicas.get(i).map(|r| &r.model)
    }

    /// KV capacity of replica `i` in allocation units (see [`KvLayout`]: 2 units per
    /// 16-token block with the hybrid manager off).
    pub fn replica_kv_units(&self, i: usize) -> Option<u64> {
        self.replicas.get(i).map(|r| r.capacity_units())
    }

    fn push(&mut self, time: SimTime, kind: EvKind) {
        self.seq += 1;
        self.heap.push(Ev {
            time,
            seq: self.seq,
            kind,
        });
    }

    fn emit(&mut self, id: u64, time: SimTime, kind: EmissionKind) {
        self.out_q.push_back(Emission { id, time, kind });
    }

    pub fn submit(&mut self, now: SimTime, req: SimRequest) {
        let now = now.max(self.now);
        self.now = now;
        if self.reqs.contains_key(&req.id) {
            self.stats.failed_total += 1;
            self.emit(
                req.id,
                now,
                EmissionKind::Failed(format!("duplicate request id {}", req.id)),
            );
            return;
        }
        self.stats.prompt_tokens_total += u64::from(req.prompt_tokens);
        let router = self.rng.below(self.num_routers);
        self.reqs.insert(
            req.id,
            Req {
                router,
                prompt: req.prompt_tokens.max(1),
                max_tokens: req.max_tokens.max(1),
                hashes: req.block_hashes,
                stage: Stage::Inbound,
                first: None,
                decode: None,
                link: None,
                p_held: false,
            },
        );
        let inbound = self.half_fe + self.fe_per_token * f64::from(req.prompt_tokens);
        self.push(now + inbound, EvKind::Arrive(req.id));
    }

    pub fn next_event_time(&self) -> Option<SimTime> {
        let h = self.heap.peek().map(|e| e.time);
        let o = self.out_q.front().map(|e| e.time);
        match (h, o) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn advance(&mut self, until: SimTime, out: &mut Vec<Emission>) {
        while self.heap.peek().is_some_and(|e| e.time <= until) {
            let Some(ev) = self.heap.pop() else { break };
            self.now = self.now.max(ev.time);
            match ev.kind {
                EvKind::Arrive(id) => self.on_arrive(id),
                EvKind::StepEnd(r) => self.on_step_end(r),
                EvKind::DSubmit(id) => self.on_dsubmit(id),
                EvKind::FlowStart(id) => self.on_flow_start(id),
                EvKind::LinkCheck(l, v) => self.on_link_check(l, v),
            }
        }
        if until.is_finite() {
            self.now = self.now.max(until);
        }
        while self.out_q.front().is_some_and(|e| e.time <= until) {
            if let Some(e) = self.out_q.pop_front() {
                out.push(e);
            }
        }
    }

    pub fn cancel(&mut self, now: SimTime, id: u64) {
        let now = now.max(self.now);
        self.now = now;
        let Some(req) = self.reqs.remove(&id) else {
            return;
        };
        self.out_q.retain(|e| e.id != id);
        if let Some((r, slot)) = req.first {
            if req.stage == Stage::First || req.p_held {
                self.replicas[r as usize].release(slot);
                self.kick(r);
            }
            if req.stage == Stage::First {
                self.first_router.done(req.router, r);
            }
        }
        if let Some((d, slot)) = req.decode {
            let dr = d + self.n_first;
            self.replicas[dr as usize].release(slot);
            self.decode_router.done(req.router, d);
            if let Some((l, on_link)) = req.link {
                self.replicas[dr as usize].inflight_xfers =
                    self.replicas[dr as usize].inflight_xfers.saturating_sub(1);
                if on_link && self.links[l as usize].remove(now, id) {
                    self.schedule_link(l);
                }
            }
            self.kick(dr);
        }
    }

    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats.clone();
        s.running = self.replicas.iter().map(|r| r.num_running() as u64).sum();
        s.waiting = self.replicas.iter().map(|r| r.num_waiting() as u64).sum();
        s.kv_cache_usage = if self.replicas.is_empty() {
            0.0
        } else {
            self.replicas.iter().map(Replica::kv_usage).sum::<f64>() / self.replicas.len() as f64
        };
        s.preemptions_total = self.replicas.iter().map(|r| r.preemptions).sum();
        s.prefix_cache_hit_tokens_total = self.replicas.iter().map(|r| r.prefix_hit_tokens).sum();
        s.steps_total = self.replicas.iter().map(|r| r.steps).sum();
        s.kv_transfer_seconds_total = self.links.iter().map(|l| l.done_seconds).sum();
        s.kv_transfer_bytes_total = self.links.iter().map(|l| l.done_bytes).sum();
        s
    }

    /// A message leaving the cluster at `t` passes the HTTP proxy, one FIFO server
    /// (`t_chunk` per message): its delivery time.
    fn through_proxy(&mut self, t: SimTime) -> SimTime {
        let d = t.max(self.proxy_free) + self.t_chunk;
        self.proxy_free = d;
        d
    }

    fn fail(&mut self, id: u64, msg: String) {
        self.reqs.remove(&id);
        self.stats.failed_total += 1;
        let t = self.through_proxy(self.now + self.half_fe);
        self.emit(id, t, EmissionKind::Failed(msg));
    }

    /// Start a step on replica `r` if it is idle and has work.
    fn kick(&mut self, r: u32) {
        let now = self.now;
        let rep = &mut self.replicas[r as usize];
        if rep.busy {
            return;
        }
        self.kv_starts.clear();
        let mut starts = std::mem::take(&mut self.kv_starts);
        let dur = rep.schedule(&mut starts);
        if dur > 0.0 {
            rep.busy = true;
            self.push(now + dur, EvKind::StepEnd(r));
        }
        if self.decode_bench {
            // the connector fills the prompt's KV at admission: ready at once
            for &slot in &starts {
                self.replicas[r as usize].kv_ready(slot);
            }
            let rep = &mut self.replicas[r as usize];
            if !starts.is_empty() && !rep.busy {
                let mut none = Vec::new();
                let dur = rep.schedule(&mut none);
                if dur > 0.0 {
                    rep.busy = true;
                    self.push(now + dur, EvKind::StepEnd(r));
                }
            }
        } else {
            for &slot in &starts {
                if let Some(id) = self.replicas[r as usize].req_of(slot) {
                    self.start_transfer(id, r);
                }
            }
        }
        self.kv_starts = starts;
    }

    fn on_arrive(&mut self, id: u64) {
        let Some(req) = self.reqs.get(&id) else {
            return;
        };
        let (router, prompt, max_tokens) = (req.router, req.prompt, req.max_tokens);
        let total = prompt.saturating_add(if self.pd { 1 } else { max_tokens });
        if prompt.saturating_add(max_tokens) > self.cfg.max_model_len {
            // vLLM's OpenAI server rejects the request with HTTP 400 and this message
            let msg = format!(
                "This model's maximum context length is {} tokens. However, you requested \
                 {} tokens ({prompt} in the messages, {max_tokens} in the completion). Please \
                 reduce the length of the messages or completion.",
                self.cfg.max_model_len,
                u64::from(prompt) + u64::from(max_tokens)
            );
            return self.fail(id, msg);
        }
        let r = self.first_router.pick(router, &mut self.rng);
        if !self.replicas[r as usize].fits_ever(total) {
            self.first_router.done(router, r);
            return self.fail(
                id,
                format!("request of {total} tokens can never fit in the KV cache"),
            );
        }
        let kind = if self.pd {
            SeqKind::PrefillOnly
        } else if self.decode_bench {
            SeqKind::RemoteDecode
        } else {
            SeqKind::Local
        };
        let Some(req) = self.reqs.get_mut(&id) else {
            return;
        };
        // PD: D looks the same blocks up in its own prefix cache later
        let hashes = if self.pd {
            req.hashes.clone()
        } else {
            std::mem::take(&mut req.hashes)
        };
        let out = if self.pd { 1 } else { max_tokens };
        let slot = self.replicas[r as usize].add(id, prompt, out, hashes, kind);
        req.stage = Stage::First;
        req.first = Some((r, slot));
        self.kick(r);
    }

    fn on_step_end(&mut self, r: u32) {
        let now = self.now;
        let mut outs = std::mem::take(&mut self.step_out);
        outs.clear();
        {
            let rep = &mut self.replicas[r as usize];
            rep.busy = false;
            rep.finish_step(&mut outs);
        }
        let is_p = self.pd && r < self.n_first;
        for o in &outs {
            if is_p {
                // prefill done on P: the proxy forwards to D after t_pd
                if let Some(req) = self.reqs.get_mut(&o.req) {
                    req.stage = Stage::Hop;
                    req.p_held = true;
                    let router = req.router;
                    self.first_router.done(router, r);
                    let inbound = self.t_pd + self.fe_per_token * f64::from(req.prompt);
                    self.push(now + inbound, EvKind::DSubmit(o.req));
                }
                continue;
            }
            let t = self.through_proxy(now + self.half_fe);
            self.stats.generation_tokens_total += 1;
            self.emit(o.req, t, EmissionKind::Tokens(1));
            if o.finished {
                self.stats.finished_total += 1;
                self.emit(o.req, t, EmissionKind::Finished);
                if let Some(req) = self.reqs.remove(&o.req) {
                    if self.pd {
                        self.decode_router.done(req.router, r - self.n_first);
                    } else {
                        self.first_router.done(req.router, r);
                    }
                }
            }
        }
        self.step_out = outs;
        self.kick(r);
    }

    fn on_dsubmit(&mut self, id: u64) {
        let Some(req) = self.reqs.get(&id) else {
            return;
        };
        let (router, prompt, max_tokens) = (req.router, req.prompt, req.max_tokens);
        let d = self.decode_router.pick(router, &mut self.rng);
        let dr = d + self.n_first;
        if !self.replicas[dr as usize].fits_ever(prompt.saturating_add(max_tokens)) {
            self.decode_router.done(router, d);
            if let Some((p, slot)) = self.reqs.get(&id).and_then(|q| q.first) {
                self.replicas[p as usize].release(slot);
                self.kick(p);
            }
            return self.fail(id, "request can never fit in the decode KV cache".into());
        }
        let hashes = self
            .reqs
            .get_mut(&id)
            .map(|q| std::mem::take(&mut q.hashes))
            .unwrap_or_default();
        let slot =
            self.replicas[dr as usize].add(id, prompt, max_tokens, hashes, SeqKind::RemoteDecode);
        if let Some(req) = self.reqs.get_mut(&id) {
            req.stage = Stage::Decode;
            req.decode = Some((d, slot));
        }
        self.kick(dr);
    }

    /// D allocated the blocks of request `id` (on D replica `dr`): start its transfer.
    fn start_transfer(&mut self, id: u64, dr: u32) {
        let Some(req) = self.reqs.get_mut(&id) else {
            return;
        };
        let Some((p, _)) = req.first else { return };
        let d_slot = req.decode.map_or(0, |(_, s)| s);
        let d = dr - self.n_first;
        let n_d = self.replicas.len() as u32 - self.n_first;
        let pair = (p * n_d + d) as usize;
        let l = self.pair_link[pair];
        req.link = Some((l, false));
        let wait = self.pairs[pair].wait(self.now, self.t_hs);
        self.replicas[dr as usize].inflight_xfers += 1;
        let blocks = self.replicas[dr as usize]
            .remote_tokens(d_slot)
            .div_ceil(self.block_size);
        let t =
            self.now + wait + self.link_tau[l as usize] + self.hetero_per_block * f64::from(blocks);
        self.push(t, EvKind::FlowStart(id));
    }

    fn on_flow_start(&mut self, id: u64) {
        let Some(req) = self.reqs.get_mut(&id) else {
            return;
        };
        let Some((l, _)) = req.link else { return };
        req.link = Some((l, true));
        let tokens = match req.decode {
            Some((d, slot)) => self.replicas[(d + self.n_first) as usize].remote_tokens(slot),
            None => req.prompt,
        };
        let bytes = f64::from(tokens) * self.kv_bytes_per_token;
        self.links[l as usize].add(self.now, id, bytes);
        self.schedule_link(l);
    }

    fn schedule_link(&mut self, l: u32) {
        let link = &self.links[l as usize];
        if let Some(t) = link.next_completion() {
            let v = link.version;
            self.push(t.max(self.now), EvKind::LinkCheck(l, v));
        }
    }

    fn on_link_check(&mut self, l: u32, version: u64) {
        if self.links[l as usize].version != version {
            return;
        }
        let mut done = std::mem::take(&mut self.done_flows);
        done.clear();
        self.links[l as usize].take_finished(self.now, &mut done);
        for &id in &done {
            self.transfer_done(id);
        }
        self.done_flows = done;
        self.schedule_link(l);
    }

    fn transfer_done(&mut self, id: u64) {
        self.stats.kv_transfers_total += 1;
        let Some(req) = self.reqs.get_mut(&id) else {
            return;
        };
        req.link = None;
        let first = req.first;
        let decode = req.decode;
        if req.p_held {
            req.p_held = false;
            if let Some((p, slot)) = first {
                self.replicas[p as usize].release(slot);
                self.kick(p);
            }
        }
        if let Some((d, slot)) = decode {
            let dr = (d + self.n_first) as usize;
            let rep = &mut self.replicas[dr];
            rep.inflight_xfers = rep.inflight_xfers.saturating_sub(1);
            rep.kv_ready(slot);
            self.kick(dr as u32);
        }
    }
}
