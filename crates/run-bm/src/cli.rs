//! Command line: every flag of the seed's `run_bm.sh` (same names and defaults) plus the
//! flags of `vllm bench serve` (same names), so both command lines run unchanged. A
//! repeated flag takes its last value and boolean flags have a `--no-<flag>` form (as
//! `vllm bench sweep` relies on); unambiguous prefixes of long flags are accepted.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use pd_common::workload::{parse_concurrency_list, parse_rate_list};
use pd_common::{BenchMode, SweepKind};

use crate::dataset::DatasetName;
use crate::prompt::PromptFormat;
use crate::request::key_value;
use pd_common::bench::{Goodput, MetricName};

/// Default base URL when neither the flag nor a deployment record gives one.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8000";
/// Default served model name.
pub const DEFAULT_SERVED_MODEL: &str = "gptoss";

const AFTER_HELP: &str = "\
Examples:
  run-bm --smoke                                   # one streamed completion, checks the deployment
  run-bm --smoke --record-reference ref.json        # on a collocated deployment: greedy reference
  run-bm --smoke --reference ref.json               # on a PD deployment: same outputs? (KV check)
  run-bm -e pd_p1xtp4-d1xtp4 --check-correctness --reference ref.json --itl 5000 --otl 250
  run-bm -e baseline_4xtp2 -t concurrency --itl 5000 --otl 250
  run-bm -e rate_test -t request-rate -r 1,2,4,8 --itl 5000 --otl 250
  run-bm -e baseline_4xtp2 -c 16,32 --repeat 3 --json > sweep.json   # 3 runs per point, CIs
  run-bm -e pd_p1xtp2-d2xtp2 -c 16 --metrics-url http://10.0.0.5:8080  # Ray's metrics agent
  run-bm -e pd_p1xtp2-d2xtp2 -c 16 --goodput ttft:2000 tpot:50 --save-detailed
  run-bm -r 4 --burstiness 0.5 --max-concurrency 64 --num-prompts 1000   # -t inferred
  run-bm --tokenizer ~/models/llama-8b -c 8,16 --itl 2000 --otl 200       # text prompts, any model
  run-bm --backend openai-chat --dataset-name sharegpt --dataset-path sg.json --tokenizer org/model
  run-bm -u https://llm.example.com --header x-team=perf --temperature 0 --no-ignore-eos

Without -t, the sweep type follows the flags: -r with a finite rate is a request-rate
sweep, otherwise a concurrency sweep. Results: bm_results/<model>_itl<ITL>_otl<OTL>_<mode>_<exp-name>/
with one conc<C>.json, rr<R>.json or conc<C>_rr<R>.json (a rate capped at C requests in
flight) per point (vllm-bench-serve format), <point>.requests.csv, <point>.metrics.csv
(the server's metrics, when it serves them) and manifest.json; with --repeat K also
<point>-<k>.json for each run.
When a deployment record exists (.pd-lab/deployment.toml or $PD_LAB_DEPLOYMENT, written
by launch-gptoss), the base URL, model name, label and GPU count come from it unless
given on the command line. Logs: -v/-q or RUST_LOG=run_bm=debug. Ctrl-C, SIGTERM and
SIGHUP stop sending, wait --grace seconds for in-flight requests, write the partial point
(marked interrupted) and exit with 130, 143 or 129. Exit codes: 0 ok, 1 failed, 2 usage
error or refusal, 3 completed with failed requests (docs/RELIABILITY.md).";

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
    /// /v1/completions.
    Vllm,
    /// /v1/completions.
    Openai,
    /// /v1/chat/completions (one user message; streamed deltas).
    OpenaiChat,
}

impl BackendArg {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendArg::Vllm => "vllm",
            BackendArg::Openai => "openai",
            BackendArg::OpenaiChat => "openai-chat",
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

/// One request rate as given: its value and its text (`-r 1.0` names `rr1.0.json`, as the
/// seed's scripts name files after the value they were given).
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    pub value: f64,
    pub text: String,
}

fn rate_list(s: &str) -> Result<List<Rate>, String> {
    let values = parse_rate_list(s).map_err(|e| e.to_string())?;
    let texts: Vec<String> = if s.trim().eq_ignore_ascii_case("all") {
        values
            .iter()
            .map(|v| pd_common::naming::format_rate(*v))
            .collect()
    } else {
        s.split(',').map(|t| t.trim().to_string()).collect()
    };
    Ok(List(
        values
            .into_iter()
            .zip(texts)
            .map(|(value, text)| Rate { value, text })
            .collect(),
    ))
}

