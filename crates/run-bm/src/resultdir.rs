//! The result directory before and during a sweep: nothing in it is ever silently lost.
//!
//! * It must be writable before anything is sent (checked with a real file).
//! * A corrupt `manifest.json` is kept aside (`manifest.json.corrupt-<time>`) and a new
//!   one is started, with a warning.
//! * It may already hold results. They belong to the same experiment when their
//!   deployment (label, backend, GPUs — or, without a deployment record, the endpoint),
//!   served model, workload and dataset (name, and the file's SHA-256 for sharegpt/custom)
//!   are ours. Results of anything else are never mixed with
//!   ours: the run is refused (exit 2) unless `--overwrite`, which first moves every old
//!   result file into `<dir>/.replaced-<time>/`.
//! * A point that is run again replaces its old files only after moving them into the
//!   same `.replaced-<time>/` directory, and says so.
//! * `--resume` skips a point only when its file is readable, not interrupted and has at
//!   least one successful request.

use std::path::{Path, PathBuf};

use pd_common::naming::MANIFEST_FILE;
use pd_common::{BenchResult, ExperimentManifest, ServingBackend, Workload};

use crate::config::{PointSpec, RunConfig};
use crate::progress::note;

/// Why the directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("the result directory {} is not writable (checked before sending anything)", dir.display())]
    NotWritable {
        dir: PathBuf,
        #[source]
        source: Box<pd_common::Error>,
    },
    /// Refused: results of something else are there (exit 2).
    #[error("{0}")]
    Conflict(String),
    #[error("cannot move old results aside")]
    Backup(#[source] Box<pd_common::Error>),
}

/// What makes results comparable: the same deployment, model and workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub deployment_label: Option<String>,
    pub backend: Option<ServingBackend>,
    pub total_gpus: Option<u32>,
    pub base_url: String,
    pub served_model: String,
    pub workload: Option<Workload>,
    /// Dataset name and, for file datasets, the file's SHA-256 (`None` in results written
    /// before datasets were recorded: not compared).
    pub dataset: Option<String>,
}

/// `name` or `name sha256:<hash>` of a recorded dataset entry.
fn dataset_key(v: Option<&serde_json::Value>) -> Option<String> {
    let v = v?;
    let name = v.get("name")?.as_str()?;
    Some(match v.get("sha256").and_then(|h| h.as_str()) {
        Some(h) => format!("{name} sha256:{h}"),
        None => name.to_string(),
    })
}

impl Identity {
    pub fn of_config(cfg: &RunConfig) -> Self {
        let r = cfg.record.as_ref();
        Identity {
            deployment_label: r.map(|r| r.label.clone()),
            backend: r.map(|r| r.backend),
            total_gpus: r.map(|r| r.total_gpus),
            base_url: cfg.base_url.clone(),
            served_model: cfg.served_model.clone(),
            workload: Some(cfg.workload),
            dataset: dataset_key(Some(&cfg.dataset.record.to_json())),
        }
    }

    pub fn of_manifest(m: &ExperimentManifest) -> Self {
        let r = m.deployment.as_ref();
        Identity {
            deployment_label: r.map(|r| r.label.clone()),
            backend: r.map(|r| r.backend),
            total_gpus: r.map(|r| r.total_gpus),
            base_url: m.base_url.clone(),
            served_model: m.served_model_name.clone(),
            workload: Some(m.workload),
            dataset: dataset_key(m.other.get("dataset")),
        }
    }

