//! The simulated cluster behind the [`Backend`] interface: `launch-gptoss --backend sim`
//! starts a daemon (or serves in the foreground), `shutdown` stops it, `status` asks it.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use pd_common::deployment::{DeploymentRecord, StopHandle};
use pd_common::http::{Client, ClientOptions};
use pd_common::url::BaseUrl;

use super::engine::Engine;
use super::identity::{identify, Identity, ProcHandle, ProcInfo};
use super::metrics;
use super::options::SimOptions;
use super::plan::SimPlan;
use super::process::{open_log, spawn_serve_sim, wait_ready};
use super::serve::{self, ServeError};
use crate::backend::{Backend, BackendError, LaunchOutcome, Status, Stopped};
use crate::error::{Classify, UsageError};
use crate::interrupt;
use crate::options::LaunchRequest;
use crate::record::RecordLock;

/// The simulated cluster.
#[derive(Debug, Clone, Default)]
pub struct SimBackend {
    pub opts: SimOptions,
}

/// Errors of the simulated backend that are not process or server errors.
#[derive(Debug, thiserror::Error)]
pub enum SimBackendError {
    #[error(
        "a simulated deployment is already running (pid {pid}, record {}): run `launch-gptoss \
         shutdown{}` first",
        path.display(),
        shutdown_flag(path)
    )]
    AlreadyRunning { pid: u32, path: std::path::PathBuf },
    #[error(
        "the deployment record {} names pid {pid}, a process of user {uid} (not us): it was not \
         signalled and the record is kept; that user can stop it, or remove the record if it is \
         stale",
        path.display()
    )]
    OtherUser {
        pid: u32,
        uid: u32,
        path: std::path::PathBuf,
    },
    #[error(
        "the deployment record {} describes Ray application '{app}': run `launch-gptoss \
         shutdown{}` first",
        path.display(),
        shutdown_flag(path)
    )]
    RayRecord {
        app: String,
        path: std::path::PathBuf,
    },
    #[error(
        "an unreadable deployment record is in the way at {} (remove it, or run `launch-gptoss \
         shutdown`)",
        path.display()
    )]
    Unreadable {
        path: std::path::PathBuf,
        source: Box<pd_common::Error>,
    },
    #[error("writing deployment record {}", path.display())]
    WriteRecord {
        path: std::path::PathBuf,
        source: Box<pd_common::Error>,
    },
    #[error("cannot signal pid {pid}")]
    Signal { pid: u32, source: std::io::Error },
    #[error("pid {0} is still alive after SIGKILL")]
    Unkillable(u32),
    #[error("the deployment record does not describe a simulator (no pid)")]
    NotSim,
}

impl Classify for SimBackendError {
    fn exit_code(&self) -> i32 {
        pd_common::exit::FAILED
    }
}

fn shutdown_flag(path: &Path) -> String {
    if path == pd_common::deployment::default_record_path() {
        String::new()
    } else {
        format!(" --deployment-file {}", path.display())
    }
}

