//! OpenAI `/v1/completions` as vLLM speaks it: request parsing and validation, error
//! bodies, SSE chunks and non-streaming responses.
//!
//! Prompts are either token ids (counted exactly) or text. Text is not tokenized: it
//! counts as `ceil(chars / 4)` tokens (about 4 characters per token, the usual rule of
//! thumb for English with an o200k-style vocabulary), and its prefix-cache block hashes
//! are taken over 64-character blocks (16 tokens × 4 characters).
//!
//! The simulator never samples an end-of-sequence token: every request generates
//! exactly `max_tokens` tokens (after the silent clamp to the context), as vLLM does with
//! `ignore_eos: true`. Generated text is one word per token, a deterministic function of
//! the prompt (as greedy decoding of a fixed model is): the same prompt always gets the
//! same text, different prompts almost always different texts, so a correctness check that
//! compares completions with a reference means something here too ([`TextGen`]).

use serde::Deserialize;
use serde_json::Value;

/// GPT-OSS vocabulary size (o200k_harmony): token ids must be below this.
pub const VOCAB_SIZE: u64 = 201_088;
/// vLLM's default `max_tokens` for completions.
pub const DEFAULT_MAX_TOKENS: u32 = 16;
/// vLLM's KV block size: prefix-cache hashes cover full blocks of this many tokens.
pub const BLOCK_TOKENS: usize = 16;
/// Characters per token assumed for text prompts.
pub const CHARS_PER_TOKEN: usize = 4;

/// An error answered as vLLM does: an HTTP status and `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {kind}: {message}")]
pub struct ApiError {
    pub status: u16,
    /// `BadRequestError`, `NotFoundError`, …
    pub kind: &'static str,
    pub message: String,
    pub param: Option<&'static str>,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, param: Option<&'static str>) -> Self {
        ApiError {
            status: 400,
            kind: "BadRequestError",
            message: message.into(),
            param,
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: 404,
            kind: "NotFoundError",
            message: message.into(),
            param: Some("model"),
        }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: 500,
            kind: "InternalServerError",
            message: message.into(),
            param: None,
        }
    }
    /// The JSON body vLLM sends.
    pub fn body(&self) -> String {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.status,
            }
        })
        .to_string()
    }
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
    continuous_usage_stats: Option<bool>,
}

/// The fields of a completion request the simulator looks at (others are accepted and
/// ignored, as sampling parameters do not change timing).
#[derive(Debug, Deserialize)]
struct RawRequest {
    model: Option<String>,
    prompt: Option<Value>,
    max_tokens: Option<i64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    #[allow(dead_code)]
    ignore_eos: Option<bool>,
    return_token_ids: Option<bool>,
    n: Option<i64>,
}

/// What the server needs to know about the model it serves.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub served_model_name: String,
    pub max_model_len: u32,
}

/// A validated completion request.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    pub prompt_tokens: u32,
    /// Chained hashes of the prompt's full 16-token blocks.
    pub block_hashes: Vec<u64>,
    /// Output tokens after the silent clamp to the context.
    pub max_tokens: u32,
    pub stream: bool,
    pub include_usage: bool,
    pub continuous_usage_stats: bool,
    pub return_token_ids: bool,
    /// Hash of the whole prompt: the seed of the generated text.
    pub text_seed: u64,
}

enum Prompt {
    Ids(Vec<u64>),
    Text(String),
}

fn parse_prompt(v: Option<Value>) -> Result<Prompt, ApiError> {
    let bad = |m: &str| ApiError::bad_request(m.to_string(), Some("prompt"));
    let v = v.ok_or_else(|| bad("the field 'prompt' is required"))?;
    let ids = |items: &[Value]| -> Result<Vec<u64>, ApiError> {
        items
            .iter()
            .map(|x| match x.as_i64() {
                Some(i) if i < 0 => Err(bad(&format!("Token id {i} is out of vocabulary"))),
                Some(i) => Ok(i as u64),
                None => Err(bad("prompt token ids must be integers")),
            })
            .collect()
    };
    match v {
        Value::String(s) => Ok(Prompt::Text(s)),
        Value::Array(items) => match items.first() {
            None => Err(bad("Prompt cannot be empty")),
            Some(Value::Number(_)) => Ok(Prompt::Ids(ids(&items)?)),
            Some(Value::String(_)) | Some(Value::Array(_)) if items.len() > 1 => {
                Err(bad(&format!(
                    "the simulator serves one prompt per request (got a batch of {})",
                    items.len()
                )))
            }
            Some(Value::String(s)) => Ok(Prompt::Text(s.clone())),
            Some(Value::Array(inner)) => Ok(Prompt::Ids(ids(inner)?)),
            Some(_) => Err(bad(
                "prompt must be a string, a list of token ids, or a list of those",
            )),
        },
        _ => Err(bad(
            "prompt must be a string, a list of token ids, or a list of those",
        )),
    }
}

