//! The Python the probe runs on the cluster: a fixed benchmark program
//! (`nixl_probe.py`, embedded at build time) with this run's configurations injected, sent
//! as a Ray job entrypoint (`python -c "…base64…"`, so nothing has to be uploaded); and the
//! parser of the lines it prints (`PD_LAB_PROBE {json}`).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use pd_common::deployment::NixlBackend;
use pd_common::probe::{ProbeConfig, ProbeFigures};

/// The benchmark program (its configuration placeholder replaced at submission).
pub const PROGRAM: &str = include_str!("nixl_probe.py");
/// Placeholder of the base64 configuration in [`PROGRAM`].
const PLACEHOLDER: &str = "__PD_LAB_PROBE_CONFIG__";
/// Prefix of the program's result lines.
pub const LINE_PREFIX: &str = "PD_LAB_PROBE ";

/// One configuration as the program reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobConfig {
    pub id: String,
    pub placement: String,
    /// NIXL's backend name (`UCX`, `LIBFABRIC`).
    pub backend: String,
    pub memory: String,
    pub p_tp: u32,
    pub d_tp: u32,
    pub block_bytes: u64,
    pub blocks: u32,
    pub iters: u32,
    pub warmup: u32,
    pub p_node: String,
    pub d_node: String,
    /// Environment of the probe's actors.
    pub env: Map<String, Value>,
    pub place_timeout_s: u64,
    pub run_timeout_s: u64,
}

impl JobConfig {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c: &ProbeConfig,
        p_node: &str,
        d_node: &str,
        env: Map<String, Value>,
        warmup: u32,
        place_timeout_s: u64,
        run_timeout_s: u64,
    ) -> JobConfig {
        JobConfig {
            id: c.id.clone(),
            placement: c.placement.to_string(),
            backend: c.nixl_backend.nixl_name().to_string(),
            memory: c.memory.to_string(),
            p_tp: c.p_tp,
            d_tp: c.d_tp,
            block_bytes: c.block_bytes,
            blocks: c.blocks,
            iters: c.iterations,
            warmup,
            p_node: p_node.to_string(),
            d_node: d_node.to_string(),
            env,
            place_timeout_s,
            run_timeout_s,
        }
    }
}

/// The environment of the probe's actors for `backend`, as a deployment's engines get it
/// (see `ray::env`): `UCX_TLS` when the caller set it (UCX), the EFA library path
/// (libfabric).
pub fn actor_env(backend: NixlBackend, ucx_tls: Option<&str>) -> Map<String, Value> {
    let mut env = Map::new();
    match backend {
        NixlBackend::Ucx => {
            if let Some(t) = ucx_tls {
                env.insert("UCX_TLS".into(), Value::String(t.to_string()));
            }
        }
        NixlBackend::Libfabric => {
            env.insert(
                "LD_LIBRARY_PATH".into(),
                Value::String(crate::ray::env::EFA_LD_LIBRARY_PATH.to_string()),
            );
        }
    }
    env
}

/// The program with `configs` injected.
pub fn program(configs: &[JobConfig]) -> String {
    let cfg = serde_json::json!({ "configs": configs }).to_string();
    let b64 = base64::engine::general_purpose::STANDARD.encode(cfg);
    PROGRAM.replace(PLACEHOLDER, &b64)
}

/// The job entrypoint running `program` with `python` (a shell command on the cluster).
pub fn entrypoint(python: &str, program: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(program);
    format!("{python} -c \"import base64;exec(base64.b64decode('{b64}'))\"")
}

