//! The KV-correctness check: greedy (temperature 0) completions of fixed prompts compared
//! with a reference, before any performance number is trusted.
//!
//! A prefill/decode deployment can lose or zero KV blocks in transfer (vLLM with NIXL's
//! LIBFABRIC backend did: gibberish, or hangs, while throughput looked normal). Greedy
//! decoding of a fixed model is deterministic, so the completions of a PD deployment must
//! equal those of a collocated one (no KV transfer) of the same model: a reference recorded
//! there (`--record-reference FILE`, then `--reference FILE`), or one shipped with run-bm
//! (the simulator's). The check is part of `--smoke` whenever a reference is known, and
//! runs before the first point of a sweep with `--check-correctness`. The reference file
//! is documented in docs/FORMATS.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::HttpClient;
use crate::config::RunConfig;
use crate::request::Protocol;

/// Value of the `format` field of a reference file.
pub const REFERENCE_FORMAT: &str = "pd-lab-reference";
/// Format version written (and the highest read).
pub const REFERENCE_FORMAT_VERSION: u32 = 1;
/// Tokens asked for per prompt when recording.
pub const MAX_TOKENS: u32 = 32;

/// The fixed prompts (text, so any tokenizer serves them). The last one spans many KV
/// blocks (about 250 tokens with a GPT-style tokenizer), so a transfer that loses or zeroes
/// blocks beyond the first shows up too.
pub const PROMPTS: [&str; 4] = [
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "1, 2, 3, 5, 8, 13,",
    "In a disaggregated deployment the prefill instance computes the key and value \
     tensors of every prompt token, writes them into its paged KV cache, and hands the \
     block ids to the decode instance, which pulls the blocks over the network before it \
     generates the first new token. Nothing in the response tells whether the blocks \
     arrived intact: a decode instance that reads zeros instead of keys and values still \
     returns tokens at the usual pace, and a benchmark measures its throughput as if \
     nothing were wrong. The only witness is the text itself. Greedy decoding of the same \
     weights is a deterministic function of the prompt, so a prefill and decode pair must \
     produce exactly the completion a single collocated instance produces, token for \
     token. This paragraph is long enough to fill more than a dozen blocks of sixteen \
     tokens, so that blocks after the first are checked as well as the first one, and it \
     ends here:",
];

/// Where a reference was recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedOn {
    /// Deployment label (`1xtp1`), from the deployment record.
    #[serde(default)]
    pub label: Option<String>,
    /// Deployment mode (`collocated`, `pd-pack`, `pd-spread`).
    #[serde(default)]
    pub mode: Option<String>,
    /// Serving backend of the record (`ray`, `sim`).
    #[serde(default)]
    pub backend: Option<String>,
    /// The endpoint (user info removed).
    #[serde(default)]
    pub base_url: Option<String>,
}

/// One reference completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefCompletion {
    pub prompt: String,
    pub text: String,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
}

/// A reference file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Always [`REFERENCE_FORMAT`].
    pub format: String,
    pub format_version: u32,
    pub tool_version: String,
    pub created_at: String,
    /// Served model name the completions were asked of.
    pub served_model_name: String,
    /// `completions` or `chat`.
    pub api: String,
    /// `max_tokens` of every request.
    pub max_tokens: u32,
    #[serde(default)]
    pub recorded_on: RecordedOn,
    pub completions: Vec<RefCompletion>,
}

/// Why the check could not be run (not a verdict).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("reference {}: {reason}", path.display())]
    BadReference { path: PathBuf, reason: String },
    #[error("cannot write the reference {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: Box<pd_common::Error>,
    },
    #[error("correctness check: prompt {index}: {reason}")]
    Request { index: usize, reason: String },
    #[error(
        "--check-correctness: no reference for this deployment; record one on a collocated \
         deployment of the same model (run-bm --smoke --record-reference FILE) and give \
         --reference FILE"
    )]
    NoReference,
}

