//! Resolve the command line and the deployment record into one run configuration.
//! Command-line values win over the record; the record wins over built-in defaults.
//!
//! The sweep: `-t` when given (the seed's behaviour); otherwise inferred from the flags as
//! `vllm bench serve` reads them: a finite `-r/--request-rate` is an open-loop point (capped
//! by `--max-concurrency`), an unlimited rate (`inf`, or the seed's 1e9) with
//! `--max-concurrency C` is a concurrency point. Result files are written the way the
//! seed's pipeline writes them, so its `viz.py` reads them: `request_rate` 1e9 for
//! concurrency points, `max_concurrency` 1e9 for uncapped rate points, `-r 1.0` named
//! `rr1.0.json`, a capped rate point `conc<C>_rr<R>.json`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pd_common::deployment::{default_record_path, DeploymentRecord};
use pd_common::naming::{rate_point_file_name, result_dir_name, DEFAULT_RESULTS_ROOT};
use pd_common::workload::{prompts_for_concurrency, PROMPTS_PER_RATE_POINT};
use pd_common::{BenchMode, RequestRate, SweepKind, Workload};
use serde_json::{Map, Value};

use crate::cli::{BackendArg, Cli, Rate, DEFAULT_BASE_URL, DEFAULT_SERVED_MODEL};
use crate::client::{ClientOptions, HttpClient};
use crate::dataset::{
    file_table, synthetic_table, DatasetError, DatasetName, DatasetRecord, Endpoint, FileOptions,
    Shape, Table,
};
use crate::prompt::{workload_shape, PromptFormat, PromptGen, DEFAULT_VOCAB_SIZE};
use crate::request::{BodyOptions, Protocol};
use crate::tls::TlsOptions;
use crate::tokenizer::Tokenizer;
use pd_common::bench::{Goodput, MetricName};

/// The seed's "no limit" value: `request_rate` of concurrency points and
/// `max_concurrency` of rate points in its result files (`run_bm.sh` passes 1000000000).
pub const UNLIMITED: u64 = 1_000_000_000;

/// A rate that does not limit anything (`inf`, or ≥ the seed's 1e9).
pub fn unlimited_rate(r: f64) -> bool {
    !r.is_finite() || r >= UNLIMITED as f64
}

/// Configuration errors (usage errors: exit code 2, nothing was sent).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("cannot read the deployment record: {0}")]
    Record(pd_common::Error),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
}

impl From<pd_common::Error> for ConfigError {
    fn from(e: pd_common::Error) -> Self {
        ConfigError::Record(e)
    }
}

/// Where the base URL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlSource {
    /// `-u/--base-url`.
    Flag,
    /// The deployment record.
    Record,
    /// Neither: the built-in default.
    Default,
}

/// One sweep point to run.
#[derive(Debug, Clone, PartialEq)]
pub struct PointSpec {
    pub kind: SweepKind,
    /// Concurrency or request rate.
    pub value: f64,
    pub num_prompts: u64,
    /// Requests per second (`inf` for concurrency points).
    pub rate: f64,
    pub max_concurrency: Option<u64>,
    /// Result file name.
    pub file_name: String,
    /// `request_rate` written into the result.
    pub written_rate: RequestRate,
    /// `max_concurrency` written into the result.
    pub written_max_concurrency: Option<u64>,
}

impl PointSpec {
    /// `num_prompts` of the result (as asked).
    pub fn result_num_prompts(&self) -> u64 {
        self.num_prompts
    }

    /// `request_rate` of the result: the rate given, or the seed's 1e9 for a concurrency
    /// point (a number the seed's viz.py reads).
    pub fn result_request_rate(&self) -> RequestRate {
        self.written_rate
    }

    /// `max_concurrency` of the result: the cap, or the seed's 1e9 when none (viz.py keys
    /// points by it).
    pub fn result_max_concurrency(&self) -> Option<u64> {
        self.written_max_concurrency
    }
}

/// What will be sent: the dataset, its prepared samples, and what the result records.
#[derive(Debug, Clone)]
pub struct DatasetPlan {
    pub name: Option<DatasetName>,
    /// Synthetic datasets.
    pub shape: Option<Shape>,
    /// Samples prepared before the run (tokenizer text, file datasets).
    pub table: Option<Arc<Table>>,
    pub record: DatasetRecord,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub exp_name: String,
    pub sweep: SweepKind,
    pub points: Vec<PointSpec>,
    pub workload: Workload,
    pub base_url: String,
    pub served_model: String,
    /// `--model`, or the record's model source.
    pub model_id: Option<String>,
    pub record: Option<DeploymentRecord>,
    pub record_path: Option<PathBuf>,
    pub result_dir: PathBuf,
    pub percentiles: Vec<f64>,
    pub metrics: Vec<MetricName>,
    pub goodput: Option<Goodput>,
    pub seed: u64,
    pub burstiness: f64,
    pub save_detailed: bool,
    pub api_key: Option<String>,
    pub timeout: Duration,
    pub warmup: u64,
    pub resume: bool,
    pub prompt_format: PromptFormat,
    pub vocab_size: u32,
    pub label: Option<String>,
    pub backend: String,
    pub endpoint: String,
    pub grace: Duration,
    pub continuous_usage: bool,
    /// Open a closed-loop point's connections before its clock starts.
    pub prewarm: bool,
    pub progress_bar: bool,
    /// The exact command line (secrets redacted).
    pub command: Vec<String>,
    /// `--vocab-size` was given (else it may be lowered to what the server accepts).
    pub vocab_size_given: bool,
    /// Completions or chat, ignore_eos, sampling and `--extra-body`.
    pub body: BodyOptions,
    pub headers: Vec<(String, String)>,
    pub tls: TlsOptions,
    pub metadata: Vec<(String, String)>,
    pub request_id_prefix: Option<String>,
    /// `--ready-check-timeout-sec` (zero: check once).
    pub ready_timeout: Duration,
    pub tokenizer: Option<Arc<Tokenizer>>,
    pub dataset: DatasetPlan,
    /// No byte of a streaming body for this long fails the request.
    pub stall_timeout: Option<Duration>,
    /// `--overwrite`: replace results of another deployment in the result directory.
    pub overwrite: bool,
    /// Where `base_url` came from.
    pub url_source: UrlSource,
    /// The KV-correctness check (`--reference`, `--record-reference`, `--check-correctness`).
    pub correctness: CorrectnessOptions,
    /// Runs per point (`--repeat`).
    pub repeat: u32,
    /// Prompt index offset between the runs of a repeated point.
    pub repeat_stride: u64,
    /// Server-metrics capture (`None`: `--no-server-metrics`).
    pub server_metrics: Option<MetricsOptions>,
    /// `--json`: the sweep summary as JSON on stdout.
    pub json: bool,
}

