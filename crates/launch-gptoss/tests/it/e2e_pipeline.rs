//! The whole methodology through files on disk: `launch-gptoss --backend sim` (a real
//! background process) → a `run-bm` concurrency sweep → `viz` plots → `launch-gptoss
//! shutdown`. The measured metrics must match the simulator's own model, run in virtual
//! time on the same deployment and workload, and nothing may be left running.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use launch_gptoss::sim::engine::{ClusterConfig, Engine, NetworkKind, SimConstants};
use launch_gptoss::sim::vclient::{Load, Prompts, RunSpec, VirtualClient};
use pd_common::deployment::{DeploymentRecord, DeploymentSpec, GpuKind, StopHandle};
use pd_common::BenchResult;

const LAUNCH: &str = env!("CARGO_BIN_EXE_launch-gptoss");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
}

/// Shuts the deployment down even when an assertion fails.
struct Deployment {
    record: PathBuf,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = Command::new(LAUNCH)
            .args(["shutdown", "--deployment-file"])
            .arg(&self.record)
            .status();
    }
}

fn within(measured: f64, model: f64, rel: f64, abs: f64, what: &str) {
    let diff = (measured - model).abs();
    assert!(
        diff <= rel * model + abs,
        "{what}: measured {measured:.3} vs model {model:.3} (allowed {:.0}% + {abs})",
        rel * 100.0
    );
}

#[test]
fn sim_cluster_to_sweep_to_plot() {
    let tmp = tempfile::tempdir().unwrap();
    let record = tmp.path().join("deployment.toml");
    let results = tmp.path().join("results/gptoss_itl1000_otl40_mixed_e2e");
    let plots = tmp.path().join("plots");
    let port = free_port().to_string();

    // 1. Deploy: collocated 2 × TP2 on the simulated cluster (returns once it answers).
    let out = Command::new(LAUNCH)
        .args([
            "--backend",
            "sim",
            "--mode",
            "collocated",
            "--tp",
            "2",
            "--num-replicas",
            "2",
        ])
        .args(["--port", &port, "--deployment-file"])
        .arg(&record)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "launch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _guard = Deployment {
        record: record.clone(),
    };
    let rec = DeploymentRecord::read(&record).unwrap();
    assert_eq!(rec.label, "2xtp2");
    assert_eq!(rec.total_gpus, 4);
    let StopHandle::Pid { pid } = rec.stop else {
        panic!("sim record must stop by pid: {:?}", rec.stop)
    };
    assert!(pid_alive(pid));

    // 2. Benchmark through the record (endpoint, model name, label, GPUs come from it).
    let argv: Vec<String> = [
        "run-bm",
        "-e",
        "e2e",
        "-t",
        "concurrency",
        "-c",
        "2,8",
        "--itl",
        "1000",
        "--otl",
        "40",
        "--deployment-file",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        record.display().to_string(),
        "--result-dir".into(),
        results.display().to_string(),
    ])
    .collect();
    let cli = run_bm::cli::Cli::try_parse_from(&argv).unwrap();
    assert_eq!(run_bm::run(cli, argv).unwrap(), 0, "run-bm sweep failed");

    // 3. Result files: one per point, vLLM keys, marked as simulated, metrics = the model.
    let constants = SimConstants::builtin(GpuKind::H100).unwrap();
    let mut engine = Engine::new(ClusterConfig {
        spec: DeploymentSpec::collocated(2, 2),
        gpus_per_node: 8,
        network: NetworkKind::EfaSrd,
        constants,
        max_model_len: 16000,
        seed: 0,
    })
    .unwrap();
    let mut client = VirtualClient::new(&mut engine, 1_000_000);
    for c in [2u32, 8] {
        let r = BenchResult::read(&results.join(format!("conc{c}.json"))).unwrap();
        assert_eq!(
            r.completed,
            u64::from(5 * c),
            "conc{c}: all requests complete"
        );
        assert_eq!(r.failed, Some(0));
        assert_eq!(r.max_concurrency, Some(u64::from(c)));
        assert_eq!(
            r.total_input_tokens,
            u64::from(5 * c * 1000),
            "exact input lengths"
        );
        assert_eq!(
            r.total_output_tokens,
            u64::from(5 * c * 40),
            "exact output lengths"
        );
        let extra = r.pd_lab.as_ref().expect("pd_lab extras");
        assert_eq!(extra.serving_backend, Some(pd_common::ServingBackend::Sim));
        assert_eq!(extra.total_gpus, Some(4));
        assert_eq!(extra.deployment_label.as_deref(), Some("2xtp2"));
        assert!(results.join(format!("conc{c}.requests.csv")).is_file());

        let model = client
            .run(&RunSpec {
                load: Load::closed_loop(c),
                num_prompts: 5 * c,
                input_len: 1000,
                output_len: 40,
                prompts: Prompts::Unique,
                warmup: false,
            })
            .unwrap()
            .medians();
        // Real time on a loaded 2-core machine: generous but meaningful tolerances.
        within(
            r.median_tpot_ms().unwrap(),
            model.tpot_ms,
            0.2,
            1.0,
            &format!("conc{c} median TPOT ms"),
        );
        within(
            r.median_ttft_ms().unwrap(),
            model.ttft_ms,
            0.25,
            10.0,
            &format!("conc{c} median TTFT ms"),
        );
        within(
            r.output_throughput,
            model.output_throughput,
            0.2,
            0.0,
            &format!("conc{c} output tok/s"),
        );
    }
    assert!(results.join("manifest.json").is_file());

    // 4. Plot from the files.
    let viz_cli = viz::cli::Cli::try_parse_from([
        "viz".to_string(),
        "--result-dir".into(),
        results.display().to_string(),
        "--plot-path".into(),
        plots.display().to_string(),
        "--no-show-tables".into(),
    ])
    .unwrap();
    let mut out = Vec::new();
    viz::app::run(&viz_cli, &mut out).unwrap();
    let name = results.file_name().unwrap().to_str().unwrap();
    let png = plots.join(format!("{name}_comprehensive_analysis.png"));
    let decoder = png::Decoder::new(std::fs::File::open(&png).unwrap());
    let reader = decoder.read_info().unwrap();
    assert!(
        reader.info().width >= 1000,
        "plot width {}",
        reader.info().width
    );
    let svg =
        std::fs::read_to_string(plots.join(format!("{name}_comprehensive_analysis.svg"))).unwrap();
    assert!(svg.contains("<svg"));

    // 5. Shut down: the process is gone, the record removed; again is a no-op.
    drop(_guard);
    for _ in 0..50 {
        if !pid_alive(pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !pid_alive(pid),
        "simulator pid {pid} still running after shutdown"
    );
    assert!(!record.exists(), "record removed");
    let again = Command::new(LAUNCH)
        .args(["shutdown", "--deployment-file"])
        .arg(&record)
        .status()
        .unwrap();
    assert!(again.success());
}
