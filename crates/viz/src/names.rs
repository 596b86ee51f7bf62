//! Display names of experiments: the directory basename, shortened for legends.
//!
//! Result directories are named `<model>_itl<ITL>_otl<OTL>_<mode>_<exp-name>`. When
//! several directories are shown and all share the same `itl/otl/mode` part, that part
//! (and the model tokens they all share) is dropped from the display names and returned
//! once as the workload description for titles:
//! `gptoss_itl5000_otl250_mixed_baseline_4xtp2` → `baseline_4xtp2`,
//! `gptoss_H200_itl5000_otl250_mixed_pack_p1xtp4-d1xtp4` → `H200_pack_p1xtp4-d1xtp4`.

/// The parts of a conventional result directory name (read by
/// [`pd_common::naming::parse_result_dir_name`], which also knows the study's older forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameParts {
    pub model: Vec<String>,
    pub itl: u64,
    pub otl: u64,
    /// The mode (`mixed` when the name has none).
    pub mode: String,
    pub exp: Vec<String>,
}

/// Split `<model>_itl<ITL>_otl<OTL>[_<mode>]_<exp-name>`; `None` if the name is not of that form.
pub fn split_name(name: &str) -> Option<NameParts> {
    let d = pd_common::naming::parse_result_dir_name(name)?;
    Some(NameParts {
        model: d.model_tokens,
        itl: u64::from(d.itl),
        otl: u64::from(d.otl),
        mode: d.mode.to_string(),
        exp: d.experiment.split('_').map(str::to_string).collect(),
    })
}

