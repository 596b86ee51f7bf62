//! Datasets like `vllm bench serve`'s (spec E), all from local files or generated:
//!
//! * run-bm's own workload (no `--dataset-name`): ITL-token prompts, OTL output tokens,
//!   `--mode` deciding what is shared (the seed's `prefix_repetition` call);
//! * `prefix_repetition`: `--prefix-repetition-num-prefixes` shared prefixes of
//!   `--prefix-repetition-prefix-len` tokens, each request with its own suffix;
//! * `random`: per-request lengths drawn from `[⌊L·(1−r)⌋, ⌈L·(1+r)⌉]`, a shared
//!   `--random-prefix-len` prefix and a run of consecutive vocabulary ids per request;
//! * `sharegpt`: a ShareGPT JSON file (first two turns of each conversation);
//! * `custom`: a JSONL file of `{"prompt": …, "output_tokens": …}` lines.
//!
//! Without a tokenizer the synthetic datasets are token-id prompts generated when sent
//! ([`crate::prompt`]). With `--tokenizer` every prompt is text made decode-stable before
//! the run (spec E.3: decode, re-encode, pad or cut, at most 10 rounds) so that it encodes
//! to exactly the asked number of tokens; the exact counts are kept per sample and
//! recorded. Text prompts are drawn from the tokenizer's self-contained tokens
//! ([`Tokenizer::stable_ids`]) so the round trip converges. Special tokens never appear
//! in a generated prompt.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::tokenizer::{Tokenizer, TokenizerError};

/// `--dataset-name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DatasetName {
    /// Random token runs with per-request lengths (vLLM's `random`).
    Random,
    /// Shared prefixes + unique suffixes (vLLM's `prefix_repetition`; what run_bm.sh uses).
    #[value(name = "prefix_repetition", alias = "prefix-repetition")]
    PrefixRepetition,
    /// A ShareGPT JSON file (--dataset-path).
    Sharegpt,
    /// A JSONL file of {"prompt": …, "output_tokens": …} lines (--dataset-path).
    Custom,
}

impl DatasetName {
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Random => "random",
            DatasetName::PrefixRepetition => "prefix_repetition",
            DatasetName::Sharegpt => "sharegpt",
            DatasetName::Custom => "custom",
        }
    }
}

/// Dataset errors (all usage errors: nothing was sent).
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("--dataset-name {0} needs --dataset-path <FILE>")]
    NoPath(&'static str),
    #[error("--dataset-name {0} generates its prompts; --dataset-path is for sharegpt and custom")]
    PathNotUsed(&'static str),
    #[error(
        "--dataset-name {0} needs --tokenizer <PATH|HF-id> to count the tokens of its prompts"
    )]
    NeedsTokenizer(&'static str),
    #[error("cannot read the dataset {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("invalid dataset option: {0}")]
    Invalid(String),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// How the synthetic prompts are shaped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `num_prefixes` shared prefixes of `prefix_len` tokens, then `suffix_len` unique
    /// tokens; `output_len` tokens asked.
    PrefixRepetition {
        prefix_len: u32,
        suffix_len: u32,
        num_prefixes: u32,
        output_len: u32,
    },
    /// Per-request lengths uniform in `[input_lo, input_hi]` / `[output_lo, output_hi]`
    /// after a shared `prefix_len`-token prefix; the body is a run of consecutive ids.
    Random {
        prefix_len: u32,
        input_lo: u32,
        input_hi: u32,
        output_lo: u32,
        output_hi: u32,
    },
}

impl Shape {
    /// vLLM's random dataset bounds (spec E.2): `real = max(0, L − special)`,
    /// input in `[⌊real·(1−r)⌋, ⌈real·(1+r)⌉]`, output in `[max(1, ⌊O·(1−r)⌋), max(1, ⌈O·(1+r)⌉)]`.
    pub fn random(
        input_len: u32,
        output_len: u32,
        range_ratio: f64,
        prefix_len: u32,
        special_to_add: u32,
    ) -> Result<Shape, DatasetError> {
        if !(0.0..1.0).contains(&range_ratio) {
            return Err(DatasetError::Invalid(format!(
                "--random-range-ratio {range_ratio} must be in [0, 1)"
            )));
        }
        let real = f64::from(input_len.saturating_sub(special_to_add));
        let o = f64::from(output_len);
        let input_lo = (real * (1.0 - range_ratio)).floor() as u32;
        if prefix_len + input_lo < 1 {
            return Err(DatasetError::Invalid(format!(
                "--random-input-len {input_len} is too small: with {special_to_add} special token(s) and range ratio {range_ratio} a prompt could be empty"
            )));
        }
        Ok(Shape::Random {
            prefix_len,
            input_lo,
            input_hi: (real * (1.0 + range_ratio)).ceil() as u32,
            output_lo: ((o * (1.0 - range_ratio)).floor() as u32).max(1),
            output_hi: ((o * (1.0 + range_ratio)).ceil() as u32).max(1),
        })
    }

