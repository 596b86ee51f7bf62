//! Every real `vllm bench serve` result in `bm_results/reference` parses into
//! [`BenchResult`] and writes back with every key and value (in order); the later runs'
//! file and directory names give the right sweep point and GPU count.

use std::path::PathBuf;

use pd_common::label::parse_label;
use pd_common::naming::parse_point_file_name;
use pd_common::BenchResult;
use pd_common::SweepKind;

fn result_dirs() -> Vec<PathBuf> {
    pd_testkit::fixtures::later_run_dirs()
}

#[test]
fn every_reference_file_round_trips_key_for_key() {
    let mut files = 0;
    for dir in pd_testkit::fixtures::reference_dirs() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let original: serde_json::Value = serde_json::from_str(&text).unwrap();
            let parsed = BenchResult::from_json_str(&text, &path).unwrap();
            let back: serde_json::Value =
                serde_json::from_str(&parsed.to_json_string().unwrap()).unwrap();
            assert_eq!(back, original, "{}", path.display());
            let keys =
                |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
            assert_eq!(
                keys(&back),
                keys(&original),
                "key order of {}",
                path.display()
            );
            files += 1;
        }
    }
    assert!(files >= 141, "{files} reference files");
}

#[test]
fn later_runs_round_trip_and_name_their_point() {
    let mut files = 0;
    for dir in result_dirs() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let original: serde_json::Value = serde_json::from_str(&text).unwrap();
            let parsed = BenchResult::from_json_str(&text, &path).unwrap();
            let written = parsed.to_json_string().unwrap();
            let back: serde_json::Value = serde_json::from_str(&written).unwrap();
            assert_eq!(back, original, "{}", path.display());
            let keys =
                |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
            assert_eq!(
                keys(&back),
                keys(&original),
                "key order of {}",
                path.display()
            );
            // Typed access matches the raw values.
            assert_eq!(parsed.median_ttft_ms(), original["median_ttft_ms"].as_f64());
            assert_eq!(parsed.completed, original["completed"].as_u64().unwrap());
            let (kind, value) = parsed.sweep_point();
            let from_name =
                parse_point_file_name(path.file_name().unwrap().to_str().unwrap()).unwrap();
            assert_eq!((kind, value), from_name, "{}", path.display());
            assert_eq!(kind, SweepKind::Concurrency);
            files += 1;
        }
    }
    assert_eq!(files, 84);
}

#[test]
fn directory_names_give_gpu_counts() {
    let expected = [
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
    ];
    let dirs = result_dirs();
    for (dir, (name, gpus)) in dirs.iter().zip(expected) {
        assert_eq!(dir.file_name().unwrap().to_str().unwrap(), name);
        assert_eq!(parse_label(name).unwrap().total_gpus, gpus, "{name}");
    }
}
