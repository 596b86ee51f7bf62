//! Command-line interface of `launch-gptoss` (drop-in for the seed's `launch_gptoss.py`):
//! clap types, and their conversion into the library's option types
//! ([`LaunchRequest`], [`RayOptions`], [`SimOptions`]); clap types go no further.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use pd_common::deployment::{DeploymentSpec, GpuKind, NixlBackend, Replicas};
use pd_common::diag::LevelFilter;
use pd_common::url::BaseUrl;

pub use crate::cli_values::{Backend, GpuArg, Network};
use crate::error::UsageError;
use crate::options::LaunchRequest;
use crate::ray::env::CallerEnv;
use crate::ray::nodes::parse_node_args;
use crate::ray::options::RayOptions;
use crate::sim::options::SimOptions;

const EXAMPLES: &str = "\
Examples:
  # Collocated baseline with TP=2, 4 replicas, on the simulated cluster
  launch-gptoss --backend sim --mode collocated --tp 2 --num-replicas 4

  # PD single-node on 8-GPU nodes: 2 prefill (TP=1) + 3 decode (TP=2), NIXL over UCX, on Ray
  launch-gptoss --mode pd-pack --p-num 2 --p-tp 1 --d-num 3 --d-tp 2 --use-ucx

  # 2 prefill (TP=1) + 4 decode (TP=2) needs 10 GPUs on one node: refused on 8-GPU nodes;
  # a dry run assuming 16-GPU nodes
  launch-gptoss --mode pd-pack --p-num 2 --p-tp 1 --d-num 4 --d-tp 2 --gpus-per-node 16 --dry-run

  # PD multi-node: prefill and decode on different nodes
  launch-gptoss --mode pd-spread --p-num 1 --p-tp 4 --d-num 1 --d-tp 4 --use-ucx

  # Print the Ray Serve config and placement for given nodes, without a cluster
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
#[command(
    name = "launch-gptoss",
    version,
    after_help = EXAMPLES,
    subcommand_negates_reqs = true,
    infer_long_args = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub launch: LaunchArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl Cli {
    /// Parse `args` like [`Parser::try_parse_from`], and refuse launch flags next to a
    /// subcommand (`-v`/`-q` may go before or after it).
    pub fn try_parse_checked<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let mut cmd = Cli::command();
        let m = cmd.try_get_matches_from_mut(args)?;
        if let Some((sub, _)) = m.subcommand() {
            let flag = cmd
                .get_arguments()
                .filter(|a| !a.is_global_set())
                .find(|a| {
                    m.value_source(a.get_id().as_str())
                        == Some(clap::parser::ValueSource::CommandLine)
                })
                .map(|a| a.get_long().unwrap_or(a.get_id().as_str()).to_string());
            if let Some(flag) = flag {
                return Err(cmd.error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "--{flag} is a launch flag: it cannot be used with the `{sub}` subcommand"
                    ),
                ));
            }
        }
        Cli::from_arg_matches(&m).map_err(|e| e.format(&mut cmd))
    }

    /// Parse the process's arguments; usage errors print clap's message and exit 2.
    pub fn parse_process_args() -> Cli {
        Cli::try_parse_checked(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }
}

/// The tool's own log level.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// More output from launch-gptoss itself (-v debug, -vv trace); the deployment's own
    /// logging is --engine-debug.
    #[arg(short = 'v', action = ArgAction::Count, global = true, help_heading = "Output")]
    pub more: u8,
    /// Less output: -q warnings and errors only, -qq errors only.
    #[arg(short = 'q', long = "quiet", action = ArgAction::Count, global = true,
          conflicts_with = "more", help_heading = "Output")]
    pub quiet: u8,
}

