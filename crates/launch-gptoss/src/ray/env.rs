//! Environment variables of the engine processes (`runtime_env.env_vars` of each LLM
//! config), and redaction of secret-looking values before anything is printed or recorded.

use serde_json::{Map, Value};

use pd_common::deployment::{DeploymentSpec, NixlBackend};

/// Where the EFA libraries live on AWS images (`lib` on Ubuntu, `lib64` on Amazon Linux).
/// `${LD_LIBRARY_PATH}` is expanded by Ray from the node's environment, so the node's own
/// path is appended, not replaced.
pub const EFA_LD_LIBRARY_PATH: &str =
    "/opt/amazon/efa/lib:/opt/amazon/efa/lib64:${LD_LIBRARY_PATH}";

/// Printed by `--use-libfabric` (Ray): a known trap of vLLM's PD over NIXL's LIBFABRIC
/// backend that a benchmark alone does not show.
pub const LIBFABRIC_WARNING: &str = "--use-libfabric: vLLM's prefill/decode over NIXL's \
LIBFABRIC backend is known to fail its KV transfers on EFA (https://github.com/vllm-project/vllm/issues/27055); \
failed or zeroed KV blocks give gibberish completions or hangs while throughput numbers look \
normal (a failed transfer can still answer HTTP 200). \
Check outputs before trusting numbers: run-bm --smoke compares greedy completions with a \
reference (--reference, recorded with --record-reference on a collocated deployment), and \
`launch-gptoss probe --nixl libfabric` verifies every transferred byte.";

/// What the launcher reads from its own environment (captured once, so rendering is pure).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerEnv {
    /// `UCX_TLS` of the caller, forwarded to the engines (PD with UCX).
    pub ucx_tls: Option<String>,
}

impl CallerEnv {
    /// Read the caller's process environment.
    pub fn from_process() -> CallerEnv {
        CallerEnv {
            ucx_tls: std::env::var("UCX_TLS")
                .ok()
                .filter(|v| !v.trim().is_empty()),
        }
    }
}

/// The env vars our rendering puts into every LLM config (`runtime_env.env_vars`).
///
/// As the seed's launcher (which set them for the whole Ray job):
/// * PD with UCX: `UCX_TLS` from the caller's environment, else `all`;
/// * PD with libfabric: `LD_LIBRARY_PATH` with the EFA libraries first. The seed left
///   `FI_PROVIDER` unset (its `FI_PROVIDER=efa` line is commented out), and so do we:
///   libfabric picks the provider;
/// * `engine_debug` (the seed's `--verbose`): `NIXL_LOG_LEVEL=DEBUG`,
///   `VLLM_LOGGING_LEVEL=DEBUG`, plus `UCX_LOG_LEVEL=debug`, `UCX_PROTO_INFO=y` (UCX) or
///   `FI_LOG_LEVEL=debug`, `FI_LOG_PROV=efa` (libfabric).
///
/// Deliberate differences: `LD_LIBRARY_PATH` appends the node's own `${LD_LIBRARY_PATH}`
/// (Ray expands it on the node; the seed appended the launching machine's value) and also
/// lists `lib64` (Amazon Linux); in collocated mode `engine_debug` sets
/// `VLLM_LOGGING_LEVEL=DEBUG` (the seed ignored `--verbose` there: no NIXL to debug, but the
/// engine's logging is what the flag asks for).
pub fn engine_env(
    spec: &DeploymentSpec,
    engine_debug: bool,
    caller: &CallerEnv,
) -> Map<String, Value> {
    let mut env = Map::new();
    let mut set = |k: &str, v: &str| {
        env.insert(k.to_string(), Value::String(v.to_string()));
    };
    if !spec.mode().is_pd() {
        if engine_debug {
            set("VLLM_LOGGING_LEVEL", "DEBUG");
        }
        return env;
    }
    if engine_debug {
        set("NIXL_LOG_LEVEL", "DEBUG");
        set("VLLM_LOGGING_LEVEL", "DEBUG");
    }
    match spec.nixl_backend {
        NixlBackend::Ucx => {
            let tls = caller.ucx_tls.as_deref().unwrap_or("all");
            set("UCX_TLS", tls);
            if engine_debug {
                set("UCX_LOG_LEVEL", "debug");
                set("UCX_PROTO_INFO", "y");
            }
        }
        NixlBackend::Libfabric => {
            set("LD_LIBRARY_PATH", EFA_LD_LIBRARY_PATH);
            if engine_debug {
                set("FI_LOG_LEVEL", "debug");
                set("FI_LOG_PROV", "efa");
            }
        }
    }
    env
}

