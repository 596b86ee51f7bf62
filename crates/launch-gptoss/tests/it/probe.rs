//! `launch-gptoss probe` against a fake dashboard whose Jobs API "runs" the submitted
//! program: the fake decodes the configurations out of the entrypoint (as the cluster's
//! Python would) and prints result lines for them; and against the simulator.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use launch_gptoss::probe::script::{decode_entrypoint, decode_program_configs};
use pd_common::probe::ProbeFile;
use pd_testkit::fake_ray::*;
use predicates::prelude::*;
use serde_json::{json, Value};

fn bin(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("launch-gptoss").unwrap();
    c.current_dir(dir)
        .env_remove("UCX_TLS")
        .env_remove("RAY_ADDRESS")
        .env_remove("PD_LAB_BACKEND")
        .timeout(Duration::from_secs(120));
    c
}

fn cluster(nodes: &[(&str, f64)]) -> FakeRay {
    FakeRay::start("2.60.0", nodes_body(nodes), empty_state(), vec![], None)
}

/// The configurations of a submitted entrypoint.
fn configs_of(entrypoint: &str) -> Vec<Value> {
    let program = decode_entrypoint(entrypoint).expect("an entrypoint made by launch-gptoss");
    decode_program_configs(&program).expect("configurations in the program")["configs"]
        .as_array()
        .unwrap()
        .clone()
}

/// A job that measures every configuration with `figure(config)`; `None` fails it.
fn job(figure: impl Fn(&Value) -> Option<Value> + Send + Sync + 'static) -> JobLogs {
    Arc::new(move |ep: &str| {
        let mut log = String::from("Running entrypoint for job x\n");
        log.push_str("PD_LAB_PROBE {\"kind\": \"env\", \"nixl\": \"1.5.1\", \"python\": \"3.11.7\", \"ray\": \"2.60.0\", \"nodes\": []}\n");
        for c in configs_of(ep) {
            let mut line = match figure(&c) {
                Some(v) => v,
                None => {
                    json!({"error": format!("RuntimeError: NIXL backend {} is not available on node {} (nixlNotFoundError: NIXL_ERR_NOT_FOUND)", c["backend"].as_str().unwrap(), c["p_node"].as_str().unwrap())})
                }
            };
            line["kind"] = json!("result");
            line["id"] = c["id"].clone();
            log.push_str(&format!(
                "(ProbeAgent pid=1) NIXL INFO noise\nPD_LAB_PROBE {line}\n"
            ));
        }
        log.push_str("PD_LAB_PROBE {\"kind\": \"done\", \"failed\": 0}\n");
        log
    })
}

/// Figures as the real program reports them, on the planned nodes.
fn measured(c: &Value) -> Value {
    json!({"error": null, "p_nodes": [c["p_node"]], "d_nodes": [c["d_node"]],
           "bytes_per_transfer": 1, "bandwidth_gbps": 0.7, "latency_us": 45.0,
           "transfer_ms": {"p50": 24.0, "min": 9.0, "max": 50.0}, "first_transfer_ms": 150.0,
           "slices_checked": 64, "corrupt_slices": 0, "zero_slices": 0})
}

fn ucx_only(c: &Value) -> Option<Value> {
    (c["backend"] == "UCX").then(|| measured(c))
}

const SMALL: [&str; 8] = [
    "--memory",
    "dram",
    "--block-size",
    "4KiB",
    "--blocks",
    "16",
    "--iterations",
    "3",
];

