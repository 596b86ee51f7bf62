//! Faults the simulator can inject on purpose, to test the tools that must catch them
//! (`launch-gptoss --backend sim --sim-fault …`).

use serde::{Deserialize, Serialize};

/// A deliberate fault of a simulated deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SimFault {
    /// PD deployments behave as if the KV blocks arrived zeroed (the LIBFABRIC failure of
    /// vLLM's PD): the first output token (computed by prefill) is right, every later one
    /// is the same prompt-independent text, while timing and throughput stay normal. No
    /// effect on collocated deployments (no KV transfer).
    CorruptKv,
}

impl SimFault {
    pub fn as_str(self) -> &'static str {
        match self {
            SimFault::CorruptKv => "corrupt-kv",
        }
    }
}
