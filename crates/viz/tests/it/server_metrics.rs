//! `--plot-type server-metrics` on the fixture (`tests/fixtures/server_metrics`): a
//! `P.metrics.csv` per point in the format of docs/FORMATS.md.

use assert_cmd::Command;

use viz::load::load_experiments;
use viz::plot::{self, PlotType};
use viz::Settings;

fn fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/server_metrics/gptoss_itl2000_otl100_mixed_metrics_p1xtp2-d1xtp2")
}

#[test]
fn server_metrics_plot_from_the_fixture() {
    let loaded = load_experiments(&[fixture()]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let e = &loaded.experiments[0];
    assert!(e.points.iter().all(|p| p.metrics_csv.is_some()));
    let (figs, problems) = plot::plan(
        PlotType::ServerMetrics,
        &loaded.experiments,
        &Settings::default(),
        "m",
        None,
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(figs.len(), 1);
    assert_eq!(figs[0].word, "server-metrics");
    let fig = &figs[0].figure;
    assert_eq!(fig.panels.len(), 3);
    assert_eq!(
        fig.panels
            .iter()
            .map(|p| p.title.as_str())
            .collect::<Vec<_>>(),
        vec!["KV-Cache Usage", "Running Requests", "Waiting Requests"]
    );
    let names: Vec<&str> = fig.legend.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, vec!["conc 4", "conc 16"]);
    // Running requests during conc 16: 16 decode + 2 prefill, summed over the engines.
    let running16 = &fig.panels[1].series[1].points;
    assert!(running16.iter().any(|(_, v)| *v == 18.0), "{running16:?}");
    assert!(
        running16.first().unwrap().0 < 0.0,
        "before-phase scrapes are drawn"
    );
    // KV usage in percent (mean of prefill and decode engines).
    let kv = &fig.panels[0].series[1].points;
    let peak = kv.iter().map(|p| p.1).fold(0.0, f64::max);
    assert!(peak > 5.0 && peak < 20.0, "{peak}");
    let svg = plot::output::render_svg(fig, None).unwrap();
    assert!(svg.contains("KV-cache usage (%)"));
}

#[test]
fn the_binary_writes_it_and_says_when_there_is_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    Command::cargo_bin("viz")
        .unwrap()
        .current_dir(tmp.path())
        .args([
            "--no-show-tables",
            "--format",
            "png",
            "--plot-type",
            "server-metrics",
            "--result-dir",
        ])
        .arg(fixture())
        .assert()
        .success();
    let stem = "gptoss_itl2000_otl100_mixed_metrics_p1xtp2-d1xtp2";
    assert!(tmp
        .path()
        .join(format!("plots/{stem}_server-metrics.png"))
        .is_file());
    // Explicitly asked for, but the directory has no metrics: a warning, still exit 0.
    let out = Command::cargo_bin("viz")
        .unwrap()
        .current_dir(tmp.path())
        .args([
            "--no-show-tables",
            "--format",
            "svg",
            "--plot-type",
            "server-metrics",
            "--result-dir",
        ])
        .arg(crate::common::real_dir("baseline_4xtp2"))
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("server-metrics plot skipped"));
    // A broken metrics file is a warning, not a failure.
    let d = tmp.path().join("copy");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(fixture().join("conc4.json"), d.join("conc4.json")).unwrap();
    std::fs::write(d.join("conc4.metrics.csv"), "time,value\n1,2\n").unwrap();
    let out = Command::cargo_bin("viz")
        .unwrap()
        .current_dir(tmp.path())
        .args([
            "--no-show-tables",
            "--format",
            "svg",
            "--plot-type",
            "all",
            "--result-dir",
        ])
        .arg(&d)
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no `t_s` column"));
}
