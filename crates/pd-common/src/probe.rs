//! The NIXL transfer probe's result file (written by `launch-gptoss probe`, read by `viz
//! --probe`): one JSON document per probe run, one entry per measured configuration
//! (placement, NIXL backend, memory, P/D TP shape, block size and count). Documented field
//! by field in docs/FORMATS.md.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::deployment::NixlBackend;
use crate::error::{Error, Result};
use crate::fsutil;

/// Value of the `format` field.
pub const PROBE_FORMAT: &str = "pd-lab-nixl-probe";
/// Format version written (and the highest read).
pub const PROBE_FORMAT_VERSION: u32 = 1;

/// Where the two sides of a transfer run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// P and D ranks on one node (pd-pack).
    Pack,
    /// P ranks on one node, D ranks on another (pd-spread).
    Spread,
}

impl Placement {
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Pack => "pack",
            Placement::Spread => "spread",
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which memory the KV blocks live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeMemory {
    /// GPU memory (NIXL `VRAM`), as vLLM's KV cache on GPUs.
    Vram,
    /// Host memory (NIXL `DRAM`), as a CPU-only deployment's KV cache.
    Dram,
}

impl ProbeMemory {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeMemory::Vram => "vram",
            ProbeMemory::Dram => "dram",
        }
    }
}

impl fmt::Display for ProbeMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// p50 / min / max of the timed transfers (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TransferTimes {
    pub p50: f64,
    pub min: f64,
    pub max: f64,
}

/// What was asked for one configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// Identifier within the file (`c1`, `c2`, …).
    pub id: String,
    pub placement: Placement,
    pub nixl_backend: NixlBackend,
    pub memory: ProbeMemory,
    /// Prefill TP degree (P ranks).
    pub p_tp: u32,
    /// Decode TP degree (D ranks).
    pub d_tp: u32,
    /// Bytes of one KV block on one P rank.
    pub block_bytes: u64,
    /// Blocks per transfer.
    pub blocks: u32,
    /// Timed transfers (after the first one and the warm-up).
    pub iterations: u32,
}

impl ProbeConfig {
    /// Bytes moved by one transfer: every P rank's blocks, read by the D ranks.
    pub fn bytes_per_transfer(&self) -> u64 {
        self.block_bytes
            .saturating_mul(u64::from(self.blocks))
            .saturating_mul(u64::from(self.p_tp))
    }

    /// Short label: `spread ucx P1:D2 64KiB×256`.
    pub fn label(&self) -> String {
        format!(
            "{} {} P{}:D{} {}×{}",
            self.placement,
            self.nixl_backend,
            self.p_tp,
            self.d_tp,
            human_bytes(self.block_bytes),
            self.blocks
        )
    }
}

/// The figures of one configuration, as the probe job reports them and the result file
/// keeps them (flattened into both).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeFigures {
    /// Median-transfer bandwidth: `bytes_per_transfer / transfer_ms.p50`, in GB/s (1e9 B/s).
    #[serde(default)]
    pub bandwidth_gbps: Option<f64>,
    /// Median time of a one-block transfer (µs).
    #[serde(default)]
    pub latency_us: Option<f64>,
    /// Timed transfers of all blocks (ms; with several D ranks, the slowest rank's time).
    #[serde(default)]
    pub transfer_ms: Option<TransferTimes>,
    /// The very first transfer, connection set-up included (ms).
    #[serde(default)]
    pub first_transfer_ms: Option<f64>,
    /// Block slices compared with the source after the transfers.
    #[serde(default)]
    pub slices_checked: Option<u64>,
    /// Slices that differed from the source (any byte).
    #[serde(default)]
    pub corrupt_slices: Option<u64>,
    /// Of those, slices that arrived as all zeros.
    #[serde(default)]
    pub zero_slices: Option<u64>,
}

