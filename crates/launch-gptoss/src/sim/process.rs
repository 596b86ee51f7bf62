//! The background `serve-sim` process, started as a proper daemon, and the readiness probe.
//!
//! The daemon runs in its own session (no controlling terminal), in `/`, with stdin from
//! `/dev/null`, stdout and stderr appended to its log, and no other file descriptor than
//! the listening socket the launcher bound for it (fd 3): whatever the launcher inherited
//! (a `flock` lock, the write end of a `| cat` pipe) is closed at exec, so the caller's
//! pipeline ends and its locks are released when the launcher returns.
//!
//! The launcher binds the socket itself: of two launches racing for one port, the second
//! fails at once. The probe then checks that the endpoint answering carries the instance
//! token of the server it started.

use std::fs::File;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pd_common::http::{Client, ClientOptions};
use pd_common::url::BaseUrl;

use super::server::INSTANCE_HEADER;
use crate::error::Classify;
use crate::interrupt;

/// The descriptor the daemon finds its listening socket on.
pub const LISTEN_FD: i32 = 3;

/// Errors of process management.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot open the simulator log {}", path.display())]
    Log {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("refusing to write the simulator log {}: {why}", path.display())]
    UnsafeLog {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("cannot start launch-gptoss serve-sim")]
    Spawn { source: std::io::Error },
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
    #[error(
        "another server answers at {url} (not the simulator this launch started{}); stopped ours",
        got.as_deref().map(|g| format!(": instance {g}")).unwrap_or_default()
    )]
    Impostor { url: String, got: Option<String> },
    #[error("interrupted by {} while waiting for the simulator (stopped it)", interrupt::signal_name(*.0))]
    Interrupted(i32),
}

impl Classify for ProcessError {
    fn exit_code(&self) -> i32 {
        match self {
            ProcessError::Interrupted(sig) => pd_common::exit::interrupted_by(*sig),
            _ => pd_common::exit::FAILED,
        }
    }
}

/// Last `n` lines of a log file (empty if unreadable).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Open the simulator log for appending without following a planted symlink, and only if
/// it is a plain file of ours with one link (not a hard link to someone else's file, not a
/// FIFO that would block).
#[cfg(unix)]
pub fn open_log(path: &Path) -> Result<File, ProcessError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let err = |source| ProcessError::Log {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                ProcessError::UnsafeLog {
                    path: path.to_path_buf(),
                    why: "it is a symbolic link".into(),
                }
            } else {
                err(e)
            }
        })?;
    let m = f.metadata().map_err(err)?;
    let unsafe_log = |why: &str| ProcessError::UnsafeLog {
        path: path.to_path_buf(),
        why: why.to_string(),
    };
    if !m.file_type().is_file() {
        return Err(unsafe_log("it is not a regular file"));
    }
    if m.uid() != super::identity::my_uid() {
        return Err(unsafe_log("it belongs to another user"));
    }
    if m.nlink() != 1 {
        return Err(unsafe_log("it has other hard links"));
    }
    Ok(f)
}

/// Mark every descriptor from `from` on close-on-exec (async-signal-safe: syscalls only).
#[cfg(target_os = "linux")]
fn cloexec_from(from: i32) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range(2) only changes descriptor flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            from as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return;
    }
    // Older kernels: one fcntl per possible descriptor.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid pointer.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(1 << 20) as i32
    } else {
        4096
    };
    for fd in from..max {
        // SAFETY: fcntl on a possibly closed descriptor just fails with EBADF.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}

/// Start `<this exe> serve-sim --plan <plan> --listen-fd 3` as a daemon serving `listener`,
/// output appended to `log`.
#[cfg(target_os = "linux")]
pub fn spawn_serve_sim(
    plan: &Path,
    log: File,
    listener: &TcpListener,
) -> Result<Child, ProcessError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let spawn_err = |source| ProcessError::Spawn { source };
    let exe = std::env::current_exe().map_err(spawn_err)?;
    // A duplicate numbered 3 or above (std dups with F_DUPFD_CLOEXEC from 3): stdio set-up
    // in the child cannot overwrite it.
    let sock = listener.try_clone().map_err(spawn_err)?;
    let fd = sock.as_raw_fd();
    let err = log.try_clone().map_err(spawn_err)?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve-sim")
        .arg("--plan")
        .arg(plan)
        .arg("--listen-fd")
        .arg(LISTEN_FD.to_string())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .current_dir("/");
    // SAFETY: the closure only makes async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            let ok = if fd == LISTEN_FD {
                libc::fcntl(fd, libc::F_SETFD, 0) != -1
            } else {
                libc::dup2(fd, LISTEN_FD) != -1
            };
            if !ok {
                return Err(std::io::Error::last_os_error());
            }
            cloexec_from(LISTEN_FD + 1);
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(spawn_err)?;
    drop(sock);
    Ok(child)
}

/// Wait until `GET /v1/models` answers 200 with our instance token; fail early if the child
/// exits, and stop it on timeout, interruption or an impostor. Returns the time it took.
pub fn wait_ready(
    child: &mut Child,
    base_url: &BaseUrl,
    instance: &str,
    timeout: Duration,
    log: &Path,
) -> Result<Duration, ProcessError> {
    let client = Client::new(ClientOptions {
        timeout: Duration::from_millis(1000),
        connect_timeout: Duration::from_millis(500),
        max_body_bytes: 1 << 20,
        ..ClientOptions::default()
    });
    let start = Instant::now();
    let stop = |child: &mut Child| {
        let _ = child.kill();
        let _ = child.wait();
    };
    loop {
        if let Some(sig) = interrupt::received() {
            stop(child);
            return Err(ProcessError::Interrupted(sig));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ProcessError::EarlyExit {
                status: status.to_string(),
                log: log.display().to_string(),
                tail: log_tail(log, 20),
            });
        }
        if let Ok(r) = client.get(base_url, "/v1/models") {
            if r.status == 200 {
                let got = r.header(INSTANCE_HEADER);
                if got == Some(instance) {
                    return Ok(start.elapsed());
                }
                let got = got.map(str::to_string);
                stop(child);
                return Err(ProcessError::Impostor {
                    url: base_url.to_string(),
                    got,
                });
            }
        }
        if start.elapsed() > timeout {
            stop(child);
            return Err(ProcessError::NotReady {
                secs: timeout.as_secs_f64(),
                log: log.display().to_string(),
                tail: log_tail(log, 20),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_refuses_symlinks_and_foreign_links() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let log = dir.path().join("sim-1.log");
        std::os::unix::fs::symlink(&victim, &log).unwrap();
        let e = open_log(&log).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        std::fs::remove_file(&log).unwrap();
        std::fs::hard_link(&victim, &log).unwrap();
        let e = open_log(&log).unwrap_err();
        assert!(e.to_string().contains("hard links"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        std::fs::remove_file(&log).unwrap();
        assert!(open_log(&log).is_ok());
    }
}