/// Server-metrics capture settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsOptions {
    /// `--metrics-url` endpoints (parsed; empty: `<base-url>/metrics`, captured only when
    /// it serves vLLM's metrics).
    pub urls: Vec<pd_common::url::BaseUrl>,
    /// Between scrapes while a point runs.
    pub interval: Duration,
}

fn server_metrics_options(cli: &Cli) -> Result<Option<MetricsOptions>, ConfigError> {
    if cli.no_server_metrics {
        return Ok(None);
    }
    let urls = cli
        .metrics_url
        .iter()
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
        .map(|u| {
            pd_common::url::BaseUrl::parse(u, 80)
                .map_err(|e| invalid(format!("--metrics-url {u}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(MetricsOptions {
        urls,
        interval: Duration::from_secs_f64(cli.metrics_interval),
    }))
}

/// Flags of the KV-correctness check ([`crate::correctness`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorrectnessOptions {
    pub reference: Option<PathBuf>,
    pub record_reference: Option<PathBuf>,
    /// Check before the first point of a sweep.
    pub check_before_sweep: bool,
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

impl RunConfig {
    /// Resolve `cli` (with the process `argv` for the manifest).
    pub fn resolve(cli: &Cli, argv: Vec<String>) -> Result<Self, ConfigError> {
        let record_path = if cli.no_deployment {
            None
        } else {
            Some(
                cli.deployment_file
                    .clone()
                    .unwrap_or_else(default_record_path),
            )
        };
        let record = match (&record_path, &cli.deployment_file) {
            (None, _) => None,
            // An explicitly named record must exist.
            (Some(p), Some(_)) => Some(DeploymentRecord::read(p)?),
            (Some(p), None) => DeploymentRecord::read_optional(p)?,
        };
        // The endpoint named on the command line: -u/--base-url, else --host/--port
        // (vllm bench serve's), parsed by the one URL parser (scheme, port range, no
        // credentials).
        if cli.host.is_none() && cli.port.is_some() && cli.base_url.is_none() {
            return Err(invalid("--port needs --host (or give -u/--base-url)"));
        }
        let flag_url = match (&cli.base_url, &cli.host) {
            (Some(u), _) => Some(
                pd_common::url::BaseUrl::parse(u, 80)
                    .map_err(|e| invalid(format!("-u/--base-url: {e}")))?,
            ),
            (None, Some(h)) => {
                let h = h.trim();
                let h = if h.contains(':') && !h.starts_with('[') {
                    format!("[{h}]")
                } else {
                    h.to_string()
                };
                let u = format!("http://{h}:{}", cli.port.unwrap_or(8000));
                Some(
                    pd_common::url::BaseUrl::parse(&u, 80)
                        .map_err(|e| invalid(format!("--host/--port: {e}")))?,
                )
            }
            (None, None) => None,
        };
        // A record found at the default path describes some deployment; when the command
        // line names another endpoint, its labels would be wrong: it is ignored (an
        // explicit --deployment-file is trusted, e.g. through a port-forward).
        let mut record = record;
        if let (Some(u), Some(r), None) = (&flag_url, &record, &cli.deployment_file) {
            let same =
                pd_common::url::BaseUrl::parse(&r.base_url, 80).is_ok_and(|ru| ru.same_endpoint(u));
            if !same {
                tracing::warn!(
                    "{u} (-u/--host) is not the endpoint of the deployment record {} ({}, {}): the record is ignored and the results carry no deployment label (name the record with --deployment-file to use it anyway)",
                    record_path.as_deref().unwrap_or(Path::new("?")).display(),
                    pd_common::url::redact_userinfo(&r.base_url),
                    r.label
                );
                record = None;
            }
        }
        let (base_url, url_source) = match (&flag_url, &record) {
            (Some(u), _) => (u.plain(), UrlSource::Flag),
            (None, Some(r)) => (r.base_url.clone(), UrlSource::Record),
            (None, None) => (DEFAULT_BASE_URL.to_string(), UrlSource::Default),
        };
        let served_model = cli
            .served_model_name
            .clone()
            .or_else(|| record.as_ref().map(|r| r.served_model_name.clone()))
            .or_else(|| cli.model.clone())
            .unwrap_or_else(|| DEFAULT_SERVED_MODEL.to_string());
        let model_id = cli
            .model
            .clone()
            .or_else(|| record.as_ref().map(|r| r.spec.model_source.clone()));

        // API, endpoint and body.
        let protocol = match cli.backend {
            BackendArg::OpenaiChat => Protocol::Chat,
            BackendArg::Vllm | BackendArg::Openai => Protocol::Completions,
        };
        let endpoint = cli.endpoint.clone().unwrap_or_else(|| {
            match protocol {
                Protocol::Chat => "/v1/chat/completions",
                Protocol::Completions => "/v1/completions",
            }
            .to_string()
        });
        let chat_path = endpoint.trim_end_matches('/').ends_with("chat/completions");
        match (protocol, chat_path) {
            (Protocol::Chat, false) => {
                return Err(invalid(format!(
                    "--backend openai-chat needs a chat endpoint (…/chat/completions), not '{endpoint}'"
                )))
            }
            (Protocol::Completions, true) => {
                return Err(invalid(format!(
                    "--endpoint {endpoint} is the chat API: add --backend openai-chat"
                )))
            }
            _ => {}
        }
        let mut extra = Map::new();
        for (k, v) in [
            ("top_p", cli.top_p.map(Value::from)),
            ("top_k", cli.top_k.map(Value::from)),
            ("min_p", cli.min_p.map(Value::from)),
            ("temperature", cli.temperature.map(Value::from)),
            ("frequency_penalty", cli.frequency_penalty.map(Value::from)),
            ("presence_penalty", cli.presence_penalty.map(Value::from)),
            (
                "repetition_penalty",
                cli.repetition_penalty.map(Value::from),
            ),
        ] {
            if let Some(v) = v {
                extra.insert(k.to_string(), v);
            }
        }
        for (k, v) in cli.extra_body.iter().flatten() {
            extra.insert(k.clone(), v.clone());
        }
        let body = BodyOptions {
            protocol,
            ignore_eos: !cli.no_ignore_eos,
            logprobs: cli.logprobs,
            extra,
        };
        let tls = TlsOptions {
            ca_certs: cli.ca_cert.clone(),
            insecure: cli.insecure && !cli.no_insecure,
        };
        let api_key = cli.api_key.clone().filter(|k| !k.is_empty());
        // Values never recorded (the command line in the manifest): the key and the
        // values of secret-looking headers (`--header Authorization=…`).
        let known_secrets: Vec<&str> = api_key
            .as_deref()
            .into_iter()
            .chain(
                cli.header
                    .iter()
                    .filter(|(k, _)| pd_common::redact::is_secret_name(k))
                    .map(|(_, v)| v.as_str()),
            )
            .collect();
        let command = pd_common::redact::redact_argv(&argv, &known_secrets);
        let client_options = ClientOptions {
            api_key: api_key.clone(),
            headers: cli.header.clone(),
            tls: tls.clone(),
        };
        // URL, headers and CA files are checked now: a usage error, before anything runs.
        HttpClient::with_options(&base_url, &endpoint, &client_options)
            .map_err(|e| invalid(e.to_string()))?;

        // Tokenizer.
        if let Some(mode) = &cli.tokenizer_mode {
            if !matches!(mode.as_str(), "auto" | "hf") {
                return Err(invalid(format!(
                    "--tokenizer-mode {mode} is not supported (run-bm reads tokenizer.json: auto or hf)"
                )));
            }
        }
        let skip_tokenizer = cli.skip_tokenizer_init && !cli.no_skip_tokenizer_init;
        let tokenizer = match (&cli.tokenizer, skip_tokenizer) {
            (Some(t), false) => Some(Arc::new(Tokenizer::load(t)?)),
            _ => None,
        };
        if tokenizer.is_some() && cli.vocab_size.is_some() {
            tracing::warn!("--vocab-size is ignored: the vocabulary comes from --tokenizer");
        }

        // Points.
        let (sweep, points) = build_points(cli)?;
        if cli.warmup > crate::limits::MAX_PROMPTS {
            return Err(invalid(format!(
                "--warmup {} is more than the largest accepted ({})",
                cli.warmup,
                crate::limits::MAX_PROMPTS
            )));
        }
        if cli.result_filename.is_some() && points.len() > 1 {
            return Err(invalid(format!(
                "--result-filename names one file but the sweep has {} points; give a single -c/-r value",
                points.len()
            )));
        }
        let max_prompts = points.iter().map(|p| p.num_prompts).max().unwrap_or(0);

        // Dataset, prompt format, workload.
        let file_dataset = matches!(
            cli.dataset_name,
            Some(DatasetName::Sharegpt | DatasetName::Custom)
        );
        let text_needed = protocol == Protocol::Chat || file_dataset;
        let prompt_format = match cli.prompt_format {
            Some(PromptFormat::TokenIds) if text_needed => {
                return Err(invalid(if file_dataset {
                    "a file dataset sends text: drop --prompt-format token-ids"
                } else {
                    "the chat endpoint takes text: drop --prompt-format token-ids"
                }))
            }
            Some(f) => f,
            None if tokenizer.is_some() || text_needed => PromptFormat::Text,
            None => PromptFormat::TokenIds,
        };
        if protocol == Protocol::Chat && tokenizer.is_none() {
            tracing::warn!(
                "chat endpoint without --tokenizer: prompts are words of about one token each, so input lengths are approximate (the server's usage is recorded)"
            );
        }
        let endpoint_kind = match protocol {
            Protocol::Chat => Endpoint::Chat,
            Protocol::Completions => Endpoint::Completions,
        };
        let seed = cli.seed;
        let special = tokenizer
            .as_ref()
            .map_or(0, |t| u32::try_from(t.special_tokens_to_add()).unwrap_or(0));
        let out_override = cli.output_len;
        let (shape, mut workload) = match cli.dataset_name {
            None => {
                let w = Workload::new(cli.itl, cli.otl, cli.mode.into())
                    .map_err(|e| invalid(e.to_string()))?;
                (Some(workload_shape(&w)), w)
            }
            Some(DatasetName::PrefixRepetition) => {
                if cli.dataset_path.is_some() {
                    return Err(DatasetError::PathNotUsed("prefix_repetition").into());
                }
                let (p, sfx) = (
                    cli.prefix_repetition_prefix_len,
                    cli.prefix_repetition_suffix_len,
                );
                let o = out_override.unwrap_or(cli.prefix_repetition_output_len);
                if p + sfx == 0 {
                    return Err(invalid(
                        "--prefix-repetition-prefix-len + --prefix-repetition-suffix-len must be at least 1",
                    ));
                }
                let mode = if sfx == 0 {
                    BenchMode::DecodeOnly
                } else if o == 1 {
                    BenchMode::PrefillOnly
                } else {
                    BenchMode::Mixed
                };
                let shape = Shape::PrefixRepetition {
                    prefix_len: p,
                    suffix_len: sfx,
                    num_prefixes: cli.prefix_repetition_num_prefixes,
                    output_len: o,
                };
                let w = Workload::new(p + sfx, o, mode).map_err(|e| invalid(e.to_string()))?;
                (Some(shape), w)
            }
            Some(DatasetName::Random) => {
                if cli.dataset_path.is_some() {
                    return Err(DatasetError::PathNotUsed("random").into());
                }
                let i = cli.input_len.or(cli.random_input_len).unwrap_or(1024);
                let o = out_override.or(cli.random_output_len).unwrap_or(128);
                let shape =
                    Shape::random(i, o, cli.random_range_ratio, cli.random_prefix_len, special)?;
                let mode = if o == 1 {
                    BenchMode::PrefillOnly
                } else {
                    BenchMode::Mixed
                };
                let w = Workload::new(i + cli.random_prefix_len, o, mode)
                    .map_err(|e| invalid(e.to_string()))?;
                (Some(shape), w)
            }
            Some(name @ (DatasetName::Sharegpt | DatasetName::Custom)) => {
                if cli.dataset_path.is_none() {
                    return Err(DatasetError::NoPath(name.as_str()).into());
                }
                if tokenizer.is_none() {
                    return Err(DatasetError::NeedsTokenizer(name.as_str()).into());
                }
                (None, Workload::default())
            }
        };
        let warm = cli.warmup;
        // Each run of a repeated point gets its own prompts (run k: indices from
        // (k − 1) × max_prompts), so a run never hits the prefix cache its predecessor filled.
        let table_prompts = max_prompts.saturating_mul(u64::from(cli.repeat));
        let table: Option<Table> = match (cli.dataset_name, &tokenizer, &shape) {
            (Some(name @ (DatasetName::Sharegpt | DatasetName::Custom)), Some(tok), _) => {
                let path = cli.dataset_path.clone().unwrap_or_default();
                let opts = FileOptions {
                    seed,
                    shuffle: !cli.disable_shuffle || cli.no_disable_shuffle,
                    output_len: out_override.or(match name {
                        DatasetName::Sharegpt => cli.sharegpt_output_len,
                        _ => cli.custom_output_len,
                    }),
                    apply_chat_template: !cli.custom_skip_chat_template
                        || cli.no_custom_skip_chat_template,
                    endpoint: endpoint_kind,
                };
                Some(file_table(name, &path, tok, &opts, table_prompts, warm)?)
            }
            (_, Some(tok), Some(shape)) if prompt_format == PromptFormat::Text => {
                let started = std::time::Instant::now();
                let t = synthetic_table(shape, tok, seed, table_prompts, warm, endpoint_kind)?;
                tracing::info!(
                    samples = t.main.len() + t.warm.len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "prompts prepared with the tokenizer"
                );
                if t.mismatched > 0 {
                    tracing::warn!(
                        "{} prompt(s) could not be made decode-stable at the exact length; their exact token counts are recorded",
                        t.mismatched
                    );
                }
                Some(t)
            }
            _ => None,
        };
        if shape.is_none() {
            // File datasets: the workload (for the directory name) is the mean lengths.
            if let Some(t) = &table {
                let n = t.main.len().max(1) as u64;
                let i: u64 = t.main.iter().map(|s| s.prompt_len).sum::<u64>() / n;
                let o: u64 = t.main.iter().map(|s| u64::from(s.output_len)).sum::<u64>() / n;
                workload = Workload::new(
                    u32::try_from(i).unwrap_or(u32::MAX).max(1),
                    u32::try_from(o).unwrap_or(u32::MAX).max(1),
                    BenchMode::Mixed,
                )
                .map_err(|e| invalid(e.to_string()))?;
            }
        }
        let vocab_size = tokenizer
            .as_ref()
            .map(|t| t.vocab_size())
            .or(cli.vocab_size)
            .unwrap_or(DEFAULT_VOCAB_SIZE);
        let dataset_path = cli.dataset_path.clone().filter(|_| file_dataset);
        let dataset_record = DatasetRecord {
            name: cli
                .dataset_name
                .map_or("prefix_repetition", DatasetName::as_str)
                .to_string(),
            sha256: match &dataset_path {
                Some(p) => {
                    Some(
                        crate::dataset::sha256_file(p).map_err(|e| DatasetError::Read {
                            path: p.clone(),
                            reason: e.to_string(),
                        })?,
                    )
                }
                None => None,
            },
            path: dataset_path,
            seed,
            params: shape_params(shape.as_ref()),
            tokenizer: tokenizer.as_ref().map(|t| t.id.clone()),
            tokenizer_sha256: tokenizer.as_ref().and_then(|t| t.file_sha256()),
            samples: table.as_ref().map(|t| t.main.len() as u64),
            prompt_tokens: table
                .as_ref()
                .map(|t| t.main.iter().map(|s| s.prompt_len).sum()),
            output_tokens: table
                .as_ref()
                .map(|t| t.main.iter().map(|s| u64::from(s.output_len)).sum()),
            mismatched: table.as_ref().map_or(0, |t| t.mismatched),
        };
        let dataset = DatasetPlan {
            name: cli.dataset_name,
            shape,
            table: table.map(Arc::new),
            record: dataset_record,
        };

        let result_dir = cli.result_dir.clone().unwrap_or_else(|| {
            Path::new(DEFAULT_RESULTS_ROOT).join(result_dir_name(
                &served_model,
                &workload,
                &cli.exp_name,
            ))
        });
        let goodput = if cli.goodput.is_empty() {
            None
        } else {
            let mut g = Goodput::default();
            for t in &cli.goodput {
                g.add_token(t).map_err(ConfigError::Invalid)?;
            }
            Some(g)
        };
        if cli.check_correctness && !cli.no_check_correctness && cli.smoke {
            return Err(invalid(
                "--check-correctness is for sweeps; --smoke runs the check by itself when a \
                 reference is known",
            ));
        }
        if let Some(p) = &cli.reference {
            if !p.is_file() {
                return Err(invalid(format!(
                    "--reference {}: no such file (record one with --smoke --record-reference)",
                    p.display()
                )));
            }
            crate::correctness::Reference::read(p).map_err(|e| invalid(e.to_string()))?;
        }
        let no_progress = cli.no_progress && !cli.no_disable_tqdm;
        let progress_bar = !no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
        Ok(RunConfig {
            exp_name: cli.exp_name.clone(),
            sweep,
            points,
            workload,
            base_url,
            served_model,
            model_id,
            record,
            record_path,
            result_dir,
            percentiles: cli.metric_percentiles.0.clone(),
            metrics: cli.percentile_metrics.0.clone(),
            goodput,
            seed,
            burstiness: cli.burstiness,
            save_detailed: cli.save_detailed && !cli.no_save_detailed,
            api_key,
            timeout: Duration::from_secs_f64(cli.timeout),
            warmup: cli.warmup,
            resume: cli.resume,
            prompt_format,
            vocab_size,
            label: cli.label.clone(),
            backend: cli.backend.as_str().to_string(),
            endpoint,
            grace: Duration::from_secs_f64(cli.grace),
            continuous_usage: !cli.no_continuous_usage,
            prewarm: !cli.no_prewarm,
            progress_bar,
            command,
            vocab_size_given: cli.vocab_size.is_some() || tokenizer.is_some(),
            body,
            headers: cli.header.clone(),
            tls,
            metadata: cli.metadata.clone(),
            request_id_prefix: cli.request_id_prefix.clone(),
            ready_timeout: Duration::from_secs(cli.ready_check_timeout_sec),
            tokenizer,
            dataset,
            stall_timeout: (cli.stall_timeout > 0.0)
                .then(|| Duration::from_secs_f64(cli.stall_timeout)),
            overwrite: cli.overwrite,
            url_source,
            correctness: CorrectnessOptions {
                reference: cli.reference.clone(),
                record_reference: cli.record_reference.clone(),
                check_before_sweep: (cli.check_correctness && !cli.no_check_correctness)
                    || cli.reference.is_some(),
            },
            repeat: cli.repeat,
            repeat_stride: max_prompts.max(1),
            server_metrics: server_metrics_options(cli)?,
            json: cli.json,
        })
    }

    /// How the client connects (key, headers, TLS).
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            api_key: self.api_key.clone(),
            headers: self.headers.clone(),
            tls: self.tls.clone(),
        }
    }

    /// The prompts of the run.
    pub fn prompts(&self) -> PromptGen {
        let gen = match (&self.dataset.table, &self.dataset.shape) {
            (Some(t), _) => PromptGen::table(t.clone(), self.seed, self.tokenizer.clone()),
            (None, Some(shape)) => PromptGen::from_shape(
                *shape,
                self.prompt_format,
                self.seed,
                self.vocab_size,
                self.tokenizer.clone(),
            ),
            // A file dataset always has its table; keep a valid generator regardless.
            (None, None) => PromptGen::new(
                &self.workload,
                self.prompt_format,
                self.seed,
                self.vocab_size,
            ),
        };
        gen.with_body(self.body.clone())
            .with_tokenizer(self.tokenizer.clone())
    }

    /// Output texts are needed: kept for `--save-detailed`, or counted by the tokenizer
    /// when the server sends no usage.
    pub fn keep_text(&self) -> bool {
        self.save_detailed || self.tokenizer.is_some()
    }

    /// `tokenizer_id` of the result (vLLM: `--tokenizer`, else the model id).
    pub fn tokenizer_id(&self, model_id: &str) -> String {
        self.tokenizer
            .as_ref()
            .map_or_else(|| model_id.to_string(), |t| t.id.clone())
    }

    /// The dataset entry of a point's result: the dataset record plus the exact token
    /// counts asked of the requests that were sent.
    pub fn dataset_json(&self, outcomes: &[pd_common::bench::RequestOutcome]) -> Value {
        let mut v = self.dataset.record.to_json();
        let prompts = self.prompts();
        if let Some(m) = v.as_object_mut() {
            m.insert("prompt_format".into(), self.prompt_format.as_str().into());
            m.insert(
                "requested_prompt_tokens".into(),
                outcomes
                    .iter()
                    .map(|o| o.client_prompt_len)
                    .sum::<u64>()
                    .into(),
            );
            m.insert(
                "requested_output_tokens".into(),
                outcomes
                    .iter()
                    .map(|o| u64::from(prompts.output_len(o.index)))
                    .sum::<u64>()
                    .into(),
            );
            if !self.vocab_size_given || self.prompt_format == PromptFormat::TokenIds {
                m.insert("vocab_size".into(), self.vocab_size.into());
            }
        }
        v
    }
}

