//! The deploy flow: pre-flight, PUT, poll with progress, failure handling and cleanup,
//! and the record; plus removal (`shutdown`) and `status`.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use pd_common::deployment::{
    now_rfc3339, DeploymentRecord, DeploymentSpec, ServingBackend, StopHandle,
    RECORD_FORMAT_VERSION,
};

use super::config::{put_body, render, RenderOptions, Rendered};
use super::dashboard::{Dashboard, ServeEndpoint};
use super::env::{redact, scrub, secret_values, CallerEnv};
use super::error::RayError;
use super::nodes::{parse_node_args, Node};
use super::overrides::Overrides;
use super::plan::{plan, Plan};
use super::serve_state::{
    app_names, app_view, carried_top_level, http_options, other_app_configs, route_owner,
    serve_running,
};
use super::version::{RayVersion, ASSUMED_VERSION};
use crate::cli::LaunchArgs;

/// How often an empty node list is re-read (1 s apart) before the pre-flight judges it.
const EMPTY_NODE_RETRIES: u32 = 10;

/// Knobs that are not flags (tests shorten them).
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// Time between two status polls.
    pub poll_interval: Duration,
    /// Timeout of one dashboard request.
    pub request_timeout: Duration,
    /// Timeout of one `GET /v1/models` (a route without replicas hangs).
    pub models_timeout: Duration,
    /// How long removal waits for the application to disappear.
    pub removal_timeout: Duration,
    /// Print a progress line at least this often even when nothing changes.
    pub heartbeat: Duration,
    /// The command line to record.
    pub command: Vec<String>,
    /// Environment read from the caller.
    pub caller_env: CallerEnv,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions {
            poll_interval: Duration::from_millis(1500),
            request_timeout: Duration::from_secs(30),
            models_timeout: Duration::from_secs(5),
            removal_timeout: Duration::from_secs(120),
            heartbeat: Duration::from_secs(30),
            command: std::env::args().collect(),
            caller_env: CallerEnv::from_process(),
        }
    }
}

/// What `launch` did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `--dry-run`: the PUT body that would be sent (our app only) and the plan.
    DryRun { body: Value, plan: Plan },
    /// Deployed and ready; the record was written to `path`.
    Deployed {
        record: Box<DeploymentRecord>,
        path: PathBuf,
    },
}

/// Elapsed time as `[  12.3s]`.
fn stamp(start: Instant) -> String {
    format!("[{:>6.1}s]", start.elapsed().as_secs_f64())
}