    /// (prompt tokens, output tokens) of request `index`, and the request's RNG after
    /// drawing them (the same draws as when the prompt is built).
    pub fn lengths(&self, seed: u64, index: u64) -> (u32, u32, StdRng) {
        let mut rng = request_rng(seed, index);
        match *self {
            Shape::PrefixRepetition {
                prefix_len,
                suffix_len,
                output_len,
                ..
            } => (prefix_len + suffix_len, output_len, rng),
            Shape::Random {
                prefix_len,
                input_lo,
                input_hi,
                output_lo,
                output_hi,
            } => {
                let i = rng.gen_range(input_lo..=input_hi);
                let o = rng.gen_range(output_lo..=output_hi);
                (prefix_len + i, o, rng)
            }
        }
    }

    /// Nominal (input, output) lengths (for the result directory name).
    pub fn nominal(&self) -> (u32, u32) {
        match *self {
            Shape::PrefixRepetition {
                prefix_len,
                suffix_len,
                output_len,
                ..
            } => (prefix_len + suffix_len, output_len),
            Shape::Random {
                prefix_len,
                input_lo,
                input_hi,
                output_lo,
                output_hi,
            } => (
                prefix_len + (input_lo + input_hi) / 2,
                (output_lo + output_hi) / 2,
            ),
        }
    }
}

/// The per-request RNG: a SplitMix-style mix of (seed, stream), so prompts do not depend
/// on the order they are built in and neighbouring indices get unrelated streams.
pub fn request_rng(seed: u64, stream: u64) -> StdRng {
    let mut z = seed
        .wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

/// Stream of prefix group `g` (group 0 is the stream run-bm always used for its shared
/// decode-only prefix).
pub fn prefix_stream(g: u32) -> u64 {
    u64::MAX - u64::from(g)
}

/// The token ids of a synthetic prompt, from `vocab` (`vocab[i]` is the i-th usable id).
pub trait Vocab {
    fn len(&self) -> usize;
    fn id(&self, i: usize) -> u32;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A uniform draw (as a `u32` range, the draws run-bm always made).
    fn random(&self, rng: &mut StdRng) -> u32 {
        let n = u32::try_from(self.len()).unwrap_or(u32::MAX).max(1);
        self.id(rng.gen_range(0..n) as usize)
    }
}

/// `[0, n)`.
pub struct Range(pub u32);

impl Vocab for Range {
    fn len(&self) -> usize {
        self.0 as usize
    }
    fn id(&self, i: usize) -> u32 {
        i as u32
    }
}

/// An explicit list of usable ids (a tokenizer's non-special ids).
pub struct Allowed<'a>(pub &'a [u32]);

impl Vocab for Allowed<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn id(&self, i: usize) -> u32 {
        self.0[i]
    }
}

/// The shared prefix of group `g`.
pub fn prefix_ids(vocab: &dyn Vocab, seed: u64, g: u32, len: u32) -> Vec<u32> {
    let mut rng = request_rng(seed, prefix_stream(g));
    (0..len).map(|_| vocab.random(&mut rng)).collect()
}

