//! Is the pid in a deployment record the simulator that record describes?
//!
//! A record outlives its process: the pid may since belong to something else (pid reuse),
//! or the record may be another user's. Before `shutdown` signals a pid, and before a launch
//! or `status` trusts one, the process is identified from `/proc/<pid>`:
//!
//! * it runs as our user (another user's process is reported, never signalled);
//! * its executable is this tool (`launch-gptoss`), run as `serve-sim` (the background
//!   simulator) or with `--foreground`;
//! * a background simulator serves this record: its `--plan` is `sim-<port>.plan.json` in
//!   the record's directory, with the record's port;
//! * it started before the record was written (`created_at`): a process that started later
//!   only inherited the number.
//!
//! Signals go through a pidfd opened before the checks, so the process checked is the one
//! signalled even if the pid is reused in between.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use pd_common::deployment::DeploymentRecord;
use pd_common::url::BaseUrl;

/// Slack between a process's start time and the record's `created_at` (whole seconds).
const START_SLACK: Duration = Duration::from_secs(2);

/// What `/proc/<pid>` says about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    /// Real user id.
    pub uid: u32,
    /// Command name (`comm`).
    pub comm: String,
    pub argv: Vec<String>,
    /// Executable file name (without " (deleted)"), if readable.
    pub exe_name: Option<String>,
    /// Start time, if known.
    pub started: Option<SystemTime>,
}

/// Who a record's pid is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No such process (or a zombie): the record is stale.
    Gone,
    /// The simulator the record describes.
    Ours(ProcInfo),
    /// A live process of another user: never signalled, the record is kept.
    OtherUser(ProcInfo),
    /// A live process of ours that is not the simulator of this record (pid reused):
    /// left alone; `why` says what did not match.
    Unrelated { info: ProcInfo, why: String },
}

/// Read `/proc/<pid>`; `None` when the process does not exist or is a zombie.
pub fn proc_info(pid: u32) -> Option<ProcInfo> {
    if pid == 0 || i32::try_from(pid).is_err() {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid …": comm may contain spaces and ')'; the state follows the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    if matches!(state, 'Z' | 'X') {
        return None;
    }
    // Field 22 of stat is the start time in clock ticks after boot; `fields` starts at 3.
    let started = fields
        .get(19)
        .and_then(|t| t.parse::<u64>().ok())
        .and_then(start_time);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    let argv = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let exe_name = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|n| n.trim_end_matches(" (deleted)").to_string());
    Some(ProcInfo {
        pid,
        uid,
        comm,
        argv,
        exe_name,
        started,
    })
}

/// Boot-relative clock ticks → wall-clock time.
fn start_time(ticks: u64) -> Option<SystemTime> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())?;
    let after_boot = Duration::from_secs_f64(ticks as f64 / hz as f64);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(btime) + after_boot)
}

