//! Helpers of the Ray backend's tests: flags → (request, options) with short timings, and
//! the tool's log captured from `tracing`.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use launch_gptoss::cli::Cli;
use launch_gptoss::options::LaunchRequest;
use launch_gptoss::ray::env::CallerEnv;
use launch_gptoss::ray::options::{RayOptions, Timings};

/// Timings short enough for tests.
pub fn fast_timings() -> Timings {
    Timings {
        poll_interval: Duration::from_millis(50),
        request_timeout: Duration::from_secs(10),
        models_timeout: Duration::from_secs(5),
        probe_timeout: Duration::from_secs(2),
        removal_timeout: Duration::from_secs(5),
        heartbeat: Duration::from_secs(30),
        empty_node_retries: 10,
    }
}

/// The command recorded by tests.
pub fn test_command() -> Vec<String> {
    vec!["launch-gptoss".into(), "--mode".into(), "pd-pack".into()]
}

/// Parse `launch-gptoss <argv…>` into the launch request and the Ray options.
pub fn request(argv: &[&str], caller_env: CallerEnv) -> (LaunchRequest, RayOptions) {
    let mut full = vec!["launch-gptoss"];
    full.extend_from_slice(argv);
    let cli = Cli::try_parse_checked(full).unwrap();
    let req = cli.launch.request(test_command()).unwrap();
    let opts = RayOptions {
        caller_env,
        timings: fast_timings(),
        ..cli.launch.ray_options().unwrap()
    };
    (req, opts)
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Run `f` with the tool's `tracing` output (INFO and up) captured; returns both.
pub fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buf = Buf::default();
    let sink = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let out = tracing::subscriber::with_default(sub, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (out, text)
}
