//! Cluster nodes: parsed from `GET /api/v0/nodes` or from `--nodes IP:GPUS`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::error::RayError;

/// One Ray node as far as placement is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Node IP (the `node:<ip>` resource pins to it).
    pub ip: String,
    /// Total GPUs (whole ones; a node without a `GPU` resource has 0).
    pub gpus: u32,
    /// `state == "ALIVE"`.
    pub alive: bool,
    pub is_head: bool,
}

impl Node {
    /// The custom resource Ray gives every node: `node:<ip>`.
    pub fn resource(&self) -> String {
        format!("node:{}", self.ip)
    }
}

/// Parse one `--nodes` entry, `IP:GPUS`.
pub fn parse_node_arg(entry: &str) -> Result<Node, RayError> {
    let bad = |reason: &str| RayError::BadNode {
        entry: entry.to_string(),
        reason: reason.to_string(),
    };
    let (ip, gpus) = entry
        .trim()
        .rsplit_once(':')
        .ok_or_else(|| bad("no ':GPUS'"))?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if ip.is_empty() {
        return Err(bad("empty IP"));
    }
    if !ip
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '_'))
    {
        return Err(bad("the IP contains unexpected characters"));
    }
    let gpus: u32 = gpus
        .trim()
        .parse()
        .map_err(|_| bad("GPUS is not a whole number"))?;
    Ok(Node {
        ip: ip.to_string(),
        gpus,
        alive: true,
        is_head: false,
    })
}

/// Parse all `--nodes` entries; duplicates are an error.
pub fn parse_node_args(entries: &[String]) -> Result<Vec<Node>, RayError> {
    let mut out: Vec<Node> = Vec::new();
    for e in entries.iter().filter(|e| !e.trim().is_empty()) {
        let n = parse_node_arg(e)?;
        if out.iter().any(|o| o.ip == n.ip) {
            return Err(RayError::BadNode {
                entry: e.clone(),
                reason: "this IP is listed twice".into(),
            });
        }
        out.push(n);
    }
    Ok(out)
}

/// The body of `GET /api/v0/nodes`: `{"result":bool,"msg":…,"data":{"result":{"result":[…]}}}`.
#[derive(Debug, Deserialize)]
struct NodesBody {
    #[serde(default)]
    result: Option<bool>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    data: Option<NodesData>,
}

#[derive(Debug, Deserialize)]
struct NodesData {
    result: NodesPage,
}

#[derive(Debug, Deserialize)]
struct NodesPage {
    result: Vec<NodeEntry>,
}

/// One node of the state API (the fields placement reads).
#[derive(Debug, Deserialize)]
struct NodeEntry {
    node_ip: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    is_head_node: Option<bool>,
    /// Resource name → amount (`GPU`, `CPU`, `node:<ip>`, custom resources).
    #[serde(default)]
    resources_total: BTreeMap<String, Value>,
}

/// Parse the body of `GET /api/v0/nodes`.
pub fn parse_nodes_response(url: &str, body: &[u8]) -> Result<Vec<Node>, RayError> {
    let bad = |reason: String| RayError::BadResponse {
        url: url.to_string(),
        reason,
    };
    let parsed: NodesBody =
        serde_json::from_slice(body).map_err(|e| bad(format!("not a node listing ({e})")))?;
    if parsed.result == Some(false) {
        return Err(bad(format!(
            "the node listing failed: {}",
            parsed.msg.unwrap_or_default()
        )));
    }
    let entries = parsed
        .data
        .ok_or_else(|| bad("no data.result.result list of nodes".into()))?
        .result
        .result;
    Ok(entries
        .into_iter()
        .map(|n| {
            let gpus = n
                .resources_total
                .get("GPU")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            Node {
                ip: n.node_ip,
                gpus: if gpus.is_finite() && gpus > 0.0 {
                    gpus.floor().min(f64::from(u32::MAX)) as u32
                } else {
                    0
                },
                alive: n.state.as_deref() == Some("ALIVE"),
                is_head: n.is_head_node.unwrap_or(false),
            }
        })
        .collect())
}

/// First address of the placeholder nodes of an assumed inventory (TEST-NET-1, RFC 5737:
/// never a real host).
pub const ASSUMED_NODE_PREFIX: &str = "192.0.2.";

/// The inventory a dry run assumes without a cluster and without `--nodes`: `count` nodes
/// of `gpus` GPUs each, at placeholder addresses 192.0.2.1, 192.0.2.2, …
pub fn assumed_inventory(count: u32, gpus: u32) -> Vec<Node> {
    (1..=count.max(1))
        .map(|i| Node {
            ip: format!("{ASSUMED_NODE_PREFIX}{i}"),
            gpus,
            alive: true,
            is_head: false,
        })
        .collect()
}

/// `IP:GPUS` list (as `--nodes` takes it) for messages.
pub fn as_node_args(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(|n| format!("{}:{}", n.ip, n.gpus))
        .collect::<Vec<_>>()
        .join(",")
}

/// `ip (N GPUs)` list for messages.
pub fn describe(nodes: &[&Node]) -> String {
    if nodes.is_empty() {
        return "none".into();
    }
    nodes
        .iter()
        .map(|n| {
            format!(
                "{} ({} GPU{})",
                n.ip,
                n.gpus,
                if n.gpus == 1 { "" } else { "s" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_node_args() {
        let n = parse_node_arg("10.0.0.1:8").unwrap();
        assert_eq!(
            (n.ip.as_str(), n.gpus, n.resource()),
            ("10.0.0.1", 8, "node:10.0.0.1".to_string())
        );
        assert!(parse_node_arg("10.0.0.1").is_err());
        assert!(parse_node_arg("10.0.0.1:x").is_err());
        assert!(parse_node_arg(":8").is_err());
        assert!(parse_node_arg("a;rm -rf /:8").is_err());
        assert!(parse_node_args(&["1.1.1.1:8".into(), "1.1.1.1:4".into()]).is_err());
    }

    #[test]
    fn parses_the_state_api() {
        let body = json!({"result": true, "msg": "", "data": {"result": {"total": 3, "result": [
            {"node_ip": "10.0.0.1", "state": "ALIVE", "is_head_node": true,
             "resources_total": {"CPU": 8.0, "node:10.0.0.1": 1.0}},
            {"node_ip": "10.0.0.2", "state": "ALIVE", "resources_total": {"GPU": 8.0}},
            {"node_ip": "10.0.0.3", "state": "DEAD", "resources_total": {"GPU": 2.5}}]}}});
        let nodes = parse_nodes_response("u", body.to_string().as_bytes()).unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!((nodes[0].gpus, nodes[0].is_head), (0, true));
        assert_eq!(nodes[1].gpus, 8);
        assert_eq!((nodes[2].gpus, nodes[2].alive), (2, false));
        let err = parse_nodes_response("u", br#"{"result": false, "msg": "boom", "data": null}"#);
        assert!(err.unwrap_err().to_string().contains("boom"));
        assert!(parse_nodes_response("u", br#"{"x": 1}"#).is_err());
        assert!(parse_nodes_response("u", b"<html>").is_err());
    }
}
