//! HTTP/1.1 client for OpenAI-compatible servers: one shared keep-alive pool, `http://` or
//! `https://` (rustls, see [`crate::tls`]), `POST` of the completions or chat endpoint with
//! streaming (spec D.1–D.5), `GET` for readiness checks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pd_common::url::BaseUrl;

use crate::tls::{client_config, TlsOptions};

use crate::cancel::{Cancel, Level};
use crate::chunk::{error_message, StreamError, StreamRecorder};
use crate::sse::SseParser;
use crate::{h1, reactor};
use pd_common::bench::{Failure, FailureKind};
use pd_common::diag::error_chain;

/// Largest error body read from a non-200 response.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Connections opened at a time when pre-warming.
const PREWARM_PARALLEL: usize = 256;

/// Errors of the client setup.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid base URL '{url}': {reason}")]
    BadUrl { url: String, reason: String },
    #[error("invalid --header '{name}': {reason}")]
    BadHeader { name: String, reason: String },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
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
            StreamError::Json { .. }
            | StreamError::Oversized(_)
            | StreamError::TooManyChunks { .. } => FailureKind::Malformed,
            StreamError::ErrorEvent(_) => FailureKind::ErrorEvent,
        };
        RequestError::new(kind, 200, e.to_string())
    }

    /// The failure recorded in the request's outcome.
    pub fn into_failure(self) -> Failure {
        Failure::new(self.kind, self.message)
    }
}

/// How the client talks to the server besides the URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// `Authorization: Bearer …`.
    pub api_key: Option<String>,
    /// `--header KEY=VALUE` pairs, sent with every request (they override the defaults,
    /// never the request id).
    pub headers: Vec<(String, String)>,
    pub tls: TlsOptions,
}

/// The shared client: hyper for control requests, [`crate::h1`] for the streamed
/// completions that are measured.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    auth: Option<HeaderValue>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// No byte of a streaming body for this long fails the request (`Stalled`).
    stall_timeout: Option<Duration>,
    /// Connections of the streamed completions.
    pool: Arc<h1::Pool>,
    /// Path and query of the completions endpoint.
    completions_path: String,
    /// Headers of every completion request but `x-request-id` (defaults, then `--header`).
    stream_headers: Arc<Vec<(String, Vec<u8>)>>,
    /// A `--header x-request-id=…`, used when the request's own id is not a valid value.
    user_request_id: Option<Vec<u8>>,
    /// The thread that reads streamed bodies of plain connections (started with the first
    /// stream; `None` inside when it could not start: tokio reads them then).
    reactor: Arc<std::sync::OnceLock<Option<reactor::Reactor>>>,
}

/// Limits of one streamed request besides the stall timeout.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestLimits<'a> {
    /// The request fails as `Timeout` after this long (`--timeout`).
    pub timeout: Option<Duration>,
    /// Abort when the run's cancellation reaches [`Level::Abort`].
    pub cancel: Option<&'a Cancel>,
}

/// A `GET` answer.
#[derive(Debug, Clone)]
pub struct GetResponse {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl HttpClient {
    /// `base_url` like `http://127.0.0.1:8000` or `https://host/prefix` (a path prefix is
    /// kept), `endpoint` like `/v1/completions`.
    pub fn new(base_url: &str, endpoint: &str, api_key: Option<&str>) -> Result<Self, ClientError> {
        Self::with_options(
            base_url,
            endpoint,
            &ClientOptions {
                api_key: api_key.map(str::to_string),
                ..Default::default()
            },
        )
    }

    /// The client of a run (URL, endpoint, key, headers, TLS and stall timeout of the
    /// configuration).
    pub fn for_config(cfg: &crate::config::RunConfig) -> Result<Self, ClientError> {
        Ok(
            Self::with_options(&cfg.base_url, &cfg.endpoint, &cfg.client_options())?
                .with_stall_timeout(cfg.stall_timeout),
        )
    }