    /// From a point written by run-bm (`None` for files of other tools).
    pub fn of_result(r: &BenchResult) -> Option<Self> {
        let x = r.pd_lab.as_ref().filter(|x| x.tool == "run-bm")?;
        let s = |k: &str| {
            x.other
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        Some(Identity {
            deployment_label: x.deployment_label.clone(),
            backend: x.serving_backend,
            total_gpus: x.total_gpus,
            base_url: s("base_url"),
            served_model: s("served_model_name"),
            workload: x.workload,
            dataset: dataset_key(x.other.get("dataset")),
        })
    }

    /// What differs between `self` (the old results) and `new`.
    pub fn differences(&self, new: &Identity) -> Vec<String> {
        let mut d = Vec::new();
        let show = |l: &Option<String>| l.clone().unwrap_or_else(|| "none (bare URL)".into());
        if self.deployment_label != new.deployment_label {
            d.push(format!(
                "deployment {} (now {})",
                show(&self.deployment_label),
                show(&new.deployment_label)
            ));
        } else if self.deployment_label.is_some() {
            if self.backend != new.backend {
                let b = |b: Option<ServingBackend>| b.map_or("?".into(), |b| b.to_string());
                d.push(format!(
                    "serving backend {} (now {})",
                    b(self.backend),
                    b(new.backend)
                ));
            }
            if self.total_gpus != new.total_gpus {
                let g = |g: Option<u32>| g.map_or("?".into(), |g| g.to_string());
                d.push(format!(
                    "{} GPUs (now {})",
                    g(self.total_gpus),
                    g(new.total_gpus)
                ));
            }
        } else if !self.base_url.is_empty() && !same_url(&self.base_url, &new.base_url) {
            d.push(format!(
                "endpoint {} (now {})",
                pd_common::url::redact_userinfo(&self.base_url),
                new.base_url
            ));
        }
        if !self.served_model.is_empty() && self.served_model != new.served_model {
            d.push(format!(
                "served model {} (now {})",
                self.served_model, new.served_model
            ));
        }
        if let (Some(a), Some(b)) = (self.workload, new.workload) {
            if a != b {
                d.push(format!(
                    "workload ITL {} OTL {} {} (now ITL {} OTL {} {})",
                    a.itl, a.otl, a.mode, b.itl, b.otl, b.mode
                ));
            }
        }
        if let (Some(a), Some(b)) = (&self.dataset, &new.dataset) {
            if a != b {
                d.push(format!("dataset {a} (now {b})"));
            }
        }
        d
    }
}

fn same_url(a: &str, b: &str) -> bool {
    use pd_common::url::BaseUrl;
    match (BaseUrl::parse(a, 80), BaseUrl::parse(b, 80)) {
        (Ok(x), Ok(y)) => x.same_endpoint(&y),
        _ => a == b,
    }
}

/// Result files of a directory (not hidden; `.json` and `.csv`).
fn result_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !n.starts_with('.') && (n.ends_with(".json") || n.ends_with(".csv"))
        })
        .collect();
    v.sort();
    v
}

/// The files of one point: `<stem>.json`, `<stem>.<kind>.csv` (requests, metrics),
/// `<stem>-<k>.json` / `<stem>-<k>.<kind>.csv` (repeats). Another point whose name starts
/// with this one's (`rr1.0.json` beside `rr1.json`, `conc40` beside `conc4`) never matches.
#[cfg(test)]
fn point_files(dir: &Path, file_name: &str) -> Vec<PathBuf> {
    point_files_of(dir, file_name, true)
}

/// [`point_files`], with or without the files of its repeated runs.
fn point_files_of(dir: &Path, file_name: &str, with_runs: bool) -> Vec<PathBuf> {
    let stem = file_name.strip_suffix(".json").unwrap_or(file_name);
    // `.json` or `.<kind>.csv` with one word for the kind.
    let own_suffix = |r: &str| {
        r == ".json"
            || r.strip_prefix('.')
                .and_then(|r| r.strip_suffix(".csv"))
                .is_some_and(|kind| {
                    !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
    };
    result_files(dir)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let Some(rest) = n.strip_prefix(stem) else {
                return false;
            };
            if own_suffix(rest) {
                return true;
            }
            with_runs
                && rest.strip_prefix('-').is_some_and(|r| {
                    let digits = r.chars().take_while(char::is_ascii_digit).count();
                    digits > 0 && own_suffix(&r[digits..])
                })
        })
        .collect()
}

/// Whether `--resume` may skip a point, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeState {
    /// Done: skip.
    Done,
    /// No file: run it.
    Missing,
    /// A file that must be run again (the reason).
    Redo(String),
}

/// The `--resume` state of a point from its result file.
pub fn resume_state(dir: &Path, point: &PointSpec) -> ResumeState {
    let path = dir.join(&point.file_name);
    if !path.exists() {
        return ResumeState::Missing;
    }
    match BenchResult::read(&path) {
        Err(e) => ResumeState::Redo(format!("its file is unreadable ({e})")),
        Ok(r) if r.interrupted => ResumeState::Redo("it was interrupted".into()),
        Ok(r) if r.completed == 0 => ResumeState::Redo("no request of it succeeded".into()),
        Ok(_) => ResumeState::Done,
    }
}

