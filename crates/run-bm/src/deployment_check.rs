//! Is the deployment record still true? run-bm labels every result with the record's
//! deployment (label, GPUs, backend); a stale record would label another server's
//! numbers. Before sending anything:
//!
//! * simulator records: the process the record names must be alive (when the endpoint
//!   is on this machine), the endpoint must be the simulator (`x-pd-lab-backend: sim`)
//!   and serve the record's deployment (`/version` label);
//! * Ray records: the endpoint must not be the simulator, and Ray Serve (dashboard
//!   `GET /api/serve/applications/`) must have the record's application; when the
//!   dashboard cannot be asked, a warning says the labels are taken on trust.
//!
//! Endpoints and dashboards may be `http://` or `https://` (the run's client, with its
//! `--ca-cert`/`--insecure`). A stale record stops the run (exit 1) with the reason and
//! what to do.

use std::time::Duration;

use pd_common::deployment::{DeploymentRecord, ServingBackend, StopHandle};
use pd_common::url::BaseUrl;

use crate::client::HttpClient;
use crate::config::RunConfig;

/// Header the pd-lab simulator puts on every response.
pub const SIM_HEADER: &str = "x-pd-lab-backend";

/// The record does not describe what answers at the endpoint.
#[derive(Debug, thiserror::Error)]
#[error("the deployment record {path} does not describe the server at {url}: {reason}.\n  Results would be labelled {label} wrongly, so nothing was sent. Relaunch the deployment (launch-gptoss), remove the stale record (launch-gptoss shutdown, or delete the file), or benchmark the endpoint without deployment labels: run-bm --no-deployment -u {url}")]
pub struct StaleRecord {
    pub path: String,
    pub url: String,
    pub label: String,
    pub reason: String,
}

/// Whether a process exists (it may belong to another user).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Does the server say it is the pd-lab simulator (`x-pd-lab-backend: sim` on
/// `GET /v1/models`)?
pub async fn answers_as_sim(client: &HttpClient) -> Result<bool, crate::client::ClientError> {
    let r = client
        .get_full("/v1/models", Duration::from_secs(15))
        .await?;
    Ok(r.headers
        .get(SIM_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("sim")))
}

/// Check `cfg.record` against the server `client` talks to.
pub async fn verify(cfg: &RunConfig, client: &HttpClient) -> Result<(), StaleRecord> {
    let Some(rec) = &cfg.record else {
        return Ok(());
    };
    let stale = |reason: String| StaleRecord {
        path: cfg
            .record_path
            .as_deref()
            .map_or_else(|| "?".into(), |p| p.display().to_string()),
        url: client.base_url().to_string(),
        label: rec.label.clone(),
        reason,
    };
    let url = client.base_url().to_string();
    let is_sim = match answers_as_sim(client).await {
        Ok(s) => s,
        Err(e) => return Err(stale(format!("it does not answer ({e})"))),
    };
    match rec.backend {
        ServingBackend::Sim => verify_sim(rec, client, &url, is_sim).await.map_err(stale),
        ServingBackend::Ray => verify_ray(rec, client, &url, is_sim).await.map_err(stale),
    }
}

async fn verify_sim(
    rec: &DeploymentRecord,
    client: &HttpClient,
    url: &str,
    is_sim: bool,
) -> Result<(), String> {
    let local = BaseUrl::parse(url, 80).is_ok_and(|u| u.is_loopback());
    if let (StopHandle::Pid { pid }, true) = (&rec.stop, local) {
        if !pid_alive(*pid) {
            return Err(format!(
                "the simulator process it names (pid {pid}) is not running, so whatever answers at {url} is not that deployment"
            ));
        }
    }
    if !is_sim {
        return Err(format!(
            "the record is for the pd-lab simulator but {url} is not the simulator (no `{SIM_HEADER}: sim` header)"
        ));
    }
    if let Ok(r) = client.get_full("/version", Duration::from_secs(5)).await {
        let label = serde_json::from_slice::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v.get("label").and_then(|l| l.as_str()).map(str::to_string));
        if let Some(label) = label {
            if label != rec.label {
                return Err(format!(
                    "the simulator at {url} serves deployment {label}, the record says {}",
                    rec.label
                ));
            }
        }
    }
    Ok(())
}

async fn verify_ray(
    rec: &DeploymentRecord,
    client: &HttpClient,
    url: &str,
    is_sim: bool,
) -> Result<(), String> {
    if is_sim {
        return Err(format!(
            "the record describes a Ray Serve deployment but {url} is the pd-lab simulator"
        ));
    }
    let StopHandle::Ray { address, app_name } = &rec.stop else {
        return Ok(());
    };
    let unverified = |why: String| {
        tracing::warn!(
            "cannot check the Ray deployment of the record ({why}); results are labelled {} on trust",
            rec.label
        );
        Ok(())
    };
    // http or https: the run's client (and its --ca-cert/--insecure) reaches both.
    let dash = match BaseUrl::parse(address, 8265) {
        Ok(d) => d,
        Err(e) => return unverified(e.to_string()),
    };
    let apps_url = dash.join("/api/serve/applications/");
    let resp = match client.get_url(&apps_url, Duration::from_secs(10)).await {
        Ok(r) if r.status == 200 => r,
        Ok(r) => return unverified(format!("{apps_url} answered HTTP {}", r.status)),
        Err(e) => return unverified(e.to_string()),
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&resp.body) else {
        return unverified(format!("{apps_url} did not answer JSON"));
    };
    let apps = v.get("applications").and_then(|a| a.as_object());
    match apps.and_then(|a| a.get(app_name)) {
        None => {
            let have: Vec<&str> = apps
                .map(|a| a.keys().map(String::as_str).collect())
                .unwrap_or_default();
            Err(format!(
                "Ray Serve at {dash} has no application '{app_name}' (it has: {})",
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ))
        }
        Some(app) => {
            let status = app.get("status").and_then(|s| s.as_str()).unwrap_or("?");
            if status != "RUNNING" {
                tracing::warn!(
                    "the Ray application '{app_name}' of the record is {status}, not RUNNING"
                );
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_checks() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
    }
}
