//! Golden tests: the Serve config rendered for the methodology's example commands
//! (and the original tool's help), with `--dry-run --nodes` fake nodes.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p launch-gptoss --test it ray_golden`
//! (`pd_testkit::golden`, the one golden-file helper of the workspace).

use std::path::PathBuf;

use launch_gptoss::ray::backend::dry_run as ray_dry_run;
use launch_gptoss::ray::config::{put_body, render, RenderOptions};
use launch_gptoss::ray::env::CallerEnv;
use launch_gptoss::ray::nodes::parse_node_args;
use launch_gptoss::ray::plan::plan;
use launch_gptoss::ray::version::RayVersion;
use serde_json::json;

use crate::ray_common::request;

fn golden_dir() -> PathBuf {
    pd_testkit::golden::dir(env!("CARGO_MANIFEST_DIR"))
}

fn check_golden(name: &str, actual: &str) {
    pd_testkit::golden::check(&golden_dir(), name, actual);
}

/// `launch-gptoss <args> --dry-run` through the library; (stdout, report).
fn dry_run(args: &[&str], caller_env: CallerEnv) -> (String, String) {
    let mut argv = vec![
        "--backend",
        "ray",
        "--ray-address",
        "http://127.0.0.1:8265",
        "--dry-run",
    ];
    argv.extend_from_slice(args);
    let (req, opts) = request(&argv, caller_env);
    let d = ray_dry_run(&req, &opts).unwrap();
    (
        serde_json::to_string_pretty(&d.body).unwrap() + "\n",
        d.report,
    )
}

fn golden_case(name: &str, args: &[&str]) -> (String, String) {
    let (out, log) = dry_run(args, CallerEnv::default());
    check_golden(&format!("{name}.json"), &out);
    check_golden(&format!("{name}.plan.txt"), &log);
    (out, log)
}

#[test]
fn collocated_tp2_x4() {
    let (out, log) = golden_case(
        "collocated-tp2x4",
        &[
            "--mode",
            "collocated",
            "--tp",
            "2",
            "--num-replicas",
            "4",
            "--nodes",
            "10.0.0.1:8",
        ],
    );
    assert!(out.contains("ray.serve.llm:build_openai_app"));
    assert!(
        log.contains("collocated 4×TP2 = 8 GPUs on node 10.0.0.1"),
        "{log}"
    );
}

#[test]
fn collocated_over_two_nodes_is_not_pinned() {
    let (out, log) = golden_case(
        "collocated-tp2x8-two-nodes",
        &[
            "--mode",
            "collocated",
            "--tp",
            "2",
            "--num",
            "8",
            "--nodes",
            "10.0.0.1:8,10.0.0.2:8",
        ],
    );
    assert!(!out.contains("node:10.0.0."), "{out}");
    assert!(log.contains("not pinned"), "{log}");
}