    /// The client with all its options.
    pub fn with_options(
        base_url: &str,
        endpoint: &str,
        opts: &ClientOptions,
    ) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: pd_common::url::redact_userinfo(base_url),
            reason: reason.to_string(),
        };
        let parsed = BaseUrl::parse(base_url, 80).map_err(|e| match e {
            pd_common::Error::Invalid { message, .. } => bad(message
                .split_once("': ")
                .map_or(message.as_str(), |(_, reason)| reason)),
            other => bad(&other.to_string()),
        })?;
        // The base as written, without a default port (so the Host header is plain).
        let base = parsed.plain();
        let api_key = opts.api_key.as_deref();
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
        let mut headers = Vec::with_capacity(opts.headers.len());
        for (k, v) in &opts.headers {
            let bad_header = |reason: String| ClientError::BadHeader {
                name: k.clone(),
                reason,
            };
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| bad_header(format!("not a header name ({e})")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| bad_header(format!("not a header value ({e})")))?;
            headers.push((name, value));
        }
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        conn.set_keepalive(Some(Duration::from_secs(60)));
        conn.set_connect_timeout(Some(Duration::from_secs(30)));
        conn.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(client_config(&opts.tls)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(conn);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(usize::MAX)
            .build(https);
        let https = completions.scheme_str() == Some("https");
        let host = completions.host().unwrap_or_default().to_string();
        let port = completions
            .port_u16()
            .unwrap_or(if https { 443 } else { 80 });
        let authority = completions
            .authority()
            .map_or(host.clone(), |a| a.as_str().to_string());
        let tls = if https {
            Some(Arc::new(client_config(&opts.tls)?))
        } else {
            None
        };
        let pool = h1::Pool::new(&host, port, &authority, tls).map_err(|e| bad(&e))?;
        let completions_path = completions
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        // Every completion request: content-type, authorization, then --header pairs
        // (a pair replaces a header of the same name; the framing is run-bm's own).
        let mut stream_headers: Vec<(String, Vec<u8>)> =
            vec![("content-type".into(), b"application/json".to_vec())];
        if let Some(a) = &auth {
            stream_headers.push(("authorization".into(), a.as_bytes().to_vec()));
        }
        let mut user_request_id = None;
        for (name, value) in &headers {
            let n = name.as_str();
            if n == "x-request-id" {
                user_request_id = Some(value.as_bytes().to_vec());
                continue;
            }
            if matches!(n, "content-length" | "transfer-encoding" | "connection") {
                tracing::warn!("--header {n}=… ignored: run-bm sets the message framing itself");
                continue;
            }
            stream_headers.retain(|(k, _)| k != n);
            stream_headers.push((n.to_string(), value.as_bytes().to_vec()));
        }
        Ok(HttpClient {
            inner,
            base,
            auth,
            headers,
            stall_timeout: None,
            pool: Arc::new(pool),
            completions_path,
            stream_headers: Arc::new(stream_headers),
            user_request_id,
            reactor: Arc::default(),
        })
    }

