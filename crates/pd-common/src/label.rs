//! Parser for the deployment layouts written in result directory names.
//!
//! A directory name is `<model>_itl<ITL>_otl<OTL>[_<mode>]_<experiment>`
//! ([`crate::naming::parse_result_dir_name`]); the experiment part carries the layout in
//! one of the study's styles, plus tags. Words are separated by `_` or `-`.
//!
//! Layout groups (`tpep<M>` in place of `tp<M>` = TP with expert parallelism):
//! * `<N>xtp<M>` alone: N collocated replicas at TP M (`4xtp2`, `baseline_2xtp4`, `1xtpep4`);
//! * `p<N>xtp<M>-d<K>xtp<L>`: PD, prefill then decode (`pd_p1xtp2-d2xtp2`);
//! * `<N>xtp<M>-<K>xtp<L>`: PD, the first group is prefill (`1xtp4-3xtp4-ucx120`);
//! * `<N>ptp<M>-<K>dtp<L>`: PD with p/d letters (`3ptp2-1dtp2-packed-ucx`).
//!
//! The two groups of a PD layout are joined by `-` in one `_`-separated part. Every other
//! word is a tag: `H100`/`H200` (GPU), `pack`/`packed`/`spread` (PD placement), `tcp`,
//! `srd`, `efa`, `ib` (network), `ucx`, `ucx<version>`, `libfabric` (NIXL backend), and
//! free words (`baseline`, `pd`, `bck`, `before`, `rm`, `patch`, `wo`, `verbosity` …) that do
//! not change the deployment. A name with no layout, or with several, is reported, never
//! guessed.

use serde::Serialize;

use crate::deployment::{DeployMode, GpuKind, NixlBackend, Replicas};
use crate::error::{Error, Result};
use crate::naming::parse_result_dir_name;

/// GPUs per node the study's names assume when they do not say pack or spread.
pub const STUDY_GPUS_PER_NODE: u32 = 8;

/// A group of identical replicas as a name describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Group {
    pub num: u32,
    pub tp: u32,
    /// `tpep`: the MoE experts are distributed over the TP GPUs (expert parallelism).
    pub ep: bool,
}

impl Group {
    pub fn replicas(&self) -> Replicas {
        Replicas {
            num: self.num,
            tp: self.tp,
        }
    }
    pub fn gpus(&self) -> u32 {
        self.num * self.tp
    }
    fn tp_word(&self) -> String {
        format!("{}{}", if self.ep { "tpep" } else { "tp" }, self.tp)
    }
}

/// Placement of a PD layout, when the name states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    Pack,
    Spread,
}

/// What a name says about its deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParsedLabel {
    /// Canonical label: `4xtp2`, `p1xtp4-d1xtp4`, `p1xtp4-d1xtpep4`, `2xtpep4`.
    pub label: String,
    /// Collocated, or PD: `pd-spread` when the name says spread, `pd-pack` when it says
    /// pack; with neither, `pd-pack` if P and D fit on one node of
    /// [`STUDY_GPUS_PER_NODE`] GPUs, else `pd-spread`.
    pub mode: DeployMode,
    /// Placement word found in the name (`pack`/`packed`/`spread`), if any.
    pub placement: Option<Placement>,
    pub collocated: Option<Replicas>,
    pub prefill: Option<Replicas>,
    pub decode: Option<Replicas>,
    /// The groups with their expert-parallel flags (one collocated group, or P then D).
    pub groups: Vec<Group>,
    /// Whether any group uses `tpep` (TP with expert parallelism).
    pub expert_parallel: bool,
    pub gpu: Option<GpuKind>,
    /// Network words found (`tcp`, `srd`, `efa`, `ib`), lower case.
    pub network: Vec<String>,
    /// NIXL backend named by a word (`ucx`, `ucx120` → UCX; `libfabric`).
    pub nixl_backend: Option<NixlBackend>,
    /// Every word of the experiment that is not the layout, in order (original case).
    pub tags: Vec<String>,
    pub total_gpus: u32,
}

impl ParsedLabel {
    /// Expert parallelism of the prefill (or collocated) replicas and of the decode replicas.
    pub fn ep_flags(&self) -> (bool, bool) {
        match self.groups.as_slice() {
            [c] => (c.ep, c.ep),
            [p, d] => (p.ep, d.ep),
            _ => (false, false),
        }
    }
}

const NETWORK_TAGS: [&str; 4] = ["tcp", "srd", "efa", "ib"];

