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
        "<NAME>_<TYPE>.png",
        "comprehensive_analysis.png",
        "--report-format",
        "--quiet",
        "--verbose",
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
    let stem = "baseline_4xtp2_vs_pd_p1xtp2-d2xtp2";
    let p = |rel: &str| tmp.path().join(rel);
    assert!(p(&format!("plots/{stem}_comprehensive_analysis.svg")).exists());
    assert!(
        p("plots/comprehensive_analysis.svg").exists(),
        "viz.py's name"
    );
    assert!(!p(&format!("plots/{stem}_comprehensive_analysis.png")).exists());
    assert!(p(&format!("csv/{stem}_median_ttft_ms.csv")).exists());
    let report = std::fs::read_to_string(p(&format!("results/findings/{stem}.md"))).unwrap();
    assert!(report.contains("## Reproducibility checklist"));
    assert!(report.contains("Deployment command: **missing** (no manifest.json"));
    assert!(
        report.contains(&format!("(../../plots/{stem}_comprehensive_analysis.svg)")),
        "{report}"
    );
    assert!(report.contains("## Significance of differences"));
    let html = std::fs::read_to_string(p(&format!("results/findings/{stem}.html"))).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<figure><svg"), "figures are inlined");
    assert!(
        !html.contains("<img") && !html.contains("src=\""),
        "self-contained"
    );
    assert!(html.contains("<table>"));
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
    assert!(!tmp.path().join("out/comprehensive_analysis.png").exists());
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
    assert!(tmp.path().join("plots/comprehensive_analysis.png").exists());
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
        .stderr(predicate::str::contains("viz: error: no usable results"));
    assert!(!tmp.path().join("plots").exists());
    // Usage errors: exit 2 (pd_common::exit::USAGE), nothing written.
    viz()
        .current_dir(tmp.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--result-dir"));
    viz()
        .args(["--result-dir", "x", "--latency-mode", "bogus"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bogus"));
    viz().args(["--exps", "x", "--plo"]).assert().code(2);
    viz().arg("--help").assert().code(0);
}

/// Each cause of an error is printed once; -q hides warnings, the error stays.
#[test]
fn errors_print_each_cause_once_and_quiet_hides_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let blocker = tmp.path().join("not_a_dir");
    std::fs::write(&blocker, "x").unwrap();
    let a = crate::common::real_dir("baseline_4xtp2");
    let out = viz()
        .arg("--result-dir")
        .arg(&a)
        .arg("--no-show-tables")
        .arg("--csv")
        .arg(blocker.join("sub"))
        .assert()
        .code(1)
        .get_output()
        .clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("viz: error: writing CSV tables into"), "{err}");
    assert_eq!(err.matches("Not a directory").count(), 1, "{err}");
    // -q: the warning of a missing directory is not shown; -v shows info.
    let out = viz()
        .current_dir(tmp.path())
        .args(["-q", "--no-plot", "--no-show-tables", "--exps"])
        .arg(&a)
        .arg("missing")
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("missing"));
    let out = viz()
        .current_dir(tmp.path())
        .args(["--no-plot", "--no-show-tables", "--exps"])
        .arg(&a)
        .arg("missing")
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARN"));
}

/// A second comparison into the same plot folder never replaces the first one's plots.
#[test]
fn a_second_comparison_keeps_the_first_ones_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = ["baseline_4xtp2", "pd_p1xtp2-d2xtp2", "pd_p2xtp2-d1xtp2"]
        .iter()
        .map(|s| crate::common::real_dir(s))
        .collect();
    let run = |a: &std::path::Path, b: &std::path::Path| {
        viz()
            .current_dir(tmp.path())
            .args(["--no-show-tables", "--format", "svg", "--exps"])
            .arg(a)
            .arg(b)
            .assert()
            .success()
            .get_output()
            .clone()
    };
    let plots = tmp.path().join("plots");
    let first = run(&dirs[0], &dirs[1]);
    assert!(String::from_utf8_lossy(&first.stderr).is_empty());
    let alias = plots.join("comprehensive_analysis.svg");
    let first_svg = std::fs::read_to_string(&alias).unwrap();
    let second = run(&dirs[0], &dirs[2]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("now shows this comparison"), "{err}");
    // Both comparisons have their own files; the alias shows the latest.
    let a = plots.join("baseline_4xtp2_vs_pd_p1xtp2-d2xtp2_comprehensive_analysis.svg");
    let b = plots.join("baseline_4xtp2_vs_pd_p2xtp2-d1xtp2_comprehensive_analysis.svg");
    assert_eq!(std::fs::read_to_string(&a).unwrap(), first_svg);
    assert_eq!(
        std::fs::read_to_string(&b).unwrap(),
        std::fs::read_to_string(&alias).unwrap()
    );
    // The same comparison again: replaced in place, no warning.
    let again = run(&dirs[0], &dirs[2]);
    assert!(String::from_utf8_lossy(&again.stderr).is_empty());
    // A foreign comprehensive_analysis.svg (e.g. the original viz.py's) is kept aside.
    std::fs::write(&alias, "<svg>old</svg>").unwrap();
    let moved = run(&dirs[0], &dirs[2]);
    assert!(String::from_utf8_lossy(&moved.stderr).contains("was moved to"));
    assert_eq!(
        std::fs::read_to_string(plots.join("previous_comprehensive_analysis.svg")).unwrap(),
        "<svg>old</svg>"
    );
    // Directories with the same names elsewhere: another stem, never the same files.
    let copy = tmp.path().join("elsewhere");
    for d in [&dirs[0], &dirs[2]] {
        let to = copy.join(d.file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(d).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
    let copy_a = copy.join(dirs[0].file_name().unwrap());
    let copy_b = copy.join(dirs[2].file_name().unwrap());
    let out = run(&copy_a, &copy_b);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("shows a comparison of other directories"),
        "{err}"
    );
    let kept = viz::outputs::read_provenance(&b).unwrap();
    assert_eq!(kept.dirs[1], viz::outputs::canonical(&dirs[2]));
    let hash = viz::outputs::dirs_hash(&[copy_a, copy_b]);
    let c = plots.join(format!(
        "baseline_4xtp2_vs_pd_p2xtp2-d1xtp2_{hash}_comprehensive_analysis.svg"
    ));
    assert!(c.exists(), "{err}");
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
    // <dir name>_comprehensive_analysis.svg and viz.py's comprehensive_analysis.svg.
    assert_eq!(svgs.count(), 2);
}
