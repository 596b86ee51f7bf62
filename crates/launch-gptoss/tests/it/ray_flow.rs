//! Flow tests of the Ray backend against an in-test fake dashboard (library API).

use std::time::Duration;

use launch_gptoss::ray::backend::dry_run;
use launch_gptoss::ray::dashboard::Dashboard;
use launch_gptoss::ray::deploy::{self, Deployed};
use launch_gptoss::ray::env::CallerEnv;
use launch_gptoss::ray::error::RayError;
use launch_gptoss::ray::{remove, status};
use pd_common::deployment::{ServingBackend, StopHandle};
use pd_common::url::BaseUrl;
use pd_testkit::fake_ray::*;
use serde_json::{json, Value};

use crate::ray_common::{capture_logs, fast_timings, request, test_command};

struct Run {
    result: Result<Deployed, RayError>,
    log: String,
}

fn launch(fake: &FakeRay, record: &std::path::Path, extra: &[&str]) -> Run {
    let url = fake.url();
    let rec = record.to_str().unwrap().to_string();
    let mut argv = vec![
        "--backend",
        "ray",
        "--ray-address",
        &url,
        "--serve-url",
        &url,
        "--deployment-file",
        &rec,
    ];
    argv.extend_from_slice(extra);
    let (req, opts) = request(&argv, CallerEnv::default());
    let (result, log) = capture_logs(|| deploy::deploy(&req, &opts));
    Run { result, log }
}

fn dashboard(url: &str) -> Dashboard {
    let t = fast_timings();
    Dashboard::new(
        BaseUrl::parse(url, 8265).unwrap(),
        t.request_timeout,
        t.request_timeout,
    )
}

const PD_SMALL: &[&str] = &[
    "--mode", "pd-pack", "--p-num", "1", "--p-tp", "1", "--d-num", "1", "--d-tp", "1",
];

fn llm_deployments(status: &str, trigger: &str, msg: &str, states: &[&str]) -> Vec<Value> {
    vec![
        deployment("PDPrefillServer:gptoss", status, trigger, msg, 1, states),
        deployment("PDDecodeServer:gptoss", status, trigger, msg, 1, states),
        deployment(
            "OpenAiIngress",
            "HEALTHY",
            "CONFIG_UPDATE_COMPLETED",
            "",
            16,
            &["RUNNING"; 16],
        ),
    ]
}

fn models() -> Option<Value> {
    Some(json!({"object": "list", "data": [{"id": "gptoss", "object": "model"}]}))
}

#[test]
fn success_keeps_other_apps_and_writes_the_record() {
    let deploying = serve_state(vec![
        hello_app(),
        app(
            "gptoss",
            "/",
            "DEPLOYING",
            "",
            llm_deployments("UPDATING", "CONFIG_UPDATE_STARTED", "", &["STARTING"]),
        ),
    ]);
    let running = serve_state(vec![
        hello_app(),
        app(
            "gptoss",
            "/",
            "RUNNING",
            "",
            llm_deployments("HEALTHY", "CONFIG_UPDATE_COMPLETED", "", &["RUNNING"]),
        ),
    ]);
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[("10.1.0.1", 0.0), ("127.0.0.1", 2.0)]),
        serve_state(vec![hello_app()]),
        vec![deploying.clone(), deploying, running],
        models(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dep.toml");
    let run = launch(&fake, &path, PD_SMALL);
    let Deployed {
        record,
        path: written,
    } = run.result.unwrap();
    assert_eq!(written, path);
    // The PUT kept 'hello' and used the running Serve's http_options.
    let puts = fake.puts();
    assert_eq!(puts.len(), 1);
    let names: Vec<&str> = puts[0]["applications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hello", "gptoss"]);
    assert_eq!(
        puts[0]["http_options"],
        json!({"host": "127.0.0.1", "port": 8000})
    );
    assert_eq!(puts[0]["proxy_location"], "EveryNode");
    let ours = &puts[0]["applications"][1];
    assert_eq!(ours["import_path"], "ray.serve.llm:build_pd_openai_app");
    assert_eq!(
        ours["args"]["prefill_config"]["placement_group_config"]["bundles"],
        json!([{"GPU": 1, "node:127.0.0.1": 0.001}])
    );
    // Progress lines and the record.
    assert!(
        run.log
            .contains("DEPLOYING | PDPrefillServer:gptoss UPDATING 0/1 running (STARTING 1)"),
        "{}",
        run.log
    );
    assert!(run.log.contains("ready: model 'gptoss'"), "{}", run.log);
    assert!(run.log.contains("keeping hello"), "{}", run.log);
    let back = pd_common::DeploymentRecord::read(&path).unwrap();
    assert_eq!(back, record);
    assert_eq!(back.backend, ServingBackend::Ray);
    assert_eq!(back.base_url, fake.url());
    assert_eq!(back.label, "p1xtp1-d1xtp1");
    assert_eq!((back.total_gpus, back.gpus_per_node), (2, 2));
    assert_eq!(back.nodes, vec!["127.0.0.1".to_string()]);
    assert_eq!(back.software.get("ray").map(String::as_str), Some("2.60.0"));
    assert_eq!(back.env.get("UCX_TLS").map(String::as_str), Some("all"));
    assert_eq!(back.command, test_command());
    assert_eq!(
        back.stop,
        StopHandle::Ray {
            address: fake.url(),
            app_name: "gptoss".into()
        }
    );
    assert_eq!(fake.count("DELETE"), 0);
}

