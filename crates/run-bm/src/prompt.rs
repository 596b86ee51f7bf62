//! What each request asks for: its prompt, its prompt length and its output length.
//!
//! By default a prompt is a list of token ids (vLLM accepts `prompt` as a list of
//! ints), drawn with a seeded RNG from `[0, vocab_size)`; the default vocabulary bound
//! 199998 is the non-special part of GPT-OSS's o200k_harmony vocabulary. Every request's
//! ids come from its own RNG seeded with (seed, index), so prompts do not depend on the
//! order requests are built in. In `decode-only` mode the whole prompt is one shared
//! prefix (the server's prefix cache absorbs prefill); otherwise each request is unique.
//! The datasets of [`crate::dataset`] generate their token ids the same way.
//!
//! With `--tokenizer` (or a file dataset) prompts are text prepared before the run, each
//! with its exact token count ([`crate::dataset::Table`]).
//!
//! `--prompt-format text` without a tokenizer is a fallback for servers that only take
//! text: a sequence of common English words that most BPE tokenizers map to one token each
//! (so the length is approximate; the result uses the server's `usage.prompt_tokens` when
//! reported).

use std::io::Write;
use std::sync::{Arc, OnceLock};

use pd_common::bench::RequestOutcome;
use pd_common::Workload;

use crate::dataset::{request_ids, shape_prefixes, Allowed, Range, Shape, Table};
use crate::request::{BodyOptions, BodyTemplate};
use crate::tokenizer::Tokenizer;

/// Default exclusive bound of prompt token ids (GPT-OSS: 199998 = `<|startoftext|>`).
pub const DEFAULT_VOCAB_SIZE: u32 = 199_998;

/// Words of the text fallback (one token each in common BPE vocabularies).
const WORDS: [&str; 64] = [
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at",
    "from", "his", "it", "an", "were", "are", "which", "this", "be", "or", "has", "had", "first",
    "one", "their", "its", "new", "after", "but", "who", "not", "they", "have", "her", "she",
    "two", "been", "other", "when", "there", "all", "during", "into", "school", "time", "may",
    "years", "more", "most", "only", "over", "city", "some", "world", "would", "where", "later",
    "up", "such", "used",
];

/// How prompts are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PromptFormat {
    /// A JSON list of token ids of exactly ITL tokens.
    #[default]
    TokenIds,
    /// Text: decode-stable text of exactly ITL tokens with --tokenizer, else words of
    /// about one token each.
    Text,
}

impl PromptFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            PromptFormat::TokenIds => "token-ids",
            PromptFormat::Text => "text",
        }
    }
}

/// Where prompts come from.
#[derive(Debug, Clone)]
enum Source {
    /// Token ids generated when a request is sent.
    Ids {
        shape: Shape,
        /// `None`: `[0, vocab_size)`; else a tokenizer's non-special ids.
        allowed: Option<Arc<Tokenizer>>,
        vocab_size: u32,
        prefixes: Arc<Vec<Vec<u32>>>,
    },
    /// Samples prepared before the run.
    Table(Arc<Table>),
}

/// Builds the prompt of each request.
#[derive(Debug, Clone)]
pub struct PromptGen {
    format: PromptFormat,
    seed: u64,
    source: Source,
    tokenizer: Option<Arc<Tokenizer>>,
    body: BodyOptions,
    template: Arc<OnceLock<(bool, BodyTemplate)>>,
}

impl PromptGen {
    /// run-bm's own workload: ITL tokens (shared in decode-only), OTL output tokens.
    pub fn new(workload: &Workload, format: PromptFormat, seed: u64, vocab_size: u32) -> Self {
        Self::from_shape(workload_shape(workload), format, seed, vocab_size, None)
    }

    /// Token-id prompts of `shape` from `[0, vocab_size)`, or from the tokenizer's
    /// non-special ids when `allowed` is given.
    pub fn from_shape(
        shape: Shape,
        format: PromptFormat,
        seed: u64,
        vocab_size: u32,
        allowed: Option<Arc<Tokenizer>>,
    ) -> Self {
        let vocab_size = vocab_size.max(1);
        let prefixes = match &allowed {
            Some(t) => shape_prefixes(&shape, &Allowed(t.allowed_ids()), seed),
            None => shape_prefixes(&shape, &Range(vocab_size), seed),
        };
        PromptGen {
            format,
            seed,
            tokenizer: allowed.clone(),
            source: Source::Ids {
                shape,
                allowed,
                vocab_size,
                prefixes: Arc::new(prefixes),
            },
            body: BodyOptions::default(),
            template: Arc::default(),
        }
    }

