//! The exit codes of every pd-lab tool (one table, documented in `docs/RELIABILITY.md`).
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the run failed (error, unreachable server, failed smoke test, a point where no request succeeded) |
//! | 2 | usage error: bad flags or values, nothing was run |
//! | 3 | completed, but some requests failed (results written; see the error summary) |
//! | 129 | interrupted by SIGHUP (finished work kept; the running point written as interrupted) |
//! | 130 | interrupted by SIGINT / Ctrl-C (same guarantee) |
//! | 143 | interrupted by SIGTERM (same guarantee) |

/// Success.
pub const OK: i32 = 0;
/// The run failed.
pub const FAILED: i32 = 1;
/// Bad flags or values; nothing was run.
pub const USAGE: i32 = 2;
/// Completed, but some requests failed.
pub const PARTIAL: i32 = 3;
/// Interrupted by SIGHUP.
pub const SIGHUP: i32 = 128 + 1;
/// Interrupted by SIGINT (Ctrl-C).
pub const SIGINT: i32 = 128 + 2;
/// Interrupted by SIGTERM.
pub const SIGTERM: i32 = 128 + 15;

/// The exit code after being interrupted by `signal` (a POSIX signal number).
pub fn interrupted_by(signal: i32) -> i32 {
    128 + signal
}
