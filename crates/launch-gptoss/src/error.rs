//! Error classification: every error the command layer reports knows its exit code
//! ([`pd_common::exit`]), so `main` never guesses.

use pd_common::exit;

/// An error that knows which exit code it ends the tool with.
pub trait Classify {
    fn exit_code(&self) -> i32;
}

/// A flag or value the tool cannot use; nothing was started (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl Classify for UsageError {
    fn exit_code(&self) -> i32 {
        exit::USAGE
    }
}

/// The exit code after a signal interrupted the tool (129, 130, 143).
pub fn interrupted_code(signal: i32) -> i32 {
    exit::interrupted_by(signal)
}
