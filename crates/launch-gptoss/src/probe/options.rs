//! What `launch-gptoss probe` measures (built from the flags by the command layer) and the
//! list of configurations it expands to.

use std::path::PathBuf;
use std::time::Duration;

use pd_common::deployment::{GpuKind, NixlBackend};
use pd_common::probe::{Placement, ProbeConfig, ProbeMemory};
use pd_common::url::BaseUrl;

use crate::error::UsageError;
use crate::sim::engine::NetworkKind;

/// Most configurations one probe run measures (a sweep typo should not run for hours).
pub const MAX_CONFIGS: usize = 64;

/// Where the probe runs.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeTarget {
    /// A Ray cluster: the benchmark is submitted as a Ray job.
    Ray(RayProbe),
    /// The simulator: figures from its link constants.
    Sim(SimProbe),
}

/// Knobs of a probe on Ray.
#[derive(Debug, Clone, PartialEq)]
pub struct RayProbe {
    pub dashboard: BaseUrl,
    /// Interpreter of the job's entrypoint on the cluster.
    pub python: String,
    /// `--nodes P_IP[,D_IP]`: where the P and D ranks go (else picked from the cluster).
    pub nodes: Option<(String, Option<String>)>,
    /// Whole-job limit.
    pub timeout: Duration,
    /// How long the job waits for its actors to be placed (per configuration).
    pub place_timeout: Duration,
    /// `UCX_TLS` of the caller, forwarded to the probe's actors.
    pub ucx_tls: Option<String>,
    /// Time between two status polls.
    pub poll_interval: Duration,
    /// Timeout of one dashboard request.
    pub request_timeout: Duration,
}

/// Knobs of a probe on the simulator.
#[derive(Debug, Clone, PartialEq)]
pub struct SimProbe {
    pub gpu: GpuKind,
    pub network: Option<NetworkKind>,
    pub sim_config: Option<PathBuf>,
    /// `UCX_TLS` of the caller (`tcp` forces the simulated link to TCP, as for a launch).
    pub ucx_tls: Option<String>,
}

/// A probe run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOptions {
    pub target: ProbeTarget,
    pub placements: Vec<Placement>,
    pub backends: Vec<NixlBackend>,
    pub memory: ProbeMemory,
    /// (P TP, D TP) shapes.
    pub shapes: Vec<(u32, u32)>,
    pub block_sizes: Vec<u64>,
    pub block_counts: Vec<u32>,
    pub iterations: u32,
    pub warmup: u32,
    /// Result file.
    pub out: PathBuf,
    /// Print what would be submitted; run nothing, write nothing.
    pub dry_run: bool,
    /// The command line (recorded in the result file).
    pub command: Vec<String>,
}