#[test]
fn pd_pack_2xtp1_4xtp2_ucx() {
    // The methodology's example needs 2×1 + 4×2 = 10 GPUs on one node.
    let (out, _) = golden_case(
        "pd-pack-p2xtp1-d4xtp2-ucx",
        &[
            "--mode",
            "pd-pack",
            "--p-num",
            "2",
            "--p-tp",
            "1",
            "--d-num",
            "4",
            "--d-tp",
            "2",
            "--use-ucx",
            "--gpus-per-node",
            "16",
            "--nodes",
            "10.0.0.1:16",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let args = &v["applications"][0]["args"];
    assert_eq!(
        args["prefill_config"]["deployment_config"]["autoscaling_config"],
        json!({"min_replicas": 2, "max_replicas": 2})
    );
    assert_eq!(
        args["decode_config"]["engine_kwargs"]["tensor_parallel_size"],
        2
    );
    assert_eq!(
        args["decode_config"]["engine_kwargs"]["kv_transfer_config"]["kv_connector_extra_config"]
            ["backends"],
        json!(["UCX"])
    );
    assert!(
        args.get("proxy_deployment_config").is_none(),
        "Ray 2.60 layout"
    );
}

#[test]
fn pd_pack_methodology_examples() {
    golden_case(
        "pd-pack-p1xtp2-d2xtp2",
        &[
            "--mode",
            "pd-pack",
            "--p-num",
            "1",
            "--p-tp",
            "2",
            "--d-num",
            "2",
            "--d-tp",
            "2",
            "--nodes",
            "10.0.0.1:8",
        ],
    );
}

#[test]
fn pd_spread_1xtp4_1xtp4_ucx() {
    let (_, log) = golden_case(
        "pd-spread-p1xtp4-d1xtp4-ucx",
        &[
            "--mode",
            "pd-spread",
            "--p-num",
            "1",
            "--p-tp",
            "4",
            "--d-num",
            "1",
            "--d-tp",
            "4",
            "--use-ucx",
            "--nodes",
            "10.0.0.1:8,10.0.0.2:8",
        ],
    );
    assert!(
        log.contains(
            "picked node 10.0.0.1 (8 GPUs) for prefill and node 10.0.0.2 (8 GPUs) for decode"
        ),
        "{log}"
    );
}

#[test]
fn pd_spread_1xtp4_1xtp4_libfabric() {
    let (out, _) = golden_case(
        "pd-spread-p1xtp4-d1xtp4-libfabric",
        &[
            "--mode",
            "pd-spread",
            "--p-num",
            "1",
            "--p-tp",
            "4",
            "--d-num",
            "1",
            "--d-tp",
            "4",
            "--use-libfabric",
            "--nodes",
            "10.0.0.1:8,10.0.0.2:8",
        ],
    );
    assert!(
        out.contains("\"LIBFABRIC\"") && out.contains("/opt/amazon/efa/lib"),
        "{out}"
    );
    assert!(!out.contains("UCX_TLS"));
}

#[test]
fn decode_bench() {
    let (out, _) = golden_case(
        "collocated-tp2x1-decode-bench",
        &[
            "--mode",
            "collocated",
            "--tp",
            "2",
            "--num",
            "1",
            "--decode-bench",
            "--max-model-len",
            "131072",
            "--nodes",
            "10.0.0.1:8",
        ],
    );
    assert!(out.contains("DecodeBenchConnector"));
}

#[test]
fn overrides_are_deep_merged_and_secrets_redacted() {
    let file = golden_dir().join("cpu-overrides.toml");
    let (out, _) = golden_case(
        "pd-pack-p1xtp1-d1xtp1-cpu-overrides",
        &[
            "--mode",
            "pd-pack",
            "--p-num",
            "1",
            "--p-tp",
            "1",
            "--d-num",
            "1",
            "--d-tp",
            "1",
            "--ingress-replicas",
            "4",
            "--model-source",
            "/models/tiny-gptoss",
            "--overrides",
            file.to_str().unwrap(),
            "--nodes",
            "127.0.0.1:2",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let p = &v["applications"][0]["args"]["prefill_config"];
    assert_eq!(
        p["placement_group_config"]["bundles"],
        json!([{"CPU": 1, "node:127.0.0.1": 0.001}]),
        "replaced bundles keep the plan's node pin"
    );
    assert_eq!(
        p["engine_kwargs"]["kv_transfer_config"]["kv_connector"],
        "NixlConnector"
    );
    assert_eq!(
        p["engine_kwargs"]["kv_transfer_config"]["kv_buffer_device"],
        "cpu"
    );
    assert_eq!(
        p["runtime_env"]["env_vars"]["VLLM_CPU_OMP_THREADS_BIND"],
        "0"
    );
    assert_eq!(p["runtime_env"]["env_vars"]["UCX_TLS"], "all");
    assert_eq!(
        v["applications"][0]["args"]["decode_config"]["runtime_env"]["env_vars"]
            ["VLLM_CPU_OMP_THREADS_BIND"],
        "1"
    );
    assert!(!out.contains("hf_never_printed") && out.contains("<redacted>"));
    assert_eq!(
        v["applications"][0]["args"]["ingress_deployment_config"]["autoscaling_config"]
            ["max_replicas"],
        1
    );
}

#[test]
fn verbose_and_callers_ucx_tls() {
    let (out, _) = dry_run(
        &[
            "--mode",
            "pd-pack",
            "--p-num",
            "1",
            "--p-tp",
            "1",
            "--d-num",
            "1",
            "--d-tp",
            "1",
            "--verbose",
            "--nodes",
            "10.0.0.1:8",
        ],
        CallerEnv {
            ucx_tls: Some("rc,cuda_copy".into()),
        },
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let env = &v["applications"][0]["args"]["decode_config"]["runtime_env"]["env_vars"];
    assert_eq!(
        env,
        &json!({"UCX_TLS": "rc,cuda_copy", "NIXL_LOG_LEVEL": "DEBUG", "UCX_LOG_LEVEL": "debug",
                "UCX_PROTO_INFO": "y", "VLLM_LOGGING_LEVEL": "DEBUG"}),
        "the seed's --verbose variables"
    );
}

#[test]
fn pd_pack_on_ray_2_51_has_a_proxy() {
    let (req, opts) = request(
        &[
            "--mode", "pd-pack", "--p-num", "1", "--p-tp", "2", "--d-num", "2", "--d-tp", "2",
        ],
        CallerEnv::default(),
    );
    let nodes = parse_node_args(&["10.0.0.1:8".to_string()]).unwrap();
    let pl = plan(&req.spec, &nodes).unwrap();
    let ropts = RenderOptions {
        app_name: opts.app_name.clone(),
        max_model_len: req.max_model_len,
        stream_batching_interval_ms: opts.stream_batching_interval_ms,
        ingress_replicas: opts.ingress_replicas,
        decode_bench: opts.decode_bench,
        engine_debug: req.engine_debug,
    };
    let r = render(
        &req.spec,
        &pl,
        &ropts,
        &RayVersion::parse("2.51.0"),
        &CallerEnv::default(),
        None,
    )
    .unwrap();
    let body = put_body(&json!({"host": "127.0.0.1", "port": 8000}), vec![r.app]);
    check_golden(
        "pd-pack-p1xtp2-d2xtp2-ray-2.51.json",
        &(serde_json::to_string_pretty(&body).unwrap() + "\n"),
    );
    let proxy = &body["applications"][0]["args"]["proxy_deployment_config"];
    assert!(proxy["ray_actor_options"]["resources"]["node:10.0.0.1"].is_number());
    assert_eq!(proxy["max_ongoing_requests"], 100_000);
}

#[test]
fn pd_spread_leaves_ingress_and_proxy_to_ray_as_the_seed() {
    for version in ["2.51.0", "2.60.0"] {
        let (req, opts) = request(
            &[
                "--mode",
                "pd-spread",
                "--p-num",
                "1",
                "--p-tp",
                "4",
                "--d-num",
                "1",
                "--d-tp",
                "4",
            ],
            CallerEnv::default(),
        );
        let nodes = parse_node_args(&["10.0.0.1:8".into(), "10.0.0.2:8".into()]).unwrap();
        let pl = plan(&req.spec, &nodes).unwrap();
        let ropts = RenderOptions {
            app_name: opts.app_name.clone(),
            max_model_len: req.max_model_len,
            stream_batching_interval_ms: 0,
            ingress_replicas: 16,
            decode_bench: false,
            engine_debug: false,
        };
        let r = render(
            &req.spec,
            &pl,
            &ropts,
            &RayVersion::parse(version),
            &CallerEnv::default(),
            None,
        )
        .unwrap();
        let args = &r.app["args"];
        assert!(args["ingress_deployment_config"]
            .get("ray_actor_options")
            .is_none());
        if version == "2.51.0" {
            assert!(args["proxy_deployment_config"]
                .get("ray_actor_options")
                .is_none());
        }
        // The engines stay pinned.
        assert!(r.app.to_string().contains("node:10.0.0.2"));
    }
}