/// Does an environment variable name look like it holds a secret?
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "KEY",
        "CREDENTIAL",
        "AUTH",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// Replace the values of secret-looking variables in every `env_vars` object of `v`.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "env_vars" {
                    if let Value::Object(vars) = child {
                        for (name, val) in vars.iter_mut() {
                            if is_secret_name(name) {
                                *val = Value::String("<redacted>".into());
                            }
                        }
                        continue;
                    }
                }
                redact(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// Values of secret-looking variables in every `env_vars` object of `v` (non-trivial ones).
pub fn secret_values(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_secrets(v, &mut out);
    out.sort();
    out.dedup();
    out
}

fn collect_secrets(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if let (true, Value::Object(vars)) = (k == "env_vars", child) {
                    for (name, val) in vars {
                        match val.as_str() {
                            Some(s) if is_secret_name(name) && s.len() >= 4 => {
                                out.push(s.to_string())
                            }
                            _ => {}
                        }
                    }
                } else {
                    collect_secrets(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_secrets(i, out)),
        _ => {}
    }
}

/// Replace every occurrence of a secret in a text from the server (pydantic errors echo
/// input values).
pub fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text.to_string(), |t, s| t.replace(s.as_str(), "<redacted>"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pd_common::deployment::{PdPlacement, Replicas};
    use serde_json::json;

    #[test]
    fn env_by_backend_and_engine_debug_as_the_seed() {
        let mut pd = DeploymentSpec::pd(
            PdPlacement::Pack,
            Replicas { num: 1, tp: 1 },
            Replicas { num: 1, tp: 1 },
        );
        let e = engine_env(&pd, false, &CallerEnv::default());
        assert_eq!(Value::Object(e), json!({"UCX_TLS": "all"}));
        let e = engine_env(
            &pd,
            true,
            &CallerEnv {
                ucx_tls: Some("tcp".into()),
            },
        );
        assert_eq!(
            Value::Object(e),
            json!({"NIXL_LOG_LEVEL": "DEBUG", "VLLM_LOGGING_LEVEL": "DEBUG", "UCX_TLS": "tcp",
                   "UCX_LOG_LEVEL": "debug", "UCX_PROTO_INFO": "y"})
        );
        pd.nixl_backend = NixlBackend::Libfabric;
        let e = engine_env(&pd, false, &CallerEnv::default());
        assert_eq!(
            Value::Object(e),
            json!({"LD_LIBRARY_PATH": EFA_LD_LIBRARY_PATH}),
            "no FI_PROVIDER: the seed leaves the provider to libfabric"
        );
        let e = engine_env(&pd, true, &CallerEnv::default());
        assert_eq!(e.get("FI_LOG_LEVEL"), Some(&json!("debug")));
        assert_eq!(e.get("FI_LOG_PROV"), Some(&json!("efa")));
        assert!(!e.contains_key("FI_PROVIDER") && !e.contains_key("UCX_LOG_LEVEL"));
        let colo = DeploymentSpec::collocated(1, 1);
        assert!(engine_env(&colo, false, &CallerEnv::default()).is_empty());
        assert_eq!(
            Value::Object(engine_env(&colo, true, &CallerEnv::default())),
            json!({"VLLM_LOGGING_LEVEL": "DEBUG"})
        );
    }

    #[test]
    fn redacts_secret_names() {
        let mut v =
            json!({"a": [{"runtime_env": {"env_vars": {"HF_TOKEN": "hf_x", "UCX_TLS": "all"}}}]});
        redact(&mut v);
        assert_eq!(
            v.pointer("/a/0/runtime_env/env_vars/HF_TOKEN"),
            Some(&json!("<redacted>"))
        );
        assert_eq!(
            v.pointer("/a/0/runtime_env/env_vars/UCX_TLS"),
            Some(&json!("all"))
        );
    }

    #[test]
    fn scrubs_secret_values_from_server_text() {
        let v =
            json!({"x": {"env_vars": {"HF_TOKEN": "hf_abcdef", "API_KEY": "k", "UCX_TLS": "all"}}});
        let s = secret_values(&v);
        assert_eq!(s, vec!["hf_abcdef".to_string()]);
        assert_eq!(
            scrub("input_value={'HF_TOKEN': 'hf_abcdef'}", &s),
            "input_value={'HF_TOKEN': '<redacted>'}"
        );
    }
}
