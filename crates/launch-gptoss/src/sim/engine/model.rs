//! The step-time formula (docs/SIMULATOR.md, "Step time") and the KV-cache capacity rule.
//!
//! ```text
//! T_step = c0 + c_seq·B
//!        + [W_dense + L·E_d(N)·B_e + KV_rd] / (t·η_bw·BW)
//!        + L·E_d(N)·τ_e / t
//!        + [N·F_tok + S·F_head] / (t·η_lin·P_bf16)
//!        + F_att / (t·η_att·P_bf16)
//!        + [t>1]·2L·(α_ar + N·H·2B·2(t−1)/t / B_ar)
//! ```

use super::config::SimConstants;
use super::SimError;

/// Per-batch sums the step time needs; built with [`BatchSums::add`], O(1) per sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchSums {
    /// Sequences in the batch (B).
    pub seqs: u32,
    /// New tokens (N).
    pub tokens: u64,
    /// Sampled tokens (S).
    pub sampled: u32,
    /// Σ [full·(c+n) + sliding·min(c+n, W)] (token-layers of KV read).
    kv_token_layers: f64,
    /// Σ [full·(n·c + n²/2) + sliding·n·min(c+n, W)].
    att_units: f64,
}

/// Step-time model of one replica at TP `t` (optionally with expert parallelism).
#[derive(Debug, Clone)]
pub struct StepModel {
    tp: u32,
    /// Expert parallelism: E[max over the t GPUs of the experts one GPU must read], by
    /// number of tokens in the step (index = N, capped at the table's end).
    ep_max_experts: Option<Vec<f64>>,
    c0: f64,
    c_seq: f64,
    /// 1 / (η_bw·BW) of one GPU.
    inv_bw_gpu: f64,
    inv_lin: f64,
    inv_att: f64,
    dense_bytes: f64,
    layers: f64,
    full: f64,
    sliding: f64,
    window: f64,
    experts: f64,
    miss_log: f64,
    expert_bytes: f64,
    tau_e: f64,
    kv_bytes_token_layer: f64,
    f_tok: f64,
    f_head: f64,
    att_coeff: f64,
    ar_fixed: f64,
    ar_per_token: f64,
}

/// Expected maximum over `t` GPUs of the distinct experts each must read when `n`
/// tokens are routed top-k over `e` experts held `e/t` per GPU (expert parallelism):
/// per GPU the count is Binomial(e/t, q) with q = 1 − (1 − k/e)^n, the step waits for
/// the most loaded GPU. E[max] = Σ_j (1 − F(j)^t).
pub fn expected_max_experts_per_gpu(e: u32, k: u32, t: u32, n: u64) -> f64 {
    let t = t.max(1);
    let per = (e / t).max(1);
    if n == 0 {
        return 0.0;
    }
    let miss = (1.0 - f64::from(k) / f64::from(e)).powf(n as f64);
    let q = (1.0 - miss).clamp(0.0, 1.0);
    if t == 1 || q <= 0.0 || q >= 1.0 {
        return f64::from(per) * q;
    }
    // binomial pmf by recurrence, CDF accumulated
    let mut pmf = (1.0 - q).powi(per as i32);
    let mut cdf = 0.0;
    let mut expect = 0.0;
    for j in 0..per {
        cdf += pmf;
        expect += 1.0 - cdf.min(1.0).powi(t as i32);
        pmf *= f64::from(per - j) / f64::from(j + 1) * q / (1.0 - q);
    }
    expect
}

impl StepModel {
    pub fn new(c: &SimConstants, tp: u32) -> Self {
        Self::with_ep(c, tp, false)
    }

