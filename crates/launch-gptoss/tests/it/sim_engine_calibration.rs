//! `sim-calibrate` against the reference `vllm bench serve` results: every configuration
//! of both folders simulates (or is a row with vLLM's reason), the summary states coverage
//! and per-category errors, the in-sample errors meet the project's targets, and the
//! simulated result files are vLLM-compatible.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use launch_gptoss::cli::SimCalibrateArgs;
use launch_gptoss::sim::calibrate::report::{COVERAGE_TARGET, TARGETS};
use launch_gptoss::sim::calibrate::{calibrate, data, load_real, write_results};
use launch_gptoss::sim::engine::NetworkKind;
use pd_common::deployment::{DeployMode, GpuKind, ServingBackend};
use pd_common::result::{BenchResult, RequestRate};

fn reference() -> PathBuf {
    pd_testkit::fixtures::reference_dir()
}

fn args(real: Vec<PathBuf>, out: &Path) -> SimCalibrateArgs {
    SimCalibrateArgs {
        real_dir: real,
        out: out.to_path_buf(),
        markdown: None,
        sim_config: Vec::new(),
        seed: 0,
        jobs: Some(2),
        loco: false,
        folds: None,
        fit: false,
        fit_out: None,
        fit_fix: Vec::new(),
    }
}

/// A root holding copies of reference directories under new names.
fn root_with(copies: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for (from, to) in copies {
        let dst = tmp.path().join(to);
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(reference().join(from)).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
        }
    }
    tmp
}

#[test]
fn names_map_to_deployments() {
    let set = load_real(&[reference()]).unwrap();
    let get = |suffix: &str| {
        set.configs
            .iter()
            .find(|c| c.name.ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix}"))
    };
    let c = get("H200_itl5000_otl250_mixed_spread_p1xtp4-d1xtp4");
    assert_eq!(
        (c.gpu, c.spec.mode(), c.network),
        (GpuKind::H200, DeployMode::PdSpread, NetworkKind::Ib)
    );
    let c = get("spread_srd_1xtp4-1xtp4");
    assert_eq!((c.gpu, c.network), (GpuKind::H100, NetworkKind::EfaSrd));
    assert_eq!(get("spread_tcp_p1xtp4-d1xtp4").network, NetworkKind::Tcp);
    let c = get("mixed_1xtp4-1xtpep4");
    assert_eq!(c.label.ep_flags(), (false, true));
    let c = get("1xtp4-3xtp4-ucx120");
    assert_eq!(
        (c.spec.mode(), c.label.total_gpus),
        (DeployMode::PdSpread, 16)
    );
    // long inputs raise max_model_len like a user would
    assert_eq!(get("itl50000_otl250_mixed_1xtp2").max_model_len(), 51200);
    assert_eq!(
        get("itl5000_otl250_mixed_baseline_4xtp2").max_model_len(),
        16000
    );
    // rate points keep their cap and rate; decode-only and prefill-only are read as such
    let r = get("itl10000_otl500_4xtp2");
    let p = &r.points[0];
    assert_eq!(
        (p.rate, p.max_concurrency, p.num_prompts),
        (1.0, Some(32), 64)
    );
    assert_eq!(
        get("itl5000_otl250_prefill-only_1xtp1").points[0].output_len,
        1
    );
    // the byte-identical pair is counted once
    assert_eq!(set.configs.iter().filter(|c| !c.counted()).count(), 1);
    assert!(data::max_model_len_for(5000, 250) == 16000);
}

