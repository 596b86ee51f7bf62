//! Waiting for a deployed application: poll the Serve state until the application is
//! RUNNING and `/v1/models` lists the model, with progress lines, Ray's resource messages
//! shown once, a clear failure on DEPLOY_FAILED / removal / replacement, and a timeout
//! that says what is still pending.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::dashboard::{Dashboard, ServeEndpoint};
use super::error::RayError;
use super::serve_state::{AppStatus, AppView, ServeState};
use crate::interrupt;

/// Elapsed time as `[  12.3s]`.
pub fn stamp(start: Instant) -> String {
    format!("[{:>6.1}s]", start.elapsed().as_secs_f64())
}

/// What one poll of the Serve state says about our application.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// Not listed yet (Ray has not picked the config up).
    NotListed,
    /// Listed, not ready yet.
    Pending(AppView),
    /// RUNNING: the model endpoint decides.
    Running(AppView),
    /// The deployment cannot become ready: Ray's reason.
    Failed(String),
}

/// The shape of a deployment as far as "is this still ours?" goes: the import path and,
/// per LLM config, model id, TP and replica counts. Two launches racing on one cluster and
/// application name replace each other's config; the loser must not report ready.
pub fn fingerprint(import_path: Option<&str>, args: Option<&Value>) -> Option<Vec<String>> {
    let args = args?;
    let mut out = vec![import_path?.to_string()];
    let configs: Vec<&Value> = match args.get("llm_configs").and_then(Value::as_array) {
        Some(list) => list.iter().collect(),
        None => ["prefill_config", "decode_config"]
            .iter()
            .filter_map(|k| args.get(*k))
            .collect(),
    };
    if configs.is_empty() {
        return None;
    }
    for c in configs {
        let num = |p: &str| c.pointer(p).and_then(Value::as_f64).map(|v| v.to_string());
        out.push(format!(
            "{}|tp={}|min={}|max={}",
            c.pointer("/model_loading_config/model_id")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            num("/engine_kwargs/tensor_parallel_size").unwrap_or_default(),
            num("/deployment_config/autoscaling_config/min_replicas").unwrap_or_default(),
            num("/deployment_config/autoscaling_config/max_replicas").unwrap_or_default(),
        ));
    }
    Some(out)
}

/// Classify one Serve state. `seen`: the application was listed before.
pub fn observe(state: &ServeState, app: &str, seen: bool, ours: &[String]) -> Observation {
    let Some(view) = state.app_view(app) else {
        return if seen {
            Observation::Failed(
                "the application disappeared from the cluster (removed by another deploy or \
                 shutdown?)"
                    .into(),
            )
        } else {
            Observation::NotListed
        };
    };
    let theirs = view
        .config
        .as_ref()
        .and_then(|c| fingerprint(c.import_path.as_deref(), c.args.as_ref()));
    if let Some(theirs) = theirs {
        if theirs != ours {
            return Observation::Failed(format!(
                "the application on the cluster is no longer the one this launch deployed \
                 (replaced by another launch?): it now runs {}",
                theirs[1..].join(", ")
            ));
        }
    }
    match view.status {
        AppStatus::DeployFailed => Observation::Failed(view.failure_message()),
        AppStatus::Deleting => Observation::Failed(
            "the application is being deleted (by another deploy or shutdown?)".into(),
        ),
        AppStatus::Running => Observation::Running(view),
        _ => Observation::Pending(view),
    }
}

/// Progress output: a line when something changed, or every `heartbeat`.
struct Progress {
    start: Instant,
    heartbeat: Duration,
    last_line: String,
    last_print: Instant,
    shown: HashSet<String>,
}

impl Progress {
    fn line(&mut self, line: String) {
        if line != self.last_line || self.last_print.elapsed() >= self.heartbeat {
            tracing::info!("{} {line}", stamp(self.start));
            self.last_line = line;
            self.last_print = Instant::now();
        }
    }

    /// Ray's "waiting to be scheduled" messages, each once.
    fn ray_says(&mut self, view: &AppView) {
        for m in view.unscheduled_messages() {
            if self.shown.insert(m.clone()) {
                tracing::info!("{} Ray says: {m}", stamp(self.start));
            }
        }
    }
}

/// What to wait for.
pub struct Target<'a> {
    pub dash: &'a Dashboard,
    pub serve: &'a ServeEndpoint,
    pub app: &'a str,
    pub model_id: &'a str,
    /// [`fingerprint`] of the application this launch PUT.
    pub fingerprint: Vec<String>,
}