/// Our effective user id.
pub fn my_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// File name of this tool's executable.
fn my_exe_name() -> Option<String> {
    std::env::current_exe()
        .ok()?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

/// The plan file a background simulator of `record` (at `record_path`) runs.
pub fn expected_plan(record: &DeploymentRecord, record_path: &Path) -> Option<PathBuf> {
    let port = BaseUrl::parse(&record.base_url, 80).ok()?.port;
    let dir = match record_path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Some(dir.join(super::plan::plan_file_name(port)))
}

fn same_path(a: &Path, b: &Path) -> bool {
    // The plan file is gone once the simulator read it: compare the directories.
    let canon = |p: &Path| {
        let dir = p.parent().unwrap_or(Path::new("."));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::canonicalize(dir)
            .ok()
            .map(|d| d.join(p.file_name().unwrap_or_default()))
    };
    match (canon(a), canon(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Identify the process `pid` of `record` (read from `record_path`).
pub fn identify(pid: u32, record: &DeploymentRecord, record_path: &Path) -> Identity {
    let Some(info) = proc_info(pid) else {
        return Identity::Gone;
    };
    if info.uid != my_uid() {
        return Identity::OtherUser(info);
    }
    let unrelated = |info: ProcInfo, why: String| Identity::Unrelated { info, why };
    if pid == std::process::id() {
        return unrelated(info, "it is this very process".into());
    }
    if info.exe_name.is_none() || info.exe_name != my_exe_name() {
        let why = format!(
            "it runs {}, not launch-gptoss",
            info.exe_name.as_deref().unwrap_or(&info.comm)
        );
        return unrelated(info, why);
    }
    let serve_sim = info.argv.get(1).map(String::as_str) == Some("serve-sim");
    let foreground = info.argv.iter().any(|a| a == "--foreground");
    if !serve_sim && !foreground {
        return unrelated(
            info,
            "it is a launch-gptoss process but not a simulator (serve-sim or --foreground)".into(),
        );
    }
    if serve_sim {
        let plan = info
            .argv
            .iter()
            .position(|a| a == "--plan")
            .and_then(|i| info.argv.get(i + 1))
            .map(PathBuf::from);
        let expected = expected_plan(record, record_path);
        let matches = matches!((&plan, &expected), (Some(p), Some(e)) if same_path(p, e));
        if !matches {
            let why = format!(
                "it serves another deployment (plan {})",
                plan.as_deref()
                    .map_or_else(|| "unknown".into(), |p| p.display().to_string())
            );
            return unrelated(info, why);
        }
    }
    if let (Some(started), Ok(created)) = (
        info.started,
        chrono::DateTime::parse_from_rfc3339(&record.created_at),
    ) {
        let created = SystemTime::from(created);
        if started > created + START_SLACK {
            let why = format!(
                "it started after the record was written ({}): the pid was reused",
                record.created_at
            );
            return unrelated(info, why);
        }
    }
    Identity::Ours(info)
}

/// A handle on one process that stays valid when the pid is reused (a pidfd on Linux).
#[derive(Debug)]
pub struct ProcHandle {
    pid: u32,
    fd: Option<std::os::fd::OwnedFd>,
}

impl ProcHandle {
    /// Open a handle on `pid` (before identifying it).
    pub fn open(pid: u32) -> ProcHandle {
        use std::os::fd::FromRawFd;
        let fd = libc::pid_t::try_from(pid).ok().and_then(|p| {
            // SAFETY: pidfd_open(2) with a pid and no flags; returns a new fd or -1.
            let r = unsafe { libc::syscall(libc::SYS_pidfd_open, p, 0) };
            // SAFETY: r is a fresh file descriptor owned by nobody else.
            (r >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(r as i32) })
        });
        ProcHandle { pid, fd }
    }

    /// Send `sig`; Ok(false) when the process is already gone.
    pub fn signal(&self, sig: libc::c_int) -> std::io::Result<bool> {
        use std::os::fd::AsRawFd;
        let Ok(pid) = libc::pid_t::try_from(self.pid) else {
            return Ok(false);
        };
        if pid <= 0 {
            return Ok(false);
        }
        let r = match &self.fd {
            // SAFETY: pidfd_send_signal(2) on our pidfd, no siginfo, no flags.
            Some(fd) => unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    sig,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            },
            // SAFETY: kill(2) on a pid that was identified just before.
            None => i64::from(unsafe { libc::kill(pid, sig) }),
        };
        if r == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            Ok(false)
        } else {
            Err(e)
        }
    }

    /// Wait up to `timeout` for the process to end.
    pub fn wait_gone(&self, timeout: Duration) -> bool {
        let start = Instant::now();
        loop {
            if proc_info(self.pid).is_none() || self.signal(0).is_ok_and(|alive| !alive) {
                return true;
            }
            if start.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process() {
        let me = proc_info(std::process::id()).unwrap();
        assert_eq!(me.uid, my_uid());
        assert!(!me.argv.is_empty());
        assert!(me.started.unwrap() <= SystemTime::now());
        assert!(proc_info(0).is_none());
        assert!(proc_info(u32::MAX).is_none());
    }

    #[test]
    fn a_zombie_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let h = ProcHandle::open(child.id());
        assert!(h.wait_gone(Duration::from_secs(10)));
        assert!(
            Path::new(&format!("/proc/{}", child.id())).exists(),
            "still a zombie"
        );
        child.wait().unwrap();
    }
}
