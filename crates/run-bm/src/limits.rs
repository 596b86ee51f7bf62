//! Resource limits checked before anything is sent: file descriptors (one socket per
//! request in flight), memory (every request's record is kept until its point is
//! written), and the bounds of the flags.
//!
//! * At start the soft `RLIMIT_NOFILE` is raised to the hard limit.
//! * A point whose concurrency cannot fit under the limit is refused before the sweep
//!   starts, saying why and what to do.
//! * A few descriptors are held in reserve during every point and released just before
//!   its files are written, so that running out of descriptors (e.g. an uncapped
//!   request-rate point) fails requests, never the point's files.

use std::fs::File;

use crate::config::PointSpec;

/// Largest concurrency accepted: one TCP connection per request in flight, and one
/// client address has fewer than 64 Ki ports towards one server.
pub const MAX_CONCURRENCY: u64 = 65_536;
/// Largest number of prompts per point.
pub const MAX_PROMPTS: u64 = 10_000_000;
/// Largest `--timeout` / `--stall-timeout` / `--grace` / `--ready-check-timeout-sec`,
/// seconds (30 days).
pub const MAX_SECONDS: f64 = 30.0 * 86_400.0;
/// Descriptors needed besides the request sockets: stdio, the async runtime and the
/// stream-reading thread (an epoll set and an eventfd each), the result files, the reserve.
pub const FD_HEADROOM: u64 = 64;
/// Descriptors held in reserve during a point for writing its files.
pub const FD_RESERVE: usize = 16;

/// The file-descriptor limits after trying to raise the soft one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimits {
    pub soft: u64,
    pub hard: u64,
    /// The soft limit before it was raised.
    pub was: u64,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; returns the limits in force
/// (`None` where they cannot be read).
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
pub fn raise_nofile_limit() -> Option<FdLimits> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit write to / read from a valid rlimit struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return None;
            }
            let was = lim.rlim_cur as u64;
            if lim.rlim_cur < lim.rlim_max {
                let mut want = lim;
                want.rlim_cur = lim.rlim_max;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
                    // Some systems refuse RLIM_INFINITY for NOFILE; keep what we have.
                    tracing::debug!("cannot raise RLIMIT_NOFILE to the hard limit");
                }
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
            }
            Some(FdLimits {
                soft: lim.rlim_cur as u64,
                hard: lim.rlim_max as u64,
                was,
            })
        }
    }
    #[cfg(not(unix))]
    None
}

/// Requests of a point that may be in flight at once.
pub fn max_in_flight(p: &PointSpec) -> u64 {
    p.max_concurrency
        .map_or(p.num_prompts, |c| c.min(p.num_prompts))
}

/// Why a sweep cannot run under the descriptor limit (the message says what to do), or
/// the warnings for points that may run out (uncapped request-rate points).
pub fn check_fds(points: &[PointSpec], limits: FdLimits) -> Result<Vec<String>, String> {
    let mut refused = Vec::new();
    let mut warnings = Vec::new();
    for p in points {
        let need = max_in_flight(p).saturating_add(FD_HEADROOM);
        if need <= limits.soft {
            continue;
        }
        if p.max_concurrency.is_some() {
            refused.push(format!(
                "{} (concurrency {}: needs about {need})",
                p.file_name,
                max_in_flight(p)
            ));
        } else {
            warnings.push(format!(
                "{}: up to {} requests may be in flight (no --max-concurrency) but the file-descriptor limit is {}; requests beyond about {} at once will fail with \"Too many open files\" (raise `ulimit -n` or add --max-concurrency)",
                p.file_name,
                max_in_flight(p),
                limits.soft,
                limits.soft.saturating_sub(FD_HEADROOM)
            ));
        }
    }
    if refused.is_empty() {
        return Ok(warnings);
    }
    Err(format!(
        "refusing to start: the open-file limit is {} (hard limit {}), but every request in flight needs a socket: {}. Raise the limit (e.g. `ulimit -n {}` in the shell as allowed by the hard limit, LimitNOFILE= for a systemd service, --ulimit nofile= for docker) or lower -c/--max-concurrency",
        limits.soft,
        limits.hard,
        refused.join(", "),
        points
            .iter()
            .map(|p| max_in_flight(p).saturating_add(FD_HEADROOM))
            .max()
            .unwrap_or(0)
            .next_power_of_two()
    ))
}

