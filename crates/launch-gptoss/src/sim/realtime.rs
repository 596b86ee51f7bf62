//! The real-time driver: a dedicated thread owns the [`Engine`] and runs it against a
//! monotonic clock (simulated time = seconds since the driver started).
//!
//! The thread sleeps until the engine's next event or a new command (submission,
//! cancellation, stats query), advances the engine to "now", and hands the emissions of
//! that advance (typically one engine step: hundreds of streams at once) over **as one
//! batch** to a fan-out task inside the server's async runtime ([`FanOut`]), which puts
//! each on its request's channel. Waking a task from outside the runtime costs a
//! cross-thread notification (often a syscall) per wake; from inside, a wake is a push on
//! the worker's run queue. So the engine thread pays one wake per step, not one per
//! stream. The time between an emission's model time and its hand-over is recorded as
//! the dispatch lag.

use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc as tmpsc, oneshot};

use super::engine::{Emission, EmissionKind, Engine, EngineStats, SimRequest, SimTime};
use super::lag::LagHistogram;

/// Maps wall-clock instants to simulated time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn new(start: Instant) -> Self {
        Clock { start }
    }
    /// Simulated time now.
    pub fn now(&self) -> SimTime {
        self.start.elapsed().as_secs_f64()
    }
    /// Simulated time of an instant (0 for instants before the start).
    pub fn sim_of(&self, t: Instant) -> SimTime {
        t.saturating_duration_since(self.start).as_secs_f64()
    }
}

/// One emission delivered to a request's handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub kind: EmissionKind,
    /// Model time of the emission.
    pub time: SimTime,
}

enum Command {
    Submit {
        req: SimRequest,
        arrival: Instant,
        sink: tmpsc::UnboundedSender<Delivery>,
    },
    Cancel {
        id: u64,
    },
    Stats {
        reply: oneshot::Sender<EngineStats>,
    },
    Stop,
}

/// One emission and the channel of its request.
struct Handoff {
    id: u64,
    sink: tmpsc::UnboundedSender<Delivery>,
    delivery: Delivery,
}

/// The emissions of one engine advance, in engine order.
type Batch = Vec<Handoff>;

/// The task that delivers the engine thread's batches to the requests' channels; run it
/// (once) on the runtime serving the requests: [`FanOut::run`].
#[derive(Debug)]
pub struct FanOut {
    rx: tmpsc::UnboundedReceiver<Batch>,
    handle: DriverHandle,
}

impl FanOut {
    /// Deliver batches until the driver stops. A request whose channel is gone (its
    /// client went away) is cancelled in the engine.
    pub async fn run(mut self) {
        while let Some(batch) = self.rx.recv().await {
            for h in batch {
                if h.sink.send(h.delivery).is_err() {
                    self.handle.cancel(h.id);
                }
            }
        }
    }
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("id", &self.id)
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

/// The driver stopped (its thread ended).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the simulator engine thread has stopped")]
pub struct DriverGone;

/// A cheap, cloneable handle to the driver thread.
#[derive(Debug, Clone)]
pub struct DriverHandle {
    tx: mpsc::Sender<Command>,
    clock: Clock,
}

impl DriverHandle {
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Submit a request; its emissions arrive on the returned channel.
    pub fn submit(
        &self,
        req: SimRequest,
        arrival: Instant,
    ) -> Result<tmpsc::UnboundedReceiver<Delivery>, DriverGone> {
        let (sink, rx) = tmpsc::unbounded_channel();
        self.tx
            .send(Command::Submit { req, arrival, sink })
            .map_err(|_| DriverGone)?;
        Ok(rx)
    }

    /// Drop a request (client went away). Unknown or finished ids are ignored.
    pub fn cancel(&self, id: u64) {
        let _ = self.tx.send(Command::Cancel { id });
    }

    /// The engine's gauges and counters.
    pub async fn stats(&self) -> Result<EngineStats, DriverGone> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Stats { reply })
            .map_err(|_| DriverGone)?;
        rx.await.map_err(|_| DriverGone)
    }
}

/// The running driver thread; stopping it (or dropping it) ends the thread.
#[derive(Debug)]
pub struct Driver {
    handle: DriverHandle,
    thread: Option<JoinHandle<()>>,
    fan_out: Option<FanOut>,
}

/// Environment variable: a nice value (e.g. `-10`) applied, best effort, to the engine
/// thread and the server's worker threads, so a busy machine delays them less. Lowering
/// the nice value needs privileges (CAP_SYS_NICE); failures are ignored.
pub const NICE_ENV: &str = "PD_LAB_SIM_NICE";

/// Apply [`NICE_ENV`] to the calling thread (best effort; Linux sets per-thread nice).
pub fn apply_thread_nice() {
    #[cfg(target_os = "linux")]
    if let Some(nice) = std::env::var(NICE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<i32>().ok())
    {
        // SAFETY: gettid/setpriority on the calling thread only.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            let _ = libc::setpriority(libc::PRIO_PROCESS, tid, nice);
        }
    }
}