#[test]
fn pack_and_spread_ucx_and_libfabric_through_the_jobs_api() {
    let dir = tempfile::tempdir().unwrap();
    let fake = cluster(&[("10.0.0.2", 2.0), ("10.0.0.1", 2.0)]);
    {
        let mut st = fake.state.lock().unwrap();
        st.jobs.statuses = vec!["PENDING".into(), "RUNNING".into(), "SUCCEEDED".into()];
        st.jobs.logs = Some(job(ucx_only));
    }
    let out = dir.path().join("probe.json");
    bin(dir.path())
        .env("UCX_TLS", "tcp")
        .args([
            "probe",
            "--ray-address",
            &fake.url(),
            "--nixl",
            "ucx,libfabric",
        ])
        .args(SMALL)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(3)
        .stdout(predicate::str::contains("c1 pack ucx P1:D1 4KiB×16"))
        .stdout(predicate::str::contains("10.0.0.1 -> 10.0.0.2"))
        .stdout(predicate::str::contains("0.700 GB/s"))
        .stdout(predicate::str::contains(
            "NIXL backend LIBFABRIC is not available",
        ))
        .stderr(predicate::str::contains("libfabric"));
    let file = ProbeFile::read(&out).unwrap();
    assert_eq!(file.backend, "ray");
    assert_eq!(file.environment.nixl_version.as_deref(), Some("1.5.1"));
    assert_eq!(file.environment.nodes, vec!["10.0.0.2", "10.0.0.1"]);
    let ids: Vec<String> = file.results.iter().map(|r| r.config.label()).collect();
    assert_eq!(
        ids,
        [
            "pack ucx P1:D1 4KiB×16",
            "pack libfabric P1:D1 4KiB×16",
            "spread ucx P1:D1 4KiB×16",
            "spread libfabric P1:D1 4KiB×16"
        ]
    );
    let spread = &file.results[2];
    assert!(spread.ok());
    assert_eq!(
        (spread.p_node.as_deref(), spread.d_node.as_deref()),
        (Some("10.0.0.1"), Some("10.0.0.2"))
    );
    assert_eq!(spread.link.as_deref(), Some("UCX_TLS=tcp"));
    let pack = &file.results[0];
    assert_eq!(pack.p_node, pack.d_node);
    assert!(file.results[1]
        .error
        .as_deref()
        .unwrap()
        .contains("LIBFABRIC"));

    let subs = fake.state.lock().unwrap().jobs.submitted.clone();
    assert_eq!(subs.len(), 1, "one job for all configurations");
    let s = &subs[0];
    assert_eq!(s["entrypoint_num_cpus"], json!(0.0));
    assert!(s["submission_id"]
        .as_str()
        .unwrap()
        .starts_with("pd-lab-nixl-probe-"));
    assert!(s["entrypoint"].as_str().unwrap().starts_with("python -c "));
    let cfgs = configs_of(s["entrypoint"].as_str().unwrap());
    assert_eq!(
        cfgs[0]["env"],
        json!({"UCX_TLS": "tcp"}),
        "the caller's UCX_TLS reaches the actors"
    );
    assert!(cfgs[1]["env"]["LD_LIBRARY_PATH"]
        .as_str()
        .unwrap()
        .contains("/opt/amazon/efa"));
    assert_eq!(
        (cfgs[2]["memory"].as_str(), cfgs[2]["iters"].as_u64()),
        (Some("dram"), Some(3))
    );
}

#[test]
fn every_configuration_measured_intact_exits_zero_and_viz_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let fake = cluster(&[("10.0.0.1", 0.0), ("10.0.0.2", 0.0)]);
    fake.state.lock().unwrap().jobs.logs = Some(job(|c| Some(measured(c))));
    let out = dir.path().join("p.json");
    bin(dir.path())
        .args([
            "probe",
            "--ray-address",
            &fake.url(),
            "--placement",
            "spread",
            "--shape",
            "1:1,1:2",
        ])
        .args(SMALL)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("64 slices intact"));
    let file = ProbeFile::read(&out).unwrap();
    assert!(file.results.iter().all(|r| r.ok()));
    assert_eq!(file.results[1].config.d_tp, 2);

    // viz shows it: a table and the bandwidth/latency figure.
    use clap::Parser;
    let plots = dir.path().join("plots");
    let cli = viz::cli::Cli::try_parse_from([
        "viz".as_ref(),
        "--probe".as_ref(),
        out.as_os_str(),
        "--plot-path".as_ref(),
        plots.as_os_str(),
        "--format".as_ref(),
        "svg".as_ref(),
    ])
    .unwrap();
    let mut text = Vec::new();
    viz::app::run(&cli, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("spread ucx P1:D2 4KiB×16"), "{text}");
    assert!(text.contains("10.0.0.1 -> 10.0.0.2"), "{text}");
    let svg = std::fs::read_to_string(plots.join("p_nixl_probe.svg")).unwrap();
    assert!(svg.contains("NIXL transfer probe"));
}