/// Display names for `dir_names` (same order) and, when shortened, the shared workload
/// (`ITL 5000, OTL 250, mixed`).
pub fn display_names(dir_names: &[String]) -> (Vec<String>, Option<String>) {
    let full = || dir_names.to_vec();
    let parts: Option<Vec<NameParts>> = dir_names.iter().map(|n| split_name(n)).collect();
    let Some(parts) = parts else {
        return (dedupe(full()), None);
    };
    let Some(first) = parts.first() else {
        return (Vec::new(), None);
    };
    let workload = format!("ITL {}, OTL {}, {}", first.itl, first.otl, first.mode);
    let same_workload = parts
        .iter()
        .all(|p| (p.itl, p.otl, &p.mode) == (first.itl, first.otl, &first.mode));
    if !same_workload {
        return (dedupe(full()), None);
    }
    if parts.len() < 2 {
        return (full(), Some(workload));
    }
    // Model tokens shared by every name.
    let mut common = first.model.len();
    for p in &parts {
        common = common.min(
            p.model
                .iter()
                .zip(&first.model)
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    let short: Vec<String> = parts
        .iter()
        .map(|p| {
            p.model[common..]
                .iter()
                .chain(p.exp.iter())
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("_")
        })
        .collect();
    let mut unique = short.clone();
    unique.sort();
    unique.dedup();
    if unique.len() == short.len() {
        (short, Some(workload))
    } else {
        (dedupe(full()), Some(workload))
    }
}

/// [`display_names`] for directories that may share a name in different folders
/// (`bm_results/reference/…_baseline_4xtp2` and `bm_results/…_baseline_4xtp2`): those are
/// told apart by their folder (`reference/baseline_4xtp2`, `bm_results/baseline_4xtp2`);
/// ` [2]`… only when the folders' names are the same too.
pub fn display_names_in(dir_names: &[String], parents: &[String]) -> (Vec<String>, Option<String>) {
    let mut unique: Vec<String> = Vec::new();
    for n in dir_names {
        if !unique.contains(n) {
            unique.push(n.clone());
        }
    }
    if unique.len() == dir_names.len() || parents.len() != dir_names.len() {
        return display_names(dir_names);
    }
    let (short, workload) = display_names(&unique);
    let names: Vec<String> = dir_names
        .iter()
        .zip(parents)
        .map(|(n, parent)| {
            let s = unique
                .iter()
                .position(|u| u == n)
                .and_then(|i| short.get(i))
                .cloned()
                .unwrap_or_else(|| n.clone());
            let repeated = dir_names.iter().filter(|m| *m == n).count() > 1;
            if repeated && !parent.is_empty() {
                format!("{parent}/{s}")
            } else {
                s
            }
        })
        .collect();
    (dedupe(names), workload)
}

/// Make names unique by appending ` [2]`, ` [3]`… to repeats.
fn dedupe(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        let mut candidate = n.clone();
        let mut k = 2;
        while out.contains(&candidate) {
            candidate = format!("{n} [{k}]");
            k += 1;
        }
        out.push(candidate);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn splits_conventional_names() {
        let p = split_name("gptoss_H200_itl5000_otl250_mixed_pack_p1xtp4-d1xtp4").unwrap();
        assert_eq!(p.model, vec!["gptoss", "H200"]);
        assert_eq!((p.itl, p.otl, p.mode.as_str()), (5000, 250, "mixed"));
        assert_eq!(p.exp, vec!["pack", "p1xtp4-d1xtp4"]);
        assert!(split_name("my_experiment").is_none());
        assert!(split_name("gptoss_itl5000_otl250_mixed").is_none());
        // the study's names without a mode are mixed
        let p = split_name("gptoss_itl10000_otl500_4ptp1-2dtp2-packed-ucx").unwrap();
        assert_eq!(
            (p.mode.as_str(), p.exp.join("_")),
            ("mixed", "4ptp1-2dtp2-packed-ucx".to_string())
        );
    }

    #[test]
    fn shortens_shared_prefix() {
        let (names, wl) = display_names(&s(&[
            "gptoss_itl5000_otl250_mixed_baseline_4xtp2",
            "gptoss_H200_itl5000_otl250_mixed_pack_p1xtp4-d1xtp4",
        ]));
        assert_eq!(names, s(&["baseline_4xtp2", "H200_pack_p1xtp4-d1xtp4"]));
        assert_eq!(wl.as_deref(), Some("ITL 5000, OTL 250, mixed"));
    }

    #[test]
    fn keeps_full_names_when_workloads_differ_or_single() {
        let dirs = s(&[
            "gptoss_itl5000_otl250_mixed_baseline_4xtp2",
            "gptoss_itl8000_otl1000_mixed_baseline_4xtp2",
        ]);
        assert_eq!(display_names(&dirs), (dirs.clone(), None));
        let one = s(&["gptoss_itl5000_otl250_mixed_baseline_4xtp2"]);
        assert_eq!(display_names(&one).0, one);
        let odd = s(&["a", "a", "gptoss_itl1_otl2_mixed_x"]);
        assert_eq!(
            display_names(&odd).0,
            s(&["a", "a [2]", "gptoss_itl1_otl2_mixed_x"])
        );
    }

    #[test]
    fn same_directory_name_in_two_folders_is_told_apart_by_folder() {
        let dirs = s(&[
            "gptoss_itl5000_otl250_mixed_baseline_4xtp2",
            "gptoss_itl5000_otl250_mixed_baseline_4xtp2",
            "gptoss_itl5000_otl250_mixed_pd_p1xtp2-d2xtp2",
        ]);
        let (names, wl) = display_names_in(&dirs, &s(&["reference", "bm_results", "bm_results"]));
        assert_eq!(
            names,
            s(&[
                "reference/baseline_4xtp2",
                "bm_results/baseline_4xtp2",
                "pd_p1xtp2-d2xtp2"
            ])
        );
        assert_eq!(wl.as_deref(), Some("ITL 5000, OTL 250, mixed"));
        // same folder name too: numbered (one distinct directory name keeps its full name)
        let (names, _) = display_names_in(&dirs[..2], &s(&["a", "a"]));
        assert_eq!(
            names,
            vec![format!("a/{}", dirs[0]), format!("a/{} [2]", dirs[0])]
        );
        // no repeats: as display_names
        assert_eq!(
            display_names_in(&dirs[1..], &s(&["x", "y"])),
            display_names(&dirs[1..])
        );
    }

    #[test]
    fn falls_back_when_shortening_collides() {
        let dirs = s(&[
            "m1_itl1_otl2_mixed_x",
            "m2_itl1_otl2_mixed_x",
            "m2_itl1_otl2_mixed_x",
        ]);
        let (names, _) = display_names(&dirs);
        assert_eq!(names[2], "m2_itl1_otl2_mixed_x [2]");
    }
}
