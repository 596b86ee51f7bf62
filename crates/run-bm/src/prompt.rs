//! Prompts of exactly the asked length.
//!
//! By default a prompt is a list of token ids (vLLM accepts `prompt` as a list of
//! ints), drawn with a seeded RNG from `[0, vocab_size)`; the default vocabulary bound
//! 199998 is the non-special part of GPT-OSS's o200k_harmony vocabulary. Every request's
//! ids come from its own RNG seeded with (seed, index), so prompts do not depend on the
//! order requests are built in. In `decode-only` mode the whole prompt is one shared
//! prefix (the server's prefix cache absorbs prefill); otherwise each request is unique.
//!
//! `--prompt-format text` is a fallback for servers that only take text: a sequence of
//! common English words that most BPE tokenizers map to one token each (so the length is
//! approximate; the result uses the server's `usage.prompt_tokens` when reported).

use std::io::Write;

use pd_common::Workload;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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
    /// Plain text of about ITL tokens.
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

/// Builds the prompt of each request.
#[derive(Debug, Clone)]
pub struct PromptGen {
    format: PromptFormat,
    seed: u64,
    vocab_size: u32,
    shared_prefix_len: u32,
    unique_len: u32,
    /// Drawn once for decode-only.
    shared_prefix: Vec<u32>,
}

fn request_rng(seed: u64, stream: u64) -> StdRng {
    // SplitMix-style mix so neighbouring indices get unrelated streams.
    let mut z = seed
        .wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

impl PromptGen {
    pub fn new(workload: &Workload, format: PromptFormat, seed: u64, vocab_size: u32) -> Self {
        let vocab_size = vocab_size.max(1);
        let shared_prefix_len = workload.shared_prefix_len();
        let mut rng = request_rng(seed, u64::MAX);
        let shared_prefix = (0..shared_prefix_len)
            .map(|_| rng.gen_range(0..vocab_size))
            .collect();
        PromptGen {
            format,
            seed,
            vocab_size,
            shared_prefix_len,
            unique_len: workload.unique_suffix_len(),
            shared_prefix,
        }
    }

    pub fn format(&self) -> PromptFormat {
        self.format
    }

    /// Prompt length the client asked for (tokens).
    pub fn len(&self) -> u64 {
        u64::from(self.shared_prefix_len) + u64::from(self.unique_len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Token ids of request `index`.
    pub fn ids(&self, index: u64) -> Vec<u32> {
        let mut rng = request_rng(self.seed, index);
        let mut ids = Vec::with_capacity(self.len() as usize);
        ids.extend_from_slice(&self.shared_prefix);
        ids.extend((0..self.unique_len).map(|_| rng.gen_range(0..self.vocab_size)));
        ids
    }

    /// Write request `index`'s prompt as a JSON value (list of ids or string).
    pub fn write_json(&self, index: u64, out: &mut Vec<u8>) {
        let ids = self.ids(index);
        match self.format {
            PromptFormat::TokenIds => {
                out.push(b'[');
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let _ = write!(out, "{id}");
                }
                out.push(b']');
            }
            PromptFormat::Text => {
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
        let w = Workload::new(100, 10, BenchMode::DecodeOnly).unwrap();
        let g = PromptGen::new(&w, PromptFormat::TokenIds, 0, 50);
        assert_eq!(g.ids(0), g.ids(5));
        assert!(g.ids(0).iter().all(|&id| id < 50));
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
}