impl ProbeFigures {
    /// The figures without impossible values (NaN, infinite or negative times and rates),
    /// which a job that went wrong may print.
    pub fn sanitized(&self) -> Self {
        let ok = |x: f64| x.is_finite() && x >= 0.0;
        let finite = |v: Option<f64>| v.filter(|x| ok(*x));
        ProbeFigures {
            bandwidth_gbps: finite(self.bandwidth_gbps),
            latency_us: finite(self.latency_us),
            transfer_ms: self
                .transfer_ms
                .filter(|t| [t.p50, t.min, t.max].into_iter().all(ok)),
            first_transfer_ms: finite(self.first_transfer_ms),
            ..*self
        }
    }
}

/// One measured (or failed) configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    #[serde(flatten)]
    pub config: ProbeConfig,
    /// Node of the P ranks (Ray: the node IP; sim: none).
    #[serde(default)]
    pub p_node: Option<String>,
    /// Node of the D ranks.
    #[serde(default)]
    pub d_node: Option<String>,
    /// The link the figures describe: the simulator's link name (`nvlink`, `efa-srd`, `ib`,
    /// `tcp`, `custom`), or on Ray the UCX transports asked for (`UCX_TLS=…`), if any.
    #[serde(default)]
    pub link: Option<String>,
    /// What was measured (all absent when the configuration failed).
    #[serde(flatten)]
    pub figures: ProbeFigures,
    /// Why the configuration was not measured (then the figures are absent).
    #[serde(default)]
    pub error: Option<String>,
}

impl ProbeResult {
    /// A configuration that could not be measured.
    pub fn failed(config: ProbeConfig, error: impl Into<String>) -> Self {
        ProbeResult {
            config,
            p_node: None,
            d_node: None,
            link: None,
            figures: ProbeFigures::default(),
            error: Some(error.into()),
        }
    }

    /// Measured, and every checked slice arrived intact (the simulator checks nothing:
    /// its results count as intact).
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self.figures.bandwidth_gbps.is_some()
            && self.figures.corrupt_slices.unwrap_or(0) == 0
    }

    /// The data-integrity verdict in words.
    pub fn integrity(&self) -> String {
        match (
            self.figures.slices_checked,
            self.figures.corrupt_slices,
            self.figures.zero_slices,
        ) {
            (Some(n), Some(0), _) => format!("{n} slices intact"),
            (Some(n), Some(c), z) => format!(
                "CORRUPT: {c} of {n} slices differ ({} all zeros)",
                z.unwrap_or(0)
            ),
            _ => "not checked".to_string(),
        }
    }
}

/// Software and cluster facts of a probe run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeEnvironment {
    /// Dashboard address (Ray).
    #[serde(default)]
    pub dashboard: Option<String>,
    #[serde(default)]
    pub ray_version: Option<String>,
    /// NIXL version on the cluster (as the job found it).
    #[serde(default)]
    pub nixl_version: Option<String>,
    #[serde(default)]
    pub python_version: Option<String>,
    /// Alive nodes of the cluster (Ray).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Ray job submission id (Ray).
    #[serde(default)]
    pub job_id: Option<String>,
    /// Simulator GPU kind (sim).
    #[serde(default)]
    pub sim_gpu: Option<String>,
    /// Simulator network between nodes (sim).
    #[serde(default)]
    pub sim_network: Option<String>,
}

/// A probe result file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeFile {
    /// Always [`PROBE_FORMAT`].
    pub format: String,
    pub format_version: u32,
    pub tool_version: String,
    pub created_at: String,
    /// The command line of the probe.
    #[serde(default)]
    pub command: Vec<String>,
    /// `ray` or `sim`.
    pub backend: String,
    #[serde(default)]
    pub environment: ProbeEnvironment,
    pub results: Vec<ProbeResult>,
}

