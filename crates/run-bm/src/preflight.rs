//! Before any load is sent: wait for the server (`--ready-check-timeout-sec`), check that
//! the deployment record describes it ([`crate::deployment_check`]), learn what it
//! accepts, and refuse a run that could only fail, naming the flag that fixes it.
//!
//! * Context: vLLM's `GET /v1/models` (or `POST /tokenize`) reports `max_model_len`; a
//!   prompt plus `max_tokens` beyond it is refused before the first point.
//! * Vocabulary (token-id prompts without `--tokenizer`): one request of a single token,
//!   the largest id the prompts may use, with `max_tokens` 1. If the server rejects it as
//!   out of vocabulary, the bound it accepts is found by bisection (about 18 one-token
//!   requests) and used, unless `--vocab-size` was given explicitly (then the run stops
//!   and says so).

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::client::{ClientError, HttpClient};
use crate::config::RunConfig;
use crate::prompt::PromptFormat;

/// Why the run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Stale(#[from] crate::deployment_check::StaleRecord),
    #[error("the server at {url} was not ready within {waited:.0} s (--ready-check-timeout-sec): {last}")]
    NotReady {
        url: String,
        waited: f64,
        last: String,
    },
    #[error("requests of up to {prompt} prompt + {output} output tokens do not fit the model's context of {max_model_len} tokens (the server's max_model_len): {fix}")]
    Context {
        max_model_len: u64,
        prompt: u64,
        output: u64,
        fix: &'static str,
    },
    #[error("the server rejects token id {id} (--vocab-size {vocab}): {message}\n  {fix}")]
    Vocabulary {
        id: u32,
        vocab: u32,
        message: String,
        fix: &'static str,
    },
}

impl PreflightError {
    /// A wrong flag for this server (exit code 2) rather than a failed run.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            PreflightError::Context { .. } | PreflightError::Vocabulary { .. }
        )
    }
}

/// What fixes an out-of-vocabulary error.
pub const VOCAB_FIX: &str = "give --tokenizer <the model's tokenizer dir or HF id> (text prompts from its vocabulary), or --vocab-size <the model's vocabulary size>";

/// The flag that fixes a failed request's error, when the error says it.
pub fn hint(error: &str) -> Option<&'static str> {
    let e = error.to_ascii_lowercase();
    if e.contains("out of vocabulary")
        || (e.contains("token id") && e.contains("vocab"))
        || e.contains("vocab_size")
    {
        return Some(VOCAB_FIX);
    }
    if e.contains("maximum context length")
        || e.contains("max_model_len")
        || e.contains("context length")
        || e.contains("too long")
    {
        return Some(CONTEXT_FIX_DEFAULT);
    }
    None
}

const CONTEXT_FIX_DEFAULT: &str = "lower --itl/--otl (or the dataset's --*-input-len/--*-output-len), or raise the server's --max-model-len";

/// Prepare `cfg` against the server: wait, check the context, learn the vocabulary.
pub async fn prepare(cfg: &mut RunConfig) -> Result<(), PreflightError> {
    let client = HttpClient::for_config(cfg)?;
    if !cfg.ready_timeout.is_zero() {
        wait_ready(&client, &cfg.served_model, cfg.ready_timeout).await?;
    }
    // Before any completion request (the vocabulary probe is one): the deployment record
    // must describe this server, or its labels would be wrong.
    crate::deployment_check::verify(cfg, &client).await?;
    let info = model_info(&client, &cfg.served_model).await;
    if let Some(max_model_len) = info.max_model_len {
        check_context(cfg, max_model_len)?;
    }
    let mut names: Vec<&str> = vec![cfg.served_model.as_str()];
    names.extend(cfg.model_id.as_deref());
    names.extend(info.root.as_deref());
    // The default bound is GPT-OSS's; an explicit --vocab-size is trusted (a wrong one
    // shows in the requests' errors, with the fix).
    if cfg.prompt_format == PromptFormat::TokenIds
        && cfg.tokenizer.is_none()
        && !cfg.vocab_size_given
        && cfg.body.protocol == crate::request::Protocol::Completions
        && !is_gpt_oss(&names)
    {
        check_vocabulary(cfg, &client).await?;
    }
    Ok(())
}

/// What `/v1/models` (or `/tokenize`) says of the served model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelInfo {
    pub max_model_len: Option<u64>,
    pub root: Option<String>,
}