/// Below this wait the thread yields instead of sleeping (a timed sleep would overshoot).
/// The engine thread's timer slack is set to 1 µs (Linux), so timed sleeps are precise.
const SPIN_BELOW: f64 = 20e-6;

/// Make timed sleeps of the calling thread precise (Linux: 1 µs timer slack instead of
/// the default 50 µs).
fn precise_timers() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes the calling thread's timer slack.
    unsafe {
        let _ = libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
    }
}

impl Driver {
    /// Start the thread. `dispatch_lag` receives (dispatch time − model time) of every
    /// token emission. Emissions reach the requests once [`Driver::take_fan_out`]'s task
    /// runs.
    pub fn start(engine: Engine, dispatch_lag: Arc<LagHistogram>) -> std::io::Result<Driver> {
        let clock = Clock::new(Instant::now());
        let (tx, rx) = mpsc::channel();
        let (batch_tx, batch_rx) = tmpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("sim-engine".into())
            .spawn(move || {
                apply_thread_nice();
                precise_timers();
                run(engine, clock, rx, batch_tx, &dispatch_lag)
            })?;
        let handle = DriverHandle { tx, clock };
        Ok(Driver {
            fan_out: Some(FanOut {
                rx: batch_rx,
                handle: handle.clone(),
            }),
            handle,
            thread: Some(thread),
        })
    }

    /// The fan-out task (None after the first call).
    pub fn take_fan_out(&mut self) -> Option<FanOut> {
        self.fan_out.take()
    }

    pub fn handle(&self) -> DriverHandle {
        self.handle.clone()
    }

    /// Stop the thread and wait for it.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        let _ = self.handle.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

struct Loop<'a> {
    engine: Engine,
    clock: Clock,
    sinks: HashMap<u64, tmpsc::UnboundedSender<Delivery>>,
    /// Engine time is never moved backwards.
    last: SimTime,
    out: Vec<Emission>,
    batches: tmpsc::UnboundedSender<Batch>,
    lag: &'a LagHistogram,
}

impl Loop<'_> {
    /// Handle one command; false means stop.
    fn command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Submit { req, arrival, sink } => {
                let t = self.clock.sim_of(arrival).max(self.last);
                self.last = t;
                self.sinks.insert(req.id, sink);
                self.engine.submit(t, req);
            }
            Command::Cancel { id } => {
                if self.sinks.remove(&id).is_some() {
                    let t = self.clock.now().max(self.last);
                    self.last = t;
                    self.engine.cancel(t, id);
                }
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.engine.stats());
            }
            Command::Stop => return false,
        }
        true
    }

    fn advance(&mut self) {
        let now = self.clock.now().max(self.last);
        self.last = now;
        self.out.clear();
        self.engine.advance(now, &mut self.out);
        if self.out.is_empty() {
            return;
        }
        let mut batch = Vec::with_capacity(self.out.len());
        let handed = self.clock.now();
        for e in self.out.drain(..) {
            let terminal = !matches!(e.kind, EmissionKind::Tokens(_));
            let sink = if terminal {
                self.sinks.remove(&e.id)
            } else {
                self.sinks.get(&e.id).cloned()
            };
            let Some(sink) = sink else {
                continue;
            };
            if !terminal {
                self.lag.record(handed - e.time);
            }
            batch.push(Handoff {
                id: e.id,
                sink,
                delivery: Delivery {
                    kind: e.kind,
                    time: e.time,
                },
            });
        }
        if !batch.is_empty() {
            // The receiver lives as long as the server's runtime; once it is gone nobody
            // is listening and dropping the batch is right.
            let _ = self.batches.send(batch);
        }
    }
}

fn run(
    engine: Engine,
    clock: Clock,
    rx: mpsc::Receiver<Command>,
    batches: tmpsc::UnboundedSender<Batch>,
    lag: &LagHistogram,
) {
    let mut lp = Loop {
        engine,
        clock,
        sinks: HashMap::new(),
        last: 0.0,
        out: Vec::new(),
        batches,
        lag,
    };
    loop {
        // Everything already queued first, so submissions are in before time moves on.
        loop {
            match rx.try_recv() {
                Ok(cmd) => {
                    if !lp.command(cmd) {
                        return;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
        lp.advance();
        let next = lp.engine.next_event_time();
        let cmd = match next {
            None => match rx.recv() {
                Ok(c) => c,
                Err(_) => return,
            },
            Some(t) => {
                let wait = t - lp.clock.now();
                if wait <= SPIN_BELOW {
                    std::thread::yield_now();
                    continue;
                }
                match rx.recv_timeout(Duration::from_secs_f64(wait)) {
                    Ok(c) => c,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        };
        if !lp.command(cmd) {
            return;
        }
    }
}
