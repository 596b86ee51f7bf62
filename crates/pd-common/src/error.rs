//! Typed errors of the file contract.

use std::path::PathBuf;

/// Everything that can go wrong while parsing values or reading/writing contract files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A user-supplied value (flag, list, label) is not valid.
    #[error("invalid {what}: {message}")]
    Invalid { what: &'static str, message: String },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file could not be parsed or written.
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A TOML file could not be parsed.
    #[error("{}: invalid TOML: {source}", path.display())]
    TomlDe {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    /// A value could not be written as TOML.
    #[error("cannot write TOML: {0}")]
    TomlSer(#[from] toml::ser::Error),
    /// A CSV file could not be read or written.
    #[error("{}: CSV error: {source}", path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
}

impl Error {
    pub(crate) fn invalid(what: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            message: message.into(),
        }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
