//! End to end: `launch-gptoss --backend sim` starts a background simulator, writes the
//! record, answers completions; `shutdown` stops it and is idempotent; `--foreground`
//! runs in the terminal and cleans up on Ctrl-C.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::sim_common::{blocking_get, free_port, pid_alive, wait_until, KillOnDrop, RecordGuard};
use assert_cmd::Command;
use pd_common::{DeploymentRecord, ServingBackend, StopHandle};
use predicates::str::contains;

fn cmd(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("launch-gptoss").unwrap();
    c.current_dir(dir)
        .env_remove("PD_LAB_DEPLOYMENT")
        .env_remove("UCX_TLS");
    c
}

/// POST a streamed completion with the blocking std client; returns the raw body.
fn stream_completion(base_url: &str, max_tokens: u32) -> String {
    use std::io::{Read, Write};
    let addr = base_url.strip_prefix("http://").unwrap();
    let body =
        serde_json::json!({"model": "gptoss", "prompt": [1, 2, 3, 4, 5], "max_tokens": max_tokens,
        "stream": true, "ignore_eos": true, "stream_options": {"include_usage": true}})
        .to_string();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A simulator record for `pid` (created long ago).
pub fn stale_record(pid: u32) -> DeploymentRecord {
    DeploymentRecord {
        format_version: 1,
        backend: ServingBackend::Sim,
        base_url: "http://127.0.0.1:1".into(),
        served_model_name: "gptoss".into(),
        label: "1xtp2".into(),
        total_gpus: 2,
        gpus_per_node: 8,
        nodes: vec![],
        command: vec![],
        tool_version: "0".into(),
        created_at: "then".into(),
        network: None,
        software: Default::default(),
        env: Default::default(),
        spec: pd_common::DeploymentSpec::collocated(1, 2),
        stop: StopHandle::Pid { pid },
    }
}

#[test]
fn launch_serve_shutdown_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let rec_path = dir.path().join("state/deployment.toml");
    let _guard = RecordGuard(&rec_path);
    let port = free_port();
    let started = Instant::now();
    cmd(dir.path())
        .args([
            "--backend",
            "sim",
            "--mode",
            "collocated",
            "--tp",
            "2",
            "--num",
            "4",
        ])
        .args(["--port", &port.to_string(), "--deployment-file"])
        .arg(&rec_path)
        .assert()
        .success()
        .stdout(contains("ready at"));
    let launch_time = started.elapsed();

    let rec = DeploymentRecord::read(&rec_path).unwrap();
    let StopHandle::Pid { pid } = rec.stop else {
        panic!("{:?}", rec.stop)
    };
    let _kill = KillOnDrop(Some(pid));
    assert!(pid_alive(pid));
    assert_eq!(rec.backend, ServingBackend::Sim);
    assert_eq!(rec.base_url, format!("http://127.0.0.1:{port}"));
    assert_eq!(
        (rec.label.as_str(), rec.total_gpus, rec.gpus_per_node),
        ("4xtp2", 8, 8)
    );
    assert_eq!(rec.nodes, vec!["sim-node-0"]);
    assert_eq!(rec.served_model_name, "gptoss");
    assert!(rec.command.iter().any(|a| a == "--backend") && rec.command.iter().any(|a| a == "4"));
    assert_eq!(
        rec.software.get("simulator").map(String::as_str),
        Some(pd_common::VERSION)
    );
    assert_eq!(rec.network, None, "network only for pd-spread");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).contains("serve-sim"));
    assert!(dir
        .path()
        .join("state")
        .join(format!("sim-{port}.log"))
        .exists());
    eprintln!("launch to ready (whole command, debug build): {launch_time:?}");

    // It answers like vLLM.
    let out = stream_completion(&rec.base_url, 6);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.to_ascii_lowercase().contains("x-pd-lab-backend: sim"));
    assert!(out.contains("\"completion_tokens\":6"), "{out}");
    assert!(out.contains("data: [DONE]"));
    let (code, models) = blocking_get(&rec.base_url, "/v1/models");
    assert_eq!(code, 200);
    assert!(models.contains("\"id\":\"gptoss\""));

    // A second launch on the same record is refused while the first is alive.
    cmd(dir.path())
        .args([
            "--backend",
            "sim",
            "--mode",
            "collocated",
            "--port",
            &free_port().to_string(),
        ])
        .arg("--deployment-file")
        .arg(&rec_path)
        .assert()
        .failure()
        .stderr(contains("already running"))
        .stderr(contains("launch-gptoss shutdown"));
    // Same port, other record: the port is busy.
    cmd(dir.path())
        .args([
            "--backend",
            "sim",
            "--mode",
            "collocated",
            "--port",
            &port.to_string(),
        ])
        .arg("--deployment-file")
        .arg(dir.path().join("other.toml"))
        .assert()
        .failure()
        .stderr(contains("already in use"));

    // status: alive, with a metrics summary.
    cmd(dir.path())
        .args(["status", "--deployment-file"])
        .arg(&rec_path)
        .assert()
        .success()
        .stdout(contains("simulator: alive"))
        .stdout(contains("generated"));

    // shutdown stops the process and removes the record; again is a no-op.
    cmd(dir.path())
        .args(["shutdown", "--deployment-file"])
        .arg(&rec_path)
        .assert()
        .success();
    assert!(
        wait_until(Duration::from_secs(5), || !pid_alive(pid)),
        "pid {pid} still alive"
    );
    assert!(!rec_path.exists());
    cmd(dir.path())
        .args(["shutdown", "--deployment-file"])
        .arg(&rec_path)
        .assert()
        .success();
    cmd(dir.path())
        .args(["status", "--deployment-file"])
        .arg(&rec_path)
        .assert()
        .failure();
}

