//! Typed errors of the Ray backend, each with its exit code.

use std::path::PathBuf;

use pd_common::exit;
use pd_common::http::HttpError;

use crate::error::Classify;

/// Everything that can go wrong talking to a Ray cluster or preparing a deployment.
#[derive(Debug, thiserror::Error)]
pub enum RayError {
    /// A URL given on the command line (or in `RAY_ADDRESS`) is not usable.
    #[error("invalid {what}: {reason}")]
    BadUrl { what: &'static str, reason: String },
    /// The server could not be reached at all (connection refused, DNS, timeout on connect).
    #[error("cannot reach {what} at {url}: {reason}")]
    Unreachable {
        what: &'static str,
        url: String,
        reason: String,
    },
    /// The server took too long to answer one request.
    #[error("{method} {url}: no answer within {secs} s")]
    RequestTimeout {
        method: String,
        url: String,
        secs: u64,
    },
    /// The server answered with an error status.
    #[error("{method} {url} returned HTTP {status}: {body}")]
    Http {
        method: String,
        url: String,
        status: u16,
        body: String,
    },
    /// The server answered something we cannot interpret, or the exchange broke off.
    #[error("unexpected answer from {url}: {reason}")]
    BadResponse { url: String, reason: String },
    /// A `--nodes` entry is malformed.
    #[error("invalid --nodes entry '{entry}': {reason} (expected IP:GPUS, e.g. 10.0.0.1:8)")]
    BadNode { entry: String, reason: String },
    /// The overrides file cannot be read or is not a table.
    #[error("overrides file {}: {reason}", path.display())]
    Overrides { path: PathBuf, reason: String },
    /// The deployment cannot be placed on the cluster (checked before anything is deployed).
    #[error("pre-flight check failed: {0}")]
    Preflight(String),
    /// The flags ask for something the Ray backend cannot render.
    #[error("{0}")]
    Config(String),
    /// Something already on the cluster prevents a safe deploy (route clash, app we cannot keep).
    #[error("{0}")]
    Conflict(String),
    /// Ray reported DEPLOY_FAILED (or the application vanished or was replaced).
    #[error("application '{app}' failed to deploy: {message}")]
    DeployFailed { app: String, message: String },
    /// The application was not ready before `--timeout`.
    #[error(
        "application '{app}' was not ready after {secs} s (--timeout); still pending: {pending}"
    )]
    NotReady {
        app: String,
        secs: u64,
        pending: String,
    },
    /// SIGINT/SIGTERM/SIGHUP while waiting.
    #[error("interrupted by {} while waiting for application '{app}'", crate::interrupt::signal_name(*signal))]
    Interrupted { app: String, signal: i32 },
    /// Writing the deployment record failed.
    #[error("writing the deployment record")]
    Record(#[from] pd_common::Error),
}

impl Classify for RayError {
    fn exit_code(&self) -> i32 {
        match self {
            RayError::BadUrl { .. }
            | RayError::BadNode { .. }
            | RayError::Overrides { .. }
            | RayError::Preflight(_)
            | RayError::Config(_) => exit::USAGE,
            RayError::Interrupted { signal, .. } => exit::interrupted_by(*signal),
            _ => exit::FAILED,
        }
    }
}

impl RayError {
    /// A transport error of a call to `what` ("the Ray dashboard").
    pub fn from_http(what: &'static str, base: &str, e: HttpError) -> RayError {
        match e {
            HttpError::Unreachable { reason, .. } => RayError::Unreachable {
                what,
                url: base.to_string(),
                reason,
            },
            HttpError::Timeout { method, url, secs } => RayError::RequestTimeout {
                method: method.to_string(),
                url,
                secs,
            },
            HttpError::TooLarge { url, limit, .. } => RayError::BadResponse {
                url,
                reason: format!("the response is larger than {limit} bytes"),
            },
            HttpError::Failed { url, reason, .. } => RayError::BadResponse { url, reason },
        }
    }

    /// Apply `f` to every server-provided text in the error (for scrubbing secrets).
    pub fn map_server_text(self, f: impl Fn(&str) -> String) -> RayError {
        match self {
            RayError::Http {
                method,
                url,
                status,
                body,
            } => RayError::Http {
                method,
                url,
                status,
                body: f(&body),
            },
            RayError::DeployFailed { app, message } => RayError::DeployFailed {
                app,
                message: f(&message),
            },
            RayError::NotReady { app, secs, pending } => RayError::NotReady {
                app,
                secs,
                pending: f(&pending),
            },
            RayError::BadResponse { url, reason } => RayError::BadResponse {
                url,
                reason: f(&reason),
            },
            other => other,
        }
    }
}

/// Truncate a server-provided text for an error message (keeps the end, where Python
/// tracebacks put the actual exception).
pub fn tail(text: &str, max_chars: usize) -> String {
    let n = text.chars().count();
    if n <= max_chars {
        return text.trim_end().to_string();
    }
    let skip = n - max_chars;
    let rest: String = text.chars().skip(skip).collect();
    format!("…{}", rest.trim_end())
}

/// Remove ANSI escape sequences (Ray colours parts of its tracebacks).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters then one final byte in '@'..='~'.
                for n in chars.by_ref() {
                    if ('@'..='~').contains(&n) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ansi() {
        assert_eq!(
            strip_ansi("\u{1b}[36mray::build()\u{1b}[39m (pid=1)"),
            "ray::build() (pid=1)"
        );
        assert_eq!(strip_ansi("plain"), "plain");
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("abc\n", 10), "abc");
        assert_eq!(tail("0123456789", 4), "…6789");
    }

    #[test]
    fn exit_codes_follow_the_table() {
        assert_eq!(RayError::Preflight("x".into()).exit_code(), 2);
        assert_eq!(
            RayError::Interrupted {
                app: "a".into(),
                signal: libc::SIGTERM
            }
            .exit_code(),
            143
        );
        assert_eq!(
            RayError::DeployFailed {
                app: "a".into(),
                message: "m".into()
            }
            .exit_code(),
            1
        );
    }
}
