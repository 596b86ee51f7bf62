//! The model's tokenizer (`--tokenizer`): a Hugging Face `tokenizer.json` loaded with the
//! `tokenizers` crate, from a file, a directory, or a model id already in the local Hugging
//! Face cache. Nothing is downloaded.
//!
//! What run-bm takes from it (spec E.3's Python → Rust table):
//! * the vocabulary bound: `get_vocab_size(false)` (HF `vocab_size`, without added tokens);
//! * the special token ids (added tokens marked special), never used in prompts;
//! * `encode(text, add_special_tokens)` / `decode(ids, false)` for decode-stable prompts and
//!   for counting output tokens when the server sends no usage;
//! * the tokens the post-processor adds to one sequence (BOS…), as vLLM's random dataset
//!   subtracts them;
//! * the chat template of `tokenizer_config.json` (or `chat_template.jinja`), see
//!   [`crate::chat_template`].

use std::path::{Path, PathBuf};

use tokenizers::PostProcessor;

use crate::chat_template::ChatTemplate;

/// Why a tokenizer could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer '{0}' not found: it is not a file or a directory, and no snapshot with a tokenizer.json is in the local Hugging Face cache ({1}). run-bm never downloads: fetch it first (e.g. `huggingface-cli download {0} tokenizer.json tokenizer_config.json`) or pass the path of a directory holding tokenizer.json")]
    NotFound(String, String),
    #[error("{0} has no tokenizer.json (only fast tokenizers in the Hugging Face tokenizer.json format are supported)")]
    NoTokenizerJson(PathBuf),
    #[error("cannot load the tokenizer {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("the tokenizer {path} has an empty vocabulary")]
    EmptyVocab { path: PathBuf },
    #[error("the tokenizer failed to {what}: {reason}")]
    Use { what: &'static str, reason: String },
}

/// A loaded tokenizer.
#[derive(Debug)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// `--tokenizer` as given (written as the result's `tokenizer_id`).
    pub id: String,
    /// The `tokenizer.json` file read.
    pub file: PathBuf,
    vocab_size: u32,
    /// Sorted special token ids.
    special: Vec<u32>,
    /// Ids usable in prompts: `[0, vocab_size)` without the special ids.
    allowed: Vec<u32>,
    special_to_add: usize,
    chat_template: Option<ChatTemplate>,
    stable: std::sync::OnceLock<Vec<u32>>,
}

/// Most ids [`Tokenizer::stable_ids`] collects.
pub const STABLE_POOL: usize = 16_384;

