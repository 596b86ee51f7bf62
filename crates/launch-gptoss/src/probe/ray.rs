//! The probe on a Ray cluster: read the nodes, place every configuration, submit the
//! benchmark program as a Ray job (`POST /api/jobs/`), follow it (status and logs, with
//! each configuration's figures shown as they arrive), stop it on timeout or a signal, and
//! turn its result lines into the result file.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use pd_common::probe::{ProbeConfig, ProbeEnvironment, ProbeFile, ProbeResult};
use serde_json::{Map, Value};

use super::error::ProbeError;
use super::options::RayProbe;
use super::plan::{assign, Assignment};
use super::script::{self, JobConfig, Line, ResultLine};
use crate::interrupt;
use crate::ray::dashboard::Dashboard;
use crate::ray::error::{strip_ansi, tail};
use crate::ray::jobs::{JobStatus, JobSubmission};
use crate::ray::nodes::Node;

/// What a dry run prints: the placement of every configuration and the submission.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub nodes: Vec<Node>,
    pub ray_version: String,
    pub assignments: Vec<(ProbeConfig, Assignment)>,
    pub submission: Option<JobSubmission>,
    /// The program with its configurations (what runs on the cluster).
    pub program: Option<String>,
}

fn submission_id() -> String {
    let now = chrono::Local::now().format("%Y%m%d-%H%M%S");
    format!("pd-lab-nixl-probe-{now}-{}", std::process::id())
}

/// Read the cluster, place the configurations, render the job (nothing is submitted).
pub fn prepare(
    configs: &[ProbeConfig],
    opts: &RayProbe,
    warmup: u32,
    dash: &Dashboard,
) -> Result<Prepared, ProbeError> {
    let ray_version = dash.version()?.to_string();
    let nodes = dash.nodes()?;
    let assignments: Vec<(ProbeConfig, Assignment)> = configs
        .iter()
        .map(|c| (c.clone(), assign(c, &nodes, opts.nodes.as_ref())))
        .collect();
    let run_timeout = opts.timeout.as_secs().max(1);
    let job_configs: Vec<JobConfig> = assignments
        .iter()
        .filter_map(|(c, a)| {
            a.as_ref().ok().map(|(p, d)| {
                JobConfig::new(
                    c,
                    p,
                    d,
                    script::actor_env(c.nixl_backend, opts.ucx_tls.as_deref()),
                    warmup,
                    opts.place_timeout.as_secs().max(1),
                    run_timeout,
                )
            })
        })
        .collect();
    let (submission, program) = if job_configs.is_empty() {
        (None, None)
    } else {
        let program = script::program(&job_configs);
        let mut metadata = Map::new();
        metadata.insert("pd_lab".into(), Value::String("nixl-probe".into()));
        metadata.insert(
            "tool_version".into(),
            Value::String(pd_common::VERSION.into()),
        );
        let sub = JobSubmission {
            entrypoint: script::entrypoint(&opts.python, &program),
            submission_id: submission_id(),
            entrypoint_num_cpus: 0.0,
            metadata,
        };
        (Some(sub), Some(program))
    };
    Ok(Prepared {
        nodes,
        ray_version,
        assignments,
        submission,
        program,
    })
}

/// One configuration's result from its job line; `planned` is where it was placed.
fn to_result(
    c: &ProbeConfig,
    planned: &(String, String),
    r: &ResultLine,
    link: Option<String>,
) -> ProbeResult {
    if let Some(e) = &r.error {
        return ProbeResult {
            p_node: Some(planned.0.clone()),
            d_node: Some(planned.1.clone()),
            link,
            ..ProbeResult::failed(c.clone(), e.clone())
        };
    }
    let placed_ok = r.p_nodes == [planned.0.clone()] && r.d_nodes == [planned.1.clone()];
    let mut out = ProbeResult {
        config: c.clone(),
        p_node: r.p_nodes.first().cloned().or(Some(planned.0.clone())),
        d_node: r.d_nodes.first().cloned().or(Some(planned.1.clone())),
        link,
        figures: r.figures.sanitized(),
        error: None,
    };
    if !placed_ok {
        out.error = Some(format!(
            "the ranks ran on P {:?} / D {:?}, not on the planned P {} / D {}",
            r.p_nodes, r.d_nodes, planned.0, planned.1
        ));
    } else if out.figures.bandwidth_gbps.is_none() {
        out.error = Some("the job reported no usable bandwidth".into());
    }
    out
}

