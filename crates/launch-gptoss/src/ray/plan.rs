//! Placement planning: which node each replica group is pinned to, checked against the
//! cluster's alive GPU nodes before anything is deployed (Ray itself would leave an
//! infeasible application DEPLOYING forever).
//!
//! GPU counts are the nodes' totals (`resources_total.GPU`); GPUs already held by other
//! applications are not subtracted.

use std::fmt;

use pd_common::deployment::{DeployMode, DeploymentSpec, Layout, PdPlacement, Replicas};

use super::error::RayError;
use super::nodes::{describe, Node};

/// Which LLM config a group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Collocated,
    Prefill,
    Decode,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Collocated => "collocated",
            Role::Prefill => "prefill",
            Role::Decode => "decode",
        }
    }
}

/// One replica group and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub role: Role,
    pub replicas: Replicas,
    /// Pinned node IP, or `None` when Ray may place replicas on any node.
    pub node: Option<String>,
}

/// The placement of a whole deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub mode: DeployMode,
    pub groups: Vec<Group>,
    /// Node the ingress (and PD proxy) replicas are pinned to: the node of a collocated or
    /// pd-pack deployment that fits one node; none in pd-spread (as the seed's launcher).
    pub ingress_node: Option<String>,
    /// Nodes the engines may use.
    pub nodes: Vec<String>,
    /// GPUs per node of the nodes used (the largest).
    pub gpus_per_node: u32,
    /// Explanations printed with the plan.
    pub notes: Vec<String>,
}

impl Plan {
    pub fn group(&self, role: Role) -> Option<&Group> {
        self.groups.iter().find(|g| g.role == role)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "placement plan ({}):", self.mode)?;
        for g in &self.groups {
            let r = g.replicas;
            let place = match &g.node {
                Some(ip) => format!("node {ip} (bundles pinned with node:{ip})"),
                None => "any node with enough GPUs (not pinned)".to_string(),
            };
            writeln!(
                f,
                "  {:<10} {}×TP{} = {} GPUs on {}",
                g.role.as_str(),
                r.num,
                r.tp,
                r.gpus(),
                place
            )?;
        }
        match &self.ingress_node {
            Some(ip) => writeln!(f, "  ingress    pinned to node {ip}")?,
            None => writeln!(f, "  ingress    not pinned")?,
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
    }
}

/// Order candidates best-fit first (fewest spare GPUs), then by IP for determinism.
fn fitting<'a>(nodes: &[&'a Node], need: u32) -> Vec<&'a Node> {
    let mut c: Vec<&Node> = nodes.iter().copied().filter(|n| n.gpus >= need).collect();
    c.sort_by(|a, b| a.gpus.cmp(&b.gpus).then_with(|| a.ip.cmp(&b.ip)));
    c
}