#[test]
fn deploy_failed_prints_rays_message_and_cleans_up() {
    let msg = "Deploying app 'gptoss' failed with exception:\nTraceback (most recent call last):\n  ...\nModuleNotFoundError: No module named 'pyarrow'\n";
    let failed = serve_state(vec![app("gptoss", "/", "DEPLOY_FAILED", msg, vec![])]);
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[("127.0.0.1", 2.0)]),
        empty_state(),
        vec![failed],
        models(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dep.toml");
    let run = launch(&fake, &path, PD_SMALL);
    let err = run.result.unwrap_err();
    assert!(matches!(err, RayError::DeployFailed { .. }), "{err}");
    assert!(
        err.to_string().contains("No module named 'pyarrow'"),
        "{err}"
    );
    assert_eq!(fake.count("DELETE"), 1, "our app was the only one: DELETE");
    assert!(
        run.log
            .contains("removed application 'gptoss' after the failure"),
        "{}",
        run.log
    );
    assert!(!path.exists());
}

#[test]
fn failure_next_to_another_app_removes_only_ours() {
    let msg = "Failed to update the deployments ['PDDecodeServer:gptoss'].";
    let failed = serve_state(vec![
        hello_app(),
        app("gptoss", "/", "DEPLOY_FAILED", msg, vec![deployment(
            "PDDecodeServer:gptoss", "DEPLOY_FAILED", "REPLICA_STARTUP_FAILED",
            "The deployment failed to start 3 times in a row. Error:\nRuntimeError: no CUDA device", 1, &[])]),
    ]);
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[("127.0.0.1", 2.0)]),
        serve_state(vec![hello_app()]),
        vec![failed],
        models(),
    );
    let dir = tempfile::tempdir().unwrap();
    let run = launch(&fake, &dir.path().join("dep.toml"), PD_SMALL);
    let err = run.result.unwrap_err().to_string();
    assert!(
        err.contains("REPLICA_STARTUP_FAILED") && err.contains("no CUDA device"),
        "{err}"
    );
    assert_eq!(fake.count("DELETE"), 0);
    let puts = fake.puts();
    assert_eq!(puts.len(), 2);
    let names: Vec<&str> = puts[1]["applications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hello"], "cleanup PUT keeps only the other app");
}