fn json_object(s: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err("must be a JSON object, e.g. '{\"temperature\": 0}'".into()),
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

fn ratio(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a ratio in [0, 1)")),
    }
}

fn finite(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("'{s}' is not a number")),
    }
}

fn positive_u32(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number ≥ 1")),
    }
}

/// Most `--client-threads` accepted: each thread is a full event loop with its own stack,
/// and a few hundred thousand of them exhaust memory before they start.
pub const MAX_CLIENT_THREADS: u32 = 256;

fn client_threads(s: &str) -> Result<u32, String> {
    match positive_u32(s)? {
        n if n > MAX_CLIENT_THREADS => Err(format!(
            "{n} threads cannot all be busy reading streams; at most {MAX_CLIENT_THREADS}"
        )),
        n => Ok(n),
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
        Ok(v) if v > crate::limits::MAX_SECONDS => Err(format!(
            "'{s}' seconds is more than the largest accepted ({} s, 30 days)",
            crate::limits::MAX_SECONDS
        )),
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("'{s}' is not a positive number of seconds")),
    }
}

fn non_negative_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > crate::limits::MAX_SECONDS => Err(format!(
            "'{s}' seconds is more than the largest accepted ({} s, 30 days)",
            crate::limits::MAX_SECONDS
        )),
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds ≥ 0")),
    }
}

/// Whole seconds ≥ 0, at most 30 days (`--ready-check-timeout-sec`, as vLLM's integer).
fn whole_seconds(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(v) if v as f64 > crate::limits::MAX_SECONDS => Err(format!(
            "'{s}' seconds is more than the largest accepted ({} s, 30 days)",
            crate::limits::MAX_SECONDS
        )),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("'{s}' is not a whole number of seconds ≥ 0")),
    }
}

/// Most runs of one point (`--repeat`).
pub const MAX_REPEAT: u32 = 100;

fn repeat_count(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(k) if (1..=MAX_REPEAT).contains(&k) => Ok(k),
        _ => Err(format!(
            "'{s}' is not a number of runs between 1 and {MAX_REPEAT}"
        )),
    }
}

fn metrics_interval(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.1..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "'{s}' is not a number of seconds between 0.1 and 3600"
        )),
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
    args_override_self = true,
    infer_long_args = true
)]
pub struct Cli {
    /// Experiment name (the last part of the result directory name).
    #[arg(short = 'e', long, default_value = "default_exp", value_parser = exp_name)]
    pub exp_name: String,

    /// Sweep type [default: request-rate when -r gives a finite rate, else concurrency].
    #[arg(short = 't', long = "type", value_enum)]
    pub sweep_type: Option<SweepType>,

    /// Concurrency values, e.g. "4,8,16", or "all" (4,8,16,32,48,64) [default: all].
    #[arg(short = 'c', long, value_parser = concurrency_list)]
    pub concurrency: Option<List<u32>>,

    /// Request rates (req/s), e.g. "1,2,4", "inf", or "all" (1..10) [default: all].
    #[arg(short = 'r', long, value_parser = rate_list)]
    pub request_rate: Option<List<Rate>>,

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

    /// Smoke test only: one streamed completion ("Count: 1, 2, 3," → 100 tokens), then the
    /// correctness check when a reference is known (--reference, or the simulator's).
    #[arg(short = 's', long)]
    pub smoke: bool,

    /// Correctness reference: greedy (temperature 0) completions of fixed prompts recorded
    /// on a collocated deployment of the same model (--record-reference). The smoke test
    /// (and --check-correctness) sends the same prompts and fails with "PD transfer
    /// corrupts outputs" when a completion differs.
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,

    /// With --smoke: record this deployment's greedy completions of the fixed prompts into
    /// FILE, as a reference for later checks (record it on a collocated deployment).
    #[arg(long, value_name = "FILE", requires = "smoke")]
    pub record_reference: Option<PathBuf>,

    /// Run the correctness check before the first point of a sweep (implied by
    /// --reference; without it, the simulator's built-in reference is used); a failed check
    /// stops the run before any point is written.
    #[arg(long, overrides_with = "no_check_correctness")]
    pub check_correctness: bool,

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
    #[arg(long, overrides_with = "no_save_detailed")]
    pub save_detailed: bool,

    /// Accepted for vllm-bench compatibility (results are always saved).
    #[arg(long, hide = true, overrides_with = "no_save_result")]
    pub save_result: bool,