#[test]
fn corrupted_or_misplaced_transfers_fail_their_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let fake = cluster(&[("10.0.0.1", 0.0), ("10.0.0.2", 0.0)]);
    fake.state.lock().unwrap().jobs.logs = Some(job(|c| {
        let mut v = measured(c);
        if c["placement"] == "pack" {
            v["corrupt_slices"] = json!(16);
            v["zero_slices"] = json!(16);
        } else {
            v["d_nodes"] = v["p_nodes"].clone();
        }
        Some(v)
    }));
    let out = dir.path().join("p.json");
    bin(dir.path())
        .args(["probe", "--ray-address", &fake.url()])
        .args(SMALL)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "CORRUPT: 16 of 64 slices differ (16 all zeros)",
        ))
        .stdout(predicate::str::contains("not on the planned"));
}

#[test]
fn a_job_that_fails_before_any_result_is_an_error_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let fake = cluster(&[("10.0.0.1", 0.0), ("10.0.0.2", 0.0)]);
    {
        let mut st = fake.state.lock().unwrap();
        st.jobs.statuses = vec!["RUNNING".into(), "FAILED".into()];
        st.jobs.message = "Job entrypoint command failed with exit code 1: ModuleNotFoundError: No module named 'nixl'".into();
        st.jobs.logs = Some(Arc::new(|_: &str| {
            "Traceback …\nModuleNotFoundError: No module named 'nixl'\n".to_string()
        }));
    }
    let out = dir.path().join("p.json");
    bin(dir.path())
        .args(["probe", "--ray-address", &fake.url()])
        .args(SMALL)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("ended FAILED without results"))
        .stderr(predicate::str::contains("No module named 'nixl'"));
    assert!(!out.exists(), "no result file without results");
}

#[test]
fn a_job_past_its_timeout_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let fake = cluster(&[("10.0.0.1", 0.0), ("10.0.0.2", 0.0)]);
    fake.state.lock().unwrap().jobs.statuses = vec!["RUNNING".into()];
    bin(dir.path())
        .args(["probe", "--ray-address", &fake.url(), "--timeout", "2"])
        .args(SMALL)
        .arg("--out")
        .arg(dir.path().join("p.json"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("did not finish within 2 s"));
    let st = fake.state.lock().unwrap();
    assert_eq!(st.jobs.stopped.len(), 1, "the job was stopped");
    assert_eq!(
        Some(st.jobs.stopped[0].as_str()),
        st.jobs.submitted[0]["submission_id"].as_str()
    );
}

#[test]
fn configurations_the_cluster_cannot_hold_are_reported_not_submitted() {
    let dir = tempfile::tempdir().unwrap();
    let fake = cluster(&[("10.0.0.1", 1.0)]);
    fake.state.lock().unwrap().jobs.logs = Some(job(|c| Some(measured(c))));
    let out = dir.path().join("p.json");
    // One node with one GPU: vram pack needs 2 GPUs, spread needs two nodes.
    bin(dir.path())
        .args([
            "probe",
            "--ray-address",
            &fake.url(),
            "--blocks",
            "4",
            "--out",
        ])
        .arg(&out)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "pack needs one node with 2 GPU(s)",
        ))
        .stdout(predicate::str::contains("spread needs a second node"));
    assert_eq!(fake.count("POST"), 0, "nothing submitted");
    // With host memory, pack fits; spread still does not.
    bin(dir.path())
        .args(["probe", "--ray-address", &fake.url(), "--out"])
        .arg(&out)
        .args(SMALL)
        .assert()
        .code(3);
    let file = ProbeFile::read(&out).unwrap();
    assert!(file.results[0].ok());
    assert!(file.results[1]
        .error
        .as_deref()
        .unwrap()
        .starts_with("not placed"));
}