#[test]
fn stuck_unschedulable_times_out_with_rays_resource_message() {
    let m = "Deployment 'PDPrefillServer:gptoss' in application 'gptoss' has 1 replicas that have taken more than 30s to be scheduled. This may be due to waiting for the cluster to auto-scale or for a runtime environment to be installed. Resources required for each replica: [{\"GPU\": 1.0}], total resources available: {}. Use `ray status` for more details.";
    let stuck = serve_state(vec![app(
        "gptoss",
        "/",
        "DEPLOYING",
        "",
        llm_deployments("UPDATING", "CONFIG_UPDATE_STARTED", m, &["STARTING"]),
    )]);
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[("127.0.0.1", 2.0)]),
        empty_state(),
        vec![stuck],
        models(),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut extra = PD_SMALL.to_vec();
    extra.extend(["--timeout", "1"]);
    let started = std::time::Instant::now();
    let run = launch(&fake, &dir.path().join("dep.toml"), &extra);
    let err = run.result.unwrap_err();
    assert!(matches!(err, RayError::NotReady { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("after 1 s") && text.contains("Resources required for each replica"),
        "{text}"
    );
    assert!(
        text.contains("PDPrefillServer:gptoss UPDATING 0/1 running (STARTING 1)"),
        "{text}"
    );
    assert!(
        run.log
            .contains("Ray says: Deployment 'PDPrefillServer:gptoss'"),
        "{}",
        run.log
    );
    assert_eq!(fake.count("DELETE"), 1);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn keep_on_failure_leaves_the_app() {
    let failed = serve_state(vec![app("gptoss", "/", "DEPLOY_FAILED", "boom", vec![])]);
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[("127.0.0.1", 2.0)]),
        empty_state(),
        vec![failed],
        models(),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut extra = PD_SMALL.to_vec();
    extra.push("--keep-on-failure");
    let run = launch(&fake, &dir.path().join("dep.toml"), &extra);
    assert!(run.result.is_err());
    assert_eq!(fake.count("DELETE"), 0);
    assert_eq!(fake.puts().len(), 1);
    assert!(run.log.contains("--keep-on-failure"), "{}", run.log);
}

#[test]
fn running_without_the_model_in_v1_models_times_out() {
    let running = serve_state(vec![app(
        "gptoss",
        "/",
        "RUNNING",
        "",
        llm_deployments("HEALTHY", "CONFIG_UPDATE_COMPLETED", "", &["RUNNING"]),
    )]);
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[("127.0.0.1", 2.0)]),
        empty_state(),
        vec![running],
        Some(json!({"object": "list", "data": [{"id": "other"}]})),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut extra = PD_SMALL.to_vec();
    extra.extend(["--timeout", "1"]);
    let err = launch(&fake, &dir.path().join("dep.toml"), &extra)
        .result
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/v1/models lists [\"other\"], not 'gptoss'"),
        "{err}"
    );
}

#[test]
fn cluster_unreachable() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("dep.toml");
    let (req, opts) = request(
        &[
            "--ray-address",
            &url,
            "--mode",
            "collocated",
            "--deployment-file",
            rec.to_str().unwrap(),
        ],
        CallerEnv::default(),
    );
    let err = deploy::deploy(&req, &opts).unwrap_err();
    assert!(matches!(err, RayError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "cannot reach the Ray dashboard at http://127.0.0.1:{port}"
        )),
        "{err}"
    );
    assert!(!rec.exists());
}

#[test]
fn too_few_gpus_is_refused_before_any_put() {
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[("127.0.0.1", 8.0)]),
        empty_state(),
        vec![],
        models(),
    );
    let dir = tempfile::tempdir().unwrap();
    let run = launch(
        &fake,
        &dir.path().join("dep.toml"),
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
            "--gpus-per-node",
            "16",
        ],
    );
    let err = run.result.unwrap_err();
    assert!(matches!(err, RayError::Preflight(_)), "{err}");
    assert!(
        err.to_string()
            .contains("2×TP1 + 4×TP2 = 10 GPUs; the alive GPU nodes are: 127.0.0.1 (8 GPUs)"),
        "checked against the cluster's nodes, not --gpus-per-node: {err}"
    );
    assert_eq!(fake.count("PUT") + fake.count("DELETE"), 0);
}

