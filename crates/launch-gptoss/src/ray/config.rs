//! Rendering the Ray Serve config (as data) that the seed's `launch_gptoss.py` built in
//! Python: one application, `ray.serve.llm:build_openai_app` (collocated) or
//! `ray.serve.llm:build_pd_openai_app` (PD), with one LLM config per replica group.

use serde_json::{json, Map, Value};

use pd_common::deployment::{DeploymentSpec, Replicas};

use super::env::{engine_env, CallerEnv};
use super::error::RayError;
use super::overrides::{deep_merge, Overrides};
use super::plan::{Group, Plan, Role};
use super::version::RayVersion;

/// Import path of the collocated application builder.
pub const COLLOCATED_IMPORT: &str = "ray.serve.llm:build_openai_app";
/// Import path of the prefill/decode application builder.
pub const PD_IMPORT: &str = "ray.serve.llm:build_pd_openai_app";
/// Amount of the `node:<ip>` resource each bundle/actor asks for (every node has 1.0).
pub const NODE_PIN: f64 = 0.001;

/// `max_ongoing_requests` of the PD proxy, as the seed's launcher set it (`1e5`): the proxy
/// only forwards, so it must never be the queue.
pub const PROXY_MAX_ONGOING_REQUESTS: u64 = 100_000;

/// Everything besides the spec and plan that shapes the config.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    pub app_name: String,
    pub max_model_len: u32,
    pub stream_batching_interval_ms: u32,
    pub ingress_replicas: u32,
    pub decode_bench: bool,
    /// Engine/NIXL debug logging (the seed's `--verbose`).
    pub engine_debug: bool,
}

/// The rendered application and facts derived from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The application entry of `applications: [...]`.
    pub app: Value,
    /// Served model name (after overrides), to look for in `/v1/models`.
    pub model_id: String,
    /// Union of the LLM configs' `runtime_env.env_vars` (after overrides).
    pub env: Map<String, Value>,
    /// Does every LLM config still ask for GPU bundles (after overrides)?
    pub gpu_bundles: bool,
}

impl Rendered {
    /// The import path of the application builder.
    pub fn import_path(&self) -> &str {
        self.app
            .get("import_path")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

fn fixed_replicas(n: u32) -> Value {
    json!({"autoscaling_config": {"min_replicas": n, "max_replicas": n}})
}

fn bundles(r: Replicas, node: Option<&str>) -> Value {
    let bundle = match node {
        Some(ip) => json!({"GPU": 1, format!("node:{ip}"): NODE_PIN}),
        None => json!({"GPU": 1}),
    };
    Value::Array(vec![bundle; r.tp as usize])
}

fn llm_config(
    spec: &DeploymentSpec,
    group: &Group,
    opts: &RenderOptions,
    kv_transfer: Option<Value>,
    env: &Map<String, Value>,
) -> Value {
    let r = group.replicas;
    let mut engine = Map::new();
    engine.insert("max_model_len".into(), json!(opts.max_model_len));
    engine.insert("tensor_parallel_size".into(), json!(r.tp));
    if let Some(kv) = kv_transfer {
        engine.insert("kv_transfer_config".into(), kv);
    }
    let mut cfg = Map::new();
    cfg.insert(
        "model_loading_config".into(),
        json!({"model_id": spec.model_id, "model_source": spec.model_source}),
    );
    cfg.insert("engine_kwargs".into(), Value::Object(engine));
    cfg.insert(
        "experimental_configs".into(),
        json!({"stream_batching_interval_ms": opts.stream_batching_interval_ms}),
    );
    cfg.insert(
        "placement_group_config".into(),
        json!({"bundles": bundles(r, group.node.as_deref()), "strategy": "STRICT_PACK"}),
    );
    cfg.insert("deployment_config".into(), fixed_replicas(r.num));
    if !env.is_empty() {
        cfg.insert("runtime_env".into(), json!({"env_vars": env}));
    }
    Value::Object(cfg)
}

/// Keep the plan's node pin on bundles that `--overrides` replaced: every bundle that names
/// no `node:<ip>` resource of its own gets the group's (a CPU bundle of a test cluster must
/// still land on the planned node, or pd-spread may silently become pd-pack).
fn repin(cfg: &mut Value, node: Option<&str>) {
    let Some(ip) = node else { return };
    if let Some(bundles) = cfg
        .pointer_mut("/placement_group_config/bundles")
        .and_then(Value::as_array_mut)
    {
        for b in bundles.iter_mut().filter_map(Value::as_object_mut) {
            if !b.keys().any(|k| k.starts_with("node:")) {
                b.insert(format!("node:{ip}"), json!(NODE_PIN));
            }
        }
    }
}

/// Deployment options of the ingress or the PD proxy: a fixed replica count, pinned to
/// `node` when the plan pins it.
fn small_deployment_config(replicas: u32, max_ongoing: Option<u64>, node: Option<&str>) -> Value {
    let mut d = fixed_replicas(replicas);
    if let Value::Object(m) = &mut d {
        if let Some(n) = max_ongoing {
            m.insert("max_ongoing_requests".into(), json!(n));
        }
        if let Some(ip) = node {
            m.insert(
                "ray_actor_options".into(),
                json!({"resources": {format!("node:{ip}"): NODE_PIN}}),
            );
        }
    }
    d
}

fn nixl_kv(spec: &DeploymentSpec) -> Value {
    json!({
        "kv_connector": "NixlConnector",
        "kv_role": "kv_both",
        "kv_connector_extra_config": {"backends": [spec.nixl_backend.nixl_name()]}
    })
}

fn model_id_of(cfg: &Value, which: &str) -> Result<String, RayError> {
    cfg.pointer("/model_loading_config/model_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            RayError::Config(format!(
                "the {which} LLM config has no model_loading_config.model_id string (check --overrides)"
            ))
        })
}

