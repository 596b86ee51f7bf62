//! Start-of-run check: the server answers `GET /v1/models` and serves the model we are
//! about to ask for. Also picks up the model's `root` and the server's `/version`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::chunk::error_message;
use crate::client::{ClientError, HttpClient};

/// What the server told us.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerInfo {
    /// Ids of `GET /v1/models`.
    pub models: Vec<String>,
    /// `root` of the served model entry (its weights source), if given.
    pub model_root: Option<String>,
    /// Versions found (`vllm` from `GET /version`).
    pub software: BTreeMap<String, String>,
}

/// Why the server cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}\n  Is the deployment up? Check -u/--base-url or the deployment record (launch-gptoss status).")]
    Unreachable(ClientError),
    #[error("the server at {url} does not serve model '{model}' (it serves: {available}); use -m/--served-model-name")]
    UnknownModel {
        url: String,
        model: String,
        available: String,
    },
}

impl From<ClientError> for ProbeError {
    fn from(e: ClientError) -> Self {
        ProbeError::Unreachable(e)
    }
}

/// Check the server before a run.
pub async fn check_server(client: &HttpClient, model: &str) -> Result<ServerInfo, ProbeError> {
    let (status, body) = client.get("/v1/models", Duration::from_secs(15)).await?;
    if !(200..300).contains(&status) {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .map(|v| error_message(&v))
            .unwrap_or_else(|_| {
                String::from_utf8_lossy(&body)
                    .trim()
                    .chars()
                    .take(300)
                    .collect()
            });
        return Err(ProbeError::Unreachable(ClientError::Http {
            url: format!("{}/v1/models", client.base_url()),
            status,
            message,
        }));
    }
    let mut info = ServerInfo::default();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
        if let Some(data) = v.get("data").and_then(|d| d.as_array()) {
            for m in data {
                if let Some(id) = m.get("id").and_then(|x| x.as_str()) {
                    info.models.push(id.to_string());
                    if id == model {
                        info.model_root = m
                            .get("root")
                            .and_then(|x| x.as_str())
                            .filter(|r| !r.is_empty())
                            .map(str::to_string);
                    }
                }
            }
        }
    }
    if !info.models.is_empty() && !info.models.iter().any(|m| m == model) {
        return Err(ProbeError::UnknownModel {
            url: client.base_url().to_string(),
            model: model.to_string(),
            available: info.models.join(", "),
        });
    }
    if let Ok((200, body)) = client.get("/version", Duration::from_secs(3)).await {
        if let Some(v) = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("version")
                    .and_then(|x| x.as_str())
                    .map(str::to_string)
            })
        {
            info.software.insert("vllm".into(), v);
        }
    }
    Ok(info)
}
