//! The embedded simulated cluster.
//!
//! * [`engine`]: the discrete-event model of the cluster (no tokio, no HTTP).
//! * [`realtime`]: runs the engine against the wall clock on its own thread.
//! * [`protocol`], [`server`], [`metrics`], [`lag`]: the vLLM-compatible HTTP server.
//! * [`plan`], [`process`]: `launch-gptoss --backend sim` as a background process.
//! * [`calibrate`]: the simulator against real results, in virtual time.
//! * [`vclient`], [`bench_file`], [`parallel`]: the virtual-time benchmark client, the
//!   result file of a simulated point, a parallel map over configurations.

pub mod bench_file;
pub mod calibrate;
pub mod engine;
pub mod lag;
pub mod metrics;
pub mod parallel;
pub mod plan;
pub mod process;
pub mod protocol;
pub mod realtime;
pub mod server;
pub mod vclient;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use pd_common::deployment::{DeploymentRecord, DeploymentSpec, StopHandle};

use crate::cli::{LaunchArgs, ServeSimArgs};
use plan::SimPlan;
use process::Stopped;

/// Longest wait for the background simulator to answer (it needs well under a second).
const READY_CAP: Duration = Duration::from_secs(30);
/// SIGTERM grace period before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Refuse to replace a live deployment; replace a stale one.
fn check_existing_record(path: &Path) -> Result<()> {
    let existing = DeploymentRecord::read_optional(path).with_context(|| {
        format!("an unreadable deployment record is in the way at {} (remove it, or run `launch-gptoss shutdown`)", path.display())
    })?;
    match existing.map(|r| r.stop.clone()) {
        None => Ok(()),
        Some(StopHandle::Pid { pid }) if process::is_live_simulator(pid) => bail!(
            "a simulated deployment is already running (pid {pid}, record {}): run `launch-gptoss shutdown{}` first",
            path.display(),
            if path == pd_common::deployment::default_record_path() {
                String::new()
            } else {
                format!(" --deployment-file {}", path.display())
            }
        ),
        Some(StopHandle::Pid { pid }) => {
            eprintln!("replacing stale deployment record {} (pid {pid} is not running)", path.display());
            Ok(())
        }
        Some(StopHandle::Ray { app_name, .. }) => bail!(
            "the deployment record {} describes Ray application '{app_name}': run `launch-gptoss shutdown` first",
            path.display()
        ),
    }
}

fn check_port_free(host: &str, port: u16) -> Result<()> {
    let addr = format!("{host}:{port}");
    match std::net::TcpListener::bind(addr.as_str()) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "port {port} on {host} is already in use (another server or simulator?): pick another with --port"
        ),
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr} (check --host and --port)")),
    }
}

/// `launch-gptoss --backend sim`: start the simulated deployment in the background,
/// wait until it answers, write the record.
pub fn launch(spec: &DeploymentSpec, args: &LaunchArgs) -> Result<i32> {
    if args.port == 0 {
        bail!("--port 0 is not supported: the record needs a fixed port (pick a free one)");
    }
    let record_path = crate::record::record_path(args.deployment_file.as_ref());
    check_existing_record(&record_path)?;
    check_port_free(&args.host, args.port)?;
    let command: Vec<String> = std::env::args().collect();
    let ucx_tls = std::env::var("UCX_TLS").ok();
    let (plan, warning) =
        SimPlan::from_args(spec, args, &record_path, command, ucx_tls.as_deref())?;
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    // Fail here, with a clear message, on bad constants or an impossible cluster.
    engine::Engine::with_extras(plan.cluster_config()?, plan.extras())
        .context("building the simulated cluster")?;
    if args.foreground {
        return run_plan(&plan, None);
    }
    let (plan_path, log_path) = plan.files();
    plan.write(&plan_path)?;
    let mut child = process::spawn_serve_sim(&plan_path, &log_path)?;
    let pid = child.id();
    let timeout = Duration::from_secs(args.timeout).min(READY_CAP);
    let took = match process::wait_ready(&mut child, &plan.record.base_url, timeout, &log_path) {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&plan_path);
            return Err(e.into());
        }
    };
    let record = plan.record_for(pid);
    if let Err(e) = record.write(&plan.record_path) {
        let _ = process::stop(pid, STOP_GRACE);
        return Err(e)
            .with_context(|| format!("writing deployment record {}", plan.record_path.display()));
    }
    println!(
        "simulated deployment {} ({} {} node(s), {} GPUs{}) ready at {} in {} ms (pid {pid})",
        record.label,
        record.nodes.len(),
        spec.gpu,
        record.total_gpus,
        record
            .network
            .as_deref()
            .map(|n| format!(", network {n}"))
            .unwrap_or_default(),
        record.base_url,
        took.as_millis()
    );
    println!("record: {}", plan.record_path.display());
    println!("log:    {}", log_path.display());
    println!("stop:   launch-gptoss shutdown");
    Ok(0)
}

