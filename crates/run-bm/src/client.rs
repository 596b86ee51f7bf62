//! HTTP/1.1 client for OpenAI-compatible servers: one shared keep-alive pool,
//! `POST /v1/completions` with streaming (spec D.1–D.5), `GET` for readiness checks.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::chunk::{error_message, StreamError, StreamRecorder};
use crate::sse::SseParser;
use pd_common::bench::{Failure, FailureKind};

/// Largest error body read from a non-200 response.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Errors of the client setup.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid base URL '{url}': {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}: {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },
}

/// Why one request failed; the text goes into the result's `errors` and the CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub kind: FailureKind,
    /// HTTP status (0 when there was no response).
    pub http_status: u16,
    pub message: String,
}

impl RequestError {
    pub fn new(kind: FailureKind, http_status: u16, message: impl Into<String>) -> Self {
        RequestError {
            kind,
            http_status,
            message: message.into(),
        }
    }

    /// A failure inside a 200 stream.
    fn stream(e: StreamError) -> Self {
        let kind = match e {
            StreamError::Json { .. } => FailureKind::Malformed,
            StreamError::ErrorEvent(_) => FailureKind::ErrorEvent,
        };
        RequestError::new(kind, 200, e.to_string())
    }

    /// The failure recorded in the request's outcome.
    pub fn into_failure(self) -> Failure {
        Failure::new(self.kind, self.message)
    }
}

/// Full text of an error and its sources.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let t = src.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = src.source();
    }
    s
}

/// The shared client.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
    base: String,
    completions: Uri,
    auth: Option<HeaderValue>,
}

impl HttpClient {
    /// `base_url` like `http://127.0.0.1:8000` (a path prefix is kept), `endpoint` like
    /// `/v1/completions`.
    pub fn new(base_url: &str, endpoint: &str, api_key: Option<&str>) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: base_url.to_string(),
            reason: reason.to_string(),
        };
        let base = base_url.trim().trim_end_matches('/').to_string();
        if base.starts_with("https://") {
            return Err(bad(
                "https is not supported; use http:// (a local proxy or port-forward for TLS)",
            ));
        }
        if !base.starts_with("http://") {
            return Err(bad("must start with http://, e.g. http://127.0.0.1:8000"));
        }
        let endpoint = if endpoint.starts_with('/') {
            endpoint.to_string()
        } else {
            format!("/{endpoint}")
        };
        let completions: Uri = format!("{base}{endpoint}")
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        if completions.host().is_none() {
            return Err(bad("no host"));
        }
        let auth = match api_key {
            Some(k) if !k.is_empty() => Some(
                HeaderValue::from_str(&format!("Bearer {k}"))
                    .map_err(|_| bad("the API key contains characters not allowed in a header"))?,
            ),
            _ => None,
        };
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        conn.set_keepalive(Some(Duration::from_secs(60)));
        conn.set_connect_timeout(Some(Duration::from_secs(30)));
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(usize::MAX)
            .build(conn);
        Ok(HttpClient {
            inner,
            base,
            completions,
            auth,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET {base}{path}`: status and body (at most 1 MiB), with a timeout.
    pub async fn get(&self, path: &str, timeout: Duration) -> Result<(u16, Bytes), ClientError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |reason: String| ClientError::Unreachable {
            url: url.clone(),
            reason,
        };
        let uri: Uri =
            url.parse()
                .map_err(|e: hyper::http::uri::InvalidUri| ClientError::BadUrl {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
        let mut req = Request::builder().method(Method::GET).uri(uri);
        if let Some(a) = &self.auth {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| unreachable(e.to_string()))?;
        let fut = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|e| unreachable(error_chain(&e)))?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), 1 << 20)
                .collect()
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| unreachable(format!("no answer within {:.0} s", timeout.as_secs_f64())))?
    }

    /// Send one streaming completion request with a prepared JSON `body` and record
    /// its stream into `rec`. `rec.st` is set right before the request is issued.
    pub async fn stream_completion(
        &self,
        body: Bytes,
        request_id: &str,
        rec: &mut StreamRecorder,
    ) -> Result<(), RequestError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.completions.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(a) = &self.auth {
            req = req.header(AUTHORIZATION, a.clone());
        }
        if let Ok(v) = HeaderValue::from_str(request_id) {
            req = req.header("x-request-id", v);
        }
        let req = req.body(Full::new(body)).map_err(|e| {
            RequestError::new(
                FailureKind::Transport,
                0,
                format!("cannot build request: {e}"),
            )
        })?;
        rec.st = Instant::now();
        let resp = self.inner.request(req).await.map_err(|e| {
            RequestError::new(
                FailureKind::Transport,
                0,
                format!("request failed: {}", error_chain(&e)),
            )
        })?;
        let status = resp.status();
        if status != StatusCode::OK {
            let code = status.as_u16();
            let reason = status.canonical_reason().unwrap_or("");
            let body = Limited::new(resp.into_body(), MAX_ERROR_BODY)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let detail = error_body_message(&body);
            let msg = if detail.is_empty() {
                format!("HTTP {code} {reason}")
            } else {
                format!("HTTP {code} {reason}: {detail}")
            };
            return Err(RequestError::new(FailureKind::Http, code, msg));
        }
        let mut body = resp.into_body();
        let mut parser = SseParser::new();
        loop {
            match body.frame().await {
                None => break,
                Some(Err(e)) => {
                    return Err(RequestError::new(
                        FailureKind::Transport,
                        200,
                        format!(
                            "stream broken after {} chunks: {}",
                            rec.chunks(),
                            error_chain(&e)
                        ),
                    ))
                }
                Some(Ok(frame)) => {
                    let t = Instant::now();
                    if let Some(data) = frame.data_ref() {
                        parser
                            .feed(data, |p| rec.on_payload(p, t))
                            .map_err(RequestError::stream)?;
                    }
                }
            }
        }
        let t = Instant::now();
        parser
            .finish(|p| rec.on_payload(p, t))
            .map_err(RequestError::stream)?;
        if rec.first.is_none() {
            return Err(RequestError::new(
                FailureKind::Incomplete,
                200,
                "Never received a valid chunk to calculate TTFT (the stream ended without any completion chunk)",
            ));
        }
        Ok(())
    }
}

/// The server's message from an error body: vLLM `{"error": {"message": …}}`, Ray
/// Serve `{"detail": …}`, plain `{"message": …}`, or the text itself (shortened).
pub fn error_body_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        return error_message(&v);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.chars().count() > 500 {
        format!("{}…", text.chars().take(500).collect::<String>())
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_validation() {
        assert!(HttpClient::new("http://127.0.0.1:8000/", "/v1/completions", None).is_ok());
        for bad in ["127.0.0.1:8000", "https://x", "http://", "ftp://x"] {
            assert!(
                HttpClient::new(bad, "/v1/completions", None).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_body_message(
                br#"{"error":{"message":"too long","type":"BadRequestError","code":400}}"#
            ),
            "too long"
        );
        assert_eq!(
            error_body_message(br#"{"detail":"Not Found"}"#),
            "Not Found"
        );
        assert_eq!(error_body_message(b" oops "), "oops");
    }
}
