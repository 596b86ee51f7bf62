//! `--report`: the reproducibility checklist is filled from manifests; what they do not
//! record is marked missing.

use std::collections::BTreeMap;

use crate::common::{point_json, write_point};
use pd_common::deployment::{DeploymentRecord, DeploymentSpec, ServingBackend, StopHandle};
use pd_common::manifest::{ClientHost, ExperimentManifest};
use pd_common::{BenchMode, SweepKind, Workload};
use viz::load::{load_experiments, GpuSource};
use viz::report::{render, ReportInput};
use viz::table::build_tables;
use viz::Settings;

fn manifest() -> ExperimentManifest {
    let spec = DeploymentSpec::collocated(2, 2);
    ExperimentManifest {
        format_version: 1,
        exp_name: "base".into(),
        created_at: "2026-01-01T00:00:00Z".into(),
        updated_at: "2026-01-01T00:10:00Z".into(),
        tool: "run-bm".into(),
        tool_version: "0.1.0".into(),
        command: vec![
            "run-bm".into(),
            "-e".into(),
            "base".into(),
            "--itl".into(),
            "100".into(),
        ],
        base_url: "http://127.0.0.1:8000".into(),
        served_model_name: "gptoss".into(),
        workload: Workload::new(100, 10, BenchMode::Mixed).unwrap(),
        sweep: SweepKind::Concurrency,
        sweep_values: vec![4.0, 8.0],
        deployment: Some(DeploymentRecord {
            format_version: 1,
            backend: ServingBackend::Sim,
            base_url: "http://127.0.0.1:8000".into(),
            served_model_name: "gptoss".into(),
            label: spec.label(),
            total_gpus: spec.total_gpus(),
            gpus_per_node: 8,
            nodes: vec!["sim-node-0".into()],
            command: vec![
                "launch-gptoss".into(),
                "--mode".into(),
                "collocated".into(),
                "--tp".into(),
                "2".into(),
            ],
            tool_version: "0.1.0".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            network: None,
            software: BTreeMap::from([("vllm".to_string(), "sim".to_string())]),
            env: BTreeMap::from([("UCX_TLS".to_string(), "tcp".to_string())]),
            spec,
            stop: StopHandle::Pid { pid: 1 },
        }),
        client_host: ClientHost {
            hostname: "client".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            cpus: 2,
        },
        software: BTreeMap::from([("rustc".to_string(), "1.85".to_string())]),
        env: BTreeMap::new(),
        points: vec![],
        other: Default::default(),
    }
}

#[test]
fn checklist_is_filled_from_the_manifest_and_missing_items_are_marked() {
    let tmp = tempfile::tempdir().unwrap();
    let with = tmp.path().join("with_manifest");
    write_point(&with, &point_json(4, 10.0, 100.0, 1000.0, 10.0));
    write_point(&with, &point_json(8, 20.0, 200.0, 2000.0, 20.0));
    manifest().write(&with.join("manifest.json")).unwrap();
    let without = tmp.path().join("m_itl1_otl2_mixed_bare_1xtp8");
    write_point(&without, &point_json(4, 11.0, 110.0, 900.0, 9.0));

    let loaded = load_experiments(&[with.clone(), without.clone()]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let e = &loaded.experiments[0];
    assert_eq!((e.total_gpus, e.gpu_source), (Some(4), GpuSource::Manifest));

    let settings = Settings::default();
    let tables = build_tables(&loaded.experiments, 8);
    let figures = vec![viz::report::ReportFigure {
        title: "comprehensive analysis".into(),
        files: vec![tmp
            .path()
            .join("plots/comparison_comprehensive_analysis.png")],
        svg: None,
    }];
    let command = vec!["viz".to_string(), "--report".to_string()];
    let input = ReportInput {
        name: "comparison",
        experiments: &loaded.experiments,
        workload: None,
        tables: &tables,
        sla: None,
        significance: None,
        figures: &figures,
        warnings: &[],
        command: &command,
        settings: &settings,
    };
    let md = render(&input, &tmp.path().join("results/findings"));
    let (first, second) = md.split_once("### m_itl1_otl2_mixed_bare_1xtp8").unwrap();
    let first = first.split_once("### with_manifest").unwrap().1;
    assert!(first.contains("- [x] Deployment command: `launch-gptoss --mode collocated --tp 2`"));
    assert!(first.contains("- [x] Benchmark command: `run-bm -e base --itl 100`"));
    assert!(first.contains("4 GPUs (h100) of 8 per node on 1 node(s): sim-node-0"));
    assert!(first.contains("network: not recorded"));
    assert!(first.contains("run-bm 0.1.0, rustc 1.85, vllm sim"));
    assert!(first.contains("ITL 100, OTL 10, mode mixed, concurrency sweep 4,8"));
    assert!(first.contains("`UCX_TLS=tcp`"));
    assert!(!first.contains("**missing**"), "{first}");
    for item in [
        "Deployment command",
        "Benchmark command",
        "Hardware",
        "Software versions",
        "Workload",
        "Environment variables",
    ] {
        assert!(
            second.contains(&format!("- [ ] {item}: **missing**")),
            "{item} in {second}"
        );
    }
    assert!(second.contains("- [x] Result location"));
    assert!(second.contains("- [x] Generated figures"));
    assert!(
        md.contains("![comparison_comprehensive_analysis.png](../../plots/comparison_comprehensive_analysis.png)")
    );
}
