//! Command line: every flag of the seed's `run_bm.sh` (same names and defaults) plus the
//! `vllm bench serve` flags users expect. A repeated flag takes its last value (as
//! `vllm bench sweep` relies on).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use pd_common::workload::{parse_concurrency_list, parse_rate_list};
use pd_common::{BenchMode, SweepKind};

use crate::prompt::{PromptFormat, DEFAULT_VOCAB_SIZE};
use pd_common::bench::{Goodput, MetricName};

/// Default base URL when neither the flag nor a deployment record gives one.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8000";
/// Default served model name.
pub const DEFAULT_SERVED_MODEL: &str = "gptoss";

const AFTER_HELP: &str = "\
Examples:
  run-bm --smoke                                   # one streamed completion, checks the deployment
  run-bm -e baseline_4xtp2 -t concurrency --itl 5000 --otl 250
  run-bm -e rate_test -t request-rate -r 1,2,4,8 --itl 5000 --otl 250
  run-bm -e pd_1p2-2d2 -c 16 --goodput ttft:2000 tpot:50 --save-detailed
  run-bm -t request-rate -r 4 --burstiness 0.5 --max-concurrency 64 --num-prompts 1000

Results: bm_results/<model>_itl<ITL>_otl<OTL>_<mode>_<exp-name>/ with one conc<C>.json or
rr<R>.json per point (vllm-bench-serve format), <point>.requests.csv and manifest.json.
When a deployment record exists (.pd-lab/deployment.toml or $PD_LAB_DEPLOYMENT, written
by launch-gptoss), the base URL, model name, label and GPU count come from it unless
given on the command line. Logs: RUST_LOG=run_bm=debug. Ctrl-C stops sending, waits
--grace seconds for in-flight requests, writes the partial point and exits with 130.";

/// Sweep type (`-t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SweepType {
    /// Closed loop: at most C requests in flight, 5 × C prompts per point.
    Concurrency,
    /// Open loop: Poisson/gamma arrivals at R req/s, 500 prompts per point.
    RequestRate,
}

impl From<SweepType> for SweepKind {
    fn from(t: SweepType) -> Self {
        match t {
            SweepType::Concurrency => SweepKind::Concurrency,
            SweepType::RequestRate => SweepKind::RequestRate,
        }
    }
}

/// Benchmark mode (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// ITL:OTL, a unique prompt per request.
    Mixed,
    /// ITL:1 (measures prefill).
    PrefillOnly,
    /// One shared ITL-token prefix, OTL output tokens (measures decode).
    DecodeOnly,
}

impl From<ModeArg> for BenchMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Mixed => BenchMode::Mixed,
            ModeArg::PrefillOnly => BenchMode::PrefillOnly,
            ModeArg::DecodeOnly => BenchMode::DecodeOnly,
        }
    }
}

/// `--backend` (written into the result as `backend` / `endpoint_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    Vllm,
    Openai,
}

impl BackendArg {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendArg::Vllm => "vllm",
            BackendArg::Openai => "openai",
        }
    }
}

/// A comma-separated list given as one flag value.
#[derive(Debug, Clone, PartialEq)]
pub struct List<T>(pub Vec<T>);

fn concurrency_list(s: &str) -> Result<List<u32>, String> {
    parse_concurrency_list(s)
        .map(List)
        .map_err(|e| e.to_string())
}

fn rate_list(s: &str) -> Result<List<f64>, String> {
    parse_rate_list(s).map(List).map_err(|e| e.to_string())
}

fn positive_u32(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number ≥ 1")),
    }
}

fn positive_u64(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number ≥ 1")),
    }
}

fn positive_f64(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 => Ok(v),
        Ok(_) => Err("must be greater than 0".into()),
        Err(_) => Err(format!("'{s}' is not a number")),
    }
}

fn seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("'{s}' is not a positive number of seconds")),
    }
}

fn non_negative_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds ≥ 0")),
    }
}

fn goodput_token(s: &str) -> Result<String, String> {
    Goodput::default().add_token(s)?;
    Ok(s.to_string())
}