/// 64-bit FNV-1a step over `bytes`, starting from `h`.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Chained hashes of the full 16-token blocks of a token-id prompt: block k's hash
/// covers blocks 0..=k, so equal prefixes give equal leading hashes.
pub fn block_hashes_ids(ids: &[u64]) -> Vec<u64> {
    let mut prev = FNV_OFFSET;
    ids.chunks_exact(BLOCK_TOKENS)
        .map(|block| {
            let mut h = fnv1a(FNV_OFFSET, &prev.to_le_bytes());
            for id in block {
                h = fnv1a(h, &(*id as u32).to_le_bytes());
            }
            prev = h;
            h
        })
        .collect()
}

/// Block hashes of a text prompt: 64-byte blocks (16 tokens × 4 characters).
pub fn block_hashes_text(text: &str) -> Vec<u64> {
    let mut prev = FNV_OFFSET;
    text.as_bytes()
        .chunks_exact(BLOCK_TOKENS * CHARS_PER_TOKEN)
        .map(|block| {
            let h = fnv1a(fnv1a(FNV_OFFSET ^ 1, &prev.to_le_bytes()), block);
            prev = h;
            h
        })
        .collect()
}

/// Approximate token count of a text prompt: `ceil(chars / 4)`.
pub fn text_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(CHARS_PER_TOKEN as u64)
}

/// Parse and validate a request body like vLLM does (errors carry vLLM's status and
/// message), and apply the silent output clamp.
pub fn parse_completion(body: &[u8], model: &ModelInfo) -> Result<CompletionRequest, ApiError> {
    let raw: RawRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON request body: {e}"), None))?;
    if let Some(m) = &raw.model {
        if m != &model.served_model_name {
            return Err(ApiError::not_found(format!(
                "The model `{m}` does not exist."
            )));
        }
    }
    if let Some(n) = raw.n {
        if n != 1 {
            return Err(ApiError::bad_request(
                format!("n = {n} is not supported by the simulator (only n = 1)"),
                Some("n"),
            ));
        }
    }
    let (prompt_tokens, block_hashes, text_seed) = match parse_prompt(raw.prompt)? {
        Prompt::Ids(ids) => {
            if let Some(bad) = ids.iter().find(|&&i| i >= VOCAB_SIZE) {
                return Err(ApiError::bad_request(
                    format!("Token id {bad} is out of vocabulary"),
                    Some("prompt"),
                ));
            }
            let seed = ids
                .iter()
                .fold(FNV_OFFSET, |h, id| fnv1a(h, &(*id as u32).to_le_bytes()));
            (ids.len() as u64, block_hashes_ids(&ids), seed)
        }
        Prompt::Text(text) => (
            text_tokens(&text),
            block_hashes_text(&text),
            fnv1a(FNV_OFFSET ^ 2, text.as_bytes()),
        ),
    };
    if prompt_tokens == 0 {
        return Err(ApiError::bad_request(
            "Prompt cannot be empty",
            Some("prompt"),
        ));
    }
    let max_len = u64::from(model.max_model_len);
    if prompt_tokens >= max_len {
        return Err(ApiError::bad_request(
            format!(
                "This model's maximum context length is {max_len} tokens. However, your prompt \
                 contains {prompt_tokens} input tokens, which leaves no room for output tokens. \
                 Please reduce the length of the prompt."
            ),
            Some("input_tokens"),
        ));
    }
    let requested = match raw.max_tokens {
        None => u64::from(DEFAULT_MAX_TOKENS),
        Some(m) if m < 1 => {
            return Err(ApiError::bad_request(
                format!("max_tokens must be at least 1, got {m}."),
                Some("max_tokens"),
            ))
        }
        Some(m) => m as u64,
    };
    // Silent clamp, as vLLM: prompt + output never exceeds the context.
    let max_tokens = requested.min(max_len - prompt_tokens);
    let opts = raw.stream_options.unwrap_or_default();
    Ok(CompletionRequest {
        prompt_tokens: prompt_tokens as u32,
        block_hashes,
        max_tokens: max_tokens as u32,
        stream: raw.stream.unwrap_or(false),
        include_usage: opts.include_usage.unwrap_or(false),
        continuous_usage_stats: opts.continuous_usage_stats.unwrap_or(false),
        return_token_ids: raw.return_token_ids.unwrap_or(false),
        text_seed,
    })
}