impl Reference {
    /// Parse and check a reference's text.
    pub fn parse(text: &str, path: &Path) -> Result<Reference, CheckError> {
        let bad = |reason: String| CheckError::BadReference {
            path: path.to_path_buf(),
            reason,
        };
        let r: Reference =
            serde_json::from_str(text).map_err(|e| bad(format!("not a reference file ({e})")))?;
        if r.format != REFERENCE_FORMAT {
            return Err(bad(format!(
                "format '{}' is not '{REFERENCE_FORMAT}'",
                r.format
            )));
        }
        if r.format_version == 0 || r.format_version > REFERENCE_FORMAT_VERSION {
            return Err(bad(format!(
                "format version {} is not supported (this build reads up to {REFERENCE_FORMAT_VERSION})",
                r.format_version
            )));
        }
        if r.completions.is_empty() {
            return Err(bad("no completions".into()));
        }
        if r.max_tokens == 0 || r.max_tokens > 4096 {
            return Err(bad(format!(
                "max_tokens {} is not in 1..=4096",
                r.max_tokens
            )));
        }
        if r.completions.iter().any(|c| c.prompt.is_empty()) {
            return Err(bad("an empty prompt".into()));
        }
        if !matches!(r.api.as_str(), "completions" | "chat") {
            return Err(bad(format!("api '{}' is not completions or chat", r.api)));
        }
        Ok(r)
    }

    pub fn read(path: &Path) -> Result<Reference, CheckError> {
        let text = std::fs::read_to_string(path).map_err(|e| CheckError::BadReference {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    pub fn write(&self, path: &Path) -> Result<(), CheckError> {
        let err = |source: pd_common::Error| CheckError::Write {
            path: path.to_path_buf(),
            source: Box::new(source),
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| {
            err(pd_common::Error::Json {
                path: path.to_path_buf(),
                source: e,
            })
        })?;
        pd_common::fsutil::write_atomic(path, text.as_bytes()).map_err(err)
    }
}

/// The reference shipped for the simulator: its text is a function of the prompt only
/// (any served model name, GPU kind or layout), so one file covers every simulated
/// deployment. `launch-gptoss`'s tests check that the simulator still produces it.
pub const SIM_REFERENCE: &str = include_str!("../references/sim.json");
/// Name under which the shipped simulator reference is reported.
pub const SIM_REFERENCE_NAME: &str = "built-in reference of the pd-lab simulator";

/// One greedy completion as the server gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Greedy {
    pub text: String,
    pub finish_reason: Option<String>,
    pub completion_tokens: Option<u64>,
}

fn api_of(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Completions => "completions",
        Protocol::Chat => "chat",
    }
}

/// The greedy request body of `prompt`.
pub fn greedy_body(api: &str, model: &str, prompt: &str, max_tokens: u32) -> Value {
    if api == "chat" {
        json!({"model": model, "messages": [{"role": "user", "content": prompt}],
               "max_completion_tokens": max_tokens, "temperature": 0, "seed": 0, "stream": false})
    } else {
        json!({"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
               "seed": 0, "stream": false})
    }
}

/// Read a non-streaming answer (completions or chat).
pub fn parse_answer(api: &str, body: &[u8]) -> Result<Greedy, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the answer is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
                .chars()
                .take(200)
                .collect::<String>()
        )
    })?;
    let choice = v.pointer("/choices/0").ok_or_else(|| {
        format!(
            "no choices in the answer: {}",
            crate::chunk::error_message(&v)
        )
    })?;
    let text = if api == "chat" {
        choice.pointer("/message/content")
    } else {
        choice.get("text")
    }
    .and_then(Value::as_str)
    .ok_or("the answer has no text")?
    .to_string();
    Ok(Greedy {
        text,
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string),
        completion_tokens: v
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64),
    })
}

