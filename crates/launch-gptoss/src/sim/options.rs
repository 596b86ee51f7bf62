//! What the simulated backend needs besides the
//! [`LaunchRequest`](crate::options::LaunchRequest): built from the flags by the command
//! layer, never from clap types here.

use std::path::PathBuf;
use std::time::Duration;

use pd_common::deployment::GpuKind;

use super::engine::NetworkKind;

/// Knobs of the simulated backend.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOptions {
    /// GPU kind of the simulated nodes.
    pub gpu: GpuKind,
    /// Network between P and D nodes (pd-spread); default by GPU kind.
    pub network: Option<NetworkKind>,
    /// Address the endpoint listens on.
    pub host: String,
    pub port: u16,
    /// Listening on a non-loopback address was asked for explicitly (`--allow-remote`).
    pub allow_remote: bool,
    pub seed: u64,
    /// Simulator constants replacing the built-in ones.
    pub sim_config: Option<PathBuf>,
    /// Serve in this process until Ctrl-C instead of in the background.
    pub foreground: bool,
    /// `UCX_TLS` of the caller (`tcp` makes the simulated KV network TCP).
    pub ucx_tls: Option<String>,
    /// `--decode-bench`: simulate vLLM's DecodeBenchConnector (collocated only).
    pub decode_bench: bool,
    /// A fault injected on purpose (`--sim-fault`).
    pub fault: Option<super::fault::SimFault>,
    /// Longest wait for the background simulator to answer (it needs well under a second).
    pub ready_cap: Duration,
    /// SIGTERM grace period of `shutdown` before SIGKILL.
    pub stop_grace: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            gpu: GpuKind::H100,
            network: None,
            host: "127.0.0.1".into(),
            port: 8000,
            allow_remote: false,
            seed: 0,
            sim_config: None,
            foreground: false,
            ucx_tls: None,
            decode_bench: false,
            fault: None,
            ready_cap: Duration::from_secs(30),
            stop_grace: Duration::from_secs(5),
        }
    }
}
