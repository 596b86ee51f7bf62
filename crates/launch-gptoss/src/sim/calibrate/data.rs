//! Real results to calibrate against: every result directory under the `--real-dir`
//! roots, its deployment (from the name, [`pd_common::label::parse_label`]), its workload
//! ([`pd_common::naming::parse_result_dir_name`]) and its sweep points (from each file's
//! content: request rate, concurrency cap, number of prompts; the file name is only a
//! cross-check). Directories holding byte-identical files are counted once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pd_common::deployment::{DeployMode, DeploymentSpec, GpuKind, Layout};
use pd_common::label::{parse_label, ParsedLabel};
use pd_common::naming::{parse_point_name, parse_result_dir_name, MANIFEST_FILE};
use pd_common::result::BenchResult;
use pd_common::workload::{BenchMode, SweepKind, Workload};

use crate::sim::engine::NetworkKind;

/// `max_model_len` of the study's launcher.
pub const DEFAULT_MAX_MODEL_LEN: u32 = 16000;

/// The `max_model_len` a user sets for a workload: the launcher's 16000, raised to the
/// next multiple of 1024 that holds the prompt and the output when they are longer.
pub fn max_model_len_for(input_len: u32, output_len: u32) -> u32 {
    let need = input_len.saturating_add(output_len);
    if need <= DEFAULT_MAX_MODEL_LEN {
        DEFAULT_MAX_MODEL_LEN
    } else {
        need.div_ceil(1024).saturating_mul(1024)
    }
}

/// One real sweep point.
#[derive(Debug, Clone)]
pub struct RealPoint {
    pub file_name: String,
    pub kind: SweepKind,
    /// Concurrency, or request rate.
    pub value: f64,
    /// Request rate (`inf` for the closed loop).
    pub rate: f64,
    pub max_concurrency: Option<u32>,
    pub num_prompts: u32,
    pub input_len: u32,
    pub output_len: u32,
    pub result: BenchResult,
}

impl RealPoint {
    /// Short display of the coordinate: `C=16`, `R=2 (cap 64)`.
    pub fn coordinate(&self) -> String {
        match (self.kind, self.max_concurrency) {
            (SweepKind::Concurrency, _) => format!("C={}", self.value),
            (SweepKind::RequestRate, Some(c)) => format!("R={} cap {c}", self.value),
            (SweepKind::RequestRate, None) => format!("R={}", self.value),
        }
    }
}

/// Network of cross-node KV transfers from the name's words: `tcp` → TCP; `ib` →
/// InfiniBand; `srd`/`efa` → EFA-SRD; none: EFA-SRD on H100 (the study's p5 nodes),
/// InfiniBand on H200 (its H200 cluster).
pub fn network_from_label(label: &ParsedLabel, gpu: GpuKind) -> NetworkKind {
    let has = |t: &str| label.network.iter().any(|x| x == t);
    if has("tcp") {
        NetworkKind::Tcp
    } else if has("ib") {
        NetworkKind::Ib
    } else if has("srd") || has("efa") || gpu != GpuKind::H200 {
        NetworkKind::EfaSrd
    } else {
        NetworkKind::Ib
    }
}

/// One real result directory.
#[derive(Debug, Clone)]
pub struct RealConfig {
    pub name: String,
    pub dir: PathBuf,
    pub label: ParsedLabel,
    pub workload: Workload,
    pub gpu: GpuKind,
    pub spec: DeploymentSpec,
    pub network: NetworkKind,
    /// Points in the order the study ran them (ascending coordinate).
    pub points: Vec<RealPoint>,
    /// `Some(original)` when the files are byte-identical to an earlier directory's.
    pub duplicate_of: Option<String>,
}

impl RealConfig {
    pub fn counted(&self) -> bool {
        self.duplicate_of.is_none()
    }
    /// `max_model_len` of this deployment (see [`max_model_len_for`]).
    pub fn max_model_len(&self) -> u32 {
        let (i, o) = self
            .points
            .iter()
            .map(|p| (p.input_len, p.output_len))
            .max()
            .unwrap_or((self.workload.itl, self.workload.output_len()));
        max_model_len_for(i, o)
    }
}

