//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The shared real results (CI keeps `shared/` next to the repository).
pub fn real_results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/real-vllm-results")
}

/// A child process killed when dropped (tests never leak processes).
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    pub fn spawn(cmd: &mut Command) -> Self {
        ChildGuard(Some(cmd.spawn().expect("spawn run-bm")))
    }
    pub fn pid(&self) -> i32 {
        self.0.as_ref().unwrap().id() as i32
    }
    /// Panic with the child's output if it already exited.
    pub fn assert_running(&mut self) {
        if self.0.as_mut().unwrap().try_wait().unwrap().is_some() {
            let (status, out, err) = self.wait_timeout(Duration::from_secs(1));
            panic!("run-bm exited early ({status}):\n{out}\n{err}");
        }
    }

    /// Wait up to `timeout` for exit; kills and panics on timeout.
    pub fn wait_timeout(&mut self, timeout: Duration) -> (ExitStatus, String, String) {
        let mut child = self.0.take().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
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
                panic!("run-bm did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
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

/// `run-bm` with output captured, no deployment record, in `dir`.
pub fn run_bm(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_run-bm"));
    cmd.current_dir(dir)
        .env_remove("OPENAI_API_KEY")
        .env("PD_LAB_DEPLOYMENT", dir.join("no-record.toml"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}
