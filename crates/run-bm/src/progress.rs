//! Progress of a sweep point: an indicatif bar on a terminal (completed/total and live
//! TTFT/TPOT medians), plain lines on stderr otherwise.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::runner::LiveStats;

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silence [`note`] and the progress display (`-q`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// A status line on stderr (what run-bm is doing: points started, written, skipped). It
/// never fails: a closed or broken stderr (a dropped ssh session) must not stop a run.
/// Warnings and errors go through `tracing` instead.
pub fn note(msg: impl std::fmt::Display) {
    if !quiet() {
        let _ = writeln!(std::io::stderr().lock(), "{msg}");
    }
}

/// A running progress display; call [`Progress::finish`] when the point is done.
pub struct Progress {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

fn medians_text(live: &LiveStats) -> String {
    let (ttft, tpot) = live.medians_ms();
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
    let failed = live.failed.load(std::sync::atomic::Ordering::Relaxed);
    let mut s = format!("median TTFT {}, TPOT {}", f(ttft), f(tpot));
    if failed > 0 {
        s.push_str(&format!(", {failed} failed"));
    }
    s
}

impl Progress {
    /// Start showing progress of `total` requests under `label`.
    pub fn start(label: &str, total: u64, live: Arc<LiveStats>, bar: bool) -> Self {
        let (tx, mut rx) = oneshot::channel::<()>();
        let label = label.to_string();
        let task = if quiet() {
            tokio::spawn(async move {
                let _ = rx.await;
            })
        } else if bar {
            let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix:>10} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            pb.set_style(style);
            pb.set_prefix(label);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            pb.set_position(live.done());
                            pb.set_message(medians_text(&live));
                        }
                        _ = &mut rx => break,
                    }
                }
                pb.set_position(live.done());
                pb.set_message(medians_text(&live));
                pb.finish();
            })
        } else {
            note(format_args!("[{label}] started: {total} requests"));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(10));
                tick.tick().await;
                let mut last = u64::MAX;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            let done = live.done();
                            if done != last {
                                note(format_args!("[{label}] {done}/{total} done, {}", medians_text(&live)));
                                last = done;
                            }
                        }
                        _ = &mut rx => break,
                    }
                }
                note(format_args!(
                    "[{label}] finished: {}/{total} done, {}",
                    live.done(),
                    medians_text(&live)
                ));
            })
        };
        Progress {
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stop the display (prints the final state).
    pub async fn finish(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}
