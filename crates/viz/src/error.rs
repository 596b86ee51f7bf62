//! Typed errors of the viz library. Each variant names what failed; the underlying cause
//! is its `source()` (printed once by `pd_common::diag::error_chain`).

use std::path::PathBuf;

/// Everything that stops `viz` from producing its output.
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    /// None of the given directories held a usable result file.
    #[error("no usable results in any of the given directories ({dirs}); see the warnings above")]
    NoUsableData { dirs: String },
    /// A file could not be read or written.
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Drawing a plot failed.
    #[error("cannot draw plot {what}: {message}")]
    Plot { what: String, message: String },
    /// A CSV file could not be written.
    #[error("{}: CSV error", path.display())]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_printed_once() {
        let e = VizError::io(
            "plots/x.png",
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied"),
        );
        let text = pd_common::diag::error_chain(&e);
        assert_eq!(text, "plots/x.png: Permission denied");
        let wrapped = anyhow::Error::new(e).context("writing the comprehensive plot");
        let text = pd_common::diag::error_chain(wrapped.as_ref());
        assert_eq!(
            text,
            "writing the comprehensive plot: plots/x.png: Permission denied"
        );
    }
}