/// Poll `GET /v1/models` until it answers 200 (listing the model, when it lists any).
pub async fn wait_ready(
    client: &HttpClient,
    model: &str,
    timeout: Duration,
) -> Result<(), PreflightError> {
    let start = Instant::now();
    let mut announced = false;
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        let last = match client
            .get(
                "/v1/models",
                left.clamp(Duration::from_millis(100), Duration::from_secs(10)),
            )
            .await
        {
            Ok((200, body)) => {
                let listed = models_of(&body);
                if listed.is_empty() || listed.iter().any(|(id, _, _)| id == model) {
                    if announced {
                        tracing::warn!("server ready after {:.1} s", start.elapsed().as_secs_f64());
                    }
                    return Ok(());
                }
                format!("model '{model}' not served yet")
            }
            Ok((status, _)) => format!("GET /v1/models answered HTTP {status}"),
            Err(e) => e.to_string(),
        };
        if start.elapsed() >= timeout {
            return Err(PreflightError::NotReady {
                url: client.base_url().to_string(),
                waited: timeout.as_secs_f64(),
                last,
            });
        }
        if !announced {
            tracing::warn!(
                "waiting up to {:.0} s for {} ({last})",
                timeout.as_secs_f64(),
                client.base_url()
            );
            announced = true;
        }
        let pause = Duration::from_secs(1).min(timeout.saturating_sub(start.elapsed()));
        tokio::time::sleep(pause).await;
    }
}

/// (id, max_model_len, root) of every model of a `/v1/models` body.
fn models_of(body: &[u8]) -> Vec<(String, Option<u64>, Option<String>)> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("data").and_then(|d| d.as_array()).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|m| {
            let id = m.get("id")?.as_str()?.to_string();
            Some((
                id,
                m.get("max_model_len").and_then(|x| x.as_u64()),
                m.get("root").and_then(|x| x.as_str()).map(str::to_string),
            ))
        })
        .collect()
}

/// The model's `max_model_len` and `root`: from `/v1/models`, the length else from
/// vLLM's `POST /tokenize`.
pub async fn model_info(client: &HttpClient, model: &str) -> ModelInfo {
    let mut info = ModelInfo::default();
    if let Ok((200, body)) = client.get("/v1/models", Duration::from_secs(10)).await {
        let models = models_of(&body);
        if let Some((_, len, root)) = models
            .iter()
            .find(|(id, _, _)| id == model)
            .or_else(|| models.first())
        {
            info.max_model_len = *len;
            info.root = root.clone();
        }
    }
    if info.max_model_len.is_some() {
        return info;
    }
    let body = serde_json::json!({"model": model, "prompt": "hi"}).to_string();
    if let Ok((200, b)) = client
        .post_json(
            "/tokenize",
            Bytes::from(body),
            Duration::from_secs(10),
            false,
        )
        .await
    {
        info.max_model_len = serde_json::from_slice::<serde_json::Value>(&b)
            .ok()
            .and_then(|v| v.get("max_model_len").and_then(|x| x.as_u64()));
    }
    info
}

/// The longest prompt and output of the run's requests.
fn longest(cfg: &RunConfig) -> (u64, u64) {
    let prompts = cfg.prompts();
    match &cfg.dataset.table {
        Some(t) => (
            t.main.iter().map(|s| s.prompt_len).max().unwrap_or(0),
            t.main
                .iter()
                .map(|s| u64::from(s.output_len))
                .max()
                .unwrap_or(0),
        ),
        None => match cfg.dataset.shape {
            Some(crate::dataset::Shape::Random {
                prefix_len,
                input_hi,
                output_hi,
                ..
            }) => (u64::from(prefix_len + input_hi), u64::from(output_hi)),
            _ => (prompts.prompt_len(0), u64::from(prompts.output_len(0))),
        },
    }
}

fn check_context(cfg: &RunConfig, max_model_len: u64) -> Result<(), PreflightError> {
    let (prompt, output) = longest(cfg);
    if prompt + output <= max_model_len {
        return Ok(());
    }
    let fix = match cfg.dataset.name {
        None => "lower --itl/--otl, or raise the server's --max-model-len",
        Some(crate::dataset::DatasetName::Random) => {
            "lower --random-input-len/--random-output-len (or --random-range-ratio, --random-prefix-len), or raise the server's --max-model-len"
        }
        Some(crate::dataset::DatasetName::PrefixRepetition) => {
            "lower --prefix-repetition-prefix-len/--prefix-repetition-suffix-len/--prefix-repetition-output-len, or raise the server's --max-model-len"
        }
        Some(_) => {
            "lower --output-len (or --sharegpt-output-len/--custom-output-len), use shorter prompts, or raise the server's --max-model-len"
        }
    };
    Err(PreflightError::Context {
        max_model_len,
        prompt,
        output,
        fix,
    })
}

