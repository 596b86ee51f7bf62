//! Result directory and file names: writing them, and reading every form the study used.
//!
//! `bm_results/<model>_itl<ITL>_otl<OTL>_<mode>_<exp-name>/` holds one `conc<N>.json`
//! or `rr<R>.json` per sweep point, the per-request CSV `conc<N>.requests.csv` next to
//! it, and `manifest.json`.
//!
//! Reading ([`parse_result_dir_name`], [`parse_point_name`]) also accepts the study's
//! older forms: names without a mode (`gptoss_itl10000_otl500_4xtp2`, mode `mixed`),
//! extra model tokens such as a GPU tag (`gptoss_H200_itl5000_…`), request-rate points
//! with a client concurrency cap (`conc32_rr1.json`) and repeated rate points
//! (`rr4-2.json`). The layout inside the experiment name is read by
//! [`crate::label::parse_label`].

use crate::error::{Error, Result};
use crate::workload::{BenchMode, SweepKind, Workload};

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

/// The coordinate of a sweep point, as its file name states it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointName {
    /// Concurrency (closed loop) or request rate (open loop).
    pub kind: SweepKind,
    /// Concurrency, or requests per second (`inf` allowed for `rrinf`).
    pub value: f64,
    /// Client concurrency cap of a request-rate point (`conc32_rr1` → 32).
    pub max_concurrency: Option<u64>,
    /// Repeat index of a point measured more than once (`rr4-2` → 2).
    pub repeat: Option<u32>,
}

fn parse_rate_token(r: &str) -> Option<f64> {
    // "inf" is accepted; "nan", signs and exponents are not file-name forms.
    if r == "inf" {
        return Some(f64::INFINITY);
    }
    if r.is_empty() || !r.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    r.parse::<f64>().ok().filter(|v| *v > 0.0)
}

fn parse_count(n: &str) -> Option<u64> {
    if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    n.parse::<u64>().ok().filter(|v| *v > 0)
}

/// Parse a point file name: `conc16.json`, `rr2.json`, `rr0.5.json`, `conc32_rr1.json`
/// (rate 1 with a concurrency cap of 32), and any of them with a run number `-<k>` (k ≥ 1)
/// for a point measured more than once (`rr4-2.json`, `conc16-3.json`, `conc32_rr1-2.json`).
pub fn parse_point_name(name: &str) -> Option<PointName> {
    let stem = name.strip_suffix(".json")?;
    let (base, repeat) = match stem.rsplit_once('-') {
        Some((base, k)) => (base, Some(u32::try_from(parse_count(k)?).ok()?)),
        None => (stem, None),
    };
    let point = |kind, value, max_concurrency| {
        Some(PointName {
            kind,
            value,
            max_concurrency,
            repeat,
        })
    };
    if let Some(rest) = base.strip_prefix("conc") {
        return match rest.split_once('_') {
            Some((c, rr)) => point(
                SweepKind::RequestRate,
                parse_rate_token(rr.strip_prefix("rr")?)?,
                Some(parse_count(c)?),
            ),
            None => point(SweepKind::Concurrency, parse_count(rest)? as f64, None),
        };
    }
    point(
        SweepKind::RequestRate,
        parse_rate_token(base.strip_prefix("rr")?)?,
        None,
    )
}

/// Parse a point file name into its sweep coordinate (see [`parse_point_name`]).
pub fn parse_point_file_name(name: &str) -> Option<(SweepKind, f64)> {
    parse_point_name(name).map(|p| (p.kind, p.value))
}

/// The parts of a result directory name `<model>_itl<ITL>_otl<OTL>[_<mode>]_<experiment>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultDirName {
    /// `_`-separated tokens before `itl<N>` (`["gptoss"]`, `["gptoss", "H200"]`).
    pub model_tokens: Vec<String>,
    pub itl: u32,
    pub otl: u32,
    /// The benchmark mode; `mixed` when the name has none.
    pub mode: BenchMode,
    /// Whether the name spelled the mode out.
    pub mode_explicit: bool,
    /// Everything after the mode (or after `otl<N>` when there is no mode).
    pub experiment: String,
}

impl ResultDirName {
    /// The workload the name describes.
    pub fn workload(&self) -> Workload {
        Workload {
            itl: self.itl,
            otl: self.otl,
            mode: self.mode,
        }
    }
}