    /// Send ignore_eos (the default; --no-ignore-eos turns it off).
    #[arg(long, hide = true, overrides_with = "no_ignore_eos")]
    pub ignore_eos: bool,

    /// Bearer token for the server.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Per-request timeout, seconds (a hang guard, not a measurement bound: a request
    /// that is still streaming is also failed by --stall-timeout when no byte comes).
    #[arg(long, default_value = "3600", value_parser = seconds)]
    pub timeout: f64,

    /// Unmeasured requests sent before each point.
    #[arg(long, default_value = "0", alias = "num-warmups")]
    pub warmup: u64,

    /// Open a closed-loop point's connections before its clock starts (the default).
    #[arg(long, hide = true, overrides_with = "no_prewarm")]
    pub prewarm: bool,

    /// Start closed-loop points cold: no connection is opened before the clock starts, so
    /// the first wave of C requests also pays C simultaneous connection setups (as
    /// `vllm bench serve` does). By default they are opened first (`pd_lab.connections`).
    #[arg(long, overrides_with = "prewarm")]
    pub no_prewarm: bool,

    /// Threads of the async runtime that send the requests and read the response heads
    /// (and TLS streams) [default: one per CPU core]; the bodies of plain-HTTP streams are
    /// read by one more thread of their own. With the server on the same machine, 1 leaves
    /// it more CPU. `pd_lab.self_check` records the count and warns when the client
    /// saturated.
    #[arg(long, value_parser = client_threads)]
    pub client_threads: Option<u32>,

    /// Skip points already done (their result file exists, is complete and has a
    /// successful request); interrupted or entirely failed points are run again.
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,

    /// Deployment record to read [default: $PD_LAB_DEPLOYMENT, else .pd-lab/deployment.toml].
    #[arg(long)]
    pub deployment_file: Option<PathBuf>,

    /// Ignore any deployment record.
    #[arg(long)]
    pub no_deployment: bool,

    /// Prompt format: token ids (exact lengths) or text [default: token-ids; text with
    /// --tokenizer, a file dataset or the chat endpoint].
    #[arg(long, value_enum)]
    pub prompt_format: Option<PromptFormat>,

    /// Token ids are drawn from [0, N) (GPT-OSS: 199998; set it for smaller vocabularies,
    /// or give --tokenizer) [default: 199998, lowered to what the server accepts].
    #[arg(long, value_parser = positive_u32)]
    pub vocab_size: Option<u32>,

    /// Model id written into the result (`model_id`, `tokenizer_id`) [default: the
    /// deployment's model source, else the server's /v1/models root, else the served name].
    #[arg(long)]
    pub model: Option<String>,

    /// `label` written into the result.
    #[arg(long)]
    pub label: Option<String>,

    /// Backend: the API used (openai-chat: /v1/chat/completions); written into the result.
    #[arg(long, value_enum, default_value = "vllm", alias = "endpoint-type")]
    pub backend: BackendArg,

    /// Endpoint path [default: /v1/completions, /v1/chat/completions with openai-chat].
    #[arg(long)]
    pub endpoint: Option<String>,

    /// After Ctrl-C, SIGTERM or SIGHUP, seconds in-flight requests may still finish.
    #[arg(long, default_value = "5", value_parser = non_negative_seconds)]
    pub grace: f64,

    /// Do not ask for per-chunk usage (continuous_usage_stats).
    #[arg(long)]
    pub no_continuous_usage: bool,

    /// Plain progress lines even on a terminal.
    #[arg(long, alias = "disable-tqdm", overrides_with = "no_disable_tqdm")]
    pub no_progress: bool,

    /// Server host when --base-url is not given (vllm bench serve's --host).
    #[arg(long, help_heading = "Connection")]
    pub host: Option<String>,

    /// Server port with --host [default: 8000].
    #[arg(long, help_heading = "Connection")]
    pub port: Option<u16>,

    /// HTTP header for every request, KEY=VALUE (several after one flag: --header a=1 b=2).
    #[arg(long, num_args = 1.., value_parser = key_value, value_name = "KEY=VALUE", help_heading = "Connection")]
    pub header: Vec<(String, String)>,

    /// Trust this CA certificate (PEM) for https:// servers, besides the platform's.
    #[arg(long, value_name = "PEM", help_heading = "Connection")]
    pub ca_cert: Vec<PathBuf>,