/// The prompt ids of request `index` (prefix included) and its output length.
pub fn request_ids(
    shape: &Shape,
    vocab: &dyn Vocab,
    prefixes: &[Vec<u32>],
    seed: u64,
    index: u64,
) -> (Vec<u32>, u32) {
    let (len, out, mut rng) = shape.lengths(seed, index);
    let mut ids = Vec::with_capacity(len as usize);
    match *shape {
        Shape::PrefixRepetition {
            suffix_len,
            num_prefixes,
            ..
        } => {
            let g = (index % u64::from(num_prefixes.max(1))) as usize;
            if let Some(p) = prefixes.get(g) {
                ids.extend_from_slice(p);
            }
            ids.extend((0..suffix_len).map(|_| vocab.random(&mut rng)));
        }
        Shape::Random { prefix_len, .. } => {
            if let Some(p) = prefixes.first() {
                ids.extend_from_slice(p);
            }
            let n = vocab.len().max(1);
            let offset = rng.gen_range(0..n);
            let body = len - prefix_len;
            ids.extend((0..body as usize).map(|k| vocab.id((offset + (index as usize) + k) % n)));
        }
    }
    (ids, out)
}

/// The prefixes a shape shares.
pub fn shape_prefixes(shape: &Shape, vocab: &dyn Vocab, seed: u64) -> Vec<Vec<u32>> {
    match *shape {
        Shape::PrefixRepetition {
            prefix_len,
            num_prefixes,
            ..
        } => (0..num_prefixes.max(1))
            .map(|g| prefix_ids(vocab, seed, g, prefix_len))
            .collect(),
        Shape::Random { prefix_len, .. } => vec![prefix_ids(vocab, seed, 0, prefix_len)],
    }
}

/// One prepared request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The text sent (`prompt`, or the chat message's content).
    pub prompt: String,
    /// Tokens the server prefills for it, as counted by the tokenizer (with the chat
    /// template for the chat endpoint, with special tokens for the file datasets).
    pub prompt_len: u64,
    /// `max_tokens`.
    pub output_len: u32,
}

/// Prepared samples: `main[i]` for request i, `warm` for warmup requests.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub main: Vec<Sample>,
    pub warm: Vec<Sample>,
    /// Prompts whose decode-stable length could not reach the target (exact counts are
    /// still recorded).
    pub mismatched: u64,
}

impl Table {
    /// The sample of request `index` (warmup indices are ≥ the main table's length).
    pub fn get(&self, index: u64) -> Option<&Sample> {
        match usize::try_from(index) {
            Ok(i) if i < self.main.len() => self.main.get(i),
            _ if !self.warm.is_empty() => self.warm.get((index % self.warm.len() as u64) as usize),
            _ if !self.main.is_empty() => self.main.get((index % self.main.len() as u64) as usize),
            _ => None,
        }
    }
}

/// Spec E.3: make `ids` decode-stable at `target` tokens. Returns the text, its ids
/// (`encode(text) == ids`) and `ids.len() − target` (0 unless the retries ran out).
pub fn decode_to_target_len(
    tok: &Tokenizer,
    mut ids: Vec<u32>,
    target: usize,
    rng: &mut StdRng,
) -> Result<(String, Vec<u32>, i64), TokenizerError> {
    let mut tries = 10;
    loop {
        let text = tok.decode(&ids)?;
        ids = tok.encode(&text, false)?;
        if ids.len() == target {
            return Ok((text, ids, 0));
        }
        if tries == 0 {
            let mismatch = ids.len() as i64 - target as i64;
            return Ok((text, ids, mismatch));
        }
        if ids.len() < target {
            let allowed = Allowed(tok.stable_ids());
            let missing = target - ids.len();
            ids.extend((0..missing).map(|_| allowed.random(rng)));
        } else {
            ids.truncate(target);
        }
        tries -= 1;
    }
}

/// How a chat endpoint changes what the server prefills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Completions,
    Chat,
}

/// Count the prompt as the server will: through the chat template for the chat endpoint
/// (when the tokenizer has one), else `encode(text, add_special)`.
pub fn server_prompt_len(
    tok: &Tokenizer,
    text: &str,
    endpoint: Endpoint,
    add_special: bool,
) -> Result<u64, TokenizerError> {
    if endpoint == Endpoint::Chat {
        if let Some(t) = tok.chat_template() {
            match t.render_user(text) {
                Ok(rendered) => return Ok(tok.encode(&rendered, false)?.len() as u64),
                Err(e) => tracing::warn!("chat template not applied when counting: {e}"),
            }
        }
    }
    Ok(tok.encode(text, add_special)?.len() as u64)
}

