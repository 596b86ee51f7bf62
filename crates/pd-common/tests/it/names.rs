//! Every directory and file name of the reference results reads with the one name parser
//! (`pd_common::naming` + `pd_common::label`), and what the name says agrees with the
//! files. The folder is enumerated: a new directory of the study is checked as well.

use pd_common::deployment::DeployMode;
use pd_common::label::{parse_label, Placement};
use pd_common::naming::{parse_point_name, parse_result_dir_name};
use pd_common::{BenchMode, BenchResult, SweepKind};

fn words(name: &str) -> Vec<String> {
    name.split(['_', '-'])
        .map(|w| w.to_ascii_lowercase())
        .collect()
}

#[test]
fn every_reference_directory_name_parses_consistently() {
    let dirs = pd_testkit::fixtures::reference_dirs();
    assert!(dirs.len() >= 28, "{} reference directories", dirs.len());
    for dir in dirs {
        let name = dir.file_name().unwrap().to_str().unwrap();
        let d = parse_result_dir_name(name).unwrap_or_else(|| panic!("{name}: no workload"));
        let l = parse_label(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let w = words(name);
        // the mode: spelled out, or mixed
        let spelled = ["mixed", "decode-only", "prefill-only"]
            .iter()
            .find(|m| name.contains(&format!("_{m}_")));
        assert_eq!(d.mode_explicit, spelled.is_some(), "{name}");
        assert_eq!(
            d.mode,
            spelled.map_or(BenchMode::Mixed, |m| m.parse().unwrap()),
            "{name}"
        );
        assert!(
            name.contains(&format!("itl{}_otl{}", d.itl, d.otl)),
            "{name}"
        );
        // GPUs = Σ replicas × TP over the groups; the canonical label reads back the same
        let gpus: u32 = l.groups.iter().map(|g| g.num * g.tp).sum();
        assert_eq!(l.total_gpus, gpus, "{name}");
        let again = parse_label(&l.label).unwrap();
        assert_eq!(
            (again.groups.clone(), again.total_gpus),
            (l.groups.clone(), gpus),
            "{name}"
        );
        // the GPU word
        assert_eq!(
            l.gpu.is_some(),
            w.iter().any(|x| x == "h200" || x == "h100"),
            "{name}"
        );
        // placement words decide the PD mode; no word: packed when it fits one 8-GPU node
        match l.groups.len() {
            1 => assert_eq!(l.mode, DeployMode::Collocated, "{name}"),
            2 => {
                let want = if w.iter().any(|x| x == "spread") {
                    assert_eq!(l.placement, Some(Placement::Spread));
                    DeployMode::PdSpread
                } else if w.iter().any(|x| x == "pack" || x == "packed") {
                    assert_eq!(l.placement, Some(Placement::Pack));
                    DeployMode::PdPack
                } else if gpus <= 8 {
                    DeployMode::PdPack
                } else {
                    DeployMode::PdSpread
                };
                assert_eq!(l.mode, want, "{name}");
            }
            n => panic!("{name}: {n} groups"),
        }
        // tpep means expert parallelism
        assert_eq!(l.expert_parallel, name.contains("tpep"), "{name}");
        // every word of the experiment is either the layout or a kept tag
        for t in &l.tags {
            assert!(d.experiment.contains(t.as_str()), "{name}: tag {t}");
        }
    }
}

#[test]
fn every_reference_file_name_gives_the_files_point() {
    let mut files = 0;
    for dir in pd_testkit::fixtures::reference_dirs() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let fname = path.file_name().unwrap().to_str().unwrap().to_string();
            let p = parse_point_name(&fname).unwrap_or_else(|| panic!("{fname}"));
            let r = BenchResult::read(&path).unwrap();
            assert_eq!(r.sweep_point(), (p.kind, p.value), "{}", path.display());
            match p.kind {
                SweepKind::Concurrency => {
                    assert_eq!(
                        r.max_concurrency,
                        Some(p.value as u64),
                        "{}",
                        path.display()
                    );
                    assert_eq!(p.max_concurrency, None);
                }
                SweepKind::RequestRate => {
                    // conc<C>_rr<R>: the cap is the file's max_concurrency
                    assert_eq!(p.max_concurrency, r.max_concurrency, "{}", path.display());
                }
            }
            files += 1;
        }
    }
    assert!(files >= 141, "{files} files");
}