    /// The stream-reading thread, started on first use.
    fn reactor(&self) -> Option<&reactor::Reactor> {
        self.reactor
            .get_or_init(|| match reactor::Reactor::start() {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!("cannot start the stream-reading thread ({e}); streams are read by the async runtime");
                    None
                }
            })
            .as_ref()
    }

    /// How long the stream-reading thread took per batch of ready sockets since the last
    /// call (the longest per 10 ms window while streams were open), µs.
    pub fn take_stream_lag(&self) -> Vec<u32> {
        self.reactor
            .get()
            .and_then(Option::as_ref)
            .map(reactor::Reactor::take_lag)
            .unwrap_or_default()
    }

    /// Fail a streaming request when no byte of its body arrives for `stall` (after the
    /// response headers; waiting for them is bounded by the request timeout).
    pub fn with_stall_timeout(mut self, stall: Option<Duration>) -> Self {
        self.stall_timeout = stall;
        self
    }

    /// `--header` pairs onto a built request (a request id already set is kept).
    fn apply_headers<B>(&self, req: &mut Request<B>) {
        for (name, value) in &self.headers {
            if name == "x-request-id" && req.headers().contains_key(name) {
                continue;
            }
            req.headers_mut().insert(name.clone(), value.clone());
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET {base}{path}`: status and body (at most 1 MiB), with a timeout.
    pub async fn get(&self, path: &str, timeout: Duration) -> Result<(u16, Bytes), ClientError> {
        let r = self
            .get_url(&format!("{}{path}", self.base), timeout)
            .await?;
        Ok((r.status, r.body))
    }

    /// `GET {base}{path}` with the response headers.
    pub async fn get_full(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<GetResponse, ClientError> {
        self.get_url(&format!("{}{path}", self.base), timeout).await
    }

    /// `GET` of any `http://` or `https://` URL through the shared pool (the API key and
    /// the `--header` pairs are sent only to this client's own server).
    pub async fn get_url(&self, url: &str, timeout: Duration) -> Result<GetResponse, ClientError> {
        let own = url
            .strip_prefix(&self.base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']));
        self.small_request(Method::GET, url, None, own, timeout, false)
            .await
    }

    /// `POST {base}{path}` with a JSON body: status and body (at most 1 MiB), with a
    /// timeout (for small control requests such as vLLM's `/tokenize`). With
    /// `status_only`, a 2xx answer returns at once with an empty body (the response is
    /// dropped, so a stream is not waited for).
    pub async fn post_json(
        &self,
        path: &str,
        body: Bytes,
        timeout: Duration,
        status_only: bool,
    ) -> Result<(u16, Bytes), ClientError> {
        let url = format!("{}{path}", self.base);
        let r = self
            .small_request(Method::POST, &url, Some(body), true, timeout, status_only)
            .await?;
        Ok((r.status, r.body))
    }

    /// One control request (not a measured one): a JSON `body` if given, the API key and
    /// `--header` pairs only when `own` (this client's server), the answer's body capped at
    /// 1 MiB, all within `timeout`. With `status_only` a 2xx answer returns at once with
    /// an empty body.
    async fn small_request(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
        own: bool,
        timeout: Duration,
        status_only: bool,
    ) -> Result<GetResponse, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable {
            url: url.to_string(),
            reason,
        };
        let uri: Uri =
            url.parse()
                .map_err(|e: hyper::http::uri::InvalidUri| ClientError::BadUrl {
                    url: url.to_string(),
                    reason: e.to_string(),
                })?;
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let (Some(a), true) = (&self.auth, own) {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let mut req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| unreachable(e.to_string()))?;
        if own {
            self.apply_headers(&mut req);
        }
        let fut = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|e| unreachable(error_chain(&e)))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            if status_only && (200..300).contains(&status) {
                return Ok(GetResponse {
                    status,
                    headers,
                    body: Bytes::new(),
                });
            }
            let body = Limited::new(resp.into_body(), 1 << 20)
                .collect()
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .to_bytes();
            Ok(GetResponse {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| unreachable(format!("no answer within {:.0} s", timeout.as_secs_f64())))?
    }

    /// The connection pool of the streamed completions.
    pub fn pool(&self) -> &Arc<h1::Pool> {
        &self.pool
    }

    /// Open connections for the streamed completions ahead of a point until `n` are idle
    /// (a closed-loop point then does not open its C connections at once when it starts).
    /// Returns the number idle and the first connection error, if one failed.
    pub async fn prewarm(&self, n: usize) -> (usize, Option<std::io::Error>) {
        self.pool.prewarm(n, PREWARM_PARALLEL).await
    }

    /// Send one streaming completion request with a prepared JSON `body` and record
    /// its stream into `rec`. `rec.st` is set right before the request is issued.
    pub async fn stream_completion(
        &self,
        body: Bytes,
        request_id: &str,
        rec: &mut StreamRecorder,
    ) -> Result<(), RequestError> {
        self.stream_completion_limited(body, request_id, rec, RequestLimits::default())
            .await
    }

    /// [`Self::stream_completion`] with a request timeout and the run's cancellation.
    pub async fn stream_completion_limited(
        &self,
        body: Bytes,
        request_id: &str,
        rec: &mut StreamRecorder,
        limits: RequestLimits<'_>,
    ) -> Result<(), RequestError> {
        let id_ok = HeaderValue::from_str(request_id).is_ok();
        let mut headers: Vec<(&str, &[u8])> = self
            .stream_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        if id_ok {
            headers.push(("x-request-id", request_id.as_bytes()));
        } else if let Some(v) = &self.user_request_id {
            headers.push(("x-request-id", v.as_slice()));
        }
        let request = h1::post_request(
            &self.completions_path,
            self.pool.authority(),
            &headers,
            &body,
        );
        drop(body);
        rec.st = Instant::now();
        let deadline = limits.timeout.map(|t| rec.st + t);
        let timed_out = || {
            let t = limits.timeout.unwrap_or_default();
            RequestError::new(
                FailureKind::Timeout,
                0,
                format!("timed out after {:.1} s (--timeout)", t.as_secs_f64()),
            )
        };
        let aborted = || {
            RequestError::new(
                FailureKind::Aborted,
                0,
                "aborted: interrupted (signal) before the response finished",
            )
        };
        // Connect, send, read the head: bounded by the timeout and the run's abort.
        let far = rec.st + Duration::from_secs(86_400 * 365);
        let exchange = tokio::select! {
            r = h1::send(&self.pool, &request) => r.map_err(|e| {
                RequestError::new(FailureKind::Transport, 0, format!("request failed: {e}"))
            })?,
            _ = tokio::time::sleep_until(deadline.unwrap_or(far).into()) => return Err(timed_out()),
            _ = async {
                match limits.cancel {
                    Some(c) => c.reached(Level::Abort).await,
                    None => std::future::pending().await,
                }
            } => return Err(aborted()),
        };
        drop(request);
        let code = exchange.head.status;
        if code != 200 {
            let reason = StatusCode::from_u16(code)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            let body = tokio::select! {
                b = exchange.read_body(MAX_ERROR_BODY) => b,
                _ = tokio::time::sleep_until(deadline.unwrap_or(far).into()) => Vec::new(),
            };
            let detail = error_body_message(&body);
            let msg = if detail.is_empty() {
                format!("HTTP {code} {reason}")
            } else {
                format!("HTTP {code} {reason}: {detail}")
            };
            return Err(RequestError::new(FailureKind::Http, code, msg));
        }
        let placeholder = StreamRecorder::new(rec.st, 0, false);
        let sink = reactor::Sink {
            parser: SseParser::new(),
            rec: std::mem::replace(rec, placeholder),
        };
        let limits = reactor::Limits {
            deadline,
            stall: self.stall_timeout,
            cancel: limits.cancel.cloned(),
        };
        let (streamed, sink) = reactor::stream_body(self.reactor(), exchange, sink, limits).await;
        let reactor::Sink {
            mut parser,
            rec: back,
        } = sink;
        *rec = back;
        if let Err(e) = streamed {
            return Err(match e {
                h1::ReadError::Consumer(e) => RequestError::stream(e),
                h1::ReadError::Io(e) => RequestError::new(
                    FailureKind::Transport,
                    200,
                    format!("stream broken after {} chunks: {e}", rec.chunks()),
                ),
                h1::ReadError::Framing(m) => RequestError::new(
                    FailureKind::Transport,
                    200,
                    format!("stream broken after {} chunks: {m}", rec.chunks()),
                ),
                h1::ReadError::Watch(h1::WatchFired::Stalled) => {
                    let stall = self.stall_timeout.unwrap_or_default();
                    RequestError::new(
                        FailureKind::Stalled,
                        200,
                        format!(
                            "stalled: no data for {:.1} s after {} chunks (--stall-timeout)",
                            stall.as_secs_f64(),
                            rec.chunks()
                        ),
                    )
                }
                h1::ReadError::Watch(h1::WatchFired::Deadline) => timed_out(),
                h1::ReadError::Watch(h1::WatchFired::Aborted) => aborted(),
            });
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
        if !parser.saw_done() {
            return Err(RequestError::new(
                FailureKind::Incomplete,
                200,
                format!(
                    "incomplete: the stream ended without data: [DONE] after {} chunks (connection closed early)",
                    rec.chunks()
                ),
            ));
        }
        if let (Some(want), Some(got)) = (rec.expect_tokens, rec.reported_tokens()) {
            if got < want {
                return Err(RequestError::new(
                    FailureKind::Incomplete,
                    200,
                    format!(
                        "incomplete: the stream carried {got} of the {want} tokens asked for (max_tokens with ignore_eos)"
                    ),
                ));
            }
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
        let c = HttpClient::new("https://example.invalid/llm/", "/v1/completions", None).unwrap();
        assert_eq!(c.base_url(), "https://example.invalid/llm");
        let c = HttpClient::new("https://example.invalid:443", "/v1/completions", None).unwrap();
        assert_eq!(c.base_url(), "https://example.invalid");
        // A missing scheme means http:// (pd_common::url, as for every tool).
        let c = HttpClient::new("127.0.0.1:8000", "/v1/completions", None).unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:8000");
        for bad in [
            "http://",
            "ftp://x",
            "http://u:p@h:1",
            "http://h:70000",
            "http://h:99999",
            "http://h:0",
        ] {
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
