//! The plan of a simulated deployment: everything `serve-sim` needs, written as JSON by
//! `launch-gptoss --backend sim` (next to the record, `.pd-lab/sim-<port>.plan.json`).

use std::path::{Path, PathBuf};

use pd_common::deployment::{
    DeployMode, DeploymentRecord, DeploymentSpec, GpuKind, ServingBackend, StopHandle,
};
use serde::{Deserialize, Serialize};

use super::engine::{ClusterConfig, EngineExtras, NetworkKind, SimConstants};
use super::options::SimOptions;
use super::server::ServerOptions;
use crate::options::LaunchRequest;

/// Format version of plan files.
pub const PLAN_FORMAT_VERSION: u32 = 2;

/// File name of the plan of the simulator on `port` (next to the record).
pub fn plan_file_name(port: u16) -> String {
    format!("sim-{port}.plan.json")
}

/// File name of the log of the simulator on `port` (next to the record).
pub fn log_file_name(port: u16) -> String {
    format!("sim-{port}.log")
}

/// Errors while building or reading a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid plan {}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write the plan")]
    Write(#[source] Box<pd_common::Error>),
    #[error(transparent)]
    Constants(#[from] super::engine::SimError),
    #[error("cannot resolve path {}", path.display())]
    Path {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl crate::error::Classify for PlanError {
    fn exit_code(&self) -> i32 {
        match self {
            // Bad simulator constants or an unreadable --sim-config: a bad value.
            PlanError::Constants(_) => pd_common::exit::USAGE,
            _ => pd_common::exit::FAILED,
        }
    }
}

/// What `serve-sim` runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimPlan {
    pub format_version: u32,
    pub spec: DeploymentSpec,
    pub gpus_per_node: u32,
    /// KV network between P and D nodes (pd-spread; the engine ignores it otherwise).
    pub network: NetworkKind,
    /// Constants file replacing the built-in constants (absolute path).
    pub sim_config: Option<PathBuf>,
    pub max_model_len: u32,
    pub seed: u64,
    pub host: String,
    pub port: u16,
    /// The deployment record (absolute path): removed by the server on exit if it still
    /// names the server's pid; written by the server itself in `--foreground`.
    pub record_path: PathBuf,
    /// The record to write, with the pid filled in by whoever writes it.
    pub record: DeploymentRecord,
    /// Write the record once listening (foreground mode).
    pub write_record: bool,
    /// A fault injected on purpose (`--sim-fault`); plans without the key have none.
    #[serde(default)]
    pub fault: Option<super::fault::SimFault>,
    /// A random token the server returns in every response (`x-pd-lab-instance`): the
    /// launcher's readiness probe checks that the endpoint answering is the one it started.
    #[serde(default)]
    pub instance: String,
    /// `--decode-bench`: simulate vLLM's DecodeBenchConnector (collocated only).
    #[serde(default)]
    pub decode_bench: bool,
}

/// Name of a network in records (`efa-srd`, `ib`, `tcp`, `custom`).
pub fn network_name(n: NetworkKind) -> &'static str {
    match n {
        NetworkKind::EfaSrd => "efa-srd",
        NetworkKind::Ib => "ib",
        NetworkKind::Tcp => "tcp",
        NetworkKind::Custom => "custom",
    }
}

/// True when a `UCX_TLS` value restricts UCX to TCP (plus local transports), as
/// `UCX_TLS=tcp` does on the real stack.
pub fn ucx_tls_forces_tcp(value: &str) -> bool {
    const LOCAL: [&str; 9] = [
        "self",
        "sm",
        "shm",
        "posix",
        "sysv",
        "cma",
        "knem",
        "xpmem",
        "cuda_copy",
    ];
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    !value.trim_start().starts_with('^')
        && items.contains(&"tcp")
        && items
            .iter()
            .all(|t| *t == "tcp" || LOCAL.contains(t) || t.starts_with("cuda_ipc"))
}

/// The network the engine models: `explicit`, else the default of the GPU kind
/// (efa-srd on H100 nodes, ib on H200); `UCX_TLS=tcp` (with UCX) forces tcp.
/// Returns the network and a warning to print, if any.
pub fn resolve_network(
    explicit: Option<NetworkKind>,
    gpu: GpuKind,
    use_libfabric: bool,
    ucx_tls: Option<&str>,
) -> (NetworkKind, Option<String>) {
    let chosen = explicit.unwrap_or(match gpu {
        GpuKind::H200 => NetworkKind::Ib,
        _ => NetworkKind::EfaSrd,
    });
    match ucx_tls {
        Some(tls) if !use_libfabric && ucx_tls_forces_tcp(tls) && chosen != NetworkKind::Tcp => {
            let warn = explicit.map(|_| {
                format!(
                    "UCX_TLS={tls} forces UCX onto TCP (as on the real stack): simulating network tcp, not {}",
                    network_name(chosen)
                )
            });
            (NetworkKind::Tcp, warn)
        }
        _ => (chosen, None),
    }
}

/// Nodes the simulated deployment occupies, named `sim-node-<i>`.
pub fn node_names(spec: &DeploymentSpec, gpus_per_node: u32) -> Vec<String> {
    (0..spec.nodes_needed(gpus_per_node))
        .map(|i| format!("sim-node-{i}"))
        .collect()
}

fn absolute(p: &Path) -> Result<PathBuf, PlanError> {
    std::path::absolute(p).map_err(|source| PlanError::Path {
        path: p.to_path_buf(),
        source,
    })
}

/// The host clients should connect to (`0.0.0.0` → `127.0.0.1`).
pub fn connect_host(host: &str) -> String {
    match host {
        "0.0.0.0" | "" => "127.0.0.1".to_string(),
        "::" | "[::]" => "[::1]".to_string(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_string(),
    }
}

impl SimPlan {
    /// Build the plan of a validated launch request. `record_path` must be absolute-able.
    pub fn new(
        req: &LaunchRequest,
        opts: &SimOptions,
    ) -> Result<(SimPlan, Option<String>), PlanError> {
        let spec = &req.spec;
        let (network, warning) = resolve_network(
            opts.network,
            spec.gpu,
            spec.nixl_backend == pd_common::deployment::NixlBackend::Libfabric,
            opts.ucx_tls.as_deref(),
        );
        let sim_config = opts.sim_config.as_deref().map(absolute).transpose()?;
        let base_url = format!("http://{}:{}", connect_host(&opts.host), opts.port);
        let record = DeploymentRecord {
            format_version: pd_common::deployment::RECORD_FORMAT_VERSION,
            backend: ServingBackend::Sim,
            base_url,
            served_model_name: spec.model_id.clone(),
            label: spec.label(),
            total_gpus: spec.total_gpus(),
            gpus_per_node: req.gpus_per_node,
            nodes: node_names(spec, req.gpus_per_node),
            command: req.command.clone(),
            tool_version: pd_common::VERSION.to_string(),
            created_at: pd_common::deployment::now_rfc3339(),
            network: (spec.mode() == DeployMode::PdSpread)
                .then(|| network_name(network).to_string()),
            software: [("simulator".to_string(), pd_common::VERSION.to_string())]
                .into_iter()
                .collect(),
            env: pd_common::manifest::capture_env(),
            spec: spec.clone(),
            stop: StopHandle::Pid { pid: 0 },
        };
        let plan = SimPlan {
            format_version: PLAN_FORMAT_VERSION,
            spec: spec.clone(),
            gpus_per_node: req.gpus_per_node,
            network,
            sim_config,
            max_model_len: req.max_model_len,
            seed: opts.seed,
            host: opts.host.clone(),
            port: opts.port,
            record_path: absolute(&req.record_path)?,
            record,
            write_record: opts.foreground,
            fault: opts.fault,
            instance: format!(
                "{:016x}{:016x}",
                rand::random::<u64>(),
                rand::random::<u64>()
            ),
            decode_bench: opts.decode_bench,
        };
        Ok((plan, warning))
    }

    /// The engine options beyond the cluster configuration.
    pub fn extras(&self) -> EngineExtras {
        EngineExtras {
            decode_bench: self.decode_bench,
            ..EngineExtras::default()
        }
    }

    /// The simulator constants (built-in for the GPU kind, or `--sim-config`).
    pub fn constants(&self) -> Result<SimConstants, PlanError> {
        Ok(match &self.sim_config {
            Some(p) => SimConstants::load(p)?,
            None => SimConstants::builtin(self.spec.gpu)?,
        })
    }

    /// The engine configuration.
    pub fn cluster_config(&self) -> Result<ClusterConfig, PlanError> {
        Ok(ClusterConfig {
            spec: self.spec.clone(),
            gpus_per_node: self.gpus_per_node,
            network: self.network,
            constants: self.constants()?,
            max_model_len: self.max_model_len,
            seed: self.seed,
        })
    }

    pub fn server_options(&self) -> ServerOptions {
        ServerOptions {
            served_model_name: self.spec.model_id.clone(),
            model_source: self.spec.model_source.clone(),
            max_model_len: self.max_model_len,
            label: self.spec.label(),
            gpu: self.spec.gpu.to_string(),
            instance: (!self.instance.is_empty()).then(|| self.instance.clone()),
            corrupt_kv: self.fault == Some(super::fault::SimFault::CorruptKv)
                && self.spec.mode().is_pd(),
        }
    }

    /// The record of the running server `pid`, stamped now (after the server started:
    /// `shutdown` refuses a pid whose process started after its record was written).
    pub fn record_for(&self, pid: u32) -> DeploymentRecord {
        DeploymentRecord {
            stop: StopHandle::Pid { pid },
            created_at: pd_common::deployment::now_rfc3339(),
            ..self.record.clone()
        }
    }

    /// Where the plan and the log of this deployment live: next to the record.
    pub fn files(&self) -> (PathBuf, PathBuf) {
        let dir = self
            .record_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        (
            dir.join(plan_file_name(self.port)),
            dir.join(log_file_name(self.port)),
        )
    }

    pub fn write(&self, path: &Path) -> Result<(), PlanError> {
        let text = serde_json::to_string_pretty(self).map_err(|source| PlanError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        pd_common::fsutil::write_atomic(path, text.as_bytes())
            .map_err(|e| PlanError::Write(Box::new(e)))
    }

    pub fn read(path: &Path) -> Result<SimPlan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| PlanError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_defaults_and_ucx_tls() {
        assert_eq!(
            resolve_network(None, GpuKind::H100, false, None).0,
            NetworkKind::EfaSrd
        );
        assert_eq!(
            resolve_network(None, GpuKind::H200, false, None).0,
            NetworkKind::Ib
        );
        assert_eq!(
            resolve_network(Some(NetworkKind::Ib), GpuKind::H100, false, None).0,
            NetworkKind::Ib
        );
        let (n, w) = resolve_network(None, GpuKind::H100, false, Some("tcp"));
        assert_eq!((n, w), (NetworkKind::Tcp, None));
        let (n, w) = resolve_network(
            Some(NetworkKind::EfaSrd),
            GpuKind::H100,
            false,
            Some("tcp,self"),
        );
        assert_eq!(n, NetworkKind::Tcp);
        assert!(w.unwrap().contains("UCX_TLS"));
        assert_eq!(
            resolve_network(None, GpuKind::H100, true, Some("tcp")).0,
            NetworkKind::EfaSrd,
            "libfabric ignores UCX_TLS"
        );
        assert_eq!(
            resolve_network(None, GpuKind::H100, false, Some("rc,tcp")).0,
            NetworkKind::EfaSrd
        );
        assert_eq!(
            resolve_network(None, GpuKind::H100, false, Some("^tcp")).0,
            NetworkKind::EfaSrd
        );
        assert_eq!(
            resolve_network(None, GpuKind::H100, false, Some("all")).0,
            NetworkKind::EfaSrd
        );
    }

    #[test]
    fn nodes_and_hosts() {
        let spec = DeploymentSpec::collocated(4, 4);
        assert_eq!(node_names(&spec, 8), vec!["sim-node-0", "sim-node-1"]);
        assert_eq!(connect_host("0.0.0.0"), "127.0.0.1");
        assert_eq!(connect_host("::1"), "[::1]");
        assert_eq!(connect_host("127.0.0.1"), "127.0.0.1");
    }
}