impl OutputArgs {
    /// Progress is INFO (shown by default); `-v`/`-q` move from there.
    pub fn level(&self) -> LevelFilter {
        match i16::from(self.more) - i16::from(self.quiet) {
            i16::MIN..=-2 => LevelFilter::ERROR,
            -1 => LevelFilter::WARN,
            0 => LevelFilter::INFO,
            1 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stop the deployment described by the record and remove the record (idempotent).
    ///
    /// A simulator is only signalled when its process is verifiably the one the record
    /// describes (our user, launch-gptoss, started before the record was written);
    /// otherwise it is left alone and said so.
    Shutdown(RecordArgs),
    /// Show the deployment's state (application, deployments, replicas) and the record
    /// (-v: Ray's messages in full).
    Status(RecordArgs),
    /// Run the simulated cluster's server in this process (used by `--backend sim`).
    #[command(hide = true)]
    ServeSim(ServeSimArgs),
    /// Measure the KV link first: a NIXL transfer micro-benchmark between the cluster's
    /// nodes (pack and spread, UCX and libfabric, P/D TP shapes, block sizes), run on the
    /// cluster as a Ray job, or the simulated link's figures (--backend sim). Prints bandwidth
    /// and latency per configuration and writes a result file (`viz --probe FILE`).
    #[command(after_help = crate::cli_probe::PROBE_EXAMPLES)]
    Probe(crate::cli_probe::ProbeArgs),
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
    /// With --loco: hold out N groups of configurations instead of one configuration at a
    /// time (N-fold cross-validation by configuration: configurations sorted by name, every
    /// N-th in the same fold; N fits instead of one per configuration).
    #[arg(long, value_name = "N", requires = "loco", value_parser = clap::value_parser!(u32).range(2..))]
    pub folds: Option<u32>,
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
}

/// Arguments of the hidden `serve-sim` subcommand: the simulator process itself.
#[derive(Debug, Clone, Args)]
pub struct ServeSimArgs {
    /// The plan (JSON, written by the parent `launch-gptoss`; removed once read).
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
    /// Serve on this inherited listening socket instead of binding the plan's address.
    #[arg(long, value_name = "FD")]
    pub listen_fd: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Collocated,
    PdPack,
    PdSpread,
}

/// Replica counts and TP degrees: bounded so that GPU totals cannot overflow.
fn count() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=4096)
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
    #[arg(long = "num", visible_alias = "num-replicas", default_value_t = 1,
          value_name = "N", value_parser = count())]
    pub num_replicas: u32,
    /// TP degree of collocated replicas.
    #[arg(long = "tp", visible_alias = "tensor-parallel-size", default_value_t = 2,
          value_name = "N", value_parser = count())]
    pub tp: u32,
    /// Prefill replicas (PD modes).
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = count())]
    pub p_num: u32,
    /// TP degree of prefill replicas.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = count())]
    pub p_tp: u32,
    /// Decode replicas (PD modes).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = count())]
    pub d_num: u32,
    /// TP degree of decode replicas.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = count())]
    pub d_tp: u32,
    /// Use UCX for NIXL KV transfer (default).
    #[arg(long, conflicts_with = "use_libfabric")]
    pub use_ucx: bool,
    /// Use libfabric (EFA) for NIXL KV transfer.
    #[arg(long)]
    pub use_libfabric: bool,
    /// Debug logging of vLLM, NIXL and UCX/libfabric in the deployment (as the seed's
    /// --verbose). It slows the engines down: not for measurements.
    #[arg(long)]
    pub engine_debug: bool,
    /// The seed's name of --engine-debug, kept for its scripts (warns that it changes
    /// performance). For more output from launch-gptoss itself use -v.
    #[arg(long)]
    pub verbose: bool,
    /// Where to deploy [env: PD_LAB_BACKEND].
    #[arg(long, value_enum, env = "PD_LAB_BACKEND", default_value = "ray")]
    pub backend: Backend,
    /// GPUs per node: of the simulated nodes, and of the nodes a dry run assumes without a
    /// cluster or --nodes. A real cluster reports its own.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = count())]
    pub gpus_per_node: u32,
    /// Deployment record to write [default: $PD_LAB_DEPLOYMENT or .pd-lab/deployment.toml].
    #[arg(long, value_name = "FILE")]
    pub deployment_file: Option<PathBuf>,
    /// Readiness timeout in seconds.
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    pub timeout: u64,
    /// `max_model_len` of every engine.
    #[arg(long, default_value_t = 16000, value_name = "TOKENS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_model_len: u32,
    /// Check and print what would be deployed (Ray: the Serve config and placement; sim: the
    /// simulator plan); start nothing, write nothing. Without a cluster and without --nodes,
    /// assumes the nodes it needs with --gpus-per-node GPUs each (and says so first).
    #[arg(long)]
    pub dry_run: bool,

    // ---- Ray backend ----
    /// Ray dashboard address. The Serve REST API is declarative for the whole cluster:
    /// applications other than ours are kept as they are.
    #[arg(
        long,
        env = "RAY_ADDRESS",
        default_value = crate::ray::options::DEFAULT_DASHBOARD,
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
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = count(),
          help_heading = "Ray backend")]
    pub ingress_replicas: u32,
    /// Deploy with vLLM's DecodeBenchConnector (real decode-only benchmarking; collocated only).
    #[arg(long, help_heading = "Ray backend")]
    pub decode_bench: bool,
    /// TOML/JSON file deep-merged into every LLM config. Reserved tables [prefill], [decode],
    /// [ingress_deployment_config] and [proxy_deployment_config] apply to one part only;
    /// tables merge, other values replace, JSON null deletes a key.
    #[arg(long, value_name = "FILE", help_heading = "Ray backend")]
    pub overrides: Option<PathBuf>,
    /// Nodes for --dry-run without a cluster: IP:GPUS, repeatable or comma-separated
    /// (only with --dry-run). The layout is checked against these nodes.
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
    /// Address the simulated endpoint listens on (loopback unless --allow-remote).
    #[arg(long, default_value = "127.0.0.1", help_heading = "Simulated backend")]
    pub host: String,
    /// Let --host be an address other machines can reach (the endpoint has no
    /// authentication).
    #[arg(long, help_heading = "Simulated backend")]
    pub allow_remote: bool,
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
    /// Inject a fault on purpose, to test what must catch it. corrupt-kv: a PD deployment
    /// answers as if its KV blocks arrived zeroed (wrong text after the first token, normal
    /// timing).
    #[arg(
        long,
        value_enum,
        value_name = "FAULT",
        help_heading = "Simulated backend"
    )]
    pub sim_fault: Option<SimFaultArg>,
}

