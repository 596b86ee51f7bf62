//! The simulator's generated text through real deployments (`launch-gptoss --backend sim`):
//! a function of the prompt, the same collocated and PD, and wrong after the first token
//! with `--sim-fault corrupt-kv` on a PD deployment (timing and usage unchanged).

use std::path::Path;

use assert_cmd::Command;
use pd_common::http::{Client, Method};
use pd_common::url::BaseUrl;
use serde_json::{json, Value};

use crate::sim_common::free_port;

fn launch(dir: &Path, port: u16, args: &[&str]) {
    Command::cargo_bin("launch-gptoss")
        .unwrap()
        .current_dir(dir)
        .env_remove("PD_LAB_DEPLOYMENT")
        .env_remove("UCX_TLS")
        .args([
            "--backend",
            "sim",
            "--port",
            &port.to_string(),
            "--deployment-file",
        ])
        .arg(dir.join(format!("d{port}.toml")))
        .args(args)
        .assert()
        .success();
}

fn shutdown(dir: &Path, port: u16) {
    Command::cargo_bin("launch-gptoss")
        .unwrap()
        .current_dir(dir)
        .args(["shutdown", "--deployment-file"])
        .arg(dir.join(format!("d{port}.toml")))
        .assert()
        .success();
}

/// Greedy completions of `prompts` (non-streaming), texts in order.
fn complete(port: u16, prompts: &[&str]) -> Vec<String> {
    let base = BaseUrl::parse(&format!("http://127.0.0.1:{port}"), 80).unwrap();
    let client = Client::new(Default::default());
    prompts
        .iter()
        .map(|p| {
            let body = json!({"model": "gptoss", "prompt": p, "max_tokens": 12, "temperature": 0});
            let r = client
                .request(
                    Method::Post,
                    &base,
                    "/v1/completions",
                    Some(body.to_string().as_bytes()),
                )
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["usage"]["completion_tokens"], 12);
            v["choices"][0]["text"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn text_depends_on_the_prompt_only_unless_kv_is_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let prompts = [
        "The capital of France is",
        "def fibonacci(n):",
        "1, 2, 3, 5, 8,",
    ];
    let (colo, pd, bad) = (free_port(), free_port(), free_port());
    launch(dir.path(), colo, &["--mode", "collocated", "--tp", "2"]);
    launch(
        dir.path(),
        pd,
        &[
            "--mode", "pd-pack", "--p-num", "1", "--p-tp", "2", "--d-num", "1", "--d-tp", "2",
        ],
    );
    let fault = Command::cargo_bin("launch-gptoss")
        .unwrap()
        .current_dir(dir.path())
        .env_remove("UCX_TLS")
        .args([
            "--backend",
            "sim",
            "--port",
            &bad.to_string(),
            "--deployment-file",
        ])
        .arg(dir.path().join(format!("d{bad}.toml")))
        .args([
            "--mode", "pd-pack", "--p-num", "1", "--p-tp", "2", "--d-num", "1", "--d-tp", "2",
        ])
        .args(["--sim-fault", "corrupt-kv"])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&fault.get_output().stderr).into_owned();
    let a = complete(colo, &prompts);
    let b = complete(pd, &prompts);
    let c = complete(bad, &prompts);
    let again = complete(colo, &prompts);
    // run-bm's smoke test checks them against its built-in simulator reference.
    let healthy = smoke(&dir.path().join(format!("d{pd}.toml")), &[]);
    let corrupted = smoke(&dir.path().join(format!("d{bad}.toml")), &[]);
    let mut tampered = run_bm::correctness::Reference::parse(
        run_bm::correctness::SIM_REFERENCE,
        Path::new("sim.json"),
    )
    .unwrap();
    tampered.completions[2].text.push_str(" tampered");
    let tampered_path = dir.path().join("tampered.json");
    tampered.write(&tampered_path).unwrap();
    let colo_tampered = smoke(
        &dir.path().join(format!("d{colo}.toml")),
        &["--reference", tampered_path.to_str().unwrap()],
    );
    shutdown(dir.path(), colo);
    shutdown(dir.path(), pd);
    shutdown(dir.path(), bad);
    assert!(stderr.contains("deliberately wrong"), "{stderr}");
    assert_eq!(a, b, "collocated and PD agree: the KV transfer is sound");
    assert_eq!(a, again, "deterministic");
    assert_ne!(a[0], a[1], "different prompts, different texts");
    for (good, bad) in a.iter().zip(&c) {
        assert_ne!(good, bad, "the corrupted deployment answers differently");
        assert_eq!(
            good.split(' ').nth(1),
            bad.split(' ').nth(1),
            "its first token is right"
        );
    }
    let tail = |s: &String| s.split(' ').skip(2).collect::<Vec<_>>().join(" ");
    assert_eq!(
        tail(&c[0]),
        tail(&c[1]),
        "after the first token it ignores the prompt"
    );

    assert!(healthy.ok, "{:?}", healthy.error);
    assert_eq!(
        healthy.correctness,
        Some(true),
        "the shipped simulator reference is what the simulator produces"
    );
    assert!(!corrupted.ok);
    let e = corrupted.error.unwrap();
    assert!(e.starts_with("PD transfer corrupts outputs: 4 of 4"), "{e}");
    assert!(!colo_tampered.ok);
    let e = colo_tampered.error.unwrap();
    assert!(
        e.starts_with("outputs differ from the reference (this deployment is collocated"),
        "{e}"
    );
    assert!(e.contains("1 of 4"), "{e}");
}

/// `run-bm --smoke` on the deployment of `record` (in process): its report.
fn smoke(record: &Path, extra: &[&str]) -> run_bm::smoke::SmokeReport {
    use clap::Parser;
    let mut argv: Vec<String> = ["run-bm", "-s", "--deployment-file"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.push(record.display().to_string());
    argv.extend(extra.iter().map(|s| s.to_string()));
    let cli = run_bm::cli::Cli::try_parse_from(&argv).unwrap();
    let cfg = run_bm::config::RunConfig::resolve(&cli, argv).unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run_bm::smoke::run_smoke(&cfg))
        .unwrap()
}

#[test]
fn the_fault_is_a_no_op_on_collocated_deployments_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = Command::cargo_bin("launch-gptoss")
        .unwrap()
        .current_dir(dir.path())
        .args([
            "--backend",
            "sim",
            "--port",
            &port.to_string(),
            "--deployment-file",
        ])
        .arg(dir.path().join("d.toml"))
        .args([
            "--mode",
            "collocated",
            "--tp",
            "2",
            "--sim-fault",
            "corrupt-kv",
            "--dry-run",
        ])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("no effect on a collocated deployment"),
        "{stderr}"
    );
}
