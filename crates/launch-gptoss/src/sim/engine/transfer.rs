//! PD KV transfer: a processor-sharing link (aggregate bandwidth shared equally by the
//! in-flight transfers, optionally capped per transfer) plus per-pair handshake state.
//!
//! Transfer time = handshake wait (cold pair) + τ + hetero_τ (P TP ≠ D TP) + bytes/rate,
//! where the rate changes as transfers join and leave the link (SIM_MODEL.md §3).

use super::SimTime;

#[derive(Debug, Clone, Copy)]
struct Flow {
    id: u64,
    remaining: f64,
    /// When the bytes started moving, and how many (for the transfer counters).
    start: SimTime,
    bytes: f64,
}

/// One processor-sharing link.
#[derive(Debug, Clone)]
pub struct Link {
    bandwidth: f64,
    per_flow: f64,
    flows: Vec<Flow>,
    last: SimTime,
    /// Bumped on every change; completion events carry it to detect staleness.
    pub version: u64,
    /// Completed flows: total time on the link (start of the bytes to completion) and
    /// total bytes (`/metrics`: vLLM's NIXL transfer time and bytes).
    pub done_seconds: f64,
    pub done_bytes: f64,
}

impl Link {
    pub fn new(bandwidth: f64, per_flow: f64) -> Self {
        Link {
            bandwidth,
            per_flow,
            flows: Vec::new(),
            last: 0.0,
            version: 0,
            done_seconds: 0.0,
            done_bytes: 0.0,
        }
    }

    /// Current rate of each flow (B/s).
    pub fn rate(&self) -> f64 {
        if self.flows.is_empty() {
            return 0.0;
        }
        let share = self.bandwidth / self.flows.len() as f64;
        if self.per_flow > 0.0 {
            share.min(self.per_flow)
        } else {
            share
        }
    }

    pub fn active(&self) -> usize {
        self.flows.len()
    }

    fn progress(&mut self, now: SimTime) {
        let dt = (now - self.last).max(0.0);
        if dt > 0.0 && !self.flows.is_empty() {
            let moved = self.rate() * dt;
            for f in &mut self.flows {
                f.remaining -= moved;
            }
        }
        self.last = self.last.max(now);
    }

    /// Start a flow of `bytes`.
    pub fn add(&mut self, now: SimTime, id: u64, bytes: f64) {
        self.progress(now);
        self.flows.push(Flow {
            id,
            remaining: bytes.max(0.0),
            start: now,
            bytes: bytes.max(0.0),
        });
        self.version += 1;
    }

    /// Drop a flow (cancelled request); true if it was there.
    pub fn remove(&mut self, now: SimTime, id: u64) -> bool {
        self.progress(now);
        let before = self.flows.len();
        self.flows.retain(|f| f.id != id);
        let removed = self.flows.len() != before;
        if removed {
            self.version += 1;
        }
        removed
    }

    /// When the next flow completes, if any.
    pub fn next_completion(&self) -> Option<SimTime> {
        let r = self.rate();
        if r <= 0.0 {
            return None;
        }
        self.flows
            .iter()
            .map(|f| f.remaining.max(0.0))
            .min_by(f64::total_cmp)
            .map(|rem| self.last + rem / r)
    }

    /// Advance to `now` and move completed flows' ids into `done`.
    pub fn take_finished(&mut self, now: SimTime, done: &mut Vec<u64>) {
        self.progress(now);
        // tolerance: a byte, float noise relative to the bandwidth, or what the flow moves
        // in a time step too small to represent at `now` (long-running servers)
        let eps = 1.0f64
            .max(self.bandwidth * 1e-12)
            .max(self.rate() * now.abs() * 1e-12);
        let before = done.len();
        let (mut secs, mut bytes) = (0.0, 0.0);
        self.flows.retain(|f| {
            if f.remaining <= eps {
                done.push(f.id);
                secs += (now - f.start).max(0.0);
                bytes += f.bytes;
                false
            } else {
                true
            }
        });
        if done.len() != before {
            self.version += 1;
        }
        self.done_seconds += secs;
        self.done_bytes += bytes;
    }
}

