//! Command line of `launch-gptoss probe` and its conversion into [`ProbeOptions`] (clap
//! types go no further).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use pd_common::deployment::NixlBackend;
use pd_common::probe::{parse_bytes, Placement, ProbeMemory};
use pd_common::url::BaseUrl;

use crate::cli_values::{Backend, GpuArg, Network};
use crate::error::UsageError;
use crate::probe::options::{parse_shape, ProbeOptions, ProbeTarget, RayProbe, SimProbe};

pub const PROBE_EXAMPLES: &str = "\
Examples:
  # UCX between two nodes and within one, GPU memory, default blocks (32 MiB per transfer)
  launch-gptoss probe --placement pack,spread

  # UCX vs libfabric across nodes, TP shapes 1:1 and 1:2, two block sizes
  launch-gptoss probe --placement spread --nixl ucx,libfabric --shape 1:1,1:2 --block-size 32KiB,1MiB

  # CPU memory (no GPUs needed), UCX forced onto TCP, chosen nodes
  UCX_TLS=tcp launch-gptoss probe --memory dram --nodes 10.0.0.1,10.0.0.2

  # The simulated link's figures (from the simulator constants)
  launch-gptoss probe --backend sim --network efa-srd

  # What would run, without submitting anything (the job's Python on stdout)
  launch-gptoss probe --dry-run
";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlacementArg {
    /// P and D ranks on one node.
    Pack,
    /// P ranks on one node, D ranks on another.
    Spread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NixlArg {
    Ucx,
    Libfabric,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MemoryArg {
    /// GPU memory (each rank holds one GPU), as vLLM's KV cache.
    Vram,
    /// Host memory (no GPU needed), as a CPU deployment's KV cache.
    Dram,
}

fn shape(s: &str) -> Result<(u32, u32), String> {
    parse_shape(s).map_err(|e| e.0)
}

fn bytes(s: &str) -> Result<u64, String> {
    parse_bytes(s).map_err(|e| e.to_string())
}

/// Arguments of `probe`.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// Where to run [env: PD_LAB_BACKEND]: a Ray cluster (a Ray job), or the simulator.
    #[arg(long, value_enum, env = "PD_LAB_BACKEND", default_value = "ray")]
    pub backend: Backend,
    /// Placements to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "pack,spread")]
    pub placement: Vec<PlacementArg>,
    /// NIXL backends to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "ucx")]
    pub nixl: Vec<NixlArg>,
    /// P/D TP shapes P_TP:D_TP, comma-separated (P TP <= D TP, D TP a multiple of P TP).
    #[arg(long, value_delimiter = ',', default_value = "1:1", value_parser = shape, value_name = "P:D")]
    pub shape: Vec<(u32, u32)>,
    /// Bytes of one KV block on one P rank, comma-separated (units KiB, MiB, GiB). 32 KiB is
    /// one layer's K+V of a 16-token block of GPT-OSS-120B at TP 1.
    #[arg(long, value_delimiter = ',', default_value = "32KiB", value_parser = bytes, value_name = "BYTES")]
    pub block_size: Vec<u64>,
    /// Blocks per transfer, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1024", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub blocks: Vec<u32>,
    /// Timed transfers per configuration.
    #[arg(long, default_value_t = 10, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub iterations: u32,
    /// Untimed transfers before the timed ones (after the first, which is reported apart).
    #[arg(long, default_value_t = 2, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub warmup: u32,
    /// Memory of the blocks.
    #[arg(long, value_enum, default_value = "vram")]
    pub memory: MemoryArg,
    /// Result file [default: bm_results/nixl-probe/probe-<backend>-<time>.json].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Show where each configuration would run and the job's program; submit nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Ray dashboard address.
    #[arg(long, env = "RAY_ADDRESS", default_value = crate::ray::options::DEFAULT_DASHBOARD,
          help_heading = "Ray backend")]
    pub ray_address: String,
    /// Python command of the job on the cluster (it must import ray and nixl).
    #[arg(long, default_value = "python", help_heading = "Ray backend")]
    pub python: String,
    /// Nodes of the P and D ranks: P_IP,D_IP (pack uses P_IP) [default: picked from the
    /// cluster's alive nodes].
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "P_IP[,D_IP]",
        help_heading = "Ray backend"
    )]
    pub nodes: Vec<String>,
    /// Limit for the whole job, in seconds (it is stopped after that).
    #[arg(long, default_value_t = 900, value_name = "SECONDS", help_heading = "Ray backend",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// How long each configuration's actors may wait to be placed, in seconds.
    #[arg(long, default_value_t = 120, value_name = "SECONDS", help_heading = "Ray backend",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub place_timeout: u64,

    /// GPU kind of the simulated nodes.
    #[arg(
        long,
        value_enum,
        default_value = "h100",
        help_heading = "Simulated backend"
    )]
    pub gpu: GpuArg,
    /// Network between the simulated P and D nodes (spread). `UCX_TLS=tcp` implies tcp.
    #[arg(long, value_enum, help_heading = "Simulated backend")]
    pub network: Option<Network>,
    /// Simulator constants (TOML) replacing the built-in ones.
    #[arg(long, value_name = "FILE", help_heading = "Simulated backend")]
    pub sim_config: Option<PathBuf>,
}

