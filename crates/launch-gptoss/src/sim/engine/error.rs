//! The engine's error type (a leaf: every engine module may use it).

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The simulator's own input is wrong (constants, an incomplete layout).
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    /// vLLM would refuse to start this deployment; the message is vLLM's reason.
    #[error("vLLM would refuse this deployment: {0}")]
    Refused(String),
}
