//! Simulator constants: one versioned TOML file per GPU kind (`sim-config/h100.toml`,
//! `sim-config/h200.toml`), embedded in the binary and overridable with `--sim-config`.
//! Every constant carries its source in the TOML file; see `docs/SIMULATOR.md`.

use std::path::Path;

use pd_common::deployment::GpuKind;
use serde::{Deserialize, Serialize};

use super::error::SimError;

/// Network between P and D nodes in pd-spread. pd-pack uses NVLink, except with
/// [`NetworkKind::Tcp`] (`UCX_TLS=tcp` also disables UCX's cuda_ipc on one node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkKind {
    EfaSrd,
    Ib,
    Tcp,
    Custom,
}

/// The constants file format version this build understands.
pub const CONSTANTS_VERSION: u32 = 1;

const H100_TOML: &str = include_str!("../../../sim-config/h100.toml");
const H200_TOML: &str = include_str!("../../../sim-config/h200.toml");

/// GPU hardware figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareConsts {
    /// Memory one GPU reports (bytes).
    pub usable_memory_bytes: f64,
    /// HBM bandwidth (B/s).
    pub hbm_bandwidth: f64,
    /// Dense BF16 peak (FLOP/s).
    pub bf16_flops: f64,
}

/// GPT-OSS-120B architecture figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConsts {
    pub layers: u32,
    pub full_attention_layers: u32,
    pub sliding_window: u32,
    pub hidden_size: u32,
    pub q_heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub experts: u32,
    pub experts_per_token: u32,
    /// Bytes of one expert in one layer.
    pub expert_bytes: f64,
    /// Weights read every step besides the experts (bytes).
    pub dense_weight_bytes: f64,
    /// All weights (bytes).
    pub checkpoint_bytes: f64,
    pub linear_flops_per_token: f64,
    pub lm_head_flops: f64,
    pub kv_dtype_bytes: u32,
}

impl ModelConsts {
    /// KV bytes per token per layer (K and V, all KV heads, summed over the TP shards).
    pub fn kv_bytes_per_token_layer(&self) -> f64 {
        2.0 * f64::from(self.kv_heads) * f64::from(self.head_dim) * f64::from(self.kv_dtype_bytes)
    }
    /// KV bytes per token over all layers (what NIXL moves per prompt token).
    pub fn kv_bytes_per_token(&self) -> f64 {
        self.kv_bytes_per_token_layer() * f64::from(self.layers)
    }
    pub fn sliding_layers(&self) -> u32 {
        self.layers.saturating_sub(self.full_attention_layers)
    }
}

/// Step-time constants (docs/SIMULATOR.md, "Step time").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConsts {
    pub c0: f64,
    pub c_seq: f64,
    pub eta_bw: f64,
    pub eta_lin: f64,
    pub eta_att: f64,
    pub tau_e: f64,
    pub alpha_ar: f64,
    pub b_ar: f64,
}

/// Hybrid KV manager (sliding-window layers keep only the window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HybridKv {
    /// On when collocated, off in PD (vLLM turns it off with a KV connector).
    Auto,
    On,
    Off,
}

/// KV-cache memory constants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConsts {
    pub gpu_memory_utilization: f64,
    pub weight_overhead: f64,
    /// Activation peak of vLLM's profile run plus non-torch memory, per GPU (bytes).
    pub reserve_bytes: f64,
    /// Extra non-torch memory per GPU when TP > 1 (NCCL and custom all-reduce buffers).
    pub reserve_tp_bytes: f64,
    pub block_size: u32,
    pub hybrid_kv: HybridKv,
}

/// vLLM scheduler limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConsts {
    pub max_num_batched_tokens: u32,
    pub max_num_seqs: u32,
}

/// Frontend (Ray Serve + OpenAI server) constants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendConsts {
    /// Request overhead seen in TTFT (s): half before the engine, half after.
    pub t_fe: f64,
    /// Inbound latency per prompt token (s) each engine that receives the prompt pays
    /// before its scheduler sees the request (request parsing, tokenization, input
    /// processing); in PD both P and D receive it.
    pub t_fe_per_token: f64,
    /// Extra PD hop (s): P response → proxy → D submit.
    pub t_pd: f64,
    /// Ray Serve ingress routers (each routes on its own in-flight counts).
    pub num_routers: u32,
    /// Service time per streamed message of the cluster's HTTP proxy (s): every token
    /// chunk of every stream passes this one FIFO server on its way to the client.
    pub t_chunk: f64,
}

