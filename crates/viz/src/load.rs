//! Result directories → experiments.
//!
//! Every `*.json` file of a directory except `manifest.json` is read as a result
//! (pd-lab files and plain `vllm bench serve` files alike); `*.requests.csv`,
//! `*.metrics.csv` and hidden files are not results. Repeated runs `P-<k>.json` become one
//! point (their aggregate `P.json`, or the mean when it is missing) with the runs kept for
//! confidence intervals. Unusable files (unreadable, no completed request, a negative or
//! NaN metric), missing or empty directories become warnings naming the path; the rest
//! is still used. Points with failed requests are kept, with a warning giving the count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pd_common::label::{parse_label, ParsedLabel};
use pd_common::manifest::ExperimentManifest;
use pd_common::naming::{
    parse_point_file_name, split_run_file_name, MANIFEST_FILE, REQUESTS_CSV_SUFFIX,
};
use pd_common::{BenchResult, SweepKind};

use crate::names;
use crate::repeats::{self, Recorded};
use crate::validate;

/// Suffix of a point's server-metrics series (`conc16.metrics.csv`).
pub use pd_common::server_metrics::METRICS_CSV_SUFFIX;

/// One sweep point of an experiment.
#[derive(Debug, Clone)]
pub struct Point {
    /// The file it was read from (for a point aggregated here from its runs, the
    /// aggregate's name, which does not exist).
    pub file: PathBuf,
    pub kind: SweepKind,
    /// Concurrency or request rate.
    pub value: f64,
    /// The result; for repeated runs, the means.
    pub result: BenchResult,
    /// The repeated runs (`P-<k>.json`, by k); empty for a single run.
    pub runs: Vec<BenchResult>,
    pub run_files: Vec<PathBuf>,
    /// `pd_lab.repeats` of an aggregate file.
    pub recorded: Option<Recorded>,
    /// Failed requests (over all runs) and all requests sent.
    pub failed: u64,
    pub requests: u64,
    /// `P.metrics.csv` (server metrics) when present.
    pub metrics_csv: Option<PathBuf>,
}

impl Point {
    /// A point of one run read from `file`.
    pub fn single(file: PathBuf, kind: SweepKind, value: f64, result: BenchResult) -> Self {
        let failed = result.failed.unwrap_or(0);
        let requests = result.completed + failed;
        let recorded = repeats::recorded(&result);
        Point {
            file,
            kind,
            value,
            result,
            runs: Vec::new(),
            run_files: Vec::new(),
            recorded,
            failed,
            requests,
            metrics_csv: None,
        }
    }

    /// Number of runs behind the point (1 for a single run).
    pub fn repeat_count(&self) -> usize {
        if self.runs.len() >= 2 {
            self.runs.len()
        } else {
            self.recorded.as_ref().map_or(1, |r| r.count.max(1))
        }
    }
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

/// Read, parse and check one result file; `None` (with a warning) when unusable.
fn read_result(path: &Path, warnings: &mut Vec<String>) -> Option<BenchResult> {
    let text = match pd_common::fsutil::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            warnings.push(format!("skipping {}", pd_common::diag::error_chain(&e)));
            return None;
        }
    };
    let (result, non_finite) = match validate::parse(&text) {
        Ok(r) => r,
        Err(e) => {
            warnings.push(format!("skipping {}: invalid JSON: {e}", path.display()));
            return None;
        }
    };
    if result.completed == 0 {
        warnings.push(format!(
            "skipping {}: no completed requests",
            path.display()
        ));
        return None;
    }
    if let Some(why) = validate::problem(&result, &non_finite) {
        warnings.push(format!(
            "skipping {}: {why}; a negative or NaN metric is a broken measurement",
            path.display()
        ));
        return None;
    }
    Some(result)
}

