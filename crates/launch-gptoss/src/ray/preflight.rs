//! Before anything is deployed: the node inventory and Ray version (from the cluster, from
//! `--nodes`, or assumed for a dry run without either), the layout checked against that
//! inventory, the placement plan and the rendered Serve application.

use std::fmt;
use std::time::Duration;

use super::config::{render, RenderOptions, Rendered};
use super::dashboard::Dashboard;
use super::error::RayError;
use super::nodes::{as_node_args, assumed_inventory, Node};
use super::options::RayOptions;
use super::overrides::Overrides;
use super::plan::{plan, Plan};
use super::version::{RayVersion, ASSUMED_VERSION};
use crate::options::LaunchRequest;

/// Where the node inventory came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Inventory {
    /// The cluster's own node list (`GET /api/v0/nodes`).
    Cluster,
    /// `--nodes` (dry run).
    Given,
    /// A dry run without a cluster and without `--nodes`: `why` the cluster was not used.
    Assumed { why: String },
}

/// What the cluster (or the flags) say about where the deployment goes.
#[derive(Debug, Clone)]
pub struct Facts {
    pub nodes: Vec<Node>,
    pub version: RayVersion,
    pub inventory: Inventory,
    /// The dashboard the facts came from (or would have).
    pub dashboard: String,
}

impl Facts {
    /// One line saying where the inventory came from (printed first by a dry run).
    pub fn describe(&self) -> String {
        match &self.inventory {
            Inventory::Cluster => format!(
                "cluster {}: Ray {}, {} node(s): {}",
                self.dashboard,
                self.version,
                self.nodes.len(),
                self.nodes
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
            ),
            Inventory::Given => format!(
                "dry run on --nodes {} (no cluster contacted); assuming Ray {}",
                as_node_args(&self.nodes),
                self.version
            ),
            Inventory::Assumed { why } => format!(
                "dry run without a cluster ({why}) and without --nodes: assuming {} node(s) of {} \
                 GPUs (--gpus-per-node) at placeholder addresses ({}) and Ray {}",
                self.nodes.len(),
                self.nodes.first().map_or(0, |n| n.gpus),
                as_node_args(&self.nodes),
                self.version
            ),
        }
    }
}

/// Read the live cluster's version and nodes. A head that just started answers
/// `/api/version` before its node is listed: an empty list is re-read a few times.
pub fn live_facts(dash: &Dashboard, opts: &RayOptions) -> Result<Facts, RayError> {
    let version = dash.version()?;
    let mut nodes = dash.nodes()?;
    for _ in 0..opts.timings.empty_node_retries {
        if nodes.iter().any(|n| n.alive) {
            break;
        }
        tracing::info!("no alive node listed yet; retrying in 1 s");
        std::thread::sleep(Duration::from_secs(1));
        nodes = dash.nodes()?;
    }
    let facts = Facts {
        nodes,
        version,
        inventory: Inventory::Cluster,
        dashboard: dash.base.to_string(),
    };
    tracing::info!("{}", facts.describe());
    Ok(facts)
}

/// The facts of a dry run: `--nodes`, else the cluster if it answers, else an assumed
/// inventory of `spec.nodes_needed(gpus_per_node)` nodes.
pub fn dry_run_facts(req: &LaunchRequest, opts: &RayOptions) -> Result<Facts, RayError> {
    let dashboard = opts.dashboard.to_string();
    if let Some(nodes) = &opts.nodes {
        return Ok(Facts {
            nodes: nodes.clone(),
            version: RayVersion::parse(ASSUMED_VERSION),
            inventory: Inventory::Given,
            dashboard,
        });
    }
    let t = &opts.timings;
    let probe = Dashboard::new(opts.dashboard.clone(), t.request_timeout, t.probe_timeout);
    match live_facts(&probe, opts) {
        Ok(f) => Ok(f),
        Err(e @ (RayError::Unreachable { .. } | RayError::RequestTimeout { .. })) => {
            let gpn = req.gpus_per_node;
            Ok(Facts {
                nodes: assumed_inventory(req.spec.nodes_needed(gpn), gpn),
                version: RayVersion::parse(ASSUMED_VERSION),
                inventory: Inventory::Assumed { why: e.to_string() },
                dashboard,
            })
        }
        Err(e) => Err(e),
    }
}

/// The deployment checked, placed and rendered.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub facts: Facts,
    pub plan: Plan,
    pub rendered: Rendered,
    /// Notes to print with the plan.
    pub notes: Vec<String>,
}

impl fmt::Display for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        write!(f, "{}", self.plan)
    }
}

/// Place `spec` on the inventory (the placement checks that every group fits its node:
/// whatever `--gpus-per-node` says, the inventory decides), render it.
pub fn prepare(req: &LaunchRequest, opts: &RayOptions, facts: Facts) -> Result<Prepared, RayError> {
    let overrides = opts.overrides.as_deref().map(Overrides::load).transpose()?;
    let plan = plan(&req.spec, &facts.nodes)?;
    let ropts = RenderOptions {
        app_name: opts.app_name.clone(),
        max_model_len: req.max_model_len,
        stream_batching_interval_ms: opts.stream_batching_interval_ms,
        ingress_replicas: opts.ingress_replicas,
        decode_bench: opts.decode_bench,
        engine_debug: req.engine_debug,
    };
    let rendered = render(
        &req.spec,
        &plan,
        &ropts,
        &facts.version,
        &opts.caller_env,
        overrides.as_ref(),
    )?;
    let mut notes = Vec::new();
    if overrides.is_some() && !rendered.gpu_bundles {
        notes.push(
            "--overrides replaced the GPU bundles; the pre-flight still checked GPU counts".into(),
        );
    }
    Ok(Prepared {
        facts,
        plan,
        rendered,
        notes,
    })
}
