//! Tables on the shared real vLLM results: values equal the JSON values, normalised
//! values are value × 8 / GPUs, and the GPU counts come from the directory names.

use std::collections::BTreeMap;

use serde_json::Value;
use viz::load::{load_experiments, GpuSource};
use viz::table::{build_tables, TableMetric};

fn json_of(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn expected_gpus() -> BTreeMap<&'static str, u32> {
    BTreeMap::from([
        ("gptoss_H200_itl5000_otl250_mixed_pack_p1xtp4-d1xtp4", 8),
        ("gptoss_H200_itl5000_otl250_mixed_spread_p1xtp4-d1xtp4", 8),
        ("gptoss_itl5000_otl250_mixed_baseline_2xtp4", 8),
        ("gptoss_itl5000_otl250_mixed_baseline_4xtp2", 8),
        ("gptoss_itl5000_otl250_mixed_pack_p1xtp4-d1xtp4", 8),
        ("gptoss_itl5000_otl250_mixed_pd_p1xtp2-d1xtp2", 4),
        ("gptoss_itl5000_otl250_mixed_pd_p1xtp2-d2xtp2", 6),
        ("gptoss_itl5000_otl250_mixed_pd_p1xtp2-d3xtp2", 8),
        ("gptoss_itl5000_otl250_mixed_pd_p1xtp4-d1xtp4", 8),
        ("gptoss_itl5000_otl250_mixed_pd_p2xtp2-d1xtp2", 6),
        ("gptoss_itl5000_otl250_mixed_pd_p2xtp2-d1xtp4", 8),
        ("gptoss_itl5000_otl250_mixed_pd_p3xtp2-d1xtp2", 8),
        ("gptoss_itl5000_otl250_mixed_spread_srd_1xtp4-1xtp4", 8),
        ("gptoss_itl5000_otl250_mixed_spread_tcp_p1xtp4-d1xtp4", 8),
    ])
}

#[test]
fn all_14_dirs_load_with_gpus_from_their_names() {
    let loaded = load_experiments(&crate::common::real_dirs());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.experiments.len(), 14);
    assert_eq!(loaded.workload.as_deref(), Some("ITL 5000, OTL 250, mixed"));
    let expected = expected_gpus();
    for e in &loaded.experiments {
        assert_eq!(
            e.total_gpus,
            Some(expected[e.dir_name.as_str()]),
            "{}",
            e.dir_name
        );
        assert_eq!(e.gpu_source, GpuSource::DirName);
        assert_eq!(e.points.len(), 6, "{}", e.dir_name);
        let values: Vec<f64> = e.points.iter().map(|p| p.value).collect();
        assert_eq!(values, vec![4.0, 8.0, 16.0, 32.0, 48.0, 64.0]);
    }
    // Display names drop the shared prefix but stay distinct.
    let names: Vec<&str> = loaded.experiments.iter().map(|e| e.name.as_str()).collect();
    assert!(names.contains(&"baseline_4xtp2"));
    assert!(names.contains(&"H200_spread_p1xtp4-d1xtp4"));
}