#[test]
fn spread_with_one_node_is_refused_before_any_put() {
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[("127.0.0.1", 8.0), ("127.0.0.2", 0.0)]),
        empty_state(),
        vec![],
        models(),
    );
    let dir = tempfile::tempdir().unwrap();
    let run = launch(
        &fake,
        &dir.path().join("dep.toml"),
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
    );
    let err = run.result.unwrap_err().to_string();
    assert!(
        err.contains("only one alive GPU node: 127.0.0.1 (8 GPUs)"),
        "{err}"
    );
    assert_eq!(fake.count("PUT"), 0);
}

#[test]
fn route_clash_and_rejected_put() {
    let other_root = app("chat", "/", "RUNNING", "", vec![]);
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[("127.0.0.1", 2.0)]),
        serve_state(vec![other_root]),
        vec![],
        models(),
    );
    let dir = tempfile::tempdir().unwrap();
    let err = launch(&fake, &dir.path().join("dep.toml"), PD_SMALL)
        .result
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'chat' already serves route prefix '/'"),
        "{err}"
    );
    assert_eq!(fake.count("PUT"), 0);

    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[("127.0.0.1", 2.0)]),
        empty_state(),
        vec![],
        models(),
    );
    {
        let mut st = fake.state.lock().unwrap();
        st.put_status = 400;
        st.put_text = "1 validation error for ServeDeploySchema\napplications.0.import_path\n  Field required".into();
    }
    let err = launch(&fake, &dir.path().join("dep.toml"), PD_SMALL)
        .result
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 400") && err.contains("ServeDeploySchema"),
        "{err}"
    );
    assert_eq!(fake.count("DELETE"), 0);
}

#[test]
fn shutdown_and_status() {
    let ours = app(
        "gptoss",
        "/",
        "RUNNING",
        "",
        llm_deployments("HEALTHY", "CONFIG_UPDATE_COMPLETED", "", &["RUNNING"]),
    );
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[]),
        serve_state(vec![hello_app(), ours.clone()]),
        vec![],
        None,
    );
    let t = fast_timings();
    let dash = dashboard(&fake.url());
    let (alive, lines) = status::status(&dash, "gptoss", false).unwrap();
    assert!(alive);
    let text = lines.join("\n");
    assert!(
        text.contains("application 'gptoss'") && text.contains("RUNNING"),
        "{text}"
    );
    assert!(
        text.contains("OpenAiIngress HEALTHY 16/16 running"),
        "{text}"
    );

    remove::shutdown(&dash, "gptoss", &t).unwrap();
    let puts = fake.puts();
    assert_eq!(puts.len(), 1);
    assert_eq!(
        puts[0]["applications"],
        json!([hello_app()["deployed_app_config"]])
    );
    assert_eq!(fake.count("DELETE"), 0);
    // Idempotent: now absent.
    let msg = remove::shutdown(&dash, "gptoss", &t).unwrap();
    assert!(msg.contains("nothing to remove"), "{msg}");
    assert!(!status::status(&dash, "gptoss", false).unwrap().0);

    // Only app: DELETE.
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[]),
        serve_state(vec![ours]),
        vec![],
        None,
    );
    remove::shutdown(&dashboard(&fake.url()), "gptoss", &t).unwrap();
    assert_eq!(fake.count("DELETE"), 1);

    // Unreachable: an error that says the record is kept.
    let url = format!("http://127.0.0.1:{}", closed_port());
    let err = remove::shutdown(&dashboard(&url), "gptoss", &t)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot reach") && err.contains("record is kept"),
        "{err}"
    );
}

#[test]
fn old_ray_gets_the_proxy_layout() {
    let fake = FakeRay::start(
        "2.51.0",
        nodes_body(&[("127.0.0.1", 2.0)]),
        empty_state(),
        vec![],
        models(),
    );
    let url = fake.url();
    let mut argv = vec!["--ray-address", &url, "--serve-url", &url];
    argv.extend_from_slice(PD_SMALL);
    argv.push("--dry-run");
    let (req, opts) = request(&argv, CallerEnv::default());
    let d = dry_run(&req, &opts).unwrap();
    let proxy = &d.body["applications"][0]["args"]["proxy_deployment_config"];
    assert_eq!(proxy["max_ongoing_requests"], 100_000, "as the seed: 1e5");
    assert_eq!(
        proxy["autoscaling_config"],
        json!({"min_replicas": 16, "max_replicas": 16})
    );
    assert!(d.report.contains("Ray 2.51.0"), "{}", d.report);
    assert_eq!(fake.count("PUT"), 0);
}