#[test]
fn calibration_covers_every_reference_point_and_meets_the_targets() {
    let out = tempfile::tempdir().unwrap();
    let cal = calibrate(&args(vec![reference()], out.path())).unwrap();
    assert_eq!(write_results(&cal, out.path()).unwrap(), 141);
    let s = &cal.summary;
    assert!(s.points_found >= 130, "{} points", s.points_found);
    assert!(s.coverage() >= COVERAGE_TARGET, "coverage {}", s.coverage());
    for (i, ((m, n), target)) in s.overall.iter().zip(TARGETS).enumerate() {
        assert!(*m <= target, "metric {i}: {m:.1}% > {target}% over {n}");
    }
    // every category of the issue is reported
    for c in [
        "collocated",
        "PD pack",
        "PD spread",
        "rate points",
        "decode-only",
        "long input",
    ] {
        assert!(s.per_category.iter().any(|(k, _)| *k == c), "{c}");
    }
    assert!(s.ranks.len() >= 6 && s.median_rho().is_finite());
    // rate points simulate with their cap: a vLLM-compatible file with rate and cap
    let f = out
        .path()
        .join("gptoss_itl10000_otl500_4xtp2")
        .join("conc64_rr2.json");
    let r = BenchResult::read(&f).unwrap();
    assert_eq!(
        (r.request_rate, r.max_concurrency),
        (RequestRate::Finite(2.0), Some(64))
    );
    assert_eq!((r.num_prompts, r.completed), (128, 128));
    // long inputs produce tokens, not an empty success
    let f = out
        .path()
        .join("gptoss_itl50000_otl250_mixed_1xtp2")
        .join("conc32.json");
    let r = BenchResult::read(&f).unwrap();
    assert_eq!(r.total_output_tokens, 160 * 250);
    // closed-loop files as before
    let f = out
        .path()
        .join("gptoss_itl5000_otl250_mixed_baseline_4xtp2")
        .join("conc16.json");
    let r = BenchResult::read(&f).unwrap();
    assert_eq!(r.max_concurrency, Some(16));
    assert_eq!(r.request_rate, RequestRate::Inf);
    assert_eq!((r.num_prompts, r.completed, r.failed), (80, 80, Some(0)));
    let x = r.pd_lab.as_ref().unwrap();
    assert_eq!(x.serving_backend, Some(ServingBackend::Sim));
    assert_eq!(
        (x.total_gpus, x.deployment_label.as_deref()),
        (Some(8), Some("4xtp2"))
    );
    for k in ["mean", "median", "std", "p99"] {
        for m in ["ttft", "tpot", "itl"] {
            assert!(r.stat(&format!("{k}_{m}_ms")).is_some(), "{k}_{m}_ms");
        }
    }
}

#[test]
fn refused_and_unreadable_configurations_are_rows_not_aborts() {
    // a TP1 prefill replica in PD (hybrid KV manager off) cannot hold a 51,200-token
    // max_model_len on an H100: vLLM refuses to start; the sweep goes on
    let root = root_with(&[
        (
            "gptoss_itl50000_otl250_mixed_1xtp2",
            "gptoss_itl50000_otl250_mixed_pd_p1xtp1-d1xtp2",
        ),
        (
            "gptoss_itl5000_otl250_mixed_baseline_2xtp4",
            "gptoss_itl5000_otl250_mixed_baseline_2xtp4",
        ),
        (
            "gptoss_itl5000_otl250_mixed_baseline_2xtp4",
            "gptoss_itl5000_otl250_mixed_no-layout-here",
        ),
    ]);
    let out = tempfile::tempdir().unwrap();
    let cal = calibrate(&args(vec![root.path().to_path_buf()], out.path())).unwrap();
    let refused: Vec<_> = cal.rows.iter().filter(|r| r.sim.is_none()).collect();
    assert_eq!(refused.len(), 1);
    let why = refused[0].refused.as_deref().unwrap();
    assert!(why.contains("max seq len (51200)"), "{why}");
    assert_eq!(cal.summary.points_found, 7);
    assert_eq!(cal.summary.points_simulated, 6);
    assert_eq!(cal.set.skipped.len(), 1);
    assert!(
        cal.set.skipped[0].1.contains("no layout"),
        "{:?}",
        cal.set.skipped
    );
}

#[test]
fn cli_reads_several_roots_and_writes_markdown() {
    let a = root_with(&[(
        "gptoss_itl5000_otl250_mixed_baseline_2xtp4",
        "gptoss_itl5000_otl250_mixed_baseline_2xtp4",
    )]);
    let b = root_with(&[("gptoss_itl5000_otl1_4xtp2", "gptoss_itl5000_otl1_4xtp2")]);
    let out = tempfile::tempdir().unwrap();
    let md = out.path().join("docs/cal.md");
    let assert = Command::cargo_bin("launch-gptoss")
        .unwrap()
        .arg("sim-calibrate")
        .arg("--real-dir")
        .arg(a.path())
        .arg("--real-dir")
        .arg(b.path())
        .arg("--out")
        .arg(out.path().join("res"))
        .arg("--markdown")
        .arg(&md)
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains("coverage: 11 of 11 points simulated"),
        "{stdout}"
    );
    assert!(stdout.contains("median absolute error"), "{stdout}");
    assert!(out
        .path()
        .join("res/gptoss_itl5000_otl1_4xtp2/conc128_rr4.json")
        .is_file());
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(
        text.contains("| C=4 |") && text.contains("| R=4 cap 128 |"),
        "{text}"
    );
    assert!(text.contains("Coverage") && text.contains("Per category"));
}

#[test]
fn cli_reports_a_missing_real_dir() {
    let tmp = tempfile::tempdir().unwrap();
    // the default (bm_results/reference relative to the working directory) is missing here
    Command::cargo_bin("launch-gptoss")
        .unwrap()
        .current_dir(tmp.path())
        .args(["sim-calibrate", "--out", "x"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("bm_results/reference not found"));
}
