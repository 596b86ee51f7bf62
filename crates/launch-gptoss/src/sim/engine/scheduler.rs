//! One engine replica: a vLLM-V1-style scheduler (continuous batching, chunked prefill,
//! KV blocks with prefix caching by block hashes, preemption by recompute).
//!
//! Prefix caching follows vLLM V1's KV cache manager: a request's full prompt blocks are
//! published in the cache **when they are scheduled** (`allocate_slots` caches the blocks
//! the step will compute), so a request admitted later in the same step, or in any later
//! step, reuses them — the first of many requests sharing a prefix computes it, the others
//! hit. A hit covers at most `prompt − 1` tokens (the last token is always computed).
//!
//! Per step (docs/SIMULATOR.md, "Scheduler"): walk `running` first (decodes take one token, partial
//! prefills take min(remaining, budget)); if a running sequence cannot grow, preempt the
//! last-admitted one (its KV is dropped and recomputed later). If nothing was preempted,
//! admit from `waiting` in FCFS order while budget remains, fewer than `max_num_seqs`
//! are running and the KV blocks fit. Tokens are emitted at step end; the step that
//! completes a prompt emits the first token.
//!
//! PD roles: a *prefill-only* sequence (P side) keeps its blocks after its single token
//! until the KV transfer ends ([`Replica::release`]); a *remote-decode* sequence (D side)
//! gets blocks for its whole prompt when admitted, waits for the transfer
//! ([`Replica::kv_ready`]) and then computes only the last prompt token.

use std::collections::VecDeque;

use super::kv::{KvBlocks, SeqBlocks};
use super::model::{BatchSums, KvLayout, StepModel};

/// Role of a sequence on its replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqKind {
    /// Prefill and decode here (collocated, or a D sequence after preemption).
    Local,
    /// PD prefill: one token, then keep the KV blocks for the transfer.
    PrefillOnly,
    /// PD decode: the prompt's KV arrives from a P replica.
    RemoteDecode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Running,
    /// Blocks allocated, KV transfer in progress.
    AwaitingKv,
    /// KV arrived; waits to be scheduled.
    KvReady,
    /// Prefill-only sequence done; blocks held until the transfer ends.
    Held,
}

#[derive(Debug)]
struct Seq {
    req: u64,
    prompt: u32,
    max_out: u32,
    computed: u32,
    generated: u32,
    blocks: SeqBlocks,
    kind: SeqKind,
    phase: Phase,
}

/// What a finished step produced for one sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepOut {
    pub req: u64,
    pub slot: u32,
    /// This is the sequence's first token.
    pub first: bool,
    /// The sequence generated its last token (prefill-only: its blocks are now held).
    pub finished: bool,
}

/// Scheduler limits of a replica.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_num_batched_tokens: u32,
    pub max_num_seqs: u32,
}

/// The step being built: its planned work and what is left of the token budget.
struct StepPlan {
    sums: BatchSums,
    budget: u32,
}

/// One engine replica: the sequence queues and the step plan; the KV blocks are kept by
/// [`KvBlocks`].
#[derive(Debug)]
pub struct Replica {
    pub model: StepModel,
    kv: KvBlocks,
    limits: Limits,
    slots: Vec<Option<Seq>>,
    free_slots: Vec<u32>,
    running: Vec<u32>,
    waiting: VecDeque<u32>,
    ready: VecDeque<u32>,
    awaiting: u32,
    plan: Vec<(u32, u64, u32)>,
    /// A step is in progress.
    pub busy: bool,
    /// KV transfers in flight towards this replica (CPU-progress penalty).
    pub inflight_xfers: u32,
    /// Seconds added to each step per in-flight transfer.
    pub c_xfer: f64,

    pub preemptions: u64,
    pub prefix_hit_tokens: u64,
    pub steps: u64,
}

