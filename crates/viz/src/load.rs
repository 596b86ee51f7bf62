//! Result directories → experiments.
//!
//! Every `*.json` file of a directory except `manifest.json` is read as a result
//! (pd-lab files and plain `vllm bench serve` files alike); `*.requests.csv` and hidden
//! files are ignored. Unusable files, missing or empty directories become warnings
//! naming the path; the rest is still used.

use std::path::{Path, PathBuf};

use pd_common::label::{parse_label, ParsedLabel};
use pd_common::manifest::ExperimentManifest;
use pd_common::naming::{parse_point_file_name, MANIFEST_FILE, REQUESTS_CSV_SUFFIX};
use pd_common::{BenchResult, SweepKind};

use crate::names;

/// One sweep point of an experiment.
#[derive(Debug, Clone)]
pub struct Point {
    /// The file it was read from.
    pub file: PathBuf,
    pub kind: SweepKind,
    /// Concurrency or request rate.
    pub value: f64,
    pub result: BenchResult,
}

/// Where an experiment's GPU count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuSource {
    /// `pd_lab.total_gpus` of the result files.
    ResultFile,
    /// The deployment record in `manifest.json`.
    Manifest,
    /// The configuration label in the directory name.
    DirName,
    /// Not known: the experiment is shown unnormalised.
    Unknown,
}

impl GpuSource {
    pub fn describe(self) -> &'static str {
        match self {
            GpuSource::ResultFile => "result files",
            GpuSource::Manifest => "manifest deployment record",
            GpuSource::DirName => "directory name",
            GpuSource::Unknown => "unknown",
        }
    }
}

/// One result directory.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub dir: PathBuf,
    /// Basename of the directory.
    pub dir_name: String,
    /// Name shown in legends and table headers.
    pub name: String,
    /// Points sorted by sweep kind, then value.
    pub points: Vec<Point>,
    pub total_gpus: Option<u32>,
    pub gpu_source: GpuSource,
    pub manifest: Option<ExperimentManifest>,
    /// What the directory name says about the deployment (if it parses).
    pub label: Option<ParsedLabel>,
}

impl Experiment {
    /// Normalisation factor `gpus_per_node / total_gpus`, `None` when the GPU count is unknown.
    pub fn norm_factor(&self, gpus_per_node: u32) -> Option<f64> {
        self.total_gpus
            .filter(|g| *g > 0)
            .map(|g| f64::from(gpus_per_node) / f64::from(g))
    }

    /// The sweep kinds present.
    pub fn kinds(&self) -> Vec<SweepKind> {
        let mut k: Vec<SweepKind> = self.points.iter().map(|p| p.kind).collect();
        k.dedup();
        k
    }
}

/// The experiments read, the warnings met, and the shared workload of the names.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub experiments: Vec<Experiment>,
    pub warnings: Vec<String>,
    /// `ITL 5000, OTL 250, mixed` when all directory names share it.
    pub workload: Option<String>,
}

fn kind_order(k: SweepKind) -> u8 {
    match k {
        SweepKind::Concurrency => 0,
        SweepKind::RequestRate => 1,
    }
}

/// Basename of a directory path (`.`/`..` resolved through the absolute path).
pub fn dir_basename(dir: &Path) -> String {
    let named = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..");
    named
        .or_else(|| {
            std::fs::canonicalize(dir)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        })
        .unwrap_or_else(|| dir.display().to_string())
}