/// Ask the server for the greedy completion of every prompt, one at a time.
pub async fn collect(
    client: &HttpClient,
    cfg: &RunConfig,
    api: &str,
    prompts: &[String],
    max_tokens: u32,
) -> Result<Vec<Greedy>, CheckError> {
    let timeout = cfg.timeout.min(Duration::from_secs(600));
    let path = if api == "chat" {
        "/v1/chat/completions"
    } else {
        "/v1/completions"
    };
    let mut out = Vec::with_capacity(prompts.len());
    for (i, p) in prompts.iter().enumerate() {
        let body = greedy_body(api, &cfg.served_model, p, max_tokens);
        let (status, bytes) = client
            .post_json(path, Bytes::from(body.to_string()), timeout, false)
            .await
            .map_err(|e| CheckError::Request {
                index: i + 1,
                reason: e.to_string(),
            })?;
        if !(200..300).contains(&status) {
            let msg = serde_json::from_slice::<Value>(&bytes)
                .map(|v| crate::chunk::error_message(&v))
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).chars().take(300).collect());
            return Err(CheckError::Request {
                index: i + 1,
                reason: format!("HTTP {status}: {msg}"),
            });
        }
        out.push(
            parse_answer(api, &bytes).map_err(|reason| CheckError::Request {
                index: i + 1,
                reason,
            })?,
        );
    }
    Ok(out)
}

/// One completion that is not the reference's.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    /// 1-based prompt number.
    pub index: usize,
    /// Character at which the texts part.
    pub at_char: usize,
    pub expected: String,
    pub got: String,
}

/// The outcome of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub checked: usize,
    pub diverged: Vec<Divergence>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.diverged.is_empty()
    }
}

/// Compare completions with the reference's, prompt by prompt (exact text).
pub fn compare(reference: &Reference, got: &[Greedy]) -> Verdict {
    let mut diverged = Vec::new();
    for (i, (r, g)) in reference.completions.iter().zip(got).enumerate() {
        if r.text != g.text {
            let at_char = r
                .text
                .chars()
                .zip(g.text.chars())
                .take_while(|(a, b)| a == b)
                .count();
            diverged.push(Divergence {
                index: i + 1,
                at_char,
                expected: r.text.clone(),
                got: g.text.clone(),
            });
        }
    }
    Verdict {
        checked: reference.completions.len().min(got.len()),
        diverged,
    }
}

/// `text` from character `from`, at most `n` characters, quoted.
fn excerpt(text: &str, from: usize, n: usize) -> String {
    let start = from.saturating_sub(10);
    let s: String = text.chars().skip(start).take(n).collect();
    let more = text.chars().count() > start + n;
    format!(
        "{}{:?}{}",
        if start > 0 { "…" } else { "" },
        s,
        if more { "…" } else { "" }
    )
}

/// Is the deployment of `cfg` a prefill/decode one (from its record), if known?
fn pd_deployment(cfg: &RunConfig) -> Option<bool> {
    cfg.record.as_ref().map(|r| r.spec.mode().is_pd())
}

/// The failure message of a verdict that did not pass.
pub fn failure_message(cfg: &RunConfig, reference_name: &str, v: &Verdict) -> String {
    let what = match pd_deployment(cfg) {
        Some(false) => "outputs differ from the reference (this deployment is collocated, so no \
                        KV transfer is involved: is the reference from another model or build?)"
            .to_string(),
        _ => "PD transfer corrupts outputs".to_string(),
    };
    let first = &v.diverged[0];
    format!(
        "{what}: {} of {} greedy completions differ from {reference_name} (first: prompt {} at \
         character {}); do not trust performance numbers of this deployment",
        v.diverged.len(),
        v.checked,
        first.index,
        first.at_char
    )
}

/// The reference to check against: `--reference FILE`, else the shipped one when the
/// server is the simulator. Returns it with the name it is reported under.
pub async fn resolve_reference(
    cfg: &RunConfig,
    client: &HttpClient,
) -> Result<Option<(Reference, String)>, CheckError> {
    if let Some(p) = &cfg.correctness.reference {
        return Ok(Some((Reference::read(p)?, p.display().to_string())));
    }
    if crate::deployment_check::answers_as_sim(client)
        .await
        .unwrap_or(false)
    {
        let r = Reference::parse(SIM_REFERENCE, Path::new("references/sim.json"))?;
        return Ok(Some((r, SIM_REFERENCE_NAME.to_string())));
    }
    Ok(None)
}