/// A group word: `<num><marker>tp<tp>` or `…tpep<tp>` after an optional prefix letter.
fn parse_group(word: &str, prefix: &str, marker: &str) -> Option<Group> {
    let s = word.strip_prefix(prefix)?;
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let num: u32 = s[..digits].parse().ok()?;
    let rest = s[digits..].strip_prefix(marker)?;
    let (rest, ep) = match rest.strip_prefix("tpep") {
        Some(r) => (r, true),
        None => (rest.strip_prefix("tp")?, false),
    };
    if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let tp: u32 = rest.parse().ok()?;
    if num == 0 || tp == 0 {
        return None;
    }
    Some(Group { num, tp, ep })
}

/// Which group forms a word is (lower-case input).
#[derive(Debug, Clone, Copy)]
enum Word {
    /// `4xtp2`
    X(Group),
    /// `p1xtp2`
    P(Group),
    /// `d1xtp2`
    D(Group),
    /// `3ptp2`
    PLetter(Group),
    /// `1dtp2`
    DLetter(Group),
}

fn classify(word: &str) -> Option<Word> {
    if let Some(g) = parse_group(word, "", "x") {
        return Some(Word::X(g));
    }
    if let Some(g) = parse_group(word, "p", "x") {
        return Some(Word::P(g));
    }
    if let Some(g) = parse_group(word, "d", "x") {
        return Some(Word::D(g));
    }
    if let Some(g) = parse_group(word, "", "p") {
        return Some(Word::PLetter(g));
    }
    if let Some(g) = parse_group(word, "", "d") {
        return Some(Word::DLetter(g));
    }
    None
}

enum Layout {
    Collocated(Group),
    Pd(Group, Group),
}

/// The layout of one `_`-separated part's group words (in order), or an error message.
fn layout_of_part(groups: &[Word]) -> std::result::Result<Layout, String> {
    match groups {
        [Word::X(c)] => Ok(Layout::Collocated(*c)),
        [Word::P(p), Word::D(d)]
        | [Word::X(p), Word::X(d)]
        | [Word::PLetter(p), Word::DLetter(d)] => Ok(Layout::Pd(*p, *d)),
        [Word::D(_), Word::P(_)] | [Word::DLetter(_), Word::PLetter(_)] => {
            Err("the decode group comes before the prefill group".into())
        }
        _ => Err("its replica groups do not form a layout (expected NxtpM, \
                  pNxtpM-dKxtpL, NxtpM-KxtpL or NptpM-KdtpL)"
            .into()),
    }
}

