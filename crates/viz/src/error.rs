//! Typed errors of the viz library.

use std::path::PathBuf;

/// Everything that stops `viz` from producing its output.
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    /// None of the given directories held a usable result file.
    #[error("no usable results in any of the given directories ({dirs}); see the warnings above")]
    NoUsableData { dirs: String },
    /// A file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Drawing a plot failed.
    #[error("cannot draw plot {what}: {message}")]
    Plot { what: String, message: String },
    /// A CSV file could not be written.
    #[error("{}: CSV error: {source}", path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    /// An error of the shared file contract (atomic writes, JSON).
    #[error(transparent)]
    Common(#[from] pd_common::Error),
    /// A user-supplied value is not valid.
    #[error("invalid {what}: {message}")]
    Invalid { what: &'static str, message: String },
}

impl VizError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VizError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn plot(what: impl Into<String>, message: impl ToString) -> Self {
        VizError::Plot {
            what: what.into(),
            message: message.to_string(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, VizError>;