impl Replica {
    pub fn new(model: StepModel, layout: KvLayout, capacity_units: u64, limits: Limits) -> Self {
        Replica {
            model,
            kv: KvBlocks::new(layout, capacity_units),
            limits,
            slots: Vec::new(),
            free_slots: Vec::new(),
            running: Vec::new(),
            waiting: VecDeque::new(),
            ready: VecDeque::new(),
            awaiting: 0,
            plan: Vec::new(),
            busy: false,
            inflight_xfers: 0,
            c_xfer: 0.0,
            preemptions: 0,
            prefix_hit_tokens: 0,
            steps: 0,
        }
    }

    pub fn capacity_units(&self) -> u64 {
        self.kv.capacity_units()
    }
    pub fn layout(&self) -> KvLayout {
        self.kv.layout()
    }
    /// Whether a sequence of `tokens` tokens can ever fit in this replica's KV cache.
    pub fn fits_ever(&self, tokens: u32) -> bool {
        self.kv.fits_ever(tokens)
    }
    pub fn num_running(&self) -> usize {
        self.running.len()
    }
    /// Waiting in vLLM's sense (incl. sequences waiting for remote KV).
    pub fn num_waiting(&self) -> usize {
        self.waiting.len() + self.ready.len() + self.awaiting as usize
    }
    /// KV usage 0..1 (evictable prefix-cache blocks count as free, like vLLM).
    pub fn kv_usage(&self) -> f64 {
        self.kv.usage()
    }
    pub fn has_work(&self) -> bool {
        !self.running.is_empty() || !self.waiting.is_empty() || !self.ready.is_empty()
    }