/// Whether a one-token prompt of `id` is accepted (`Err`: the answer says something
/// else than accepted or out of vocabulary).
async fn accepts(
    client: &HttpClient,
    endpoint: &str,
    model: &str,
    id: u32,
) -> Result<bool, String> {
    let body = serde_json::json!({
        "model": model,
        "prompt": [id],
        "max_tokens": 1,
        "stream": true,
    })
    .to_string();
    match client
        .post_json(endpoint, Bytes::from(body), Duration::from_secs(60), true)
        .await
    {
        Ok((s, _)) if (200..300).contains(&s) => Ok(true),
        Ok((s, body)) => {
            let message = crate::client::error_body_message(&body);
            if hint(&message) == Some(VOCAB_FIX) {
                Ok(false)
            } else {
                Err(format!("HTTP {s}: {message}"))
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Whether the served model is GPT-OSS (whose vocabulary the default bound is made for).
fn is_gpt_oss(names: &[&str]) -> bool {
    names.iter().any(|n| {
        let n = n.to_ascii_lowercase();
        n.contains("gpt-oss") || n.contains("gptoss") || n.contains("gpt_oss")
    })
}

async fn check_vocabulary(cfg: &mut RunConfig, client: &HttpClient) -> Result<(), PreflightError> {
    let vocab = cfg.vocab_size.max(1);
    let top = vocab - 1;
    let endpoint = cfg.endpoint.clone();
    match accepts(client, &endpoint, &cfg.served_model, top).await {
        Ok(true) => return Ok(()),
        Err(message) => {
            tracing::warn!(
                "a one-token check request with token id {top} failed ({message}); if the server only takes text prompts, use --tokenizer or --prompt-format text"
            );
            return Ok(());
        }
        Ok(false) => {}
    }
    if cfg.vocab_size_given {
        return Err(PreflightError::Vocabulary {
            id: top,
            vocab,
            message: "out of vocabulary".into(),
            fix: VOCAB_FIX,
        });
    }
    // Bisection: `lo` accepted, `hi` rejected.
    let (mut lo, mut hi) = (0u32, top);
    match accepts(client, &endpoint, &cfg.served_model, 0).await {
        Ok(true) => {}
        _ => {
            return Err(PreflightError::Vocabulary {
                id: 0,
                vocab,
                message: "even token id 0 is rejected".into(),
                fix: VOCAB_FIX,
            })
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match accepts(client, &endpoint, &cfg.served_model, mid).await {
            Ok(true) => lo = mid,
            Ok(false) => hi = mid,
            Err(message) => {
                return Err(PreflightError::Vocabulary {
                    id: mid,
                    vocab,
                    message,
                    fix: VOCAB_FIX,
                })
            }
        }
    }
    let learned = lo + 1;
    tracing::warn!(
        "the server rejects token ids ≥ {learned} (default --vocab-size {vocab}); prompts use ids below {learned}. Give --tokenizer for prompts from the model's real vocabulary"
    );
    cfg.vocab_size = learned;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_flag() {
        assert_eq!(
            hint("HTTP 400 Bad Request: Token id 199173 is out of vocabulary"),
            Some(VOCAB_FIX)
        );
        assert!(hint(
            "HTTP 400 Bad Request: This model's maximum context length is 4096 tokens. However, you requested 9000 tokens"
        )
        .unwrap()
        .contains("--itl/--otl"));
        assert_eq!(hint("HTTP 500 Internal Server Error"), None);
    }

    #[test]
    fn models_listing() {
        let m = models_of(br#"{"data":[{"id":"a","max_model_len":4096,"root":"r/a"},{"id":"b"}]}"#);
        assert_eq!(
            m,
            vec![
                ("a".into(), Some(4096), Some("r/a".into())),
                ("b".into(), None, None)
            ]
        );
        assert!(models_of(b"garbage").is_empty());
        assert!(is_gpt_oss(&["x", "openai/gpt-oss-120b"]));
        assert!(!is_gpt_oss(&["meta-llama/Llama-3.1-8B"]));
    }
}