/// Build the text samples of a synthetic shape with a tokenizer: `n` main and `w` warmup
/// samples (warmups use request streams the main table never uses).
pub fn synthetic_table(
    shape: &Shape,
    tok: &Tokenizer,
    seed: u64,
    n: u64,
    w: u64,
    endpoint: Endpoint,
) -> Result<Table, TokenizerError> {
    let allowed = Allowed(tok.stable_ids());
    // Decode-stable shared prefixes (each on its own).
    let mut prefixes = shape_prefixes(shape, &allowed, seed);
    for (g, p) in prefixes.iter_mut().enumerate() {
        if p.is_empty() {
            continue;
        }
        let mut rng = request_rng(seed, prefix_stream(g as u32) ^ 0x5A5A);
        let target = p.len();
        *p = decode_to_target_len(tok, std::mem::take(p), target, &mut rng)?.1;
    }
    let indices: Vec<u64> = (0..n).chain((0..w).map(|k| WARM_STREAM_BASE + k)).collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = indices.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<(Sample, bool)>, TokenizerError>> = std::thread::scope(|s| {
        let handles: Vec<_> = indices
            .chunks(chunk)
            .map(|part| {
                let prefixes = &prefixes;
                s.spawn(move || {
                    part.iter()
                        .map(|&i| synthetic_sample(shape, tok, prefixes, seed, i, endpoint))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(TokenizerError::Use {
                        what: "build prompts",
                        reason: "a worker thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut table = Table::default();
    let mut all = Vec::with_capacity(indices.len());
    for r in results {
        all.extend(r?);
    }
    for (k, (sample, exact)) in all.into_iter().enumerate() {
        if !exact {
            table.mismatched += 1;
        }
        if (k as u64) < n {
            table.main.push(sample);
        } else {
            table.warm.push(sample);
        }
    }
    Ok(table)
}

/// Stream offset of warmup samples (never used by measured requests).
pub const WARM_STREAM_BASE: u64 = 1 << 40;

/// One text sample of request `index`: the prefix (already decode-stable) then a
/// decode-stable body; the whole prompt is re-counted, and the body redrawn (at most 4
/// times) when the junction changes the count.
fn synthetic_sample(
    shape: &Shape,
    tok: &Tokenizer,
    prefixes: &[Vec<u32>],
    seed: u64,
    index: u64,
    endpoint: Endpoint,
) -> Result<(Sample, bool), TokenizerError> {
    let allowed = Allowed(tok.stable_ids());
    let (ids, out) = request_ids(shape, &allowed, prefixes, seed, index);
    let (prefix, target_body) = match *shape {
        Shape::PrefixRepetition {
            num_prefixes,
            prefix_len,
            ..
        } => {
            let g = (index % u64::from(num_prefixes.max(1))) as usize;
            let p = prefixes.get(g).cloned().unwrap_or_default();
            let body = ids.len().saturating_sub(prefix_len as usize);
            (p, body)
        }
        Shape::Random { prefix_len, .. } => {
            let p = prefixes.first().cloned().unwrap_or_default();
            let body = ids.len().saturating_sub(prefix_len as usize);
            (p, body)
        }
    };
    let target = prefix.len() + target_body;
    let mut body: Vec<u32> = ids[ids.len() - target_body..].to_vec();
    let mut rng = request_rng(seed, index ^ 0xA5A5_A5A5);
    let mut best: Option<(String, u64)> = None;
    for attempt in 0..5 {
        if attempt > 0 {
            body = (0..target_body).map(|_| allowed.random(&mut rng)).collect();
        }
        let (_, stable, _) =
            decode_to_target_len(tok, std::mem::take(&mut body), target_body, &mut rng)?;
        body = stable;
        let mut all = prefix.clone();
        all.extend_from_slice(&body);
        let text = tok.decode(&all)?;
        let count = tok.encode(&text, false)?.len();
        let closer = best
            .as_ref()
            .is_none_or(|(_, c)| count.abs_diff(target) < (*c as usize).abs_diff(target));
        if closer {
            best = Some((text, count as u64));
        }
        if count == target {
            break;
        }
    }
    let (text, count) = best.unwrap_or_default();
    let exact = count as usize == target;
    let prompt_len = match endpoint {
        Endpoint::Completions => count,
        Endpoint::Chat => server_prompt_len(tok, &text, endpoint, false)?,
    };
    Ok((
        Sample {
            prompt: text,
            prompt_len,
            output_len: out,
        },
        exact,
    ))
}

/// vLLM's ShareGPT/… length filter (spec: `is_valid_sequence`).
pub fn is_valid_sequence(prompt_len: u64, output_len: u64, skip_min_output: bool) -> bool {
    let prompt_too_short = prompt_len < 4;
    let output_too_short = !skip_min_output && output_len < 4;
    let prompt_too_long = prompt_len > 1024;
    let combined_too_long = prompt_len + output_len > 2048;
    !(prompt_too_short || output_too_short || prompt_too_long || combined_too_long)
}

fn read_file(path: &Path) -> Result<Vec<u8>, DatasetError> {
    let mut f = std::fs::File::open(path).map_err(|e| DatasetError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(|e| DatasetError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(buf)
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Prompt/completion pairs of a ShareGPT file (entries with at least two turns).
pub fn read_sharegpt(path: &Path) -> Result<Vec<(String, String)>, DatasetError> {
    let bytes = read_file(path)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| DatasetError::Format {
        path: path.to_path_buf(),
        reason: format!("not valid JSON: {e}"),
    })?;
    let Value::Array(entries) = v else {
        return Err(DatasetError::Format {
            path: path.to_path_buf(),
            reason: "a ShareGPT file is a JSON list of {\"conversations\": [...]} entries".into(),
        });
    };
    let turn = |c: &Value| c.get("value").and_then(Value::as_str).map(str::to_string);
    Ok(entries
        .iter()
        .filter_map(|e| {
            let conv = e.get("conversations")?.as_array()?;
            if conv.len() < 2 {
                return None;
            }
            Some((turn(&conv[0])?, turn(&conv[1])?))
        })
        .collect())
}

/// Lines of a custom JSONL file: (prompt, output_tokens if given).
pub fn read_custom(path: &Path) -> Result<Vec<(String, Option<u32>)>, DatasetError> {
    let bytes = read_file(path)?;
    let mut rows = Vec::new();
    for (n, line) in bytes.lines().enumerate() {
        let line = line.map_err(|e| DatasetError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| DatasetError::Format {
            path: path.to_path_buf(),
            reason: format!("line {}: {reason}", n + 1),
        };
        let v: Value =
            serde_json::from_str(&line).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let prompt = v
            .get("prompt")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no \"prompt\" string".into()))?;
        let out = match v.get("output_tokens") {
            None | Some(Value::Null) => None,
            Some(o) => Some(
                o.as_u64()
                    .filter(|&x| x >= 1)
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "\"output_tokens\" must be a whole number ≥ 1, got {o}"
                        ))
                    })?,
            ),
        };
        rows.push((prompt.to_string(), out));
    }
    if rows.is_empty() {
        return Err(DatasetError::Format {
            path: path.to_path_buf(),
            reason: "no prompts".into(),
        });
    }
    Ok(rows)
}

/// Options of the file datasets.
#[derive(Debug, Clone)]
pub struct FileOptions {
    pub seed: u64,
    pub shuffle: bool,
    /// `--sharegpt-output-len` / `--custom-output-len` (None: from the data).
    pub output_len: Option<u32>,
    /// Apply the chat template to custom prompts (vLLM's default for `custom` on the
    /// completions endpoint).
    pub apply_chat_template: bool,
    pub endpoint: Endpoint,
}

/// Default `--custom-output-len` (vLLM).
pub const DEFAULT_CUSTOM_OUTPUT_LEN: u32 = 256;

/// Build `n + w` samples from file rows, in the (seeded) shuffled order; rows are reused
/// (seeded draws with replacement, as vLLM oversamples) when the file has fewer.
pub fn file_table(
    name: DatasetName,
    path: &Path,
    tok: &Tokenizer,
    opts: &FileOptions,
    n: u64,
    w: u64,
) -> Result<Table, DatasetError> {
    let mut rng = request_rng(opts.seed, u64::MAX - 1_000_000);
    let mut samples: Vec<Sample> = Vec::new();
    let want = (n + w) as usize;
    match name {
        DatasetName::Sharegpt => {
            let mut rows = read_sharegpt(path)?;
            if opts.shuffle {
                rows.shuffle(&mut rng);
            }
            for (prompt, completion) in rows {
                if samples.len() >= want {
                    break;
                }
                let prompt_len = tok.encode(&prompt, true)?.len() as u64;
                let out = match opts.output_len {
                    Some(o) => u64::from(o),
                    None => tok.encode(&completion, true)?.len() as u64,
                };
                if !is_valid_sequence(prompt_len, out, opts.output_len.is_some()) {
                    continue;
                }
                let prompt_len = match opts.endpoint {
                    Endpoint::Completions => prompt_len,
                    Endpoint::Chat => server_prompt_len(tok, &prompt, Endpoint::Chat, false)?,
                };
                samples.push(Sample {
                    prompt,
                    prompt_len,
                    output_len: u32::try_from(out).unwrap_or(u32::MAX).max(1),
                });
            }
        }
        DatasetName::Custom => {
            let mut rows = read_custom(path)?;
            if opts.shuffle {
                rows.shuffle(&mut rng);
            }
            let template = if opts.apply_chat_template && opts.endpoint == Endpoint::Completions {
                if tok.chat_template().is_none() {
                    tracing::warn!(
                        "the tokenizer has no chat template; custom prompts are sent as they are (--custom-skip-chat-template silences this)"
                    );
                }
                tok.chat_template()
            } else {
                None
            };
            for (prompt, out) in rows.into_iter().take(want) {
                let prompt = match template {
                    Some(t) => t.render_user(&prompt).map_err(|e| DatasetError::Format {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                    })?,
                    None => prompt,
                };
                let prompt_len = match opts.endpoint {
                    Endpoint::Completions => tok.encode(&prompt, true)?.len() as u64,
                    Endpoint::Chat => server_prompt_len(tok, &prompt, Endpoint::Chat, false)?,
                };
                samples.push(Sample {
                    prompt,
                    prompt_len,
                    output_len: out.or(opts.output_len).unwrap_or(DEFAULT_CUSTOM_OUTPUT_LEN),
                });
            }
        }
        DatasetName::Random | DatasetName::PrefixRepetition => {
            return Err(DatasetError::PathNotUsed(name.as_str()))
        }
    }
    if samples.is_empty() {
        return Err(DatasetError::Format {
            path: path.to_path_buf(),
            reason: "no usable entries (ShareGPT keeps conversations of ≥ 2 turns with 4–1024 prompt tokens and ≤ 2048 tokens in all)".into(),
        });
    }
    let have = samples.len();
    while samples.len() < want {
        let pick = rng.gen_range(0..have);
        samples.push(samples[pick].clone());
    }
    let warm = samples.split_off(n as usize);
    Ok(Table {
        main: samples,
        warm,
        mismatched: 0,
    })
}

/// What the result and the manifest record about the dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRecord {
    pub name: String,
    pub path: Option<PathBuf>,
    pub sha256: Option<String>,
    pub seed: u64,
    /// Shape of a synthetic dataset (lengths, prefixes).
    pub params: serde_json::Map<String, Value>,
    pub tokenizer: Option<String>,
    pub tokenizer_sha256: Option<String>,
    /// Prepared samples and their exact token counts (None: token ids made when sent).
    pub samples: Option<u64>,
    pub prompt_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub mismatched: u64,
}

impl DatasetRecord {
    pub fn to_json(&self) -> Value {
        let mut v = json!({"name": self.name, "seed": self.seed});
        let m = v.as_object_mut().expect("object literal");
        let mut put = |k: &str, x: Value| {
            if !x.is_null() {
                m.insert(k.to_string(), x);
            }
        };
        for (k, x) in &self.params {
            put(k, x.clone());
        }
        put(
            "path",
            self.path.as_ref().map(|p| p.display().to_string()).into(),
        );
        put("sha256", self.sha256.clone().into());
        put("tokenizer", self.tokenizer.clone().into());
        put("tokenizer_sha256", self.tokenizer_sha256.clone().into());
        put("samples", self.samples.into());
        put("prompt_tokens", self.prompt_tokens.into());
        put("output_tokens", self.output_tokens.into());
        if self.mismatched > 0 {
            put("length_mismatches", self.mismatched.into());
        }
        v
    }
}

/// A loaded tokenizer, shared.
pub type SharedTokenizer = Arc<Tokenizer>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bounds_follow_vllm() {
        let s = Shape::random(1024, 128, 0.5, 10, 1).unwrap();
        assert_eq!(
            s,
            Shape::Random {
                prefix_len: 10,
                input_lo: 511,
                input_hi: 1535,
                output_lo: 64,
                output_hi: 192
            }
        );
        let s = Shape::random(100, 1, 0.9, 0, 0).unwrap();
        assert!(matches!(
            s,
            Shape::Random {
                output_lo: 1,
                output_hi: 2,
                input_lo: 9,
                input_hi: 190,
                ..
            }
        ));
        assert!(Shape::random(10, 10, 1.0, 0, 0).is_err());
        assert!(Shape::random(1, 10, 0.0, 0, 1).is_err());
        for i in 0..200 {
            let (l, o, _) = s.lengths(7, i);
            assert!((9..=190).contains(&l) && (1..=2).contains(&o));
        }
    }

    #[test]
    fn synthetic_ids_without_tokenizer() {
        let shape = Shape::PrefixRepetition {
            prefix_len: 5,
            suffix_len: 7,
            num_prefixes: 2,
            output_len: 3,
        };
        let v = Range(50);
        let pre = shape_prefixes(&shape, &v, 1);
        let (a, o) = request_ids(&shape, &v, &pre, 1, 0);
        let (b, _) = request_ids(&shape, &v, &pre, 1, 1);
        let (c, _) = request_ids(&shape, &v, &pre, 1, 2);
        assert_eq!((a.len(), o), (12, 3));
        assert_eq!(a[..5], c[..5]);
        assert_ne!(a[..5], b[..5]);
        assert_ne!(a[5..], c[5..]);
        assert!(a.iter().chain(&b).all(|&x| x < 50));
        // Random: consecutive runs through the vocabulary after the prefix.
        let shape = Shape::random(20, 4, 0.0, 3, 0).unwrap();
        let pre = shape_prefixes(&shape, &v, 1);
        let (ids, o) = request_ids(&shape, &v, &pre, 1, 4);
        assert_eq!((ids.len(), o), (23, 4));
        for w in ids[3..].windows(2) {
            assert_eq!(w[1], (w[0] + 1) % 50);
        }
        // Allowed-id vocabularies skip special ids.
        let list: Vec<u32> = (0..10).filter(|x| x % 3 != 0).collect();
        let allowed = Allowed(&list);
        let (ids, _) = request_ids(&shape, &allowed, &shape_prefixes(&shape, &allowed, 2), 2, 0);
        assert!(ids.iter().all(|x| x % 3 != 0));
    }

    #[test]
    fn file_formats() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sg.json");
        std::fs::write(
            &p,
            r#"[{"conversations":[{"from":"human","value":"a b"},{"from":"gpt","value":"c"}]},{"conversations":[{"value":"x"}]},{"id":1}]"#,
        )
        .unwrap();
        assert_eq!(
            read_sharegpt(&p).unwrap(),
            vec![("a b".to_string(), "c".to_string())]
        );
        std::fs::write(&p, r#"{"a":1}"#).unwrap();
        assert!(read_sharegpt(&p).is_err());
        let p = dir.path().join("c.jsonl");
        std::fs::write(
            &p,
            "{\"prompt\":\"hi\",\"output_tokens\":7}\n\n{\"prompt\":\"yo\"}\n",
        )
        .unwrap();
        assert_eq!(
            read_custom(&p).unwrap(),
            vec![("hi".to_string(), Some(7)), ("yo".to_string(), None)]
        );
        for bad in [
            "{\"x\":1}",
            "{\"prompt\":\"a\",\"output_tokens\":0}",
            "nope",
            "",
        ] {
            std::fs::write(&p, bad).unwrap();
            assert!(read_custom(&p).is_err(), "{bad}");
        }
        assert!(read_custom(&dir.path().join("missing.jsonl")).is_err());
        assert_eq!(
            sha256_file(&p).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn sequence_filter() {
        assert!(is_valid_sequence(4, 4, false));
        assert!(!is_valid_sequence(3, 10, false));
        assert!(!is_valid_sequence(10, 3, false));
        assert!(is_valid_sequence(10, 1, true));
        assert!(!is_valid_sequence(1025, 10, false));
        assert!(!is_valid_sequence(1000, 1049, false));
    }
}