fn number_after(token: &str, prefix: &str) -> Option<u32> {
    let n = token.strip_prefix(prefix)?;
    if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// Split a result directory name (a path's last component is used). `None` when the
/// name has no `itl<N>_otl<N>` pair followed by an experiment name.
pub fn parse_result_dir_name(name: &str) -> Option<ResultDirName> {
    let base = name
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(name);
    let tokens: Vec<&str> = base.split('_').collect();
    (0..tokens.len()).find_map(|i| {
        let itl = number_after(tokens[i], "itl")?;
        let otl = number_after(tokens.get(i + 1)?, "otl")?;
        let (mode, explicit, rest) =
            match tokens.get(i + 2).and_then(|t| t.parse::<BenchMode>().ok()) {
                Some(m) => (m, true, i + 3),
                None => (BenchMode::Mixed, false, i + 2),
            };
        let experiment = tokens.get(rest..)?.join("_");
        if experiment.is_empty() {
            return None;
        }
        Some(ResultDirName {
            model_tokens: tokens[..i].iter().map(|t| t.to_string()).collect(),
            itl,
            otl,
            mode,
            mode_explicit: explicit,
            experiment,
        })
    })
}

/// File name of run `k` (k ≥ 1) of a point repeated with `run-bm --repeat`:
/// `conc16.json`, 2 → `conc16-2.json`; `conc32_rr1.json`, 3 → `conc32_rr1-3.json`.
pub fn run_file_name(point_file: &str, k: u32) -> String {
    let stem = point_file.strip_suffix(".json").unwrap_or(point_file);
    format!("{stem}-{k}.json")
}

/// `conc16-2.json` → (`conc16.json`, 2): the point and run number of a repeated run's
/// file (see [`parse_point_name`]).
pub fn split_run_file_name(name: &str) -> Option<(String, u32)> {
    let k = parse_point_name(name)?.repeat?;
    let (base, _) = name.strip_suffix(".json")?.rsplit_once('-')?;
    Some((format!("{base}.json"), k))
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

    fn point(name: &str) -> Option<(SweepKind, f64, Option<u64>, Option<u32>)> {
        parse_point_name(name).map(|p| (p.kind, p.value, p.max_concurrency, p.repeat))
    }

    /// Every file-name form of the study, by category (not only the shipped examples).
    #[test]
    fn point_names_by_category() {
        use SweepKind::*;
        for c in [1u64, 4, 8, 16, 32, 48, 64, 128, 256, 512, 1024] {
            assert_eq!(
                point(&format!("conc{c}.json")),
                Some((Concurrency, c as f64, None, None))
            );
            for r in [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 2.5] {
                let name = format!("conc{c}_rr{}.json", format_rate(r));
                assert_eq!(
                    point(&name),
                    Some((RequestRate, r, Some(c), None)),
                    "{name}"
                );
            }
        }
        for r in [1.0, 3.0, 10.0, 0.25] {
            let f = format_rate(r);
            assert_eq!(
                point(&format!("rr{f}.json")),
                Some((RequestRate, r, None, None))
            );
            for k in [1u32, 2, 3, 10] {
                assert_eq!(
                    point(&format!("rr{f}-{k}.json")),
                    Some((RequestRate, r, None, Some(k)))
                );
                assert_eq!(
                    point(&format!("conc64_rr{f}-{k}.json")),
                    Some((RequestRate, r, Some(64), Some(k)))
                );
            }
        }
        let inf = point("rrinf.json").unwrap();
        assert!(inf.1.is_infinite());
        for bad in [
            "conc.json",
            "conc0.json",
            "conc-1.json",
            "conc4",
            "conc4.csv",
            "rr.json",
            "rr0.json",
            "rr-1.json",
            "rrnan.json",
            "rr1e3.json",
            "conc4_rr.json",
            "conc_rr1.json",
            "conc4_x1.json",
            "rr2-.json",
            "rr2-x.json",
            "rr2-0.json",
            "manifest.json",
            "conc16.requests.csv",
            "u256-rr8.json",
        ] {
            assert_eq!(point(bad), None, "{bad}");
        }
        // the coordinate agrees with what a result file records (rate wins over the cap)
        assert_eq!(
            parse_point_file_name("conc32_rr1.json"),
            Some((RequestRate, 1.0))
        );
    }

    #[test]
    fn result_dir_names_by_category() {
        let models = [
            vec!["gptoss"],
            vec!["gptoss", "H200"],
            vec!["gptoss", "H100"],
            vec!["openai--gpt-oss-120b"],
        ];
        let exps = [
            "4xtp2",
            "baseline_4xtp2",
            "pd_p1xtp2-d2xtp2",
            "1xtp4-3xtp4-ucx120",
            "3ptp2-1dtp2-packed-ucx",
            "spread_tcp_p1xtp4-d1xtp4",
            "1xtp4-1xtp4-spread-ucx120-before-rm-patch",
        ];
        for model in &models {
            for (itl, otl) in [
                (5000u32, 250u32),
                (1, 1000),
                (50000, 250),
                (8000, 1000),
                (5000, 1),
            ] {
                for mode in [
                    None,
                    Some(BenchMode::Mixed),
                    Some(BenchMode::DecodeOnly),
                    Some(BenchMode::PrefillOnly),
                ] {
                    for exp in exps {
                        let mut name = model.join("_");
                        name.push_str(&format!("_itl{itl}_otl{otl}"));
                        if let Some(m) = mode {
                            name.push_str(&format!("_{m}"));
                        }
                        name.push_str(&format!("_{exp}"));
                        let p = parse_result_dir_name(&name).unwrap_or_else(|| panic!("{name}"));
                        assert_eq!(p.model_tokens, *model, "{name}");
                        assert_eq!((p.itl, p.otl), (itl, otl), "{name}");
                        assert_eq!(p.mode, mode.unwrap_or(BenchMode::Mixed), "{name}");
                        assert_eq!(p.mode_explicit, mode.is_some(), "{name}");
                        assert_eq!(p.experiment, exp, "{name}");
                        assert_eq!(p.workload().itl, itl);
                        // a path and a trailing slash give the same parts
                        let q = parse_result_dir_name(&format!("bm_results/reference/{name}/"))
                            .unwrap();
                        assert_eq!(q, p);
                    }
                }
            }
        }
        for bad in [
            "my_experiment",
            "gptoss_itl5000_otl250_mixed",
            "gptoss_itl5000_otl250",
            "gptoss_itlx_otl250_mixed_4xtp2",
            "gptoss_itl5000_4xtp2",
            "",
        ] {
            assert_eq!(parse_result_dir_name(bad), None, "{bad}");
        }
        // names this crate writes read back
        let w = Workload::new(5000, 250, BenchMode::DecodeOnly).unwrap();
        let p = parse_result_dir_name(&result_dir_name("openai/gpt-oss-120b", &w, "pd_x")).unwrap();
        assert_eq!((p.workload(), p.experiment.as_str()), (w, "pd_x"));
    }
}