impl ProbeFile {
    /// A new file of `backend` results.
    pub fn new(backend: &str, command: Vec<String>, environment: ProbeEnvironment) -> Self {
        ProbeFile {
            format: PROBE_FORMAT.to_string(),
            format_version: PROBE_FORMAT_VERSION,
            tool_version: crate::VERSION.to_string(),
            created_at: crate::deployment::now_rfc3339(),
            command,
            backend: backend.to_string(),
            environment,
            results: Vec::new(),
        }
    }

    /// Parse and check a probe file's text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let f: ProbeFile = serde_json::from_str(text).map_err(|source| Error::Json {
            path: origin.to_path_buf(),
            source,
        })?;
        f.validate()
            .map_err(|m| Error::invalid("probe file", format!("{}: {m}", origin.display())))?;
        Ok(f)
    }

    /// Read and check a probe file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = fsutil::read_to_string(path)?;
        Self::parse(&text, path)
    }

    /// Write atomically (pretty JSON).
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        fsutil::write_atomic(path, text.as_bytes())
    }

    /// The format marker and version, and every figure finite and not negative.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.format != PROBE_FORMAT {
            return Err(format!(
                "not a probe result (format '{}', expected '{PROBE_FORMAT}')",
                self.format
            ));
        }
        if self.format_version == 0 || self.format_version > PROBE_FORMAT_VERSION {
            return Err(format!(
                "format version {} is not supported (this build reads up to {PROBE_FORMAT_VERSION})",
                self.format_version
            ));
        }
        for r in &self.results {
            let id = &r.config.id;
            let c = &r.config;
            if c.p_tp == 0 || c.d_tp == 0 || c.blocks == 0 || c.block_bytes == 0 {
                return Err(format!(
                    "{id}: TP degrees, blocks and block size must be at least 1"
                ));
            }
            let mut figures = vec![
                ("bandwidth_gbps", r.figures.bandwidth_gbps),
                ("latency_us", r.figures.latency_us),
                ("first_transfer_ms", r.figures.first_transfer_ms),
            ];
            if let Some(t) = r.figures.transfer_ms {
                figures.extend([
                    ("transfer_ms.p50", Some(t.p50)),
                    ("transfer_ms.min", Some(t.min)),
                    ("transfer_ms.max", Some(t.max)),
                ]);
            }
            for (name, v) in figures {
                if let Some(v) = v {
                    if !v.is_finite() || v < 0.0 {
                        return Err(format!(
                            "{id}: {name} must be a finite number >= 0, got {v}"
                        ));
                    }
                }
            }
            if r.error.is_none() && r.figures.bandwidth_gbps.is_none() {
                return Err(format!("{id}: neither a bandwidth nor an error"));
            }
        }
        Ok(())
    }
}

/// `65536` → `64KiB`, `1048576` → `1MiB`, `1000` → `1000B`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, size) in UNITS {
        if b >= size && b.is_multiple_of(size) {
            return format!("{}{name}", b / size);
        }
    }
    format!("{b}B")
}

