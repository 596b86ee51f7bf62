//! Every layout the launcher can deploy on a cluster of `gpus` GPUs (`gpus_per_node` per
//! node): collocated N×TP, PD pack (P and D on one node) and PD spread (P on one node, D
//! on another), with every P/D replica count and TP under vLLM's rule that the prefill TP
//! is not higher than the decode TP (`DeploymentSpec::validate`), and the expert-parallel
//! variant (`tpep`) of every group with TP > 1. Layouts using fewer GPUs than the cluster
//! are included: the ranking is per GPU.

use pd_common::deployment::{DeploymentSpec, GpuKind, Layout as Groups, PdPlacement, Replicas};
use pd_common::label::Group;

use crate::sim::engine::ExpertParallel;

/// One candidate deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub spec: DeploymentSpec,
    pub ep: ExpertParallel,
}

impl Layout {
    /// `4xtp2`, `2xtpep4`, `pack_p1xtp4-d1xtp4`, `spread_p1xtp2-d1xtpep4`.
    pub fn name(&self) -> String {
        let tp =
            |r: Replicas, ep: bool| format!("{}x{}{}", r.num, if ep { "tpep" } else { "tp" }, r.tp);
        match self.spec.layout {
            Groups::Collocated(c) => tp(c, self.ep.first),
            Groups::Pd {
                placement,
                prefill: p,
                decode: d,
            } => format!(
                "{}_p{}-d{}",
                match placement {
                    PdPlacement::Spread => "spread",
                    PdPlacement::Pack => "pack",
                },
                tp(p, self.ep.first),
                tp(d, self.ep.decode)
            ),
        }
    }

    pub fn gpus(&self) -> u32 {
        self.spec.total_gpus()
    }

    /// The groups as a name would describe them (for matching real runs).
    pub fn groups(&self) -> Vec<Group> {
        let g = |r: Replicas, ep: bool| Group {
            num: r.num,
            tp: r.tp,
            ep,
        };
        let eps = [self.ep.first, self.ep.decode];
        (self.spec.layout.groups().into_iter())
            .zip(eps)
            .map(|(r, ep)| g(r, ep))
            .collect()
    }
}

/// What to enumerate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub gpus: u32,
    pub gpus_per_node: u32,
    pub gpu: GpuKind,
    pub collocated: bool,
    pub pd_pack: bool,
    pub pd_spread: bool,
    /// Include expert-parallel (`tpep`) variants.
    pub expert_parallel: bool,
}

fn tps(gpus_per_node: u32) -> Vec<u32> {
    (0..)
        .map(|k| 1u32 << k)
        .take_while(|t| *t <= gpus_per_node)
        .collect()
}

fn ep_options(tp: u32, allowed: bool) -> Vec<bool> {
    if allowed && tp > 1 {
        vec![false, true]
    } else {
        vec![false]
    }
}

/// All feasible layouts, in a stable order (collocated, pack, spread; small first).
pub fn enumerate(space: &Space) -> Vec<Layout> {
    let g = space.gpus;
    let node = space.gpus_per_node.max(1);
    let nodes = g / node;
    let mut out = Vec::new();
    let mut push = |spec: DeploymentSpec, ep: ExpertParallel| {
        let mut spec = spec;
        spec.gpu = space.gpu;
        if spec.validate(node).is_ok() && spec.total_gpus() <= g {
            out.push(Layout { spec, ep });
        }
    };
    if space.collocated {
        for tp in tps(node) {
            for n in 1..=g / tp {
                for ep in ep_options(tp, space.expert_parallel) {
                    push(
                        DeploymentSpec::collocated(n, tp),
                        ExpertParallel {
                            first: ep,
                            decode: ep,
                        },
                    );
                }
            }
        }
    }
    let placements: Vec<PdPlacement> = [
        (space.pd_pack, PdPlacement::Pack),
        (space.pd_spread && nodes >= 2, PdPlacement::Spread),
    ]
    .into_iter()
    .filter_map(|(on, m)| on.then_some(m))
    .collect();
    for placement in placements {
        for ptp in tps(node) {
            for dtp in tps(node).into_iter().filter(|d| *d >= ptp) {
                for np in 1..=node / ptp {
                    for nd in 1..=node / dtp {
                        for pep in ep_options(ptp, space.expert_parallel) {
                            for dep in ep_options(dtp, space.expert_parallel) {
                                push(
                                    DeploymentSpec::pd(
                                        placement,
                                        Replicas { num: np, tp: ptp },
                                        Replicas { num: nd, tp: dtp },
                                    ),
                                    ExpertParallel {
                                        first: pep,
                                        decode: dep,
                                    },
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(gpus: u32, ep: bool) -> Space {
        Space {
            gpus,
            gpus_per_node: 8,
            gpu: GpuKind::H100,
            collocated: true,
            pd_pack: true,
            pd_spread: true,
            expert_parallel: ep,
        }
    }

    #[test]
    fn every_layout_is_valid_and_unique() {
        for gpus in [1u32, 4, 8, 16, 24] {
            for ep in [false, true] {
                let all = enumerate(&space(gpus, ep));
                assert!(!all.is_empty());
                let mut names: Vec<String> = all.iter().map(Layout::name).collect();
                let n = names.len();
                names.sort();
                names.dedup();
                assert_eq!(names.len(), n, "duplicates for {gpus} GPUs");
                for l in &all {
                    assert!(l.spec.validate(8).is_ok(), "{}", l.name());
                    assert!(l.gpus() <= gpus);
                    if let Groups::Pd {
                        prefill: p,
                        decode: d,
                        ..
                    } = l.spec.layout
                    {
                        assert!(p.tp <= d.tp, "{}", l.name());
                    }
                    if !ep {
                        assert!(!l.ep.first && !l.ep.decode);
                    }
                }
            }
        }
    }

    #[test]
    fn sixteen_gpus_cover_the_studys_layouts() {
        let all = enumerate(&space(16, true));
        let names: Vec<String> = all.iter().map(Layout::name).collect();
        for want in [
            "4xtp2",
            "2xtp4",
            "8xtp1",
            "16xtp1",
            "2xtp8",
            "2xtpep4",
            "pack_p1xtp4-d1xtp4",
            "pack_p1xtp2-d3xtp2",
            "pack_p2xtp1-d1xtp2",
            "pack_p1xtp4-d1xtpep4",
            "spread_p1xtp4-d1xtp4",
            "spread_p1xtp8-d1xtp8",
            "spread_p2xtp2-d1xtp4",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing");
        }
        // a P TP above the D TP is never proposed; pack never exceeds a node
        assert!(!names.iter().any(|n| n == "pack_p1xtp4-d1xtp2"));
        assert!(!names.iter().any(|n| n == "pack_p1xtp8-d1xtp8"));
        assert!(all.len() >= 200, "{} layouts", all.len());
        // one node: no spread
        assert!(enumerate(&space(8, false))
            .iter()
            .all(|l| l.spec.mode() != pd_common::DeployMode::PdSpread));
    }
}