    /// Queue a new sequence; returns its slot.
    pub fn add(
        &mut self,
        req: u64,
        prompt: u32,
        max_out: u32,
        hashes: Vec<u64>,
        kind: SeqKind,
    ) -> u32 {
        let seq = Seq {
            req,
            prompt: prompt.max(1),
            max_out: max_out.max(1),
            computed: 0,
            generated: 0,
            blocks: SeqBlocks::new(hashes),
            kind,
            phase: Phase::Waiting,
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(seq);
                s
            }
            None => {
                self.slots.push(Some(seq));
                (self.slots.len() - 1) as u32
            }
        };
        self.waiting.push_back(slot);
        slot
    }

    /// Request id of the sequence in `slot`, if any.
    pub fn req_of(&self, slot: u32) -> Option<u64> {
        self.slots
            .get(slot as usize)
            .and_then(|s| s.as_ref())
            .map(|s| s.req)
    }

    fn seq(&self, slot: u32) -> &Seq {
        match self.slots.get(slot as usize) {
            Some(Some(s)) => s,
            _ => unreachable!("scheduler lists only hold live slots"),
        }
    }

    /// The sequence in `slot` and the block manager, both mutable.
    fn seq_kv(&mut self, slot: u32) -> (&mut Seq, &mut KvBlocks) {
        match self.slots.get_mut(slot as usize) {
            Some(Some(s)) => (s, &mut self.kv),
            _ => unreachable!("scheduler lists only hold live slots"),
        }
    }
    fn seq_mut(&mut self, slot: u32) -> &mut Seq {
        self.seq_kv(slot).0
    }

    /// Publish the sequence's full prompt blocks covering its first `tokens` tokens.
    fn register_upto(&mut self, slot: u32, tokens: u32) {
        let (s, kv) = self.seq_kv(slot);
        kv.register_upto(&mut s.blocks, s.prompt, tokens);
    }

    /// Take references on the first `hits` cached blocks of a sequence; they count as
    /// computed.
    fn take_hits(&mut self, slot: u32, hits: u32) {
        let bs = self.kv.layout().block_size;
        let (s, kv) = self.seq_kv(slot);
        kv.take_hits(&mut s.blocks, hits);
        s.computed = hits * bs;
        self.prefix_hit_tokens += u64::from(hits * bs);
    }

    /// Prompt tokens a remote-decode sequence needs from its P replica (the prompt minus
    /// the blocks it found in its own prefix cache).
    pub fn remote_tokens(&self, slot: u32) -> u32 {
        match self.slots.get(slot as usize) {
            Some(Some(s)) => s
                .prompt
                .saturating_sub(s.blocks.shared * self.kv.layout().block_size),
            _ => 0,
        }
    }

    fn preempt(&mut self, slot: u32) {
        let (s, kv) = self.seq_kv(slot);
        kv.release(&mut s.blocks);
        s.computed = 0;
        s.phase = Phase::Waiting;
        if s.kind == SeqKind::RemoteDecode {
            // recomputed locally (prompt + generated tokens)
            s.kind = SeqKind::Local;
        }
        self.waiting.push_front(slot);
        self.preemptions += 1;
    }

    /// Build the next step. Slots of remote-decode sequences that just got their blocks
    /// (their KV transfer starts now) are appended to `kv_starts`. Returns the step
    /// duration in seconds, 0 when there is nothing to compute.
    ///
    /// Phases: grow the running sequences (preempting when blocks run out), then, if
    /// nothing was preempted, admit new work in FCFS order; then price the step.
    pub fn schedule(&mut self, kv_starts: &mut Vec<u32>) -> f64 {
        self.plan.clear();
        let mut step = StepPlan {
            sums: BatchSums::default(),
            budget: self.limits.max_num_batched_tokens,
        };
        let preempted = self.schedule_running(&mut step);
        if !preempted {
            self.admit(&mut step, kv_starts);
        }
        if self.plan.is_empty() {
            return 0.0;
        }
        self.steps += 1;
        // a planned step always takes some time (its end event must be scheduled)
        (self.model.step_time(&step.sums) + f64::from(self.inflight_xfers) * self.c_xfer).max(1e-9)
    }

    /// Add `n` tokens of the sequence in `slot` (from `computed` on) to the step.
    fn plan_tokens(&mut self, step: &mut StepPlan, slot: u32, computed: u32, n: u32, target: u32) {
        let req = self.seq(slot).req;
        self.plan.push((slot, req, n));
        self.model
            .add(&mut step.sums, n, computed, computed + n == target);
        step.budget -= n;
    }

    /// Decodes take one token, partial prefills min(remaining, budget); a sequence that
    /// cannot grow preempts the last-admitted ones. Returns whether anything was preempted.
    fn schedule_running(&mut self, step: &mut StepPlan) -> bool {
        let mut preempted = false;
        let mut i = 0;
        while i < self.running.len() && step.budget > 0 {
            let slot = self.running[i];
            let (computed, target) = {
                let s = self.seq(slot);
                (s.computed, s.prompt + s.generated)
            };
            let n = target.saturating_sub(computed).min(step.budget);
            if n == 0 {
                i += 1;
                continue;
            }
            let need = {
                let s = self.seq(slot);
                self.kv
                    .private_units(&s.blocks, computed + n)
                    .saturating_sub(s.blocks.units)
            };
            let mut self_preempted = false;
            while need > self.kv.available() {
                let Some(victim) = self.running.pop() else {
                    break;
                };
                self.preempt(victim);
                preempted = true;
                if victim == slot {
                    self_preempted = true;
                    break;
                }
            }
            if self_preempted {
                break;
            }
            self.kv.allocate(need);
            self.seq_mut(slot).blocks.units += need;
            self.register_upto(slot, computed + n);
            self.plan_tokens(step, slot, computed, n, target);
            i += 1;
        }
        preempted
    }

    /// Admit from `ready` (remote KV arrived) first, then from `waiting`, while budget
    /// remains, fewer than `max_num_seqs` run and the blocks fit.
    fn admit(&mut self, step: &mut StepPlan, kv_starts: &mut Vec<u32>) {
        while step.budget > 0 && self.running.len() < self.limits.max_num_seqs as usize {
            if let Some(slot) = self.ready.pop_front() {
                self.admit_ready(step, slot);
                continue;
            }
            let Some(&slot) = self.waiting.front() else {
                break;
            };
            let s = self.seq(slot);
            let admitted = if s.kind == SeqKind::RemoteDecode && s.computed == 0 {
                self.admit_remote_decode(slot, kv_starts)
            } else {
                self.admit_waiting(step, slot)
            };
            if !admitted {
                break;
            }
        }
    }

    /// Take the first waiting sequence `slot` off the queue with the KV blocks it needs for
    /// its first `tokens` tokens, after the `hits` blocks it finds in the prefix cache.
    /// False (nothing changed): they do not fit.
    fn reserve_blocks(&mut self, slot: u32, hits: u32, tokens: u32) -> bool {
        let (need, hit_evictable) = self.kv.admission_need(&self.seq(slot).blocks, hits, tokens);
        if need + hit_evictable > self.kv.available() {
            return false;
        }
        self.waiting.pop_front();
        if hits > 0 {
            self.take_hits(slot, hits);
        }
        self.kv.allocate(need);
        self.seq_mut(slot).blocks.units = need;
        true
    }

    /// Remote KV arrived: compute the last prompt token only.
    fn admit_ready(&mut self, step: &mut StepPlan, slot: u32) {
        let (computed, target) = {
            let s = self.seq(slot);
            (s.computed, s.prompt + s.generated)
        };
        let n = target.saturating_sub(computed).clamp(1, step.budget);
        self.seq_mut(slot).phase = Phase::Running;
        self.plan_tokens(step, slot, computed, n, target);
        self.running.push(slot);
    }

    /// A remote-decode sequence gets blocks for its whole prompt (those found in the local
    /// prefix cache are not transferred) and its transfer starts. False: it does not fit.
    fn admit_remote_decode(&mut self, slot: u32, kv_starts: &mut Vec<u32>) -> bool {
        let s = self.seq(slot);
        let hits = if s.blocks.hashed() {
            self.kv.cache_hits(&s.blocks, s.prompt)
        } else {
            0
        };
        let prompt = s.prompt;
        if !self.reserve_blocks(slot, hits, prompt) {
            return false;
        }
        self.seq_mut(slot).phase = Phase::AwaitingKv;
        self.awaiting += 1;
        kv_starts.push(slot);
        true
    }

    /// A waiting sequence (new, or preempted) starts or resumes its prefill, after the
    /// blocks it finds in the prefix cache. False: it does not fit.
    fn admit_waiting(&mut self, step: &mut StepPlan, slot: u32) -> bool {
        let s = self.seq(slot);
        let (computed, target) = (s.computed, s.prompt + s.generated);
        let hits = if s.blocks.hashed() && computed == 0 {
            self.kv.cache_hits(&s.blocks, s.prompt)
        } else {
            0
        };
        let start = computed.max(hits * self.kv.layout().block_size);
        let n = target.saturating_sub(start).min(step.budget);
        if !self.reserve_blocks(slot, hits, start + n) {
            return false;
        }
        self.seq_mut(slot).phase = Phase::Running;
        self.register_upto(slot, start + n);
        self.plan_tokens(step, slot, start, n, target);
        self.running.push(slot);
        true
    }

    /// Apply the planned step; appends one [`StepOut`] per sampled token.
    pub fn finish_step(&mut self, out: &mut Vec<StepOut>) {
        let plan = std::mem::take(&mut self.plan);
        let mut removed = false;
        for &(slot, req, n) in &plan {
            let live = matches!(self.slots.get(slot as usize), Some(Some(s)) if s.req == req && s.phase == Phase::Running);
            if !live {
                continue;
            }
            let (computed, target) = {
                let s = self.seq_mut(slot);
                s.computed += n;
                (s.computed, s.prompt + s.generated)
            };
            if computed >= target {
                let s = self.seq_mut(slot);
                s.generated += 1;
                let first = s.generated == 1;
                let finished = s.generated >= s.max_out;
                out.push(StepOut {
                    req,
                    slot,
                    first,
                    finished,
                });
                if finished {
                    removed = true;
                    if s.kind == SeqKind::PrefillOnly {
                        s.phase = Phase::Held;
                    } else {
                        self.free_slot(slot);
                    }
                }
            }
        }
        self.plan = plan;
        self.plan.clear();
        if removed {
            let slots = &self.slots;
            self.running.retain(
                |&s| matches!(slots.get(s as usize), Some(Some(q)) if q.phase == Phase::Running),
            );
        }
    }

    fn free_slot(&mut self, slot: u32) {
        let (s, kv) = self.seq_kv(slot);
        kv.release(&mut s.blocks);
        if let Some(s) = self.slots.get_mut(slot as usize) {
            *s = None;
            self.free_slots.push(slot);
        }
    }

    /// The KV of a remote-decode sequence arrived.
    pub fn kv_ready(&mut self, slot: u32) {
        if let Some(Some(s)) = self.slots.get_mut(slot as usize) {
            if s.phase == Phase::AwaitingKv {
                s.phase = Phase::KvReady;
                s.computed = s.prompt - 1;
                let prompt = s.prompt;
                self.awaiting = self.awaiting.saturating_sub(1);
                self.ready.push_back(slot);
                self.register_upto(slot, prompt);
            }
        }
    }

    /// Remove a sequence whatever its state (held prefill blocks after the transfer,
    /// or a cancelled request) and free its blocks.
    pub fn release(&mut self, slot: u32) {
        let phase = match self.slots.get(slot as usize) {
            Some(Some(s)) => s.phase,
            _ => return,
        };
        match phase {
            Phase::Running => {
                if let Some(i) = self.running.iter().position(|&x| x == slot) {
                    self.running.remove(i);
                }
            }
            Phase::Waiting => {
                if let Some(i) = self.waiting.iter().position(|&x| x == slot) {
                    self.waiting.remove(i);
                }
            }
            Phase::KvReady => {
                if let Some(i) = self.ready.iter().position(|&x| x == slot) {
                    self.ready.remove(i);
                }
            }
            Phase::AwaitingKv => self.awaiting = self.awaiting.saturating_sub(1),
            Phase::Held => {}
        }
        self.free_slot(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::engine::config::SimConstants;
    use pd_common::deployment::GpuKind;

    fn replica(units: u64, max_seqs: u32) -> Replica {
        let c = SimConstants::builtin(GpuKind::H100).unwrap();
        let layout = KvLayout {
            block_size: 16,
            hybrid: false,
            window_blocks: 9,
        };
        Replica::new(
            StepModel::new(&c, 2),
            layout,
            units,
            Limits {
                max_num_batched_tokens: 8192,
                max_num_seqs: max_seqs,
            },
        )
    }

    fn run_step(r: &mut Replica) -> (f64, Vec<StepOut>) {
        let mut starts = Vec::new();
        let d = r.schedule(&mut starts);
        let mut out = Vec::new();
        r.finish_step(&mut out);
        (d, out)
    }

    #[test]
    fn chunked_prefill_then_decode() {
        let mut r = replica(1_000_000, 1024);
        r.add(1, 10000, 3, vec![], SeqKind::Local);
        // step 1: 8192-token chunk, no token
        let (d1, o1) = run_step(&mut r);
        assert!(o1.is_empty());
        let want = r.model.uniform_step(1, 8192, 0, false);
        assert!((d1 - want).abs() < 1e-12);
        // step 2: the rest (1808) emits the first token
        let (_, o2) = run_step(&mut r);
        assert_eq!(
            o2,
            vec![StepOut {
                req: 1,
                slot: 0,
                first: true,
                finished: false
            }]
        );
        let (_, o3) = run_step(&mut r);
        assert!(!o3[0].first && !o3[0].finished);
        let (_, o4) = run_step(&mut r);
        assert!(o4[0].finished);
        assert!(!r.has_work());
        assert_eq!(r.kv_usage(), 0.0);
    }

    #[test]
    fn budget_splits_between_prefills_and_decodes() {
        let mut r = replica(1_000_000, 1024);
        r.add(1, 5000, 10, vec![], SeqKind::Local);
        r.add(2, 5000, 10, vec![], SeqKind::Local);
        // step 1: 5000 of req 1 + 3192 of req 2
        let (_, o) = run_step(&mut r);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].req, 1);
        // step 2: decode of 1 (1 token) + remaining 1808 of 2 → both sample
        let (d, o) = run_step(&mut r);
        assert_eq!(o.len(), 2);
        let m = &r.model;
        let mut s = BatchSums::default();
        m.add(&mut s, 1, 5000, true);
        m.add(&mut s, 1808, 3192, true);
        assert!((d - m.step_time(&s)).abs() < 1e-12);
    }

    #[test]
    fn max_num_seqs_limits_admission() {
        let mut r = replica(1_000_000, 2);
        for id in 0..3 {
            r.add(id, 100, 5, vec![], SeqKind::Local);
        }
        let (_, o) = run_step(&mut r);
        assert_eq!(o.len(), 2);
        assert_eq!(r.num_running(), 2);
        assert_eq!(r.num_waiting(), 1);
    }

    #[test]
    fn admission_waits_for_kv_and_preemption_recomputes() {
        // 100 units = 50 blocks = 800 tokens (hybrid off: 2 units per block)
        let mut r = replica(100, 1024);
        r.add(1, 320, 400, vec![], SeqKind::Local); // 20 blocks now, grows to 45
        r.add(2, 320, 400, vec![], SeqKind::Local);
        r.add(3, 320, 400, vec![], SeqKind::Local); // does not fit next to 1 and 2
        let (_, o) = run_step(&mut r);
        assert_eq!(o.len(), 2, "third request must wait for KV");
        assert_eq!(r.num_waiting(), 1);
        // decode until the two sequences no longer fit: the last admitted is preempted
        let mut preempted_at = None;
        for step in 0..400 {
            run_step(&mut r);
            if r.preemptions > 0 {
                preempted_at = Some(step);
                break;
            }
        }
        assert!(preempted_at.is_some(), "expected a preemption");
        assert_eq!(r.num_running(), 1);
        // the victim is request 2 (last admitted), back at the head of waiting
        let head = *r.waiting.front().unwrap();
        assert_eq!(r.req_of(head), Some(2));
        assert_eq!(r.seq(head).computed, 0);
        // everything eventually finishes
        let mut finished = 0;
        for _ in 0..5000 {
            let (_, o) = run_step(&mut r);
            finished += o.iter().filter(|x| x.finished).count();
            if !r.has_work() {
                break;
            }
        }
        assert_eq!(finished, 3, "requests 1, 2 and 3 all finish");
    }

    #[test]
    fn prefix_cache_hits_skip_prefill() {
        let mut r = replica(1_000_000, 1024);
        let hashes: Vec<u64> = (0..312).collect(); // 5000 tokens = 312 full blocks + 8
        r.add(1, 5000, 1, hashes.clone(), SeqKind::Local);
        let (d1, _) = run_step(&mut r);
        r.add(2, 5000, 1, hashes, SeqKind::Local);
        let (d2, o) = run_step(&mut r);
        assert_eq!(o.len(), 1);
        assert_eq!(r.prefix_hit_tokens, 312 * 16);
        assert!(d2 < d1 / 5.0, "hit prefill {d2} vs cold {d1}");
        // cached blocks stay (evictable), usage counts them as free
        assert_eq!(r.kv_usage(), 0.0);
    }

    #[test]
    fn remote_decode_flow() {
        let mut r = replica(1_000_000, 1024);
        let slot = r.add(7, 5000, 2, vec![], SeqKind::RemoteDecode);
        let mut starts = Vec::new();
        assert_eq!(r.schedule(&mut starts), 0.0);
        assert_eq!(starts, vec![slot]);
        assert_eq!(r.num_waiting(), 1);
        assert!(r.kv_usage() > 0.0);
        r.kv_ready(slot);
        let (d, o) = run_step(&mut r);
        assert!(o[0].first);
        let want = r.model.uniform_step(1, 1, 4999, true);
        assert!((d - want).abs() < 1e-12);
    }

    #[test]
    fn prefill_only_holds_blocks_until_release() {
        let mut r = replica(1_000_000, 1024);
        let slot = r.add(9, 5000, 1, vec![], SeqKind::PrefillOnly);
        let (_, o) = run_step(&mut r);
        assert!(o[0].finished);
        assert!(!r.has_work());
        assert!(r.kv_usage() > 0.0);
        r.release(slot);
        assert_eq!(r.kv_usage(), 0.0);
    }
}