/// Handshake state of a (P, D) pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PairState {
    Cold,
    /// Handshake in progress until this time.
    Handshaking(SimTime),
    Warm,
}

impl PairState {
    /// Wait before a transfer starting at `now` can proceed; updates the state.
    pub fn wait(&mut self, now: SimTime, t_hs: f64) -> f64 {
        match *self {
            PairState::Warm => 0.0,
            PairState::Cold => {
                if t_hs <= 0.0 {
                    *self = PairState::Warm;
                    0.0
                } else {
                    *self = PairState::Handshaking(now + t_hs);
                    t_hs
                }
            }
            PairState::Handshaking(until) => {
                if now >= until {
                    *self = PairState::Warm;
                    0.0
                } else {
                    until - now
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_flow_takes_bytes_over_bandwidth() {
        let mut l = Link::new(11e9, 0.0);
        l.add(1.0, 1, 368.64e6);
        let t = l.next_completion().unwrap();
        assert!((t - (1.0 + 368.64e6 / 11e9)).abs() < 1e-12);
        let mut done = Vec::new();
        l.take_finished(t, &mut done);
        assert_eq!(done, vec![1]);
        assert!(l.next_completion().is_none());
        // The transfer counters of /metrics.
        assert!((l.done_seconds - 368.64e6 / 11e9).abs() < 1e-12);
        assert_eq!(l.done_bytes, 368.64e6);
    }

    #[test]
    fn processor_sharing_two_flows() {
        // 10 B/s; A = 10 B at t=0, B = 10 B at t=0.5.
        // t=0..0.5: A alone, 5 B done. Then 5 B/s each: A ends at 1.5, B has 5 left,
        // alone again at 10 B/s: ends at 2.0.
        let mut l = Link::new(10.0 * 1e6, 0.0);
        let mut done = Vec::new();
        l.add(0.0, 1, 10e6);
        l.add(0.5, 2, 10e6);
        let t1 = l.next_completion().unwrap();
        assert!((t1 - 1.5).abs() < 1e-9, "{t1}");
        l.take_finished(t1, &mut done);
        assert_eq!(done, vec![1]);
        let t2 = l.next_completion().unwrap();
        assert!((t2 - 2.0).abs() < 1e-9, "{t2}");
    }

    #[test]
    fn completes_at_large_times() {
        // after days of simulated time the completion still fires (no zero-progress loop)
        let mut l = Link::new(100e9, 0.0);
        let t0 = 3.0e6;
        l.add(t0, 1, 1.0e6);
        let t = l.next_completion().unwrap();
        let mut done = Vec::new();
        l.take_finished(t, &mut done);
        assert_eq!(done, vec![1]);
    }

    #[test]
    fn per_flow_cap() {
        // TCP-like: 170 MB/s aggregate, 22 MB/s per flow; 4 flows each get 22 MB/s
        let mut l = Link::new(0.17e9, 22e6);
        for id in 0..4 {
            l.add(0.0, id, 22e6);
        }
        assert!((l.rate() - 22e6).abs() < 1e-6);
        assert!((l.next_completion().unwrap() - 1.0).abs() < 1e-9);
        // 17 flows share 170 MB/s: 10 MB/s each
        for id in 4..17 {
            l.add(0.0, id, 22e6);
        }
        assert!((l.rate() - 10e6).abs() < 1e-6);
    }

    #[test]
    fn handshake_only_on_cold_pairs() {
        let mut p = PairState::Cold;
        assert_eq!(p.wait(10.0, 3.0), 3.0);
        // a second transfer during the handshake waits for the same handshake
        assert!((p.wait(11.0, 3.0) - 2.0).abs() < 1e-12);
        assert_eq!(p.wait(13.5, 3.0), 0.0);
        assert_eq!(p, PairState::Warm);
    }
}
