//! Which nodes the P and D ranks of each probe configuration go to (Ray): pack puts both
//! on one node, spread on two different ones. With `--memory vram` every rank holds one GPU,
//! so the nodes must have enough of them; with `--memory dram` any alive node will do.

use pd_common::probe::{Placement, ProbeConfig, ProbeMemory};

use crate::ray::nodes::Node;

/// The P and D nodes of one configuration, or why it cannot be placed.
pub type Assignment = Result<(String, String), String>;

fn fits(n: &Node, gpus: u32, memory: ProbeMemory) -> bool {
    n.alive && (memory == ProbeMemory::Dram || n.gpus >= gpus)
}

fn describe(nodes: &[&Node]) -> String {
    if nodes.is_empty() {
        return "none".into();
    }
    nodes
        .iter()
        .map(|n| format!("{} ({} GPUs)", n.ip, n.gpus))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Place `c` on `nodes` (sorted by IP for a deterministic choice), honouring `--nodes`.
pub fn assign(
    c: &ProbeConfig,
    nodes: &[Node],
    pinned: Option<&(String, Option<String>)>,
) -> Assignment {
    let mut alive: Vec<&Node> = nodes.iter().filter(|n| n.alive).collect();
    alive.sort_by(|a, b| a.ip.cmp(&b.ip));
    let find = |ip: &str| alive.iter().copied().find(|n| n.ip == ip);
    let gpu_note = |need: u32| match c.memory {
        ProbeMemory::Vram => format!(" with {need} GPU(s)"),
        ProbeMemory::Dram => String::new(),
    };
    match c.placement {
        Placement::Pack => {
            let need = c.p_tp + c.d_tp;
            let node = match pinned {
                Some((p, _)) => find(p).ok_or_else(|| {
                    format!(
                        "--nodes {p} is not an alive node of the cluster ({})",
                        describe(&alive)
                    )
                })?,
                None => alive
                    .iter()
                    .copied()
                    .find(|n| fits(n, need, c.memory))
                    .ok_or_else(|| {
                        format!(
                            "pack needs one node{}; alive nodes: {}",
                            gpu_note(need),
                            describe(&alive)
                        )
                    })?,
            };
            if !fits(node, need, c.memory) {
                return Err(format!(
                    "pack needs {need} GPUs on node {}, which has {}",
                    node.ip, node.gpus
                ));
            }
            Ok((node.ip.clone(), node.ip.clone()))
        }
        Placement::Spread => {
            let (p, d) = match pinned {
                Some((p, Some(d))) => {
                    let pn = find(p).ok_or_else(|| {
                        format!(
                            "--nodes {p} is not an alive node of the cluster ({})",
                            describe(&alive)
                        )
                    })?;
                    let dn = find(d).ok_or_else(|| {
                        format!(
                            "--nodes {d} is not an alive node of the cluster ({})",
                            describe(&alive)
                        )
                    })?;
                    (pn, dn)
                }
                Some((p, None)) => {
                    return Err(format!(
                        "spread needs two nodes: --nodes {p} names only the P node (give P_IP,D_IP)"
                    ))
                }
                None => {
                    let pn = alive
                        .iter()
                        .copied()
                        .find(|n| fits(n, c.p_tp, c.memory))
                        .ok_or_else(|| {
                            format!(
                                "no node for the P ranks{}; alive nodes: {}",
                                gpu_note(c.p_tp),
                                describe(&alive)
                            )
                        })?;
                    let dn = alive
                        .iter()
                        .copied()
                        .find(|n| n.ip != pn.ip && fits(n, c.d_tp, c.memory))
                        .ok_or_else(|| {
                            format!(
                                "spread needs a second node{} besides {} for the D ranks; alive nodes: {}",
                                gpu_note(c.d_tp),
                                pn.ip,
                                describe(&alive)
                            )
                        })?;
                    (pn, dn)
                }
            };
            if p.ip == d.ip {
                return Err(format!(
                    "spread needs two different nodes, --nodes names {} twice",
                    p.ip
                ));
            }
            for (n, need, side) in [(p, c.p_tp, "P"), (d, c.d_tp, "D")] {
                if !fits(n, need, c.memory) {
                    return Err(format!(
                        "the {side} ranks need {need} GPUs on node {}, which has {}",
                        n.ip, n.gpus
                    ));
                }
            }
            Ok((p.ip.clone(), d.ip.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pd_common::deployment::NixlBackend;

    fn node(ip: &str, gpus: u32) -> Node {
        Node {
            ip: ip.into(),
            gpus,
            alive: true,
            is_head: false,
        }
    }

    fn cfg(placement: Placement, memory: ProbeMemory, p: u32, d: u32) -> ProbeConfig {
        ProbeConfig {
            id: "c1".into(),
            placement,
            nixl_backend: NixlBackend::Ucx,
            memory,
            p_tp: p,
            d_tp: d,
            block_bytes: 4096,
            blocks: 4,
            iterations: 2,
        }
    }

    #[test]
    fn pack_and_spread_on_gpu_nodes() {
        let nodes = [node("10.0.0.2", 8), node("10.0.0.1", 2)];
        let v = ProbeMemory::Vram;
        assert_eq!(
            assign(&cfg(Placement::Pack, v, 1, 1), &nodes, None).unwrap(),
            ("10.0.0.1".into(), "10.0.0.1".into())
        );
        assert_eq!(
            assign(&cfg(Placement::Pack, v, 2, 2), &nodes, None).unwrap(),
            ("10.0.0.2".into(), "10.0.0.2".into())
        );
        assert_eq!(
            assign(&cfg(Placement::Spread, v, 1, 4), &nodes, None).unwrap(),
            ("10.0.0.1".into(), "10.0.0.2".into())
        );
        let e = assign(&cfg(Placement::Spread, v, 4, 4), &nodes, None).unwrap_err();
        assert!(e.contains("second node with 4 GPU(s)"), "{e}");
        let e = assign(&cfg(Placement::Pack, v, 8, 8), &nodes, None).unwrap_err();
        assert!(e.contains("10.0.0.1 (2 GPUs), 10.0.0.2 (8 GPUs)"), "{e}");
    }

    #[test]
    fn dram_ignores_gpus_and_dead_nodes_are_skipped() {
        let mut dead = node("10.0.0.3", 8);
        dead.alive = false;
        let nodes = [node("10.0.0.2", 0), dead, node("10.0.0.1", 0)];
        let d = ProbeMemory::Dram;
        assert_eq!(
            assign(&cfg(Placement::Spread, d, 1, 2), &nodes, None).unwrap(),
            ("10.0.0.1".into(), "10.0.0.2".into())
        );
        let one = [node("10.0.0.1", 0)];
        assert!(assign(&cfg(Placement::Spread, d, 1, 1), &one, None)
            .unwrap_err()
            .contains("second node"));
        assert!(assign(&cfg(Placement::Pack, ProbeMemory::Vram, 1, 1), &one, None).is_err());
    }

    #[test]
    fn pinned_nodes() {
        let nodes = [node("a", 1), node("b", 1)];
        let d = ProbeMemory::Dram;
        let pin = ("b".to_string(), Some("a".to_string()));
        assert_eq!(
            assign(&cfg(Placement::Spread, d, 1, 1), &nodes, Some(&pin)).unwrap(),
            ("b".into(), "a".into())
        );
        assert_eq!(
            assign(&cfg(Placement::Pack, d, 1, 1), &nodes, Some(&pin)).unwrap(),
            ("b".into(), "b".into())
        );
        let twice = ("a".to_string(), Some("a".to_string()));
        assert!(
            assign(&cfg(Placement::Spread, d, 1, 1), &nodes, Some(&twice))
                .unwrap_err()
                .contains("twice")
        );
        let one = ("a".to_string(), None);
        assert!(assign(&cfg(Placement::Spread, d, 1, 1), &nodes, Some(&one)).is_err());
        let gone = ("z".to_string(), Some("a".to_string()));
        assert!(
            assign(&cfg(Placement::Spread, d, 1, 1), &nodes, Some(&gone))
                .unwrap_err()
                .contains("not an alive node")
        );
        assert!(assign(
            &cfg(Placement::Pack, ProbeMemory::Vram, 1, 1),
            &nodes,
            Some(&pin)
        )
        .unwrap_err()
        .contains("needs 2 GPUs"));
    }
}
