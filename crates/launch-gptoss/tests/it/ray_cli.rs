//! CLI tests of the Ray backend through the binary (assert_cmd) against a fake dashboard.

use std::path::Path;

use assert_cmd::Command;
use pd_testkit::fake_ray::*;
use predicates::prelude::*;
use serde_json::json;

fn bin(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("launch-gptoss").unwrap();
    c.current_dir(dir)
        .env_remove("UCX_TLS")
        .env_remove("RAY_ADDRESS")
        .env_remove("PD_LAB_BACKEND")
        .env_remove("PD_LAB_DEPLOYMENT")
        .timeout(std::time::Duration::from_secs(120));
    c
}

#[test]
fn dry_run_prints_the_golden_config_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let golden = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/pd-spread-p1xtp4-d1xtp4-ucx.json"),
    )
    .unwrap();
    bin(dir.path())
        .args([
            "--mode",
            "pd-spread",
            "--p-num",
            "1",
            "--p-tp",
            "4",
            "--d-num",
            "1",
            "--d-tp",
            "4",
            "--use-ucx",
            "--dry-run",
            "--nodes",
            "10.0.0.1:8",
            "--nodes",
            "10.0.0.2:8",
        ])
        .assert()
        .success()
        .stdout(golden)
        .stderr(predicate::str::contains(
            "picked node 10.0.0.1 (8 GPUs) for prefill",
        ));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "dry run wrote files"
    );
}

const TEN_GPU_PACK: [&str; 10] = [
    "--mode", "pd-pack", "--p-num", "2", "--p-tp", "1", "--d-num", "4", "--d-tp", "2",
];

#[test]
fn methodology_pd_pack_example_needs_a_bigger_node() {
    let dir = tempfile::tempdir().unwrap();
    let closed = format!("http://127.0.0.1:{}", closed_port());
    // Refused on 8-GPU nodes, however they are given: --nodes, or assumed without a cluster.
    bin(dir.path())
        .args(TEN_GPU_PACK)
        .args(["--dry-run", "--nodes", "10.0.0.1:8"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "= 10 GPUs; the alive GPU nodes are: ",
        ))
        .stderr(predicate::str::contains("(8 GPUs)"));
    bin(dir.path())
        .env("RAY_ADDRESS", &closed)
        .args(TEN_GPU_PACK)
        .arg("--dry-run")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "= 10 GPUs; the alive GPU nodes are: ",
        ))
        .stderr(predicate::str::contains("(8 GPUs)"));
    // --nodes is the inventory: --gpus-per-node does not override it...
    bin(dir.path())
        .args(TEN_GPU_PACK)
        .args([
            "--gpus-per-node",
            "16",
            "--dry-run",
            "--nodes",
            "10.0.0.1:8",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("pre-flight check failed"));
    // ...and a 16-GPU node takes the layout (the default --gpus-per-node 8 does not matter).
    bin(dir.path())
        .args(TEN_GPU_PACK)
        .args(["--dry-run", "--nodes", "10.0.0.1:16"])
        .assert()
        .success()
        .stdout(predicate::str::contains("build_pd_openai_app"))
        .stderr(predicate::str::contains("dry run on --nodes 10.0.0.1:16"));
    // Without a cluster and without --nodes: an assumed inventory, said first.
    let out = bin(dir.path())
        .env("RAY_ADDRESS", &closed)
        .args(TEN_GPU_PACK)
        .args(["--dry-run", "--gpus-per-node", "16"])
        .assert()
        .success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.lines()
            .next()
            .is_some_and(|l| l.starts_with("dry run without a cluster")
                && l.contains("assuming 1 node(s) of 16 GPUs")),
        "{err}"
    );
    bin(dir.path())
        .args(["--mode", "collocated", "--dry-run", "--nodes", "10.0.0.1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid --nodes entry '10.0.0.1'"));
    bin(dir.path())
        .args(["--mode", "collocated", "--nodes", "10.0.0.1:8"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("for --dry-run only"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn deploy_status_shutdown_through_the_binary() {
    let running = serve_state(vec![app(
        "gptoss",
        "/",
        "RUNNING",
        "",
        vec![
            deployment(
                "LLMServer:gptoss",
                "HEALTHY",
                "CONFIG_UPDATE_COMPLETED",
                "",
                2,
                &["RUNNING", "RUNNING"],
            ),
            deployment(
                "OpenAiIngress",
                "HEALTHY",
                "CONFIG_UPDATE_COMPLETED",
                "",
                16,
                &["RUNNING"; 16],
            ),
        ],
    )]);
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[("127.0.0.1", 4.0)]),
        empty_state(),
        vec![running],
        Some(json!({"object": "list", "data": [{"id": "gptoss"}]})),
    );
    let dir = tempfile::tempdir().unwrap();
    let url = fake.url();
    bin(dir.path())
        .args([
            "--mode",
            "collocated",
            "--tp",
            "2",
            "--num",
            "2",
            "--ray-address",
            &url,
            "--serve-url",
            &url,
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("ready: model 'gptoss'"));
    let record = dir.path().join(".pd-lab/deployment.toml");
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(
        text.contains("backend = \"ray\"") && text.contains("label = \"2xtp2\""),
        "{text}"
    );
    assert!(text.contains("\"--num\""), "exact argv recorded: {text}");
    let put = &fake.puts()[0];
    assert_eq!(
        put["http_options"],
        json!({"host": "127.0.0.1", "port": fake.addr.port()})
    );

    bin(dir.path())
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "LLMServer:gptoss HEALTHY 2/2 running",
        ));
    bin(dir.path())
        .arg("shutdown")
        .assert()
        .success()
        .stderr(predicate::str::contains("removed application 'gptoss'"));
    assert!(!record.exists());
    assert_eq!(fake.count("DELETE"), 1);
    bin(dir.path())
        .arg("shutdown")
        .assert()
        .success()
        .stderr(predicate::str::contains("nothing to stop"));
}

