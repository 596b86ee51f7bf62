//! Which node each replica runs on, and therefore which link a PD transfer uses.
//!
//! Each replica's TP GPUs sit on one node (Ray Serve LLM places a replica's workers with
//! a `STRICT_PACK` placement group). Replicas are placed first-fit, P (or collocated)
//! replicas first, then D replicas:
//! * collocated and pd-pack: every replica on the first node with room;
//! * pd-spread: P replicas first-fit from node 0; D replicas prefer nodes holding no P
//!   replica and only fall back to a P node when those are full.
//!
//! A layout bigger than one node therefore spans several nodes, as it did on the real
//! cluster (`1xtp4-3xtp4` on two 8-GPU nodes: P and one D on node 0, two D on node 1),
//! and a transfer between replicas on the same node goes over NVLink even in pd-spread.

use pd_common::deployment::{DeployMode, Replicas};

/// Node index of every replica (P or collocated first, then D), and the node count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub node_of: Vec<u32>,
    pub nodes: u32,
}

fn first_fit(free: &mut Vec<u32>, tp: u32, gpus_per_node: u32, order: &[u32]) -> u32 {
    for &n in order {
        if let Some(f) = free.get_mut(n as usize) {
            if *f >= tp {
                *f -= tp;
                return n;
            }
        }
    }
    // fragmentation: open a new node
    free.push(gpus_per_node - tp);
    (free.len() - 1) as u32
}

/// Place the replica groups (`groups[0]` = collocated or P, `groups[1]` = D) on the
/// fewest nodes that hold them (at least two for pd-spread). Every TP must be ≤
/// `gpus_per_node` (checked by the caller).
pub fn place(mode: DeployMode, groups: &[Replicas], gpus_per_node: u32) -> Placement {
    let g = gpus_per_node.max(1);
    let total: u32 = groups.iter().map(Replicas::gpus).sum();
    let min_nodes = if mode == DeployMode::PdSpread { 2 } else { 1 };
    let budget = total.div_ceil(g).max(min_nodes);
    let mut free: Vec<u32> = vec![g; budget as usize];
    let mut node_of = Vec::new();
    let mut p_nodes: Vec<u32> = Vec::new();
    for (gi, grp) in groups.iter().enumerate() {
        for _ in 0..grp.num {
            let nodes: Vec<u32> = (0..free.len() as u32).collect();
            let order: Vec<u32> = if mode == DeployMode::PdSpread && gi == 1 {
                // D: nodes without P first, then the P nodes
                let (a, b): (Vec<u32>, Vec<u32>) = nodes.iter().partition(|n| !p_nodes.contains(n));
                a.into_iter().chain(b).collect()
            } else {
                nodes
            };
            let n = first_fit(&mut free, grp.tp.min(g), g, &order);
            if gi == 0 && mode.is_pd() && !p_nodes.contains(&n) {
                p_nodes.push(n);
            }
            node_of.push(n);
        }
    }
    let nodes = node_of.iter().copied().max().map_or(1, |m| m + 1);
    Placement { node_of, nodes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(num: u32, tp: u32) -> Replicas {
        Replicas { num, tp }
    }

    #[test]
    fn pack_fills_nodes_in_order() {
        let p = place(DeployMode::PdPack, &[r(2, 1), r(4, 2)], 8);
        assert_eq!(p.node_of, vec![0, 0, 0, 0, 0, 1]);
        assert_eq!(p.nodes, 2);
        let c = place(DeployMode::Collocated, &[r(8, 2)], 8);
        assert_eq!(c.node_of, vec![0, 0, 0, 0, 1, 1, 1, 1]);
    }

    #[test]
    fn spread_keeps_d_off_the_p_node_while_it_can() {
        let p = place(DeployMode::PdSpread, &[r(1, 4), r(1, 4)], 8);
        assert_eq!((p.node_of.clone(), p.nodes), (vec![0, 1], 2));
        // 1xtp4-3xtp4 on two 8-GPU nodes: two D on node 1, the third shares node 0 with P
        let p = place(DeployMode::PdSpread, &[r(1, 4), r(3, 4)], 8);
        assert_eq!((p.node_of.clone(), p.nodes), (vec![0, 1, 1, 0], 2));
        let p = place(DeployMode::PdSpread, &[r(2, 2), r(2, 4)], 8);
        assert_eq!(p.node_of, vec![0, 0, 1, 1]);
        // pack order: P and the first D fill node 0
        let p = place(DeployMode::PdPack, &[r(1, 4), r(3, 4)], 8);
        assert_eq!((p.node_of.clone(), p.nodes), (vec![0, 0, 1, 1], 2));
    }
}