/// PD transfer constants independent of the link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdConsts {
    /// Cold NIXL handshake on the first transfer between a (P, D) pair (s).
    pub t_hs: f64,
    /// Extra transfer time when P TP ≠ D TP (s), per prompt block and per D TP rank
    /// (the heterogeneous-TP read splits every block of every layer for each D rank).
    pub hetero_per_block: f64,
}

/// One KV-transfer link.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConsts {
    /// Aggregate bandwidth shared by all in-flight transfers (B/s).
    pub bandwidth: f64,
    /// Cap per transfer (B/s); 0 = none.
    pub per_flow_bandwidth: f64,
    /// Fixed latency per transfer (s).
    pub tau: f64,
    /// Added to every D step per in-flight transfer to that D (s).
    pub c_xfer: f64,
}

/// All links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConsts {
    pub nvlink: LinkConsts,
    pub efa_srd: LinkConsts,
    pub ib: LinkConsts,
    pub tcp: LinkConsts,
    pub custom: LinkConsts,
}

impl NetworkConsts {
    pub fn link(&self, kind: NetworkKind) -> &LinkConsts {
        match kind {
            NetworkKind::EfaSrd => &self.efa_srd,
            NetworkKind::Ib => &self.ib,
            NetworkKind::Tcp => &self.tcp,
            NetworkKind::Custom => &self.custom,
        }
    }
}

/// Simulator constants for one GPU kind (see docs/SIMULATOR.md), loaded from TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConstants {
    /// File format version ([`CONSTANTS_VERSION`]).
    pub version: u32,
    /// GPU kind these constants describe (`h100`, `h200`).
    pub gpu: String,
    pub hardware: HardwareConsts,
    pub model: ModelConsts,
    pub step: StepConsts,
    pub memory: MemoryConsts,
    pub scheduler: SchedulerConsts,
    pub frontend: FrontendConsts,
    pub pd: PdConsts,
    pub network: NetworkConsts,
}

impl SimConstants {
    /// The built-in constants for a GPU kind.
    pub fn builtin(gpu: GpuKind) -> Result<Self, SimError> {
        let (name, text) = match gpu {
            GpuKind::H100 => ("sim-config/h100.toml", H100_TOML),
            GpuKind::H200 => ("sim-config/h200.toml", H200_TOML),
            other => {
                return Err(SimError::Config(format!(
                    "the simulator has constants for h100 and h200 only, not '{other}'"
                )))
            }
        };
        Self::parse(text, name)
    }

