//! What to deploy (the spec) and what was deployed (the record).
//!
//! `launch-gptoss` writes a [`DeploymentRecord`] as TOML (default
//! `.pd-lab/deployment.toml`, or `$PD_LAB_DEPLOYMENT`) once the deployment answers;
//! `run-bm` reads it for the endpoint, the served model name, the label and the GPU
//! count; `launch-gptoss shutdown` reads it to know what to stop.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil;

/// Environment variable that overrides the default record path.
pub const RECORD_PATH_ENV: &str = "PD_LAB_DEPLOYMENT";
/// Default record path, relative to the working directory.
pub const DEFAULT_RECORD_PATH: &str = ".pd-lab/deployment.toml";
/// Format version written into every record.
pub const RECORD_FORMAT_VERSION: u32 = 1;
/// Default served model name.
pub const DEFAULT_MODEL_ID: &str = "gptoss";
/// Default model source.
pub const DEFAULT_MODEL_SOURCE: &str = "openai/gpt-oss-120b";
/// Default GPUs per node.
pub const DEFAULT_GPUS_PER_NODE: u32 = 8;

/// Where the record lives unless a path is given: `$PD_LAB_DEPLOYMENT`, else
/// `.pd-lab/deployment.toml`.
pub fn default_record_path() -> PathBuf {
    match std::env::var_os(RECORD_PATH_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_RECORD_PATH),
    }
}

/// The record path a tool uses: the explicit one (`--deployment-file`) if given, else
/// [`default_record_path`].
pub fn record_path(explicit: Option<&Path>) -> PathBuf {
    explicit.map_or_else(default_record_path, Path::to_path_buf)
}

/// Deployment mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeployMode {
    /// Prefill and decode on the same replicas.
    Collocated,
    /// Disaggregated, P and D replicas on one node.
    PdPack,
    /// Disaggregated, P replicas on one node and D replicas on another.
    PdSpread,
}

impl DeployMode {
    pub const ALL: [DeployMode; 3] = [
        DeployMode::Collocated,
        DeployMode::PdPack,
        DeployMode::PdSpread,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            DeployMode::Collocated => "collocated",
            DeployMode::PdPack => "pd-pack",
            DeployMode::PdSpread => "pd-spread",
        }
    }
    pub fn is_pd(self) -> bool {
        self != DeployMode::Collocated
    }
}

impl fmt::Display for DeployMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeployMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        DeployMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "deployment mode",
                    format!("'{s}' (expected collocated, pd-pack or pd-spread)"),
                )
            })
    }
}

/// NIXL transport backend for the KV transfer of PD deployments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NixlBackend {
    #[default]
    Ucx,
    Libfabric,
}

impl NixlBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            NixlBackend::Ucx => "ucx",
            NixlBackend::Libfabric => "libfabric",
        }
    }
    /// The name NIXL expects in `kv_connector_extra_config.backends`.
    pub fn nixl_name(self) -> &'static str {
        match self {
            NixlBackend::Ucx => "UCX",
            NixlBackend::Libfabric => "LIBFABRIC",
        }
    }
}

impl fmt::Display for NixlBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// GPU kind of the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GpuKind {
    #[default]
    H100,
    H200,
    /// CPU-only nodes (the real stack on a laptop or CI).
    Cpu,
    /// Anything else (reported by a real cluster).
    Other,
}

impl GpuKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GpuKind::H100 => "h100",
            GpuKind::H200 => "h200",
            GpuKind::Cpu => "cpu",
            GpuKind::Other => "other",
        }
    }
}

impl fmt::Display for GpuKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GpuKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "h100" => Ok(GpuKind::H100),
            "h200" => Ok(GpuKind::H200),
            "cpu" => Ok(GpuKind::Cpu),
            "other" => Ok(GpuKind::Other),
            _ => Err(Error::invalid(
                "GPU kind",
                format!("'{s}' (expected h100 or h200)"),
            )),
        }
    }
}

/// A group of identical engine replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Replicas {
    /// Number of replicas.
    pub num: u32,
    /// Tensor-parallel degree of each replica.
    pub tp: u32,
}

impl Replicas {
    pub fn gpus(&self) -> u32 {
        self.num * self.tp
    }
}

/// Where the two groups of a disaggregated (PD) deployment go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PdPlacement {
    /// P and D replicas on one node (`pd-pack`).
    Pack,
    /// P replicas on one node, D replicas on another (`pd-spread`).
    Spread,
}