    /// A replica at TP `tp`; `ep` = the experts are distributed whole over the TP GPUs
    /// (vLLM `enable_expert_parallel`) instead of sharded along their intermediate size.
    pub fn with_ep(c: &SimConstants, tp: u32, ep: bool) -> Self {
        let t = f64::from(tp.max(1));
        let m = &c.model;
        let s = &c.step;
        let hw = &c.hardware;
        let layers = f64::from(m.layers);
        let (ar_fixed, ar_per_token) = if tp > 1 {
            (
                2.0 * layers * s.alpha_ar,
                2.0 * layers * f64::from(m.hidden_size) * 2.0 * 2.0 * (t - 1.0) / t / s.b_ar,
            )
        } else {
            (0.0, 0.0)
        };
        let ep_max_experts = (ep && tp > 1).then(|| {
            let cap = c.scheduler.max_num_batched_tokens as usize + 1;
            (0..=cap)
                .map(|n| expected_max_experts_per_gpu(m.experts, m.experts_per_token, tp, n as u64))
                .collect()
        });
        StepModel {
            tp,
            ep_max_experts,
            c0: s.c0,
            c_seq: s.c_seq,
            inv_bw_gpu: 1.0 / (s.eta_bw * hw.hbm_bandwidth),
            inv_lin: 1.0 / (t * s.eta_lin * hw.bf16_flops),
            inv_att: 1.0 / (t * s.eta_att * hw.bf16_flops),
            dense_bytes: m.dense_weight_bytes,
            layers,
            full: f64::from(m.full_attention_layers),
            sliding: f64::from(m.sliding_layers()),
            window: f64::from(m.sliding_window),
            experts: f64::from(m.experts),
            miss_log: (1.0 - f64::from(m.experts_per_token) / f64::from(m.experts)).ln(),
            expert_bytes: m.expert_bytes,
            tau_e: s.tau_e,
            kv_bytes_token_layer: m.kv_bytes_per_token_layer(),
            f_tok: m.linear_flops_per_token,
            f_head: m.lm_head_flops,
            att_coeff: 4.0 * f64::from(m.q_heads) * f64::from(m.head_dim),
            ar_fixed,
            ar_per_token,
        }
    }

    pub fn tp(&self) -> u32 {
        self.tp
    }

    /// Whether this replica uses expert parallelism.
    pub fn expert_parallel(&self) -> bool {
        self.ep_max_experts.is_some()
    }

    /// Expert weight bytes the slowest GPU reads per layer for `n` tokens: E_d·B_e/t with
    /// TP-sharded experts, E[max per-GPU distinct experts]·B_e with expert parallelism.
    pub fn expert_bytes_per_gpu_layer(&self, n: u64) -> f64 {
        match &self.ep_max_experts {
            Some(table) => {
                let i = (n as usize).min(table.len() - 1);
                table[i] * self.expert_bytes
            }
            None => self.distinct_experts(n) * self.expert_bytes / f64::from(self.tp.max(1)),
        }
    }

    /// Expected distinct experts touched per layer by `n` tokens under uniform routing.
    pub fn distinct_experts(&self, n: u64) -> f64 {
        if n == 0 {
            return 0.0;
        }
        self.experts * (1.0 - (self.miss_log * n as f64).exp())
    }

    /// Add one sequence with `n` new tokens on `c` cached ones; `sampled` when the step
    /// samples a token for it.
    #[inline]
    pub fn add(&self, sums: &mut BatchSums, n: u32, c: u32, sampled: bool) {
        let n = f64::from(n);
        let c = f64::from(c);
        let ctx = c + n;
        let win = ctx.min(self.window);
        sums.seqs += 1;
        sums.tokens += n as u64;
        sums.sampled += u32::from(sampled);
        sums.kv_token_layers += self.full * ctx + self.sliding * win;
        sums.att_units += self.full * (n * c + n * n / 2.0) + self.sliding * n * win;
    }

    /// Duration of a step with these sums (s); 0 for an empty batch.
    pub fn step_time(&self, s: &BatchSums) -> f64 {
        if s.seqs == 0 {
            return 0.0;
        }
        let n = s.tokens as f64;
        let t = f64::from(self.tp.max(1));
        // per GPU: dense weights and KV are sharded over t; experts per the layout
        let expert_bytes = self.layers * self.expert_bytes_per_gpu_layer(s.tokens);
        let bytes =
            (self.dense_bytes + s.kv_token_layers * self.kv_bytes_token_layer) / t + expert_bytes;
        let e_d = self.distinct_experts(s.tokens);
        self.c0
            + self.c_seq * f64::from(s.seqs)
            + bytes * self.inv_bw_gpu
            + self.layers * e_d * self.tau_e / t
            + (n * self.f_tok + f64::from(s.sampled) * self.f_head) * self.inv_lin
            + self.att_coeff * s.att_units * self.inv_att
            + self.ar_fixed
            + n * self.ar_per_token
    }

    /// Convenience: a step of `b` identical sequences with `n` new tokens on `c` cached.
    pub fn uniform_step(&self, b: u32, n: u32, c: u32, sampled: bool) -> f64 {
        let mut s = BatchSums::default();
        for _ in 0..b {
            self.add(&mut s, n, c, sampled);
        }
        self.step_time(&s)
    }
}

/// KV-cache capacity of one replica.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KvCapacity {
    /// KV pool per GPU (bytes).
    pub pool_bytes_per_gpu: f64,
    /// Pool of the replica in tokens with every layer stored (hybrid manager off).
    pub full_tokens: u64,
    /// Capacity in allocation units (16 tokens × one half of the layers, see
    /// [`KvLayout`]).
    pub units: u64,
}

