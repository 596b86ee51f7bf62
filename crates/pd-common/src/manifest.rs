//! The experiment manifest (`manifest.json`) of a result directory.
//!
//! It answers the methodology's reproducibility checklist: the exact benchmark
//! command, the deployment record (with the exact deployment command, hardware and
//! software versions), the workload and sweep values, the client host, the environment
//! variables that matter, and the list of points written so far.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::deployment::DeploymentRecord;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::workload::{SweepKind, Workload};

/// Format version written into every manifest.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// Environment variable name prefixes recorded in manifests and deployment records (an
/// allowlist: only variables known to shape a run are recorded).
pub const RECORDED_ENV_PREFIXES: [&str; 10] = [
    "UCX_", "NIXL_", "FI_", "VLLM_", "NCCL_", "RAY_", "PD_LAB_", "CUDA_", "TORCH_", "GLOO_",
];
/// Exact environment variable names also recorded.
pub const RECORDED_ENV_NAMES: [&str; 3] = ["LD_LIBRARY_PATH", "RUST_LOG", "OMP_NUM_THREADS"];

/// Environment variables that matter for reproducibility: the allowlist above, minus any
/// name that looks secret ([`crate::redact::is_secret_name`]: KEY, TOKEN, SECRET, PASSWORD,
/// PASSWD, AUTH, CREDENTIAL, COOKIE, …), with URL user-info in values redacted.
pub fn capture_env() -> BTreeMap<String, String> {
    capture_env_from(
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned()))),
    )
}

/// Whether an environment variable of this name is recorded.
pub fn is_recorded_env(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let wanted = RECORDED_ENV_PREFIXES.iter().any(|p| upper.starts_with(p))
        || RECORDED_ENV_NAMES.contains(&upper.as_str());
    wanted && !crate::redact::is_secret_name(&upper)
}

/// [`capture_env`] over an explicit list of variables.
pub fn capture_env_from(
    vars: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    vars.into_iter()
        .filter(|(k, _)| is_recorded_env(k))
        .map(|(k, v)| (k, crate::redact::redact_value(&v, &[])))
        .collect()
}

/// A deployment record made safe to copy into a manifest: its environment filtered like
/// [`capture_env`], URL user-info and secret-looking flag values redacted in its URL and
/// command.
pub fn sanitize_record(record: &DeploymentRecord) -> DeploymentRecord {
    let mut r = record.clone();
    r.base_url = crate::redact::redact_value(&r.base_url, &[]);
    r.command = crate::redact::redact_argv(&r.command, &[]);
    r.env = capture_env_from(std::mem::take(&mut r.env));
    if let crate::deployment::StopHandle::Ray { address, .. } = &mut r.stop {
        *address = crate::redact::redact_value(address, &[]);
    }
    r
}

/// The machine the client ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ClientHost {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub cpus: u32,
}

impl ClientHost {
    /// Describe the current machine (hostname passed in by the caller).
    pub fn current(hostname: String) -> Self {
        ClientHost {
            hostname,
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        }
    }
}