#[test]
fn deploy_failed_exits_non_zero_with_rays_message() {
    let failed = serve_state(vec![app("gptoss", "/", "DEPLOY_FAILED",
        "Deploying app 'gptoss' failed with exception:\n...\nImportError: Neither vLLM nor SGLang is installed.", vec![])]);
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[("127.0.0.1", 2.0)]),
        empty_state(),
        vec![failed],
        None,
    );
    let dir = tempfile::tempdir().unwrap();
    let url = fake.url();
    bin(dir.path())
        .args([
            "--mode",
            "collocated",
            "--tp",
            "1",
            "--ray-address",
            &url,
            "--serve-url",
            &url,
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "Neither vLLM nor SGLang is installed",
        ))
        .stderr(predicate::str::contains(
            "removed application 'gptoss' after the failure",
        ));
    assert!(!dir.path().join(".pd-lab").exists());
}

#[test]
fn unreachable_cluster_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", closed_port());
    bin(dir.path())
        .args(["--mode", "collocated", "--ray-address", &url])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "cannot reach the Ray dashboard at {url}"
        )));
}

#[test]
fn unambiguous_prefixes_of_long_flags_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    // `--tensor-parallel` (alias --tensor-parallel-size) and `--num-rep` (--num-replicas),
    // as the seed's argparse accepted them.
    let out = bin(dir.path())
        .args([
            "--mode",
            "collocated",
            "--tensor-parallel",
            "4",
            "--num-rep",
            "2",
            "--dry-r",
            "--nodes",
            "10.0.0.1:8",
        ])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let cfg = &v["applications"][0]["args"]["llm_configs"][0];
    assert_eq!(cfg["engine_kwargs"]["tensor_parallel_size"], 4);
    assert_eq!(
        cfg["deployment_config"]["autoscaling_config"]["min_replicas"],
        2
    );
    // Ambiguous prefixes are usage errors.
    bin(dir.path())
        .args(["--mode", "pd-pack", "--p", "2", "--dry-run"])
        .assert()
        .code(2);
    // Launch flags next to a subcommand are refused (exit 2), -v/-q are not.
    bin(dir.path())
        .args(["--mode", "collocated", "status"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--mode is a launch flag"));
    bin(dir.path()).args(["-q", "shutdown"]).assert().success();
}
