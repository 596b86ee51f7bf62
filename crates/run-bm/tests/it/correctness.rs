//! The KV-correctness check against a scripted server whose greedy text is a function of
//! the prompt (as a real model's is), and that can be switched to corrupt it (as a PD
//! deployment whose KV blocks arrive zeroed): recording a reference, passing and failing
//! checks in the smoke test and before a sweep, and refusals.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pd_testkit::fake_openai::{FakeOptions, FakeServer, GenSpec, Reply, RequestInfo};
use run_bm::correctness::{Reference, PROMPTS};

use crate::common::{run_to_end_env, strs};

/// The "model": a greedy text determined by the prompt, or garbage when `corrupt`.
fn text_of(prompt: &str, corrupt: bool) -> String {
    if corrupt {
        " , , , , ,".to_string()
    } else {
        let words: Vec<String> = prompt.bytes().take(8).map(|b| format!(" w{b}")).collect();
        words.concat()
    }
}

fn script(corrupt: Arc<AtomicBool>) -> Arc<dyn Fn(&RequestInfo) -> Reply + Send + Sync> {
    Arc::new(move |info: &RequestInfo| {
        if info.body["stream"].as_bool() == Some(true) {
            return Reply::Generate(GenSpec::default());
        }
        let prompt = info.body["prompt"].as_str().unwrap_or("");
        let body = serde_json::json!({
            "id": "cmpl-1", "object": "text_completion", "model": "fake",
            "choices": [{"index": 0, "text": text_of(prompt, corrupt.load(Ordering::SeqCst)),
                         "finish_reason": "length"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 32, "total_tokens": 37}});
        Reply::Status {
            status: 200,
            body: body.to_string(),
        }
    })
}

async fn server(corrupt: Arc<AtomicBool>) -> FakeServer {
    FakeServer::start("fake", script(corrupt), true)
        .await
        .unwrap()
}

async fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    run_to_end_env(dir, strs(args), vec![]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_reference_passes_and_corruption_fails_the_smoke_test() {
    let corrupt = Arc::new(AtomicBool::new(false));
    let srv = server(corrupt.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url();
    let reference = dir.path().join("ref.json");
    let r = reference.to_str().unwrap();

    let (code, out, err) = run(
        dir.path(),
        &["-s", "-u", &url, "-m", "fake", "--record-reference", r],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("recorded 4 greedy completions"), "{out}");
    let rec = Reference::read(&reference).unwrap();
    let prompts: Vec<&str> = rec.completions.iter().map(|c| c.prompt.as_str()).collect();
    assert_eq!(prompts, PROMPTS);
    assert_eq!(rec.completions[0].text, text_of(PROMPTS[0], false));
    // Every greedy request was temperature 0, non-streaming, with the reference's length.
    let bodies = srv.stats.bodies.lock().unwrap().clone();
    let greedy: Vec<_> = bodies.iter().filter(|b| b["stream"] == false).collect();
    assert_eq!(greedy.len(), 4);
    assert!(greedy
        .iter()
        .all(|b| b["temperature"] == 0 && b["max_tokens"] == 32));

    let (code, out, _) = run(
        dir.path(),
        &["-s", "-u", &url, "-m", "fake", "--reference", r],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Correctness check passed: 4 of 4"), "{out}");

    corrupt.store(true, Ordering::SeqCst);
    let (code, out, _) = run(
        dir.path(),
        &["-s", "-u", &url, "-m", "fake", "--reference", r],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[1] DIFFERS at character 1"), "{out}");
    assert!(
        out.contains(
            "Smoke test FAILED: PD transfer corrupts outputs: 4 of 4 greedy completions differ"
        ),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deliberately_corrupted_reference_fails_with_a_clear_message() {
    let srv = server(Arc::new(AtomicBool::new(false))).await;
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url();
    let good = dir.path().join("good.json");
    let (code, _, _) = run(
        dir.path(),
        &[
            "-s",
            "-u",
            &url,
            "-m",
            "fake",
            "--record-reference",
            good.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 0);
    let mut r = Reference::read(&good).unwrap();
    r.completions[3].text = format!("{} tampered", &r.completions[3].text[..6]);
    let bad = dir.path().join("bad.json");
    r.write(&bad).unwrap();
    let (code, out, _) = run(
        dir.path(),
        &[
            "-s",
            "-u",
            &url,
            "-m",
            "fake",
            "--reference",
            bad.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        out.contains("[1] identical") && out.contains("[4] DIFFERS at character 6"),
        "{out}"
    );
    assert!(
        out.contains("PD transfer corrupts outputs: 1 of 4"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_checks_first_and_writes_nothing_when_outputs_diverge() {
    let corrupt = Arc::new(AtomicBool::new(false));
    let srv = server(corrupt.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url();
    let reference = dir.path().join("ref.json");
    let r = reference.to_str().unwrap();
    assert_eq!(
        run(
            dir.path(),
            &["-s", "-u", &url, "-m", "fake", "--record-reference", r]
        )
        .await
        .0,
        0
    );
    let sweep = |out_dir: &str| {
        strs(&[
            "-u",
            &url,
            "-m",
            "fake",
            "-c",
            "1",
            "--num-prompts",
            "2",
            "--itl",
            "16",
            "--otl",
            "4",
            "--vocab-size",
            "1000",
            "--reference",
            r,
            "--result-dir",
            out_dir,
        ])
    };
    let (code, out, err) = run_to_end_env(dir.path(), sweep("ok"), vec![]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("ok/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["correctness"]["passed"], true, "{manifest}");
    assert_eq!(manifest["correctness"]["prompts"], 4);

    corrupt.store(true, Ordering::SeqCst);
    let before = srv.stats.requests.load(Ordering::SeqCst);
    let (code, _, err) = run_to_end_env(dir.path(), sweep("bad"), vec![]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("PD transfer corrupts outputs"), "{err}");
    assert!(!dir.path().join("bad").exists(), "nothing written");
    assert_eq!(
        srv.stats.requests.load(Ordering::SeqCst) - before,
        4,
        "only the check's requests were sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_is_checked_against_the_built_in_reference() {
    // A server that says it is the simulator but answers other texts.
    let opts = FakeOptions::new("gptoss", script(Arc::new(AtomicBool::new(false))))
        .like_simulator("1xtp2");
    let srv = FakeServer::start_with("127.0.0.1:0".parse().unwrap(), opts)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run(dir.path(), &["-s", "-u", &srv.url(), "-m", "gptoss"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("against built-in reference of the pd-lab simulator"),
        "{out}"
    );
    assert!(out.contains("PD transfer corrupts outputs"), "{out}");
    // A plain server without a reference: the smoke test says so and passes.
    let plain = server(Arc::new(AtomicBool::new(false))).await;
    let (code, out, _) = run(dir.path(), &["-s", "-u", &plain.url(), "-m", "fake"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("Correctness: not checked (no reference"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals() {
    let srv = server(Arc::new(AtomicBool::new(false))).await;
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url();
    // A sweep that must check but has no reference: refused after asking the server who it is.
    let (code, _, err) = run(
        dir.path(),
        &[
            "-u",
            &url,
            "-m",
            "fake",
            "-c",
            "1",
            "--num-prompts",
            "1",
            "--itl",
            "8",
            "--otl",
            "2",
            "--vocab-size",
            "1000",
            "--check-correctness",
        ],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no reference for this deployment"), "{err}");
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"format\": \"something else\"}").unwrap();
    for args in [
        vec!["-s", "-u", &url, "--reference", broken.to_str().unwrap()],
        vec!["-s", "-u", &url, "--reference", "/nonexistent/ref.json"],
        vec!["-u", &url, "--record-reference", "x.json"],
        vec!["-s", "-u", &url, "--check-correctness"],
    ] {
        let (code, _, err) = run(dir.path(), &args).await;
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    assert_eq!(
        srv.stats.requests.load(Ordering::SeqCst),
        0,
        "refused before any completion"
    );
}