/// Words of the generated text (one per output token).
const WORDS: [&str; 32] = [
    " the", " of", " and", " to", " in", " a", " is", " that", " for", " it", " as", " with",
    " was", " on", " be", " by", " this", " are", " from", " or", " at", " an", " which", " not",
    " have", " but", " they", " one", " all", " we", " can", " more",
];
/// Fake token ids matching [`WORDS`] (reported with `return_token_ids`).
const WORD_IDS: [u32; 32] = [
    290, 328, 326, 316, 306, 261, 382, 484, 395, 480, 472, 483, 673, 402, 413, 656, 495, 553, 591,
    503, 540, 448, 1118, 625, 679, 889, 1023, 1001, 722, 581, 665, 945,
];

/// SplitMix64 finaliser: a well-mixed 64-bit hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// How the text of one response is generated: output token `k` is a word picked by a hash
/// of the prompt and `k`. With `corrupt_kv` (the `corrupt-kv` fault of a PD deployment),
/// tokens after the first (those decode computes from the transferred KV) ignore the
/// prompt, as if the KV had arrived zeroed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextGen {
    pub seed: u64,
    pub corrupt_kv: bool,
}

impl TextGen {
    pub fn new(req: &CompletionRequest, corrupt_kv: bool) -> Self {
        TextGen {
            seed: req.text_seed,
            corrupt_kv,
        }
    }

    /// Index into the word list of output token `k`.
    pub fn word(&self, k: u32) -> usize {
        let seed = if self.corrupt_kv && k >= 1 {
            0
        } else {
            self.seed
        };
        (mix(seed ^ mix(u64::from(k))) % WORDS.len() as u64) as usize
    }

    /// Append the text of output tokens `from..to`.
    pub fn push_text(&self, out: &mut String, from: u32, to: u32) {
        for k in from..to {
            out.push_str(WORDS[self.word(k)]);
        }
    }

    /// The fake token id of output token `k`.
    pub fn token_id(&self, k: u32) -> u32 {
        WORD_IDS[self.word(k)]
    }
}

fn push_usage(out: &mut String, prompt: u32, completion: u32) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "{{\"prompt_tokens\":{prompt},\"total_tokens\":{},\"completion_tokens\":{completion}}}",
        u64::from(prompt) + u64::from(completion)
    );
}

/// Formats the SSE events of one streamed completion.
#[derive(Debug, Clone)]
pub struct ChunkFormatter {
    /// `{"id":"cmpl-…","object":"text_completion","created":…,"model":"…",`
    head: String,
    prompt_tokens: u32,
    continuous_usage: bool,
    token_ids: bool,
    text: TextGen,
}

impl ChunkFormatter {
    pub fn new(
        request_id: &str,
        created: u64,
        model: &str,
        req: &CompletionRequest,
        text: TextGen,
    ) -> Self {
        let model_json = serde_json::Value::from(model).to_string();
        ChunkFormatter {
            head: format!(
                "{{\"id\":\"{request_id}\",\"object\":\"text_completion\",\"created\":{created},\"model\":{model_json},"
            ),
            prompt_tokens: req.prompt_tokens,
            continuous_usage: req.continuous_usage_stats,
            token_ids: req.return_token_ids,
            text,
        }
    }

    /// One `data: {...}\n\n` event carrying output tokens `from..to`; `last` sets
    /// `finish_reason: "length"`.
    pub fn push_tokens(&self, out: &mut String, from: u32, to: u32, last: bool) {
        out.push_str("data: ");
        out.push_str(&self.head);
        out.push_str("\"choices\":[{\"index\":0,\"text\":\"");
        self.text.push_text(out, from, to);
        out.push_str("\",\"logprobs\":null,\"finish_reason\":");
        out.push_str(if last { "\"length\"" } else { "null" });
        out.push_str(",\"stop_reason\":null");
        if self.token_ids {
            out.push_str(",\"token_ids\":[");
            for k in from..to {
                if k > from {
                    out.push(',');
                }
                out.push_str(&self.text.token_id(k).to_string());
            }
            out.push(']');
        }
        out.push_str("}],\"usage\":");
        if self.continuous_usage {
            push_usage(out, self.prompt_tokens, to);
        } else {
            out.push_str("null");
        }
        out.push_str("}\n\n");
    }