/// Record this deployment's greedy completions of [`PROMPTS`] into `path`.
pub async fn record(
    cfg: &RunConfig,
    client: &HttpClient,
    path: &Path,
) -> Result<Reference, CheckError> {
    if pd_deployment(cfg) == Some(true) {
        tracing::warn!(
            "recording a reference on a PD deployment: a reference should come from a \
             collocated deployment of the same model (no KV transfer)"
        );
    }
    let api = api_of(cfg.body.protocol);
    let prompts: Vec<String> = PROMPTS.iter().map(|p| p.to_string()).collect();
    let got = collect(client, cfg, api, &prompts, MAX_TOKENS).await?;
    let reference = Reference {
        format: REFERENCE_FORMAT.into(),
        format_version: REFERENCE_FORMAT_VERSION,
        tool_version: pd_common::VERSION.into(),
        created_at: pd_common::deployment::now_rfc3339(),
        served_model_name: cfg.served_model.clone(),
        api: api.into(),
        max_tokens: MAX_TOKENS,
        recorded_on: RecordedOn {
            label: cfg.record.as_ref().map(|r| r.label.clone()),
            mode: cfg.record.as_ref().map(|r| r.spec.mode().to_string()),
            backend: cfg.record.as_ref().map(|r| r.backend.to_string()),
            base_url: Some(pd_common::url::redact_userinfo(&cfg.base_url)),
        },
        completions: prompts
            .into_iter()
            .zip(got)
            .map(|(prompt, g)| RefCompletion {
                prompt,
                text: g.text,
                finish_reason: g.finish_reason,
                completion_tokens: g.completion_tokens,
            })
            .collect(),
    };
    reference.write(path)?;
    pd_common::outln!(
        "Correctness: recorded {} greedy completions (temperature 0, {} tokens) as a reference: {}",
        reference.completions.len(),
        MAX_TOKENS,
        path.display()
    );
    Ok(reference)
}

/// Run the check against `reference`, printing each prompt's outcome.
pub async fn check(
    cfg: &RunConfig,
    client: &HttpClient,
    reference: &Reference,
    name: &str,
) -> Result<Verdict, CheckError> {
    let recorded = match (&reference.recorded_on.label, &reference.recorded_on.mode) {
        (Some(l), Some(m)) => format!(", recorded on {m} {l}"),
        _ => String::new(),
    };
    pd_common::outln!(
        "Correctness: {} greedy completions (temperature 0, {} tokens) against {name}{recorded}",
        reference.completions.len(),
        reference.max_tokens
    );
    let prompts: Vec<String> = reference
        .completions
        .iter()
        .map(|c| c.prompt.clone())
        .collect();
    let got = collect(client, cfg, &reference.api, &prompts, reference.max_tokens).await?;
    let verdict = compare(reference, &got);
    for i in 0..verdict.checked {
        match verdict.diverged.iter().find(|d| d.index == i + 1) {
            None => pd_common::outln!("  [{}] identical", i + 1),
            Some(d) => pd_common::outln!(
                "  [{}] DIFFERS at character {}: expected {} got {}",
                d.index,
                d.at_char,
                excerpt(&d.expected, d.at_char, 40),
                excerpt(&d.got, d.at_char, 40)
            ),
        }
    }
    Ok(verdict)
}