    /// Prepared text samples.
    pub fn table(table: Arc<Table>, seed: u64, tokenizer: Option<Arc<Tokenizer>>) -> Self {
        PromptGen {
            format: PromptFormat::Text,
            seed,
            source: Source::Table(table),
            tokenizer,
            body: BodyOptions::default(),
            template: Arc::default(),
        }
    }

    /// The same prompts with another body (endpoint, sampling, extra body).
    pub fn with_body(mut self, body: BodyOptions) -> Self {
        self.body = body;
        self.template = Arc::default();
        self
    }

    /// Count output tokens with this tokenizer when the server sends no usage.
    pub fn with_tokenizer(mut self, tokenizer: Option<Arc<Tokenizer>>) -> Self {
        if tokenizer.is_some() {
            self.tokenizer = tokenizer;
        }
        self
    }

    pub fn body_options(&self) -> &BodyOptions {
        &self.body
    }

    pub fn tokenizer(&self) -> Option<&Arc<Tokenizer>> {
        self.tokenizer.as_ref()
    }

    /// The body template (built once per run).
    pub fn body_template(&self, continuous_usage: bool) -> std::borrow::Cow<'_, BodyTemplate> {
        let (cu, t) = self.template.get_or_init(|| {
            (
                continuous_usage,
                BodyTemplate::new(&self.body, continuous_usage),
            )
        });
        if *cu == continuous_usage {
            std::borrow::Cow::Borrowed(t)
        } else {
            std::borrow::Cow::Owned(BodyTemplate::new(&self.body, continuous_usage))
        }
    }

    pub fn format(&self) -> PromptFormat {
        self.format
    }

    /// Nominal prompt length (tokens) of the workload; see [`Self::prompt_len`] for a
    /// request's own.
    pub fn len(&self) -> u64 {
        self.prompt_len(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Prompt tokens of request `index`, as the client knows them.
    pub fn prompt_len(&self, index: u64) -> u64 {
        match &self.source {
            Source::Ids { shape, .. } => u64::from(shape.lengths(self.seed, index).0),
            Source::Table(t) => t.get(index).map_or(0, |s| s.prompt_len),
        }
    }

    /// `max_tokens` of request `index`.
    pub fn output_len(&self, index: u64) -> u32 {
        match &self.source {
            Source::Ids { shape, .. } => shape.lengths(self.seed, index).1,
            Source::Table(t) => t.get(index).map_or(1, |s| s.output_len),
        }
    }

    /// Token ids of request `index` (empty for prepared text samples).
    pub fn ids_of(&self, index: u64) -> Vec<u32> {
        match &self.source {
            Source::Ids {
                shape,
                allowed,
                vocab_size,
                prefixes,
            } => match allowed {
                Some(t) => {
                    request_ids(shape, &Allowed(t.allowed_ids()), prefixes, self.seed, index).0
                }
                None => request_ids(shape, &Range(*vocab_size), prefixes, self.seed, index).0,
            },
            Source::Table(_) => vec![],
        }
    }

    /// Token ids of request `index` (kept name of the original API).
    pub fn ids(&self, index: u64) -> Vec<u32> {
        self.ids_of(index)
    }

    /// Write request `index`'s prompt as a JSON value (list of ids or string).
    pub fn write_json(&self, index: u64, out: &mut Vec<u8>) {
        match (&self.source, self.format) {
            (Source::Ids { .. }, PromptFormat::TokenIds) => {
                let ids = self.ids_of(index);
                out.push(b'[');
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let _ = write!(out, "{id}");
                }
                out.push(b']');
            }
            _ => self.write_text_json(index, out),
        }
    }

    /// Write request `index`'s prompt as a JSON string (for the chat endpoint).
    pub fn write_text_json(&self, index: u64, out: &mut Vec<u8>) {
        match &self.source {
            Source::Table(t) => {
                let text = t.get(index).map_or("", |s| s.prompt.as_str());
                out.extend_from_slice(
                    serde_json::to_string(text)
                        .unwrap_or_else(|_| "\"\"".into())
                        .as_bytes(),
                );
            }
            Source::Ids { allowed, .. } => {
                let ids = self.ids_of(index);
                if let Some(text) = allowed.as_ref().and_then(|t| t.decode(&ids).ok()) {
                    out.extend_from_slice(
                        serde_json::to_string(&text)
                            .unwrap_or_else(|_| "\"\"".into())
                            .as_bytes(),
                    );
                    return;
                }
                out.push(b'"');
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(WORDS[*id as usize % WORDS.len()].as_bytes());
                }
                out.push(b'"');
            }
        }
    }

    /// After a point: count the output tokens of successful requests whose server sent
    /// no usage with the tokenizer (vLLM's fallback), then drop the texts unless kept.
    pub fn count_output_tokens(&self, outcomes: &mut [RequestOutcome], keep_text: bool) {
        if let Some(tok) = &self.tokenizer {
            for o in outcomes.iter_mut() {
                if o.is_success() && o.output_tokens == 0 && !o.text.is_empty() {
                    match tok.count(&o.text) {
                        Ok(n) => o.output_tokens = n,
                        Err(e) => tracing::warn!("cannot count output tokens: {e}"),
                    }
                }
            }
        }
        if !keep_text {
            for o in outcomes.iter_mut() {
                o.text = String::new();
            }
        }
    }
}

