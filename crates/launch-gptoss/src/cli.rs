//! Command-line interface of `launch-gptoss` (drop-in for the seed's `launch_gptoss.py`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pd_common::deployment::{DeployMode, DeploymentSpec, GpuKind, NixlBackend, Replicas};

const EXAMPLES: &str = "\
Examples:
  # Collocated baseline with TP=2, 4 replicas, on the simulated cluster
  launch-gptoss --backend sim --mode collocated --tp 2 --num-replicas 4

  # PD single-node: 2 prefill (TP=1) + 4 decode (TP=2), NIXL over UCX, on Ray
  launch-gptoss --mode pd-pack --p-num 2 --p-tp 1 --d-num 4 --d-tp 2 --use-ucx

  # PD multi-node: prefill and decode on different nodes
  launch-gptoss --mode pd-spread --p-num 1 --p-tp 4 --d-num 1 --d-tp 4 --use-ucx

  # Print the Ray Serve config and placement without a cluster
  launch-gptoss --mode pd-pack --p-num 1 --p-tp 2 --d-num 2 --d-tp 2 --dry-run --nodes 10.0.0.1:8

  # Stop whatever the deployment record describes
  launch-gptoss shutdown
";

/// Deploy GPT-OSS-120B collocated or prefill/decode-disaggregated, on a Ray cluster
/// (Ray Serve LLM + vLLM + NIXL) or on the embedded simulated cluster.
///
/// Returns once the deployment answers, after writing the deployment record that
/// `run-bm` reads (default .pd-lab/deployment.toml).
#[derive(Debug, Parser)]
#[command(name = "launch-gptoss", version, after_help = EXAMPLES, subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub launch: LaunchArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stop the deployment described by the record and remove the record (idempotent).
    Shutdown(RecordArgs),
    /// Show the deployment's state (application, deployments, replicas) and the record.
    Status(RecordArgs),
    /// Run the simulated cluster's server in this process (used by `--backend sim`).
    #[command(hide = true)]
    ServeSim(ServeSimArgs),
    /// Compare the simulator (virtual time) with real results, config by config.
    #[command(
        after_help = "Examples:\n  launch-gptoss sim-calibrate --markdown docs/sim-calibration.md\n  launch-gptoss sim-calibrate --seed 3 --sim-config my.toml --out /tmp/cal"
    )]
    SimCalibrate(SimCalibrateArgs),
    /// Find the best deployment for a workload and latency objectives from the simulator:
    /// every feasible layout simulated over the sweep, ranked by throughput per GPU under
    /// the objectives.
    #[command(
        after_help = "Examples:\n  launch-gptoss plan --gpus 16 --itl 5000 --otl 250 --slo-ttft 1000 --slo-tpot 20\n  launch-gptoss plan --gpus 8 --gpu h200 --rate 1,2,4,8 --max-concurrency 256 --json\n  launch-gptoss plan --gpus 16 --compare-with bm_results/reference"
    )]
    Plan(PlanArgs),
}

/// Benchmark mode of the planned workload (as run-bm's --mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchModeArg {
    Mixed,
    PrefillOnly,
    DecodeOnly,
}

impl From<BenchModeArg> for pd_common::workload::BenchMode {
    fn from(m: BenchModeArg) -> Self {
        match m {
            BenchModeArg::Mixed => pd_common::workload::BenchMode::Mixed,
            BenchModeArg::PrefillOnly => pd_common::workload::BenchMode::PrefillOnly,
            BenchModeArg::DecodeOnly => pd_common::workload::BenchMode::DecodeOnly,
        }
    }
}