    /// The final usage event (`"choices": []`).
    pub fn push_usage_event(&self, out: &mut String, completion: u32) {
        out.push_str("data: ");
        out.push_str(&self.head);
        out.push_str("\"choices\":[],\"usage\":");
        push_usage(out, self.prompt_tokens, completion);
        out.push_str("}\n\n");
    }

    /// An error inside a stream (the engine failed the request).
    pub fn push_error_event(&self, out: &mut String, err: &ApiError) {
        out.push_str("data: ");
        out.push_str(&err.body());
        out.push_str("\n\n");
    }

    pub fn push_done(out: &mut String) {
        out.push_str("data: [DONE]\n\n");
    }
}

/// The non-streaming response body.
pub fn completion_response(
    request_id: &str,
    created: u64,
    model: &str,
    prompt_tokens: u32,
    completion_tokens: u32,
    gen: TextGen,
) -> String {
    let mut text = String::new();
    gen.push_text(&mut text, 0, completion_tokens);
    serde_json::json!({
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "text": text,
            "logprobs": null,
            "finish_reason": "length",
            "stop_reason": null,
            "prompt_logprobs": null,
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "total_tokens": u64::from(prompt_tokens) + u64::from(completion_tokens),
            "completion_tokens": completion_tokens,
            "prompt_tokens_details": null,
        },
        "kv_transfer_params": null,
    })
    .to_string()
}