/// run-bm's workload as a dataset shape: one prefix of the shared part, then the unique
/// part, `max_tokens` = OTL (1 in prefill-only).
pub fn workload_shape(workload: &Workload) -> Shape {
    Shape::PrefixRepetition {
        prefix_len: workload.shared_prefix_len(),
        suffix_len: workload.unique_suffix_len(),
        num_prefixes: 1,
        output_len: workload.output_len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pd_common::BenchMode;

    #[test]
    fn lengths_uniqueness_and_sharing() {
        let w = Workload::new(100, 10, BenchMode::Mixed).unwrap();
        let g = PromptGen::new(&w, PromptFormat::TokenIds, 0, DEFAULT_VOCAB_SIZE);
        let (a, b) = (g.ids(0), g.ids(1));
        assert_eq!((a.len(), b.len()), (100, 100));
        assert_ne!(a, b);
        assert_eq!(a, g.ids(0));
        assert!(a.iter().all(|&id| id < DEFAULT_VOCAB_SIZE));
        assert_eq!((g.prompt_len(3), g.output_len(3)), (100, 10));
        let w = Workload::new(100, 10, BenchMode::DecodeOnly).unwrap();
        let g = PromptGen::new(&w, PromptFormat::TokenIds, 0, 50);
        assert_eq!(g.ids(0), g.ids(5));
        assert!(g.ids(0).iter().all(|&id| id < 50));
        let w = Workload::new(100, 10, BenchMode::PrefillOnly).unwrap();
        let g = PromptGen::new(&w, PromptFormat::TokenIds, 0, 50);
        assert_eq!(g.output_len(0), 1);
    }

    /// The ids of run-bm's default workload never changed (same seed → same prompts as
    /// the first release), so reruns stay comparable.
    #[test]
    fn default_prompts_are_stable() {
        let w = Workload::new(6, 10, BenchMode::Mixed).unwrap();
        let g = PromptGen::new(&w, PromptFormat::TokenIds, 0, DEFAULT_VOCAB_SIZE);
        let mut rng = crate::dataset::request_rng(0, 3);
        let expect: Vec<u32> = (0..6)
            .map(|_| rand::Rng::gen_range(&mut rng, 0..DEFAULT_VOCAB_SIZE))
            .collect();
        assert_eq!(g.ids(3), expect);
        let w = Workload::new(4, 10, BenchMode::DecodeOnly).unwrap();
        let g = PromptGen::new(&w, PromptFormat::TokenIds, 9, 1000);
        let mut rng = crate::dataset::request_rng(9, u64::MAX);
        let expect: Vec<u32> = (0..4)
            .map(|_| rand::Rng::gen_range(&mut rng, 0..1000))
            .collect();
        assert_eq!(g.ids(7), expect);
    }

    #[test]
    fn json_forms() {
        let w = Workload::new(3, 1, BenchMode::PrefillOnly).unwrap();
        let g = PromptGen::new(&w, PromptFormat::TokenIds, 1, 10);
        let mut out = Vec::new();
        g.write_json(0, &mut out);
        let v: Vec<u32> = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, g.ids(0));
        let g = PromptGen::new(&w, PromptFormat::Text, 1, 10);
        let mut out = Vec::new();
        g.write_json(0, &mut out);
        let s: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(s.split(' ').count(), 3);
    }

    #[test]
    fn tables() {
        let t = Table {
            main: vec![crate::dataset::Sample {
                prompt: "a \"b\"".into(),
                prompt_len: 4,
                output_len: 9,
            }],
            warm: vec![crate::dataset::Sample {
                prompt: "w".into(),
                prompt_len: 1,
                output_len: 2,
            }],
            mismatched: 0,
        };
        let g = PromptGen::table(Arc::new(t), 0, None);
        assert_eq!((g.prompt_len(0), g.output_len(0)), (4, 9));
        assert_eq!((g.prompt_len(1 << 40), g.output_len(1 << 40)), (1, 2));
        let mut out = Vec::new();
        g.write_json(0, &mut out);
        assert_eq!(out, br#""a \"b\"""#);
    }
}