    /// Do not verify the https:// server's certificate (encrypted, not authenticated).
    #[arg(long, overrides_with = "no_insecure", help_heading = "Connection")]
    pub insecure: bool,

    /// Wait up to N seconds for the server to answer (0: check once).
    #[arg(
        long,
        default_value = "0",
        value_name = "N",
        value_parser = whole_seconds,
        help_heading = "Connection"
    )]
    pub ready_check_timeout_sec: u64,

    /// Prefix of the x-request-id header [default: run-bm-<random hex>-].
    #[arg(long, help_heading = "Connection")]
    pub request_id_prefix: Option<String>,

    /// Do not send ignore_eos: outputs may end early at an end-of-sequence token.
    #[arg(long, overrides_with = "ignore_eos", help_heading = "Request body")]
    pub no_ignore_eos: bool,

    /// Sampling temperature (not sent unless given).
    #[arg(long, value_parser = finite, help_heading = "Request body")]
    pub temperature: Option<f64>,

    /// Top-p sampling.
    #[arg(long, value_parser = finite, help_heading = "Request body")]
    pub top_p: Option<f64>,

    /// Top-k sampling.
    #[arg(long, allow_negative_numbers = true, help_heading = "Request body")]
    pub top_k: Option<i64>,

    /// Min-p sampling.
    #[arg(long, value_parser = finite, help_heading = "Request body")]
    pub min_p: Option<f64>,

    /// Frequency penalty.
    #[arg(long, value_parser = finite, allow_negative_numbers = true, help_heading = "Request body")]
    pub frequency_penalty: Option<f64>,

    /// Presence penalty.
    #[arg(long, value_parser = finite, allow_negative_numbers = true, help_heading = "Request body")]
    pub presence_penalty: Option<f64>,

    /// Repetition penalty (1.0 is always sent on /v1/completions, as vLLM does).
    #[arg(long, value_parser = finite, help_heading = "Request body")]
    pub repetition_penalty: Option<f64>,

    /// Log probabilities per token (completions `logprobs`; null when not given).
    #[arg(long, help_heading = "Request body")]
    pub logprobs: Option<u32>,

    /// JSON object merged into every request body last, e.g. '{"chat_template_kwargs":{"enable_thinking":false}}'.
    #[arg(long, value_parser = json_object, value_name = "JSON", help_heading = "Request body")]
    pub extra_body: Option<serde_json::Map<String, serde_json::Value>>,

    /// KEY=VALUE pairs saved as top-level keys of each result (several after one flag).
    #[arg(long, num_args = 1.., value_parser = key_value, value_name = "KEY=VALUE", help_heading = "Request body")]
    pub metadata: Vec<(String, String)>,

    /// Tokenizer: a tokenizer.json, its directory, or a Hugging Face model id already in
    /// the local cache (never downloaded). Prompts become text of exactly the asked token
    /// count, the vocabulary comes from it, output is counted with it when the server sends
    /// no usage, and the chat template is used for the chat endpoint.
    #[arg(long, value_name = "PATH|HF-ID", help_heading = "Dataset")]
    pub tokenizer: Option<String>,

    /// Dataset [default: run-bm's ITL/OTL/--mode workload].
    #[arg(long, value_enum, help_heading = "Dataset")]
    pub dataset_name: Option<DatasetName>,

    /// File of the sharegpt (JSON) or custom (JSONL) dataset.
    #[arg(long, help_heading = "Dataset")]
    pub dataset_path: Option<PathBuf>,

    /// Input length of any dataset (sets --random-input-len).
    #[arg(long, value_parser = positive_u32, help_heading = "Dataset")]
    pub input_len: Option<u32>,

    /// Output length of any dataset (sets --random-output-len, --prefix-repetition-output-len,
    /// --sharegpt-output-len, --custom-output-len).
    #[arg(long, value_parser = positive_u32, help_heading = "Dataset")]
    pub output_len: Option<u32>,

    /// random: mean input tokens [default: 1024].
    #[arg(long, value_parser = positive_u32, help_heading = "Dataset")]
    pub random_input_len: Option<u32>,

    /// random: mean output tokens [default: 128].
    #[arg(long, value_parser = positive_u32, help_heading = "Dataset")]
    pub random_output_len: Option<u32>,

    /// random: lengths drawn from [L·(1−r), L·(1+r)].
    #[arg(long, default_value = "0.0", value_parser = ratio, help_heading = "Dataset")]
    pub random_range_ratio: f64,

    /// random: tokens of a prefix shared by every request (added to the input length).
    #[arg(long, default_value = "0", help_heading = "Dataset")]
    pub random_prefix_len: u32,

    /// prefix_repetition: tokens of each shared prefix.
    #[arg(long, default_value = "256", help_heading = "Dataset")]
    pub prefix_repetition_prefix_len: u32,

    /// prefix_repetition: unique tokens after the prefix.
    #[arg(long, default_value = "256", help_heading = "Dataset")]
    pub prefix_repetition_suffix_len: u32,

    /// prefix_repetition: number of distinct prefixes.
    #[arg(long, default_value = "10", value_parser = positive_u32, help_heading = "Dataset")]
    pub prefix_repetition_num_prefixes: u32,

    /// prefix_repetition: output tokens.
    #[arg(long, default_value = "128", value_parser = positive_u32, help_heading = "Dataset")]
    pub prefix_repetition_output_len: u32,

    /// sharegpt: output tokens of every request [default: the recorded answer's length].
    #[arg(long, value_parser = positive_u32, help_heading = "Dataset")]
    pub sharegpt_output_len: Option<u32>,

    /// custom: output tokens of lines without "output_tokens" [default: 256].
    #[arg(long, value_parser = positive_u32, help_heading = "Dataset")]
    pub custom_output_len: Option<u32>,

    /// custom: send prompts as they are (by default the tokenizer's chat template wraps
    /// them on the completions endpoint, as vLLM does).
    #[arg(
        long,
        overrides_with = "no_custom_skip_chat_template",
        help_heading = "Dataset"
    )]
    pub custom_skip_chat_template: bool,

    /// sharegpt/custom: keep the file's order (by default rows are shuffled with --seed).
    #[arg(long, overrides_with = "no_disable_shuffle", help_heading = "Dataset")]
    pub disable_shuffle: bool,

    /// Load no tokenizer (vLLM's --skip-tokenizer-init; --tokenizer is then ignored).
    #[arg(long, hide = true, overrides_with = "no_skip_tokenizer_init")]
    pub skip_tokenizer_init: bool,

    /// Accepted for vllm-bench compatibility: only "auto" and "hf" (tokenizer.json) work.
    #[arg(long, hide = true)]
    pub tokenizer_mode: Option<String>,

    /// Accepted for vllm-bench compatibility (tokenizer.json needs no remote code).
    #[arg(long, hide = true, overrides_with = "no_trust_remote_code")]
    pub trust_remote_code: bool,

    // `--no-<flag>` forms of the boolean flags (`vllm bench sweep` writes false booleans so).
    #[arg(long, hide = true, overrides_with = "save_detailed")]
    pub no_save_detailed: bool,
    #[arg(long, hide = true, overrides_with = "save_result")]
    pub no_save_result: bool,
    #[arg(long, hide = true, overrides_with = "insecure")]
    pub no_insecure: bool,
    #[arg(long, hide = true, overrides_with = "disable_shuffle")]
    pub no_disable_shuffle: bool,
    #[arg(long, hide = true, overrides_with = "custom_skip_chat_template")]
    pub no_custom_skip_chat_template: bool,
    #[arg(long, hide = true, overrides_with = "skip_tokenizer_init")]
    pub no_skip_tokenizer_init: bool,
    #[arg(long, hide = true, overrides_with = "trust_remote_code")]
    pub no_trust_remote_code: bool,
    #[arg(long, hide = true, overrides_with = "no_progress")]
    pub no_disable_tqdm: bool,
    #[arg(long, hide = true, overrides_with = "check_correctness")]
    pub no_check_correctness: bool,

    /// Write into a result directory that holds results of another experiment (deployment,
    /// endpoint, model, workload or dataset); the old files are moved to
    /// <result-dir>/.replaced-<time>/ first.
    #[arg(long)]
    pub overwrite: bool,

    /// Fail a streaming request when no byte arrives for this many seconds (after the
    /// response started; 0 = never).
    #[arg(long, default_value = "300", value_parser = non_negative_seconds)]
    pub stall_timeout: f64,

    /// Run each point K times (a fresh warmup each): P-1.json … P-K.json, and P.json with
    /// the means and 95 % confidence intervals (Student t) of every headline metric.
    #[arg(long, default_value = "1", value_name = "K", value_parser = repeat_count)]
    pub repeat: u32,

    /// Print the sweep's summary as one JSON object on stdout (for pipelines) instead of
    /// the tables; the per-point summaries then go to stderr.
    #[arg(long)]
    pub json: bool,

    /// Do not capture the server's Prometheus metrics (by default they are scraped before,
    /// during and after each point when <base-url>/metrics serves vLLM's metrics).
    #[arg(long, help_heading = "Server metrics")]
    pub no_server_metrics: bool,

    /// Where to scrape the server's metrics instead of <base-url>/metrics: on Ray, each
    /// node's metrics agent, http://<node>:<metrics-export-port> (several: repeat the flag
    /// or separate with commas).
    #[arg(
        long,
        value_name = "URL",
        value_delimiter = ',',
        conflicts_with = "no_server_metrics",
        help_heading = "Server metrics"
    )]
    pub metrics_url: Vec<String>,

    /// Seconds between the scrapes taken while a point runs.
    #[arg(
        long,
        default_value = "2",
        value_name = "S",
        value_parser = metrics_interval,
        help_heading = "Server metrics"
    )]
    pub metrics_interval: f64,

    #[command(flatten)]
    pub verbosity: clap_verbosity_flag::Verbosity<clap_verbosity_flag::WarnLevel>,
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
        assert_eq!(c.sweep_type, None);
        assert_eq!(c.concurrency, None);
        assert_eq!(c.request_rate, None);
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
        assert_eq!(c.concurrency.unwrap().0, vec![16]);
        assert_eq!(c.goodput, vec!["ttft:1", "tpot:2"]);
        let c = Cli::try_parse_from(["run-bm", "--client-threads", "256"]).unwrap();
        assert_eq!(c.client_threads, Some(MAX_CLIENT_THREADS));
        for bad in [
            vec!["run-bm", "-c", "0"],
            vec!["run-bm", "-c", "abc"],
            vec!["run-bm", "--itl", "0"],
            vec!["run-bm", "--mode", "decode"],
            vec!["run-bm", "--goodput", "foo:1"],
            vec!["run-bm", "-r", "0"],
            vec!["run-bm", "--client-threads", "0"],
            vec!["run-bm", "--client-threads", "257"],
        ] {
            let e = Cli::try_parse_from(&bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn rates_keep_their_text() {
        let c = Cli::try_parse_from(["run-bm", "-r", "1.0, 2,inf"]).unwrap();
        let r = c.request_rate.unwrap().0;
        assert_eq!(
            r.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
            ["1.0", "2", "inf"]
        );
        assert_eq!(r[0].value, 1.0);
        assert!(r[2].value.is_infinite());
        let c = Cli::try_parse_from(["run-bm", "-r", "all"]).unwrap();
        let r = c.request_rate.unwrap().0;
        assert_eq!((r[0].text.as_str(), r[9].text.as_str()), ("1", "10"));
    }

    #[test]
    fn vllm_flags_negations_and_prefixes() {
        let c = Cli::try_parse_from([
            "run-bm",
            "--ignore-eos",
            "--no-ignore-eos",
            "--save-detailed",
            "--no-save-detailed",
            "--header",
            "a=1",
            "b = 2",
            "--extra-body",
            r#"{"x": [1]}"#,
            "--top-k",
            "-1",
            "--metadata",
            "k=v",
        ])
        .unwrap();
        assert!(c.no_ignore_eos && !c.ignore_eos);
        assert!(c.no_save_detailed && !c.save_detailed);
        assert_eq!(
            c.header,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(c.extra_body.unwrap()["x"], serde_json::json!([1]));
        assert_eq!(c.top_k, Some(-1));
        let c = Cli::try_parse_from(["run-bm", "--no-ignore-eos", "--ignore-eos"]).unwrap();
        assert!(c.ignore_eos && !c.no_ignore_eos);
        // Unambiguous prefixes of long flags.
        let c = Cli::try_parse_from(["run-bm", "--exp", "x", "--random-input", "5"]).unwrap();
        assert_eq!((c.exp_name.as_str(), c.random_input_len), ("x", Some(5)));
        assert!(Cli::try_parse_from(["run-bm", "--no", "x"]).is_err());
        for bad in [
            vec!["run-bm", "--extra-body", "[1]"],
            vec!["run-bm", "--extra-body", "{"],
            vec!["run-bm", "--header", "novalue"],
            vec!["run-bm", "--random-range-ratio", "1"],
        ] {
            assert_eq!(
                Cli::try_parse_from(&bad).unwrap_err().exit_code(),
                2,
                "{bad:?}"
            );
        }
    }
}
