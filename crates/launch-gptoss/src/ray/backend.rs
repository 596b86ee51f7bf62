//! The Ray backend behind the [`Backend`] interface.

use std::path::Path;

use pd_common::deployment::{DeploymentRecord, StopHandle};
use pd_common::url::BaseUrl;
use serde_json::Value;

use super::dashboard::{Dashboard, ServeEndpoint};
use super::deploy::{deploy, dry_run_body};
use super::error::RayError;
use super::options::RayOptions;
use super::plan::Plan;
use super::preflight::{dry_run_facts, prepare, Inventory};
use super::{remove, status};
use crate::backend::{Backend, BackendError, LaunchOutcome, Status, Stopped};
use crate::interrupt;
use crate::options::LaunchRequest;
use crate::record::RecordLock;

/// Ray Serve LLM + vLLM + NIXL on a Ray cluster, over the Serve REST API.
#[derive(Debug, Clone, Default)]
pub struct RayBackend {
    pub opts: RayOptions,
}

/// What a dry run renders.
#[derive(Debug, Clone)]
pub struct DryRun {
    /// The PUT body a deploy would send (our application only, secrets redacted).
    pub body: Value,
    pub plan: Plan,
    /// For people: where the inventory came from, notes, the placement plan.
    pub report: String,
}

/// Render and check without deploying: against `--nodes`, the cluster if it answers, or an
/// assumed inventory (said first in the report).
pub fn dry_run(req: &LaunchRequest, opts: &RayOptions) -> Result<DryRun, RayError> {
    let facts = dry_run_facts(req, opts)?;
    let live = facts.inventory == Inventory::Cluster;
    let t = &opts.timings;
    let dash = Dashboard::new(opts.dashboard.clone(), t.request_timeout, t.request_timeout);
    let serve = ServeEndpoint::new(opts.serve_url.as_ref(), &dash.base, t.models_timeout);
    let mut report = facts.describe();
    report.push('\n');
    let prepared = prepare(req, opts, facts)?;
    let state = if live {
        Some(dash.serve_state()?)
    } else {
        None
    };
    let body = dry_run_body(state.as_ref(), &prepared, &serve);
    report.push_str(&prepared.to_string());
    if let Some(s) = &state {
        let others: Vec<String> = s
            .app_names()
            .into_iter()
            .filter(|n| n != &opts.app_name)
            .collect();
        if !others.is_empty() {
            report.push_str(&format!(
                "  note: a real deploy keeps the other applications on the cluster: {}\n",
                others.join(", ")
            ));
        }
    }
    Ok(DryRun {
        body,
        plan: prepared.plan,
        report,
    })
}

fn dashboard_of(
    record: &DeploymentRecord,
    opts: &RayOptions,
) -> Result<(Dashboard, String), RayError> {
    let StopHandle::Ray { address, app_name } = &record.stop else {
        return Err(RayError::Config(
            "the deployment record does not describe a Ray application".into(),
        ));
    };
    let base = BaseUrl::parse(address, 8265).map_err(|e| RayError::BadUrl {
        what: "Ray dashboard address in the deployment record",
        reason: e.to_string(),
    })?;
    let t = &opts.timings;
    Ok((
        Dashboard::new(base, t.request_timeout, t.request_timeout),
        app_name.clone(),
    ))
}

impl Backend for RayBackend {
    fn launch(&self, req: &LaunchRequest) -> Result<LaunchOutcome, BackendError> {
        if req.dry_run {
            let d = dry_run(req, &self.opts)?;
            let output = serde_json::to_string_pretty(&d.body)
                .map_err(|e| RayError::Config(e.to_string()))?;
            return Ok(LaunchOutcome::DryRun {
                report: d.report,
                output,
            });
        }
        let _lock = RecordLock::acquire(&req.record_path)?;
        interrupt::install();
        let done = deploy(req, &self.opts)?;
        let r = &done.record;
        let summary = vec![
            format!(
                "ray deployment {} ({} GPUs on {}) ready at {} (model '{}', application '{}')",
                r.label,
                r.total_gpus,
                r.nodes.join(", "),
                r.base_url,
                r.served_model_name,
                self.opts.app_name
            ),
            format!("record: {}", done.path.display()),
            "stop:   launch-gptoss shutdown".to_string(),
        ];
        Ok(LaunchOutcome::Ready {
            record: Box::new(done.record),
            path: done.path,
            summary,
        })
    }

    fn shutdown(
        &self,
        record: &DeploymentRecord,
        _record_path: &Path,
    ) -> Result<Stopped, BackendError> {
        let (dash, app) = dashboard_of(record, &self.opts)?;
        let message = remove::shutdown(&dash, &app, &self.opts.timings)?;
        Ok(Stopped { message })
    }

    fn status(
        &self,
        record: &DeploymentRecord,
        _record_path: &Path,
        detail: bool,
    ) -> Result<Status, BackendError> {
        let (dash, app) = dashboard_of(record, &self.opts)?;
        let (alive, lines) = status::status(&dash, &app, detail)?;
        Ok(Status { alive, lines })
    }
}
