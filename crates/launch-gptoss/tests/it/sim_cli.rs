//! `launch-gptoss --backend sim` refuses bad deployments with clear errors, before
//! starting anything.

use crate::sim_common::free_port;
use assert_cmd::Command;
use predicates::str::contains;

fn launch(dir: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("launch-gptoss").unwrap();
    c.current_dir(dir)
        .env_remove("PD_LAB_DEPLOYMENT")
        .env_remove("UCX_TLS")
        .args(["--backend", "sim", "--deployment-file"])
        .arg(dir.join("deployment.toml"));
    c
}

#[test]
fn prefill_tp_above_decode_tp_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    launch(dir.path())
        .args([
            "--mode", "pd-pack", "--p-num", "1", "--p-tp", "4", "--d-num", "1", "--d-tp", "2",
        ])
        .args(["--port", &free_port().to_string()])
        .assert()
        .failure()
        .stderr(contains("prefill TP 4 is higher than decode TP 2"));
    assert!(!dir.path().join("deployment.toml").exists());
}

#[test]
fn pack_larger_than_a_node_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    launch(dir.path())
        .args([
            "--mode", "pd-pack", "--p-num", "2", "--p-tp", "2", "--d-num", "2", "--d-tp", "4",
        ])
        .args(["--port", &free_port().to_string()])
        .assert()
        .failure()
        .stderr(contains("pd-pack puts P and D on one node"));
}

#[test]
fn spread_side_larger_than_a_node_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    launch(dir.path())
        .args([
            "--mode",
            "pd-spread",
            "--p-num",
            "3",
            "--p-tp",
            "4",
            "--d-num",
            "1",
            "--d-tp",
            "4",
        ])
        .args(["--port", &free_port().to_string()])
        .assert()
        .failure()
        .stderr(contains("pd-spread puts all prefill replicas on one node"));
    // Same layout fits with 16-GPU nodes.
    launch(dir.path())
        .args([
            "--mode",
            "pd-spread",
            "--p-num",
            "3",
            "--p-tp",
            "4",
            "--d-num",
            "1",
            "--d-tp",
            "4",
        ])
        .args([
            "--gpus-per-node",
            "16",
            "--port",
            &free_port().to_string(),
            "--sim-config",
        ])
        .arg(dir.path().join("missing.toml"))
        .assert()
        .failure()
        .stderr(contains("missing.toml"));
}

#[test]
fn tp_not_power_of_two_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    launch(dir.path())
        .args([
            "--mode",
            "collocated",
            "--tp",
            "3",
            "--num",
            "1",
            "--port",
            &free_port().to_string(),
        ])
        .assert()
        .failure()
        .stderr(contains("not a power of two"));
}

#[test]
fn port_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    launch(dir.path())
        .args([
            "--mode",
            "collocated",
            "--tp",
            "2",
            "--num",
            "1",
            "--port",
            &port.to_string(),
        ])
        .assert()
        .failure()
        .stderr(contains(format!(
            "port {port} on 127.0.0.1 is already in use"
        )));
    assert!(!dir.path().join("deployment.toml").exists());
}

#[test]
fn unreadable_record_in_the_way_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("deployment.toml"), "this is not a record").unwrap();
    launch(dir.path())
        .args(["--mode", "collocated", "--port", &free_port().to_string()])
        .assert()
        .failure()
        .stderr(contains("unreadable deployment record"));
}

#[test]
fn help_mentions_the_simulated_backend() {
    Command::cargo_bin("launch-gptoss")
        .unwrap()
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("--backend sim"))
        .stdout(contains("--network"));
}

#[test]
fn the_seeds_verbose_warns_and_engine_debug_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let base = [
        "--mode",
        "pd-pack",
        "--p-num",
        "1",
        "--p-tp",
        "1",
        "--d-num",
        "1",
        "--d-tp",
        "1",
        "--dry-run",
        "--nodes",
        "10.0.0.1:8",
    ];
    let run = |extra: &[&str]| {
        let out = Command::cargo_bin("launch-gptoss")
            .unwrap()
            .current_dir(dir.path())
            .env_remove("PD_LAB_BACKEND")
            .env_remove("UCX_TLS")
            .args(base)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success());
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (out, err) = run(&["--verbose"]);
    assert!(err.contains("slows the engines down"), "{err}");
    assert!(out.contains("\"NIXL_LOG_LEVEL\": \"DEBUG\""), "{out}");
    let (out2, err2) = run(&["--engine-debug"]);
    assert!(!err2.contains("slows the engines down"), "{err2}");
    assert_eq!(out, out2, "--verbose is --engine-debug");
    // -v is the tool's own verbosity: the deployment is unchanged.
    let (plain, _) = run(&[]);
    let (verbose_tool, _) = run(&["-v"]);
    assert_eq!(plain, verbose_tool);
    assert!(!plain.contains("NIXL_LOG_LEVEL"));
    // -qq silences the warning.
    let (_, quiet) = run(&["--verbose", "-qq"]);
    assert!(!quiet.contains("slows the engines down"), "{quiet}");
}