/// `GET /v1/models` in vLLM's shape.
pub fn models_response(model: &ModelInfo, model_source: &str, created: u64) -> String {
    serde_json::json!({
        "object": "list",
        "data": [{
            "id": model.served_model_name,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": model_source,
            "parent": null,
            "max_model_len": model.max_model_len,
            "permission": [{
                "id": format!("modelperm-{created:x}"),
                "object": "model_permission",
                "created": created,
                "allow_create_engine": false,
                "allow_sampling": true,
                "allow_logprobs": true,
                "allow_search_indices": false,
                "allow_view": true,
                "allow_fine_tuning": false,
                "organization": "*",
                "group": null,
                "is_blocking": false,
            }],
        }],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ModelInfo {
        ModelInfo {
            served_model_name: "gptoss".into(),
            max_model_len: 100,
        }
    }

    fn parse(v: serde_json::Value) -> Result<CompletionRequest, ApiError> {
        parse_completion(v.to_string().as_bytes(), &info())
    }

    #[test]
    fn ids_text_defaults_and_clamp() {
        let r = parse(serde_json::json!({"model": "gptoss", "prompt": [1, 2, 3]})).unwrap();
        assert_eq!(
            (r.prompt_tokens, r.max_tokens, r.stream),
            (3, DEFAULT_MAX_TOKENS, false)
        );
        let r = parse(serde_json::json!({"prompt": "abcdefghi", "max_tokens": 5})).unwrap();
        assert_eq!((r.prompt_tokens, r.max_tokens), (3, 5));
        let r = parse(
            serde_json::json!({"prompt": vec![7; 90], "max_tokens": 50, "stream": true,
            "stream_options": {"include_usage": true, "continuous_usage_stats": true}}),
        )
        .unwrap();
        assert_eq!(
            (r.prompt_tokens, r.max_tokens),
            (90, 10),
            "clamped to the context"
        );
        assert!(r.stream && r.include_usage && r.continuous_usage_stats);
        let r = parse(serde_json::json!({"prompt": [[5, 6]]})).unwrap();
        assert_eq!(r.prompt_tokens, 2);
    }

    #[test]
    fn errors_like_vllm() {
        let e = parse(serde_json::json!({"prompt": vec![1; 100]})).unwrap_err();
        assert_eq!(
            (e.status, e.kind, e.param),
            (400, "BadRequestError", Some("input_tokens"))
        );
        assert!(e.message.starts_with(
            "This model's maximum context length is 100 tokens. However, your prompt contains 100 input tokens"
        ));
        let e = parse(serde_json::json!({"model": "x", "prompt": [1]})).unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (404, "The model `x` does not exist.")
        );
        let e = parse(serde_json::json!({"prompt": [201088]})).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("out of vocabulary"));
        assert!(parse(serde_json::json!({"prompt": [201087]})).is_ok());
        assert_eq!(
            parse_completion(b"{not json", &info()).unwrap_err().status,
            400
        );
        assert_eq!(
            parse(serde_json::json!({"prompt": []})).unwrap_err().status,
            400
        );
        assert_eq!(
            parse(serde_json::json!({"prompt": [1], "max_tokens": 0}))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse(serde_json::json!({"max_tokens": 3}))
                .unwrap_err()
                .status,
            400
        );
        let body: Value = serde_json::from_str(&ApiError::not_found("m").body()).unwrap();
        assert_eq!(body["error"]["code"], 404);
        assert_eq!(body["error"]["type"], "NotFoundError");
    }

    #[test]
    fn block_hashes_chain_full_blocks_only() {
        let a: Vec<u64> = (0..40).collect();
        let mut b = a.clone();
        b[20] = 999;
        let (ha, hb) = (block_hashes_ids(&a), block_hashes_ids(&b));
        assert_eq!(ha.len(), 2);
        assert_eq!(ha[0], hb[0], "same first block");
        assert_ne!(ha[1], hb[1]);
        let mut c = a.clone();
        c[0] = 5;
        assert_ne!(
            block_hashes_ids(&c)[1],
            ha[1],
            "chained: earlier block changes later hash"
        );
        assert_eq!(block_hashes_text(&"x".repeat(130)).len(), 2);
    }

    fn text_of(prompt: serde_json::Value, n: u32, corrupt: bool) -> String {
        let r = parse(serde_json::json!({"prompt": prompt})).unwrap();
        let mut s = String::new();
        TextGen::new(&r, corrupt).push_text(&mut s, 0, n);
        s
    }

    #[test]
    fn text_is_a_function_of_the_prompt() {
        let a = text_of(serde_json::json!("The capital of France is"), 24, false);
        assert_eq!(
            a,
            text_of(serde_json::json!("The capital of France is"), 24, false)
        );
        assert_eq!(a.split(' ').count(), 25, "one word per token");
        let b = text_of(serde_json::json!("The capital of Spain is"), 24, false);
        assert_ne!(a, b, "another prompt, another text");
        let ids = text_of(serde_json::json!([1, 2, 3]), 24, false);
        assert_ne!(ids, text_of(serde_json::json!([1, 2, 4]), 24, false));
        assert_eq!(ids, text_of(serde_json::json!([[1, 2, 3]]), 24, false));
        // More tokens extend the same text (a prefix, as greedy decoding).
        assert!(
            text_of(serde_json::json!("x"), 30, false).starts_with(&text_of(
                serde_json::json!("x"),
                10,
                false
            ))
        );
    }

    #[test]
    fn corrupt_kv_keeps_the_first_token_and_loses_the_prompt() {
        let (p, q) = (
            serde_json::json!("first prompt"),
            serde_json::json!("second prompt"),
        );
        let good = text_of(p.clone(), 16, false);
        let bad = text_of(p, 16, true);
        assert_ne!(good, bad);
        let first = |s: &str| s.split(' ').nth(1).unwrap().to_string();
        assert_eq!(first(&good), first(&bad), "prefill's token is right");
        let rest = |s: &str| s.split(' ').skip(2).collect::<Vec<_>>().join(" ");
        assert_eq!(
            rest(&bad),
            rest(&text_of(q, 16, true)),
            "decode ignores the prompt"
        );
    }

    #[test]
    fn chunk_shapes() {
        let req = parse(serde_json::json!({"prompt": [1, 2], "stream": true,
            "stream_options": {"include_usage": true, "continuous_usage_stats": true}, "return_token_ids": true}))
        .unwrap();
        let gen = TextGen::new(&req, false);
        let f = ChunkFormatter::new("cmpl-1", 7, "gptoss", &req, gen);
        let mut s = String::new();
        f.push_tokens(&mut s, 0, 2, true);
        let v: Value = serde_json::from_str(s.strip_prefix("data: ").unwrap().trim_end()).unwrap();
        let mut want = String::new();
        gen.push_text(&mut want, 0, 2);
        assert_eq!(v["choices"][0]["text"], want.as_str());
        assert_eq!(
            v["choices"][0]["token_ids"],
            serde_json::json!([gen.token_id(0), gen.token_id(1)])
        );
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["choices"][0]["token_ids"].as_array().unwrap().len(), 2);
        assert_eq!(v["usage"]["total_tokens"], 4);
        let mut s = String::new();
        f.push_usage_event(&mut s, 2);
        let v: Value = serde_json::from_str(s.strip_prefix("data: ").unwrap().trim_end()).unwrap();
        assert_eq!(v["choices"].as_array().unwrap().len(), 0);
        assert_eq!(v["usage"]["completion_tokens"], 2);
    }
}
