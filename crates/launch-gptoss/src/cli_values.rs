//! Value types shared by the tool's command lines (`launch-gptoss` and its `probe`
//! subcommand): where to run, the simulated GPU kind and network.

use clap::ValueEnum;
use pd_common::deployment::GpuKind;

use crate::sim::engine::NetworkKind;

/// Where the deployment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// A real Ray cluster (Ray Serve LLM + vLLM), driven over the Serve REST API.
    Ray,
    /// The embedded simulated cluster (no GPUs needed).
    Sim,
}

/// Network between the P and D nodes of a simulated pd-spread deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Network {
    /// AWS EFA with UCX over SRD (measured 11 GB/s per pair).
    EfaSrd,
    /// InfiniBand.
    Ib,
    /// UCX forced to TCP (a deliberately bad network).
    Tcp,
    /// Taken from the [network.custom] table of the simulator config.
    Custom,
}

impl From<Network> for NetworkKind {
    fn from(n: Network) -> Self {
        match n {
            Network::EfaSrd => NetworkKind::EfaSrd,
            Network::Ib => NetworkKind::Ib,
            Network::Tcp => NetworkKind::Tcp,
            Network::Custom => NetworkKind::Custom,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GpuArg {
    H100,
    H200,
}

impl From<GpuArg> for GpuKind {
    fn from(g: GpuArg) -> Self {
        match g {
            GpuArg::H100 => GpuKind::H100,
            GpuArg::H200 => GpuKind::H200,
        }
    }
}