/// Poll until the app is RUNNING and `/v1/models` lists the model, or fail.
pub fn wait_ready(
    t: &Target<'_>,
    start: Instant,
    timeout: Duration,
    poll: Duration,
    heartbeat: Duration,
) -> Result<(), RayError> {
    // A huge --timeout must not overflow the clock: cap it at a year.
    let deadline = start + timeout.min(Duration::from_secs(365 * 24 * 3600));
    let mut progress = Progress {
        start,
        heartbeat,
        last_line: String::new(),
        last_print: Instant::now(),
        shown: HashSet::new(),
    };
    let mut seen = false;
    let mut pending = "the application was not listed yet".to_string();
    loop {
        let line = match t.dash.serve_state() {
            Err(e) => format!("dashboard not answering ({e}); retrying"),
            Ok(state) => match observe(&state, t.app, seen, &t.fingerprint) {
                Observation::Failed(message) => {
                    return Err(RayError::DeployFailed {
                        app: t.app.to_string(),
                        message,
                    })
                }
                Observation::NotListed => "application not listed yet".to_string(),
                Observation::Pending(view) => {
                    seen = true;
                    progress.ray_says(&view);
                    pending = view.pending();
                    view.summary()
                }
                Observation::Running(view) => {
                    seen = true;
                    match check_models(t) {
                        ModelCheck::Listed => {
                            tracing::info!(
                                "{} {} | /v1/models lists '{}'",
                                stamp(start),
                                view.summary(),
                                t.model_id
                            );
                            return Ok(());
                        }
                        ModelCheck::Missing(why) => {
                            pending = format!("application RUNNING but {why}");
                            format!("{} | {why}", view.summary())
                        }
                    }
                }
            },
        };
        progress.line(line);
        let now = Instant::now();
        if now >= deadline {
            return Err(RayError::NotReady {
                app: t.app.to_string(),
                secs: timeout.as_secs(),
                pending,
            });
        }
        interrupt::sleep(poll.min(deadline - now)).map_err(|signal| RayError::Interrupted {
            app: t.app.to_string(),
            signal,
        })?;
    }
}

enum ModelCheck {
    Listed,
    /// Why not (yet).
    Missing(String),
}

fn check_models(t: &Target<'_>) -> ModelCheck {
    match t.serve.models() {
        Ok(ids) if ids.iter().any(|i| i == t.model_id) => ModelCheck::Listed,
        Ok(ids) => ModelCheck::Missing(format!(
            "{}/v1/models lists {ids:?}, not '{}'",
            t.serve.base, t.model_id
        )),
        Err(e) => ModelCheck::Missing(format!("/v1/models failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state_with(args: Value, status: &str) -> ServeState {
        serde_json::from_value(json!({"applications": {"gptoss": {
            "status": status,
            "deployed_app_config": {"name": "gptoss", "import_path": "ray.serve.llm:build_openai_app", "args": args},
            "deployments": {}}}}))
        .unwrap()
    }

    fn args(tp: u32, n: u32) -> Value {
        json!({"llm_configs": [{"model_loading_config": {"model_id": "gptoss"},
            "engine_kwargs": {"tensor_parallel_size": tp},
            "deployment_config": {"autoscaling_config": {"min_replicas": n, "max_replicas": n}}}]})
    }

    #[test]
    fn a_replaced_application_is_a_failure() {
        let ours = fingerprint(Some("ray.serve.llm:build_openai_app"), Some(&args(2, 4))).unwrap();
        assert!(matches!(
            observe(&state_with(args(2, 4), "RUNNING"), "gptoss", true, &ours),
            Observation::Running(_)
        ));
        match observe(&state_with(args(1, 1), "DEPLOYING"), "gptoss", true, &ours) {
            Observation::Failed(m) => assert!(m.contains("replaced by another launch"), "{m}"),
            o => panic!("{o:?}"),
        }
        // Integers echoed as floats are the same deployment.
        let mut floats = args(2, 4);
        floats["llm_configs"][0]["engine_kwargs"]["tensor_parallel_size"] = json!(2.0);
        assert!(matches!(
            observe(&state_with(floats, "DEPLOYING"), "gptoss", true, &ours),
            Observation::Pending(_)
        ));
    }

    #[test]
    fn failures_and_absence() {
        let ours = vec![];
        let empty = ServeState::default();
        assert_eq!(
            observe(&empty, "gptoss", false, &ours),
            Observation::NotListed
        );
        assert!(matches!(
            observe(&empty, "gptoss", true, &ours),
            Observation::Failed(m) if m.contains("disappeared")
        ));
        assert!(matches!(
            observe(&state_with(json!(null), "DELETING"), "gptoss", true, &ours),
            Observation::Failed(m) if m.contains("being deleted")
        ));
    }
}
