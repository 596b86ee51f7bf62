//! Removing our application and keeping every other one (`shutdown`, and cleanup after a
//! failed deploy).

use std::time::Instant;

use serde_json::Value;

use super::config::put_body;
use super::dashboard::Dashboard;
use super::error::RayError;
use super::options::Timings;

/// Remove application `app` and keep every other one: PUT the others' configs, or DELETE
/// when ours is the only application (DELETE shuts Serve down). Waits until the
/// application is gone. Returns false when it was not deployed.
pub fn remove_app(dash: &Dashboard, app: &str, timings: &Timings) -> Result<bool, RayError> {
    let state = dash.serve_state()?;
    if state.app_view(app).is_none() {
        return Ok(false);
    }
    let others = state.other_app_configs(app)?;
    if others.is_empty() {
        dash.delete_applications()?;
    } else {
        let names: Vec<&str> = others
            .iter()
            .filter_map(|a| a.get("name").and_then(Value::as_str))
            .collect();
        tracing::info!("removing '{app}', keeping {}", names.join(", "));
        let http = state.http_options("127.0.0.1", super::options::DEFAULT_SERVE_PORT);
        let mut body = put_body(&http, others);
        if let Value::Object(m) = &mut body {
            m.extend(state.carried_top_level());
        }
        dash.put_applications(&body)?;
    }
    let start = Instant::now();
    loop {
        let state = dash.serve_state()?;
        match state.app_view(app) {
            None => return Ok(true),
            Some(v) if start.elapsed() >= timings.removal_timeout => {
                tracing::warn!(
                    "application '{app}' still {} after {} s; Ray finishes removing it in the \
                     background",
                    v.status,
                    timings.removal_timeout.as_secs()
                );
                return Ok(true);
            }
            Some(_) => std::thread::sleep(timings.poll_interval),
        }
    }
}

/// `shutdown` of a Ray record: what was done. An unreachable cluster is an error (the
/// record is kept): we cannot tell whether the application still holds GPUs.
pub fn shutdown(dash: &Dashboard, app: &str, timings: &Timings) -> Result<String, RayError> {
    match remove_app(dash, app, timings) {
        Ok(true) => Ok(format!("removed application '{app}' from {}", dash.base)),
        Ok(false) => Ok(format!(
            "application '{app}' is not deployed on {}: nothing to remove",
            dash.base
        )),
        Err(e @ RayError::Unreachable { .. }) => Err(RayError::Conflict(format!(
            "{e}; the deployment record is kept. If that cluster no longer exists, delete the \
             record file by hand"
        ))),
        Err(e) => Err(e),
    }
}