/// Arguments of `plan`.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// GPUs of the cluster (layouts may use fewer: the ranking is per GPU).
    #[arg(long, value_name = "N")]
    pub gpus: u32,
    /// GPUs per node.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub gpus_per_node: u32,
    /// GPU kind.
    #[arg(long, value_enum, default_value = "h100")]
    pub gpu: GpuArg,
    /// Network between nodes [default: efa-srd on h100, ib on h200].
    #[arg(long, value_enum)]
    pub network: Option<Network>,
    /// Input tokens per request.
    #[arg(long, default_value_t = 5000, value_name = "TOKENS")]
    pub itl: u32,
    /// Output tokens per request.
    #[arg(long, default_value_t = 250, value_name = "TOKENS")]
    pub otl: u32,
    /// Benchmark mode (as run-bm's).
    #[arg(long, value_enum, default_value = "mixed")]
    pub mode: BenchModeArg,
    /// Objective on the median time to first token (ms).
    #[arg(long, value_name = "MS")]
    pub slo_ttft: Option<f64>,
    /// Objective on the median time per output token (ms).
    #[arg(long, value_name = "MS")]
    pub slo_tpot: Option<f64>,
    /// Closed-loop concurrencies to simulate ("4,8,16" or "all" = 4,8,16,32,48,64)
    /// [default: all].
    #[arg(short = 'c', long, value_name = "LIST", conflicts_with = "rate")]
    pub concurrency: Option<String>,
    /// Request rates (Poisson) to simulate instead ("1,2,4" or "all" = 1..10).
    #[arg(short = 'r', long, value_name = "LIST")]
    pub rate: Option<String>,
    /// Client concurrency cap of the rate points.
    #[arg(long, value_name = "N", requires = "rate")]
    pub max_concurrency: Option<u32>,
    /// Layouts to show commands and result directories for.
    #[arg(long, default_value_t = 3, value_name = "K")]
    pub top: usize,
    /// Print the plan as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Where to write the top K's simulated result directories (viz-readable).
    #[arg(long, default_value = "bm_results/plan", value_name = "DIR")]
    pub out: PathBuf,
    /// Write no result directories.
    #[arg(long)]
    pub no_dirs: bool,
    /// Only these deployment modes (comma-separated) [default: all].
    #[arg(long, value_enum, value_delimiter = ',', value_name = "MODES")]
    pub layouts: Vec<ModeArg>,
    /// Leave out the expert-parallel (tpep) variants.
    #[arg(long)]
    pub no_ep: bool,
    /// `max_model_len` of the engines [default: 16000, or the workload's length rounded up
    /// to 1024 when longer].
    #[arg(long, value_name = "TOKENS")]
    pub max_model_len: Option<u32>,
    /// Served model name used in the result directories.
    #[arg(long, default_value = "gptoss")]
    pub model_id: String,
    /// Compare the ranking with measured runs under this directory (repeatable).
    #[arg(long, value_name = "DIR")]
    pub compare_with: Vec<PathBuf>,
    /// Simulator constants (TOML) replacing the built-in ones of the file's GPU kind.
    #[arg(long, value_name = "FILE")]
    pub sim_config: Vec<PathBuf>,
    /// Worker threads [default: the available cores].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Random seed (routing, arrival schedules).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// Arguments of `sim-calibrate`.
#[derive(Debug, Clone, Args)]
pub struct SimCalibrateArgs {
    /// Real `vllm bench serve` results to compare with: a directory of result directories,
    /// or one result directory. Repeatable.
    #[arg(long, default_value = "bm_results/reference", value_name = "DIR")]
    pub real_dir: Vec<PathBuf>,
    /// Where to write the simulated result directories (viz-readable).
    #[arg(long, default_value = "bm_results/sim-calibration", value_name = "DIR")]
    pub out: PathBuf,
    /// Also write the comparison as Markdown to this file.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Simulator constants (TOML) replacing the built-in ones of the file's GPU kind.
    /// Repeatable (one per GPU kind).
    #[arg(long, value_name = "FILE")]
    pub sim_config: Vec<PathBuf>,
    /// Random seed (routing, arrival schedules).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads [default: the available cores].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Also measure out-of-sample error: leave one configuration out, fit the free
    /// constants on the others, predict it (slow: one fit per configuration).
    #[arg(long)]
    pub loco: bool,
    /// Fit the free constants on every configuration and print them (in-sample).
    #[arg(long)]
    pub fit: bool,
    /// With --fit: write h100.toml and h200.toml with the fitted values (comments kept)
    /// into this directory.
    #[arg(long, value_name = "DIR", requires = "fit")]
    pub fit_out: Option<PathBuf>,
    /// With --fit or --loco: keep this free constant at its file value (repeatable; names
    /// as --fit prints them, e.g. pd.t_hs).
    #[arg(long, value_name = "NAME")]
    pub fit_fix: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RecordArgs {
    /// Deployment record to use [default: $PD_LAB_DEPLOYMENT or .pd-lab/deployment.toml].
    #[arg(long, value_name = "FILE")]
    pub deployment_file: Option<PathBuf>,
    /// Print more detail.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Arguments of the hidden `serve-sim` subcommand: the simulator process itself.
#[derive(Debug, Clone, Args)]
pub struct ServeSimArgs {
    /// The launch arguments, as JSON (written by the parent `launch-gptoss`).
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
}

/// Where the deployment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum Backend {
    /// A real Ray cluster (Ray Serve LLM + vLLM), driven over the Serve REST API.
    Ray,
    /// The embedded simulated cluster (no GPUs needed).
    Sim,
}

/// Network between the P and D nodes of a simulated pd-spread deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum Network {
    /// AWS EFA with UCX over SRD (measured 11 GB/s per pair).
    EfaSrd,
    /// InfiniBand.
    Ib,
    /// UCX forced to TCP (a deliberately bad network).
    Tcp,
    /// Taken from the [network.custom] table of the simulator config.
    Custom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GpuArg {
    H100,
    H200,
}

impl From<GpuArg> for GpuKind {
    fn from(g: GpuArg) -> Self {
        match g {
            GpuArg::H100 => GpuKind::H100,
            GpuArg::H200 => GpuKind::H200,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Collocated,
    PdPack,
    PdSpread,
}

impl From<ModeArg> for DeployMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Collocated => DeployMode::Collocated,
            ModeArg::PdPack => DeployMode::PdPack,
            ModeArg::PdSpread => DeployMode::PdSpread,
        }
    }
}

