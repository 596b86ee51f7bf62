//! Any model, any dataset: `--tokenizer` (a tokenizer made in the test) gives text prompts
//! that encode to exactly the asked length, no special tokens, output counted by the
//! tokenizer when the server sends no usage, chat-template token counts; the random,
//! ShareGPT and custom datasets with their counts, file hash and seed recorded.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pd_common::{BenchResult, ExperimentManifest};
use pd_testkit::fake_openai::{FakeServer, GenSpec, Reply, RequestInfo};

use crate::common::{run_to_end_env, strs};
use crate::tok;

async fn server() -> FakeServer {
    let spec = GenSpec {
        ttft: Duration::from_millis(5),
        interval: Duration::from_millis(2),
        tokens: None,
        tokens_per_chunk: 1,
    };
    FakeServer::start(
        "fake",
        Arc::new(move |_: &RequestInfo| Reply::Generate(spec)),
        true,
    )
    .await
    .unwrap()
}

fn bodies(server: &FakeServer) -> Vec<serde_json::Value> {
    server.stats.bodies.lock().unwrap().clone()
}

fn result(path: &Path) -> (BenchResult, serde_json::Value) {
    let r = BenchResult::read(path).unwrap();
    let ds = r.pd_lab.as_ref().unwrap().other["dataset"].clone();
    (r, ds)
}

async fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    run_to_end_env(dir, strs(args), vec![]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenizer_prompts_encode_to_exactly_itl_tokens() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let tdir = dir.path().join("tok");
    let tok_file = tok::byte_bpe(&tdir);
    let t = tok::load(&tok_file);
    let url = s.url();
    let tdir_s = tdir.to_str().unwrap();
    let (code, out, err) = run(
        dir.path(),
        &[
            "--tokenizer",
            tdir_s,
            "-c",
            "3",
            "--num-prompts",
            "9",
            "--itl",
            "60",
            "--otl",
            "4",
            "-u",
            &url,
            "-m",
            "fake",
            "--result-dir",
            "o",
            "--result-filename",
            "p.json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let b = bodies(&s);
    assert_eq!(b.len(), 9, "no vocabulary check with a tokenizer");
    let special = [
        t.token_to_id("<s>").unwrap(),
        t.token_to_id("</s>").unwrap(),
    ];
    let mut distinct = std::collections::HashSet::new();
    for body in &b {
        let text = body["prompt"].as_str().expect("a text prompt");
        let ids = t.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(ids.len(), 60, "{text:?}");
        assert!(ids.iter().all(|i| !special.contains(i)));
        assert_eq!(body["max_tokens"], 4);
        distinct.insert(text.to_string());
    }
    assert_eq!(distinct.len(), 9, "mixed mode: a unique prompt per request");
    let (r, ds) = result(&dir.path().join("o/p.json"));
    assert_eq!(r.tokenizer_id.as_deref(), Some(tdir_s));
    assert_eq!(ds["requested_prompt_tokens"], 9 * 60);
    assert_eq!(ds["prompt_format"], "text");
    assert_eq!(ds["tokenizer"], tdir_s);
    assert!(ds["tokenizer_sha256"].as_str().unwrap().len() == 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decode_only_shares_one_text_prefix() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let tdir = dir.path().join("tok");
    tok::byte_bpe(&tdir);
    let url = s.url();
    let (code, out, err) = run(
        dir.path(),
        &[
            "--tokenizer",
            tdir.to_str().unwrap(),
            "-c",
            "2",
            "--num-prompts",
            "4",
            "--itl",
            "30",
            "--otl",
            "3",
            "--mode",
            "decode-only",
            "-u",
            &url,
            "-m",
            "fake",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let b = bodies(&s);
    assert!(b.windows(2).all(|w| w[0]["prompt"] == w[1]["prompt"]));
}

/// The server sends text but no usage: output tokens are counted by the tokenizer
/// (without it, run-bm falls back to the number of chunks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_counted_by_the_tokenizer_without_usage() {
    let frames = |texts: &[&str]| {
        let mut f: Vec<(Duration, Bytes)> = texts
            .iter()
            .map(|t| {
                (
                    Duration::from_millis(2),
                    Bytes::from(format!(
                        "data: {{\"choices\":[{{\"index\":0,\"text\":\"{t}\"}}]}}\n\n"
                    )),
                )
            })
            .collect();
        f.push((Duration::from_millis(1), Bytes::from("data: [DONE]\n\n")));
        f
    };
    let f = frames(&["w1 w2", " w3", " w4 w5 w6"]);
    let s = FakeServer::start(
        "fake",
        Arc::new(move |_: &RequestInfo| Reply::Frames {
            frames: f.clone(),
            then_break: false,
        }),
        false,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tdir = dir.path().join("tok");
    tok::wordlevel(&tdir, 40);
    let url = s.url();
    let common = [
        "-c",
        "2",
        "--num-prompts",
        "4",
        "--itl",
        "5",
        "--otl",
        "6",
        "-u",
        &url,
        "-m",
        "fake",
        "--result-dir",
        "o",
    ];
    let mut with_tok: Vec<&str> = common.to_vec();
    with_tok.extend([
        "--tokenizer",
        tdir.to_str().unwrap(),
        "--result-filename",
        "t.json",
    ]);
    let (code, out, err) = run(dir.path(), &with_tok).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let (r, _) = result(&dir.path().join("o/t.json"));
    assert_eq!(r.total_output_tokens, 4 * 6, "6 words of text per request");
    assert!(
        r.generated_texts.is_none(),
        "texts are not kept without --save-detailed"
    );
    let mut without: Vec<&str> = common.to_vec();
    without.extend(["--vocab-size", "10", "--result-filename", "n.json"]);
    let (code, out, err) = run(dir.path(), &without).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let (r, _) = result(&dir.path().join("o/n.json"));
    assert_eq!(
        r.total_output_tokens,
        4 * 3,
        "one token per chunk without a tokenizer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_ids_from_the_tokenizer_vocabulary() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let tdir = dir.path().join("tok");
    tok::wordlevel(&tdir, 20);
    let url = s.url();
    let (code, out, err) = run(
        dir.path(),
        &[
            "--tokenizer",
            tdir.to_str().unwrap(),
            "--prompt-format",
            "token-ids",
            "-c",
            "1",
            "--num-prompts",
            "5",
            "--itl",
            "200",
            "--otl",
            "2",
            "-u",
            &url,
            "-m",
            "fake",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    for b in bodies(&s) {
        let ids: Vec<u64> = b["prompt"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(ids.len(), 200);
        // Vocabulary of 26 (2 special, 20 words, 4 markers); ids 0 and 1 are special.
        assert!(ids.iter().all(|&i| (2..26).contains(&i)), "{ids:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_dataset_lengths_with_and_without_tokenizer() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let tdir = dir.path().join("tok");
    let t = tok::load(&tok::wordlevel(&tdir, 300));
    let url = s.url();
    let args = |extra: &[&str]| {
        let mut v = vec![
            "--dataset-name",
            "random",
            "--random-input-len",
            "21",
            "--random-output-len",
            "10",
            "--random-range-ratio",
            "0.5",
            "--random-prefix-len",
            "3",
            "--num-prompts",
            "20",
            "--max-concurrency",
            "4",
            "-u",
            &url,
            "-m",
            "fake",
            "--vocab-size",
            "300",
            "--save-detailed",
            "--result-dir",
            "o",
        ];
        v.extend_from_slice(extra);
        strs(&v)
    };
    let (code, out, err) = run_to_end_env(
        dir.path(),
        args(&[
            "--tokenizer",
            tdir.to_str().unwrap(),
            "--result-filename",
            "t.json",
        ]),
        vec![],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    // 21 − 1 special token (the BOS the post-processor adds) = 20 → [10, 30], + prefix 3.
    let b = bodies(&s);
    let mut lens = std::collections::BTreeSet::new();
    let mut prefixes = std::collections::BTreeSet::new();
    for body in &b {
        let text = body["prompt"].as_str().unwrap();
        let n = t.encode(text, false).unwrap().len();
        assert!((13..=33).contains(&n), "{n}");
        lens.insert(n);
        prefixes.insert(text.split(' ').take(3).collect::<Vec<_>>().join(" "));
        let o = body["max_tokens"].as_u64().unwrap();
        assert!((5..=15).contains(&o), "{o}");
    }
    assert!(
        lens.len() > 3,
        "lengths vary with the range ratio: {lens:?}"
    );
    assert_eq!(prefixes.len(), 1, "one shared prefix");
    let (r, ds) = result(&dir.path().join("o/t.json"));
    assert_eq!(ds["name"], "random");
    assert_eq!(ds["input_len_range"], serde_json::json!([10, 30]));
    // Client-side counts: exactly what each prompt encodes to.
    let client: u64 = b
        .iter()
        .map(|x| {
            t.encode(x["prompt"].as_str().unwrap(), false)
                .unwrap()
                .len() as u64
        })
        .sum();
    assert_eq!(ds["requested_prompt_tokens"], client);
    assert_eq!(
        r.output_lens.unwrap().iter().sum::<u64>(),
        b.iter()
            .map(|x| x["max_tokens"].as_u64().unwrap())
            .sum::<u64>()
    );
    // Without a tokenizer: token ids, the same bounds (no special tokens to subtract).
    s.stats.bodies.lock().unwrap().clear();
    let (code, out, err) =
        run_to_end_env(dir.path(), args(&["--result-filename", "n.json"]), vec![]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    for body in bodies(&s) {
        let n = body["prompt"].as_array().unwrap().len();
        assert!((13..=35).contains(&n), "{n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharegpt_and_custom_files() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let tdir = dir.path().join("tok");
    let t = tok::load(&tok::wordlevel(&tdir, 50));
    let words = |n: usize, off: usize| {
        (0..n)
            .map(|i| format!("w{}", (i + off) % 50))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let sg: Vec<serde_json::Value> = (0..6)
        .map(|i| {
            serde_json::json!({"id": i, "conversations": [
                {"from": "human", "value": words(5 + i, i)},
                {"from": "gpt", "value": words(4 + i, 2 * i)},
            ]})
        })
        .chain([serde_json::json!({"conversations": [{"from": "human", "value": "w1"}]})])
        .collect();
    let sg_path = dir.path().join("sg.json");
    std::fs::write(&sg_path, serde_json::to_string(&sg).unwrap()).unwrap();
    let url = s.url();
    let tdir_s = tdir.to_str().unwrap();
    let (code, out, err) = run(
        dir.path(),
        &[
            "--dataset-name",
            "sharegpt",
            "--dataset-path",
            sg_path.to_str().unwrap(),
            "--tokenizer",
            tdir_s,
            "--num-prompts",
            "4",
            "-c",
            "2",
            "-u",
            &url,
            "-m",
            "fake",
            "--seed",
            "3",
            "-e",
            "sg",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let b = bodies(&s);
    assert_eq!(b.len(), 4);
    for body in &b {
        let p = body["prompt"].as_str().unwrap();
        let entry = sg
            .iter()
            .find(|e| e["conversations"][0]["value"] == p)
            .expect("a prompt of the file");
        // Output length = the recorded answer's tokens (with the BOS, as vLLM counts).
        let answer = entry["conversations"][1]["value"].as_str().unwrap();
        assert_eq!(
            body["max_tokens"].as_u64().unwrap() as usize,
            t.encode(answer, true).unwrap().len()
        );
    }
    let rdir = std::fs::read_dir(dir.path().join("bm_results"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let m = ExperimentManifest::read(&rdir.join("manifest.json")).unwrap();
    let ds = &m.other["dataset"];
    assert_eq!(ds["name"], "sharegpt");
    assert_eq!(ds["seed"], 3);
    assert_eq!(ds["samples"], 4);
    assert_eq!(
        ds["sha256"].as_str().unwrap(),
        run_bm::dataset::sha256_file(&sg_path).unwrap()
    );
    let expect_tokens: u64 = b
        .iter()
        .map(|x| t.encode(x["prompt"].as_str().unwrap(), true).unwrap().len() as u64)
        .sum();
    assert_eq!(ds["prompt_tokens"], expect_tokens);

    // Custom JSONL: per-line output_tokens, the rest from --custom-output-len; the chat
    // template wraps prompts on the completions endpoint unless skipped.
    s.stats.bodies.lock().unwrap().clear();
    let c_path = dir.path().join("c.jsonl");
    std::fs::write(
        &c_path,
        "{\"prompt\": \"w1 w2 w3\", \"output_tokens\": 7}\n{\"prompt\": \"w4 w5\"}\n",
    )
    .unwrap();
    let (code, out, err) = run(
        dir.path(),
        &[
            "--dataset-name",
            "custom",
            "--dataset-path",
            c_path.to_str().unwrap(),
            "--tokenizer",
            tdir_s,
            "--num-prompts",
            "2",
            "-c",
            "1",
            "-u",
            &url,
            "-m",
            "fake",
            "--custom-output-len",
            "9",
            "--disable-shuffle",
            "-e",
            "cu",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let b = bodies(&s);
    assert_eq!(
        b[0]["prompt"],
        "<s><|user|> w1 w2 w3 <|end|> <|assistant|> "
    );
    assert_eq!(
        (b[0]["max_tokens"].as_u64(), b[1]["max_tokens"].as_u64()),
        (Some(7), Some(9))
    );
    // Missing file / no tokenizer: usage errors.
    let (code, _, err) = run(
        dir.path(),
        &[
            "--dataset-name",
            "custom",
            "--dataset-path",
            "nope.jsonl",
            "--tokenizer",
            tdir_s,
        ],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope.jsonl"), "{err}");
}

/// The chat endpoint prefills the chat template: the client-side prompt count includes
/// it (rendered from tokenizer_config.json), the content itself is exactly ITL tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_template_counts_for_the_chat_endpoint() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let tdir = dir.path().join("tok");
    let t = tok::load(&tok::wordlevel(&tdir, 30));
    let url = s.url();
    let (code, out, err) = run(
        dir.path(),
        &[
            "--backend",
            "openai-chat",
            "--tokenizer",
            tdir.to_str().unwrap(),
            "-c",
            "1",
            "--num-prompts",
            "2",
            "--itl",
            "10",
            "--otl",
            "2",
            "-u",
            &url,
            "-m",
            "fake",
            "--result-dir",
            "o",
            "--result-filename",
            "c.json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    for b in bodies(&s) {
        let text = b["messages"][0]["content"][0]["text"].as_str().unwrap();
        assert_eq!(t.encode(text, false).unwrap().len(), 10);
    }
    let (_, ds) = result(&dir.path().join("o/c.json"));
    // <s> <|user|> + 10 words + <|end|> <|assistant|> = 14 tokens per request.
    assert_eq!(ds["requested_prompt_tokens"], 2 * 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenizer_from_the_local_hf_cache() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    let snap = cache.join("models--org--tiny/snapshots/0123abcd");
    tok::wordlevel(&snap, 30);
    let url = s.url();
    let (code, out, err) = run_to_end_env(
        dir.path(),
        strs(&[
            "--tokenizer",
            "org/tiny",
            "-c",
            "1",
            "--num-prompts",
            "1",
            "--itl",
            "5",
            "--otl",
            "2",
            "-u",
            &url,
            "-m",
            "fake",
        ]),
        vec![("HF_HUB_CACHE".into(), cache.display().to_string())],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, _, err) = run_to_end_env(
        dir.path(),
        strs(&["--tokenizer", "org/absent", "-u", &url]),
        vec![("HF_HUB_CACHE".into(), cache.display().to_string())],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("never downloads"), "{err}");
}