/// How a request's tokens map to allocation units.
///
/// One unit = one block of `block_size` tokens for half of the layers (the full-attention
/// half or the sliding-window half). With the hybrid manager off every block costs 2
/// units; with it on, a block costs 1 unit for the full-attention layers plus 1 unit for
/// the sliding layers, but only for the last ⌈W/block⌉+1 blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLayout {
    pub block_size: u32,
    pub hybrid: bool,
    /// Blocks a sliding-window layer keeps.
    pub window_blocks: u32,
}

impl KvLayout {
    pub fn blocks(&self, tokens: u32) -> u32 {
        tokens.div_ceil(self.block_size)
    }
    /// Units needed to hold `tokens` tokens.
    pub fn units(&self, tokens: u32) -> u64 {
        let b = u64::from(self.blocks(tokens));
        if self.hybrid {
            b + b.min(u64::from(self.window_blocks))
        } else {
            2 * b
        }
    }
    /// Units of one full prompt block shared through the prefix cache.
    pub fn shared_block_units(&self) -> u64 {
        if self.hybrid {
            1
        } else {
            2
        }
    }
}

/// Memory vLLM leaves to the KV cache on each GPU of a TP-`tp` replica (bytes; may be
/// ≤ 0): `gpu_memory_utilization`·M − loaded weights (`weight_overhead`·checkpoint / t)
/// − the profile run's activation peak and non-torch memory (`reserve_bytes`, plus
/// `reserve_tp_bytes` for the collective-communication buffers when t > 1).
pub fn kv_pool_per_gpu(c: &SimConstants, tp: u32) -> f64 {
    let t = f64::from(tp.max(1));
    let mem = &c.memory;
    let usable = mem.gpu_memory_utilization * c.hardware.usable_memory_bytes;
    let weights = mem.weight_overhead * c.model.checkpoint_bytes / t;
    let reserve = mem.reserve_bytes + if tp > 1 { mem.reserve_tp_bytes } else { 0.0 };
    usable - weights - reserve
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// KV capacity of one replica, or vLLM's startup error when the pool is empty or cannot
/// hold one request of `max_model_len` tokens (`vllm/v1/core/kv_cache_utils.py`,
/// `check_enough_kv_cache_memory`).
pub fn kv_capacity(
    c: &SimConstants,
    tp: u32,
    layout: &KvLayout,
    max_model_len: u32,
) -> Result<KvCapacity, SimError> {
    let pool = kv_pool_per_gpu(c, tp);
    let t = f64::from(tp.max(1));
    let mem = &c.memory;
    let accounting = || {
        format!(
            "[{} TP{tp}: {:.2} GiB × gpu_memory_utilization {} − weights {:.2} GiB − runtime \
             reserve {:.2} GiB per GPU]",
            c.gpu.to_uppercase(),
            c.hardware.usable_memory_bytes / GIB,
            mem.gpu_memory_utilization,
            mem.weight_overhead * c.model.checkpoint_bytes / t / GIB,
            (mem.reserve_bytes + if tp > 1 { mem.reserve_tp_bytes } else { 0.0 }) / GIB,
        )
    };
    if pool <= 0.0 {
        return Err(SimError::Refused(format!(
            "No available memory for the cache blocks. Try increasing \
             `gpu_memory_utilization` when initializing the engine. {}",
            accounting()
        )));
    }
    // KV heads are split across the TP shards (replicated beyond kv_heads).
    let shards = f64::from(tp.max(1).min(c.model.kv_heads));
    let per_token_gpu = c.model.kv_bytes_per_token() / shards;
    let full_tokens = (pool / per_token_gpu).floor();
    let half_layers = f64::from(c.model.layers) / 2.0;
    let unit_bytes =
        f64::from(layout.block_size) * half_layers * c.model.kv_bytes_per_token_layer() / shards;
    let units = (pool / unit_bytes).floor() as u64;
    let need = layout.units(max_model_len);
    if need > units {
        // largest length whose units fit
        let block = u64::from(layout.block_size);
        let max_blocks = if layout.hybrid {
            units.saturating_sub(u64::from(layout.window_blocks))
        } else {
            units / 2
        };
        return Err(SimError::Refused(format!(
            "To serve at least one request with the models's max seq len ({max_model_len}), \
             ({:.2} GiB KV cache is needed, which is larger than the available KV cache memory \
             ({:.2} GiB). Based on the available memory, the estimated maximum model length is \
             {}. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when \
             initializing the engine. {}",
            need as f64 * unit_bytes / GIB,
            pool / GIB,
            max_blocks * block,
            accounting()
        )));
    }
    Ok(KvCapacity {
        pool_bytes_per_gpu: pool,
        full_tokens: full_tokens as u64,
        units,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pd_common::deployment::GpuKind;

    fn h100() -> SimConstants {
        SimConstants::builtin(GpuKind::H100).unwrap()
    }

    /// H100 with the step constants the derived table below was computed with (the
    /// formula is under test here, not the fitted values).
    fn h100_table() -> SimConstants {
        let mut c = h100();
        c.step.c0 = 4.19e-3;
        c.step.c_seq = 18.6e-6;
        c.step.eta_bw = 0.79;
        c.step.eta_lin = 0.366;
        c.step.eta_att = 0.366;
        c
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        ((a - b) / b).abs() <= rel
    }

    #[test]
    fn distinct_experts_matches_spec() {
        let m = StepModel::new(&h100(), 2);
        assert!(close(m.distinct_experts(4), 15.3, 0.02));
        assert!(close(m.distinct_experts(32), 82.0, 0.02));
        assert!(close(m.distinct_experts(64), 111.0, 0.02));
        assert!(m.distinct_experts(400) > 127.9);
    }

    /// The derived table of the study's notes (H100): 5k prefill and decode at 5k context.
    #[test]
    fn step_times_match_the_derived_table() {
        let c = h100_table();
        // (tp, prefill 5k ms, 8192-token step ms, decode B=1/8/32/64 ms)
        let table = [
            (1, 166.0, 251.0, [6.2, 11.8, 24.8, 34.4]),
            (2, 93.0, 140.0, [5.8, 8.7, 15.4, 20.6]),
            (4, 56.0, 84.0, [5.3, 6.8, 10.4, 13.4]),
            (8, 37.0, 55.0, [5.0, 5.9, 7.9, 9.7]),
        ];
        for (tp, prefill, big, decode) in table {
            let m = StepModel::new(&c, tp);
            let p = m.uniform_step(1, 5000, 0, true) * 1e3;
            assert!(
                close(p, prefill, 0.05),
                "TP{tp} prefill {p:.1} vs {prefill}"
            );
            let b = m.uniform_step(1, 8192, 0, true) * 1e3;
            assert!(close(b, big, 0.06), "TP{tp} 8192 step {b:.1} vs {big}");
            for (bsz, want) in [1u32, 8, 32, 64].into_iter().zip(decode) {
                let d = m.uniform_step(bsz, 1, 5000, true) * 1e3;
                assert!(
                    close(d, want, 0.06),
                    "TP{tp} decode B={bsz} {d:.2} vs {want}"
                );
            }
        }
    }

    #[test]
    fn hand_computed_tp2_prefill_and_decode() {
        // H100 TP2, one 5000-token prefill, terms computed by hand from the formula:
        // overhead 4.19 + 0.0186; HBM (3.1e9 + 36·128·13.24e6 + 2048·(18·5000+18·128))
        // / (2·0.79·3.35e12) = 12.15; FLOPs (5000·9.11e9 + 1.16e9)/(2·0.366·989e12) = 62.92;
        // attention 16384·(18·12.5e6 + 18·5000·128)/(same) = 5.35;
        // all-reduce 72·(8e-6 + 5000·2880·4·0.5/300e9) = 7.49  → 92.1 ms.
        let m = StepModel::new(&h100_table(), 2);
        let p = m.uniform_step(1, 5000, 0, true) * 1e3;
        assert!((p - 92.1).abs() < 0.3, "{p}");
        // Decode B=1 at context 5000: 4.209 + 0.982 + 0.014 + 0.002 + 0.577 = 5.78 ms.
        let d = m.uniform_step(1, 1, 5000, true) * 1e3;
        assert!((d - 5.78).abs() < 0.05, "{d}");
    }

    #[test]
    fn kv_capacity_follows_vllms_memory_accounting() {
        let c = h100();
        let off = KvLayout {
            block_size: 16,
            hybrid: false,
            window_blocks: 9,
        };
        let on = KvLayout {
            hybrid: true,
            ..off
        };
        // TP1 on one H100 80GB runs (as in the study) with a small pool: 0.9·85.06 GB
        // − 1.06·65.25 GB − 4.1 GB = 3.29 GB = 44.6k tokens at 72 KiB (hybrid off) and
        // about twice that with the hybrid manager (full-attention layers only).
        let tp1 = kv_capacity(&c, 1, &off, 16000).unwrap();
        assert!(
            close(tp1.pool_bytes_per_gpu, 3.29e9, 0.01),
            "{}",
            tp1.pool_bytes_per_gpu
        );
        assert!(
            close(tp1.full_tokens as f64, 44.6e3, 0.01),
            "{}",
            tp1.full_tokens
        );
        let tp1_on = kv_capacity(&c, 1, &on, 16000).unwrap();
        let tokens_on = (tp1_on.units - u64::from(on.window_blocks)) * 16;
        assert!((5e4..2e5).contains(&(tokens_on as f64)), "{tokens_on}");
        // units: 2 per 16-token block with the hybrid manager off
        assert!(close(tp1.units as f64, tp1.full_tokens as f64 / 8.0, 0.001));
        // TP2 / TP4 (collective buffers reserved): 0.98 M / 2.89 M tokens
        let tp2 = kv_capacity(&c, 2, &off, 16000).unwrap();
        assert!(
            close(tp2.full_tokens as f64, 0.976e6, 0.01),
            "{}",
            tp2.full_tokens
        );
        let tp4 = kv_capacity(&c, 4, &off, 16000).unwrap();
        assert!(
            close(tp4.full_tokens as f64, 2.89e6, 0.01),
            "{}",
            tp4.full_tokens
        );
        // vLLM refuses a max_model_len the pool cannot hold, with its own message
        let e = kv_capacity(&c, 1, &off, 131072).unwrap_err().to_string();
        assert!(
            e.contains("max seq len (131072)")
                && e.contains("estimated maximum model length is 44"),
            "{e}"
        );
        // and a GPU with no room left at all
        let mut small = h100();
        small.hardware.usable_memory_bytes = 80e9;
        let e = kv_capacity(&small, 1, &off, 16000).unwrap_err().to_string();
        assert!(
            e.contains("No available memory for the cache blocks"),
            "{e}"
        );
        let h200 = SimConstants::builtin(GpuKind::H200).unwrap();
        for (tp, want) in [(1, 0.836e6), (2, 2.56e6), (4, 6.06e6)] {
            let k = kv_capacity(&h200, tp, &off, 16000).unwrap();
            assert!(
                close(k.full_tokens as f64, want, 0.02),
                "H200 TP{tp} {}",
                k.full_tokens
            );
        }
    }

    #[test]
    fn expert_parallel_reads_the_busiest_gpus_experts() {
        // t = 1: the mean, E_d
        let e1 = expected_max_experts_per_gpu(128, 4, 1, 4);
        assert!(close(e1, 15.3, 0.02), "{e1}");
        // 4 GPUs × 32 experts at 4 tokens: mean 3.8 per GPU, the busiest has ≈ 6
        let e4 = expected_max_experts_per_gpu(128, 4, 4, 4);
        assert!(e4 > 3.9 && e4 < 8.0, "{e4}");
        // saturates at 32 for large batches
        assert!(close(
            expected_max_experts_per_gpu(128, 4, 4, 4096),
            32.0,
            1e-6
        ));
        // the EP replica reads more expert bytes per GPU than TP at small batches, the same
        // at prefill sizes; so its decode step is slower, its prefill step the same
        let c = h100();
        let tp = StepModel::new(&c, 4);
        let ep = StepModel::with_ep(&c, 4, true);
        assert!(ep.expert_parallel() && !tp.expert_parallel());
        assert!(ep.expert_bytes_per_gpu_layer(8) > 1.3 * tp.expert_bytes_per_gpu_layer(8));
        let d_tp = tp.uniform_step(8, 1, 5000, true);
        let d_ep = ep.uniform_step(8, 1, 5000, true);
        assert!(d_ep > d_tp && d_ep < 1.3 * d_tp, "{d_ep} vs {d_tp}");
        let p_tp = tp.uniform_step(1, 5000, 0, true);
        let p_ep = ep.uniform_step(1, 5000, 0, true);
        assert!(close(p_ep, p_tp, 0.01), "{p_ep} vs {p_tp}");
    }

    #[test]
    fn layout_units() {
        let off = KvLayout {
            block_size: 16,
            hybrid: false,
            window_blocks: 9,
        };
        let on = KvLayout {
            block_size: 16,
            hybrid: true,
            window_blocks: 9,
        };
        assert_eq!(off.units(5000), 2 * 313);
        assert_eq!(on.units(5000), 313 + 9);
        assert_eq!(on.units(17), 2 + 2);
        assert_eq!(off.units(0), 0);
    }
}
