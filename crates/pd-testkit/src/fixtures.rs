//! Paths of the data the tests use, all inside the repository.

use std::path::{Path, PathBuf};

/// The workspace root (this crate lives in `crates/pd-testkit`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `bm_results/reference`: the real `vllm bench serve` results shipped with the repository.
pub fn reference_dir() -> PathBuf {
    workspace_root().join("bm_results/reference")
}

/// Every reference result directory, sorted by name.
pub fn reference_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(reference_dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// The 14 directories of the study's later runs (its `bm_results/` at commit 04ba8ab): one
/// workload (ITL 5000 / OTL 250, concurrency 4–64), the set the viz snapshots cover.
pub const LATER_RUNS: [&str; 14] = [
    "gptoss_H200_itl5000_otl250_mixed_pack_p1xtp4-d1xtp4",
    "gptoss_H200_itl5000_otl250_mixed_spread_p1xtp4-d1xtp4",
    "gptoss_itl5000_otl250_mixed_baseline_2xtp4",
    "gptoss_itl5000_otl250_mixed_baseline_4xtp2",
    "gptoss_itl5000_otl250_mixed_pack_p1xtp4-d1xtp4",
    "gptoss_itl5000_otl250_mixed_pd_p1xtp2-d1xtp2",
    "gptoss_itl5000_otl250_mixed_pd_p1xtp2-d2xtp2",
    "gptoss_itl5000_otl250_mixed_pd_p1xtp2-d3xtp2",
    "gptoss_itl5000_otl250_mixed_pd_p1xtp4-d1xtp4",
    "gptoss_itl5000_otl250_mixed_pd_p2xtp2-d1xtp2",
    "gptoss_itl5000_otl250_mixed_pd_p2xtp2-d1xtp4",
    "gptoss_itl5000_otl250_mixed_pd_p3xtp2-d1xtp2",
    "gptoss_itl5000_otl250_mixed_spread_srd_1xtp4-1xtp4",
    "gptoss_itl5000_otl250_mixed_spread_tcp_p1xtp4-d1xtp4",
];

/// The later-run directories, sorted by name.
pub fn later_run_dirs() -> Vec<PathBuf> {
    LATER_RUNS.iter().map(|n| reference_dir().join(n)).collect()
}

/// A later-run directory by the end of its name; panics (a test bug) when none matches.
pub fn later_run_dir(suffix: &str) -> PathBuf {
    later_run_dirs()
        .into_iter()
        .find(|d| d.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no reference directory ending in {suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_data_is_in_the_repository() {
        let all = reference_dirs();
        assert!(all.len() >= LATER_RUNS.len(), "{all:?}");
        for d in later_run_dirs() {
            assert!(d.join("conc4.json").is_file(), "{}", d.display());
        }
    }
}
