//! Ctrl-C handling: stop sending, give in-flight requests a grace period, then abort.

use std::sync::Arc;

use tokio::sync::watch;

/// Cancellation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
}

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}

impl Cancel {
    pub fn new() -> Self {
        Cancel {
            tx: Arc::new(watch::channel(Level::Running).0),
        }
    }

    pub fn level(&self) -> Level {
        *self.tx.borrow()
    }

    /// Raise the level (never lowers it).
    pub fn raise(&self, to: Level) {
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

    /// Install a Ctrl-C (SIGINT) handler: the first press stops sending, the second
    /// aborts in-flight requests at once.
    pub fn install_ctrl_c(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut presses = 0;
            while tokio::signal::ctrl_c().await.is_ok() {
                presses += 1;
                if presses == 1 {
                    eprintln!(
                        "\nrun-bm: interrupted: no new requests; waiting briefly for in-flight ones (Ctrl-C again to abort them)"
                    );
                    me.raise(Level::StopSending);
                } else {
                    me.raise(Level::Abort);
                }
            }
        });
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
        c.reached(Level::StopSending).await;
    }
}