/// Deployment flags (the default command).
#[derive(Debug, Clone, Args)]
pub struct LaunchArgs {
    /// Deployment mode.
    #[arg(long, value_enum, required = true)]
    pub mode: Option<ModeArg>,
    /// Served model name.
    #[arg(long, default_value = "gptoss")]
    pub model_id: String,
    /// Model weights source (Hugging Face id or local path).
    #[arg(long, default_value = "openai/gpt-oss-120b")]
    pub model_source: String,
    /// Collocated replicas (alias: --num-replicas).
    #[arg(
        long = "num",
        visible_alias = "num-replicas",
        default_value_t = 1,
        value_name = "N"
    )]
    pub num_replicas: u32,
    /// TP degree of collocated replicas.
    #[arg(
        long = "tp",
        visible_alias = "tensor-parallel-size",
        default_value_t = 2,
        value_name = "N"
    )]
    pub tp: u32,
    /// Prefill replicas (PD modes).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub p_num: u32,
    /// TP degree of prefill replicas.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub p_tp: u32,
    /// Decode replicas (PD modes).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub d_num: u32,
    /// TP degree of decode replicas.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub d_tp: u32,
    /// Use UCX for NIXL KV transfer (default).
    #[arg(long, conflicts_with = "use_libfabric")]
    pub use_ucx: bool,
    /// Use libfabric (EFA) for NIXL KV transfer.
    #[arg(long)]
    pub use_libfabric: bool,
    /// Debug logging for NIXL/UCX/vLLM in the deployment; more progress output here.
    #[arg(short, long)]
    pub verbose: bool,
    /// Where to deploy [env: PD_LAB_BACKEND].
    #[arg(long, value_enum, env = "PD_LAB_BACKEND", default_value = "ray")]
    pub backend: Backend,
    /// GPUs per node.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub gpus_per_node: u32,
    /// Deployment record to write [default: $PD_LAB_DEPLOYMENT or .pd-lab/deployment.toml].
    #[arg(long, value_name = "FILE")]
    pub deployment_file: Option<PathBuf>,
    /// Readiness timeout in seconds.
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    pub timeout: u64,
    /// `max_model_len` of every engine.
    #[arg(long, default_value_t = 16000, value_name = "TOKENS")]
    pub max_model_len: u32,

    // ---- Ray backend ----
    /// Ray dashboard address. The Serve REST API is declarative for the whole cluster:
    /// applications other than ours are kept as they are.
    #[arg(
        long,
        env = "RAY_ADDRESS",
        default_value = "http://127.0.0.1:8265",
        help_heading = "Ray backend"
    )]
    pub ray_address: String,
    /// Serve application name.
    #[arg(long, default_value = "gptoss", help_heading = "Ray backend")]
    pub app_name: String,
    /// Ray Serve LLM `experimental_configs.stream_batching_interval_ms`.
    #[arg(
        long,
        default_value_t = 0,
        value_name = "MS",
        help_heading = "Ray backend"
    )]
    pub stream_batching_interval_ms: u32,
    /// Ingress (and PD proxy) replicas.
    #[arg(
        long,
        default_value_t = 16,
        value_name = "N",
        help_heading = "Ray backend"
    )]
    pub ingress_replicas: u32,
    /// Deploy with vLLM's DecodeBenchConnector (real decode-only benchmarking; collocated only).
    #[arg(long, help_heading = "Ray backend")]
    pub decode_bench: bool,
    /// TOML/JSON file deep-merged into every LLM config. Reserved tables [prefill], [decode],
    /// [ingress_deployment_config] and [proxy_deployment_config] apply to one part only;
    /// tables merge, other values replace, JSON null deletes a key.
    #[arg(long, value_name = "FILE", help_heading = "Ray backend")]
    pub overrides: Option<PathBuf>,
    /// Print the Serve config and placement plan; deploy nothing.
    #[arg(long, help_heading = "Ray backend")]
    pub dry_run: bool,
    /// Nodes for --dry-run without a cluster: IP:GPUS, repeatable or comma-separated
    /// (only with --dry-run).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "IP:GPUS",
        help_heading = "Ray backend"
    )]
    pub nodes: Vec<String>,
    /// Leave a failed deployment in place for debugging.
    #[arg(long, help_heading = "Ray backend")]
    pub keep_on_failure: bool,
    /// Serve HTTP endpoint of the cluster (default: http://<dashboard host>:8000).
    #[arg(long, value_name = "URL", help_heading = "Ray backend")]
    pub serve_url: Option<String>,

    // ---- simulated backend ----
    /// GPU kind of the simulated nodes.
    #[arg(
        long,
        value_enum,
        default_value = "h100",
        help_heading = "Simulated backend"
    )]
    pub gpu: GpuArg,
    /// Network between P and D nodes (pd-spread). `UCX_TLS=tcp` implies tcp.
    #[arg(long, value_enum, help_heading = "Simulated backend")]
    pub network: Option<Network>,
    /// Address the simulated endpoint listens on.
    #[arg(long, default_value = "127.0.0.1", help_heading = "Simulated backend")]
    pub host: String,
    /// Port of the simulated endpoint.
    #[arg(long, default_value_t = 8000, help_heading = "Simulated backend")]
    pub port: u16,
    /// Random seed of the simulator.
    #[arg(long, default_value_t = 0, help_heading = "Simulated backend")]
    pub seed: u64,
    /// Simulator constants (TOML) replacing the built-in ones for the GPU kind.
    #[arg(long, value_name = "FILE", help_heading = "Simulated backend")]
    pub sim_config: Option<PathBuf>,
    /// Keep the simulated cluster in the foreground (Ctrl-C stops it).
    #[arg(long, help_heading = "Simulated backend")]
    pub foreground: bool,
}

impl LaunchArgs {
    /// The NIXL backend the flags ask for.
    pub fn nixl_backend(&self) -> NixlBackend {
        if self.use_libfabric {
            NixlBackend::Libfabric
        } else {
            NixlBackend::Ucx
        }
    }

    /// The deployment spec these flags describe (not yet validated).
    pub fn spec(&self) -> Option<DeploymentSpec> {
        let mode: DeployMode = self.mode?.into();
        let mut spec = match mode {
            DeployMode::Collocated => DeploymentSpec::collocated(self.num_replicas, self.tp),
            m => DeploymentSpec::pd(
                m,
                Replicas {
                    num: self.p_num,
                    tp: self.p_tp,
                },
                Replicas {
                    num: self.d_num,
                    tp: self.d_tp,
                },
            ),
        };
        spec.nixl_backend = self.nixl_backend();
        spec.model_id = self.model_id.clone();
        spec.model_source = self.model_source.clone();
        spec.gpu = match self.backend {
            Backend::Sim => self.gpu.into(),
            Backend::Ray => GpuKind::Other,
        };
        Some(spec)
    }
}