impl PdPlacement {
    /// The deployment mode this placement is.
    pub fn mode(self) -> DeployMode {
        match self {
            PdPlacement::Pack => DeployMode::PdPack,
            PdPlacement::Spread => DeployMode::PdSpread,
        }
    }
}

/// The replica groups of a deployment: one collocated group, or a prefill and a decode
/// group with their placement. Every value is a deployable shape (no "invalid" layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Prefill and decode on the same replicas.
    Collocated(Replicas),
    /// Disaggregated prefill and decode replicas.
    Pd {
        placement: PdPlacement,
        prefill: Replicas,
        decode: Replicas,
    },
}

impl Layout {
    /// Build a layout from a mode and the groups a file or a name gives; the error names
    /// the group the mode needs and did not get.
    pub fn from_parts(
        mode: DeployMode,
        collocated: Option<Replicas>,
        prefill: Option<Replicas>,
        decode: Option<Replicas>,
    ) -> Result<Self> {
        let missing = |group: &str| {
            Error::invalid(
                "deployment",
                format!("mode {mode} needs the [{group}] replica group (num, tp)"),
            )
        };
        let placement = match mode {
            DeployMode::Collocated => {
                return collocated
                    .map(Layout::Collocated)
                    .ok_or_else(|| missing("collocated"))
            }
            DeployMode::PdPack => PdPlacement::Pack,
            DeployMode::PdSpread => PdPlacement::Spread,
        };
        Ok(Layout::Pd {
            placement,
            prefill: prefill.ok_or_else(|| missing("prefill"))?,
            decode: decode.ok_or_else(|| missing("decode"))?,
        })
    }

    /// The deployment mode of this layout.
    pub fn mode(&self) -> DeployMode {
        match self {
            Layout::Collocated(_) => DeployMode::Collocated,
            Layout::Pd { placement, .. } => placement.mode(),
        }
    }

    /// The replica groups in serving order: `[collocated]` or `[prefill, decode]`.
    pub fn groups(&self) -> Vec<Replicas> {
        match *self {
            Layout::Collocated(c) => vec![c],
            Layout::Pd {
                prefill, decode, ..
            } => vec![prefill, decode],
        }
    }
}

/// What to deploy.
///
/// On disk (deployment records, plans) a spec keeps its flat form: `mode` plus the
/// `[collocated]` or `[prefill]`/`[decode]` tables; [`SpecRepr`] is that form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SpecRepr", into = "SpecRepr")]
pub struct DeploymentSpec {
    /// The replica groups and their placement.
    pub layout: Layout,
    /// NIXL backend (meaningful for PD modes).
    pub nixl_backend: NixlBackend,
    /// Served model name (`--model-id`).
    pub model_id: String,
    /// Model weights source (`--model-source`).
    pub model_source: String,
    /// GPU kind of the nodes.
    pub gpu: GpuKind,
}

/// The on-disk form of a [`DeploymentSpec`] (field order is the file's key order).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SpecRepr {
    mode: DeployMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    collocated: Option<Replicas>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefill: Option<Replicas>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decode: Option<Replicas>,
    #[serde(default)]
    nixl_backend: NixlBackend,
    model_id: String,
    model_source: String,
    #[serde(default)]
    gpu: GpuKind,
}

impl TryFrom<SpecRepr> for DeploymentSpec {
    type Error = Error;
    fn try_from(r: SpecRepr) -> Result<Self> {
        Ok(DeploymentSpec {
            layout: Layout::from_parts(r.mode, r.collocated, r.prefill, r.decode)?,
            nixl_backend: r.nixl_backend,
            model_id: r.model_id,
            model_source: r.model_source,
            gpu: r.gpu,
        })
    }
}

impl From<DeploymentSpec> for SpecRepr {
    fn from(s: DeploymentSpec) -> Self {
        let (collocated, prefill, decode) = match s.layout {
            Layout::Collocated(c) => (Some(c), None, None),
            Layout::Pd {
                prefill, decode, ..
            } => (None, Some(prefill), Some(decode)),
        };
        SpecRepr {
            mode: s.layout.mode(),
            collocated,
            prefill,
            decode,
            nixl_backend: s.nixl_backend,
            model_id: s.model_id,
            model_source: s.model_source,
            gpu: s.gpu,
        }
    }
}

impl DeploymentSpec {
    /// A spec for `layout` with the default model, NIXL backend and GPU kind.
    pub fn new(layout: Layout) -> Self {
        DeploymentSpec {
            layout,
            nixl_backend: NixlBackend::Ucx,
            model_id: DEFAULT_MODEL_ID.to_string(),
            model_source: DEFAULT_MODEL_SOURCE.to_string(),
            gpu: GpuKind::H100,
        }
    }