fn dedup<T: PartialEq + Clone>(v: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for x in v {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

impl ProbeOptions {
    /// Every combination of placement × backend × shape × block size × block count, in
    /// that order, checked the way vLLM's NixlConnector would take them.
    pub fn configs(&self) -> Result<Vec<ProbeConfig>, UsageError> {
        let lists = [
            ("--placement", self.placements.is_empty()),
            ("--nixl", self.backends.is_empty()),
            ("--shape", self.shapes.is_empty()),
            ("--block-size", self.block_sizes.is_empty()),
            ("--blocks", self.block_counts.is_empty()),
        ];
        if let Some((flag, _)) = lists.iter().find(|(_, empty)| *empty) {
            return Err(UsageError(format!("{flag} needs at least one value")));
        }
        if self.iterations == 0 {
            return Err(UsageError("--iterations must be at least 1".into()));
        }
        for &(p, d) in &self.shapes {
            if p == 0 || d == 0 {
                return Err(UsageError(format!(
                    "--shape {p}:{d}: TP degrees start at 1"
                )));
            }
            if p > d || d % p != 0 {
                return Err(UsageError(format!(
                    "--shape {p}:{d}: vLLM's NixlConnector needs P TP <= D TP with D TP a multiple of \
                     P TP (each D rank reads its share of one P rank's blocks)"
                )));
            }
            for &b in &self.block_sizes {
                if b % u64::from(d / p) != 0 {
                    return Err(UsageError(format!(
                        "--block-size {b} is not divisible by D TP / P TP = {} (--shape {p}:{d})",
                        d / p
                    )));
                }
            }
        }
        if self.block_counts.contains(&0) {
            return Err(UsageError("--blocks must be at least 1".into()));
        }
        let mut out = Vec::new();
        for &placement in &dedup(&self.placements) {
            for &nixl_backend in &dedup(&self.backends) {
                for &(p_tp, d_tp) in &dedup(&self.shapes) {
                    for &block_bytes in &dedup(&self.block_sizes) {
                        for &blocks in &dedup(&self.block_counts) {
                            out.push(ProbeConfig {
                                id: format!("c{}", out.len() + 1),
                                placement,
                                nixl_backend,
                                memory: self.memory,
                                p_tp,
                                d_tp,
                                block_bytes,
                                blocks,
                                iterations: self.iterations,
                            });
                        }
                    }
                }
            }
        }
        if out.len() > MAX_CONFIGS {
            return Err(UsageError(format!(
                "{} configurations asked for; one probe run measures at most {MAX_CONFIGS} (split it)",
                out.len()
            )));
        }
        Ok(out)
    }
}

/// Parse a TP shape `P:D` (e.g. `1:2`).
pub fn parse_shape(s: &str) -> Result<(u32, u32), UsageError> {
    let bad = || {
        UsageError(format!(
            "invalid --shape '{s}' (expected P_TP:D_TP, e.g. 1:2)"
        ))
    };
    let (p, d) = s.trim().split_once(':').ok_or_else(bad)?;
    let p: u32 = p.trim().parse().map_err(|_| bad())?;
    let d: u32 = d.trim().parse().map_err(|_| bad())?;
    if p == 0 || d == 0 || p > 64 || d > 64 {
        return Err(bad());
    }
    Ok((p, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ProbeOptions {
        ProbeOptions {
            target: ProbeTarget::Sim(SimProbe {
                gpu: GpuKind::H100,
                network: None,
                sim_config: None,
                ucx_tls: None,
            }),
            placements: vec![Placement::Pack, Placement::Spread],
            backends: vec![NixlBackend::Ucx],
            memory: ProbeMemory::Vram,
            shapes: vec![(1, 1), (1, 2)],
            block_sizes: vec![65536],
            block_counts: vec![16, 256],
            iterations: 5,
            warmup: 1,
            out: "p.json".into(),
            dry_run: false,
            command: vec![],
        }
    }

    #[test]
    fn expands_in_order_with_ids() {
        let c = opts().configs().unwrap();
        assert_eq!(c.len(), 2 * 2 * 2);
        assert_eq!(c[0].id, "c1");
        assert_eq!(c[0].label(), "pack ucx P1:D1 64KiB×16");
        assert_eq!(c[7].label(), "spread ucx P1:D2 64KiB×256");
        let mut o = opts();
        o.placements = vec![Placement::Spread, Placement::Spread];
        assert_eq!(o.configs().unwrap().len(), 4, "duplicates collapse");
    }

    #[test]
    fn refuses_what_vllm_cannot_do() {
        let mut o = opts();
        o.shapes = vec![(2, 1)];
        assert!(o.configs().unwrap_err().0.contains("P TP <= D TP"));
        o.shapes = vec![(2, 3)];
        assert!(o.configs().unwrap_err().0.contains("multiple"));
        o.shapes = vec![(1, 4)];
        o.block_sizes = vec![6];
        assert!(o.configs().unwrap_err().0.contains("not divisible"));
        let mut o = opts();
        o.backends.clear();
        assert!(o.configs().unwrap_err().0.contains("--nixl"));
        let mut o = opts();
        o.iterations = 0;
        assert!(o.configs().is_err());
        let mut o = opts();
        o.block_counts = (1..=40).collect();
        assert!(o.configs().unwrap_err().0.contains("at most"));
    }

    #[test]
    fn shapes_parse() {
        assert_eq!(parse_shape("1:2").unwrap(), (1, 2));
        assert_eq!(parse_shape(" 4 : 4 ").unwrap(), (4, 4));
        for bad in ["", "1", "0:1", "a:b", "1:2:3", "1:999"] {
            assert!(parse_shape(bad).is_err(), "{bad}");
        }
    }
}