/// What a passed check adds to the manifest (`correctness`).
pub fn manifest_entry(name: &str, reference: &Reference, v: &Verdict) -> Value {
    json!({
        "reference": name,
        "recorded_on": reference.recorded_on,
        "prompts": v.checked,
        "max_tokens": reference.max_tokens,
        "passed": v.passed(),
        "checked_at": pd_common::deployment::now_rfc3339(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(texts: &[&str]) -> Reference {
        Reference {
            format: REFERENCE_FORMAT.into(),
            format_version: 1,
            tool_version: "t".into(),
            created_at: "c".into(),
            served_model_name: "gptoss".into(),
            api: "completions".into(),
            max_tokens: 8,
            recorded_on: RecordedOn::default(),
            completions: texts
                .iter()
                .enumerate()
                .map(|(i, t)| RefCompletion {
                    prompt: format!("p{i}"),
                    text: t.to_string(),
                    finish_reason: Some("length".into()),
                    completion_tokens: Some(8),
                })
                .collect(),
        }
    }

    fn greedy(t: &str) -> Greedy {
        Greedy {
            text: t.into(),
            finish_reason: None,
            completion_tokens: None,
        }
    }

    #[test]
    fn compares_exact_text_and_finds_the_divergence() {
        let r = reference(&[" Paris is the capital", " return n"]);
        let v = compare(&r, &[greedy(" Paris is the capital"), greedy(" return n")]);
        assert!(v.passed());
        assert_eq!(v.checked, 2);
        let v = compare(&r, &[greedy(" Paris was"), greedy(" return n")]);
        assert!(!v.passed());
        assert_eq!(v.diverged.len(), 1);
        assert_eq!((v.diverged[0].index, v.diverged[0].at_char), (1, 7));
        let v = compare(&r, &[greedy(" Paris is the capital city"), greedy("")]);
        assert_eq!(v.diverged.len(), 2, "longer or empty is a difference too");
        assert_eq!(v.diverged[1].at_char, 0);
    }

    #[test]
    fn reference_files_are_checked() {
        let p = Path::new("r.json");
        let ok = serde_json::to_string(&reference(&["a"])).unwrap();
        assert!(Reference::parse(&ok, p).is_ok());
        for (from, to, what) in [
            (REFERENCE_FORMAT, "other", "is not 'pd-lab-reference'"),
            ("\"format_version\":1", "\"format_version\":7", "version 7"),
            (
                "\"api\":\"completions\"",
                "\"api\":\"embeddings\"",
                "api 'embeddings'",
            ),
            ("\"max_tokens\":8", "\"max_tokens\":0", "max_tokens 0"),
        ] {
            let e = Reference::parse(&ok.replace(from, to), p)
                .unwrap_err()
                .to_string();
            assert!(e.contains(what), "{e}");
        }
        let e = Reference::parse(&serde_json::to_string(&reference(&[])).unwrap(), p).unwrap_err();
        assert!(e.to_string().contains("no completions"));
        assert!(Reference::parse("[1]", p)
            .unwrap_err()
            .to_string()
            .contains("not a reference"));
    }

    #[test]
    fn the_shipped_simulator_reference_is_valid() {
        let r = Reference::parse(SIM_REFERENCE, Path::new("sim.json")).unwrap();
        let prompts: Vec<&str> = r.completions.iter().map(|c| c.prompt.as_str()).collect();
        assert_eq!(prompts, PROMPTS, "recorded from the current fixed prompts");
        assert_eq!(r.max_tokens, MAX_TOKENS);
        assert_eq!(r.recorded_on.backend.as_deref(), Some("sim"));
    }

    #[test]
    fn answers_of_both_apis() {
        let c = parse_answer(
            "completions",
            br#"{"choices":[{"text":" hi","finish_reason":"length"}],"usage":{"completion_tokens":2}}"#,
        )
        .unwrap();
        assert_eq!((c.text.as_str(), c.completion_tokens), (" hi", Some(2)));
        let c = parse_answer(
            "chat",
            br#"{"choices":[{"message":{"role":"assistant","content":"yo"},"finish_reason":"stop"}]}"#,
        )
        .unwrap();
        assert_eq!(c.text, "yo");
        assert!(parse_answer("completions", b"{}").is_err());
        assert!(parse_answer("completions", b"nope").is_err());
        let b = greedy_body("chat", "m", "p", 4);
        assert_eq!(b["max_completion_tokens"], 4);
        assert_eq!(b["temperature"], 0);
        let b = greedy_body("completions", "m", "p", 4);
        assert_eq!(
            (b["prompt"].as_str(), b["stream"].as_bool()),
            (Some("p"), Some(false))
        );
    }

    #[test]
    fn excerpts_around_the_divergence() {
        assert_eq!(excerpt("abcdef", 2, 3), "\"abc\"…");
        assert_eq!(excerpt(&"x".repeat(30), 20, 5), "…\"xxxxx\"…");
    }
}
