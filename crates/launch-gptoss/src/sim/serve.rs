//! Running the simulator server of a plan in this process: the hidden `serve-sim`
//! subcommand (the background daemon) and `--foreground`.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use pd_common::deployment::{DeploymentRecord, StopHandle};

use super::engine::{Engine, SimError};
use super::plan::{PlanError, SimPlan};
use super::server::{ServerError, SimServer, SERVER_NAME};
use crate::error::Classify;

/// Errors of a running simulator server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("building the simulated cluster")]
    Engine(#[source] SimError),
    #[error("starting the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("fd {fd} is not a listening socket (--listen-fd)")]
    BadListenFd { fd: i32 },
    #[error("cannot listen on {host}:{port} (check --host and --port)")]
    Listen {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("port {port} on {host} is already in use (another server or simulator?): pick another with --port")]
    PortInUse { host: String, port: u16 },
    #[error("writing deployment record {}", path.display())]
    Record {
        path: std::path::PathBuf,
        source: Box<pd_common::Error>,
    },
}

impl Classify for ServeError {
    fn exit_code(&self) -> i32 {
        match self {
            ServeError::Plan(p) => p.exit_code(),
            ServeError::Engine(_) => pd_common::exit::USAGE,
            _ => pd_common::exit::FAILED,
        }
    }
}

/// Bind `host:port` (the first address it resolves to) in this process.
pub fn bind(host: &str, port: u16) -> Result<TcpListener, ServeError> {
    let h = host.trim_matches(['[', ']']);
    let listen_err = |source| ServeError::Listen {
        host: host.to_string(),
        port,
        source,
    };
    let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&(h, port))
        .map_err(listen_err)?
        .next()
        .ok_or_else(|| {
            listen_err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the host resolves to no address",
            ))
        })?;
    TcpListener::bind(addr).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            ServeError::PortInUse {
                host: host.to_string(),
                port,
            }
        } else {
            listen_err(e)
        }
    })
}

/// Take over the listening socket at `fd` (handed over by the launcher).
#[cfg(unix)]
pub fn listener_from_fd(fd: i32) -> Result<TcpListener, ServeError> {
    use std::os::fd::FromRawFd;
    if fd < 3 {
        return Err(ServeError::BadListenFd { fd });
    }
    let mut accepting: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt on a descriptor number with a valid out pointer and length; fails
    // (EBADF, ENOTSOCK) on anything that is not a socket.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut accepting as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 || accepting != 1 {
        return Err(ServeError::BadListenFd { fd });
    }
    // SAFETY: fd is an open listening socket that nothing else in this process owns (it was
    // inherited for this purpose and is taken exactly once, at start-up).
    let l = unsafe { TcpListener::from_raw_fd(fd) };
    // SAFETY: fcntl on the descriptor we now own.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    Ok(l)
}

/// The hidden `serve-sim` subcommand: run the plan's server on `listen_fd` (or bind the
/// plan's address when run by hand), remove the plan file once read.
pub fn serve_main(plan_path: &Path, listen_fd: Option<i32>) -> Result<(), ServeError> {
    let plan = SimPlan::read(plan_path)?;
    let _ = std::fs::remove_file(plan_path);
    let listener = match listen_fd {
        Some(fd) => listener_from_fd(fd)?,
        None => bind(&plan.host, plan.port)?,
    };
    run(&plan, listener, |_| Ok(()))
}

/// Serve `plan` on `listener` until SIGTERM / SIGINT / SIGHUP. `listening` runs once the
/// server is up (with our pid); the record is written here when the plan says so
/// (foreground) and removed on exit if it still names this process.
pub fn run(
    plan: &SimPlan,
    listener: TcpListener,
    listening: impl FnOnce(u32) -> Result<(), ServeError>,
) -> Result<(), ServeError> {
    let engine = Engine::new(plan.cluster_config()?).map_err(ServeError::Engine)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sim-http")
        .on_thread_start(super::realtime::apply_thread_nice)
        .build()
        .map_err(ServeError::Runtime)?;
    let me = std::process::id();
    let result = rt.block_on(async {
        listener
            .set_nonblocking(true)
            .map_err(ServeError::Runtime)?;
        let addr = listener.local_addr().ok();
        let listener = tokio::net::TcpListener::from_std(listener).map_err(ServeError::Runtime)?;
        let server = SimServer::from_listener(listener, engine, plan.server_options())?;
        // Signal handlers go in before the record says we are up: a Ctrl-C right after the
        // record appears must stop us cleanly, not kill us with the default action.
        let stop = shutdown_signal()?;
        if plan.write_record {
            plan.record_for(me)
                .write(&plan.record_path)
                .map_err(|source| ServeError::Record {
                    path: plan.record_path.clone(),
                    source: Box::new(source),
                })?;
            tracing::info!("record: {}", plan.record_path.display());
        }
        listening(me)?;
        tracing::info!(
            "{SERVER_NAME} {}: simulated {} ({}) listening on http://{} (pid {me}); Ctrl-C or \
             SIGTERM stops it",
            pd_common::VERSION,
            plan.spec.label(),
            plan.spec.gpu,
            addr.map_or_else(|| format!("{}:{}", plan.host, plan.port), |a| a.to_string()),
        );
        server.run(stop).await;
        tracing::info!("{SERVER_NAME}: stopped");
        Ok(())
    });
    remove_own_record(&plan.record_path, me);
    rt.shutdown_timeout(Duration::from_millis(200));
    result
}

/// Install the SIGTERM / SIGINT / SIGHUP handlers now; the returned future completes on
/// the first of them.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, ServeError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Runtime)?;
    let mut hup = signal(SignalKind::hangup()).map_err(ServeError::Runtime)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hup.recv() => {}
        }
    })
}

/// Remove the record if it still names this process.
fn remove_own_record(path: &Path, me: u32) {
    if let Ok(Some(r)) = DeploymentRecord::read_optional(path) {
        if r.stop == (StopHandle::Pid { pid: me }) {
            let _ = std::fs::remove_file(path);
        }
    }
}