fn collect_env(into: &mut Map<String, Value>, cfg: &Value) {
    if let Some(Value::Object(vars)) = cfg.pointer("/runtime_env/env_vars") {
        for (k, v) in vars {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// Does an LLM config's placement ask for a GPU in every bundle?
fn asks_for_gpus(cfg: &Value) -> bool {
    match cfg
        .pointer("/placement_group_config/bundles")
        .and_then(Value::as_array)
    {
        Some(bundles) if !bundles.is_empty() => bundles
            .iter()
            .all(|b| b.as_object().is_some_and(|m| m.contains_key("GPU"))),
        _ => false,
    }
}

/// Render the application entry for `spec` placed by `plan`.
pub fn render(
    spec: &DeploymentSpec,
    plan: &Plan,
    opts: &RenderOptions,
    version: &RayVersion,
    caller: &CallerEnv,
    overrides: Option<&Overrides>,
) -> Result<Rendered, RayError> {
    if opts.ingress_replicas == 0 {
        return Err(RayError::Config(
            "--ingress-replicas must be at least 1".into(),
        ));
    }
    if opts.app_name.trim().is_empty() {
        return Err(RayError::Config("--app-name must not be empty".into()));
    }
    let env = engine_env(spec, opts.engine_debug, caller);
    let ingress_node = plan.ingress_node.as_deref();
    let mut ingress = small_deployment_config(opts.ingress_replicas, None, ingress_node);
    let merge = |cfg: &mut Value, part: Option<fn(&Overrides) -> &Value>| {
        if let Some(o) = overrides {
            deep_merge(cfg, &o.common);
            if let Some(part) = part {
                deep_merge(cfg, part(o));
            }
        }
    };
    if let Some(o) = overrides {
        deep_merge(&mut ingress, &o.ingress);
    }
    let mut all_env = Map::new();
    let gpu_bundles;
    let (import_path, args, model_id) = if spec.mode().is_pd() {
        if opts.decode_bench {
            return Err(RayError::Config(
                "--decode-bench deploys vLLM's DecodeBenchConnector, which skips prefill; it is meant \
                 for --mode collocated (a collocated replica with dummy-filled KV behaves like a decode \
                 instance), not for PD modes"
                    .into(),
            ));
        }
        let group = |role: Role| {
            plan.group(role).ok_or_else(|| {
                RayError::Config(format!("the placement plan has no {} group", role.as_str()))
            })
        };
        let mut prefill = llm_config(spec, group(Role::Prefill)?, opts, Some(nixl_kv(spec)), &env);
        let mut decode = llm_config(spec, group(Role::Decode)?, opts, Some(nixl_kv(spec)), &env);
        merge(&mut prefill, Some(|o| &o.prefill));
        merge(&mut decode, Some(|o| &o.decode));
        repin(&mut prefill, group(Role::Prefill)?.node.as_deref());
        repin(&mut decode, group(Role::Decode)?.node.as_deref());
        let p_id = model_id_of(&prefill, "prefill")?;
        let d_id = model_id_of(&decode, "decode")?;
        if p_id != d_id {
            return Err(RayError::Config(format!(
                "prefill and decode serve different model ids ('{p_id}' vs '{d_id}'): check --overrides"
            )));
        }
        collect_env(&mut all_env, &prefill);
        collect_env(&mut all_env, &decode);
        gpu_bundles = asks_for_gpus(&prefill) && asks_for_gpus(&decode);
        let mut args = Map::new();
        args.insert("prefill_config".into(), prefill);
        args.insert("decode_config".into(), decode);
        if version.pd_has_proxy() {
            let mut proxy = small_deployment_config(
                opts.ingress_replicas,
                Some(PROXY_MAX_ONGOING_REQUESTS),
                ingress_node,
            );
            if let Some(o) = overrides {
                deep_merge(&mut proxy, &o.proxy);
            }
            args.insert("proxy_deployment_config".into(), proxy);
        }
        args.insert("ingress_deployment_config".into(), ingress);
        (PD_IMPORT, Value::Object(args), p_id)
    } else {
        let g = plan
            .group(Role::Collocated)
            .ok_or_else(|| RayError::Config("the placement plan has no collocated group".into()))?;
        let kv = opts
            .decode_bench
            .then(|| json!({"kv_connector": "DecodeBenchConnector", "kv_role": "kv_both"}));
        let mut cfg = llm_config(spec, g, opts, kv, &env);
        merge(&mut cfg, None);
        repin(&mut cfg, g.node.as_deref());
        let id = model_id_of(&cfg, "collocated")?;
        collect_env(&mut all_env, &cfg);
        gpu_bundles = asks_for_gpus(&cfg);
        let args = json!({"llm_configs": [cfg], "ingress_deployment_config": ingress});
        (COLLOCATED_IMPORT, args, id)
    };
    let app = json!({
        "name": opts.app_name,
        "route_prefix": "/",
        "import_path": import_path,
        "args": args,
    });
    Ok(Rendered {
        app,
        model_id,
        env: all_env,
        gpu_bundles,
    })
}

/// The body of `PUT /api/serve/applications/`.
pub fn put_body(http_options: &Value, applications: Vec<Value>) -> Value {
    json!({"http_options": http_options, "applications": applications})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ray::nodes::Node;
    use crate::ray::plan::plan;
    use pd_common::deployment::PdPlacement;

    fn opts() -> RenderOptions {
        RenderOptions {
            app_name: "gptoss".into(),
            max_model_len: 16000,
            stream_batching_interval_ms: 0,
            ingress_replicas: 16,
            decode_bench: false,
            engine_debug: false,
        }
    }

    fn nodes() -> Vec<Node> {
        vec![
            Node {
                ip: "10.0.0.1".into(),
                gpus: 8,
                alive: true,
                is_head: false,
            },
            Node {
                ip: "10.0.0.2".into(),
                gpus: 8,
                alive: true,
                is_head: false,
            },
        ]
    }

    fn pd(placement: PdPlacement, p_tp: u32, d_tp: u32) -> DeploymentSpec {
        let r = |tp| Replicas { num: 1, tp };
        DeploymentSpec::pd(placement, r(p_tp), r(d_tp))
    }

    /// `spec` planned on [`nodes`] and rendered for Ray `version` with `o` and `ov`.
    fn rendered(
        spec: &DeploymentSpec,
        o: &RenderOptions,
        version: &str,
        ov: Option<&Overrides>,
    ) -> Result<Rendered, RayError> {
        let pl = plan(spec, &nodes()).unwrap();
        render(
            spec,
            &pl,
            o,
            &RayVersion::parse(version),
            &CallerEnv::default(),
            ov,
        )
    }

    #[test]
    fn pd_layout_depends_on_ray_version() {
        let spec = pd(PdPlacement::Pack, 1, 2);
        let new = rendered(&spec, &opts(), "2.60.0", None).unwrap();
        let keys: Vec<&String> = new.app["args"].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "prefill_config",
                "decode_config",
                "ingress_deployment_config"
            ]
        );
        let old = rendered(&spec, &opts(), "2.51.0", None).unwrap();
        assert!(old.app["args"].get("proxy_deployment_config").is_some());
        assert_eq!(new.app["import_path"], PD_IMPORT);
        assert_eq!(new.model_id, "gptoss");
        assert_eq!(new.env.get("UCX_TLS"), Some(&json!("all")));
        let bundles = &new.app["args"]["decode_config"]["placement_group_config"]["bundles"];
        assert_eq!(
            bundles,
            &json!([{"GPU": 1, "node:10.0.0.1": 0.001}, {"GPU": 1, "node:10.0.0.1": 0.001}])
        );
    }

    #[test]
    fn overridden_bundles_keep_the_plan_pin() {
        let spec = pd(PdPlacement::Spread, 1, 1);
        let ov = Overrides::parse(
            std::path::Path::new("o.json"),
            r#"{"placement_group_config": {"bundles": [{"CPU": 1}]},
                "decode": {"placement_group_config": {"bundles": [{"CPU": 1, "node:10.9.9.9": 0.5}]}}}"#,
            true,
        )
        .unwrap();
        let r = rendered(&spec, &opts(), "2.60.0", Some(&ov)).unwrap();
        let args = &r.app["args"];
        assert_eq!(
            args["prefill_config"]["placement_group_config"]["bundles"],
            json!([{"CPU": 1, "node:10.0.0.1": 0.001}])
        );
        assert_eq!(
            args["decode_config"]["placement_group_config"]["bundles"],
            json!([{"CPU": 1, "node:10.9.9.9": 0.5}]),
            "a bundle naming its own node is left alone"
        );
        assert!(!r.gpu_bundles);
    }

    #[test]
    fn decode_bench_only_collocated_and_overrides_checked() {
        let spec = pd(PdPlacement::Pack, 1, 1);
        let mut o = opts();
        o.decode_bench = true;
        let e = rendered(&spec, &o, "2.60.0", None).unwrap_err();
        assert!(e.to_string().contains("DecodeBenchConnector"));
        let ov = Overrides::parse(
            std::path::Path::new("o.json"),
            r#"{"decode": {"model_loading_config": {"model_id": "x"}}}"#,
            true,
        )
        .unwrap();
        let e = rendered(&spec, &opts(), "2.60.0", Some(&ov)).unwrap_err();
        assert!(e.to_string().contains("different model ids"));
        let mut o = opts();
        o.ingress_replicas = 0;
        assert!(rendered(&spec, &o, "2.60.0", None).is_err());
    }
}