/// What was found under the roots: usable configurations and the directories skipped
/// (with the reason).
#[derive(Debug, Clone, Default)]
pub struct RealSet {
    pub configs: Vec<RealConfig>,
    pub skipped: Vec<(String, String)>,
    pub notes: Vec<String>,
}

impl RealSet {
    /// Points found (duplicates once).
    pub fn points_found(&self) -> usize {
        self.configs
            .iter()
            .filter(|c| c.counted())
            .map(|c| c.points.len())
            .sum()
    }
}

fn is_result_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()).any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                parse_point_name(&n).is_some()
            })
        })
        .unwrap_or(false)
}

/// The result directories under a root: the root itself when it holds point files,
/// else its sub-directories (sorted).
pub fn result_dirs(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    if is_result_dir(root) {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Read one directory's points; `Err` with the reason when it has none usable.
fn read_points(
    dir: &Path,
    workload: &Workload,
    notes: &mut Vec<String>,
) -> Result<(Vec<RealPoint>, Vec<u8>), String> {
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read: {e}"))?
        .filter_map(|e| e.ok())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, p)| {
            n.ends_with(".json") && n != MANIFEST_FILE && !n.starts_with('.') && p.is_file()
        })
        .collect();
    files.sort();
    let mut fingerprint = Vec::new();
    let mut points = Vec::new();
    for (name, path) in files {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                notes.push(format!("{}: unreadable ({e}); skipped", path.display()));
                continue;
            }
        };
        fingerprint.extend_from_slice(name.as_bytes());
        fingerprint.extend_from_slice(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let result = match BenchResult::from_json_str(&text, &path) {
            Ok(r) => r,
            Err(e) => {
                notes.push(format!("{e}; skipped"));
                continue;
            }
        };
        if result.completed == 0 {
            notes.push(format!("{}: no completed request; skipped", path.display()));
            continue;
        }
        let (kind, value) = result.sweep_point();
        let rate = if kind == SweepKind::RequestRate {
            value
        } else {
            f64::INFINITY
        };
        let max_concurrency = result
            .max_concurrency
            .filter(|c| *c > 0 && *c < 1_000_000)
            .and_then(|c| u32::try_from(c).ok());
        if let Some(p) = parse_point_name(&name) {
            if (p.kind, p.value) != (kind, value)
                || (p.max_concurrency.is_some()
                    && p.max_concurrency != max_concurrency.map(u64::from))
            {
                notes.push(format!(
                    "{}: the file name and the file disagree on the sweep point; using the file",
                    path.display()
                ));
            }
        }
        // lengths from the file (what was measured); the name is the fallback
        let per = |total: u64| (total as f64 / result.completed as f64).round() as u32;
        let input_len = if result.total_input_tokens > 0 {
            per(result.total_input_tokens)
        } else {
            workload.itl
        };
        let output_len = if result.total_output_tokens > 0 {
            per(result.total_output_tokens)
        } else {
            workload.output_len()
        };
        if input_len != workload.itl || output_len != workload.output_len() {
            notes.push(format!(
                "{}: {input_len} → {output_len} tokens per request measured, the name says {} → {}; simulating what was measured",
                path.display(),
                workload.itl,
                workload.output_len()
            ));
        }
        points.push(RealPoint {
            file_name: name,
            kind,
            value,
            rate,
            max_concurrency,
            num_prompts: u32::try_from(result.num_prompts).unwrap_or(u32::MAX),
            input_len: input_len.max(1),
            output_len: output_len.max(1),
            result,
        });
    }
    if points.is_empty() {
        return Err("no usable result file (conc<C>.json, conc<C>_rr<R>.json, rr<R>.json)".into());
    }
    points.sort_by(|a, b| {
        let k = |p: &RealPoint| (p.kind == SweepKind::RequestRate, p.value);
        k(a).partial_cmp(&k(b)).unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok((points, fingerprint))
}

/// Load every result directory under the roots.
pub fn load(roots: &[PathBuf]) -> std::io::Result<RealSet> {
    let mut set = RealSet::default();
    let mut seen: HashMap<Vec<u8>, String> = HashMap::new();
    for root in roots {
        let dirs = result_dirs(root).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("reading real results directory {}: {e}", root.display()),
            )
        })?;
        for dir in dirs {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| dir.display().to_string());
            let label = match parse_label(&name) {
                Ok(l) => l,
                Err(e) => {
                    set.skipped.push((name, format!("{e}")));
                    continue;
                }
            };
            let workload = match parse_result_dir_name(&name) {
                Some(d) => d.workload(),
                None => {
                    set.skipped
                        .push((name, "no itl<N>_otl<N> workload in the name".into()));
                    continue;
                }
            };
            let (points, fingerprint) = match read_points(&dir, &workload, &mut set.notes) {
                Ok(p) => p,
                Err(e) => {
                    set.skipped.push((name, e));
                    continue;
                }
            };
            let duplicate_of = seen.get(&fingerprint).cloned();
            match &duplicate_of {
                Some(orig) => set.notes.push(format!(
                    "{name} holds the same files as {orig}: shown, counted once"
                )),
                None => {
                    seen.insert(fingerprint, name.clone());
                }
            }
            let gpu = label.gpu.unwrap_or(GpuKind::H100);
            let layout =
                Layout::from_parts(label.mode, label.collocated, label.prefill, label.decode);
            let mut spec = match layout {
                Ok(layout) => DeploymentSpec::new(layout),
                Err(_) => {
                    set.skipped.push((name, "incomplete layout".into()));
                    continue;
                }
            };
            spec.gpu = gpu;
            if let Some(b) = label.nixl_backend {
                spec.nixl_backend = b;
            }
            let network = network_from_label(&label, gpu);
            set.configs.push(RealConfig {
                name,
                dir,
                workload,
                gpu,
                spec,
                network,
                label,
                points,
                duplicate_of,
            });
        }
    }
    Ok(set)
}

