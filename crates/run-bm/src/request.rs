//! The request body of each request (spec D.2, D.6): `/v1/completions` or
//! `/v1/chat/completions`, vLLM's key order, sampling flags and `--extra-body` merged last
//! (a shallow merge: a key already in the body is replaced in place, new keys are added at
//! the end, as Python's `dict.update`).
//!
//! The default body is exactly run-bm's historical one:
//! `{"model","prompt","repetition_penalty":1.0,"max_tokens","logprobs":null,"stream":true,
//! "stream_options":{"include_usage":true,"continuous_usage_stats":true},"ignore_eos":true}`.
//! The body is assembled from pre-serialized pieces; only the model, the prompt and
//! `max_tokens` are written per request.

use std::io::Write;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::runner::RunSettings;

/// Which API the body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// `/v1/completions`: `prompt` + `max_tokens`.
    #[default]
    Completions,
    /// `/v1/chat/completions`: one user message + `max_completion_tokens`; the text comes
    /// back in `choices[0].delta.content`.
    Chat,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Completions => "completions",
            Protocol::Chat => "chat",
        }
    }
}

/// What a body carries besides the prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyOptions {
    pub protocol: Protocol,
    /// Send `"ignore_eos": true` (the seed's `--ignore-eos`; `--no-ignore-eos` turns it off).
    pub ignore_eos: bool,
    /// `--logprobs` (completions: the key is always sent, null by default).
    pub logprobs: Option<u32>,
    /// Sampling flags then `--extra-body`, merged last.
    pub extra: Map<String, Value>,
}

impl Default for BodyOptions {
    fn default() -> Self {
        BodyOptions {
            protocol: Protocol::Completions,
            ignore_eos: true,
            logprobs: None,
            extra: Map::new(),
        }
    }
}

impl BodyOptions {
    /// Whether every response must carry exactly the `max_tokens` asked for, so that a
    /// stream whose usage reports fewer is incomplete (a failed request): only when the
    /// body as sent has `ignore_eos: true` (not `--no-ignore-eos`, nor overridden by
    /// `--extra-body`), nothing else in it may end the output early (`stop`,
    /// `stop_token_ids`, a replaced `max_tokens`), and on `/v1/completions`, whose
    /// `usage.completion_tokens` counts exactly the generated tokens. Chat servers report
    /// usage in other shapes (reasoning tokens counted apart or not at all, a role-only
    /// first delta), so there only `data: [DONE]` marks a complete stream.
    pub fn expects_full_output(&self) -> bool {
        let ignore_eos = match self.extra.get("ignore_eos") {
            Some(v) => v.as_bool() == Some(true),
            None => self.ignore_eos,
        };
        let shortened = [
            "stop",
            "stop_token_ids",
            "max_tokens",
            "max_completion_tokens",
        ]
        .iter()
        .any(|k| self.extra.get(*k).is_some_and(|v| !v.is_null()));
        ignore_eos && !shortened && self.protocol == Protocol::Completions
    }
}

/// A piece of the body template.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Value(Value),
    Model,
    Prompt,
    Messages,
    MaxTokens,
}

/// The body with its per-request holes, as pre-serialized pieces.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyTemplate {
    /// Raw bytes, then a hole, alternately; ends with raw bytes.
    parts: Vec<(Vec<u8>, Option<Slot>)>,
}

impl BodyTemplate {
    /// Build the template of `opts` (`continuous_usage`: ask for per-chunk usage).
    pub fn new(opts: &BodyOptions, continuous_usage: bool) -> Self {
        let mut stream_options = Map::new();
        stream_options.insert("include_usage".into(), Value::Bool(true));
        if continuous_usage {
            stream_options.insert("continuous_usage_stats".into(), Value::Bool(true));
        }
        let mut keys: Vec<(String, Slot)> = match opts.protocol {
            Protocol::Completions => vec![
                ("model".into(), Slot::Model),
                ("prompt".into(), Slot::Prompt),
                ("repetition_penalty".into(), Slot::Value(Value::from(1.0))),
                ("max_tokens".into(), Slot::MaxTokens),
                (
                    "logprobs".into(),
                    Slot::Value(opts.logprobs.map_or(Value::Null, Value::from)),
                ),
                ("stream".into(), Slot::Value(Value::Bool(true))),
                (
                    "stream_options".into(),
                    Slot::Value(Value::Object(stream_options)),
                ),
            ],
            Protocol::Chat => vec![
                ("model".into(), Slot::Model),
                ("messages".into(), Slot::Messages),
                ("max_completion_tokens".into(), Slot::MaxTokens),
                ("stream".into(), Slot::Value(Value::Bool(true))),
                (
                    "stream_options".into(),
                    Slot::Value(Value::Object(stream_options)),
                ),
            ],
        };
        if opts.ignore_eos {
            keys.push(("ignore_eos".into(), Slot::Value(Value::Bool(true))));
        }
        for (k, v) in &opts.extra {
            match keys.iter_mut().find(|(key, _)| key == k) {
                Some((_, slot)) => *slot = Slot::Value(v.clone()),
                None => keys.push((k.clone(), Slot::Value(v.clone()))),
            }
        }
        let mut parts: Vec<(Vec<u8>, Option<Slot>)> = vec![];
        let mut raw = b"{".to_vec();
        for (i, (k, slot)) in keys.into_iter().enumerate() {
            if i > 0 {
                raw.push(b',');
            }
            raw.extend_from_slice(json_string(&k).as_bytes());
            raw.push(b':');
            match slot {
                Slot::Value(v) => raw.extend_from_slice(v.to_string().as_bytes()),
                hole => parts.push((std::mem::take(&mut raw), Some(hole))),
            }
        }
        raw.push(b'}');
        parts.push((raw, None));
        BodyTemplate { parts }
    }