    /// Collocated: `num` replicas at TP `tp`.
    pub fn collocated(num: u32, tp: u32) -> Self {
        Self::new(Layout::Collocated(Replicas { num, tp }))
    }

    /// Disaggregated: `prefill` and `decode` replica groups, packed or spread.
    pub fn pd(placement: PdPlacement, prefill: Replicas, decode: Replicas) -> Self {
        Self::new(Layout::Pd {
            placement,
            prefill,
            decode,
        })
    }

    /// The deployment mode (`collocated`, `pd-pack`, `pd-spread`).
    pub fn mode(&self) -> DeployMode {
        self.layout.mode()
    }

    /// Canonical label: `4xtp2` (collocated) or `p1xtp2-d2xtp2` (PD).
    pub fn label(&self) -> String {
        match self.layout {
            Layout::Collocated(c) => format!("{}xtp{}", c.num, c.tp),
            Layout::Pd {
                prefill: p,
                decode: d,
                ..
            } => format!("p{}xtp{}-d{}xtp{}", p.num, p.tp, d.num, d.tp),
        }
    }

    /// GPUs used by all replicas.
    pub fn total_gpus(&self) -> u32 {
        self.layout.groups().iter().map(Replicas::gpus).sum()
    }

    /// Nodes the deployment needs with `gpus_per_node` GPUs each.
    pub fn nodes_needed(&self, gpus_per_node: u32) -> u32 {
        match self.layout {
            Layout::Collocated(_) => self.total_gpus().div_ceil(gpus_per_node.max(1)).max(1),
            Layout::Pd {
                placement: PdPlacement::Pack,
                ..
            } => 1,
            Layout::Pd {
                placement: PdPlacement::Spread,
                ..
            } => 2,
        }
    }