/// Read one directory; `None` (with a warning) when it has no usable point.
pub fn load_experiment(dir: &Path, warnings: &mut Vec<String>) -> Option<Experiment> {
    if !dir.exists() {
        warnings.push(format!(
            "result directory {} does not exist; skipped",
            dir.display()
        ));
        return None;
    }
    if !dir.is_dir() {
        warnings.push(format!("{} is not a directory; skipped", dir.display()));
        return None;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            warnings.push(format!("cannot read {}: {e}; skipped", dir.display()));
            return None;
        }
    };
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| !t.is_dir()).unwrap_or(false))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    // Canonical point files first, so they win over stray copies with the same coordinate.
    files.sort_by(|a, b| {
        let ca = parse_point_file_name(&a.0).is_none();
        let cb = parse_point_file_name(&b.0).is_none();
        (ca, &a.0).cmp(&(cb, &b.0))
    });

    let mut manifest = None;
    let mut points: Vec<Point> = Vec::new();
    for (name, path) in files {
        if name.starts_with('.') || name.ends_with(REQUESTS_CSV_SUFFIX) || !name.ends_with(".json")
        {
            continue;
        }
        if name == MANIFEST_FILE {
            match ExperimentManifest::read(&path) {
                Ok(m) => manifest = Some(m),
                Err(e) => warnings.push(format!("ignoring unreadable manifest: {e}")),
            }
            continue;
        }
        let result = match BenchResult::read(&path) {
            Ok(r) => r,
            Err(e) => {
                warnings.push(format!("skipping {e}"));
                continue;
            }
        };
        if result.completed == 0 {
            warnings.push(format!(
                "skipping {}: no completed requests",
                path.display()
            ));
            continue;
        }
        let (kind, value) = result.sweep_point();
        if !value.is_finite() && kind == SweepKind::RequestRate {
            warnings.push(format!(
                "skipping {}: request rate is infinite and no concurrency limit is recorded, \
                 so the point has no sweep coordinate",
                path.display()
            ));
            continue;
        }
        if let Some((fk, fv)) = parse_point_file_name(&name) {
            if (fk, fv) != (kind, value) {
                warnings.push(format!(
                    "{}: file name says {} {} but the file records {} {}; using the file's value",
                    path.display(),
                    fk,
                    fv,
                    kind,
                    value
                ));
            }
        }
        if result.interrupted {
            warnings.push(format!(
                "{} is a partial point (interrupted run): its metrics cover only the requests that finished",
                path.display()
            ));
        }
        if let Some(dup) = points.iter().find(|p| p.kind == kind && p.value == value) {
            warnings.push(format!(
                "{} duplicates the {} {} point of {}; ignored",
                path.display(),
                kind,
                value,
                dup.file.display()
            ));
            continue;
        }
        points.push(Point {
            file: path,
            kind,
            value,
            result,
        });
    }
    if points.is_empty() {
        warnings.push(format!(
            "no usable result files (conc<N>.json / rr<R>.json) in {}; skipped",
            dir.display()
        ));
        return None;
    }
    points.sort_by(|a, b| {
        (kind_order(a.kind), a.value)
            .partial_cmp(&(kind_order(b.kind), b.value))
            .unwrap_or(std::cmp::Ordering::Equal)
    });

    let dir_name = dir_basename(dir);
    let label = parse_label(&dir_name).ok();
    let (total_gpus, gpu_source) = resolve_gpus(dir, &points, manifest.as_ref(), &label, warnings);
    Some(Experiment {
        dir: dir.to_path_buf(),
        name: dir_name.clone(),
        dir_name,
        points,
        total_gpus,
        gpu_source,
        manifest,
        label,
    })
}

fn resolve_gpus(
    dir: &Path,
    points: &[Point],
    manifest: Option<&ExperimentManifest>,
    label: &Option<ParsedLabel>,
    warnings: &mut Vec<String>,
) -> (Option<u32>, GpuSource) {
    let mut recorded = points
        .iter()
        .filter_map(|p| p.result.total_gpus().filter(|g| *g > 0).map(|g| (g, p)));
    if let Some((g, _)) = recorded.next() {
        if let Some((other, p)) = recorded.find(|(o, _)| *o != g) {
            warnings.push(format!(
                "{}: pd_lab.total_gpus is {other}, other points of {} say {g}; using {g}",
                p.file.display(),
                dir.display()
            ));
        }
        return (Some(g), GpuSource::ResultFile);
    }
    if let Some(g) = manifest
        .and_then(|m| m.deployment.as_ref())
        .map(|d| d.total_gpus)
        .filter(|g| *g > 0)
    {
        return (Some(g), GpuSource::Manifest);
    }
    if let Some(l) = label {
        return (Some(l.total_gpus), GpuSource::DirName);
    }
    warnings.push(format!(
        "GPU count of {} is unknown (no pd_lab.total_gpus in its results, no deployment in a \
         manifest, no configuration like 4xtp2 or p1xtp2-d2xtp2 in its name): shown unnormalised",
        dir.display()
    ));
    (None, GpuSource::Unknown)
}

/// Read all directories (in order), then give them display names.
pub fn load_experiments(dirs: &[PathBuf]) -> Loaded {
    let mut warnings = Vec::new();
    let mut experiments: Vec<Experiment> = dirs
        .iter()
        .filter_map(|d| load_experiment(d, &mut warnings))
        .collect();
    let dir_names: Vec<String> = experiments.iter().map(|e| e.dir_name.clone()).collect();
    let (display, workload) = names::display_names(&dir_names);
    for (e, n) in experiments.iter_mut().zip(display) {
        e.name = n;
    }
    Loaded {
        experiments,
        warnings,
        workload,
    }
}