/// The live inputs of planning: nodes and version, from `--nodes` (dry run) or the cluster.
async fn cluster_facts(
    args: &LaunchArgs,
    dash: &Dashboard,
    log: &mut dyn Write,
) -> Result<(Vec<Node>, RayVersion, bool), RayError> {
    if !args.nodes.is_empty() {
        if !args.dry_run {
            return Err(RayError::Config(
                "--nodes describes a cluster for --dry-run only; a real deploy uses the cluster's own \
                 node list (GET /api/v0/nodes)"
                    .into(),
            ));
        }
        let nodes = parse_node_args(&args.nodes)?;
        let _ = writeln!(
            log,
            "dry run on --nodes (no cluster contacted); assuming Ray {ASSUMED_VERSION}"
        );
        return Ok((nodes, RayVersion::parse(ASSUMED_VERSION), false));
    }
    let version = dash.version().await?;
    // A head that just started answers /api/version before its node is listed.
    let mut nodes = dash.nodes().await?;
    for _ in 0..EMPTY_NODE_RETRIES {
        if nodes.iter().any(|n| n.alive) {
            break;
        }
        let _ = writeln!(log, "no alive node listed yet; retrying in 1 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
        nodes = dash.nodes().await?;
    }
    let _ = writeln!(
        log,
        "cluster {}: Ray {version}, {} node(s): {}",
        dash.base,
        nodes.len(),
        nodes
            .iter()
            .map(|n| format!(
                "{} {} {} GPU{}",
                n.ip,
                if n.alive { "ALIVE" } else { "DEAD" },
                n.gpus,
                if n.is_head { " (head)" } else { "" }
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok((nodes, version, true))
}

/// Deploy `spec` as `args` say; see the crate docs for the whole behaviour.
pub async fn launch(
    spec: &DeploymentSpec,
    args: &LaunchArgs,
    opts: &LaunchOptions,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<Outcome, RayError> {
    let dash = Dashboard::new(&args.ray_address, opts.request_timeout)?;
    let serve = ServeEndpoint::new(args.serve_url.as_deref(), &dash.base, opts.models_timeout)?;
    let overrides = args.overrides.as_deref().map(Overrides::load).transpose()?;
    let ropts = RenderOptions::from_args(args);
    let (nodes, version, live) = cluster_facts(args, &dash, log).await?;
    let plan = plan(spec, &nodes)?;
    let rendered = render(
        spec,
        &plan,
        &ropts,
        &version,
        &opts.caller_env,
        overrides.as_ref(),
    )?;
    let http_host = if serve.base.is_loopback() {
        "127.0.0.1"
    } else {
        "0.0.0.0"
    };
    if overrides.is_some() && !rendered.app.to_string().contains("\"GPU\"") {
        let _ = writeln!(
            log,
            "note: --overrides replaced the GPU bundles; the pre-flight still checked GPU counts"
        );
    }

    if args.dry_run {
        let state = if live {
            Some(dash.serve_state().await?)
        } else {
            None
        };
        let http = match &state {
            Some(s) => http_options(s, http_host, serve.base.port),
            None => serde_json::json!({"host": http_host, "port": serve.base.port}),
        };
        let mut body = put_body(&http, vec![rendered.app.clone()]);
        redact(&mut body);
        let _ = write!(log, "{plan}");
        if let Some(s) = &state {
            let others: Vec<String> = app_names(s)
                .into_iter()
                .filter(|n| n != &args.app_name)
                .collect();
            if !others.is_empty() {
                let _ = writeln!(
                    log,
                    "  note: a real deploy keeps the other applications on the cluster: {}",
                    others.join(", ")
                );
            }
        }
        let text =
            serde_json::to_string_pretty(&body).map_err(|e| RayError::Config(e.to_string()))?;
        let _ = writeln!(out, "{text}");
        return Ok(Outcome::DryRun { body, plan });
    }

    // Keep every other application: PUT is declarative for the whole cluster.
    let state = dash.serve_state().await?;
    if let Some(owner) = route_owner(&state, &args.app_name, "/") {
        return Err(RayError::Conflict(format!(
            "application '{owner}' already serves route prefix '/' on the cluster; remove it first \
             (or deploy under its name with --app-name {owner} to replace it)"
        )));
    }
    let others = other_app_configs(&state, &args.app_name)?;
    if app_view(&state, &args.app_name).is_some() {
        let _ = writeln!(
            log,
            "note: application '{}' exists and will be replaced",
            args.app_name
        );
    }
    let http = http_options(&state, http_host, serve.base.port);
    if serve_running(&state)
        && http.get("port").and_then(Value::as_u64) != Some(u64::from(serve.base.port))
    {
        let _ = writeln!(
            log,
            "warning: Serve already runs with http_options {http}; the Serve URL {} may not match \
             (use --serve-url)",
            serve.base
        );
    }
    let kept: Vec<String> = others
        .iter()
        .filter_map(|a| a.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let mut apps = others;
    apps.push(rendered.app.clone());
    let mut body = put_body(&http, apps);
    if let Value::Object(m) = &mut body {
        for (k, v) in carried_top_level(&state) {
            m.insert(k, v);
        }
    }
    let _ = write!(log, "{plan}");
    let _ = writeln!(
        log,
        "deploying application '{}' ({}, {}) to {}{}",
        args.app_name,
        spec.label(),
        rendered.app["import_path"].as_str().unwrap_or(""),
        dash.base,
        if kept.is_empty() {
            String::new()
        } else {
            format!(", keeping {}", kept.join(", "))
        }
    );
    let record_path = crate::record::record_path(args.deployment_file.as_ref());
    if record_path.exists() {
        let _ = writeln!(
            log,
            "note: {} exists; it will be overwritten on success (the deployment it describes is \
             not stopped unless it is this application)",
            record_path.display()
        );
    }
    let start = Instant::now();
    // Pydantic errors echo input values: never let a secret through.
    let secrets = secret_values(&rendered.app);
    let scrubbed = |e: RayError| e.map_server_text(|t| scrub(t, &secrets));
    // A rejected PUT changes nothing on the cluster: no cleanup needed.
    dash.put_applications(&body).await.map_err(scrubbed)?;
    let _ = writeln!(
        log,
        "{} PUT accepted; waiting for RUNNING and /v1/models",
        stamp(start)
    );

    match wait_ready(&dash, &serve, args, opts, &rendered, start, log).await {
        Ok(()) => {}
        Err(e) => {
            let what = match &e {
                RayError::DeployFailed { .. } => "deploy failed (Ray's message below)",
                RayError::NotReady { .. } => "not ready before --timeout (details below)",
                RayError::Interrupted(_) => "interrupted",
                _ => "failed (details below)",
            };
            let _ = writeln!(log, "{} {what}", stamp(start));
            if args.keep_on_failure {
                let _ = writeln!(
                    log,
                    "application '{}' left in place (--keep-on-failure); re-running launch-gptoss with \
                     the same --app-name replaces it",
                    args.app_name
                );
            } else {
                match remove_app(&dash, &args.app_name, opts, log).await {
                    Ok(_) => {
                        let _ = writeln!(
                            log,
                            "removed application '{}' after the failure",
                            args.app_name
                        );
                    }
                    Err(ce) => {
                        let _ = writeln!(
                            log,
                            "could not remove application '{}' after the failure: {ce}",
                            args.app_name
                        );
                    }
                }
            }
            return Err(scrubbed(e));
        }
    }

    let record = build_record(spec, args, opts, &plan, &version, &rendered, &serve);
    let path = record_path;
    record.write(&path)?;
    let _ = writeln!(
        log,
        "{} ready: model '{}' at {} ({}, {} GPUs); record written to {}",
        stamp(start),
        rendered.model_id,
        serve.base,
        spec.label(),
        spec.total_gpus(),
        path.display()
    );
    Ok(Outcome::Deployed {
        record: Box::new(record),
        path,
    })
}

fn build_record(
    spec: &DeploymentSpec,
    args: &LaunchArgs,
    opts: &LaunchOptions,
    plan: &Plan,
    version: &RayVersion,
    rendered: &Rendered,
    serve: &ServeEndpoint,
) -> DeploymentRecord {
    let mut env_value = Value::Object(Map::from_iter([(
        "env_vars".to_string(),
        Value::Object(rendered.env.clone()),
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
        served_model_name: rendered.model_id.clone(),
        label: spec.label(),
        total_gpus: spec.total_gpus(),
        gpus_per_node: plan.gpus_per_node,
        nodes: plan.nodes.clone(),
        command: opts.command.clone(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: now_rfc3339(),
        network: None,
        software: BTreeMap::from([("ray".to_string(), version.raw.clone())]),
        env,
        spec: spec.clone(),
        stop: StopHandle::Ray {
            address: args.ray_address.clone(),
            app_name: args.app_name.clone(),
        },
    }
}

/// Sleep `d`, or fail on Ctrl-C.
async fn pause(d: Duration, app: &str) -> Result<(), RayError> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => Err(RayError::Interrupted(app.to_string())),
            // No signal handling available: just sleep.
            Err(_) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
        },
    }
}

/// Poll until the app is RUNNING and `/v1/models` lists the model.
async fn wait_ready(
    dash: &Dashboard,
    serve: &ServeEndpoint,
    args: &LaunchArgs,
    opts: &LaunchOptions,
    rendered: &Rendered,
    start: Instant,
    log: &mut dyn Write,
) -> Result<(), RayError> {
    let app = args.app_name.as_str();
    // A huge --timeout must not overflow the clock: cap it at a year.
    let deadline = start + Duration::from_secs(args.timeout.min(365 * 24 * 3600));
    let mut last_line = String::new();
    let mut last_print = Instant::now();
    let mut shown: HashSet<String> = HashSet::new();
    let mut seen = false;
    let mut pending = "the application was not listed yet".to_string();
    loop {
        let line = match dash.serve_state().await {
            Err(e) => format!("dashboard not answering ({e}); retrying"),
            Ok(state) => {
                match app_view(&state, app) {
                    None if seen => {
                        return Err(RayError::DeployFailed {
                            app: app.to_string(),
                            message:
                                "the application disappeared from the cluster (removed by another \
                                  deploy or shutdown?)"
                                    .into(),
                        })
                    }
                    None => "application not listed yet".to_string(),
                    Some(view) => {
                        seen = true;
                        for m in view.unscheduled_messages() {
                            if shown.insert(m.clone()) {
                                let _ = writeln!(log, "{} Ray says: {m}", stamp(start));
                            }
                        }
                        pending = view.pending();
                        match view.status.as_str() {
                        "DEPLOY_FAILED" => {
                            return Err(RayError::DeployFailed {
                                app: app.to_string(),
                                message: view.failure_message(),
                            })
                        }
                        "DELETING" => {
                            return Err(RayError::DeployFailed {
                                app: app.to_string(),
                                message: "the application is being deleted (by another deploy or shutdown?)"
                                    .into(),
                            })
                        }
                        "RUNNING" => match serve.models().await {
                            Ok(ids) if ids.iter().any(|i| i == &rendered.model_id) => {
                                let _ = writeln!(
                                    log,
                                    "{} {} | /v1/models lists '{}'",
                                    stamp(start),
                                    view.summary(),
                                    rendered.model_id
                                );
                                return Ok(());
                            }
                            Ok(ids) => {
                                pending = format!(
                                    "application RUNNING but {}/v1/models lists {ids:?}, not '{}'",
                                    serve.base, rendered.model_id
                                );
                                format!("{} | waiting for /v1/models to list '{}'", view.summary(), rendered.model_id)
                            }
                            Err(e) => {
                                pending = format!("application RUNNING but /v1/models failed: {e}");
                                format!("{} | /v1/models: {e}", view.summary())
                            }
                        },
                        _ => view.summary(),
                    }
                    }
                }
            }
        };
        if line != last_line || last_print.elapsed() >= opts.heartbeat {
            let _ = writeln!(log, "{} {line}", stamp(start));
            last_line = line;
            last_print = Instant::now();
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(RayError::NotReady {
                app: app.to_string(),
                secs: args.timeout,
                pending,
            });
        }
        pause(opts.poll_interval.min(deadline - now), app).await?;
    }
}

/// Remove application `app` and keep every other one: PUT the others' configs, or DELETE
/// when ours is the only application (DELETE shuts Serve down). Waits until the
/// application is gone. Returns false when it was not deployed.
pub async fn remove_app(
    dash: &Dashboard,
    app: &str,
    opts: &LaunchOptions,
    log: &mut dyn Write,
) -> Result<bool, RayError> {
    let state = dash.serve_state().await?;
    if app_view(&state, app).is_none() {
        return Ok(false);
    }
    let others = other_app_configs(&state, app)?;
    if others.is_empty() {
        dash.delete_applications().await?;
    } else {
        let names: Vec<String> = others
            .iter()
            .filter_map(|a| a.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        let _ = writeln!(log, "removing '{app}', keeping {}", names.join(", "));
        let http = http_options(&state, "127.0.0.1", 8000);
        let mut body = put_body(&http, others);
        if let Value::Object(m) = &mut body {
            for (k, v) in carried_top_level(&state) {
                m.insert(k, v);
            }
        }
        dash.put_applications(&body).await?;
    }
    let start = Instant::now();
    loop {
        let state = dash.serve_state().await?;
        match app_view(&state, app) {
            None => return Ok(true),
            Some(v) if start.elapsed() >= opts.removal_timeout => {
                let _ = writeln!(
                    log,
                    "note: application '{app}' still {} after {} s; Ray finishes removing it in the background",
                    v.status,
                    opts.removal_timeout.as_secs()
                );
                return Ok(true);
            }
            Some(_) => tokio::time::sleep(opts.poll_interval).await,
        }
    }
}

/// `shutdown` for a Ray record. An unreachable cluster is an error (the record is kept):
/// we cannot tell whether the application still holds GPUs.
pub async fn shutdown(
    address: &str,
    app: &str,
    opts: &LaunchOptions,
    log: &mut dyn Write,
) -> Result<(), RayError> {
    let dash = Dashboard::new(address, opts.request_timeout)?;
    match remove_app(&dash, app, opts, log).await {
        Ok(true) => {
            let _ = writeln!(log, "removed application '{app}' from {}", dash.base);
            Ok(())
        }
        Ok(false) => {
            let _ = writeln!(log, "application '{app}' is not deployed on {}: nothing to remove", dash.base);
            Ok(())
        }
        Err(e @ RayError::Unreachable { .. }) => Err(RayError::Conflict(format!(
            "{e}; the deployment record is kept. If that cluster no longer exists, delete the record \
             file by hand"
        ))),
        Err(e) => Err(e),
    }
}

/// `status` for a Ray record: print app and deployment states; true when RUNNING.
pub async fn status(
    address: &str,
    app: &str,
    verbose: bool,
    opts: &LaunchOptions,
    out: &mut dyn Write,
) -> Result<bool, RayError> {
    let dash = Dashboard::new(address, opts.request_timeout)?;
    let state = dash.serve_state().await?;
    let Some(view) = app_view(&state, app) else {
        let others = app_names(&state);
        let _ = writeln!(
            out,
            "application '{app}' is not deployed on {} (applications: {})",
            dash.base,
            if others.is_empty() {
                "none".to_string()
            } else {
                others.join(", ")
            }
        );
        return Ok(false);
    };
    let _ = writeln!(out, "application '{app}' on {}: {}", dash.base, view.status);
    if !view.message.trim().is_empty() {
        let msg = if verbose {
            view.message.clone()
        } else {
            super::error::tail(&view.message, 600)
        };
        let _ = writeln!(out, "  message: {msg}");
    }
    for d in &view.deployments {
        let _ = writeln!(out, "  deployment {} [{}]", d.summary(), d.status_trigger);
        if !d.message.trim().is_empty() && (verbose || d.status != "HEALTHY") {
            let msg = if verbose {
                d.message.clone()
            } else {
                super::error::tail(&d.message, 600)
            };
            let _ = writeln!(out, "    {msg}");
        }
    }
    Ok(view.status == "RUNNING")
}
