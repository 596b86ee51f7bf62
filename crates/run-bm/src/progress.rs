//! Progress of a sweep: on a terminal, one overall line ([`SweepLine`]: point i/N, run
//! k/K, elapsed, ETA from the completed runs) above an indicatif bar of the running point
//! (completed/total and live TTFT/TPOT medians); plain lines on stderr otherwise.
//!
//! While the bars are drawn, status notes ([`note`]) and `tracing` diagnostics
//! ([`ConsoleWriter`]) are printed above them instead of through them.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::runner::LiveStats;

static QUIET: AtomicBool = AtomicBool::new(false);

/// The bars being drawn (set by [`SweepLine::new`] on a terminal, cleared by
/// [`SweepLine::finish`]).
static ACTIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

fn active() -> Option<MultiProgress> {
    ACTIVE.lock().ok().and_then(|g| g.clone())
}

/// Write to stderr, above the bars when they are drawn; never fails.
fn stderr_bytes(bytes: &[u8]) {
    let write = || {
        let _ = std::io::stderr().lock().write_all(bytes);
    };
    match active() {
        Some(mp) => mp.suspend(write),
        None => write(),
    }
}

/// `tracing`'s writer for run-bm: stderr, each event printed above the progress bars.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleWriter;

/// One event's bytes, written when the event is complete.
#[derive(Debug, Default)]
pub struct EventBuffer(Vec<u8>);

impl Write for EventBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            stderr_bytes(&self.0);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ConsoleWriter {
    type Writer = EventBuffer;
    fn make_writer(&'a self) -> EventBuffer {
        EventBuffer::default()
    }
}

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
        stderr_bytes(format!("{msg}\n").as_bytes());
    }
}

/// Text for stdout (results, tables), printed above the progress bars when they are
/// drawn; a closed stdout is ignored.
pub fn stdout_text(text: &str) {
    let write = || pd_common::out!("{text}");
    match active() {
        Some(mp) => mp.suspend(write),
        None => write(),
    }
}

/// `h:mm:ss` (or `m:ss` under an hour).
pub fn clock(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 {
        secs.round() as u64
    } else {
        0
    };
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// The sweep's remaining time, estimated from the runs already completed.
///
/// Each run of a point is weighted by its *schedule length*, the time its arrivals span
/// when the server keeps up: `prompts / rate` for a rate point, `prompts / concurrency`
/// (rounds of the closed loop) for a concurrency point. The seconds per unit of work
/// measured on the completed runs (warmups, scrapes and writes included) times the
/// work left (the rest of the running run by its completed requests, then every run not
/// started) is the ETA. Nothing is estimated before the first run completes.
#[derive(Debug, Clone, PartialEq)]
pub struct Eta {
    /// Work of each run, in sweep order.
    work: Vec<f64>,
    /// Runs completed (a prefix of `work`) and the seconds they took.
    done: usize,
    done_secs: f64,
}

impl Eta {
    /// `work`: one entry per run ([`Eta::work_of`]).
    pub fn new(work: Vec<f64>) -> Self {
        Eta {
            work,
            done: 0,
            done_secs: 0.0,
        }
    }

    /// Schedule length of one run of `prompts` requests at `rate` req/s (∞: all at once)
    /// with at most `cap` in flight.
    pub fn work_of(prompts: u64, rate: f64, cap: Option<u64>) -> f64 {
        let n = prompts.max(1) as f64;
        let by_rate = if rate.is_finite() && rate > 0.0 {
            n / rate
        } else {
            0.0
        };
        let by_cap = cap.map_or(1.0, |c| n / c.max(1) as f64);
        by_rate.max(by_cap).max(1e-9)
    }

    /// A run finished after `secs` seconds.
    pub fn complete(&mut self, secs: f64) {
        if self.done < self.work.len() {
            self.done += 1;
            self.done_secs += secs.max(0.0);
        }
    }

    /// A run was skipped (`--resume`): it costs nothing.
    pub fn skip(&mut self) {
        if self.done < self.work.len() {
            self.work[self.done] = 0.0;
            self.done += 1;
        }
    }

    /// Seconds left when the running run has completed `fraction` (0..1) of its requests;
    /// `None` until a run with work has completed.
    pub fn remaining(&self, fraction: f64) -> Option<f64> {
        let done_work: f64 = self.work[..self.done].iter().sum();
        if done_work <= 0.0 || self.done_secs <= 0.0 {
            return None;
        }
        let per_unit = self.done_secs / done_work;
        let mut left: f64 = self.work[self.done..].iter().sum();
        if let Some(current) = self.work.get(self.done) {
            left -= current * fraction.clamp(0.0, 1.0);
        }
        Some(per_unit * left.max(0.0))
    }
}

#[derive(Debug)]
struct LineState {
    eta: Eta,
    started: Instant,
    text: String,
}

/// The overall line of a sweep: `sweep 2/6 · conc16 · run 1/3 · 1:23 elapsed · ETA 4:10`.
#[derive(Debug)]
pub struct SweepLine {
    points: usize,
    repeat: u32,
    state: Mutex<LineState>,
    bar: Option<ProgressBar>,
    multi: Option<MultiProgress>,
}

impl SweepLine {
    /// A sweep of `points` points, `repeat` runs each; `work` per run ([`Eta`]). With
    /// `bars` (a terminal) the line and the points' bars are drawn on stderr.
    pub fn new(points: usize, repeat: u32, work: Vec<f64>, bars: bool) -> Arc<SweepLine> {
        let (multi, bar) = if bars && !quiet() {
            let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let pb = mp.add(ProgressBar::new_spinner());
            pb.set_style(
                ProgressStyle::with_template("{msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            if let Ok(mut g) = ACTIVE.lock() {
                *g = Some(mp.clone());
            }
            (Some(mp), Some(pb))
        } else {
            (None, None)
        };
        Arc::new(SweepLine {
            points,
            repeat,
            state: Mutex::new(LineState {
                eta: Eta::new(work),
                started: Instant::now(),
                text: String::new(),
            }),
            bar,
            multi,
        })
    }

    /// The bars of the sweep (to draw a point's bar below the line).
    pub fn multi(&self) -> Option<&MultiProgress> {
        self.multi.as_ref()
    }

    fn render(&self, st: &LineState, fraction: f64) -> String {
        let eta = st
            .eta
            .remaining(fraction)
            .map_or("ETA after the first run".to_string(), |s| {
                format!("ETA {}", clock(s))
            });
        format!(
            "{} · {} elapsed · {eta}",
            st.text,
            clock(st.started.elapsed().as_secs_f64())
        )
    }

    /// Point `index` (0-based) labelled `label`, run `k` (1-based) starts.
    pub fn begin(&self, index: usize, label: &str, k: u32) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        st.text = if self.repeat > 1 {
            format!(
                "sweep {}/{} · {label} · run {k}/{}",
                index + 1,
                self.points,
                self.repeat
            )
        } else {
            format!("sweep {}/{} · {label}", index + 1, self.points)
        };
        let line = self.render(&st, 0.0);
        match &self.bar {
            Some(b) => b.set_message(line),
            None => note(line),
        }
    }

    /// Redraw with the running run `fraction` complete (on a terminal).
    pub fn refresh(&self, fraction: f64) {
        if let (Some(b), Ok(st)) = (&self.bar, self.state.lock()) {
            b.set_message(self.render(&st, fraction));
        }
    }

    /// The current run completed after `secs`.
    pub fn complete(&self, secs: f64) {
        if let Ok(mut st) = self.state.lock() {
            st.eta.complete(secs);
        }
    }

    /// The current run was skipped (`--resume`).
    pub fn skip(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.eta.skip();
        }
    }

    /// Stop drawing (the line stays on screen with its last text).
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            if let Ok(st) = self.state.lock() {
                b.finish_with_message(format!(
                    "sweep done · {} elapsed",
                    clock(st.started.elapsed().as_secs_f64())
                ));
            }
        }
        if let Ok(mut g) = ACTIVE.lock() {
            *g = None;
        }
    }
}