fn shape_params(shape: Option<&Shape>) -> Map<String, Value> {
    let mut m = Map::new();
    match shape {
        Some(Shape::PrefixRepetition {
            prefix_len,
            suffix_len,
            num_prefixes,
            output_len,
        }) => {
            m.insert("prefix_len".into(), (*prefix_len).into());
            m.insert("suffix_len".into(), (*suffix_len).into());
            m.insert("num_prefixes".into(), (*num_prefixes).into());
            m.insert("output_len".into(), (*output_len).into());
        }
        Some(Shape::Random {
            prefix_len,
            input_lo,
            input_hi,
            output_lo,
            output_hi,
        }) => {
            m.insert("prefix_len".into(), (*prefix_len).into());
            m.insert(
                "input_len_range".into(),
                serde_json::json!([input_lo, input_hi]),
            );
            m.insert(
                "output_len_range".into(),
                serde_json::json!([output_lo, output_hi]),
            );
        }
        None => {}
    }
    m
}

/// The written rate of a concurrency point: an unlimited `-r` as given, else the seed's 1e9.
fn concurrency_rate(rates: Option<&[Rate]>) -> RequestRate {
    match rates {
        Some([r]) if unlimited_rate(r.value) => RequestRate::from_f64(r.value),
        _ => RequestRate::Finite(UNLIMITED as f64),
    }
}