/// One point written into the directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointEntry {
    /// Result file name (`conc16.json`).
    pub file: String,
    /// Per-request CSV file name.
    pub requests_csv: String,
    pub sweep: SweepKind,
    pub value: f64,
    pub completed: u64,
    pub failed: u64,
    #[serde(default)]
    pub interrupted: bool,
    /// The exact command of the run that wrote this point.
    #[serde(default)]
    pub command: Vec<String>,
    pub finished_at: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentManifest {
    pub format_version: u32,
    pub exp_name: String,
    pub created_at: String,
    pub updated_at: String,
    /// Tool that wrote the directory and its version.
    pub tool: String,
    pub tool_version: String,
    /// The exact benchmark command (argv) of the latest run.
    pub command: Vec<String>,
    pub base_url: String,
    pub served_model_name: String,
    pub workload: Workload,
    pub sweep: SweepKind,
    pub sweep_values: Vec<f64>,
    /// The deployment record read at run time (None when run against a bare URL).
    #[serde(default)]
    pub deployment: Option<DeploymentRecord>,
    pub client_host: ClientHost,
    /// Software versions (client side, and server side when known).
    #[serde(default)]
    pub software: BTreeMap<String, String>,
    /// Environment variables that matter (see [`capture_env`]).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub points: Vec<PointEntry>,
    /// Anything else.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl ExperimentManifest {
    pub fn read(path: &Path) -> Result<Self> {
        let text = fsutil::read_to_string(path)?;
        serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// `Ok(None)` when the file does not exist.
    pub fn read_optional(path: &Path) -> Result<Option<Self>> {
        if path.exists() {
            Self::read(path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Write atomically (pretty JSON), not world-readable: a manifest records the client
    /// host, commands and environment ([`fsutil::MODE_RESTRICTED`]).
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        fsutil::write_atomic_restricted(path, text.as_bytes())
    }

    /// Add or replace the entry of a point (same file name).
    pub fn upsert_point(&mut self, entry: PointEntry) {
        match self.points.iter_mut().find(|p| p.file == entry.file) {
            Some(p) => *p = entry,
            None => self.points.push(entry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::BenchMode;

    #[test]
    fn env_capture_skips_secrets() {
        let vars = vec![
            ("UCX_TLS".to_string(), "tcp".to_string()),
            ("NIXL_LOG_LEVEL".to_string(), "debug".to_string()),
            ("HOME".to_string(), "/root".to_string()),
            ("VLLM_API_KEY".to_string(), "s3cret".to_string()),
            ("OPENAI_API_KEY".to_string(), "s3cret".to_string()),
            ("UCX_PASSWD".to_string(), "s3cret".to_string()),
            ("NIXL_AUTH_MODE".to_string(), "s3cret".to_string()),
            ("RAY_CREDENTIALS_FILE".to_string(), "s3cret".to_string()),
            ("MY_PASSWORD".to_string(), "s3cret".to_string()),
            (
                "RAY_ADDRESS".to_string(),
                "http://admin:s3cret@head:8265".to_string(),
            ),
            ("CUDA_VISIBLE_DEVICES".to_string(), "0,1".to_string()),
        ];
        let env = capture_env_from(vars);
        assert_eq!(
            env.keys().collect::<Vec<_>>(),
            vec![
                "CUDA_VISIBLE_DEVICES",
                "NIXL_LOG_LEVEL",
                "RAY_ADDRESS",
                "UCX_TLS"
            ]
        );
        assert_eq!(env["RAY_ADDRESS"], "http://***@head:8265");
        assert!(!format!("{env:?}").contains("s3cret"));
    }

    #[test]
    fn manifest_round_trip_and_upsert() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.json");
        let mut m = ExperimentManifest {
            format_version: MANIFEST_FORMAT_VERSION,
            exp_name: "e".into(),
            created_at: "t0".into(),
            updated_at: "t1".into(),
            tool: "run-bm".into(),
            tool_version: crate::VERSION.into(),
            command: vec!["run-bm".into(), "-e".into(), "e".into()],
            base_url: "http://127.0.0.1:8000".into(),
            served_model_name: "gptoss".into(),
            workload: Workload::new(100, 10, BenchMode::Mixed).unwrap(),
            sweep: SweepKind::Concurrency,
            sweep_values: vec![4.0, 8.0],
            deployment: None,
            client_host: ClientHost::current("host".into()),
            software: BTreeMap::new(),
            env: BTreeMap::new(),
            points: vec![],
            other: Map::new(),
        };
        let entry = PointEntry {
            file: "conc4.json".into(),
            requests_csv: "conc4.requests.csv".into(),
            sweep: SweepKind::Concurrency,
            value: 4.0,
            completed: 20,
            failed: 0,
            interrupted: false,
            command: vec![],
            finished_at: "t".into(),
        };
        m.upsert_point(entry.clone());
        m.upsert_point(PointEntry {
            completed: 19,
            failed: 1,
            ..entry
        });
        assert_eq!(m.points.len(), 1);
        m.write(&p).unwrap();
        assert_eq!(ExperimentManifest::read(&p).unwrap(), m);
    }
}
