//! Repeated runs (`P-<k>.json`, with or without the aggregate `P.json`): one point with a
//! 95 % confidence interval, drawn as bars and bands; Welch's t-test says which
//! differences are significant.

use serde_json::json;

use crate::common::point_json;
use viz::load::load_experiments;
use viz::plot::{self, PlotType};
use viz::significance;
use viz::Settings;

fn write(dir: &std::path::Path, name: &str, v: &serde_json::Value) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), serde_json::to_string(v).unwrap()).unwrap();
}

/// Runs of conc4 and conc8 with the given output throughputs (TPOT = tput / 100).
fn runs(dir: &std::path::Path, tputs4: &[f64], tputs8: &[f64]) {
    for (conc, tputs) in [(4u64, tputs4), (8, tputs8)] {
        for (k, t) in tputs.iter().enumerate() {
            write(
                dir,
                &format!("conc{conc}-{}.json", k + 1),
                &point_json(conc, t / 100.0, 100.0, *t, t / 100.0),
            );
        }
    }
}

#[test]
fn runs_without_an_aggregate_become_one_point_with_a_hand_checked_ci() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("m_itl1_otl2_mixed_a_1xtp8");
    runs(&d, &[1000.0, 1200.0, 1400.0], &[2000.0, 2100.0, 2200.0]);
    let loaded = load_experiments(std::slice::from_ref(&d));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let e = &loaded.experiments[0];
    assert_eq!(e.points.len(), 2);
    let p = &e.points[0];
    assert_eq!((p.value, p.runs.len(), p.repeat_count()), (4.0, 3, 3));
    assert_eq!(p.result.output_throughput, 1200.0);
    assert!(p.file.ends_with("conc4.json"));
    // mean 1200, sd 200, t(0.975, 2) = 4.3027: half-width 4.3027 × 200 / √3 = 496.83.
    let fig = plot::figure(
        PlotType::Comprehensive,
        &loaded.experiments,
        &Settings::default(),
        "a",
        None,
    );
    let (lo, hi) = fig.panels[2].series[0].y_err[0].unwrap();
    assert!((hi - 1200.0 - 496.83).abs() < 0.05, "{lo} {hi}");
    assert!((1200.0 - lo - 496.83).abs() < 0.05);
    // TPOT band on the latency panel, interval on both axes of the throughput panel.
    assert!(fig.panels[0].series[0].band);
    assert!(fig.panels[0].series[0].y_err.iter().all(Option::is_some));
    assert!(fig.panels[2].series[0].x_err[0].is_some());
    assert!(fig
        .notes
        .iter()
        .any(|n| n.contains("95 % confidence interval")));
    assert!(fig.subtitle.iter().any(|s| s == "up to 3 runs per point"));
    let png = plot::output::render_png(&fig, None).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // The long CSV says the point was aggregated here and carries the interval.
    let csv = tmp.path().join("points.csv");
    viz::table::write_points_csv(&loaded.experiments, 8, &csv).unwrap();
    let mut rdr = csv::Reader::from_path(&csv).unwrap();
    let head: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    let col = |n: &str| head.iter().position(|h| h == n).unwrap();
    let rec = rdr.records().next().unwrap().unwrap();
    assert_eq!(&rec[col("file")], "conc4.json");
    assert_eq!((&rec[col("aggregated")], &rec[col("runs")]), ("yes", "3"));
    let hi: f64 = rec[col("output_throughput_ci95_hi")].parse().unwrap();
    assert!((hi - 1696.83).abs() < 0.05, "{hi}");
}