fn build_points(cli: &Cli) -> Result<(SweepKind, Vec<PointSpec>), ConfigError> {
    let rates: Option<&[Rate]> = cli.request_rate.as_ref().map(|l| l.0.as_slice());
    let concs: Option<&[u32]> = cli.concurrency.as_ref().map(|l| l.0.as_slice());
    // A cap of 1e9 or more is the seed's "no limit".
    let cap = cli.max_concurrency.filter(|&c| c < UNLIMITED);
    let sweep: SweepKind = match cli.sweep_type {
        Some(t) => {
            let kind: SweepKind = t.into();
            match kind {
                SweepKind::Concurrency
                    if rates.is_some_and(|r| r.iter().any(|r| !unlimited_rate(r.value))) =>
                {
                    tracing::warn!(
                        "-r/--request-rate is ignored with -t concurrency (use -t request-rate, or leave -t out to infer it)"
                    )
                }
                SweepKind::RequestRate if concs.is_some() => tracing::warn!(
                    "-c/--concurrency is ignored with -t request-rate (cap requests in flight with --max-concurrency)"
                ),
                _ => {}
            }
            kind
        }
        None => match (concs, rates) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "both -c/--concurrency and -r/--request-rate given: add -t concurrency or -t request-rate to say which sweep to run (a rate point is capped with --max-concurrency)",
                ))
            }
            (None, Some(r)) if r.iter().any(|r| !unlimited_rate(r.value)) => {
                SweepKind::RequestRate
            }
            // An unlimited rate: a concurrency point with a cap, else all at once.
            (None, Some(_)) if cap.is_none() => SweepKind::RequestRate,
            _ => SweepKind::Concurrency,
        },
    };
    let points: Vec<PointSpec> = match sweep {
        SweepKind::Concurrency => {
            let list: Vec<u64> = match cli.max_concurrency {
                Some(c) => vec![c],
                None => concs
                    .map(<[u32]>::to_vec)
                    .unwrap_or_else(|| pd_common::workload::ALL_CONCURRENCIES.to_vec())
                    .into_iter()
                    .map(u64::from)
                    .collect(),
            };
            let written_rate = concurrency_rate(rates);
            list.into_iter()
                .map(|c| PointSpec {
                    kind: sweep,
                    value: c as f64,
                    num_prompts: cli.num_prompts.unwrap_or_else(|| {
                        prompts_for_concurrency(u32::try_from(c).unwrap_or(u32::MAX))
                    }),
                    rate: f64::INFINITY,
                    max_concurrency: Some(c),
                    file_name: cli.result_filename.clone().unwrap_or_else(|| {
                        pd_common::naming::point_file_name(SweepKind::Concurrency, c as f64)
                    }),
                    written_rate,
                    written_max_concurrency: Some(c),
                })
                .collect()
        }
        SweepKind::RequestRate => {
            let all: Vec<Rate>;
            let list: &[Rate] = match rates {
                Some(r) => r,
                None => {
                    all = pd_common::workload::ALL_REQUEST_RATES
                        .iter()
                        .map(|&v| Rate {
                            value: v,
                            text: pd_common::naming::format_rate(v),
                        })
                        .collect();
                    &all
                }
            };
            list.iter()
                .map(|r| PointSpec {
                    kind: sweep,
                    value: r.value,
                    num_prompts: cli.num_prompts.unwrap_or(PROMPTS_PER_RATE_POINT),
                    rate: if unlimited_rate(r.value) {
                        f64::INFINITY
                    } else {
                        r.value
                    },
                    max_concurrency: cap,
                    file_name: cli
                        .result_filename
                        .clone()
                        .unwrap_or_else(|| rate_point_file_name(&r.text, cap)),
                    written_rate: RequestRate::from_f64(r.value),
                    written_max_concurrency: Some(cap.unwrap_or(UNLIMITED)),
                })
                .collect()
        }
    };
    let mut seen: Vec<(SweepKind, u64, Option<u64>)> = Vec::new();
    let mut names = std::collections::HashSet::new();
    for p in &points {
        let key = (p.kind, p.value.to_bits(), p.max_concurrency);
        if seen.contains(&key) || !names.insert(p.file_name.as_str()) {
            return Err(invalid(format!(
                "the sweep lists the same point twice ({} {}, {})",
                p.kind, p.value, p.file_name
            )));
        }
        seen.push(key);
        check_bounds(p, cli.num_prompts.is_some())?;
    }
    Ok((sweep, points))
}

