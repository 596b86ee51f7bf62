//! Typed calls to the Ray dashboard REST API and the Serve endpoint.

use std::time::Duration;

use hyper::Method;
use serde_json::Value;

use super::client::{request, BaseUrl, Response};
use super::error::{tail, RayError};
use super::nodes::{parse_nodes_response, Node};
use super::version::RayVersion;

const DASHBOARD: &str = "the Ray dashboard";
const SERVE: &str = "the Serve endpoint";

/// Path of the Serve REST API.
pub const APPS_PATH: &str = "/api/serve/applications/";

/// The dashboard at `--ray-address`.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub base: BaseUrl,
    pub timeout: Duration,
}

fn check(method: &str, base: &BaseUrl, path: &str, r: Response) -> Result<Response, RayError> {
    if r.is_success() {
        Ok(r)
    } else {
        Err(RayError::Http {
            method: method.to_string(),
            url: base.url(path),
            status: r.status,
            body: tail(&r.text(), 3000),
        })
    }
}

impl Dashboard {
    pub fn new(address: &str, timeout: Duration) -> Result<Dashboard, RayError> {
        Ok(Dashboard {
            base: BaseUrl::parse("Ray dashboard address", address, 8265)?,
            timeout,
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, RayError> {
        let name = method.to_string();
        let r = request(DASHBOARD, &self.base, method, path, body, self.timeout).await?;
        check(&name, &self.base, path, r)
    }

    async fn get_json(&self, path: &str) -> Result<Value, RayError> {
        self.call(Method::GET, path, None)
            .await?
            .json(&self.base.url(path))
    }

    /// `GET /api/version` → the cluster's Ray version.
    pub async fn version(&self) -> Result<RayVersion, RayError> {
        let path = "/api/version";
        let v = self.get_json(path).await?;
        let raw = v
            .get("ray_version")
            .and_then(Value::as_str)
            .ok_or_else(|| RayError::BadResponse {
                url: self.base.url(path),
                reason: "no ray_version (is this a Ray dashboard?)".into(),
            })?;
        Ok(RayVersion::parse(raw))
    }

    /// `GET /api/v0/nodes` → every node (alive or not).
    pub async fn nodes(&self) -> Result<Vec<Node>, RayError> {
        let path = "/api/v0/nodes?limit=10000";
        let v = self.get_json(path).await?;
        parse_nodes_response(&self.base.url(path), &v)
    }

    /// `GET /api/serve/applications/` → the whole Serve state.
    pub async fn serve_state(&self) -> Result<Value, RayError> {
        self.get_json(APPS_PATH).await
    }

    /// `PUT /api/serve/applications/` with a full Serve config (declarative for the cluster).
    pub async fn put_applications(&self, body: &Value) -> Result<(), RayError> {
        let bytes = serde_json::to_vec(body).map_err(|e| RayError::Config(e.to_string()))?;
        self.call(Method::PUT, APPS_PATH, Some(bytes))
            .await
            .map(|_| ())
    }

    /// `DELETE /api/serve/applications/`: removes every application and shuts Serve down.
    pub async fn delete_applications(&self) -> Result<(), RayError> {
        self.call(Method::DELETE, APPS_PATH, None).await.map(|_| ())
    }
}

/// The Serve HTTP endpoint (`--serve-url`), where the OpenAI API is served.
#[derive(Debug, Clone)]
pub struct ServeEndpoint {
    pub base: BaseUrl,
    pub timeout: Duration,
}

impl ServeEndpoint {
    /// `--serve-url`, or `http://<dashboard host>:8000`.
    pub fn new(
        serve_url: Option<&str>,
        dashboard: &BaseUrl,
        timeout: Duration,
    ) -> Result<ServeEndpoint, RayError> {
        let base = match serve_url {
            Some(u) => BaseUrl::parse("Serve URL", u, 8000)?,
            None => BaseUrl {
                host: dashboard.host.clone(),
                port: 8000,
                prefix: String::new(),
            },
        };
        Ok(ServeEndpoint { base, timeout })
    }

    /// `GET /v1/models` → the served model ids.
    pub async fn models(&self) -> Result<Vec<String>, RayError> {
        let path = "/v1/models";
        let r = request(SERVE, &self.base, Method::GET, path, None, self.timeout).await?;
        let r = check("GET", &self.base, path, r)?;
        let v = r.json(&self.base.url(path))?;
        let data =
            v.get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| RayError::BadResponse {
                    url: self.base.url(path),
                    reason: "no 'data' list".into(),
                })?;
        Ok(data
            .iter()
            .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string))
            .collect())
    }
}