/// Is `host` a loopback name or address?
fn is_loopback(host: &str) -> bool {
    let h = host.trim_matches(['[', ']']);
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The simulated endpoint has no authentication: a non-loopback address needs
/// `--allow-remote`, and is announced even then.
fn check_host(opts: &SimOptions) -> Result<(), UsageError> {
    if opts.port == 0 {
        return Err(UsageError(
            "--port 0 is not supported: the record needs a fixed port (pick a free one)".into(),
        ));
    }
    if is_loopback(&opts.host) {
        return Ok(());
    }
    if !opts.allow_remote {
        return Err(UsageError(format!(
            "--host {} makes the simulated endpoint reachable from other machines, without any \
             authentication; add --allow-remote if that is what you want (or keep the default \
             --host 127.0.0.1)",
            opts.host
        )));
    }
    tracing::warn!(
        "the simulated endpoint listens on {}:{} and answers anyone who can reach it (no \
         authentication)",
        opts.host,
        opts.port
    );
    Ok(())
}

/// Refuse to replace a live deployment; replace a stale one.
fn check_existing_record(path: &Path) -> Result<(), SimBackendError> {
    let existing =
        DeploymentRecord::read_optional(path).map_err(|source| SimBackendError::Unreadable {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
    let Some(record) = existing else {
        return Ok(());
    };
    match &record.stop {
        StopHandle::Ray { app_name, .. } => Err(SimBackendError::RayRecord {
            app: app_name.clone(),
            path: path.to_path_buf(),
        }),
        StopHandle::Pid { pid } => match identify(*pid, &record, path) {
            Identity::Ours(_) => Err(SimBackendError::AlreadyRunning {
                pid: *pid,
                path: path.to_path_buf(),
            }),
            Identity::OtherUser(info) => Err(SimBackendError::OtherUser {
                pid: *pid,
                uid: info.uid,
                path: path.to_path_buf(),
            }),
            Identity::Gone => {
                tracing::info!(
                    "replacing stale deployment record {} (pid {pid} is not running)",
                    path.display()
                );
                Ok(())
            }
            Identity::Unrelated { why, .. } => {
                tracing::info!(
                    "replacing stale deployment record {} (pid {pid} is not its simulator: {why})",
                    path.display()
                );
                Ok(())
            }
        },
    }
}

/// The plan, checked: the engine builds (bad constants and impossible clusters fail here,
/// before anything starts).
fn checked_plan(req: &LaunchRequest, opts: &SimOptions) -> Result<SimPlan, BackendError> {
    let (plan, warning) = SimPlan::new(req, opts)?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    match plan.fault {
        Some(f) if plan.spec.mode().is_pd() => tracing::warn!(
            "--sim-fault {}: this deployment's outputs are deliberately wrong after the first \
             token (zeroed KV blocks), its timing is normal",
            f.as_str()
        ),
        Some(f) => tracing::warn!(
            "--sim-fault {} has no effect on a collocated deployment (no KV transfer)",
            f.as_str()
        ),
        None => {}
    }
    Engine::with_extras(plan.cluster_config()?, plan.extras()).map_err(ServeError::Engine)?;
    Ok(plan)
}

fn describe(plan: &SimPlan) -> String {
    let r = &plan.record;
    format!(
        "simulated deployment {} ({} {} node(s), {} GPUs{})",
        r.label,
        r.nodes.len(),
        plan.spec.gpu,
        r.total_gpus,
        r.network
            .as_deref()
            .map(|n| format!(", network {n}"))
            .unwrap_or_default(),
    )
}

impl SimBackend {
    fn dry_run(&self, plan: &SimPlan) -> Result<LaunchOutcome, BackendError> {
        let report = format!(
            "dry run: would start a {} at {}; record {}\n",
            describe(plan),
            plan.record.base_url,
            plan.record_path.display()
        );
        let output =
            serde_json::to_string_pretty(plan).map_err(|source| super::plan::PlanError::Parse {
                path: plan.record_path.clone(),
                source,
            })?;
        Ok(LaunchOutcome::DryRun { report, output })
    }

    fn start_daemon(
        &self,
        req: &LaunchRequest,
        plan: &SimPlan,
        listener: std::net::TcpListener,
    ) -> Result<LaunchOutcome, BackendError> {
        let (plan_path, log_path) = plan.files();
        plan.write(&plan_path)?;
        let spawned =
            open_log(&log_path).and_then(|log| spawn_serve_sim(&plan_path, log, &listener));
        drop(listener);
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&plan_path);
                return Err(e.into());
            }
        };
        let pid = child.id();
        interrupt::install();
        let base = BaseUrl::parse(&plan.record.base_url, 80)
            .map_err(|e| UsageError(format!("--host/--port give no usable URL: {e}")))?;
        let timeout = req.timeout.min(self.opts.ready_cap);
        let took = match wait_ready(&mut child, &base, &plan.instance, timeout, &log_path) {
            Ok(t) => t,
            Err(e) => {
                let _ = std::fs::remove_file(&plan_path);
                return Err(e.into());
            }
        };
        let record = plan.record_for(pid);
        if let Err(source) = record.write(&plan.record_path) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SimBackendError::WriteRecord {
                path: plan.record_path.clone(),
                source: Box::new(source),
            }
            .into());
        }
        let summary = vec![
            format!(
                "{} ready at {} in {} ms (pid {pid})",
                describe(plan),
                record.base_url,
                took.as_millis()
            ),
            format!("record: {}", plan.record_path.display()),
            format!("log:    {}", log_path.display()),
            "stop:   launch-gptoss shutdown".to_string(),
        ];
        Ok(LaunchOutcome::Ready {
            record: Box::new(record),
            path: plan.record_path.clone(),
            summary,
        })
    }
}

impl Backend for SimBackend {
    fn launch(&self, req: &LaunchRequest) -> Result<LaunchOutcome, BackendError> {
        check_host(&self.opts)?;
        let plan = checked_plan(req, &self.opts)?;
        if req.dry_run {
            return self.dry_run(&plan);
        }
        let lock = RecordLock::acquire(&req.record_path)?;
        check_existing_record(&req.record_path)?;
        let listener = serve::bind(&self.opts.host, self.opts.port)?;
        if self.opts.foreground {
            let mut lock = Some(lock);
            serve::run(&plan, listener, |_| {
                // The record is written: others may use it now.
                drop(lock.take());
                Ok(())
            })?;
            return Ok(LaunchOutcome::Stopped);
        }
        let outcome = self.start_daemon(req, &plan, listener);
        drop(lock);
        outcome
    }

    fn shutdown(
        &self,
        record: &DeploymentRecord,
        record_path: &Path,
    ) -> Result<Stopped, BackendError> {
        let StopHandle::Pid { pid } = record.stop else {
            return Err(SimBackendError::NotSim.into());
        };
        // Opened before identifying: the process checked is the process signalled.
        let handle = ProcHandle::open(pid);
        let message = match identify(pid, record, record_path) {
            Identity::Gone => format!("simulator pid {pid} is not running"),
            Identity::OtherUser(info) => {
                return Err(SimBackendError::OtherUser {
                    pid,
                    uid: info.uid,
                    path: record_path.to_path_buf(),
                }
                .into())
            }
            Identity::Unrelated { info, why } => {
                tracing::warn!(
                    "pid {pid} ({}) is not the launch-gptoss simulator this record describes \
                     ({why}): left alone",
                    describe_proc(&info)
                );
                format!("pid {pid} left alone; the record was stale")
            }
            Identity::Ours(_) => stop(&handle, pid, self.opts.stop_grace)?,
        };
        Ok(Stopped { message })
    }