/// Bounds of one point, checked before anything is allocated for it: the requests in
/// flight at once (one connection each) and the prompts planned (`prompts_given`: by
/// `--num-prompts`, else 5 × C for a concurrency point).
fn check_bounds(p: &PointSpec, prompts_given: bool) -> Result<(), ConfigError> {
    use crate::limits::{max_in_flight, MAX_CONCURRENCY, MAX_PROMPTS};
    if p.num_prompts > MAX_PROMPTS {
        return Err(invalid(if prompts_given {
            format!(
                "{} prompts per point is more than the largest accepted ({MAX_PROMPTS}); split the run",
                p.num_prompts
            )
        } else {
            format!(
                "{} prompts planned for one point (5 × concurrency {}), more than the largest accepted ({MAX_PROMPTS}); give --num-prompts",
                p.num_prompts, p.value
            )
        }));
    }
    if p.max_concurrency.is_some() && max_in_flight(p) > MAX_CONCURRENCY {
        return Err(invalid(format!(
            "concurrency {} is more than the largest accepted ({MAX_CONCURRENCY}): every request in flight needs its own connection",
            max_in_flight(p)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn resolve(args: &[&str]) -> Result<RunConfig, ConfigError> {
        let mut v = vec!["run-bm", "--no-deployment"];
        v.extend_from_slice(args);
        let cli = Cli::try_parse_from(&v).unwrap();
        RunConfig::resolve(&cli, vec![])
    }

    #[test]
    fn concurrency_points() {
        let c = resolve(&["-c", "4,16", "--itl", "100", "--otl", "10", "-e", "x"]).unwrap();
        assert_eq!(c.points.len(), 2);
        assert_eq!(c.points[1].num_prompts, 80);
        assert_eq!(c.points[1].max_concurrency, Some(16));
        assert!(c.points[1].rate.is_infinite());
        assert_eq!(c.points[0].file_name, "conc4.json");
        assert_eq!(
            c.result_dir,
            Path::new("bm_results/gptoss_itl100_otl10_mixed_x")
        );
    }

    #[test]
    fn rate_points_and_errors() {
        let c = resolve(&[
            "-t",
            "request-rate",
            "-r",
            "0.5,2",
            "--max-concurrency",
            "8",
        ])
        .unwrap();
        assert_eq!(c.points[0].file_name, "conc8_rr0.5.json");
        assert_eq!(
            (c.points[0].num_prompts, c.points[0].max_concurrency),
            (500, Some(8))
        );
        assert!(resolve(&["-c", "4,8", "--result-filename", "x.json"]).is_err());
        assert!(resolve(&["-c", "4,4"]).is_err());
        assert!(resolve(&["-r", "1,1.0"]).is_err());
    }

    fn point(args: &[&str]) -> (SweepKind, PointSpec) {
        let c = resolve(args).unwrap();
        assert_eq!(c.points.len(), 1, "{args:?}");
        (c.sweep, c.points[0].clone())
    }

    #[test]
    fn written_values_follow_the_seed_pipeline() {
        // Concurrency points: request_rate 1e9 (run_bm.sh), max_concurrency C.
        let c = resolve(&["-c", "4,16"]).unwrap();
        for p in &c.points {
            assert_eq!(p.result_request_rate(), RequestRate::Finite(1e9));
            assert_eq!(p.result_max_concurrency(), Some(p.value as u64));
        }
        // Rate points without a cap: max_concurrency 1e9; the file named as typed.
        let (k, p) = point(&["-t", "request-rate", "-r", "1.0"]);
        assert_eq!(k, SweepKind::RequestRate);
        assert_eq!(p.file_name, "rr1.0.json");
        assert_eq!(p.result_request_rate(), RequestRate::Finite(1.0));
        assert_eq!(p.result_max_concurrency(), Some(UNLIMITED));
        assert_eq!((p.max_concurrency, p.rate), (None, 1.0));
        let c = resolve(&["-t", "request-rate"]).unwrap();
        assert_eq!(c.points[0].file_name, "rr1.json");
        assert_eq!(c.points[9].file_name, "rr10.json");
    }

    #[test]
    fn sweep_type_is_inferred_from_vllm_style_flags() {
        let (k, p) = point(&["-r", "4"]);
        assert_eq!(
            (k, p.file_name.as_str(), p.rate),
            (SweepKind::RequestRate, "rr4.json", 4.0)
        );
        let (k, p) = point(&["-r", "4", "--max-concurrency", "16"]);
        assert_eq!(
            (k, p.file_name.as_str()),
            (SweepKind::RequestRate, "conc16_rr4.json")
        );
        assert_eq!(p.max_concurrency, Some(16));
        // run_bm.sh's concurrency point: --max-concurrency C --request-rate 1000000000.
        let (k, p) = point(&[
            "--request-rate",
            "1000000000",
            "--max-concurrency",
            "16",
            "--num-prompts",
            "80",
        ]);
        assert_eq!(
            (k, p.file_name.as_str()),
            (SweepKind::Concurrency, "conc16.json")
        );
        assert_eq!(
            (p.result_request_rate(), p.num_prompts),
            (RequestRate::Finite(1e9), 80)
        );
        assert!(p.rate.is_infinite());
        let (_, p) = point(&["--request-rate", "inf", "--max-concurrency", "16"]);
        assert_eq!(p.result_request_rate(), RequestRate::Inf);
        // run_bm.sh's rate point: --max-concurrency 1000000000 --request-rate R.
        let (k, p) = point(&["--max-concurrency", "1000000000", "--request-rate", "4"]);
        assert_eq!(
            (k, p.file_name.as_str(), p.max_concurrency),
            (SweepKind::RequestRate, "rr4.json", None)
        );
        assert_eq!(p.result_max_concurrency(), Some(UNLIMITED));
        // All at once without a cap.
        let (k, p) = point(&["-r", "inf", "--num-prompts", "10"]);
        assert_eq!((k, p.max_concurrency), (SweepKind::RequestRate, None));
        // Explicit -t keeps the seed's behaviour (the other list is ignored).
        let c = resolve(&["-t", "concurrency", "-r", "4", "-c", "8"]).unwrap();
        assert_eq!((c.sweep, c.points.len()), (SweepKind::Concurrency, 1));
        let e = resolve(&["-c", "4", "-r", "2"]).unwrap_err().to_string();
        assert!(e.contains("-t concurrency or -t request-rate"), "{e}");
        let e = resolve(&["--max-concurrency", "1000000000"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--num-prompts"), "{e}");
    }

    #[test]
    fn endpoints_urls_and_bodies() {
        let c = resolve(&["--backend", "openai-chat"]).unwrap();
        assert_eq!(c.endpoint, "/v1/chat/completions");
        assert_eq!(
            (c.body.protocol, c.prompt_format),
            (Protocol::Chat, PromptFormat::Text)
        );
        assert!(resolve(&["--endpoint", "/v1/chat/completions"]).is_err());
        assert!(resolve(&["--backend", "openai-chat", "--endpoint", "/v1/completions"]).is_err());
        assert!(resolve(&["--backend", "openai-chat", "--prompt-format", "token-ids"]).is_err());
        let c = resolve(&["-u", "https://llm.example.invalid/v1x", "--header", "k=v"]).unwrap();
        assert_eq!(c.base_url, "https://llm.example.invalid/v1x");
        for bad in [
            vec!["-u", "ftp://x"],
            vec!["-u", "http://u:p@h:1"],
            vec!["--header", "bad name=1"],
            vec!["--ca-cert", "/nonexistent/ca.pem"],
            vec!["--port", "9000"],
        ] {
            let e = resolve(&bad).unwrap_err();
            assert!(matches!(e, ConfigError::Invalid(_)), "{bad:?}: {e}");
        }
        let c = resolve(&["--host", "::1", "--port", "9"]).unwrap();
        assert_eq!(c.base_url, "http://[::1]:9");
        // A missing scheme means http:// (pd_common::url, the same for every tool).
        let c = resolve(&["-u", "127.0.0.1:8000/"]).unwrap();
        assert_eq!(
            (c.base_url.as_str(), c.url_source),
            ("http://127.0.0.1:8000", UrlSource::Flag)
        );
        let c = resolve(&["--model", "org/m"]).unwrap();
        assert_eq!(
            (c.served_model.as_str(), c.model_id.as_deref()),
            ("org/m", Some("org/m"))
        );
        let c = resolve(&[
            "--temperature",
            "0",
            "--top-k",
            "-1",
            "--repetition-penalty",
            "1.2",
            "--extra-body",
            r#"{"temperature": 0.5, "x": 1}"#,
            "--no-ignore-eos",
            "--logprobs",
            "2",
        ])
        .unwrap();
        assert!(!c.body.ignore_eos);
        assert_eq!(c.body.logprobs, Some(2));
        assert_eq!(
            serde_json::Value::Object(c.body.extra.clone()),
            serde_json::json!({"top_k": -1, "temperature": 0.5, "repetition_penalty": 1.2, "x": 1})
        );
    }

    #[test]
    fn datasets_without_what_they_need() {
        for (args, want) in [
            (vec!["--dataset-name", "sharegpt"], "--dataset-path"),
            (
                vec!["--dataset-name", "custom", "--dataset-path", "x.jsonl"],
                "--tokenizer",
            ),
            (
                vec!["--dataset-name", "random", "--dataset-path", "x"],
                "generates its prompts",
            ),
            (vec!["--tokenizer", "/nonexistent/tok"], "never downloads"),
            (
                vec![
                    "--dataset-name",
                    "random",
                    "--random-input-len",
                    "1",
                    "--random-range-ratio",
                    "0.5",
                ],
                "too small",
            ),
        ] {
            let e = resolve(&args).unwrap_err().to_string();
            assert!(e.contains(want), "{args:?}: {e}");
        }
        let c = resolve(&[
            "--dataset-name",
            "random",
            "--random-input-len",
            "100",
            "--random-output-len",
            "7",
            "--random-prefix-len",
            "5",
        ])
        .unwrap();
        assert_eq!((c.workload.itl, c.workload.otl), (105, 7));
        let p = c.prompts();
        assert_eq!(
            (p.prompt_len(0), p.output_len(0), p.ids(0).len()),
            (105, 7, 105)
        );
        let c = resolve(&[
            "--dataset-name",
            "prefix_repetition",
            "--prefix-repetition-prefix-len",
            "50",
            "--prefix-repetition-suffix-len",
            "0",
            "--output-len",
            "9",
        ])
        .unwrap();
        assert_eq!(
            c.workload,
            Workload::new(50, 9, BenchMode::DecodeOnly).unwrap()
        );
        assert_eq!(c.dataset.record.to_json()["num_prefixes"], 10);
        for bad in [
            &["-c", "1000000"][..],
            &["--num-prompts", "10000000000000"],
            &["--max-concurrency", "100000000"],
            &["--warmup", "10000000000000"],
            &["-u", "http://h:99999"],
            &["--host", "h", "--port", "0"],
        ] {
            assert!(
                matches!(resolve(bad), Err(ConfigError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn record_values_unless_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dep.toml");
        let spec = pd_common::DeploymentSpec::collocated(4, 2);
        let rec = DeploymentRecord {
            format_version: 1,
            backend: pd_common::ServingBackend::Sim,
            base_url: "http://127.0.0.1:9999".into(),
            served_model_name: "sim-model".into(),
            label: spec.label(),
            total_gpus: 8,
            gpus_per_node: 8,
            nodes: vec![],
            command: vec![],
            tool_version: "0".into(),
            created_at: "now".into(),
            network: None,
            software: Default::default(),
            env: Default::default(),
            spec,
            stop: pd_common::StopHandle::Pid { pid: 1 },
        };
        rec.write(&path).unwrap();
        let p = path.to_str().unwrap();
        let cli = Cli::try_parse_from(["run-bm", "--deployment-file", p]).unwrap();
        let c = RunConfig::resolve(&cli, vec![]).unwrap();
        assert_eq!(
            (c.base_url.as_str(), c.served_model.as_str()),
            ("http://127.0.0.1:9999", "sim-model")
        );
        assert_eq!(c.model_id.as_deref(), Some("openai/gpt-oss-120b"));
        let cli = Cli::try_parse_from([
            "run-bm",
            "--deployment-file",
            p,
            "-u",
            "http://h:1",
            "-m",
            "m",
        ])
        .unwrap();
        let c = RunConfig::resolve(&cli, vec![]).unwrap();
        assert_eq!(
            (c.base_url.as_str(), c.served_model.as_str()),
            ("http://h:1", "m")
        );
        let cli =
            Cli::try_parse_from(["run-bm", "--deployment-file", "/nonexistent/x.toml"]).unwrap();
        assert!(RunConfig::resolve(&cli, vec![]).is_err());
    }
}