#[test]
fn dry_run_shows_placements_and_the_program_and_submits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fake = cluster(&[("10.0.0.1", 8.0), ("10.0.0.2", 8.0)]);
    bin(dir.path())
        .args([
            "probe",
            "--ray-address",
            &fake.url(),
            "--dry-run",
            "--shape",
            "2:4",
            "--python",
            "python3",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("import ray"))
        .stdout(predicate::str::contains("PD_LAB_PROBE"))
        .stderr(predicate::str::contains(
            "c2 spread ucx P2:D4 32KiB×1024: P on 10.0.0.1, D on 10.0.0.2",
        ))
        .stderr(predicate::str::contains("entrypoint `python3 -c …`"));
    assert_eq!(fake.count("POST"), 0);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn bad_flags_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["probe", "--shape", "4:2"],
        vec!["probe", "--shape", "1:3", "--block-size", "1000"],
        vec!["probe", "--block-size", "12parsecs"],
        vec!["probe", "--nodes", "a,b,c"],
        vec!["probe", "--backend", "sim", "--nodes", "a"],
        vec!["probe", "--python", "py\"thon"],
        vec!["probe", "--blocks", "0"],
    ] {
        bin(dir.path()).args(&args).assert().code(2);
    }
}

#[test]
fn the_simulator_reports_its_link_constants() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim.json");
    bin(dir.path())
        .args([
            "probe",
            "--backend",
            "sim",
            "--network",
            "ib",
            "--block-size",
            "1MiB",
            "--blocks",
            "64",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("sim nvlink"))
        .stdout(predicate::str::contains("sim ib"));
    let f = ProbeFile::read(&out).unwrap();
    assert_eq!(f.backend, "sim");
    let (pack, spread) = (&f.results[0], &f.results[1]);
    assert!(pack.figures.bandwidth_gbps.unwrap() > spread.figures.bandwidth_gbps.unwrap());
    assert_eq!(f.environment.sim_network.as_deref(), Some("ib"));
}

#[test]
fn a_signal_stops_the_running_job_and_exits_with_its_code() {
    use pd_testkit::process::{signal, wait_until, ChildGuard};
    let dir = tempfile::tempdir().unwrap();
    let fake = cluster(&[("10.0.0.1", 0.0), ("10.0.0.2", 0.0)]);
    fake.state.lock().unwrap().jobs.statuses = vec!["RUNNING".into()];
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_launch-gptoss"));
    cmd.current_dir(dir.path())
        .env_remove("UCX_TLS")
        .env_remove("PD_LAB_BACKEND")
        .args(["probe", "--ray-address", &fake.url(), "--out", "p.json"])
        .args(SMALL)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = ChildGuard::spawn(&mut cmd);
    assert!(
        wait_until(Duration::from_secs(30), || !fake
            .state
            .lock()
            .unwrap()
            .jobs
            .submitted
            .is_empty()),
        "the job was submitted"
    );
    std::thread::sleep(Duration::from_millis(300));
    signal(child.pid() as u32, libc::SIGINT);
    let (status, _, err) = child.wait_timeout(Duration::from_secs(30));
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    assert_eq!(
        fake.state.lock().unwrap().jobs.stopped.len(),
        1,
        "the job was stopped"
    );
    assert!(!dir.path().join("p.json").exists());
}

#[test]
fn use_libfabric_on_ray_warns_about_the_known_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
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
        "--dry-run",
        "--nodes",
        "10.0.0.1:8,10.0.0.2:8",
    ];
    bin(dir.path())
        .args(args)
        .arg("--use-libfabric")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "https://github.com/vllm-project/vllm/issues/27055",
        ))
        .stderr(predicate::str::contains("run-bm --smoke"));
    bin(dir.path())
        .args(args)
        .arg("--use-ucx")
        .assert()
        .success()
        .stderr(predicate::str::contains("27055").not());
}