    fn status(
        &self,
        record: &DeploymentRecord,
        record_path: &Path,
        _detail: bool,
    ) -> Result<Status, BackendError> {
        let StopHandle::Pid { pid } = record.stop else {
            return Err(SimBackendError::NotSim.into());
        };
        let stale = |what: String| Status {
            alive: false,
            lines: vec![format!(
                "simulator: {what}; the record is stale (`launch-gptoss shutdown` removes it)"
            )],
        };
        match identify(pid, record, record_path) {
            Identity::Gone => return Ok(stale(format!("not running (pid {pid})"))),
            Identity::Unrelated { info, why } => {
                return Ok(stale(format!(
                    "not running: pid {pid} is now {} ({why})",
                    describe_proc(&info)
                )))
            }
            Identity::OtherUser(info) => {
                return Ok(Status {
                    alive: false,
                    lines: vec![format!(
                        "simulator: pid {pid} belongs to user {} (not us)",
                        info.uid
                    )],
                })
            }
            Identity::Ours(_) => {}
        }
        Ok(probe_status(record, pid))
    }
}

fn describe_proc(info: &ProcInfo) -> String {
    let argv = info.argv.join(" ");
    let argv: String = argv.chars().take(80).collect();
    format!("{} `{argv}`", info.comm)
}

/// SIGTERM, wait `grace`, SIGKILL.
fn stop(handle: &ProcHandle, pid: u32, grace: Duration) -> Result<String, SimBackendError> {
    let signal = |sig| {
        handle
            .signal(sig)
            .map_err(|source| SimBackendError::Signal { pid, source })
    };
    if !signal(libc::SIGTERM)? {
        return Ok(format!("simulator pid {pid} is not running"));
    }
    if handle.wait_gone(grace) {
        return Ok(format!("stopped simulator pid {pid}"));
    }
    signal(libc::SIGKILL)?;
    if handle.wait_gone(Duration::from_secs(3)) {
        tracing::warn!("simulator pid {pid} did not stop on SIGTERM: killed");
        Ok(format!("killed simulator pid {pid}"))
    } else {
        Err(SimBackendError::Unkillable(pid))
    }
}

/// Ask the running simulator for its metrics.
fn probe_status(record: &DeploymentRecord, pid: u32) -> Status {
    let client = Client::new(ClientOptions {
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        max_body_bytes: 8 << 20,
        ..ClientOptions::default()
    });
    let down = |what: String| Status {
        alive: false,
        lines: vec![format!("simulator: pid {pid} alive but {what}")],
    };
    let base = match BaseUrl::parse(&record.base_url, 80) {
        Ok(b) => b,
        Err(e) => return down(format!("the record's URL is unusable: {e}")),
    };
    let page = match client.get(&base, "/metrics") {
        Ok(r) if r.status == 200 => r.text(),
        Ok(r) => return down(format!("GET /metrics answered HTTP {}", r.status)),
        Err(e) => return down(format!("not answering: {e}")),
    };
    let m = |name| metrics::sample(&page, name).unwrap_or(f64::NAN);
    let q = |qq| {
        metrics::quantile(&page, "pdlab_sim_emission_lag_seconds", qq).unwrap_or(f64::NAN) * 1e3
    };
    Status {
        alive: true,
        lines: vec![
            format!(
                "simulator: alive (pid {pid}) at {}, up {:.0} s",
                record.base_url,
                m("pdlab_sim_uptime_seconds")
            ),
            format!(
                "requests: {} running, {} waiting; KV cache {:.1}%; tokens: {} prompt, {} generated; {} requests served",
                m("vllm:num_requests_running"),
                m("vllm:num_requests_waiting"),
                m("vllm:kv_cache_usage_perc") * 100.0,
                m("vllm:prompt_tokens_total"),
                m("vllm:generation_tokens_total"),
                m("pdlab_sim_requests_total")
            ),
            format!(
                "emission lag: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                q("0.5"),
                q("0.99"),
                q("1")
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_hosts_need_an_explicit_flag() {
        let mut o = SimOptions::default();
        assert!(check_host(&o).is_ok());
        for h in ["localhost", "::1", "[::1]", "127.0.0.2"] {
            o.host = h.into();
            assert!(check_host(&o).is_ok(), "{h}");
        }
        for h in ["0.0.0.0", "::", "10.1.2.3", "example.org"] {
            o.host = h.into();
            let e = check_host(&o).unwrap_err();
            assert!(e.to_string().contains("--allow-remote"), "{h}: {e}");
            assert_eq!(e.exit_code(), 2);
        }
        o.allow_remote = true;
        assert!(check_host(&o).is_ok());
        o.port = 0;
        assert!(check_host(&o).is_err());
    }
}