impl Tokenizer {
    /// Load `spec`: a `tokenizer.json` file, a directory holding one, or a Hugging Face
    /// model id (`org/name`) whose snapshot is in the local cache.
    pub fn load(spec: &str) -> Result<Tokenizer, TokenizerError> {
        let file = resolve(spec)?;
        let inner = tokenizers::Tokenizer::from_file(&file).map_err(|e| TokenizerError::Load {
            path: file.clone(),
            reason: e.to_string(),
        })?;
        let vocab_size = u32::try_from(inner.get_vocab_size(false)).unwrap_or(u32::MAX);
        if vocab_size == 0 {
            return Err(TokenizerError::EmptyVocab { path: file });
        }
        let mut special: Vec<u32> = inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| *id)
            .collect();
        special.sort_unstable();
        special.dedup();
        let allowed: Vec<u32> = (0..vocab_size)
            .filter(|id| special.binary_search(id).is_err())
            .collect();
        if allowed.is_empty() {
            return Err(TokenizerError::EmptyVocab { path: file });
        }
        let special_to_add = inner
            .get_post_processor()
            .map(|p| p.added_tokens(false))
            .unwrap_or(0);
        let chat_template = file
            .parent()
            .and_then(|dir| ChatTemplate::find(dir).transpose())
            .and_then(|r| match r {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!("ignoring the chat template next to {}: {e}", file.display());
                    None
                }
            });
        Ok(Tokenizer {
            inner,
            id: spec.to_string(),
            file,
            vocab_size,
            special,
            allowed,
            special_to_add,
            chat_template,
            stable: std::sync::OnceLock::new(),
        })
    }

    /// HF `vocab_size`: the model vocabulary without added tokens.
    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    /// Special token ids (sorted).
    pub fn special_ids(&self) -> &[u32] {
        &self.special
    }

    /// Ids a prompt may use: `[0, vocab_size)` without special ids (ascending).
    pub fn allowed_ids(&self) -> &[u32] {
        &self.allowed
    }

    /// Non-special ids that are text on their own: `decode([t])` is valid, non-empty text
    /// (no U+FFFD) and encodes back to exactly `[t]` (at most [`STABLE_POOL`] of them, in
    /// id order; all non-special ids if none qualifies). Text prompts are drawn from them,
    /// so decoding never cuts a character in two and the decode/encode round trip of a
    /// prompt converges to the exact length.
    pub fn stable_ids(&self) -> &[u32] {
        self.stable.get_or_init(|| {
            let n = self.allowed.len();
            // A fixed pseudo-random scan order (a stride prime to n).
            let mut stride = 1_000_003usize % n.max(1);
            while stride == 0 || gcd(stride, n) != 1 {
                stride += 1;
            }
            let mut pool = Vec::new();
            for k in 0..n {
                if pool.len() >= STABLE_POOL {
                    break;
                }
                let id = self.allowed[(k * stride) % n];
                let ok = self.decode(&[id]).is_ok_and(|t| {
                    !t.is_empty()
                        && !t.contains('\u{FFFD}')
                        && self.encode(&t, false).is_ok_and(|ids| ids == [id])
                });
                if ok {
                    pool.push(id);
                }
            }
            if pool.is_empty() {
                pool = self.allowed.clone();
            }
            pool.sort_unstable();
            pool
        })
    }

    /// Tokens the post-processor adds around one sequence (e.g. 1 for a BOS).
    pub fn special_tokens_to_add(&self) -> usize {
        self.special_to_add
    }

    /// The chat template, if the tokenizer's directory has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// Token ids of `text`.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TokenizerError> {
        self.inner
            .encode(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| TokenizerError::Use {
                what: "encode",
                reason: e.to_string(),
            })
    }

    /// Text of `ids` (special tokens kept, as Python's `decode(ids)`).
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, false)
            .map_err(|e| TokenizerError::Use {
                what: "decode",
                reason: e.to_string(),
            })
    }

    /// Tokens of generated text (no special tokens added), as vLLM counts output when
    /// the server sends no usage.
    pub fn count(&self, text: &str) -> Result<u64, TokenizerError> {
        Ok(self.encode(text, false)?.len() as u64)
    }

    /// A SHA-256 of the tokenizer file (recorded in the manifest).
    pub fn file_sha256(&self) -> Option<String> {
        crate::dataset::sha256_file(&self.file).ok()
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The `tokenizer.json` that `spec` names.
pub fn resolve(spec: &str) -> Result<PathBuf, TokenizerError> {
    let p = Path::new(spec);
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    if p.is_dir() {
        let f = p.join("tokenizer.json");
        return if f.is_file() {
            Ok(f)
        } else {
            Err(TokenizerError::NoTokenizerJson(p.to_path_buf()))
        };
    }
    let cache = hf_hub_cache();
    if let Some(f) = find_in_cache(&cache, spec) {
        return Ok(f);
    }
    Err(TokenizerError::NotFound(
        spec.to_string(),
        cache.display().to_string(),
    ))
}

/// The local Hugging Face hub cache: `$HF_HUB_CACHE`, `$HF_HOME/hub`,
/// `$XDG_CACHE_HOME/huggingface/hub` or `~/.cache/huggingface/hub`.
pub fn hf_hub_cache() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = env("HF_HUB_CACHE").or_else(|| env("HUGGINGFACE_HUB_CACHE")) {
        return p;
    }
    if let Some(p) = env("HF_HOME") {
        return p.join("hub");
    }
    let base = env("XDG_CACHE_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("huggingface").join("hub")
}

/// `<cache>/models--org--name/snapshots/<rev>/tokenizer.json`: the revision of
/// `refs/main` when it has the file, else the newest snapshot that does.
pub fn find_in_cache(cache: &Path, model_id: &str) -> Option<PathBuf> {
    if model_id.is_empty() || model_id.contains("..") || model_id.starts_with('/') {
        return None;
    }
    let repo = cache.join(format!("models--{}", model_id.replace('/', "--")));
    let snapshots = repo.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs").join("main")) {
        let f = snapshots.join(rev.trim()).join("tokenizer.json");
        if f.is_file() {
            return Some(f);
        }
    }
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(&snapshots).ok()?.flatten() {
        let f = entry.path().join("tokenizer.json");
        if !f.is_file() {
            continue;
        }
        let t = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        if best.as_ref().is_none_or(|(bt, _)| t > *bt) {
            best = Some((t, f));
        }
    }
    best.map(|(_, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_layout() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("models--org--tiny");
        let snap = repo.join("snapshots").join("abc123");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(snap.join("tokenizer.json"), "{}").unwrap();
        assert_eq!(
            find_in_cache(dir.path(), "org/tiny"),
            Some(snap.join("tokenizer.json"))
        );
        // refs/main wins when it names a snapshot with the file.
        let other = repo.join("snapshots").join("def456");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("tokenizer.json"), "{}").unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), "abc123\n").unwrap();
        assert_eq!(
            find_in_cache(dir.path(), "org/tiny"),
            Some(snap.join("tokenizer.json"))
        );
        assert_eq!(find_in_cache(dir.path(), "org/other"), None);
        assert_eq!(find_in_cache(dir.path(), "../x"), None);
    }

    #[test]
    fn missing_tokenizers_are_explained() {
        let e = resolve("no-such-org/no-such-model-xyz").unwrap_err();
        assert!(matches!(e, TokenizerError::NotFound(..)), "{e}");
        assert!(e.to_string().contains("never downloads"));
        let dir = tempfile::tempdir().unwrap();
        let e = resolve(dir.path().to_str().unwrap()).unwrap_err();
        assert!(matches!(e, TokenizerError::NoTokenizerJson(_)), "{e}");
        let bad = dir.path().join("tokenizer.json");
        std::fs::write(&bad, "not json").unwrap();
        let e = Tokenizer::load(bad.to_str().unwrap()).unwrap_err();
        assert!(matches!(e, TokenizerError::Load { .. }), "{e}");
    }
}
