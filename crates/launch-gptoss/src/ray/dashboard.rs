//! Typed calls to the Ray dashboard REST API and the Serve endpoint, over the one
//! control-plane HTTP client ([`pd_common::http`]).

use std::time::Duration;

use pd_common::http::{Client, ClientOptions, Method, Response};
use pd_common::url::BaseUrl;
use serde::Deserialize;
use serde_json::Value;

use super::error::{tail, RayError};
use super::nodes::{parse_nodes_response, Node};
use super::serve_state::ServeState;
use super::version::RayVersion;

const DASHBOARD: &str = "the Ray dashboard";
const SERVE: &str = "the Serve endpoint";

/// Path of the Serve REST API.
pub const APPS_PATH: &str = "/api/serve/applications/";

fn client(timeout: Duration, connect: Duration) -> Client {
    Client::new(ClientOptions {
        timeout,
        connect_timeout: connect.min(timeout),
        user_agent: concat!("launch-gptoss/", env!("CARGO_PKG_VERSION")).to_string(),
        ..ClientOptions::default()
    })
}

fn check(method: Method, base: &BaseUrl, path: &str, r: Response) -> Result<Response, RayError> {
    if r.is_success() {
        Ok(r)
    } else {
        Err(RayError::Http {
            method: method.to_string(),
            url: base.join(path),
            status: r.status,
            body: tail(&r.text(), 3000),
        })
    }
}

pub(crate) fn json<'a, T: Deserialize<'a>>(
    base: &BaseUrl,
    path: &str,
    body: &'a [u8],
) -> Result<T, RayError> {
    serde_json::from_slice(body).map_err(|e| RayError::BadResponse {
        url: base.join(path),
        reason: format!(
            "not the expected JSON ({e}): {}",
            tail(&String::from_utf8_lossy(body), 300)
        ),
    })
}

/// `GET /api/version`.
#[derive(Debug, Deserialize)]
struct VersionInfo {
    #[serde(default)]
    ray_version: Option<String>,
}

/// The dashboard at `--ray-address`.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub base: BaseUrl,
    client: Client,
}

impl Dashboard {
    /// Requests bounded by `timeout`; connecting by `connect_timeout`.
    pub fn new(base: BaseUrl, timeout: Duration, connect_timeout: Duration) -> Dashboard {
        Dashboard {
            base,
            client: client(timeout, connect_timeout),
        }
    }

    /// One call; an HTTP error status is an error ([`RayError::Http`]).
    pub(crate) fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, RayError> {
        let r = self
            .client
            .request(method, &self.base, path, body)
            .map_err(|e| RayError::from_http(DASHBOARD, &self.base.to_string(), e))?;
        check(method, &self.base, path, r)
    }

    /// `GET /api/version` → the cluster's Ray version.
    pub fn version(&self) -> Result<RayVersion, RayError> {
        let path = "/api/version";
        let r = self.call(Method::Get, path, None)?;
        let v: VersionInfo = json(&self.base, path, &r.body)?;
        let raw = v.ray_version.ok_or_else(|| RayError::BadResponse {
            url: self.base.join(path),
            reason: "no ray_version (is this a Ray dashboard?)".into(),
        })?;
        Ok(RayVersion::parse(&raw))
    }

    /// `GET /api/v0/nodes` → every node (alive or not).
    pub fn nodes(&self) -> Result<Vec<Node>, RayError> {
        let path = "/api/v0/nodes?limit=10000";
        let r = self.call(Method::Get, path, None)?;
        parse_nodes_response(&self.base.join(path), &r.body)
    }

    /// `GET /api/serve/applications/` → the whole Serve state.
    pub fn serve_state(&self) -> Result<ServeState, RayError> {
        let r = self.call(Method::Get, APPS_PATH, None)?;
        json(&self.base, APPS_PATH, &r.body)
    }

    /// `PUT /api/serve/applications/` with a full Serve config (declarative for the cluster).
    pub fn put_applications(&self, body: &Value) -> Result<(), RayError> {
        let bytes = serde_json::to_vec(body).map_err(|e| RayError::Config(e.to_string()))?;
        self.call(Method::Put, APPS_PATH, Some(&bytes)).map(|_| ())
    }

    /// `DELETE /api/serve/applications/`: removes every application and shuts Serve down.
    pub fn delete_applications(&self) -> Result<(), RayError> {
        self.call(Method::Delete, APPS_PATH, None).map(|_| ())
    }
}

/// `GET /v1/models`.
#[derive(Debug, Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize)]
struct ModelEntry {
    id: String,
}

/// The Serve HTTP endpoint (`--serve-url`), where the OpenAI API is served.
#[derive(Debug, Clone)]
pub struct ServeEndpoint {
    pub base: BaseUrl,
    client: Client,
}

impl ServeEndpoint {
    /// `serve_url`, or `http://<dashboard host>:8000`.
    pub fn new(
        serve_url: Option<&BaseUrl>,
        dashboard: &BaseUrl,
        timeout: Duration,
    ) -> ServeEndpoint {
        let base = serve_url.cloned().unwrap_or_else(|| BaseUrl {
            port: super::options::DEFAULT_SERVE_PORT,
            prefix: String::new(),
            ..dashboard.clone()
        });
        ServeEndpoint {
            base,
            client: client(timeout, timeout),
        }
    }

    /// `GET /v1/models` → the served model ids.
    pub fn models(&self) -> Result<Vec<String>, RayError> {
        let path = "/v1/models";
        let r = self
            .client
            .get(&self.base, path)
            .map_err(|e| RayError::from_http(SERVE, &self.base.to_string(), e))?;
        let r = check(Method::Get, &self.base, path, r)?;
        let list: ModelList = json(&self.base, path, &r.body)?;
        Ok(list.data.into_iter().map(|m| m.id).collect())
    }
}