/// The hidden `serve-sim` subcommand: run the simulator server in this process.
pub fn serve_main(args: &ServeSimArgs) -> Result<i32> {
    let plan = SimPlan::read(&args.plan)?;
    let code = run_plan(&plan, Some(&args.plan));
    let _ = std::fs::remove_file(&args.plan);
    code
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Remove the record if it still names this process.
fn remove_own_record(path: &Path) {
    let me = std::process::id();
    if let Ok(Some(r)) = DeploymentRecord::read_optional(path) {
        if r.stop == (StopHandle::Pid { pid: me }) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Run the server of a plan until SIGTERM / Ctrl-C.
fn run_plan(plan: &SimPlan, plan_path: Option<&Path>) -> Result<i32> {
    let engine = engine::Engine::with_extras(plan.cluster_config()?, plan.extras())
        .context("building the simulated cluster")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sim-http")
        .on_thread_start(realtime::apply_thread_nice)
        .build()
        .context("starting the async runtime")?;
    let result: Result<()> = rt.block_on(async {
        let host = plan.host.trim_matches(['[', ']']);
        let addr: SocketAddr = tokio::net::lookup_host((host, plan.port))
            .await
            .with_context(|| format!("resolving --host {}", plan.host))?
            .next()
            .with_context(|| format!("--host {} resolves to no address", plan.host))?;
        let server = server::SimServer::bind(addr, engine, plan.server_options()).await?;
        let me = std::process::id();
        if plan.write_record {
            plan.record_for(me)
                .write(&plan.record_path)
                .with_context(|| format!("writing deployment record {}", plan.record_path.display()))?;
            eprintln!("record: {}", plan.record_path.display());
        }
        eprintln!(
            "{} {}: simulated {} ({}) listening on http://{} (pid {me}{}); Ctrl-C or SIGTERM stops it",
            server::SERVER_NAME,
            pd_common::VERSION,
            plan.spec.label(),
            plan.spec.gpu,
            server.local_addr().unwrap_or(addr),
            plan_path.map(|p| format!(", plan {}", p.display())).unwrap_or_default()
        );
        server.run(shutdown_signal()).await;
        eprintln!("{}: stopped", server::SERVER_NAME);
        Ok(())
    });
    remove_own_record(&plan.record_path);
    rt.shutdown_timeout(Duration::from_millis(200));
    result?;
    Ok(0)
}

/// Stop a simulator process (idempotent).
pub fn stop_pid(pid: u32) -> Result<()> {
    match process::stop(pid, STOP_GRACE)? {
        Stopped::AlreadyGone => eprintln!("simulator pid {pid} is not running"),
        Stopped::NotOurs => eprintln!(
            "warning: pid {pid} is alive but is not a launch-gptoss serve-sim process (pid reused?): left alone"
        ),
        Stopped::Terminated => {}
        Stopped::Killed => eprintln!("simulator pid {pid} did not stop on SIGTERM: killed"),
    }
    Ok(())
}

/// Print the simulator's state; true when it is alive and answering.
pub fn status(record: &DeploymentRecord, pid: u32) -> Result<bool> {
    if !process::is_live_simulator(pid) {
        println!("simulator: not running (pid {pid}); the record is stale (`launch-gptoss shutdown` removes it)");
        return Ok(false);
    }
    match process::http_get(&record.base_url, "/metrics", Duration::from_secs(2)) {
        Ok((200, page)) => {
            let m = |name| metrics::sample(&page, name).unwrap_or(f64::NAN);
            let q = |qq| {
                metrics::quantile(&page, "pdlab_sim_emission_lag_seconds", qq).unwrap_or(f64::NAN)
                    * 1e3
            };
            println!(
                "simulator: alive (pid {pid}) at {}, up {:.0} s",
                record.base_url,
                m("pdlab_sim_uptime_seconds")
            );
            println!(
                "requests: {} running, {} waiting; KV cache {:.1}%; tokens: {} prompt, {} generated; {} requests served",
                m("vllm:num_requests_running"),
                m("vllm:num_requests_waiting"),
                m("vllm:kv_cache_usage_perc") * 100.0,
                m("vllm:prompt_tokens_total"),
                m("vllm:generation_tokens_total"),
                m("pdlab_sim_requests_total")
            );
            println!(
                "emission lag: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                q("0.5"),
                q("0.99"),
                q("1")
            );
            Ok(true)
        }
        Ok((code, _)) => {
            println!("simulator: pid {pid} alive but GET /metrics answered HTTP {code}");
            Ok(false)
        }
        Err(e) => {
            println!("simulator: pid {pid} alive but not answering: {e}");
            Ok(false)
        }
    }
}
