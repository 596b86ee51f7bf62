//! `--overrides FILE`: a TOML or JSON table deep-merged into the rendered LLM configs.
//!
//! * Top-level keys are merged into **every** LLM config (collocated, prefill and decode),
//!   e.g. `engine_kwargs.enforce_eager = true` or `accelerator_type = "H100"`.
//! * Reserved tables apply to one part only, after the common part:
//!   `[prefill]` and `[decode]` (PD configs), `[ingress_deployment_config]` and
//!   `[proxy_deployment_config]` (the app's ingress / PD proxy deployment; the proxy only
//!   exists before Ray 2.55). None of these names is an `LLMConfig` field.
//! * Merge rules: tables merge key by key, recursively; anything else (numbers, strings,
//!   arrays) replaces; `null` (JSON only) deletes the key.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::RayError;

/// Reserved top-level keys.
pub const RESERVED: [&str; 4] = [
    "prefill",
    "decode",
    "ingress_deployment_config",
    "proxy_deployment_config",
];

/// A loaded overrides file, split into its parts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub path: PathBuf,
    /// Merged into every LLM config.
    pub common: Value,
    pub prefill: Value,
    pub decode: Value,
    pub ingress: Value,
    pub proxy: Value,
}

fn empty() -> Value {
    Value::Object(Map::new())
}

impl Overrides {
    /// Parse overrides text; JSON when `json` is true, TOML otherwise.
    pub fn parse(path: &Path, text: &str, json: bool) -> Result<Overrides, RayError> {
        let err = |reason: String| RayError::Overrides {
            path: path.to_path_buf(),
            reason,
        };
        let value: Value = if json {
            serde_json::from_str(text).map_err(|e| err(format!("invalid JSON: {e}")))?
        } else {
            toml::from_str(text).map_err(|e| err(format!("invalid TOML: {e}")))?
        };
        let Value::Object(mut map) = value else {
            return Err(err("must be a table/object of LLM config keys".into()));
        };
        let mut take = |key: &str| -> Result<Value, RayError> {
            match map.remove(key) {
                None => Ok(empty()),
                Some(v @ Value::Object(_)) => Ok(v),
                Some(_) => Err(err(format!("'{key}' must be a table"))),
            }
        };
        let prefill = take("prefill")?;
        let decode = take("decode")?;
        let ingress = take("ingress_deployment_config")?;
        let proxy = take("proxy_deployment_config")?;
        Ok(Overrides {
            path: path.to_path_buf(),
            common: Value::Object(map),
            prefill,
            decode,
            ingress,
            proxy,
        })
    }

    /// Read a file: `.json` is JSON, `.toml` is TOML, anything else is tried as JSON, then TOML.
    pub fn load(path: &Path) -> Result<Overrides, RayError> {
        let text = std::fs::read_to_string(path).map_err(|e| RayError::Overrides {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("json") => Self::parse(path, &text, true),
            Some("toml") => Self::parse(path, &text, false),
            _ => Self::parse(path, &text, true).or_else(|_| Self::parse(path, &text, false)),
        }
    }
}

/// Deep-merge `patch` into `base` (see the module docs for the rules).
pub fn deep_merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, pv) in p {
                if pv.is_null() {
                    b.remove(k);
                    continue;
                }
                match b.get_mut(k) {
                    Some(bv) if bv.is_object() && pv.is_object() => deep_merge(bv, pv),
                    _ => {
                        b.insert(k.clone(), pv.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_deeply() {
        let mut base = json!({"engine_kwargs": {"max_model_len": 16000, "tensor_parallel_size": 2},
                              "placement_group_config": {"bundles": [{"GPU": 1}, {"GPU": 1}]}, "x": 1});
        deep_merge(
            &mut base,
            &json!({"engine_kwargs": {"enforce_eager": true, "max_model_len": 4096},
                                       "placement_group_config": {"bundles": [{"CPU": 1}]}, "x": null}),
        );
        assert_eq!(
            base,
            json!({"engine_kwargs": {"max_model_len": 4096, "tensor_parallel_size": 2, "enforce_eager": true},
                                "placement_group_config": {"bundles": [{"CPU": 1}]}})
        );
    }

    #[test]
    fn parses_toml_and_json_with_sections() {
        let p = Path::new("o.toml");
        let o = Overrides::parse(p, "accelerator_type = \"H100\"\n[engine_kwargs]\nenforce_eager = true\n\
                                     [prefill.runtime_env.env_vars]\nVLLM_CPU_OMP_THREADS_BIND = \"0\"\n\
                                     [ingress_deployment_config.ray_actor_options]\nnum_cpus = 0\n", false)
            .unwrap();
        assert_eq!(
            o.common,
            json!({"accelerator_type": "H100", "engine_kwargs": {"enforce_eager": true}})
        );
        assert_eq!(
            o.prefill,
            json!({"runtime_env": {"env_vars": {"VLLM_CPU_OMP_THREADS_BIND": "0"}}})
        );
        assert_eq!(o.decode, json!({}));
        assert_eq!(o.ingress, json!({"ray_actor_options": {"num_cpus": 0}}));
        let o = Overrides::parse(Path::new("o.json"), r#"{"decode": {"a": 1}}"#, true).unwrap();
        assert_eq!(o.decode, json!({"a": 1}));
        assert!(Overrides::parse(p, "[1, 2]", true).is_err());
        assert!(Overrides::parse(p, r#"{"prefill": 3}"#, true)
            .unwrap_err()
            .to_string()
            .contains("'prefill'"));
        assert!(Overrides::parse(p, "a = ", false)
            .unwrap_err()
            .to_string()
            .contains("invalid TOML"));
    }

    #[test]
    fn loads_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("o.cfg");
        std::fs::write(&f, "[engine_kwargs]\ndtype = \"bfloat16\"\n").unwrap();
        assert_eq!(
            Overrides::load(&f).unwrap().common,
            json!({"engine_kwargs": {"dtype": "bfloat16"}})
        );
        let e = Overrides::load(&dir.path().join("missing.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.toml"), "{e}");
    }
}