/// Parse a byte count: `65536`, `64KiB`, `64k`, `1MiB`, `1m`, `2GiB` (binary units).
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        Error::invalid(
            "byte count",
            format!("'{s}' (expected e.g. 65536, 64KiB, 1MiB)"),
        )
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        other => {
            return Err(Error::invalid(
                "byte count",
                format!("'{s}': unknown unit '{other}' (use KiB, MiB or GiB)"),
            ))
        }
    };
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| Error::invalid("byte count", format!("'{s}' must be between 1 and 2^64-1")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ProbeConfig {
        ProbeConfig {
            id: "c1".into(),
            placement: Placement::Spread,
            nixl_backend: NixlBackend::Ucx,
            memory: ProbeMemory::Dram,
            p_tp: 1,
            d_tp: 2,
            block_bytes: 65536,
            blocks: 256,
            iterations: 10,
        }
    }

    fn measured() -> ProbeResult {
        ProbeResult {
            p_node: Some("127.0.0.2".into()),
            d_node: Some("127.0.0.3".into()),
            link: Some("UCX_TLS=tcp".into()),
            figures: ProbeFigures {
                bandwidth_gbps: Some(0.7),
                latency_us: Some(47.0),
                transfer_ms: Some(TransferTimes {
                    p50: 24.0,
                    min: 9.0,
                    max: 51.0,
                }),
                first_transfer_ms: Some(150.0),
                slices_checked: Some(512),
                corrupt_slices: Some(0),
                zero_slices: Some(0),
            },
            ..ProbeResult::failed(config(), "")
        }
        .with_error(None)
    }

    impl ProbeResult {
        fn with_error(mut self, e: Option<&str>) -> Self {
            self.error = e.map(str::to_string);
            self
        }
    }

    #[test]
    fn round_trips_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        let mut f = ProbeFile::new(
            "ray",
            vec!["launch-gptoss".into(), "probe".into()],
            ProbeEnvironment::default(),
        );
        f.results.push(measured());
        f.results.push(ProbeResult::failed(
            ProbeConfig {
                nixl_backend: NixlBackend::Libfabric,
                id: "c2".into(),
                ..config()
            },
            "NIXL backend LIBFABRIC is not available",
        ));
        f.write(&path).unwrap();
        let back = ProbeFile::read(&path).unwrap();
        assert_eq!(back, f);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"placement\": \"spread\""), "{text}");
        assert!(text.contains("\"nixl_backend\": \"libfabric\""), "{text}");
        assert_eq!(back.results[0].config.label(), "spread ucx P1:D2 64KiB×256");
        assert_eq!(back.results[0].config.bytes_per_transfer(), 65536 * 256);
        assert!(back.results[0].ok());
        assert!(!back.results[1].ok());
        assert_eq!(back.results[0].integrity(), "512 slices intact");
    }

    #[test]
    fn rejects_foreign_and_broken_files() {
        let p = Path::new("x.json");
        let mut f = ProbeFile::new("sim", vec![], ProbeEnvironment::default());
        f.results.push(measured());
        let ok = serde_json::to_string(&f).unwrap();
        assert!(ProbeFile::parse(&ok, p).is_ok());
        let e = ProbeFile::parse(&ok.replace(PROBE_FORMAT, "other"), p).unwrap_err();
        assert!(e.to_string().contains("not a probe result"), "{e}");
        let e = ProbeFile::parse(
            &ok.replace("\"format_version\":1", "\"format_version\":9"),
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");
        let e = ProbeFile::parse(
            &ok.replace("\"bandwidth_gbps\":0.7", "\"bandwidth_gbps\":-1.0"),
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("bandwidth_gbps"), "{e}");
        let e = ProbeFile::parse(
            &ok.replace("\"bandwidth_gbps\":0.7", "\"bandwidth_gbps\":null"),
            p,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("neither a bandwidth nor an error"),
            "{e}"
        );
        assert!(ProbeFile::parse("{", p).is_err());
        let mut bad = measured();
        bad.figures.corrupt_slices = Some(3);
        bad.figures.zero_slices = Some(3);
        assert!(!bad.ok());
        assert_eq!(
            bad.integrity(),
            "CORRUPT: 3 of 512 slices differ (3 all zeros)"
        );
    }

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("65536").unwrap(), 65536);
        assert_eq!(parse_bytes("64KiB").unwrap(), 65536);
        assert_eq!(parse_bytes("64k").unwrap(), 65536);
        assert_eq!(parse_bytes(" 2MiB ").unwrap(), 2 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        for bad in [
            "",
            "0",
            "x",
            "12 parsecs",
            "99999999999999999999",
            "18446744073709551615GiB",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert_eq!(human_bytes(65536), "64KiB");
        assert_eq!(human_bytes(3 << 20), "3MiB");
        assert_eq!(human_bytes(1000), "1000B");
        assert_eq!(human_bytes(1536), "1536B");
    }
}