/// Decode an entrypoint made by [`entrypoint`] back into the program (tests, fakes).
pub fn decode_entrypoint(entrypoint: &str) -> Option<String> {
    let start = entrypoint.find("b64decode('")? + "b64decode('".len();
    let end = start + entrypoint[start..].find('\'')?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&entrypoint[start..end])
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The configurations injected into a program made by [`program`] (tests, fakes).
pub fn decode_program_configs(program: &str) -> Option<Value> {
    let marker = "CONFIG = json.loads(base64.b64decode(\"";
    let start = program.find(marker)? + marker.len();
    let end = start + program[start..].find('"')?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&program[start..end])
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// One line of the program's output.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// Software found on the cluster.
    Env(EnvLine),
    /// One configuration's outcome.
    Result(ResultLine),
    /// All configurations done.
    Done { failed: u64 },
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct EnvLine {
    #[serde(default)]
    pub python: Option<String>,
    #[serde(default)]
    pub ray: Option<String>,
    #[serde(default)]
    pub nixl: Option<String>,
    #[serde(default)]
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResultLine {
    pub id: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub p_nodes: Vec<String>,
    #[serde(default)]
    pub d_nodes: Vec<String>,
    #[serde(default)]
    pub bytes_per_transfer: Option<u64>,
    #[serde(flatten)]
    pub figures: ProbeFigures,
}

#[derive(Debug, Deserialize)]
struct Tagged {
    kind: String,
}

/// Parse one log line; `None` for anything that is not one of the program's lines (Ray's
/// own output, actor logs). A malformed program line is `Some(Err)`.
pub fn parse_line(line: &str) -> Option<Result<Line, String>> {
    let rest = line.trim_start().strip_prefix(LINE_PREFIX)?;
    let parse = || -> Result<Line, String> {
        let v: Value = serde_json::from_str(rest.trim()).map_err(|e| e.to_string())?;
        let t: Tagged = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        match t.kind.as_str() {
            "env" => serde_json::from_value(v)
                .map(Line::Env)
                .map_err(|e| e.to_string()),
            "result" => serde_json::from_value(v)
                .map(Line::Result)
                .map_err(|e| e.to_string()),
            "done" => Ok(Line::Done {
                failed: v.get("failed").and_then(Value::as_u64).unwrap_or(0),
            }),
            other => Err(format!("unknown line kind '{other}'")),
        }
    };
    Some(parse().map_err(|e| format!("unreadable probe line ({e}): {}", rest.trim())))
}

/// Every program line in a log.
pub fn parse_log(log: &str) -> Vec<Result<Line, String>> {
    log.lines().filter_map(parse_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pd_common::probe::{Placement, ProbeMemory};

    fn config() -> ProbeConfig {
        ProbeConfig {
            id: "c1".into(),
            placement: Placement::Spread,
            nixl_backend: NixlBackend::Ucx,
            memory: ProbeMemory::Dram,
            p_tp: 1,
            d_tp: 2,
            block_bytes: 4096,
            blocks: 8,
            iterations: 3,
        }
    }

    #[test]
    fn program_and_entrypoint_round_trip() {
        let jc = JobConfig::new(
            &config(),
            "10.0.0.1",
            "10.0.0.2",
            actor_env(NixlBackend::Ucx, Some("tcp")),
            1,
            60,
            300,
        );
        let prog = program(std::slice::from_ref(&jc));
        assert!(!prog.contains(PLACEHOLDER));
        assert!(
            prog.contains("PD_LAB_PROBE "),
            "the program prints the lines we parse"
        );
        let cfg = decode_program_configs(&prog).unwrap();
        assert_eq!(cfg["configs"][0]["backend"], "UCX");
        assert_eq!(cfg["configs"][0]["env"]["UCX_TLS"], "tcp");
        assert_eq!(cfg["configs"][0]["d_node"], "10.0.0.2");
        let ep = entrypoint("python3", &prog);
        assert!(ep.starts_with("python3 -c \"import base64;exec(base64.b64decode('"));
        assert!(!ep.contains('\n'), "one shell line");
        assert_eq!(decode_entrypoint(&ep).unwrap(), prog);
        assert!(decode_entrypoint("python x.py").is_none());
    }

    #[test]
    fn env_by_backend() {
        assert!(actor_env(NixlBackend::Ucx, None).is_empty());
        let e = actor_env(NixlBackend::Libfabric, Some("tcp"));
        assert!(e.contains_key("LD_LIBRARY_PATH") && !e.contains_key("UCX_TLS"));
    }

    #[test]
    fn parses_program_lines_only() {
        let log = "Running entrypoint for job x\n\
            PD_LAB_PROBE {\"kind\": \"env\", \"nixl\": \"1.5.1\", \"nodes\": [\"a\", \"b\"]}\n\
            (ProbeAgent pid=1) NIXL INFO whatever\n\
            PD_LAB_PROBE {\"kind\": \"result\", \"id\": \"c1\", \"error\": null, \"bandwidth_gbps\": 0.7, \
              \"transfer_ms\": {\"p50\": 1.0, \"min\": 0.5, \"max\": 2.0}, \"p_nodes\": [\"a\"], \"d_nodes\": [\"b\"]}\n\
            PD_LAB_PROBE {\"kind\": \"result\", \"id\": \"c2\", \"error\": \"RuntimeError: no\"}\n\
            PD_LAB_PROBE {not json\n\
            PD_LAB_PROBE {\"kind\": \"done\", \"failed\": 1}\n";
        let lines = parse_log(log);
        assert_eq!(lines.len(), 5);
        match &lines[0] {
            Ok(Line::Env(e)) => assert_eq!(e.nodes, vec!["a", "b"]),
            other => panic!("{other:?}"),
        }
        match &lines[1] {
            Ok(Line::Result(r)) => {
                assert_eq!(r.figures.bandwidth_gbps, Some(0.7));
                assert_eq!(r.figures.transfer_ms.unwrap().p50, 1.0);
            }
            other => panic!("{other:?}"),
        }
        match &lines[2] {
            Ok(Line::Result(r)) => assert_eq!(r.error.as_deref(), Some("RuntimeError: no")),
            other => panic!("{other:?}"),
        }
        assert!(lines[3]
            .as_ref()
            .unwrap_err()
            .contains("unreadable probe line"));
        assert_eq!(lines[4], Ok(Line::Done { failed: 1 }));
    }
}
