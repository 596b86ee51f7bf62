//! Small tokenizers made inside the tests with the `tokenizers` crate (no network), saved
//! as `tokenizer.json` (+ `tokenizer_config.json` with a chat template) in a directory.

use std::path::{Path, PathBuf};

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

/// The chat template written next to the test tokenizers.
pub const CHAT_TEMPLATE: &str = "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}{% if add_generation_prompt %}<|assistant|> {% endif %}";

fn write_config(dir: &Path) {
    let config = serde_json::json!({
        "bos_token": "<s>",
        "eos_token": "</s>",
        "chat_template": CHAT_TEMPLATE,
    });
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
}

/// A word-level tokenizer: `<s>`, `</s>` (special, ids 0 and 1), `w0`…`w{n-1}` (ids
/// 2…n+1), the chat markers as normal words; whitespace-split, a BOS added to every
/// sequence. Decoding joins words with spaces, so every id sequence is decode-stable.
pub fn wordlevel(dir: &Path, n: u32) -> PathBuf {
    let mut vocab: Vec<(String, u32)> = vec![("<s>".into(), 0), ("</s>".into(), 1)];
    for i in 0..n {
        vocab.push((format!("w{i}"), i + 2));
    }
    for (k, m) in ["<|user|>", "<|end|>", "<|assistant|>", "[UNK]"]
        .iter()
        .enumerate()
    {
        vocab.push((m.to_string(), n + 2 + k as u32));
    }
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("[UNK]".into())
        .build()
        .unwrap();
    let mut tok = Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(WhitespaceSplit));
    tok.with_post_processor(Some(
        TemplateProcessing::builder()
            .try_single("<s> $A")
            .unwrap()
            .special_tokens(vec![("<s>", 0)])
            .build()
            .unwrap(),
    ));
    tok.add_special_tokens(&[
        AddedToken::from("<s>", true),
        AddedToken::from("</s>", true),
    ]);
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("tokenizer.json");
    tok.save(&path, false).unwrap();
    write_config(dir);
    path
}

/// A byte-level BPE trained on a little English text (about 300 tokens): decoding random
/// ids and encoding the text again often gives another length, which is what the
/// decode-stable prompt construction has to handle.
pub fn byte_bpe(dir: &Path) -> PathBuf {
    let text = "The quick brown fox jumps over the lazy dog. Prefill and decode \
                disaggregation splits the work of serving a language model between two \
                groups of GPUs. A benchmark sends prompts of a given length and measures \
                the time to the first token and the time per output token. Throughput, \
                latency and goodput are reported for every point of the sweep. 0123456789";
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::default()));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(320)
        .min_frequency(1)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .special_tokens(vec![
            AddedToken::from("<s>", true),
            AddedToken::from("</s>", true),
        ])
        .build()
        .into();
    let lines: Vec<String> = (0..20).map(|_| text.to_string()).collect();
    tok.train(&mut trainer, lines.into_iter()).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("tokenizer.json");
    tok.save(&path, false).unwrap();
    write_config(dir);
    path
}

/// Load a tokenizer written by the helpers.
pub fn load(path: &Path) -> Tokenizer {
    Tokenizer::from_file(path).unwrap()
}