    /// The body of one request.
    pub fn render(
        &self,
        model: &str,
        max_tokens: u32,
        capacity: usize,
        prompt: &mut dyn FnMut(&mut Vec<u8>),
        text: &mut dyn FnMut(&mut Vec<u8>),
    ) -> Bytes {
        let mut out = Vec::with_capacity(capacity + 256);
        for (raw, hole) in &self.parts {
            out.extend_from_slice(raw);
            match hole {
                None => {}
                Some(Slot::Model) => out.extend_from_slice(json_string(model).as_bytes()),
                Some(Slot::Prompt) => prompt(&mut out),
                Some(Slot::Messages) => {
                    out.extend_from_slice(br#"[{"role":"user","content":[{"type":"text","text":"#);
                    text(&mut out);
                    out.extend_from_slice(b"}]}]");
                }
                Some(Slot::MaxTokens) => {
                    let _ = write!(out, "{max_tokens}");
                }
                Some(Slot::Value(v)) => out.extend_from_slice(v.to_string().as_bytes()),
            }
        }
        Bytes::from(out)
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

impl RunSettings {
    /// The JSON body of request `index` (spec D.2 key order).
    pub fn body(&self, index: u64) -> Bytes {
        let template = self.prompts.body_template(self.continuous_usage);
        let max_tokens = self.prompts.output_len(index);
        let capacity = self.prompts.prompt_len(index) as usize * 7;
        template.render(
            &self.model,
            max_tokens,
            capacity,
            &mut |out| self.prompts.write_json(index, out),
            &mut |out| self.prompts.write_text_json(index, out),
        )
    }
}

/// A completions body (`prompt`, `max_tokens`) rewritten for `protocol`: for the chat
/// endpoint the prompt becomes one user message and `max_tokens` `max_completion_tokens`.
pub fn for_protocol(protocol: Protocol, completions_body: Bytes) -> Bytes {
    if protocol == Protocol::Completions {
        return completions_body;
    }
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&completions_body) else {
        return completions_body;
    };
    let mut out = Map::new();
    for (k, v) in m {
        match k.as_str() {
            "prompt" => {
                let text = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                out.insert(
                    "messages".into(),
                    serde_json::json!([{"role": "user", "content": [{"type": "text", "text": text}]}]),
                );
            }
            "max_tokens" => {
                out.insert("max_completion_tokens".into(), v);
            }
            _ => {
                out.insert(k, v);
            }
        }
    }
    Bytes::from(Value::Object(out).to_string())
}

/// Parse `KEY=VALUE` (split on the first `=`, both sides trimmed), as vLLM's `--header`
/// and `--metadata`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

/// Put `--metadata` pairs into the result as top-level string keys; the benchmark's own
/// keys win over a pair with the same name (as in vLLM).
pub fn apply_metadata(result: &mut pd_common::BenchResult, metadata: &[(String, String)]) {
    if metadata.is_empty() {
        return;
    }
    let taken: std::collections::HashSet<String> = serde_json::to_value(&*result)
        .ok()
        .and_then(|v| v.as_object().map(|m| m.keys().cloned().collect()))
        .unwrap_or_default();
    for (k, v) in metadata {
        if taken.contains(k) {
            tracing::warn!("--metadata {k}=… ignored: the result already has a '{k}' key");
            continue;
        }
        result.rest.insert(k.clone(), Value::String(v.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_output_is_expected_only_when_the_body_asks_for_it() {
        let opts = |protocol, ignore_eos, extra: Value| BodyOptions {
            protocol,
            ignore_eos,
            logprobs: None,
            extra: extra.as_object().cloned().unwrap_or_default(),
        };
        let none = serde_json::json!({});
        assert!(opts(Protocol::Completions, true, none.clone()).expects_full_output());
        // --no-ignore-eos, or ignore_eos turned off by --extra-body.
        assert!(!opts(Protocol::Completions, false, none.clone()).expects_full_output());
        assert!(!opts(
            Protocol::Completions,
            true,
            serde_json::json!({"ignore_eos": false})
        )
        .expects_full_output());
        assert!(opts(
            Protocol::Completions,
            false,
            serde_json::json!({"ignore_eos": true})
        )
        .expects_full_output());
        // Stop sequences or a replaced max_tokens may end the output early.
        for extra in [
            serde_json::json!({"stop": ["\n"]}),
            serde_json::json!({"stop_token_ids": [2]}),
            serde_json::json!({"max_tokens": 5}),
        ] {
            assert!(
                !opts(Protocol::Completions, true, extra.clone()).expects_full_output(),
                "{extra}"
            );
        }
        assert!(opts(
            Protocol::Completions,
            true,
            serde_json::json!({"stop": null, "temperature": 0})
        )
        .expects_full_output());
        // The chat endpoint's usage is not a count of exactly the tokens asked for.
        assert!(!opts(Protocol::Chat, true, none).expects_full_output());
    }

    fn render(opts: &BodyOptions, cu: bool) -> String {
        let t = BodyTemplate::new(opts, cu);
        let b = t.render(
            "m\"x",
            7,
            0,
            &mut |o| o.extend_from_slice(b"[1,2]"),
            &mut |o| o.extend_from_slice(b"\"hi\""),
        );
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn default_body_is_the_historical_one() {
        assert_eq!(
            render(&BodyOptions::default(), true),
            r#"{"model":"m\"x","prompt":[1,2],"repetition_penalty":1.0,"max_tokens":7,"logprobs":null,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true},"ignore_eos":true}"#
        );
        assert_eq!(
            render(&BodyOptions::default(), false),
            r#"{"model":"m\"x","prompt":[1,2],"repetition_penalty":1.0,"max_tokens":7,"logprobs":null,"stream":true,"stream_options":{"include_usage":true},"ignore_eos":true}"#
        );
    }

    #[test]
    fn extras_merge_like_dict_update() {
        let mut extra = Map::new();
        extra.insert("temperature".into(), Value::from(0.0));
        extra.insert("repetition_penalty".into(), Value::from(1.1));
        extra.insert(
            "chat_template_kwargs".into(),
            serde_json::json!({"a": false}),
        );
        let opts = BodyOptions {
            protocol: Protocol::Completions,
            ignore_eos: false,
            logprobs: Some(3),
            extra,
        };
        assert_eq!(
            render(&opts, false),
            r#"{"model":"m\"x","prompt":[1,2],"repetition_penalty":1.1,"max_tokens":7,"logprobs":3,"stream":true,"stream_options":{"include_usage":true},"temperature":0.0,"chat_template_kwargs":{"a":false}}"#
        );
        let mut extra = Map::new();
        extra.insert("max_tokens".into(), Value::from(5));
        let opts = BodyOptions {
            extra,
            ..Default::default()
        };
        assert!(render(&opts, false).contains(r#""max_tokens":5,"#));
    }

    #[test]
    fn chat_body() {
        let opts = BodyOptions {
            protocol: Protocol::Chat,
            ..Default::default()
        };
        let s = render(&opts, true);
        assert_eq!(
            s,
            r#"{"model":"m\"x","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_completion_tokens":7,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true},"ignore_eos":true}"#
        );
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["messages"][0]["content"][0]["text"], "hi");
    }

    #[test]
    fn smoke_body_for_chat() {
        let b = Bytes::from(r#"{"model":"m","prompt":"Count: 1,","max_tokens":5,"stream":true}"#);
        assert_eq!(for_protocol(Protocol::Completions, b.clone()), b);
        let c = for_protocol(Protocol::Chat, b);
        assert_eq!(
            std::str::from_utf8(&c).unwrap(),
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"Count: 1,"}]}],"max_completion_tokens":5,"stream":true}"#
        );
    }

    #[test]
    fn key_values() {
        assert_eq!(
            key_value(" a = b=c ").unwrap(),
            ("a".to_string(), "b=c".to_string())
        );
        assert!(key_value("novalue").is_err());
        assert!(key_value("=x").is_err());
    }
}
