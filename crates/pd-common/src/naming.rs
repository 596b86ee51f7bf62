//! Result directory and file names.
//!
//! `bm_results/<model>_itl<ITL>_otl<OTL>_<mode>_<exp-name>/` holds one `conc<N>.json`
//! or `rr<R>.json` per sweep point, the per-request CSV `conc<N>.requests.csv` next to
//! it, and `manifest.json`.

use crate::error::{Error, Result};
use crate::workload::{SweepKind, Workload};

/// Default root of result directories.
pub const DEFAULT_RESULTS_ROOT: &str = "bm_results";
/// File name of the experiment manifest inside a result directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Suffix of the per-request CSV of a point (`conc16.requests.csv`).
pub const REQUESTS_CSV_SUFFIX: &str = ".requests.csv";

/// Model name as used in directory names: `/` replaced by `--`.
pub fn sanitize_model(model: &str) -> String {
    model.replace('/', "--")
}

/// `<model>_itl<ITL>_otl<OTL>_<mode>_<exp-name>`.
pub fn result_dir_name(model: &str, workload: &Workload, exp_name: &str) -> String {
    format!(
        "{}_itl{}_otl{}_{}_{}",
        sanitize_model(model),
        workload.itl,
        workload.otl,
        workload.mode,
        exp_name
    )
}

/// Check an experiment name: non-empty, no path separators, no whitespace.
pub fn validate_exp_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("experiment name", "must not be empty"));
    }
    if name == "."
        || name == ".."
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_whitespace)
    {
        return Err(Error::invalid(
            "experiment name",
            format!("'{name}' must not contain '/', '\\' or whitespace"),
        ));
    }
    Ok(())
}

/// Format a rate for a file name: `4` → `4`, `0.5` → `0.5`, inf → `inf`.
pub fn format_rate(rate: f64) -> String {
    if rate.is_infinite() {
        "inf".to_string()
    } else if rate.fract() == 0.0 && rate.abs() < 1e15 {
        format!("{}", rate as i64)
    } else {
        format!("{rate}")
    }
}

/// Stem of a point's files: `conc16` or `rr2.5`.
pub fn point_stem(kind: SweepKind, value: f64) -> String {
    match kind {
        SweepKind::Concurrency => format!("conc{}", value as u64),
        SweepKind::RequestRate => format!("rr{}", format_rate(value)),
    }
}

/// `conc16.json` / `rr2.json`.
pub fn point_file_name(kind: SweepKind, value: f64) -> String {
    format!("{}.json", point_stem(kind, value))
}

/// File name of a request-rate point as the seed's scripts write it: `rr<R>.json` with R
/// exactly as the user wrote it (`-r 1.0` → `rr1.0.json`, `-r 2` → `rr2.json`), or
/// `conc<C>_rr<R>.json` when a client concurrency cap C applies (the study's naming).
pub fn rate_point_file_name(rate_text: &str, cap: Option<u64>) -> String {
    match cap {
        Some(c) => format!("conc{c}_rr{}.json", rate_text.trim()),
        None => format!("rr{}.json", rate_text.trim()),
    }
}

/// `conc16.requests.csv`.
pub fn requests_csv_name(kind: SweepKind, value: f64) -> String {
    format!("{}{}", point_stem(kind, value), REQUESTS_CSV_SUFFIX)
}

/// Parse a point file name (`conc16.json`, `rr0.5.json`) into its coordinate.
pub fn parse_point_file_name(name: &str) -> Option<(SweepKind, f64)> {
    let stem = name.strip_suffix(".json")?;
    if let Some(n) = stem.strip_prefix("conc") {
        return n
            .parse::<u64>()
            .ok()
            .map(|c| (SweepKind::Concurrency, c as f64));
    }
    if let Some(r) = stem.strip_prefix("rr") {
        return r
            .parse::<f64>()
            .ok()
            .filter(|r| *r > 0.0)
            .map(|r| (SweepKind::RequestRate, r));
    }
    None
}