/// Categories a point belongs to, for the per-category errors.
pub fn categories(cfg: &RealConfig, p: &RealPoint) -> Vec<&'static str> {
    let mut out = vec![match cfg.spec.mode() {
        DeployMode::Collocated => "collocated",
        DeployMode::PdPack => "PD pack",
        DeployMode::PdSpread => "PD spread",
    }];
    if p.kind == SweepKind::RequestRate {
        out.push("rate points");
    }
    match cfg.workload.mode {
        BenchMode::DecodeOnly => out.push("decode-only"),
        BenchMode::PrefillOnly => out.push("prefill-only"),
        BenchMode::Mixed if p.output_len <= 1 => out.push("prefill-only"),
        BenchMode::Mixed => {}
    }
    if p.input_len.saturating_add(p.output_len) > DEFAULT_MAX_MODEL_LEN {
        out.push("long input");
    }
    if cfg.label.expert_parallel {
        out.push("expert parallel");
    }
    if cfg.label.groups.iter().any(|g| g.tp == 1) {
        out.push("TP1");
    }
    if cfg.gpu == GpuKind::H200 {
        out.push("H200");
    }
    out
}

/// The order categories are reported in.
pub const CATEGORY_ORDER: [&str; 10] = [
    "collocated",
    "PD pack",
    "PD spread",
    "rate points",
    "decode-only",
    "prefill-only",
    "long input",
    "expert parallel",
    "TP1",
    "H200",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_model_len_follows_the_workload() {
        assert_eq!(max_model_len_for(5000, 250), 16000);
        assert_eq!(max_model_len_for(15750, 250), 16000);
        assert_eq!(max_model_len_for(20000, 250), 20480);
        assert_eq!(max_model_len_for(50000, 250), 51200);
        assert_eq!(max_model_len_for(u32::MAX, 1), u32::MAX);
    }
}
