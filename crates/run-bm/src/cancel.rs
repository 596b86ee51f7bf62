//! Interruption: SIGINT (Ctrl-C), SIGTERM (`timeout`, CI cancel, `kill`) and SIGHUP (a
//! dropped ssh session) are handled alike: stop sending, give in-flight requests a grace
//! period, then abort them; the running point is written, marked interrupted. A second
//! signal aborts at once. The first signal decides the exit code (128 + its number).

use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::progress::note;

/// Cancellation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Running,
    /// Send no new request; let in-flight ones finish (within the grace period).
    StopSending,
    /// Abort in-flight requests now.
    Abort,
}

/// Shared cancellation state (cheap to clone).
#[derive(Debug, Clone)]
pub struct Cancel {
    tx: Arc<watch::Sender<Level>>,
    /// The first signal received (0: none).
    signal: Arc<AtomicI32>,
    /// The level as a plain atomic, for checks on the streaming hot path.
    fast: Arc<AtomicU8>,
}

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}

/// Name of a handled signal, for messages.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT (Ctrl-C)",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

impl Cancel {
    pub fn new() -> Self {
        Cancel {
            tx: Arc::new(watch::channel(Level::Running).0),
            signal: Arc::new(AtomicI32::new(0)),
            fast: Arc::new(AtomicU8::new(Level::Running as u8)),
        }
    }

    pub fn level(&self) -> Level {
        *self.tx.borrow()
    }

    /// The level, read from an atomic (no lock; what [`Self::raise`] last set).
    pub fn level_fast(&self) -> Level {
        match self.fast.load(Ordering::Acquire) {
            0 => Level::Running,
            1 => Level::StopSending,
            _ => Level::Abort,
        }
    }

    /// Raise the level (never lowers it).
    pub fn raise(&self, to: Level) {
        self.fast.fetch_max(to as u8, Ordering::AcqRel);
        self.tx.send_if_modified(|l| {
            if to > *l {
                *l = to;
                true
            } else {
                false
            }
        });
    }

    pub fn is_stopping(&self) -> bool {
        self.level() >= Level::StopSending
    }

    /// Resolves once the level reaches `at_least`.
    pub async fn reached(&self, at_least: Level) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|l| *l >= at_least).await;
    }

    /// The first signal that interrupted the run, if any.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// What a signal does: the first stops sending, the next one aborts.
    pub fn on_signal(&self, sig: i32) {
        let _ = self
            .signal
            .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
        if self.level() == Level::Running {
            note(format_args!(
                "\nrun-bm: interrupted by {}: no new requests; waiting briefly for in-flight ones (signal again to abort them); the running point will be written as interrupted",
                signal_name(sig)
            ));
            self.raise(Level::StopSending);
        } else {
            self.raise(Level::Abort);
        }
    }

    /// Install the handlers of SIGINT, SIGTERM and SIGHUP (inside a tokio runtime).
    pub fn install_signals(&self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            for (kind, num) in [
                (SignalKind::interrupt(), libc::SIGINT),
                (SignalKind::terminate(), libc::SIGTERM),
                (SignalKind::hangup(), libc::SIGHUP),
            ] {
                let mut stream = signal(kind)?;
                let me = self.clone();
                tokio::spawn(async move {
                    while stream.recv().await.is_some() {
                        me.on_signal(num);
                    }
                });
            }
        }
        #[cfg(not(unix))]
        {
            let me = self.clone();
            tokio::spawn(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    me.on_signal(2);
                }
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn levels_only_rise() {
        let c = Cancel::new();
        assert_eq!(c.level(), Level::Running);
        c.raise(Level::Abort);
        c.raise(Level::StopSending);
        assert_eq!(c.level(), Level::Abort);
        assert_eq!(c.level_fast(), Level::Abort);
        c.reached(Level::StopSending).await;
    }

    #[tokio::test]
    async fn first_signal_stops_and_decides_the_code_second_aborts() {
        let c = Cancel::new();
        assert_eq!(c.signal(), None);
        c.on_signal(libc::SIGTERM);
        assert_eq!(c.level(), Level::StopSending);
        c.on_signal(libc::SIGINT);
        assert_eq!(c.level(), Level::Abort);
        assert_eq!(c.signal(), Some(libc::SIGTERM));
    }
}
