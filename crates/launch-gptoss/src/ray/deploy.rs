//! The deploy flow, phase by phase: pre-flight against the live cluster, the PUT body that
//! keeps every other application, the PUT, the wait, cleanup after a failure, the record.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Map, Value};

use pd_common::deployment::{
    now_rfc3339, DeploymentRecord, ServingBackend, StopHandle, RECORD_FORMAT_VERSION,
};

use super::config::put_body;
use super::dashboard::{Dashboard, ServeEndpoint};
use super::env::{redact, scrub, secret_values};
use super::error::RayError;
use super::options::RayOptions;
use super::preflight::{live_facts, prepare, Prepared};
use super::remove::remove_app;
use super::serve_state::ServeState;
use super::wait::{fingerprint, stamp, wait_ready, Target};
use crate::options::LaunchRequest;

/// A deployment that answers, and its record (written).
#[derive(Debug, Clone)]
pub struct Deployed {
    pub record: DeploymentRecord,
    pub path: PathBuf,
}

/// The host of Serve's `http_options`: loopback when the Serve URL is, else all interfaces.
fn serve_http_host(serve: &ServeEndpoint) -> &'static str {
    if serve.base.is_loopback() {
        "127.0.0.1"
    } else {
        "0.0.0.0"
    }
}

/// The PUT body: every other application's config (PUT is declarative for the whole
/// cluster), ours, Serve's current http options and top-level settings.
fn body_keeping_others(
    state: &ServeState,
    app_name: &str,
    ours: &Value,
    serve: &ServeEndpoint,
) -> Result<(Value, Vec<String>), RayError> {
    if let Some(owner) = state.route_owner(app_name, "/") {
        return Err(RayError::Conflict(format!(
            "application '{owner}' already serves route prefix '/' on the cluster; remove it first \
             (or deploy under its name with --app-name {owner} to replace it)"
        )));
    }
    let others = state.other_app_configs(app_name)?;
    if state.app_view(app_name).is_some() {
        tracing::info!("application '{app_name}' exists and will be replaced");
    }
    let http = state.http_options(serve_http_host(serve), serve.base.port);
    if state.serve_running()
        && http.get("port").and_then(Value::as_u64) != Some(u64::from(serve.base.port))
    {
        tracing::warn!(
            "Serve already runs with http_options {http}; the Serve URL {} may not match \
             (use --serve-url)",
            serve.base
        );
    }
    let kept = others
        .iter()
        .filter_map(|a| a.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let mut apps = others;
    apps.push(ours.clone());
    let mut body = put_body(&http, apps);
    if let Value::Object(m) = &mut body {
        m.extend(state.carried_top_level());
    }
    Ok((body, kept))
}

/// The PUT body of a dry run: our application only, secrets redacted.
pub fn dry_run_body(
    state: Option<&ServeState>,
    prepared: &Prepared,
    serve: &ServeEndpoint,
) -> Value {
    let host = serve_http_host(serve);
    let http = match state {
        Some(s) => s.http_options(host, serve.base.port),
        None => serde_json::json!({"host": host, "port": serve.base.port}),
    };
    let mut body = put_body(&http, vec![prepared.rendered.app.clone()]);
    redact(&mut body);
    body
}

/// Deploy on the live cluster, wait until ready, write the record.
pub fn deploy(req: &LaunchRequest, opts: &RayOptions) -> Result<Deployed, RayError> {
    let t = &opts.timings;
    let dash = Dashboard::new(opts.dashboard.clone(), t.request_timeout, t.request_timeout);
    let serve = ServeEndpoint::new(opts.serve_url.as_ref(), &dash.base, t.models_timeout);
    let prepared = prepare(req, opts, live_facts(&dash, opts)?)?;
    for n in &prepared.notes {
        tracing::info!("note: {n}");
    }
    tracing::info!("{}", prepared.plan.to_string().trim_end());

    let state = dash.serve_state()?;
    let (body, kept) = body_keeping_others(&state, &opts.app_name, &prepared.rendered.app, &serve)?;
    if req.record_path.exists() {
        tracing::info!(
            "{} exists; it will be overwritten on success (the deployment it describes is not \
             stopped unless it is this application)",
            req.record_path.display()
        );
    }
    tracing::info!(
        "deploying application '{}' ({}, {}) to {}{}",
        opts.app_name,
        req.spec.label(),
        prepared.rendered.import_path(),
        dash.base,
        if kept.is_empty() {
            String::new()
        } else {
            format!(", keeping {}", kept.join(", "))
        }
    );

    let start = Instant::now();
    // Pydantic errors echo input values: never let a secret through.
    let secrets = secret_values(&prepared.rendered.app);
    let scrubbed = |e: RayError| e.map_server_text(|t| scrub(t, &secrets));
    // A rejected PUT changes nothing on the cluster: no cleanup needed.
    dash.put_applications(&body).map_err(scrubbed)?;
    tracing::info!(
        "{} PUT accepted; waiting for RUNNING and /v1/models",
        stamp(start)
    );

    let target = Target {
        dash: &dash,
        serve: &serve,
        app: &opts.app_name,
        model_id: &prepared.rendered.model_id,
        fingerprint: fingerprint(
            Some(prepared.rendered.import_path()),
            prepared.rendered.app.get("args"),
        )
        .unwrap_or_default(),
    };
    if let Err(e) = wait_ready(&target, start, req.timeout, t.poll_interval, t.heartbeat) {
        clean_up_after(&dash, opts, start, &e);
        return Err(scrubbed(e));
    }

    let record = build_record(req, opts, &prepared, &serve);
    record.write(&req.record_path)?;
    tracing::info!(
        "{} ready: model '{}' at {} ({}, {} GPUs); record written to {}",
        stamp(start),
        prepared.rendered.model_id,
        serve.base,
        req.spec.label(),
        req.spec.total_gpus(),
        req.record_path.display()
    );
    Ok(Deployed {
        record,
        path: req.record_path.clone(),
    })
}

/// After a failed wait: remove our application (unless `--keep-on-failure`).
fn clean_up_after(dash: &Dashboard, opts: &RayOptions, start: Instant, e: &RayError) {
    let what = match e {
        RayError::DeployFailed { .. } => "deploy failed (Ray's message below)",
        RayError::NotReady { .. } => "not ready before --timeout (details below)",
        RayError::Interrupted { .. } => "interrupted",
        _ => "failed (details below)",
    };
    tracing::error!("{} {what}", stamp(start));
    let app = &opts.app_name;
    if opts.keep_on_failure {
        tracing::warn!(
            "application '{app}' left in place (--keep-on-failure); re-running launch-gptoss with \
             the same --app-name replaces it"
        );
        return;
    }
    match remove_app(dash, app, &opts.timings) {
        Ok(_) => tracing::info!("removed application '{app}' after the failure"),
        Err(ce) => tracing::error!("could not remove application '{app}' after the failure: {ce}"),
    }
}

fn build_record(
    req: &LaunchRequest,
    opts: &RayOptions,
    prepared: &Prepared,
    serve: &ServeEndpoint,
) -> DeploymentRecord {
    let mut env_value = Value::Object(Map::from_iter([(
        "env_vars".to_string(),
        Value::Object(prepared.rendered.env.clone()),
    )]));
    redact(&mut env_value);
    let env: BTreeMap<String, String> = env_value["env_vars"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_string),
            )
        })
        .collect();
    DeploymentRecord {
        format_version: RECORD_FORMAT_VERSION,
        backend: ServingBackend::Ray,
        base_url: serve.base.to_string(),
        served_model_name: prepared.rendered.model_id.clone(),
        label: req.spec.label(),
        total_gpus: req.spec.total_gpus(),
        gpus_per_node: prepared.plan.gpus_per_node,
        nodes: prepared.plan.nodes.clone(),
        command: req.command.clone(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: now_rfc3339(),
        network: None,
        software: BTreeMap::from([("ray".to_string(), prepared.facts.version.raw.clone())]),
        env,
        spec: req.spec.clone(),
        stop: StopHandle::Ray {
            address: opts.dashboard.to_string(),
            app_name: opts.app_name.clone(),
        },
    }
}