/// Follow the job until it ends; returns its final status, message and whole log.
fn follow(
    dash: &Dashboard,
    id: &str,
    opts: &RayProbe,
    configs: &BTreeMap<String, ProbeConfig>,
) -> Result<(JobStatus, String, String), ProbeError> {
    interrupt::install();
    let start = Instant::now();
    let mut shown: HashSet<String> = HashSet::new();
    let mut last_status = None;
    let mut last_logs = Instant::now() - Duration::from_secs(3600);
    loop {
        let info = dash.job_info(id)?;
        if last_status != Some(info.status) {
            tracing::info!(
                "[{:>6.1}s] job {id}: {}",
                start.elapsed().as_secs_f64(),
                info.status.as_str()
            );
            last_status = Some(info.status);
        }
        let terminal = info.status.is_terminal();
        if terminal || last_logs.elapsed() >= Duration::from_secs(3) {
            let log = strip_ansi(&dash.job_logs(id)?);
            last_logs = Instant::now();
            for line in script::parse_log(&log).into_iter().flatten() {
                if let Line::Result(r) = line {
                    if shown.insert(r.id.clone()) {
                        let label = configs.get(&r.id).map_or(r.id.clone(), ProbeConfig::label);
                        match (&r.error, r.figures.bandwidth_gbps) {
                            (Some(e), _) => tracing::warn!("{label}: {e}"),
                            (None, Some(bw)) => tracing::info!("{label}: {bw:.3} GB/s"),
                            (None, None) => tracing::warn!("{label}: no bandwidth"),
                        }
                    }
                }
            }
            if terminal {
                return Ok((info.status, info.message.unwrap_or_default(), log));
            }
        }
        if start.elapsed() >= opts.timeout {
            let _ = dash.stop_job(id);
            let log = dash
                .job_logs(id)
                .map(|l| strip_ansi(&l))
                .unwrap_or_default();
            return Ok((
                JobStatus::Stopped,
                format!(
                    "did not finish within {} s (--timeout); stopped",
                    opts.timeout.as_secs()
                ),
                log,
            ));
        }
        if let Err(sig) = interrupt::sleep(opts.poll_interval) {
            tracing::warn!(
                "{} received: stopping probe job {id}",
                interrupt::signal_name(sig)
            );
            if let Err(e) = dash.stop_job(id) {
                tracing::warn!("could not stop job {id}: {e}");
            }
            return Err(ProbeError::Interrupted {
                job: id.to_string(),
                signal: sig,
            });
        }
    }
}

