//! `status` of a Ray record: the application's and deployments' states.

use super::dashboard::Dashboard;
use super::error::{tail, RayError};
use super::serve_state::{AppStatus, DeploymentStatus};

/// Lines describing application `app`; true when it is RUNNING. `detail`: Ray's messages
/// in full instead of their last 600 characters.
pub fn status(dash: &Dashboard, app: &str, detail: bool) -> Result<(bool, Vec<String>), RayError> {
    let state = dash.serve_state()?;
    let mut out = Vec::new();
    let Some(view) = state.app_view(app) else {
        let others = state.app_names();
        out.push(format!(
            "application '{app}' is not deployed on {} (applications: {})",
            dash.base,
            if others.is_empty() {
                "none".to_string()
            } else {
                others.join(", ")
            }
        ));
        return Ok((false, out));
    };
    let clip = |m: &str| if detail { m.to_string() } else { tail(m, 600) };
    out.push(format!(
        "application '{app}' on {}: {}",
        dash.base, view.status
    ));
    if !view.message.trim().is_empty() {
        out.push(format!("  message: {}", clip(&view.message)));
    }
    for d in &view.deployments {
        out.push(format!(
            "  deployment {} [{}]",
            d.summary(),
            d.status_trigger
        ));
        if !d.message.trim().is_empty() && (detail || d.status != DeploymentStatus::Healthy) {
            out.push(format!("    {}", clip(&d.message)));
        }
    }
    Ok((view.status == AppStatus::Running, out))
}