#[test]
fn secrets_echoed_by_ray_are_scrubbed() {
    let dir = tempfile::tempdir().unwrap();
    let ov = dir.path().join("o.toml");
    std::fs::write(
        &ov,
        "[runtime_env.env_vars]\nHF_TOKEN = \"hf_supersecret\"\n",
    )
    .unwrap();
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[("127.0.0.1", 2.0)]),
        empty_state(),
        vec![],
        models(),
    );
    {
        let mut st = fake.state.lock().unwrap();
        st.put_status = 400;
        st.put_text = "1 validation error for LLMConfig\nruntime_env\n  input_value={'env_vars': {'HF_TOKEN': 'hf_supersecret'}}".into();
    }
    let mut extra = PD_SMALL.to_vec();
    let ov_s = ov.to_str().unwrap().to_string();
    extra.extend(["--overrides", &ov_s]);
    let run = launch(&fake, &dir.path().join("dep.toml"), &extra);
    let err = run.result.unwrap_err().to_string();
    assert!(
        err.contains("HTTP 400") && err.contains("'HF_TOKEN': '<redacted>'"),
        "{err}"
    );
    assert!(!err.contains("hf_supersecret") && !run.log.contains("hf_supersecret"));
    // The PUT itself carried the real value (the engines need it).
    let seen = fake.seen();
    let put = seen.iter().find(|s| s.method == "PUT").unwrap();
    assert!(put
        .body
        .as_ref()
        .unwrap()
        .to_string()
        .contains("hf_supersecret"));
}

#[test]
fn an_app_replaced_by_a_racing_launch_is_not_reported_ready() {
    // While we wait, another launch under the same application name replaced our config
    // (a collocated 1×TP1 where we deployed a PD pair): Ray reports RUNNING, but not ours.
    let mut theirs = app(
        "gptoss",
        "/",
        "RUNNING",
        "",
        llm_deployments("HEALTHY", "CONFIG_UPDATE_COMPLETED", "", &["RUNNING"]),
    );
    theirs["deployed_app_config"] = json!({
        "name": "gptoss", "route_prefix": "/", "import_path": "ray.serve.llm:build_openai_app",
        "args": {"llm_configs": [{"model_loading_config": {"model_id": "gptoss"},
                 "engine_kwargs": {"tensor_parallel_size": 1},
                 "deployment_config": {"autoscaling_config": {"min_replicas": 1, "max_replicas": 1}}}]}
    });
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[("127.0.0.1", 2.0)]),
        empty_state(),
        vec![serve_state(vec![theirs])],
        models(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dep.toml");
    let run = launch(&fake, &path, PD_SMALL);
    let err = run.result.unwrap_err();
    assert!(matches!(err, RayError::DeployFailed { .. }), "{err}");
    assert!(
        err.to_string().contains("replaced by another launch"),
        "{err}"
    );
    assert!(
        !path.exists(),
        "no record for a deployment that is not ours"
    );
    // Our own echoed config (as Ray reports it after our PUT) is ready.
    let (req, opts) = request(
        &[
            "--dry-run",
            "--nodes",
            "127.0.0.1:2",
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
        ],
        CallerEnv::default(),
    );
    let ours = dry_run(&req, &opts).unwrap().body["applications"][0].clone();
    let mut echoed = app(
        "gptoss",
        "/",
        "RUNNING",
        "",
        llm_deployments("HEALTHY", "CONFIG_UPDATE_COMPLETED", "", &["RUNNING"]),
    );
    echoed["deployed_app_config"] = ours;
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[("127.0.0.1", 2.0)]),
        empty_state(),
        vec![serve_state(vec![echoed])],
        models(),
    );
    let run = launch(&fake, &dir.path().join("dep2.toml"), PD_SMALL);
    assert!(run.result.is_ok(), "{:?}\n{}", run.result.err(), run.log);
}