/// Bytes one request's record takes, roughly: its outcome and one chunk record (gap and
/// token count) per output token, plus the text when kept.
pub fn bytes_per_request(output_len: u32, keep_text: bool) -> u64 {
    let per_token = if keep_text { 12 + 8 } else { 12 };
    512 + u64::from(output_len) * per_token
}

/// Memory available to this process, bytes (`MemAvailable` of /proc/meminfo).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Refuse a point whose records would not fit in memory (more than half of what is
/// available).
pub fn check_memory(
    points: &[PointSpec],
    output_len: u32,
    keep_text: bool,
    available: Option<u64>,
) -> Result<(), String> {
    let Some(avail) = available else {
        return Ok(());
    };
    for p in points {
        let need = p
            .num_prompts
            .saturating_mul(bytes_per_request(output_len, keep_text));
        if need > avail / 2 {
            return Err(format!(
                "refusing to start: {} would keep about {} MiB of per-request records ({} prompts × {} output tokens) but only {} MiB of memory is available; lower --num-prompts",
                p.file_name,
                need >> 20,
                p.num_prompts,
                output_len,
                avail >> 20
            ));
        }
    }
    Ok(())
}

/// Descriptors held back during a point, released to write its files.
#[derive(Debug, Default)]
pub struct FdReserve {
    held: Vec<File>,
}

impl FdReserve {
    /// Hold up to [`FD_RESERVE`] descriptors (as many as can be opened).
    pub fn acquire() -> Self {
        let mut r = FdReserve::default();
        r.refill();
        r
    }

    /// Hold descriptors again, up to [`FD_RESERVE`].
    pub fn refill(&mut self) {
        while self.held.len() < FD_RESERVE {
            match File::open("/dev/null") {
                Ok(f) => self.held.push(f),
                Err(_) => break,
            }
        }
    }

    /// Release them (right before writing files).
    pub fn release(&mut self) {
        self.held.clear();
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pd_common::SweepKind;

    fn point(c: Option<u64>, n: u64) -> PointSpec {
        PointSpec {
            kind: SweepKind::Concurrency,
            value: c.unwrap_or(1) as f64,
            num_prompts: n,
            rate: f64::INFINITY,
            max_concurrency: c,
            file_name: format!("conc{}.json", c.unwrap_or(0)),
            written_rate: pd_common::RequestRate::Finite(1e9),
            written_max_concurrency: c,
        }
    }

    #[test]
    fn fd_check_refuses_what_cannot_fit() {
        let lim = FdLimits {
            soft: 1024,
            hard: 1024,
            was: 1024,
        };
        assert_eq!(check_fds(&[point(Some(64), 320)], lim), Ok(vec![]));
        let e = check_fds(&[point(Some(4), 20), point(Some(2000), 10_000)], lim).unwrap_err();
        assert!(
            e.contains("conc2000.json") && e.contains("1024") && e.contains("ulimit -n 4096"),
            "{e}"
        );
        assert!(!e.contains("conc4.json"));
        // Fewer prompts than the cap: only the prompts can be in flight.
        assert_eq!(check_fds(&[point(Some(2000), 100)], lim), Ok(vec![]));
        // Uncapped rate points only warn.
        let w = check_fds(&[point(None, 5000)], lim).unwrap();
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn memory_check() {
        let p = [point(Some(4), 1_000_000)];
        assert!(check_memory(&p, 1000, false, Some(64 << 30)).is_ok());
        assert!(check_memory(&p, 1000, false, Some(8 << 30)).is_err());
        assert!(check_memory(&p, 1000, false, None).is_ok());
    }

    #[test]
    fn reserve_holds_and_releases() {
        let mut r = FdReserve::acquire();
        assert_eq!(r.held(), FD_RESERVE);
        r.release();
        assert_eq!(r.held(), 0);
        r.refill();
        assert_eq!(r.held(), FD_RESERVE);
    }
}
