//! The tokenizer's chat template (Jinja, rendered with `minijinja`), used to know exactly
//! what a chat server prefills: `tokenizer_config.json`'s `chat_template` (a string, or a
//! list of named templates where `default` is taken), or a `chat_template.jinja` /
//! `chat_template.json` file next to it, as Hugging Face `transformers` looks them up.
//!
//! Rendering follows `apply_chat_template(messages, add_generation_prompt=True,
//! tokenize=False)`: `trim_blocks`/`lstrip_blocks`, the special tokens of the config as
//! variables (`bos_token`, `eos_token`, …), `raise_exception`, `strftime_now`, and Python
//! string methods (`.strip()`, `.startswith()`…) through `minijinja-contrib`'s pycompat.

use std::path::Path;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, Error, ErrorKind, Value};

/// Why a chat template could not be read or rendered.
#[derive(Debug, thiserror::Error)]
pub enum ChatTemplateError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("the chat template failed: {0}")]
    Render(String),
}

/// A chat template and the special-token variables it may use.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    /// `bos_token`, `eos_token`, `unk_token`, `pad_token` of the config (as strings).
    tokens: Vec<(String, String)>,
}

fn token_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(m) => m.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    }
}

fn read(path: &Path) -> Result<Option<String>, ChatTemplateError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ChatTemplateError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

fn template_value(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        // [{"name": "default", "template": "…"}, {"name": "tool_use", …}]
        serde_json::Value::Array(list) => list
            .iter()
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
            .or_else(|| list.first())
            .and_then(|t| t.get("template"))
            .and_then(|t| t.as_str())
            .map(String::from),
        _ => None,
    }
}

impl ChatTemplate {
    /// A template from its source.
    pub fn new(source: impl Into<String>) -> Self {
        ChatTemplate {
            source: source.into(),
            tokens: vec![],
        }
    }

    /// The template in `dir` (`None` when the tokenizer has none).
    pub fn find(dir: &Path) -> Result<Option<ChatTemplate>, ChatTemplateError> {
        let config: Option<serde_json::Value> = match read(&dir.join("tokenizer_config.json"))? {
            Some(text) => {
                Some(
                    serde_json::from_str(&text).map_err(|e| ChatTemplateError::Read {
                        path: dir.join("tokenizer_config.json").display().to_string(),
                        reason: e.to_string(),
                    })?,
                )
            }
            None => None,
        };
        let mut source = read(&dir.join("chat_template.jinja"))?;
        if source.is_none() {
            if let Some(text) = read(&dir.join("chat_template.json"))? {
                source = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("chat_template").and_then(template_value));
            }
        }
        if source.is_none() {
            source = config
                .as_ref()
                .and_then(|c| c.get("chat_template"))
                .and_then(template_value);
        }
        let Some(source) = source else {
            return Ok(None);
        };
        let mut t = ChatTemplate::new(source);
        if let Some(c) = &config {
            for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
                if let Some(s) = c.get(key).and_then(token_text) {
                    t.tokens.push((key.to_string(), s));
                }
            }
        }
        Ok(Some(t))
    }

    /// The text of one user message with the generation prompt appended.
    pub fn render_user(&self, content: &str) -> Result<String, ChatTemplateError> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| ChatTemplateError::Render(e.to_string()))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_function("strftime_now", |fmt: String| -> String {
            chrono::Local::now().format(&fmt).to_string()
        });
        let mut vars: Vec<(String, Value)> = self
            .tokens
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        vars.push((
            "messages".into(),
            Value::from(Serde(
                serde_json::json!([{"role": "user", "content": content}]),
            )),
        ));
        vars.push(("add_generation_prompt".into(), Value::from(true)));
        env.render_str(&self.source, Value::from_pairs(vars))
            .map_err(|e| ChatTemplateError::Render(format!("{e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_typical_template() {
        let t = ChatTemplate {
            source: "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] | trim }}<|end|>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}".into(),
            tokens: vec![("bos_token".into(), "<s>".into())],
        };
        assert_eq!(
            t.render_user("  hi there ").unwrap(),
            "<s><|user|>\nhi there<|end|>\n<|assistant|>\n"
        );
        // Python string methods (pycompat) and raise_exception.
        let t = ChatTemplate::new("{{ messages[0].content.strip().upper() }}");
        assert_eq!(t.render_user(" x ").unwrap(), "X");
        let t = ChatTemplate::new("{{ raise_exception('only system') }}");
        assert!(t
            .render_user("x")
            .unwrap_err()
            .to_string()
            .contains("only system"));
    }

    #[test]
    fn found_in_the_config_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ChatTemplate::find(dir.path()).unwrap().is_none());
        std::fs::write(
            dir.path().join("tokenizer_config.json"),
            r#"{"bos_token": {"content": "<B>"}, "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "{{ bos_token }}{{ messages[0]['content'] }}"}]}"#,
        )
        .unwrap();
        let t = ChatTemplate::find(dir.path()).unwrap().unwrap();
        assert_eq!(t.render_user("q").unwrap(), "<B>q");
        std::fs::write(
            dir.path().join("chat_template.jinja"),
            "J{{ messages[0]['content'] }}",
        )
        .unwrap();
        let t = ChatTemplate::find(dir.path()).unwrap().unwrap();
        assert_eq!(t.render_user("q").unwrap(), "Jq");
    }
}