/// The directory's state and what to do with the old files.
#[derive(Debug)]
pub struct DirPlan {
    pub dir: PathBuf,
    /// Old files to move aside before the first point (`--overwrite` over results of
    /// something else).
    move_first: Vec<PathBuf>,
    /// `<dir>/.replaced-<time>/`, created on first use.
    backup: PathBuf,
    backup_used: bool,
}

/// Inspect the directory (nothing is moved yet): writable, manifest readable (a corrupt
/// one is kept aside), old results compatible with this run.
pub fn inspect(cfg: &RunConfig) -> Result<DirPlan, DirError> {
    let dir = cfg.result_dir.clone();
    pd_common::fsutil::check_writable_dir(&dir).map_err(|source| DirError::NotWritable {
        dir: dir.clone(),
        source: Box::new(source),
    })?;
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = read_manifest_or_keep_aside(&manifest_path);
    let ours = Identity::of_config(cfg);
    let files: Vec<PathBuf> = result_files(&dir);
    let points: Vec<&PathBuf> = files
        .iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_name().is_some_and(|n| n != MANIFEST_FILE)
        })
        .collect();
    let theirs: Option<Identity> = manifest.as_ref().map(Identity::of_manifest).or_else(|| {
        points.iter().find_map(|p| {
            BenchResult::read(p)
                .ok()
                .as_ref()
                .and_then(Identity::of_result)
        })
    });
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S").to_string();
    let mut plan = DirPlan {
        backup: dir.join(format!(".replaced-{stamp}")),
        dir: dir.clone(),
        move_first: vec![],
        backup_used: false,
    };
    if points.is_empty() && manifest.is_none() {
        return Ok(plan);
    }
    let differences = match &theirs {
        Some(t) => t.differences(&ours),
        None => vec!["results not written by run-bm".to_string()],
    };
    if differences.is_empty() {
        return Ok(plan);
    }
    let what = differences.join("; ");
    if cfg.resume {
        return Err(DirError::Conflict(format!(
            "refusing to --resume in {}: its results are of another experiment ({what}). Use another -e/--exp-name or --result-dir",
            dir.display()
        )));
    }
    if !cfg.overwrite {
        return Err(DirError::Conflict(format!(
            "refusing to write into {}: it holds {} result file(s) of another experiment ({what}); they would be mixed with or overwritten by this run's. Use another -e/--exp-name or --result-dir, or --overwrite to replace them (the old files are kept in {}/.replaced-<time>/)",
            dir.display(),
            points.len(),
            dir.display()
        )));
    }
    tracing::warn!(
        "--overwrite: the results of another experiment in {} ({what}) will be moved to {} before the first point",
        dir.display(),
        plan.backup.display()
    );
    plan.move_first = files;
    Ok(plan)
}

/// Read the manifest; a corrupt one is kept aside (with a warning) and `None` returned.
pub fn read_manifest_or_keep_aside(path: &Path) -> Option<ExperimentManifest> {
    match ExperimentManifest::read_optional(path) {
        Ok(m) => m,
        Err(e) => {
            match pd_common::fsutil::keep_aside(path, "corrupt") {
                Ok(kept) => tracing::warn!(
                    "{} is unreadable ({}): kept as {}; a new manifest is started",
                    path.display(),
                    pd_common::diag::error_chain(&e),
                    kept.display()
                ),
                Err(e2) => tracing::warn!(
                    "{} is unreadable ({}) and cannot be moved aside ({}); a new manifest will replace it",
                    path.display(),
                    pd_common::diag::error_chain(&e),
                    pd_common::diag::error_chain(&e2)
                ),
            }
            None
        }
    }
}

impl DirPlan {
    /// Move the files of another experiment aside (`--overwrite`); call once, before the
    /// first point.
    pub fn apply(&mut self) -> Result<(), DirError> {
        let files = std::mem::take(&mut self.move_first);
        if files.is_empty() {
            return Ok(());
        }
        for f in &files {
            self.move_to_backup(f)?;
        }
        note(format_args!(
            "run-bm: moved {} old result file(s) to {}",
            files.len(),
            self.backup.display()
        ));
        Ok(())
    }

