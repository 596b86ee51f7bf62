//! Bad input: corrupt or partial JSON, missing and empty directories become warnings
//! naming the path; the rest is still used; nothing usable is an error.

use crate::common::{point_json, write_point};
use viz::load::{load_experiments, GpuSource};

#[test]
fn corrupt_partial_and_stray_files_are_warned_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("m_itl1_otl2_mixed_x_2xtp2");
    write_point(&d, &point_json(4, 10.0, 100.0, 1000.0, 10.0));
    write_point(&d, &point_json(8, 20.0, 200.0, 2000.0, 20.0));
    // Truncated JSON.
    let full = serde_json::to_string(&point_json(16, 1.0, 1.0, 1.0, 1.0)).unwrap();
    std::fs::write(d.join("conc16.json"), &full[..full.len() / 2]).unwrap();
    // Not a result at all.
    std::fs::write(d.join("notes.json"), "{\"hello\": 1}").unwrap();
    // Ignored quietly.
    std::fs::write(d.join("conc4.requests.csv"), "a,b\n").unwrap();
    std::fs::write(d.join("README.txt"), "x").unwrap();
    // Broken manifest.
    std::fs::write(d.join("manifest.json"), "[").unwrap();

    let loaded = load_experiments(std::slice::from_ref(&d));
    assert_eq!(loaded.experiments.len(), 1);
    let e = &loaded.experiments[0];
    assert_eq!(e.points.len(), 2);
    assert_eq!(e.total_gpus, Some(4));
    assert_eq!(e.gpu_source, GpuSource::DirName);
    let w = loaded.warnings.join("\n");
    assert_eq!(loaded.warnings.len(), 3, "{w}");
    assert!(
        w.contains("conc16.json") && w.contains("invalid JSON"),
        "{w}"
    );
    assert!(w.contains("notes.json"), "{w}");
    assert!(w.contains("manifest.json"), "{w}");
    assert!(!w.contains("requests.csv") && !w.contains("README"), "{w}");
}

#[test]
fn missing_and_empty_dirs_are_warned_and_the_rest_is_used() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("m_itl1_otl2_mixed_good_1xtp8");
    write_point(&good, &point_json(4, 10.0, 100.0, 1000.0, 10.0));
    let empty = tmp.path().join("empty_dir");
    std::fs::create_dir_all(&empty).unwrap();
    let missing = tmp.path().join("does_not_exist");
    let loaded = load_experiments(&[missing.clone(), good.clone(), empty.clone()]);
    assert_eq!(loaded.experiments.len(), 1);
    assert_eq!(loaded.experiments[0].dir, good);
    let w = loaded.warnings.join("\n");
    assert!(
        w.contains("does_not_exist") && w.contains("does not exist"),
        "{w}"
    );
    assert!(
        w.contains("empty_dir") && w.contains("no usable result files"),
        "{w}"
    );
}

#[test]
fn interrupted_points_are_kept_with_a_warning_and_unknown_gpus_stay_raw() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("my_experiment");
    let mut p = point_json(4, 10.0, 100.0, 1000.0, 10.0);
    p["interrupted"] = serde_json::Value::Bool(true);
    write_point(&d, &p);
    let loaded = load_experiments(std::slice::from_ref(&d));
    let e = &loaded.experiments[0];
    assert_eq!(e.total_gpus, None);
    assert_eq!(e.gpu_source, GpuSource::Unknown);
    let w = loaded.warnings.join("\n");
    assert!(w.contains("partial point"), "{w}");
    assert!(
        w.contains("GPU count of") && w.contains("unnormalised"),
        "{w}"
    );
    let tables = viz::table::build_tables(&loaded.experiments, 8);
    let norm = tables
        .iter()
        .find(|t| t.metric == viz::table::TableMetric::OutputThroughputNorm)
        .unwrap();
    assert_eq!(norm.rows[0].cells[0], Some(1000.0));
    assert!(norm.render_text(100).contains("my_experiment*"));
    assert!(norm.render_text(100).contains("GPU count unknown"));
}

#[test]
fn pd_lab_total_gpus_wins_over_the_directory_name() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("m_itl1_otl2_mixed_x_4xtp2");
    let mut p = point_json(4, 10.0, 100.0, 1000.0, 10.0);
    p["pd_lab"] = serde_json::json!({"tool": "run-bm", "tool_version": "0.1.0", "total_gpus": 2});
    write_point(&d, &p);
    let loaded = load_experiments(&[d]);
    let e = &loaded.experiments[0];
    assert_eq!(
        (e.total_gpus, e.gpu_source),
        (Some(2), GpuSource::ResultFile)
    );
    let tables = viz::table::build_tables(&loaded.experiments, 8);
    assert_eq!(tables[4].rows[0].cells[0], Some(4000.0));
}

#[test]
fn rate_sweeps_are_keyed_by_request_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("m_itl1_otl2_mixed_rr_1xtp8");
    std::fs::create_dir_all(&d).unwrap();
    for rate in [1.0, 2.5] {
        let mut p = point_json(4, 10.0 * rate, 100.0, 1000.0 * rate, rate);
        p["request_rate"] = serde_json::json!(rate);
        p["max_concurrency"] = serde_json::Value::Null;
        std::fs::write(
            d.join(format!("rr{rate}.json")),
            serde_json::to_string(&p).unwrap(),
        )
        .unwrap();
    }
    let loaded = load_experiments(&[d]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let e = &loaded.experiments[0];
    assert_eq!(
        e.points
            .iter()
            .map(|p| (p.kind, p.value))
            .collect::<Vec<_>>(),
        vec![
            (pd_common::SweepKind::RequestRate, 1.0),
            (pd_common::SweepKind::RequestRate, 2.5)
        ]
    );
    let t = &viz::table::build_tables(&loaded.experiments, 8)[0];
    assert_eq!(t.row_header, "Request rate (req/s)");
}