impl Drop for SweepLine {
    fn drop(&mut self) {
        if self.multi.is_some() {
            if let Ok(mut g) = ACTIVE.lock() {
                *g = None;
            }
        }
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
    /// Start showing progress of `total` requests under `label`, below the sweep's
    /// overall `line` (drawn as a bar when the line has bars, else as plain lines).
    pub fn start(label: &str, total: u64, live: Arc<LiveStats>, line: Arc<SweepLine>) -> Self {
        let (tx, mut rx) = oneshot::channel::<()>();
        let label = label.to_string();
        let task = if quiet() {
            tokio::spawn(async move {
                let _ = rx.await;
            })
        } else if let Some(mp) = line.multi() {
            let pb = mp.add(ProgressBar::new(total));
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
                            line.refresh(live.done() as f64 / total.max(1) as f64);
                        }
                        _ = &mut rx => break,
                    }
                }
                pb.set_position(live.done());
                pb.set_message(medians_text(&live));
                pb.finish_and_clear();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_text() {
        assert_eq!(clock(0.0), "0:00");
        assert_eq!(clock(83.4), "1:23");
        assert_eq!(clock(3725.0), "1:02:05");
        assert_eq!(clock(f64::NAN), "0:00");
    }

    #[test]
    fn eta_from_completed_runs() {
        // Concurrency 4 and 8 with 5 × C prompts: 5 rounds each; rate 2 with 500 prompts:
        // 250 s of arrivals.
        assert_eq!(Eta::work_of(20, f64::INFINITY, Some(4)), 5.0);
        assert_eq!(Eta::work_of(500, 2.0, None), 250.0);
        assert_eq!(Eta::work_of(500, 2.0, Some(1000)), 250.0);
        assert_eq!(Eta::work_of(10, f64::INFINITY, None), 1.0);
        let mut e = Eta::new(vec![5.0, 5.0, 10.0]);
        assert_eq!(e.remaining(0.5), None, "nothing completed yet");
        e.complete(20.0); // 4 s per unit of work
        assert_eq!(e.remaining(0.0), Some(60.0));
        assert_eq!(e.remaining(0.5), Some(50.0));
        e.skip();
        assert_eq!(e.remaining(0.0), Some(40.0));
        e.complete(100.0);
        assert_eq!(e.remaining(0.0), Some(0.0));
        e.complete(1.0);
        assert_eq!(e.remaining(1.0), Some(0.0));
    }
}