/// Its sweep coordinate, or `None` (with a warning) when it has none.
fn coordinate(
    path: &Path,
    result: &BenchResult,
    warnings: &mut Vec<String>,
) -> Option<(SweepKind, f64)> {
    let (kind, value) = result.sweep_point();
    if !value.is_finite() && kind == SweepKind::RequestRate {
        warnings.push(format!(
            "skipping {}: request rate is infinite and no concurrency limit is recorded, \
             so the point has no sweep coordinate",
            path.display()
        ));
        return None;
    }
    Some((kind, value))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `dir/<stem>.metrics.csv` for the point file `file` (`conc16.json`), else the first
/// run's series.
fn metrics_csv_of(file: &Path, run_files: &[PathBuf]) -> Option<PathBuf> {
    std::iter::once(file)
        .chain(run_files.iter().map(PathBuf::as_path))
        .find_map(|f| {
            let name = file_name(f);
            let stem = name.strip_suffix(".json")?;
            let csv = f.with_file_name(format!("{stem}{METRICS_CSV_SUFFIX}"));
            csv.is_file().then_some(csv)
        })
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
        .filter(|(name, _)| {
            !name.starts_with('.')
                && !name.ends_with(REQUESTS_CSV_SUFFIX)
                && name.ends_with(".json")
        })
        .collect();
    // Canonical point files first, so they win over stray copies with the same coordinate.
    files.sort_by(|a, b| {
        let ca = parse_point_file_name(&a.0).is_none();
        let cb = parse_point_file_name(&b.0).is_none();
        (ca, &a.0).cmp(&(cb, &b.0))
    });

    let mut manifest = None;
    let mut points: Vec<Point> = Vec::new();
    // Repeated runs by the name of their point file: (k, path, result).
    let mut runs: BTreeMap<String, Vec<(u32, PathBuf, BenchResult)>> = BTreeMap::new();
    for (name, path) in files {
        if name == MANIFEST_FILE {
            match ExperimentManifest::read(&path) {
                Ok(m) => manifest = Some(m),
                Err(e) => warnings.push(format!(
                    "ignoring unreadable manifest: {}",
                    pd_common::diag::error_chain(&e)
                )),
            }
            continue;
        }
        let Some(result) = read_result(&path, warnings) else {
            continue;
        };
        if let Some((base, k)) = split_run_file_name(&name) {
            runs.entry(base).or_default().push((k, path, result));
            continue;
        }
        let Some((kind, value)) = coordinate(&path, &result, warnings) else {
            continue;
        };
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
        points.push(Point::single(path, kind, value, result));
    }
    for (base, mut group) in runs {
        group.sort_by_key(|(k, _, _)| *k);
        let base_path = dir.join(&base);
        let existing = points.iter().position(|p| file_name(&p.file) == base);
        let coord = match existing {
            Some(i) => Some((points[i].kind, points[i].value)),
            None => {
                let (_, path, result) = &group[0];
                coordinate(path, result, warnings)
            }
        };
        let Some(coord) = coord else { continue };
        let mut kept: Vec<(PathBuf, BenchResult)> = Vec::new();
        for (_, path, result) in group {
            if result.sweep_point() != coord {
                let (k, v) = result.sweep_point();
                warnings.push(format!(
                    "{} records {k} {v}, not the {} {} of its point {}; ignored",
                    path.display(),
                    coord.0,
                    coord.1,
                    base
                ));
                continue;
            }
            kept.push((path, result));
        }
        if kept.is_empty() {
            continue;
        }
        let failed: u64 = kept.iter().map(|(_, r)| r.failed.unwrap_or(0)).sum();
        let requests: u64 = kept
            .iter()
            .map(|(_, r)| r.completed + r.failed.unwrap_or(0))
            .sum();
        let (run_files, run_results): (Vec<PathBuf>, Vec<BenchResult>) = kept.into_iter().unzip();
        match existing {
            Some(i) => {
                let p = &mut points[i];
                p.failed = failed;
                p.requests = requests;
                p.runs = run_results;
                p.run_files = run_files;
            }
            None => {
                if points.iter().any(|p| (p.kind, p.value) == coord) {
                    warnings.push(format!(
                        "the runs {} duplicate the {} {} point of another file; ignored",
                        base_path.display(),
                        coord.0,
                        coord.1
                    ));
                    continue;
                }
                let Some(agg) = repeats::aggregate(&run_results) else {
                    continue;
                };
                let mut p = Point::single(base_path, coord.0, coord.1, agg);
                p.failed = failed;
                p.requests = requests;
                p.runs = run_results;
                p.run_files = run_files;
                points.push(p);
            }
        }
    }
    for p in &mut points {
        p.metrics_csv = metrics_csv_of(&p.file, &p.run_files);
        if p.result.interrupted || p.runs.iter().any(|r| r.interrupted) {
            warnings.push(format!(
                "{} is a partial point (interrupted run): its metrics cover only the requests that finished",
                p.file.display()
            ));
        }
        if p.failed > 0 {
            warnings.push(format!(
                "{}: {} of {} requests failed; its metrics cover only the requests that \
                 succeeded (ringed in red in the plots)",
                p.file.display(),
                p.failed,
                p.requests
            ));
        }
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

/// The name of the folder holding `dir` (`bm_results/reference/x` → `reference`).
fn parent_name(dir: &Path) -> String {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    abs.parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Read all directories (in order), then give them display names.
pub fn load_experiments(dirs: &[PathBuf]) -> Loaded {
    let mut warnings = Vec::new();
    let mut experiments: Vec<Experiment> = dirs
        .iter()
        .filter_map(|d| load_experiment(d, &mut warnings))
        .collect();
    let dir_names: Vec<String> = experiments.iter().map(|e| e.dir_name.clone()).collect();
    let parents: Vec<String> = experiments.iter().map(|e| parent_name(&e.dir)).collect();
    let (display, workload) = names::display_names_in(&dir_names, &parents);
    for (e, n) in experiments.iter_mut().zip(display) {
        e.name = n;
    }
    Loaded {
        experiments,
        warnings,
        workload,
    }
}