/// File name of run `k` (k ≥ 1) of a point repeated with `run-bm --repeat`:
/// `conc16.json`, 2 → `conc16-2.json`; `conc32_rr1.json`, 3 → `conc32_rr1-3.json`.
pub fn run_file_name(point_file: &str, k: u32) -> String {
    let stem = point_file.strip_suffix(".json").unwrap_or(point_file);
    format!("{stem}-{k}.json")
}

/// `conc16-2.json` → (`conc16.json`, 2): the point and run number of a repeated run's
/// file. The part before `-<k>` must itself be a point file name (`conc<N>`, `rr<R>`
/// or `conc<C>_rr<R>`); k ≥ 1, digits only.
pub fn split_run_file_name(name: &str) -> Option<(String, u32)> {
    let stem = name.strip_suffix(".json")?;
    let (base, k) = stem.rsplit_once('-')?;
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let k: u32 = k.parse().ok().filter(|k| *k > 0)?;
    let base = format!("{base}.json");
    let capped_rate = base
        .strip_prefix("conc")
        .and_then(|r| r.split_once("_rr"))
        .is_some_and(|(c, r)| {
            !c.is_empty()
                && c.chars().all(|ch| ch.is_ascii_digit())
                && parse_point_file_name(&format!("rr{r}")).is_some()
        });
    (parse_point_file_name(&base).is_some() || capped_rate).then_some((base, k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::BenchMode;

    #[test]
    fn names() {
        let w = Workload::new(5000, 250, BenchMode::Mixed).unwrap();
        assert_eq!(
            result_dir_name("gptoss", &w, "baseline_4xtp2"),
            "gptoss_itl5000_otl250_mixed_baseline_4xtp2"
        );
        assert_eq!(
            result_dir_name(
                "openai/gpt-oss-120b",
                &Workload::new(1, 2, BenchMode::PrefillOnly).unwrap(),
                "x"
            ),
            "openai--gpt-oss-120b_itl1_otl2_prefill-only_x"
        );
        assert_eq!(point_file_name(SweepKind::Concurrency, 16.0), "conc16.json");
        assert_eq!(point_file_name(SweepKind::RequestRate, 2.0), "rr2.json");
        assert_eq!(point_file_name(SweepKind::RequestRate, 0.5), "rr0.5.json");
        assert_eq!(
            requests_csv_name(SweepKind::Concurrency, 4.0),
            "conc4.requests.csv"
        );
        assert_eq!(
            parse_point_file_name("conc64.json"),
            Some((SweepKind::Concurrency, 64.0))
        );
        assert_eq!(
            parse_point_file_name("rr0.5.json"),
            Some((SweepKind::RequestRate, 0.5))
        );
        assert_eq!(rate_point_file_name("1.0", None), "rr1.0.json");
        assert_eq!(rate_point_file_name("4", Some(128)), "conc128_rr4.json");
        assert_eq!(
            parse_point_file_name(&rate_point_file_name("1.0", None)),
            Some((SweepKind::RequestRate, 1.0))
        );
        assert_eq!(parse_point_file_name("manifest.json"), None);
        assert_eq!(parse_point_file_name("concx.json"), None);
        assert!(validate_exp_name("a/b").is_err());
        assert!(validate_exp_name("").is_err());
        assert!(validate_exp_name("pd_1p2-2d2").is_ok());
    }

    #[test]
    fn run_files_of_repeated_points() {
        for (name, base, k) in [
            ("conc16-2.json", "conc16.json", 2),
            ("rr2.5-10.json", "rr2.5.json", 10),
            ("rr1.0-1.json", "rr1.0.json", 1),
            ("conc32_rr1-3.json", "conc32_rr1.json", 3),
        ] {
            assert_eq!(
                split_run_file_name(name),
                Some((base.to_string(), k)),
                "{name}"
            );
            assert_eq!(run_file_name(base, k), name);
        }
        for bad in [
            "conc16.json",
            "conc16-0.json",
            "conc16-x.json",
            "conc16-.json",
            "notes-1.json",
            "conc_rr1-1.json",
            "concx_rr1-1.json",
            "conc4_rrx-1.json",
            "conc16-1.csv",
            "conc16--1.json",
        ] {
            assert_eq!(split_run_file_name(bad), None, "{bad}");
        }
    }
}
