//! The `viz` binary: flags, output files, errors and exit codes.

use assert_cmd::Command;
use predicates::prelude::*;

fn viz() -> Command {
    Command::cargo_bin("viz").unwrap()
}

#[test]
fn help_lists_the_flags_and_examples() {
    let out = viz()
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8(out).unwrap();
    for flag in [
        "--result-dir",
        "--compare-dirs",
        "--exps",
        "--plot-type",
        "--format",
        "--plot-path",
        "--show-tables",
        "--no-show-tables",
        "--plot",
        "--use-normalized",
        "--latency-mode",
        "--chunk-size",
        "--log-latency",
        "--log-concurrency",
        "--use-interactivity",
        "--throughput-metric",
        "--gpus-per-node",
        "--csv",
        "--slo-tpot",
        "--slo-ttft",
        "--report",
        "Examples:",
        "<NAME>_<PLOT_TYPE>.png",
        "comparison",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn compare_writes_named_plots_tables_csv_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let a = crate::common::real_dir("baseline_4xtp2");
    let b = crate::common::real_dir("pd_p1xtp2-d2xtp2");
    let out = viz()
        .current_dir(tmp.path())
        .arg("--exps")
        .arg(&a)
        .arg(&b)
        .args([
            "--format",
            "svg",
            "--csv",
            "csv",
            "--slo-tpot",
            "10",
            "--report",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("TPOT Median (ms):"), "{stdout}");
    assert!(stdout.contains("Output Throughput Normalized (token/s/node):"));
    assert!(stdout.contains("Best under SLA (TPOT <= 10 ms)"));
    assert!(stdout.contains("Winner: "));
    assert!(tmp
        .path()
        .join("plots/comparison_comprehensive.svg")
        .exists());
    assert!(!tmp
        .path()
        .join("plots/comparison_comprehensive.png")
        .exists());
    assert!(tmp
        .path()
        .join("csv/comparison_median_ttft_ms.csv")
        .exists());
    let report =
        std::fs::read_to_string(tmp.path().join("results/findings/comparison.md")).unwrap();
    assert!(report.contains("## Reproducibility checklist"));
    assert!(report.contains("Deployment command: **missing** (no manifest.json"));
    assert!(
        report.contains("(../../plots/comparison_comprehensive.svg)"),
        "{report}"
    );
    assert!(report.contains("| Concurrency | baseline_4xtp2 | pd_p1xtp2-d2xtp2 |"));
    assert!(report.contains("Best under SLA"));
}

#[test]
fn single_dir_plots_are_named_after_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let a = crate::common::real_dir("pd_p2xtp2-d1xtp2");
    viz()
        .current_dir(tmp.path())
        .arg("--result-dir")
        .arg(&a)
        .args([
            "--no-show-tables",
            "--plot-type",
            "tpot-vs-concurrency",
            "--plot-path",
            "out",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("TPOT Median (ms):").not());
    let stem = "gptoss_itl5000_otl250_mixed_pd_p2xtp2-d1xtp2_tpot-vs-concurrency";
    assert!(tmp.path().join(format!("out/{stem}.png")).exists());
    assert!(tmp.path().join(format!("out/{stem}.svg")).exists());
}

#[test]
fn bad_dirs_warn_and_the_rest_is_plotted() {
    let tmp = tempfile::tempdir().unwrap();
    let good = crate::common::real_dir("baseline_2xtp4");
    let corrupt = tmp.path().join("m_itl1_otl2_mixed_c_1xtp8");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("conc4.json"), "{\"date\": ").unwrap();
    viz()
        .current_dir(tmp.path())
        .arg("--compare-dirs")
        .arg(&good)
        .arg(&corrupt)
        .arg(tmp.path().join("nope"))
        .args(["--no-show-tables", "--format", "png"])
        .assert()
        .success()
        .stderr(predicate::str::contains("conc4.json"))
        .stderr(predicate::str::contains("nope"));
    assert!(tmp
        .path()
        .join("plots/comparison_comprehensive.png")
        .exists());
}

#[test]
fn nothing_usable_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    viz()
        .current_dir(tmp.path())
        .args(["--result-dir", "missing_dir"])
        .assert()
        .failure()
        .code(1)
        .stderr(predicate::str::contains("missing_dir"))
        .stderr(predicate::str::contains("error: no usable results"));
    assert!(!tmp.path().join("plots").exists());
    viz()
        .assert()
        .failure()
        .stderr(predicate::str::contains("--result-dir"));
    viz()
        .args(["--result-dir", "x", "--latency-mode", "bogus"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("bogus"));
}

/// `viz … | head` must still write the plots when stdout closes early.
#[test]
fn closed_stdout_still_writes_plots() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let real = crate::common::real_dir("baseline_4xtp2");
    let mut child = Command::new(env!("CARGO_BIN_EXE_viz"))
        .arg("--result-dir")
        .arg(&real)
        .arg("--plot-path")
        .arg(dir.path())
        .arg("--format")
        .arg("svg")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before viz writes anything
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let svgs = std::fs::read_dir(dir.path()).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "svg")
    });
    assert_eq!(svgs.count(), 1);
}
