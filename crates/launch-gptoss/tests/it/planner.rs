//! `launch-gptoss plan`: enumerates, simulates and ranks; writes viz-readable result
//! directories and command lines the real tools accept; compares with measured runs.

use std::path::PathBuf;

use assert_cmd::Command;
use clap::Parser;
use launch_gptoss::cli::{Cli, Command as Sub, PlanArgs};
use launch_gptoss::planner::{self, commands};

fn args(extra: &[&str]) -> PlanArgs {
    let mut argv = vec!["launch-gptoss", "plan"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).unwrap().command {
        Some(Sub::Plan(a)) => a,
        other => panic!("{other:?}"),
    }
}

#[test]
fn plans_rank_layouts_under_the_objectives() {
    let a = args(&[
        "--gpus",
        "4",
        "-c",
        "4,16",
        "--no-ep",
        "--jobs",
        "2",
        "--no-dirs",
    ]);
    let p = planner::plan(&a, false).unwrap();
    // every layout of 4 GPUs: collocated 1..4×TP1, 1..2×TP2, 1×TP4 and the pd-pack ones
    let names: Vec<String> = p.evals.iter().map(|e| e.layout.name()).collect();
    for want in [
        "4xtp1",
        "2xtp2",
        "1xtp4",
        "pack_p1xtp2-d1xtp2",
        "pack_p2xtp1-d1xtp2",
    ] {
        assert!(names.iter().any(|n| n == want), "{want}: {names:?}");
    }
    assert!(
        p.evals.iter().all(|e| e.refused.is_none()),
        "TP1 on H100 simulates"
    );
    assert!(p.evals.iter().all(|e| e.points.len() == 2));
    // ranked best first, margins consistent
    assert_eq!(p.ranked.len(), p.evals.len());
    for w in p.ranked.windows(2) {
        assert!(w[0].throughput_per_gpu >= w[1].throughput_per_gpu);
        let m = w[0].margin_pct.unwrap();
        let want =
            (w[0].throughput_per_gpu - w[1].throughput_per_gpu) / w[1].throughput_per_gpu * 100.0;
        assert!((m - want).abs() < 1e-9);
    }
    // a tight TTFT objective keeps only points that meet it
    let tight = args(&[
        "--gpus",
        "4",
        "-c",
        "4,16",
        "--no-ep",
        "--slo-ttft",
        "400",
        "--no-dirs",
    ]);
    let q = planner::plan(&tight, false).unwrap();
    for r in &q.ranked {
        assert!(q.evals[r.eval].points[r.point].ttft_ms <= 400.0);
    }
    // the frontier is monotone: more throughput costs TPOT
    for w in p.frontier.windows(2) {
        assert!(w[1].tpot_ms >= w[0].tpot_ms && w[1].throughput_per_gpu > w[0].throughput_per_gpu);
    }
}

#[test]
fn cli_writes_json_dirs_viz_reads_and_commands_the_tools_accept() {
    let out = tempfile::tempdir().unwrap();
    let assert = Command::cargo_bin("launch-gptoss")
        .unwrap()
        .args([
            "plan",
            "--gpus",
            "8",
            "-c",
            "8,32",
            "--layouts",
            "collocated,pd-pack",
            "--top",
            "2",
            "--slo-tpot",
            "30",
            "--json",
            "--no-progress",
            "--out",
        ])
        .arg(out.path())
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    let layouts = json["layouts"].as_array().unwrap();
    assert!(layouts.len() > 20);
    assert_eq!(layouts[0]["rank"], 1);
    assert!(json["known_error"]["throughput_pct"].as_f64().unwrap() > 0.0);
    // the top 2 have commands and result directories
    let mut dirs = Vec::new();
    for l in &layouts[..2] {
        let cmds = &l["commands"];
        let launch: Vec<String> = serde_json::from_value(cmds["launch_sim"].clone()).unwrap();
        let cli = Cli::try_parse_from(&launch).unwrap();
        let spec = cli.launch.spec().unwrap();
        assert!(spec.validate(8).is_ok());
        let run_bm: Vec<String> = serde_json::from_value(cmds["run_bm"].clone()).unwrap();
        run_bm::cli::Cli::try_parse_from(&run_bm).unwrap();
        dirs.push(PathBuf::from(l["result_dir"].as_str().unwrap()));
    }
    assert!(layouts[2]["commands"].is_null());
    let loaded = viz::load::load_experiments(&dirs);
    assert_eq!(loaded.experiments.len(), 2, "{:?}", loaded.warnings);
    for e in &loaded.experiments {
        assert_eq!(e.points.len(), 2);
        assert!(e.total_gpus.is_some_and(|g| g > 0));
        let r = &e.points[0].result;
        assert_eq!(r.pd_lab.as_ref().unwrap().tool, "launch-gptoss plan");
    }
}

#[test]
fn expert_parallel_layouts_carry_their_overrides_and_compare_with_real_runs() {
    let mut a = args(&[
        "--gpus",
        "8",
        "--layouts",
        "pd-pack",
        "--jobs",
        "2",
        "--no-dirs",
    ]);
    a.compare_with = vec![pd_testkit::fixtures::reference_dir()];
    let p = planner::plan(&a, false).unwrap();
    let ep = p
        .evals
        .iter()
        .find(|e| e.layout.name() == "pack_p1xtp4-d1xtpep4")
        .expect("tpep layouts are enumerated");
    let c = commands::commands(
        &ep.layout,
        &p.setup.workload,
        &p.setup.sweep,
        8,
        p.setup.network,
    );
    let (_, text) = c.overrides.unwrap();
    assert!(text.contains("[decode.engine_kwargs]"));
    let cmp = p.comparison.unwrap();
    // the pack layouts of the reference runs are matched (the EP one included)
    assert!(cmp.matched.len() >= 7, "{:?}", cmp.matched);
    assert!(cmp
        .matched
        .iter()
        .any(|m| m.layout == "pack_p1xtp4-d1xtpep4"));
    assert!(cmp.spearman.is_finite());
    assert!(cmp
        .unmatched
        .iter()
        .any(|(d, why)| d.contains("H200") && why.contains("GPU kind")));
}

#[test]
fn impossible_requests_are_clear_errors() {
    Command::cargo_bin("launch-gptoss")
        .unwrap()
        .args(["plan", "--gpus", "0", "--no-progress"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("--gpus must be at least 1"));
    Command::cargo_bin("launch-gptoss")
        .unwrap()
        .args(["plan", "--gpus", "100000", "--no-progress"])
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "more than the planner enumerates",
        ));
    Command::cargo_bin("launch-gptoss")
        .unwrap()
        .args(["plan", "--gpus", "4", "-c", "0", "--no-progress"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("concurrency"));
    // a workload no layout can hold is a refusal per layout, not a crash
    let out = Command::cargo_bin("launch-gptoss")
        .unwrap()
        .args([
            "plan",
            "--gpus",
            "1",
            "--itl",
            "200000",
            "--otl",
            "10",
            "-c",
            "4",
            "--json",
            "--no-progress",
            "--no-dirs",
        ])
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let l = &json["layouts"][0];
    assert!(l["rank"].is_null());
    assert!(
        l["refused"].as_str().unwrap().contains("max seq len"),
        "{l}"
    );
}