    /// Check the spec against the constraints the real stack enforces.
    ///
    /// * every count and TP ≥ 1, TP a power of two and ≤ GPUs per node;
    /// * PD: prefill TP ≤ decode TP (vLLM's NixlConnector cannot go from a higher TP to a lower one);
    /// * pd-pack: all P and D GPUs fit on one node; pd-spread: each side fits on its node.
    pub fn validate(&self, gpus_per_node: u32) -> Result<()> {
        if gpus_per_node == 0 {
            return Err(Error::invalid("GPUs per node", "must be at least 1"));
        }
        let check = |what: &'static str, r: Replicas| -> Result<()> {
            if r.num == 0 {
                return Err(Error::invalid(what, "replica count must be at least 1"));
            }
            if r.tp == 0 || !r.tp.is_power_of_two() {
                return Err(Error::invalid(
                    what,
                    format!("TP {} is not a power of two (1, 2, 4, 8)", r.tp),
                ));
            }
            if r.tp > gpus_per_node {
                return Err(Error::invalid(
                    what,
                    format!("TP {} exceeds the {gpus_per_node} GPUs of a node", r.tp),
                ));
            }
            Ok(())
        };
        match self.layout {
            Layout::Collocated(c) => check("collocated replicas", c)?,
            Layout::Pd {
                placement,
                prefill: p,
                decode: d,
            } => {
                check("prefill replicas", p)?;
                check("decode replicas", d)?;
                if p.tp > d.tp {
                    return Err(Error::invalid(
                        "PD layout",
                        format!(
                            "prefill TP {} is higher than decode TP {}: vLLM's NixlConnector \
                             cannot transfer KV from a higher TP degree to a lower one \
                             (use --p-tp <= --d-tp)",
                            p.tp, d.tp
                        ),
                    ));
                }
                if placement == PdPlacement::Pack && p.gpus() + d.gpus() > gpus_per_node {
                    return Err(Error::invalid(
                        "PD layout",
                        format!(
                            "pd-pack puts P and D on one node: {}×TP{} + {}×TP{} = {} GPUs \
                             exceed the {gpus_per_node} GPUs of a node",
                            p.num,
                            p.tp,
                            d.num,
                            d.tp,
                            p.gpus() + d.gpus()
                        ),
                    ));
                }
                if placement == PdPlacement::Spread {
                    for (side, r) in [("prefill", p), ("decode", d)] {
                        if r.gpus() > gpus_per_node {
                            return Err(Error::invalid(
                                "PD layout",
                                format!(
                                    "pd-spread puts all {side} replicas on one node: {}×TP{} = {} GPUs \
                                     exceed the {gpus_per_node} GPUs of a node",
                                    r.num,
                                    r.tp,
                                    r.gpus()
                                ),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Which backend serves the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServingBackend {
    /// A real Ray cluster running Ray Serve LLM + vLLM.
    Ray,
    /// The embedded simulated cluster.
    Sim,
}

impl ServingBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            ServingBackend::Ray => "ray",
            ServingBackend::Sim => "sim",
        }
    }
}

impl fmt::Display for ServingBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to stop a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StopHandle {
    /// A local process (the simulator): send it SIGTERM.
    Pid { pid: u32 },
    /// A Ray Serve application: DELETE it through the dashboard at `address`.
    Ray { address: String, app_name: String },
}

/// What `launch-gptoss` deployed; written once the deployment answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// Format version of this file.
    pub format_version: u32,
    pub backend: ServingBackend,
    /// OpenAI-compatible endpoint, e.g. `http://127.0.0.1:8000`.
    pub base_url: String,
    /// Model name to put in requests.
    pub served_model_name: String,
    /// Canonical label (`4xtp2`, `p1xtp2-d2xtp2`).
    pub label: String,
    /// GPUs used by the deployment.
    pub total_gpus: u32,
    /// GPUs per node of the cluster.
    pub gpus_per_node: u32,
    /// Nodes used (IP addresses on Ray, names on the simulator).
    pub nodes: Vec<String>,
    /// The exact command line that created the deployment.
    pub command: Vec<String>,
    /// Version of `launch-gptoss`.
    pub tool_version: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Network between P and D nodes (pd-spread), e.g. `efa-srd`, `ib`, `tcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Software versions reported by the cluster (e.g. `ray`, `vllm`).
    #[serde(default)]
    pub software: BTreeMap<String, String>,
    /// Environment variables that shaped the deployment (UCX_TLS, NIXL_LOG_LEVEL…).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub spec: DeploymentSpec,
    pub stop: StopHandle,
}

impl DeploymentRecord {
    /// Parse a record from TOML text.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self> {
        toml::from_str(text).map_err(|source| Error::TomlDe {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Read a record file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = fsutil::read_to_string(path)?;
        Self::from_toml_str(&text, path)
    }

    /// Read the record if the file exists; `Ok(None)` if it does not.
    pub fn read_optional(path: &Path) -> Result<Option<Self>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_toml_str(&text, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Serialize as TOML.
    pub fn to_toml_string(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Write the record atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = self.to_toml_string()?;
        fsutil::write_atomic(path, text.as_bytes())
    }
}

/// Current time as RFC 3339 (for `created_at` fields).
pub fn now_rfc3339() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(num: u32, tp: u32) -> Replicas {
        Replicas { num, tp }
    }

    #[test]
    fn labels_and_gpus() {
        let c = DeploymentSpec::collocated(4, 2);
        assert_eq!(
            (c.label(), c.total_gpus(), c.nodes_needed(8)),
            ("4xtp2".into(), 8, 1)
        );
        let p = DeploymentSpec::pd(PdPlacement::Pack, rep(1, 2), rep(2, 2));
        assert_eq!((p.label(), p.total_gpus()), ("p1xtp2-d2xtp2".into(), 6));
        let s = DeploymentSpec::pd(PdPlacement::Spread, rep(1, 4), rep(1, 4));
        assert_eq!(s.nodes_needed(8), 2);
        assert_eq!(DeploymentSpec::collocated(8, 2).nodes_needed(8), 2);
    }

    #[test]
    fn validation() {
        assert!(DeploymentSpec::collocated(4, 2).validate(8).is_ok());
        assert!(DeploymentSpec::collocated(1, 3).validate(8).is_err());
        assert!(DeploymentSpec::collocated(0, 2).validate(8).is_err());
        assert!(DeploymentSpec::collocated(1, 16).validate(8).is_err());
        let bad_tp = DeploymentSpec::pd(PdPlacement::Pack, rep(1, 4), rep(1, 2));
        assert!(bad_tp
            .validate(8)
            .unwrap_err()
            .to_string()
            .contains("NixlConnector"));
        let too_big = DeploymentSpec::pd(PdPlacement::Pack, rep(2, 2), rep(2, 4));
        assert!(too_big
            .validate(8)
            .unwrap_err()
            .to_string()
            .contains("pd-pack"));
        let spread = DeploymentSpec::pd(PdPlacement::Spread, rep(2, 2), rep(2, 4));
        assert!(spread.validate(8).is_ok());
        let spread_big = DeploymentSpec::pd(PdPlacement::Spread, rep(3, 4), rep(1, 4));
        assert!(spread_big.validate(8).is_err());
    }

    #[test]
    fn spec_keeps_its_flat_file_form() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Wrap {
            spec: DeploymentSpec,
        }
        let pd = "[spec]\nmode = \"pd-pack\"\nnixl_backend = \"libfabric\"\n\
                  model_id = \"m\"\nmodel_source = \"s\"\ngpu = \"h200\"\n\n\
                  [spec.prefill]\nnum = 1\ntp = 2\n\n[spec.decode]\nnum = 2\ntp = 4\n";
        let w: Wrap = toml::from_str(pd).unwrap();
        assert_eq!(
            w.spec.layout,
            Layout::Pd {
                placement: PdPlacement::Pack,
                prefill: rep(1, 2),
                decode: rep(2, 4)
            }
        );
        assert_eq!(toml::to_string_pretty(&w).unwrap(), pd);
        let colo = "[spec]\nmode = \"collocated\"\nnixl_backend = \"ucx\"\n\
                    model_id = \"gptoss\"\nmodel_source = \"openai/gpt-oss-120b\"\n\
                    gpu = \"h100\"\n\n[spec.collocated]\nnum = 4\ntp = 2\n";
        let w: Wrap = toml::from_str(colo).unwrap();
        assert_eq!(w.spec, DeploymentSpec::collocated(4, 2));
        assert_eq!(toml::to_string_pretty(&w).unwrap(), colo);
        let json = serde_json::to_value(&w.spec).unwrap();
        assert_eq!(json["mode"], "collocated");
        assert_eq!(json["collocated"]["tp"], 2);
        assert!(json.get("prefill").is_none());
        assert_eq!(
            serde_json::from_value::<DeploymentSpec>(json).unwrap(),
            w.spec
        );
    }

    #[test]
    fn inconsistent_spec_files_name_the_missing_group() {
        let cases = [
            ("pd-spread", "[prefill]\nnum = 1\ntp = 2\n", "[decode]"),
            ("pd-pack", "[collocated]\nnum = 1\ntp = 2\n", "[prefill]"),
            ("collocated", "[prefill]\nnum = 1\ntp = 2\n", "[collocated]"),
        ];
        for (mode, groups, want) in cases {
            let text =
                format!("mode = \"{mode}\"\nmodel_id = \"m\"\nmodel_source = \"s\"\n{groups}");
            let err = toml::from_str::<DeploymentSpec>(&text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want) && err.contains(mode), "{mode}: {err}");
        }
    }

    #[test]
    fn explicit_record_path_wins() {
        assert_eq!(
            record_path(Some(Path::new("x/dep.toml"))),
            PathBuf::from("x/dep.toml")
        );
        assert_eq!(record_path(None), default_record_path());
    }

    #[test]
    fn record_round_trips_as_toml() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".pd-lab/deployment.toml");
        let mut spec = DeploymentSpec::pd(PdPlacement::Spread, rep(1, 4), rep(1, 4));
        spec.nixl_backend = NixlBackend::Libfabric;
        let rec = DeploymentRecord {
            format_version: RECORD_FORMAT_VERSION,
            backend: ServingBackend::Sim,
            base_url: "http://127.0.0.1:8000".into(),
            served_model_name: "gptoss".into(),
            label: spec.label(),
            total_gpus: spec.total_gpus(),
            gpus_per_node: 8,
            nodes: vec!["sim-node-0".into(), "sim-node-1".into()],
            command: vec!["launch-gptoss".into(), "--mode".into(), "pd-spread".into()],
            tool_version: crate::VERSION.into(),
            created_at: now_rfc3339(),
            network: Some("efa-srd".into()),
            software: BTreeMap::from([("vllm".to_string(), "sim".to_string())]),
            env: BTreeMap::from([("UCX_TLS".to_string(), "all".to_string())]),
            spec,
            stop: StopHandle::Pid { pid: 1234 },
        };
        rec.write(&path).unwrap();
        let back = DeploymentRecord::read(&path).unwrap();
        assert_eq!(back, rec);
        assert!(
            DeploymentRecord::read_optional(&dir.path().join("nope.toml"))
                .unwrap()
                .is_none()
        );
        std::fs::write(&path, "backend = 3").unwrap();
        assert!(DeploymentRecord::read(&path)
            .unwrap_err()
            .to_string()
            .contains("deployment.toml"));
    }
}