/// Run the probe on the cluster; the result file (not yet written) and the job's id.
pub fn run(
    configs: &[ProbeConfig],
    opts: &RayProbe,
    warmup: u32,
    command: Vec<String>,
) -> Result<ProbeFile, ProbeError> {
    let dash = Dashboard::new(
        opts.dashboard.clone(),
        opts.request_timeout,
        opts.request_timeout,
    );
    let prepared = prepare(configs, opts, warmup, &dash)?;
    let mut env = ProbeEnvironment {
        dashboard: Some(opts.dashboard.to_string()),
        ray_version: Some(prepared.ray_version.clone()),
        nodes: prepared
            .nodes
            .iter()
            .filter(|n| n.alive)
            .map(|n| n.ip.clone())
            .collect(),
        ..ProbeEnvironment::default()
    };
    let link_of = |c: &ProbeConfig| match c.nixl_backend {
        pd_common::deployment::NixlBackend::Ucx => {
            opts.ucx_tls.as_ref().map(|t| format!("UCX_TLS={t}"))
        }
        pd_common::deployment::NixlBackend::Libfabric => None,
    };
    for (c, a) in &prepared.assignments {
        if let Err(e) = a {
            tracing::warn!("{}: not placed: {e}", c.label());
        }
    }
    let mut lines: Vec<Line> = Vec::new();
    let mut job_end: Option<(JobStatus, String)> = None;
    if let Some(sub) = &prepared.submission {
        let id = dash.submit_job(sub)?;
        tracing::info!(
            "submitted probe job {id} ({} configuration(s)) to {}",
            prepared
                .assignments
                .iter()
                .filter(|(_, a)| a.is_ok())
                .count(),
            opts.dashboard
        );
        env.job_id = Some(id.clone());
        let by_id: BTreeMap<String, ProbeConfig> =
            configs.iter().map(|c| (c.id.clone(), c.clone())).collect();
        let (status, message, log) = follow(&dash, &id, opts, &by_id)?;
        for l in script::parse_log(&log) {
            match l {
                Ok(line) => lines.push(line),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        job_end = Some((status, message));
    }
    let mut results_by_id: BTreeMap<String, ResultLine> = BTreeMap::new();
    for l in lines {
        match l {
            Line::Env(e) => {
                env.nixl_version = e.nixl;
                env.python_version = e.python;
                if e.ray.is_some() {
                    env.ray_version = e.ray;
                }
            }
            Line::Result(r) => {
                results_by_id.insert(r.id.clone(), r);
            }
            Line::Done { .. } => {}
        }
    }
    let job_note = match &job_end {
        Some((JobStatus::Succeeded, _)) | None => None,
        Some((s, m)) => Some(format!(
            "the job ended {} before reporting this configuration: {}",
            s.as_str(),
            tail(m, 1500)
        )),
    };
    let mut file = ProbeFile::new("ray", command, env);
    for (c, a) in &prepared.assignments {
        let r = match (a, results_by_id.get(&c.id)) {
            (Err(e), _) => ProbeResult::failed(c.clone(), format!("not placed: {e}")),
            (Ok(planned), Some(line)) => to_result(c, planned, line, link_of(c)),
            (Ok(planned), None) => ProbeResult {
                p_node: Some(planned.0.clone()),
                d_node: Some(planned.1.clone()),
                ..ProbeResult::failed(
                    c.clone(),
                    job_note
                        .clone()
                        .unwrap_or_else(|| "the job printed no result for it".into()),
                )
            },
        };
        file.results.push(r);
    }
    if let Some((status, message)) = &job_end {
        if *status != JobStatus::Succeeded
            && file
                .results
                .iter()
                .all(|r| r.figures.bandwidth_gbps.is_none())
        {
            return Err(ProbeError::Job {
                job: file.environment.job_id.clone().unwrap_or_default(),
                what: format!(
                    "ended {} without results: {}",
                    status.as_str(),
                    tail(message, 3000)
                ),
            });
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pd_common::deployment::NixlBackend;
    use pd_common::probe::{Placement, ProbeFigures, ProbeMemory, TransferTimes};

    fn cfg() -> ProbeConfig {
        ProbeConfig {
            id: "c1".into(),
            placement: Placement::Spread,
            nixl_backend: NixlBackend::Ucx,
            memory: ProbeMemory::Dram,
            p_tp: 1,
            d_tp: 1,
            block_bytes: 4096,
            blocks: 4,
            iterations: 2,
        }
    }

    fn line() -> ResultLine {
        ResultLine {
            id: "c1".into(),
            error: None,
            p_nodes: vec!["a".into()],
            d_nodes: vec!["b".into()],
            bytes_per_transfer: Some(16384),
            figures: ProbeFigures {
                bandwidth_gbps: Some(0.5),
                latency_us: Some(40.0),
                transfer_ms: Some(TransferTimes {
                    p50: 1.0,
                    min: 1.0,
                    max: 2.0,
                }),
                first_transfer_ms: Some(10.0),
                slices_checked: Some(4),
                corrupt_slices: Some(0),
                zero_slices: Some(0),
            },
        }
    }

    #[test]
    fn results_checked_against_the_plan() {
        let planned = ("a".to_string(), "b".to_string());
        let r = to_result(&cfg(), &planned, &line(), Some("UCX_TLS=tcp".into()));
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.link.as_deref(), Some("UCX_TLS=tcp"));
        let mut moved = line();
        moved.d_nodes = vec!["a".into()];
        let r = to_result(&cfg(), &planned, &moved, None);
        assert!(r.error.unwrap().contains("not on the planned"));
        let mut nan = line();
        nan.figures.bandwidth_gbps = Some(f64::NAN);
        assert!(to_result(&cfg(), &planned, &nan, None).error.is_some());
        let mut failed = line();
        failed.error = Some("boom".into());
        let r = to_result(&cfg(), &planned, &failed, None);
        assert_eq!(r.error.as_deref(), Some("boom"));
        assert_eq!(r.figures.bandwidth_gbps, None);
    }
}