/// Faults of `--sim-fault`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimFaultArg {
    /// PD outputs wrong after the first token (zeroed KV), timing unchanged.
    CorruptKv,
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
    pub fn spec(&self) -> Result<DeploymentSpec, UsageError> {
        let mode = self.mode.ok_or_else(|| {
            UsageError("--mode is required (collocated, pd-pack or pd-spread)".into())
        })?;
        let p = Replicas {
            num: self.p_num,
            tp: self.p_tp,
        };
        let d = Replicas {
            num: self.d_num,
            tp: self.d_tp,
        };
        let mut spec = match mode {
            ModeArg::Collocated => DeploymentSpec::collocated(self.num_replicas, self.tp),
            ModeArg::PdPack => DeploymentSpec::pd(pd_common::PdPlacement::Pack, p, d),
            ModeArg::PdSpread => DeploymentSpec::pd(pd_common::PdPlacement::Spread, p, d),
        };
        spec.nixl_backend = self.nixl_backend();
        spec.model_id = self.model_id.clone();
        spec.model_source = self.model_source.clone();
        spec.gpu = match self.backend {
            Backend::Sim => self.gpu.into(),
            Backend::Ray => GpuKind::Other,
        };
        Ok(spec)
    }

    /// The launch request: the spec checked (against --gpus-per-node for the simulator;
    /// for shape only on Ray, whose node fit is checked against the cluster or --nodes).
    pub fn request(&self, command: Vec<String>) -> Result<LaunchRequest, UsageError> {
        let spec = self.spec()?;
        let node_size = match self.backend {
            Backend::Sim => self.gpus_per_node,
            Backend::Ray => u32::MAX,
        };
        spec.validate(node_size)
            .map_err(|e| UsageError(format!("invalid deployment: {e}")))?;
        if self.use_libfabric && self.backend == Backend::Ray {
            tracing::warn!("{}", crate::ray::env::LIBFABRIC_WARNING);
        }
        if self.verbose && !self.engine_debug {
            tracing::warn!(
                "--verbose turns on vLLM/NIXL debug logging in the deployment (as the seed's \
                 --verbose did), which slows the engines down: do not measure with it. Say \
                 --engine-debug to mean it; -v is more output from launch-gptoss itself"
            );
        }
        Ok(LaunchRequest {
            spec,
            record_path: pd_common::deployment::record_path(self.deployment_file.as_deref()),
            timeout: Duration::from_secs(self.timeout),
            max_model_len: self.max_model_len,
            gpus_per_node: self.gpus_per_node,
            engine_debug: self.engine_debug || self.verbose,
            dry_run: self.dry_run,
            command,
        })
    }

    /// The Ray backend's options.
    pub fn ray_options(&self) -> Result<RayOptions, UsageError> {
        let address = self.ray_address.trim();
        if address.to_ascii_lowercase().starts_with("ray://") {
            return Err(UsageError(format!(
                "invalid Ray dashboard address '{address}': this is a Ray client address; give \
                 the dashboard's HTTP address instead (e.g. http://<head>:8265)"
            )));
        }
        let dashboard = BaseUrl::parse(address, 8265)
            .map_err(|e| UsageError(format!("invalid Ray dashboard address: {e}")))?;
        let serve_url = self
            .serve_url
            .as_deref()
            .map(|u| BaseUrl::parse(u, crate::ray::options::DEFAULT_SERVE_PORT))
            .transpose()
            .map_err(|e| UsageError(format!("invalid --serve-url: {e}")))?;
        let nodes = if self.nodes.iter().all(|n| n.trim().is_empty()) {
            None
        } else if !self.dry_run {
            return Err(UsageError(
                "--nodes describes a cluster for --dry-run only; a real deploy uses the cluster's \
                 own node list (GET /api/v0/nodes)"
                    .into(),
            ));
        } else {
            Some(parse_node_args(&self.nodes).map_err(|e| UsageError(e.to_string()))?)
        };
        if self.app_name.trim().is_empty() {
            return Err(UsageError("--app-name must not be empty".into()));
        }
        Ok(RayOptions {
            dashboard,
            serve_url,
            app_name: self.app_name.clone(),
            stream_batching_interval_ms: self.stream_batching_interval_ms,
            ingress_replicas: self.ingress_replicas,
            decode_bench: self.decode_bench,
            overrides: self.overrides.clone(),
            nodes,
            keep_on_failure: self.keep_on_failure,
            caller_env: CallerEnv::from_process(),
            ..RayOptions::default()
        })
    }

    /// The simulated backend's options.
    pub fn sim_options(&self) -> Result<SimOptions, UsageError> {
        if !self.nodes.is_empty() {
            return Err(UsageError(
                "--nodes describes Ray nodes for a dry run; the simulated cluster's nodes are \
                 --gpus-per-node and the layout"
                    .into(),
            ));
        }
        Ok(SimOptions {
            gpu: self.gpu.into(),
            network: self.network.map(Into::into),
            host: self.host.clone(),
            port: self.port,
            allow_remote: self.allow_remote,
            seed: self.seed,
            sim_config: self.sim_config.clone(),
            foreground: self.foreground,
            ucx_tls: std::env::var("UCX_TLS").ok(),
            decode_bench: self.decode_bench,
            fault: self.sim_fault.map(|f| match f {
                SimFaultArg::CorruptKv => crate::sim::fault::SimFault::CorruptKv,
            }),
            ..SimOptions::default()
        })
    }
}