/// Plan `spec` on `nodes` (all listed nodes; dead and GPU-less ones are ignored).
pub fn plan(spec: &DeploymentSpec, nodes: &[Node]) -> Result<Plan, RayError> {
    let gpu_nodes: Vec<&Node> = nodes.iter().filter(|n| n.alive && n.gpus > 0).collect();
    if gpu_nodes.is_empty() {
        let alive = nodes.iter().filter(|n| n.alive).count();
        return Err(RayError::Preflight(format!(
            "the cluster has no alive node with GPUs ({} node(s) listed, {alive} alive, none with a GPU resource)",
            nodes.len()
        )));
    }
    let have = describe(&gpu_nodes);
    match spec.layout {
        Layout::Collocated(c) => {
            let need = c.gpus();
            if let Some(n) = fitting(&gpu_nodes, need).first() {
                return Ok(Plan {
                    mode: spec.mode(),
                    groups: vec![Group {
                        role: Role::Collocated,
                        replicas: c,
                        node: Some(n.ip.clone()),
                    }],
                    ingress_node: Some(n.ip.clone()),
                    nodes: vec![n.ip.clone()],
                    gpus_per_node: n.gpus,
                    notes: vec![format!(
                        "all {need} GPUs fit on node {} ({} GPUs)",
                        n.ip, n.gpus
                    )],
                });
            }
            // More than any single node: every replica still needs its TP group on one node.
            let slots: u32 = gpu_nodes.iter().map(|n| n.gpus / c.tp).sum();
            if slots < c.num {
                return Err(RayError::Preflight(format!(
                    "collocated {}×TP{} needs {need} GPUs in whole groups of {} on one node each; \
                     the alive GPU nodes hold only {slots} such group(s): {have}",
                    c.num, c.tp, c.tp
                )));
            }
            let used: Vec<&Node> = gpu_nodes
                .iter()
                .copied()
                .filter(|n| n.gpus >= c.tp)
                .collect();
            Ok(Plan {
                mode: spec.mode(),
                groups: vec![Group {
                    role: Role::Collocated,
                    replicas: c,
                    node: None,
                }],
                ingress_node: None,
                nodes: used.iter().map(|n| n.ip.clone()).collect(),
                gpus_per_node: used.iter().map(|n| n.gpus).max().unwrap_or(0),
                notes: vec![format!(
                    "{need} GPUs are more than any single node has: replicas are not pinned, \
                     Ray places each replica's {} bundles on one node (STRICT_PACK) among {}",
                    c.tp,
                    describe(&used)
                )],
            })
        }
        Layout::Pd {
            placement,
            prefill: p,
            decode: d,
        } => {
            if p.tp > d.tp {
                return Err(RayError::Preflight(format!(
                    "prefill TP {} is higher than decode TP {}: vLLM's NixlConnector cannot transfer \
                     KV from a higher TP degree to a lower one (use --p-tp <= --d-tp)",
                    p.tp, d.tp
                )));
            }
            if placement == PdPlacement::Pack {
                let need = p.gpus() + d.gpus();
                let n = fitting(&gpu_nodes, need)
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        RayError::Preflight(format!(
                            "pd-pack needs one node with {}×TP{} + {}×TP{} = {need} GPUs; \
                         the alive GPU nodes are: {have}",
                            p.num, p.tp, d.num, d.tp
                        ))
                    })?;
                return Ok(Plan {
                    mode: spec.mode(),
                    groups: vec![
                        Group {
                            role: Role::Prefill,
                            replicas: p,
                            node: Some(n.ip.clone()),
                        },
                        Group {
                            role: Role::Decode,
                            replicas: d,
                            node: Some(n.ip.clone()),
                        },
                    ],
                    ingress_node: Some(n.ip.clone()),
                    nodes: vec![n.ip.clone()],
                    gpus_per_node: n.gpus,
                    notes: vec![format!(
                        "prefill and decode share node {} ({} GPUs)",
                        n.ip, n.gpus
                    )],
                });
            }
            if gpu_nodes.len() < 2 {
                return Err(RayError::Preflight(format!(
                    "pd-spread puts prefill and decode on two different nodes, but the cluster has \
                     only one alive GPU node: {have} (use --mode pd-pack for one node)"
                )));
            }
            // Best pair: least spare GPUs overall, deterministic tie-break.
            let mut best: Option<(u32, &Node, &Node)> = None;
            for pn in fitting(&gpu_nodes, p.gpus()) {
                for dn in fitting(&gpu_nodes, d.gpus()) {
                    if pn.ip == dn.ip {
                        continue;
                    }
                    let spare = (pn.gpus - p.gpus()) + (dn.gpus - d.gpus());
                    if best.is_none_or(|(s, _, _)| spare < s) {
                        best = Some((spare, pn, dn));
                    }
                }
            }
            let (_, pn, dn) = best.ok_or_else(|| {
                RayError::Preflight(format!(
                    "pd-spread needs two different nodes, one with {}×TP{} = {} GPUs for prefill and \
                     another with {}×TP{} = {} GPUs for decode; the alive GPU nodes are: {have}",
                    p.num,
                    p.tp,
                    p.gpus(),
                    d.num,
                    d.tp,
                    d.gpus()
                ))
            })?;
            Ok(Plan {
                mode: spec.mode(),
                groups: vec![
                    Group {
                        role: Role::Prefill,
                        replicas: p,
                        node: Some(pn.ip.clone()),
                    },
                    Group {
                        role: Role::Decode,
                        replicas: d,
                        node: Some(dn.ip.clone()),
                    },
                ],
                // As the seed's launcher: in pd-spread the ingress (and proxy) replicas are
                // left to Ray's placement.
                ingress_node: None,
                nodes: vec![pn.ip.clone(), dn.ip.clone()],
                gpus_per_node: pn.gpus.max(dn.gpus),
                notes: vec![format!(
                    "picked node {} ({} GPUs) for prefill and node {} ({} GPUs) for decode",
                    pn.ip, pn.gpus, dn.ip, dn.gpus
                )],
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ip: &str, gpus: u32) -> Node {
        Node {
            ip: ip.into(),
            gpus,
            alive: true,
            is_head: false,
        }
    }
    fn rep(num: u32, tp: u32) -> Replicas {
        Replicas { num, tp }
    }

    #[test]
    fn collocated_pins_to_the_best_fitting_node() {
        let nodes = [
            node("10.0.0.9", 0),
            node("10.0.0.2", 8),
            node("10.0.0.1", 4),
        ];
        let p = plan(&DeploymentSpec::collocated(2, 2), &nodes).unwrap();
        assert_eq!(p.groups[0].node.as_deref(), Some("10.0.0.1"));
        let p = plan(&DeploymentSpec::collocated(4, 2), &nodes).unwrap();
        assert_eq!(p.groups[0].node.as_deref(), Some("10.0.0.2"));
        // 12 GPUs: more than one node, but 6 groups of 2 fit over both nodes.
        let p = plan(&DeploymentSpec::collocated(6, 2), &nodes).unwrap();
        assert_eq!(p.groups[0].node, None);
        assert_eq!(
            p.nodes,
            vec!["10.0.0.2".to_string(), "10.0.0.1".to_string()]
        );
        let e = plan(&DeploymentSpec::collocated(4, 4), &nodes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 such group"), "{e}");
    }

    #[test]
    fn pack_needs_one_node_with_all_gpus() {
        let spec = DeploymentSpec::pd(PdPlacement::Pack, rep(2, 1), rep(4, 2));
        let p = plan(&spec, &[node("a", 8), node("b", 16)]).unwrap();
        assert_eq!(p.nodes, vec!["b".to_string()]);
        let e = plan(&spec, &[node("a", 8), node("b", 8)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("2×TP1 + 4×TP2 = 10 GPUs"), "{e}");
        assert!(e.contains("a (8 GPUs), b (8 GPUs)"), "{e}");
    }

    #[test]
    fn spread_needs_two_nodes() {
        let spec = DeploymentSpec::pd(PdPlacement::Spread, rep(1, 4), rep(1, 4));
        let p = plan(&spec, &[node("a", 8), node("b", 4), node("c", 4)]).unwrap();
        assert_eq!(p.nodes, vec!["b".to_string(), "c".to_string()]);
        assert!(p.notes[0].contains("picked node b"));
        let e = plan(&spec, &[node("a", 8)]).unwrap_err().to_string();
        assert!(e.contains("only one alive GPU node"), "{e}");
        let mut dead = node("b", 8);
        dead.alive = false;
        assert!(plan(&spec, &[node("a", 8), dead]).is_err());
        let big = DeploymentSpec::pd(PdPlacement::Spread, rep(2, 4), rep(1, 4));
        let e = plan(&big, &[node("a", 8), node("b", 4)]).unwrap();
        assert_eq!(e.group(Role::Prefill).unwrap().node.as_deref(), Some("a"));
        let e = plan(&big, &[node("a", 4), node("b", 4)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("8 GPUs for prefill"), "{e}");
    }

    #[test]
    fn pd_tp_rule_and_no_gpus() {
        let spec = DeploymentSpec::pd(PdPlacement::Pack, rep(1, 4), rep(1, 2));
        assert!(plan(&spec, &[node("a", 8)])
            .unwrap_err()
            .to_string()
            .contains("NixlConnector"));
        let e = plan(&DeploymentSpec::collocated(1, 1), &[node("a", 0)]).unwrap_err();
        assert!(e.to_string().contains("no alive node with GPUs"));
    }
}