fn percentile_list(s: &str) -> Result<List<f64>, String> {
    s.split(',')
        .map(|p| match p.trim().parse::<f64>() {
            Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
            _ => Err(format!("'{p}' is not a percentile between 0 and 100")),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(List)
}

fn metric_list(s: &str) -> Result<List<MetricName>, String> {
    s.split(',')
        .map(|m| {
            MetricName::parse(m.trim()).ok_or_else(|| {
                format!(
                    "'{m}' is not a metric (ttft, tpot, itl, e2el, client_queue_time, e2el_including_client_queue)"
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(List)
}

fn exp_name(s: &str) -> Result<String, String> {
    pd_common::naming::validate_exp_name(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// `run-bm`: streaming load generator for OpenAI-compatible LLM servers.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "run-bm",
    version,
    about = "Benchmark an OpenAI-compatible LLM deployment: concurrency or request-rate sweeps, vllm-bench-serve-compatible results",
    after_help = AFTER_HELP,
    args_override_self = true
)]
pub struct Cli {
    /// Experiment name (the last part of the result directory name).
    #[arg(short = 'e', long, default_value = "default_exp", value_parser = exp_name)]
    pub exp_name: String,

    /// Sweep type.
    #[arg(short = 't', long = "type", value_enum, default_value = "concurrency")]
    pub sweep_type: SweepType,

    /// Concurrency values, e.g. "4,8,16", or "all" (4,8,16,32,48,64).
    #[arg(short = 'c', long, default_value = "all", value_parser = concurrency_list)]
    pub concurrency: List<u32>,

    /// Request rates (req/s), e.g. "1,2,4", "inf", or "all" (1..10).
    #[arg(short = 'r', long, default_value = "all", value_parser = rate_list)]
    pub request_rate: List<f64>,

    /// Input token length.
    #[arg(long, default_value = "8000", value_parser = positive_u32)]
    pub itl: u32,

    /// Output token length.
    #[arg(long, default_value = "1000", value_parser = positive_u32)]
    pub otl: u32,

    /// Server base URL [default: the deployment record's, else http://127.0.0.1:8000].
    #[arg(short = 'u', long)]
    pub base_url: Option<String>,

    /// Model name sent in requests [default: the deployment record's, else gptoss].
    #[arg(short = 'm', long)]
    pub served_model_name: Option<String>,

    /// Benchmark mode.
    #[arg(long, value_enum, default_value = "mixed")]
    pub mode: ModeArg,

    /// Smoke test only: one streamed completion ("Count: 1, 2, 3," → 100 tokens).
    #[arg(short = 's', long)]
    pub smoke: bool,

    /// Prompts per point [default: 5 × C for concurrency, 500 for request rate].
    #[arg(long, value_parser = positive_u64)]
    pub num_prompts: Option<u64>,

    /// Cap on requests in flight. With -t request-rate: a client-side limit; with
    /// -t concurrency: runs this single concurrency instead of -c.
    #[arg(long, value_parser = positive_u64)]
    pub max_concurrency: Option<u64>,

    /// Burstiness of arrivals (gamma shape; 1 = Poisson, "inf" = constant spacing).
    #[arg(long, default_value = "1.0", value_parser = positive_f64)]
    pub burstiness: f64,

    /// Goodput SLOs in ms, e.g. --goodput ttft:2000 tpot:50 e2el:30000.
    #[arg(long, num_args = 1.., value_parser = goodput_token, value_name = "KEY:MS")]
    pub goodput: Vec<String>,

    /// Percentiles reported for each metric, comma separated.
    #[arg(long, default_value = "99", value_parser = percentile_list)]
    pub metric_percentiles: List<f64>,

    /// Metrics with statistics: ttft,tpot,itl,e2el[,client_queue_time,e2el_including_client_queue].
    #[arg(long, default_value = "ttft,tpot,itl,e2el", value_parser = metric_list)]
    pub percentile_metrics: List<MetricName>,

    /// Seed of prompts and arrival times.
    #[arg(long, default_value = "0")]
    pub seed: u64,

    /// Result directory [default: bm_results/<model>_itl<ITL>_otl<OTL>_<mode>_<exp-name>].
    #[arg(long)]
    pub result_dir: Option<PathBuf>,

    /// Result file name (single-point runs only) [default: conc<C>.json / rr<R>.json].
    #[arg(long)]
    pub result_filename: Option<String>,

    /// Also save per-request arrays (input_lens, ttfts, itls, errors, …) in the JSON.
    #[arg(long)]
    pub save_detailed: bool,

    /// Accepted for vllm-bench compatibility (results are always saved).
    #[arg(long, hide = true)]
    pub save_result: bool,

    /// Accepted for vllm-bench compatibility (ignore_eos is always sent).
    #[arg(long, hide = true)]
    pub ignore_eos: bool,

    /// Bearer token for the server.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Per-request timeout, seconds.
    #[arg(long, default_value = "21600", value_parser = seconds)]
    pub timeout: f64,

    /// Unmeasured requests sent before each point.
    #[arg(long, default_value = "0")]
    pub warmup: u64,

    /// Skip points whose result file already exists.
    #[arg(long)]
    pub resume: bool,

    /// Deployment record to read [default: $PD_LAB_DEPLOYMENT, else .pd-lab/deployment.toml].
    #[arg(long)]
    pub deployment_file: Option<PathBuf>,

    /// Ignore any deployment record.
    #[arg(long)]
    pub no_deployment: bool,

    /// Prompt format: token ids (exact lengths) or text (for servers that only take text).
    #[arg(long, value_enum, default_value = "token-ids")]
    pub prompt_format: PromptFormat,

    /// Token ids are drawn from [0, N) (GPT-OSS: 199998; set it for smaller vocabularies).
    #[arg(long, default_value_t = DEFAULT_VOCAB_SIZE, value_parser = positive_u32)]
    pub vocab_size: u32,

    /// Model id written into the result (`model_id`, `tokenizer_id`) [default: the
    /// deployment's model source, else the server's /v1/models root, else the served name].
    #[arg(long)]
    pub model: Option<String>,

    /// `label` written into the result.
    #[arg(long)]
    pub label: Option<String>,

    /// Backend name written into the result.
    #[arg(long, value_enum, default_value = "vllm")]
    pub backend: BackendArg,

    /// Completions endpoint path.
    #[arg(long, default_value = "/v1/completions")]
    pub endpoint: String,

    /// After Ctrl-C, seconds in-flight requests may still finish.
    #[arg(long, default_value = "5", value_parser = non_negative_seconds)]
    pub grace: f64,

    /// Do not ask for per-chunk usage (continuous_usage_stats).
    #[arg(long)]
    pub no_continuous_usage: bool,

    /// Plain progress lines even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_seed() {
        let c = Cli::try_parse_from(["run-bm"]).unwrap();
        assert_eq!(c.exp_name, "default_exp");
        assert_eq!(c.sweep_type, SweepType::Concurrency);
        assert_eq!(c.concurrency.0, vec![4, 8, 16, 32, 48, 64]);
        assert_eq!(c.request_rate.0.len(), 10);
        assert_eq!((c.itl, c.otl), (8000, 1000));
        assert_eq!(c.mode, ModeArg::Mixed);
        assert!(!c.smoke);
    }

    #[test]
    fn last_flag_wins_and_lists() {
        let c = Cli::try_parse_from([
            "run-bm",
            "-c",
            "4,8",
            "-c",
            "16",
            "--goodput",
            "ttft:1",
            "tpot:2",
        ])
        .unwrap();
        assert_eq!(c.concurrency.0, vec![16]);
        assert_eq!(c.goodput, vec!["ttft:1", "tpot:2"]);
        for bad in [
            vec!["run-bm", "-c", "0"],
            vec!["run-bm", "-c", "abc"],
            vec!["run-bm", "--itl", "0"],
            vec!["run-bm", "--mode", "decode"],
            vec!["run-bm", "--goodput", "foo:1"],
            vec!["run-bm", "-r", "0"],
        ] {
            let e = Cli::try_parse_from(&bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }
}