#[test]
fn table_values_equal_the_json_and_normalisation_is_value_x8_over_gpus() {
    let loaded = load_experiments(&crate::common::real_dirs());
    let tables = build_tables(&loaded.experiments, 8);
    assert_eq!(tables.len(), 7);
    let expected = expected_gpus();
    let mut checked = 0;
    for t in &tables {
        for (col, e) in loaded.experiments.iter().enumerate() {
            let gpus = f64::from(expected[e.dir_name.as_str()]);
            for row in &t.rows {
                let file = e.dir.join(format!("conc{}.json", row.value as u64));
                let j = json_of(&file);
                let f = |k: &str| j[k].as_f64().unwrap();
                let want = match t.metric {
                    TableMetric::MedianTpot => f("median_tpot_ms"),
                    TableMetric::MedianTtft => f("median_ttft_ms"),
                    TableMetric::OutputThroughput => f("output_throughput"),
                    TableMetric::RequestThroughput => f("request_throughput"),
                    TableMetric::OutputThroughputNorm => f("output_throughput") * 8.0 / gpus,
                    TableMetric::RequestThroughputNorm => f("request_throughput") * 8.0 / gpus,
                    TableMetric::InputThroughputNorm => {
                        f("total_input_tokens") / f("duration") * 8.0 / gpus
                    }
                };
                let got = row.cells[col].unwrap();
                if t.metric.is_normalized() {
                    assert!(
                        (got - want).abs() <= 1e-9 * want.abs(),
                        "{} {} {}: {got} vs {want}",
                        t.metric.key(),
                        e.dir_name,
                        row.value
                    );
                } else {
                    assert_eq!(got, want, "{} {} {}", t.metric.key(), e.dir_name, row.value);
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 7 * 14 * 6);
}

#[test]
fn csv_tables_hold_the_exact_json_values() {
    let dirs = crate::common::real_dirs();
    let loaded = load_experiments(&dirs);
    let tables = build_tables(&loaded.experiments, 8);
    let tmp = tempfile::tempdir().unwrap();
    let paths =
        viz::table::write_all_csv(&tables, &loaded.experiments, 8, tmp.path(), "comparison")
            .unwrap();
    assert_eq!(paths.len(), 8);
    // The long table: one row per point, the same numbers.
    let mut rdr = csv::Reader::from_path(tmp.path().join("comparison_points.csv")).unwrap();
    let head: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    let col = |n: &str| head.iter().position(|h| h == n).unwrap();
    let mut rows = 0;
    for rec in rdr.records() {
        let rec = rec.unwrap();
        let j = json_of(&std::path::Path::new(&rec[col("directory")]).join(&rec[col("file")]));
        let got: f64 = rec[col("median_ttft_ms")].parse().unwrap();
        assert_eq!(got, j["median_ttft_ms"].as_f64().unwrap());
        assert_eq!(&rec[col("aggregated")], "no");
        assert_eq!(&rec[col("runs")], "1");
        assert_eq!(&rec[col("median_tpot_ms_ci95_lo")], "");
        rows += 1;
    }
    assert_eq!(rows, 14 * 6);
    let tpot = tmp.path().join("comparison_median_tpot_ms.csv");
    let mut rdr = csv::Reader::from_path(&tpot).unwrap();
    let head: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(head[0], "concurrency");
    assert_eq!(head.len(), 15);
    let mut rows = 0;
    for rec in rdr.records() {
        let rec = rec.unwrap();
        let conc: u64 = rec[0].parse().unwrap();
        for (i, e) in loaded.experiments.iter().enumerate() {
            assert_eq!(head[i + 1], e.name);
            let j = json_of(&e.dir.join(format!("conc{conc}.json")));
            let got: f64 = rec[i + 1].parse().unwrap();
            assert_eq!(got, j["median_tpot_ms"].as_f64().unwrap());
        }
        rows += 1;
    }
    assert_eq!(rows, 6);
}

#[test]
fn label_parser_gives_the_right_gpus_for_each_name() {
    for (name, gpus) in expected_gpus() {
        assert_eq!(
            pd_common::parse_label(name).unwrap().total_gpus,
            gpus,
            "{name}"
        );
    }
}

/// Every reference directory is read, and every point file of it becomes a point.
#[test]
fn every_reference_directory_and_point_is_read() {
    let dirs = pd_testkit::fixtures::reference_dirs();
    assert_eq!(dirs.len(), 28);
    let loaded = load_experiments(&dirs);
    assert_eq!(
        loaded.experiments.len(),
        dirs.len(),
        "{:?}",
        loaded.warnings
    );
    for e in &loaded.experiments {
        let files = std::fs::read_dir(&e.dir)
            .unwrap()
            .filter(|f| {
                f.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".json")
            })
            .count();
        assert_eq!(e.points.len(), files, "{}", e.dir_name);
    }
    assert!(
        !loaded.warnings.iter().any(|w| w.contains("skipping")),
        "{:?}",
        loaded.warnings
    );
}

/// On every reference directory and every plot type, each axis has labelled ticks at
/// or beyond both ends of the data.
#[test]
fn axis_ticks_cover_the_data_of_every_reference_plot() {
    use viz::plot::{self, PlotType};
    let loaded = load_experiments(&pd_testkit::fixtures::reference_dirs());
    let settings = viz::Settings::default();
    let mut checked = 0;
    for e in &loaded.experiments {
        for pt in PlotType::expand(&[PlotType::All]) {
            let (figs, _) = plot::plan(pt, std::slice::from_ref(e), &settings, "x", None);
            for f in figs {
                for panel in &f.figure.panels {
                    let Some((xa, ya)) = panel.axes() else {
                        continue;
                    };
                    let pts: Vec<(f64, f64)> = panel
                        .series
                        .iter()
                        .flat_map(|s| s.points.iter().copied())
                        .collect();
                    for (axis, vals) in [
                        (&xa, pts.iter().map(|p| p.0).collect::<Vec<_>>()),
                        (&ya, pts.iter().map(|p| p.1).collect::<Vec<_>>()),
                    ] {
                        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
                        let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let first = axis.bold[0];
                        let last = *axis.bold.last().unwrap();
                        assert!(
                            first <= lo && last >= hi,
                            "{} {}: ticks {:?} vs data {lo}..{hi}",
                            e.dir_name,
                            panel.title,
                            axis.bold
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 300, "{checked}");
}