/// Parse a directory name (a path's last component is used) or a bare label.
pub fn parse_label(name: &str) -> Result<ParsedLabel> {
    let base = name
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(name);
    let (model_tokens, experiment) = match parse_result_dir_name(base) {
        Some(d) => (d.model_tokens, d.experiment),
        None => (Vec::new(), base.to_string()),
    };
    let bad = |message: String| Error::invalid("deployment label", message);

    let mut gpu = None;
    for t in &model_tokens {
        match t.to_ascii_lowercase().as_str() {
            "h100" => gpu = Some(GpuKind::H100),
            "h200" => gpu = Some(GpuKind::H200),
            _ => {}
        }
    }
    let mut layouts = Vec::new();
    let mut tags = Vec::new();
    let mut placement = None;
    let mut network = Vec::new();
    let mut nixl = None;
    for part in experiment.split('_').filter(|p| !p.is_empty()) {
        let mut groups = Vec::new();
        for word in part.split('-').filter(|w| !w.is_empty()) {
            let lower = word.to_ascii_lowercase();
            if let Some(g) = classify(&lower) {
                groups.push(g);
                continue;
            }
            tags.push(word.to_string());
            match lower.as_str() {
                "h100" => gpu = Some(GpuKind::H100),
                "h200" => gpu = Some(GpuKind::H200),
                "pack" | "packed" => placement = Some(Placement::Pack),
                "spread" => placement = Some(Placement::Spread),
                "libfabric" => nixl = Some(NixlBackend::Libfabric),
                t if NETWORK_TAGS.contains(&t) => network.push(t.to_string()),
                t if t
                    .strip_prefix("ucx")
                    .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit())) =>
                {
                    nixl = Some(NixlBackend::Ucx)
                }
                _ => {}
            }
        }
        if !groups.is_empty() {
            let layout =
                layout_of_part(&groups).map_err(|m| bad(format!("'{part}' in '{base}': {m}")))?;
            layouts.push(layout);
        }
    }
    let layout = match layouts.len() {
        1 => layouts.remove(0),
        0 => {
            return Err(bad(format!(
            "no layout (like 4xtp2, p1xtp2-d2xtp2, 1xtp4-3xtp4 or 3ptp2-1dtp2) found in '{base}'"
        )))
        }
        _ => {
            return Err(bad(format!(
                "several layouts found in '{base}'; cannot tell which one applies"
            )))
        }
    };
    let (mode, collocated, prefill, decode, groups, label) = match layout {
        Layout::Collocated(c) => (
            DeployMode::Collocated,
            Some(c.replicas()),
            None,
            None,
            vec![c],
            format!("{}x{}", c.num, c.tp_word()),
        ),
        Layout::Pd(p, d) => {
            let mode = match placement {
                Some(Placement::Spread) => DeployMode::PdSpread,
                Some(Placement::Pack) => DeployMode::PdPack,
                None if p.gpus() + d.gpus() <= STUDY_GPUS_PER_NODE => DeployMode::PdPack,
                None => DeployMode::PdSpread,
            };
            (
                mode,
                None,
                Some(p.replicas()),
                Some(d.replicas()),
                vec![p, d],
                format!("p{}x{}-d{}x{}", p.num, p.tp_word(), d.num, d.tp_word()),
            )
        }
    };
    if collocated.is_some() {
        // pack/spread words mean nothing for a collocated layout; keep them as tags only
        placement = None;
    }
    Ok(ParsedLabel {
        label,
        mode,
        placement,
        collocated,
        prefill,
        decode,
        expert_parallel: groups.iter().any(|g| g.ep),
        total_gpus: groups.iter().map(Group::gpus).sum(),
        groups,
        gpu,
        network,
        nixl_backend: nixl,
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpus(name: &str) -> u32 {
        parse_label(name).unwrap().total_gpus
    }

    #[test]
    fn legacy_forms() {
        assert_eq!(gpus("4xtp2"), 8);
        assert_eq!(gpus("p1xtp4-d1xtp4"), 8);
        assert_eq!(gpus("1xtp2-3xtp2"), 8);
        assert_eq!(gpus("4ptp1-2dtp2"), 8);
        let ep = parse_label("1xtpep4-1xtpep4").unwrap();
        assert!(ep.expert_parallel);
        assert_eq!(ep.total_gpus, 8);
        assert_eq!(ep.label, "p1xtpep4-d1xtpep4");
        let h = parse_label("gptoss_H200_itl5000_otl250_mixed_spread_p1xtp4-d1xtp4").unwrap();
        assert_eq!(
            (h.gpu, h.mode, h.label.as_str()),
            (Some(GpuKind::H200), DeployMode::PdSpread, "p1xtp4-d1xtp4")
        );
        let t = parse_label("gptoss_itl5000_otl250_mixed_spread_tcp_p1xtp4-d1xtp4").unwrap();
        assert_eq!(t.network, vec!["tcp".to_string()]);
        let b = parse_label("bm_results/gptoss_itl5000_otl250_mixed_baseline_2xtp4/").unwrap();
        assert_eq!((b.mode, b.total_gpus), (DeployMode::Collocated, 8));
        assert_eq!(gpus("gptoss_itl5000_otl250_mixed_pd_p2xtp2-d1xtp4"), 8);
        assert_eq!(gpus("gptoss_itl5000_otl250_mixed_pd_p1xtp2-d2xtp2"), 6);
    }

    /// Every layout style × group sizes × tags × name frames, as categories.
    #[test]
    fn layout_styles_by_category() {
        let frames = [
            "",
            "gptoss_itl5000_otl250_mixed_",
            "gptoss_itl10000_otl500_",
            "gptoss_H200_itl5000_otl250_mixed_",
            "gptoss_itl20000_otl250_decode-only_",
            "gptoss_itl5000_otl1_prefill-only_",
        ];
        let suffixes = [
            "",
            "-packed-ucx",
            "-ucx120",
            "-spread-libfabric",
            "-bck",
            "-pack-wo-verbosity",
            "-spread-ucx120-before-rm-patch",
        ];
        for pre in frames {
            for n in [1u32, 2, 3, 4, 8] {
                for tp in [1u32, 2, 4, 8] {
                    for ep in [false, true] {
                        let t = if ep {
                            format!("tpep{tp}")
                        } else {
                            format!("tp{tp}")
                        };
                        // collocated, plain and with a style word
                        for exp in [format!("{n}x{t}"), format!("baseline_{n}x{t}")] {
                            let name = format!("{pre}{exp}");
                            let l = parse_label(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
                            assert_eq!(l.mode, DeployMode::Collocated, "{name}");
                            assert_eq!(l.collocated, Some(Replicas { num: n, tp }), "{name}");
                            assert_eq!((l.total_gpus, l.expert_parallel), (n * tp, ep), "{name}");
                            assert_eq!(l.label, format!("{n}x{t}"));
                        }
                        for (k, dtp) in [(1u32, tp), (3, tp), (1, tp * 2), (2, 1)] {
                            let dt = format!("tp{dtp}");
                            for suffix in suffixes {
                                for exp in [
                                    format!("{n}x{t}-{k}x{dt}{suffix}"),
                                    format!("pd_p{n}x{t}-d{k}x{dt}{suffix}"),
                                    format!("{n}p{t}-{k}d{dt}{suffix}"),
                                    format!("spread_srd_{n}x{t}-{k}x{dt}{suffix}"),
                                ] {
                                    if exp.contains("spread") && exp.contains("pack") {
                                        continue; // contradictory placement words
                                    }
                                    let name = format!("{pre}{exp}");
                                    let l = parse_label(&name)
                                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                                    assert_eq!(l.prefill, Some(Replicas { num: n, tp }), "{name}");
                                    assert_eq!(
                                        l.decode,
                                        Some(Replicas { num: k, tp: dtp }),
                                        "{name}"
                                    );
                                    assert_eq!(l.ep_flags(), (ep, false), "{name}");
                                    assert_eq!(l.total_gpus, n * tp + k * dtp, "{name}");
                                    let spread_word = exp.contains("spread");
                                    let want = if spread_word {
                                        DeployMode::PdSpread
                                    } else if exp.contains("pack") || l.total_gpus <= 8 {
                                        DeployMode::PdPack
                                    } else {
                                        DeployMode::PdSpread
                                    };
                                    assert_eq!(l.mode, want, "{name}");
                                    assert_eq!(
                                        l.gpu,
                                        pre.contains("H200").then_some(GpuKind::H200),
                                        "{name}"
                                    );
                                    if suffix.contains("libfabric") {
                                        assert_eq!(l.nixl_backend, Some(NixlBackend::Libfabric));
                                    } else if suffix.contains("ucx") {
                                        assert_eq!(l.nixl_backend, Some(NixlBackend::Ucx));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn tags_are_kept_and_do_not_change_the_layout() {
        let l =
            parse_label("gptoss_itl5000_otl250_mixed_1xtp4-1xtp4-spread-ucx120-before-rm-patch")
                .unwrap();
        assert_eq!(l.tags, ["spread", "ucx120", "before", "rm", "patch"]);
        assert_eq!(
            (l.mode, l.placement),
            (DeployMode::PdSpread, Some(Placement::Spread))
        );
        let l = parse_label("gptoss_itl10000_otl500_4ptp1-2dtp2-packed-ucx-bck").unwrap();
        assert_eq!(l.label, "p4xtp1-d2xtp2");
        assert_eq!(l.placement, Some(Placement::Pack));
        assert!(l.tags.contains(&"bck".to_string()));
        let l = parse_label("gptoss_itl5000_otl250_mixed_1xtp4-1xtpep4").unwrap();
        assert_eq!(
            (l.label.as_str(), l.ep_flags()),
            ("p1xtp4-d1xtpep4", (false, true))
        );
        // 16 GPUs with no placement word cannot be packed on one 8-GPU node
        let l = parse_label("gptoss_itl5000_otl250_mixed_1xtp4-3xtp4-ucx120").unwrap();
        assert_eq!(
            (l.mode, l.placement, l.total_gpus),
            (DeployMode::PdSpread, None, 16)
        );
        // a model name with digits and dashes is not a layout
        let l = parse_label("openai--gpt-oss-120b_itl5000_otl250_mixed_pd_p2xtp1-d1xtp2").unwrap();
        assert_eq!(l.label, "p2xtp1-d1xtp2");
    }

    #[test]
    fn unparseable_names_are_reported() {
        for bad in [
            "gptoss_itl5000_otl250_mixed_myexp",
            "xtp2",
            "4xtp",
            "4xtp2_2xtp4",
            "p1xtp2-dx",
            "d1xtp2-p1xtp2",
            "1dtp2-3ptp2",
            "1xtp2-2xtp2-3xtp2",
            "0xtp2",
            "2xtp0",
            "",
        ] {
            assert!(parse_label(bad).is_err(), "{bad}");
        }
        let e = parse_label("d1xtp2-p1xtp2").unwrap_err().to_string();
        assert!(e.contains("decode group comes before"), "{e}");
    }
}