#[test]
fn an_aggregate_without_its_runs_uses_the_recorded_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("m_itl1_otl2_mixed_agg_1xtp8");
    let mut p = point_json(4, 10.0, 100.0, 1000.0, 10.0);
    p["pd_lab"] = json!({
        "tool": "run-bm", "tool_version": "0.1.0",
        "repeats": {"count": 3, "files": ["conc4-1.json", "conc4-2.json", "conc4-3.json"],
                    "std": {"output_throughput": 50.0, "median_tpot_ms": 0.5},
                    "ci95": {"output_throughput": [876.0, 1124.0], "median_tpot_ms": [8.8, 11.2]}}
    });
    write(&d, "conc4.json", &p);
    let loaded = load_experiments(std::slice::from_ref(&d));
    let e = &loaded.experiments[0];
    assert_eq!(e.points[0].repeat_count(), 3);
    let fig = plot::figure(
        PlotType::Comprehensive,
        &loaded.experiments,
        &Settings::default(),
        "a",
        None,
    );
    assert_eq!(fig.panels[2].series[0].y_err[0], Some((876.0, 1124.0)));
    assert_eq!(fig.panels[0].series[0].y_err[0], Some((8.8, 11.2)));
    assert_eq!(fig.panels[2].series[0].x_err[0], Some((8.8, 11.2)));
}

#[test]
fn an_aggregate_with_its_runs_keeps_its_means_and_drops_a_stray_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("m_itl1_otl2_mixed_both_1xtp8");
    runs(&d, &[1000.0, 1100.0], &[]);
    let mut agg = point_json(4, 10.5, 100.0, 1050.0, 10.5);
    agg["pd_lab"] = json!({"tool": "run-bm", "repeats": {"count": 2}});
    write(&d, "conc4.json", &agg);
    // A run of another point under this point's name.
    write(
        &d,
        "conc4-3.json",
        &point_json(16, 10.0, 100.0, 5000.0, 50.0),
    );
    let loaded = load_experiments(std::slice::from_ref(&d));
    let w = loaded.warnings.join("\n");
    assert!(w.contains("conc4-3.json") && w.contains("ignored"), "{w}");
    let e = &loaded.experiments[0];
    assert_eq!(e.points.len(), 1);
    assert_eq!(e.points[0].runs.len(), 2);
    assert_eq!(e.points[0].result.output_throughput, 1050.0);
}

#[test]
fn welch_says_which_differences_are_significant() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("m_itl1_otl2_mixed_a_1xtp8");
    let b = tmp.path().join("m_itl1_otl2_mixed_b_1xtp8");
    let c = tmp.path().join("m_itl1_otl2_mixed_c_1xtp8");
    // conc 4: a is clearly better than b; conc 8: a and b overlap.
    runs(&a, &[1000.0, 1010.0, 990.0], &[2000.0, 2300.0, 1700.0]);
    runs(&b, &[900.0, 905.0, 895.0], &[1950.0, 2250.0, 1800.0]);
    // c: single runs, never tested.
    crate::common::write_point(&c, &point_json(4, 9.0, 100.0, 950.0, 9.5));
    let loaded = load_experiments(&[a, b, c]);
    let s = significance::compare(&loaded.experiments, &Settings::default());
    let tput: Vec<_> = s
        .tests
        .iter()
        .filter(|t| t.metric == significance::Metric::Throughput)
        .collect();
    assert_eq!(tput.len(), 2);
    assert!(
        tput[0].significant() && tput[0].value == 4.0,
        "{:?}",
        tput[0]
    );
    assert!((tput[0].diff_pct - (-10.0)).abs() < 1e-9);
    assert!(
        !tput[1].significant() && tput[1].value == 8.0,
        "{:?}",
        tput[1]
    );
    assert!(s.untested >= 1, "c has a single run");
    let text = s.render_text();
    assert!(text.contains("Welch's t-test"), "{text}");
    assert!(text.contains("significantly better than b_1xtp8"), "{text}");
    assert!(
        text.contains("not significantly different from b_1xtp8"),
        "{text}"
    );
    let md = s.to_markdown();
    assert!(md.contains("| conc 4 |") && md.contains("| yes |") && md.contains("| no |"));
    // Without repeats nothing is called significant.
    let single: Vec<_> = crate::common::real_dirs().into_iter().take(3).collect();
    let loaded = load_experiments(&single);
    let s = significance::compare(&loaded.experiments, &Settings::default());
    assert!(s.tests.is_empty());
    assert!(s
        .headline()
        .contains("no difference between configurations can be called significant"));
}