#[test]
fn stale_record_is_replaced_and_spread_records_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let rec_path = dir.path().join("deployment.toml");
    let _guard = RecordGuard(&rec_path);
    // A record whose pid is dead.
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let mut stale = stale_record(dead_pid);
    stale.write(&rec_path).unwrap();
    let port = free_port();
    cmd(dir.path())
        .env("UCX_TLS", "tcp")
        .args([
            "--backend",
            "sim",
            "--mode",
            "pd-spread",
            "--p-num",
            "1",
            "--p-tp",
            "4",
            "--d-num",
            "1",
        ])
        .args([
            "--d-tp",
            "4",
            "--gpu",
            "h200",
            "--port",
            &port.to_string(),
            "--deployment-file",
        ])
        .arg(&rec_path)
        .assert()
        .success()
        .stderr(contains("replacing stale deployment record"));
    let rec = DeploymentRecord::read(&rec_path).unwrap();
    let StopHandle::Pid { pid } = rec.stop else {
        panic!()
    };
    let _kill = KillOnDrop(Some(pid));
    assert_ne!(pid, dead_pid);
    assert_eq!(rec.label, "p1xtp4-d1xtp4");
    assert_eq!(rec.nodes, vec!["sim-node-0", "sim-node-1"]);
    assert_eq!(rec.network.as_deref(), Some("tcp"), "UCX_TLS=tcp honoured");
    assert_eq!(rec.env.get("UCX_TLS").map(String::as_str), Some("tcp"));
    assert_eq!(rec.spec.gpu, pd_common::GpuKind::H200);
    let (code, version) = blocking_get(&rec.base_url, "/version");
    assert_eq!(code, 200);
    assert!(version.contains("pd-lab-sim"));
    cmd(dir.path())
        .args(["shutdown", "--deployment-file"])
        .arg(&rec_path)
        .assert()
        .success();
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)));
    // A record whose pid is alive but another program: shutdown leaves it alone.
    let mut other = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let _kill_other = KillOnDrop(Some(other.id()));
    stale.stop = StopHandle::Pid { pid: other.id() };
    stale.write(&rec_path).unwrap();
    cmd(dir.path())
        .args(["shutdown", "--deployment-file"])
        .arg(&rec_path)
        .assert()
        .success()
        .stderr(contains(
            "is not the launch-gptoss simulator this record describes",
        ));
    assert!(pid_alive(other.id()));
    other.kill().unwrap();
    other.wait().unwrap();
}

#[cfg(unix)]
#[test]
fn foreground_runs_here_and_cleans_up_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let rec_path = dir.path().join("deployment.toml");
    let port = free_port();
    let exe = assert_cmd::cargo::cargo_bin("launch-gptoss");
    let mut child = std::process::Command::new(exe)
        .current_dir(dir.path())
        .env_remove("PD_LAB_DEPLOYMENT")
        .args([
            "--backend",
            "sim",
            "--mode",
            "collocated",
            "--tp",
            "4",
            "--num",
            "2",
            "--foreground",
        ])
        .args(["--port", &port.to_string(), "--deployment-file"])
        .arg(&rec_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(Some(child.id()));
    assert!(
        wait_until(Duration::from_secs(20), || rec_path.exists()),
        "record not written"
    );
    let rec = DeploymentRecord::read(&rec_path).unwrap();
    assert_eq!(
        rec.stop,
        StopHandle::Pid { pid: child.id() },
        "foreground: the record names this process"
    );
    assert_eq!(blocking_get(&rec.base_url, "/health").0, 200);
    // SAFETY: signalling the child this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "foreground server ignored Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(!rec_path.exists(), "record removed on exit");
}