fn default_out(backend: &str) -> PathBuf {
    let now = chrono::Local::now().format("%Y%m%d-%H%M%S");
    PathBuf::from(format!("bm_results/nixl-probe/probe-{backend}-{now}.json"))
}

impl ProbeArgs {
    /// The probe options these flags describe.
    pub fn options(&self, command: Vec<String>) -> Result<ProbeOptions, UsageError> {
        let ucx_tls = std::env::var("UCX_TLS")
            .ok()
            .filter(|v| !v.trim().is_empty());
        let (target, name) = match self.backend {
            Backend::Ray => {
                let address = self.ray_address.trim();
                let dashboard = BaseUrl::parse(address, 8265)
                    .map_err(|e| UsageError(format!("invalid Ray dashboard address: {e}")))?;
                let python = self.python.trim();
                if python.is_empty() || python.contains(['\n', '\r', '"']) {
                    return Err(UsageError(
                        "--python must be a one-line command without double quotes".into(),
                    ));
                }
                let nodes: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .collect();
                if nodes.iter().any(|n| {
                    !n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '_'))
                }) {
                    return Err(UsageError(format!(
                        "--nodes {}: not node IPs",
                        nodes.join(",")
                    )));
                }
                let nodes = match nodes.as_slice() {
                    [] => None,
                    [p] => Some((p.clone(), None)),
                    [p, d] => Some((p.clone(), Some(d.clone()))),
                    _ => {
                        return Err(UsageError(
                            "--nodes takes at most two IPs: P_IP,D_IP".into(),
                        ))
                    }
                };
                (
                    ProbeTarget::Ray(RayProbe {
                        dashboard,
                        python: python.to_string(),
                        nodes,
                        timeout: Duration::from_secs(self.timeout),
                        place_timeout: Duration::from_secs(self.place_timeout),
                        ucx_tls,
                        poll_interval: Duration::from_secs(1),
                        request_timeout: Duration::from_secs(30),
                    }),
                    "ray",
                )
            }
            Backend::Sim => {
                if !self.nodes.is_empty() {
                    return Err(UsageError(
                        "--nodes picks Ray nodes; the simulator has no nodes to pick".into(),
                    ));
                }
                (
                    ProbeTarget::Sim(SimProbe {
                        gpu: self.gpu.into(),
                        network: self.network.map(Into::into),
                        sim_config: self.sim_config.clone(),
                        ucx_tls,
                    }),
                    "sim",
                )
            }
        };
        let backends: Vec<NixlBackend> = self
            .nixl
            .iter()
            .map(|n| match n {
                NixlArg::Ucx => NixlBackend::Ucx,
                NixlArg::Libfabric => NixlBackend::Libfabric,
            })
            .collect();
        Ok(ProbeOptions {
            target,
            placements: self
                .placement
                .iter()
                .map(|p| match p {
                    PlacementArg::Pack => Placement::Pack,
                    PlacementArg::Spread => Placement::Spread,
                })
                .collect(),
            backends,
            memory: match self.memory {
                MemoryArg::Vram => ProbeMemory::Vram,
                MemoryArg::Dram => ProbeMemory::Dram,
            },
            shapes: self.shape.clone(),
            block_sizes: self.block_size.clone(),
            block_counts: self.blocks.clone(),
            iterations: self.iterations,
            warmup: self.warmup,
            out: self.out.clone().unwrap_or_else(|| default_out(name)),
            dry_run: self.dry_run,
            command,
        })
    }
}
