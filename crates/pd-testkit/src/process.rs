//! Child-process guards and pid checks: tests never leak processes, even when they fail.

use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A child process killed when dropped.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    pub fn spawn(cmd: &mut Command) -> Self {
        ChildGuard(Some(cmd.spawn().expect("spawn child process")))
    }

    pub fn pid(&self) -> i32 {
        self.0.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Panic with the child's output if it already exited.
    pub fn assert_running(&mut self) {
        let exited = self
            .0
            .as_mut()
            .map(|c| c.try_wait().ok().flatten().is_some())
            .unwrap_or(true);
        if exited {
            let (status, out, err) = self.wait_timeout(Duration::from_secs(1));
            panic!("child exited early ({status}):\n{out}\n{err}");
        }
    }

    /// Wait up to `timeout` for exit and return (status, stdout, stderr); kills and
    /// panics on timeout.
    pub fn wait_timeout(&mut self, timeout: Duration) -> (ExitStatus, String, String) {
        let mut child = self.0.take().expect("child already waited for");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut out = String::new();
                let mut err = String::new();
                use std::io::Read;
                if let Some(mut s) = child.stdout.take() {
                    s.read_to_string(&mut out).ok();
                }
                if let Some(mut s) = child.stderr.take() {
                    s.read_to_string(&mut err).ok();
                }
                return (status, out, err);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Peak resident memory of a running process, bytes (`VmHWM` of `/proc/<pid>/status`).
pub fn vm_hwm(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

impl ChildGuard {
    /// Like [`ChildGuard::wait_timeout`], plus the peak resident memory of this child
    /// alone, bytes. Its own image's `VmHWM`, polled while it runs: the `ru_maxrss` of
    /// `wait4` also counts the memory of the test process it was spawned from (Linux
    /// carries the pre-`exec` high-water mark over, and a `vfork`-style spawn shares the
    /// parent's), so it is only the fallback for a child that ended before the first
    /// poll. (`getrusage(RUSAGE_CHILDREN)` would mix in every other child as well.)
    #[allow(clippy::zombie_processes)] // reaped by wait4, or killed and waited for
    pub fn wait_timeout_peak_rss(
        &mut self,
        timeout: Duration,
    ) -> (ExitStatus, String, String, u64) {
        use std::os::unix::process::ExitStatusExt;
        let mut child = self.0.take().expect("child already waited for");
        let pid = child.id() as libc::pid_t;
        let deadline = Instant::now() + timeout;
        let mut polled: Option<u64> = None;
        loop {
            if let Some(hwm) = vm_hwm(pid as u32) {
                polled = Some(polled.map_or(hwm, |p| p.max(hwm)));
            }
            let mut raw = 0;
            // SAFETY: wait4 writes into a valid status int and a zeroed rusage.
            let (r, usage) = unsafe {
                let mut u: libc::rusage = std::mem::zeroed();
                (libc::wait4(pid, &mut raw, libc::WNOHANG, &mut u), u)
            };
            if r == pid {
                let mut out = String::new();
                let mut err = String::new();
                use std::io::Read;
                if let Some(mut s) = child.stdout.take() {
                    s.read_to_string(&mut out).ok();
                }
                if let Some(mut s) = child.stderr.take() {
                    s.read_to_string(&mut err).ok();
                }
                // ru_maxrss is in KiB on Linux.
                let rss =
                    polled.unwrap_or_else(|| u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024);
                return (ExitStatus::from_raw(raw), out, err, rss);
            }
            if r < 0 || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child did not exit within {timeout:?} (wait4 returned {r})");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether a process with this pid exists (signal 0).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for existence and permission.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Send `signal` to a pid this test started.
pub fn signal(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: signalling a process this test started.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Kills a pid on drop (teardown even when the test fails).
pub struct KillOnDrop(pub Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            if pid_alive(pid) {
                signal(pid, libc::SIGKILL);
            }
        }
    }
}

/// Kills whatever a deployment record points at on drop (test teardown).
pub struct RecordGuard<'a>(pub &'a Path);

impl Drop for RecordGuard<'_> {
    fn drop(&mut self) {
        if let Ok(Some(r)) = pd_common::DeploymentRecord::read_optional(self.0) {
            if let pd_common::StopHandle::Pid { pid } = r.stop {
                drop(KillOnDrop(Some(pid)));
            }
        }
    }
}

/// Poll `f` every 20 ms until it holds or `timeout` passes; returns its last value.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}