    /// Before a point's files are written: move its old files (if any, its repeated
    /// runs' included) aside.
    pub fn before_write(&mut self, point: &PointSpec) -> Result<(), DirError> {
        self.move_old(&point.file_name, true)
    }

    /// Before the aggregate of a repeated point is written over an old one: move the old
    /// `P.json` / `P.<kind>.csv` aside (not the runs).
    pub fn before_write_exact(&mut self, file_name: &str) -> Result<(), DirError> {
        self.move_old(file_name, false)
    }

    fn move_old(&mut self, file_name: &str, with_runs: bool) -> Result<(), DirError> {
        let old = point_files_of(&self.dir, file_name, with_runs);
        if old.is_empty() {
            return Ok(());
        }
        for f in &old {
            self.move_to_backup(f)?;
        }
        note(format_args!(
            "[{}] replaces the existing result; the previous file(s) are kept in {}",
            file_name.strip_suffix(".json").unwrap_or(file_name),
            self.backup.display()
        ));
        Ok(())
    }

    fn move_to_backup(&mut self, f: &Path) -> Result<(), DirError> {
        if !self.backup_used {
            std::fs::create_dir_all(&self.backup)
                .map_err(|e| DirError::Backup(io_err(&self.backup, e)))?;
            self.backup_used = true;
        }
        let Some(name) = f.file_name() else {
            return Ok(());
        };
        std::fs::rename(f, self.backup.join(name)).map_err(|e| DirError::Backup(io_err(f, e)))
    }
}

fn io_err(p: &Path, e: std::io::Error) -> Box<pd_common::Error> {
    Box::new(pd_common::Error::Io {
        path: p.to_path_buf(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_files_match_only_their_point() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "conc4.json",
            "conc4.requests.csv",
            "conc4.metrics.csv",
            "conc4-1.json",
            "conc4-2.requests.csv",
            "conc40.json",
            "conc4x.json",
            ".conc4.json.abc.tmp",
            "manifest.json",
        ] {
            std::fs::write(dir.path().join(n), "x").unwrap();
        }
        let names: Vec<String> = point_files(dir.path(), "conc4.json")
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "conc4-1.json",
                "conc4-2.requests.csv",
                "conc4.json",
                "conc4.metrics.csv",
                "conc4.requests.csv"
            ]
        );
    }

    #[test]
    fn exact_files_leave_the_runs() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "conc4.json",
            "conc4.metrics.csv",
            "conc4-1.json",
            "conc4-1.metrics.csv",
        ] {
            std::fs::write(dir.path().join(n), "x").unwrap();
        }
        let names = |with_runs| -> Vec<String> {
            point_files_of(dir.path(), "conc4.json", with_runs)
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(false), ["conc4.json", "conc4.metrics.csv"]);
        assert_eq!(names(true).len(), 4);
        let run1: Vec<String> = point_files_of(dir.path(), "conc4-1.json", true)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(run1, ["conc4-1.json", "conc4-1.metrics.csv"]);
    }

    #[test]
    fn rate_points_named_as_typed_stay_apart() {
        // `-r 1` and `-r 1.0` name rr1.json and rr1.0.json (the seed's naming); a capped
        // rate point is conc<C>_rr<R>.json.
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "rr1.json",
            "rr1.requests.csv",
            "rr1.0.json",
            "rr1.0.requests.csv",
            "rr1.0-2.json",
            "conc4_rr1.json",
            "conc4_rr1.requests.csv",
        ] {
            std::fs::write(dir.path().join(n), "x").unwrap();
        }
        let names = |f: &str| -> Vec<String> {
            point_files(dir.path(), f)
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names("rr1.json"), ["rr1.json", "rr1.requests.csv"]);
        assert_eq!(
            names("rr1.0.json"),
            ["rr1.0-2.json", "rr1.0.json", "rr1.0.requests.csv"]
        );
        assert_eq!(
            names("conc4.json"),
            Vec::<String>::new(),
            "conc4_rr1 is another point"
        );
    }
}