    /// The embedded TOML text for a GPU kind (to start a custom `--sim-config`).
    pub fn builtin_toml(gpu: GpuKind) -> Option<&'static str> {
        match gpu {
            GpuKind::H100 => Some(H100_TOML),
            GpuKind::H200 => Some(H200_TOML),
            _ => None,
        }
    }

    /// Load constants from a TOML file (replacing the built-in ones).
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SimError::Config(format!("{}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse and validate TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SimError> {
        let c: SimConstants =
            toml::from_str(text).map_err(|e| SimError::Config(format!("{origin}: {e}")))?;
        c.validate()
            .map_err(|m| SimError::Config(format!("{origin}: {m}")))?;
        Ok(c)
    }

    /// Check ranges; returns a message naming the bad constant.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != CONSTANTS_VERSION {
            return Err(format!(
                "constants version {} is not supported (this build reads version {CONSTANTS_VERSION})",
                self.version
            ));
        }
        let positive = [
            (
                "hardware.usable_memory_bytes",
                self.hardware.usable_memory_bytes,
            ),
            ("hardware.hbm_bandwidth", self.hardware.hbm_bandwidth),
            ("hardware.bf16_flops", self.hardware.bf16_flops),
            ("step.eta_bw", self.step.eta_bw),
            ("step.eta_lin", self.step.eta_lin),
            ("step.eta_att", self.step.eta_att),
            ("step.b_ar", self.step.b_ar),
            (
                "memory.gpu_memory_utilization",
                self.memory.gpu_memory_utilization,
            ),
            ("network.nvlink.bandwidth", self.network.nvlink.bandwidth),
            ("network.efa_srd.bandwidth", self.network.efa_srd.bandwidth),
            ("network.ib.bandwidth", self.network.ib.bandwidth),
            ("network.tcp.bandwidth", self.network.tcp.bandwidth),
            ("network.custom.bandwidth", self.network.custom.bandwidth),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} must be a positive number, got {v}"));
            }
        }
        let non_negative = [
            ("model.expert_bytes", self.model.expert_bytes),
            ("model.dense_weight_bytes", self.model.dense_weight_bytes),
            ("model.checkpoint_bytes", self.model.checkpoint_bytes),
            (
                "model.linear_flops_per_token",
                self.model.linear_flops_per_token,
            ),
            ("model.lm_head_flops", self.model.lm_head_flops),
            ("step.c0", self.step.c0),
            ("step.c_seq", self.step.c_seq),
            ("step.tau_e", self.step.tau_e),
            ("step.alpha_ar", self.step.alpha_ar),
            ("memory.weight_overhead", self.memory.weight_overhead),
            ("memory.reserve_bytes", self.memory.reserve_bytes),
            ("memory.reserve_tp_bytes", self.memory.reserve_tp_bytes),
            ("frontend.t_fe", self.frontend.t_fe),
            ("frontend.t_pd", self.frontend.t_pd),
            ("pd.t_hs", self.pd.t_hs),
            ("pd.hetero_per_block", self.pd.hetero_per_block),
            ("frontend.t_fe_per_token", self.frontend.t_fe_per_token),
            ("frontend.t_chunk", self.frontend.t_chunk),
        ];
        for (name, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} must be ≥ 0, got {v}"));
            }
        }
        for (name, l) in [
            ("nvlink", &self.network.nvlink),
            ("efa_srd", &self.network.efa_srd),
            ("ib", &self.network.ib),
            ("tcp", &self.network.tcp),
            ("custom", &self.network.custom),
        ] {
            for (field, v) in [
                ("per_flow_bandwidth", l.per_flow_bandwidth),
                ("tau", l.tau),
                ("c_xfer", l.c_xfer),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!("network.{name}.{field} must be ≥ 0, got {v}"));
                }
            }
        }
        if self.memory.gpu_memory_utilization > 1.0 {
            return Err("memory.gpu_memory_utilization must be ≤ 1".into());
        }
        let m = &self.model;
        if m.layers == 0
            || m.full_attention_layers > m.layers
            || m.experts == 0
            || m.experts_per_token == 0
            || m.experts_per_token > m.experts
            || m.kv_heads == 0
            || m.head_dim == 0
            || m.kv_dtype_bytes == 0
        {
            return Err("model: inconsistent architecture numbers".into());
        }
        if self.memory.block_size == 0 {
            return Err("memory.block_size must be ≥ 1".into());
        }
        if self.scheduler.max_num_batched_tokens == 0 || self.scheduler.max_num_seqs == 0 {
            return Err("scheduler limits must be ≥ 1".into());
        }
        if self.frontend.num_routers == 0 {
            return Err("frontend.num_routers must be ≥ 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_files_parse() {
        let h100 = SimConstants::builtin(GpuKind::H100).unwrap();
        let h200 = SimConstants::builtin(GpuKind::H200).unwrap();
        assert_eq!(h100.gpu, "h100");
        assert_eq!(h200.gpu, "h200");
        assert!(h200.hardware.hbm_bandwidth > h100.hardware.hbm_bandwidth);
        assert_eq!(h100.model.kv_bytes_per_token(), 73728.0); // 72 KiB
        assert!(SimConstants::builtin(GpuKind::Cpu).is_err());
    }

    #[test]
    fn bad_values_are_reported() {
        let text: String = H100_TOML
            .lines()
            .map(|l| {
                if l.starts_with("eta_bw =") {
                    "eta_bw = -1.0".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_ne!(text, H100_TOML);
        let e = SimConstants::parse(&text, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("step.eta_bw"), "{e}");
        let text = H100_TOML.replace("version = 1", "version = 99");
        assert!(SimConstants::parse(&text, "x")
            .unwrap_err()
            .to_string()
            .contains("version"));
        let text = H100_TOML.replace("c0 =", "c_zero =");
        assert!(SimConstants::parse(&text, "x").is_err());
    }
}
