//! The background `serve-sim` process: spawn it detached, wait until it answers, check
//! whether a pid is (still) one of ours, stop it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Errors of process management.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error(
        "the simulator process exited ({status}) before answering; last log lines ({log}):\n{tail}"
    )]
    EarlyExit {
        status: String,
        log: String,
        tail: String,
    },
    #[error("the simulator did not answer GET /v1/models within {secs} s (stopped it); last log lines ({log}):\n{tail}")]
    NotReady {
        secs: f64,
        log: String,
        tail: String,
    },
    #[error("invalid pid {0}")]
    BadPid(u32),
    #[error("cannot signal pid {pid}: {source}")]
    Signal { pid: u32, source: std::io::Error },
    #[error("pid {0} is still alive after SIGKILL")]
    Unkillable(u32),
    #[error("HTTP request to {url} failed: {reason}")]
    Http { url: String, reason: String },
}

/// Last `n` lines of a log file (empty if unreadable).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Start `<this exe> serve-sim --plan <plan>` in its own session (no controlling
/// terminal, survives the launcher), stdout and stderr appended to `log`.
pub fn spawn_serve_sim(plan: &Path, log: &Path) -> Result<Child, ProcessError> {
    let spawn_err = |source| ProcessError::Spawn {
        what: "launch-gptoss serve-sim".into(),
        source,
    };
    let exe = std::env::current_exe().map_err(spawn_err)?;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(spawn_err)?;
    }
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(spawn_err)?;
    let err = out.try_clone().map_err(spawn_err)?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve-sim")
        .arg("--plan")
        .arg(plan)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    detach(&mut cmd);
    cmd.spawn().map_err(spawn_err)
}

#[cfg(unix)]
fn detach(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid() is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(unix))]
fn detach(_cmd: &mut Command) {}

/// `http://host:port[/…]` → socket address.
fn resolve(base_url: &str) -> Result<SocketAddr, ProcessError> {
    let err = |reason: String| ProcessError::Http {
        url: base_url.to_string(),
        reason,
    };
    let rest = base_url
        .strip_prefix("http://")
        .ok_or_else(|| err("only http:// URLs are supported".into()))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .to_socket_addrs()
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("no address".into()))
}

/// A minimal blocking `GET` (HTTP/1.1, `Connection: close`): status and body.
pub fn http_get(
    base_url: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), ProcessError> {
    let url = format!("{base_url}{path}");
    let err = |reason: String| ProcessError::Http {
        url: url.clone(),
        reason,
    };
    let addr = resolve(base_url)?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| err(e.to_string()))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| err(e.to_string()))?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| err(e.to_string()))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| err(e.to_string()))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| err(e.to_string()))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| err("malformed response".into()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| err("malformed status line".into()))?;
    Ok((status, body.to_string()))
}

/// Wait until `GET /v1/models` answers 200; fail early if the child exits, kill it on
/// timeout. Returns the time it took.
pub fn wait_ready(
    child: &mut Child,
    base_url: &str,
    timeout: Duration,
    log: &Path,
) -> Result<Duration, ProcessError> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ProcessError::EarlyExit {
                status: status.to_string(),
                log: log.display().to_string(),
                tail: log_tail(log, 20),
            });
        }
        if let Ok((200, _)) = http_get(base_url, "/v1/models", Duration::from_millis(500)) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ProcessError::NotReady {
                secs: timeout.as_secs_f64(),
                log: log.display().to_string(),
                tail: log_tail(log, 20),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn to_pid(pid: u32) -> Result<libc::pid_t, ProcessError> {
    match libc::pid_t::try_from(pid) {
        Ok(p) if p > 0 && pid != std::process::id() => Ok(p),
        _ => Err(ProcessError::BadPid(pid)),
    }
}

/// Whether the process exists (zombies count as gone).
#[cfg(unix)]
pub fn pid_alive(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(p, 0) };
    let exists = r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !is_zombie(pid)
}

#[cfg(not(unix))]
pub fn pid_alive(_pid: u32) -> bool {
    false
}

fn is_zombie(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S …": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// Whether the pid runs a simulator server: `launch-gptoss serve-sim …` or
/// `launch-gptoss … --foreground` (Some(false): another program reuses the pid;
/// None: cannot tell on this platform).
pub fn is_serve_sim(pid: u32) -> Option<bool> {
    if !Path::new("/proc/self/cmdline").exists() {
        return None;
    }
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .any(|arg| arg == b"serve-sim" || arg == b"--foreground"),
    )
}

/// Whether a record's pid is a live simulator of ours.
pub fn is_live_simulator(pid: u32) -> bool {
    pid_alive(pid) && is_serve_sim(pid) != Some(false)
}

#[cfg(unix)]
fn signal(pid: u32, sig: libc::c_int) -> Result<(), ProcessError> {
    let p = to_pid(pid)?;
    // SAFETY: plain kill(2) on a pid checked to be a serve-sim process.
    if unsafe { libc::kill(p, sig) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    Err(ProcessError::Signal { pid, source: e })
}

fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if !pid_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !pid_alive(pid)
}

/// What [`stop`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Nothing ran under that pid.
    AlreadyGone,
    /// The pid runs another program: left alone.
    NotOurs,
    /// Stopped by SIGTERM.
    Terminated,
    /// Needed SIGKILL.
    Killed,
}

/// Stop a simulator process: SIGTERM, wait up to `grace`, then SIGKILL. A dead pid is
/// success; a pid that is not a `serve-sim` process is left alone.
#[cfg(unix)]
pub fn stop(pid: u32, grace: Duration) -> Result<Stopped, ProcessError> {
    to_pid(pid)?;
    if !pid_alive(pid) {
        return Ok(Stopped::AlreadyGone);
    }
    if is_serve_sim(pid) == Some(false) {
        return Ok(Stopped::NotOurs);
    }
    signal(pid, libc::SIGTERM)?;
    if wait_gone(pid, grace) {
        return Ok(Stopped::Terminated);
    }
    signal(pid, libc::SIGKILL)?;
    if wait_gone(pid, Duration::from_secs(3)) {
        Ok(Stopped::Killed)
    } else {
        Err(ProcessError::Unkillable(pid))
    }
}

#[cfg(not(unix))]
pub fn stop(pid: u32, _grace: Duration) -> Result<Stopped, ProcessError> {
    to_pid(pid)?;
    Ok(Stopped::AlreadyGone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_and_identity() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
        assert_eq!(is_serve_sim(std::process::id()), Some(false));
        assert!(matches!(
            stop(0, Duration::ZERO),
            Err(ProcessError::BadPid(0))
        ));
        assert!(matches!(
            stop(std::process::id(), Duration::ZERO),
            Err(ProcessError::BadPid(_))
        ));
    }

    #[test]
    fn stop_leaves_foreign_processes_alone_and_dead_pids_are_success() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        assert_eq!(
            stop(pid, Duration::from_millis(100)).unwrap(),
            Stopped::NotOurs
        );
        assert!(pid_alive(pid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!pid_alive(pid));
        assert_eq!(
            stop(pid, Duration::from_millis(100)).unwrap(),
            Stopped::AlreadyGone
        );
    }

    #[test]
    fn zombie_counts_as_gone() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Exited but not yet reaped: a zombie, which must count as gone.
        assert!(wait_gone(pid, Duration::from_secs(10)));
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "still a zombie"
        );
        child.wait().unwrap();
    }
}
