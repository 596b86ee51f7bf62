//! A scripted OpenAI-compatible server for tests and the client-ceiling benchmark.
//!
//! It serves `GET /v1/models`, `GET /version`, `POST /tokenize`, `POST /v1/completions`
//! and `POST /v1/chat/completions` (and `GET /metrics` when given a [`MetricsScript`]); what each completion request gets is decided by a
//! script function: a plain status and body, scripted SSE frames with delays (optionally
//! breaking the connection afterwards), or a generated stream of `max_tokens` tokens at a
//! fixed rate, like vLLM with `ignore_eos` (chat requests get vLLM's chat chunks: a role
//! delta, then content deltas). It counts requests and the peak number of requests in
//! flight, and with `keep_bodies` records every completion request as it arrived (path,
//! headers, raw body) so tests can assert the bytes on the wire.
//!
//! For fault tests it can also misbehave (see [`crate::faults`] for ready-made replies):
//! never answer ([`Reply::Hang`]), stream an endless unterminated SSE line
//! ([`Reply::Flood`]), impersonate another server (extra headers, a `/version` body), and
//! die at once with every connection ([`FakeServer::kill`]).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A generated stream: token j is sent `ttft + j × interval` after the request arrived,
/// `tokens_per_chunk` tokens per SSE message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenSpec {
    pub ttft: Duration,
    pub interval: Duration,
    /// Tokens to send (None: the request's `max_tokens`).
    pub tokens: Option<u64>,
    pub tokens_per_chunk: u64,
}

impl Default for GenSpec {
    fn default() -> Self {
        GenSpec {
            ttft: Duration::from_millis(10),
            interval: Duration::from_millis(5),
            tokens: None,
            tokens_per_chunk: 1,
        }
    }
}

/// What one completion request gets.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A plain response.
    Status { status: u16, body: String },
    /// SSE frames, each after its delay; then the connection breaks if `then_break`.
    Frames {
        frames: Vec<(Duration, Bytes)>,
        then_break: bool,
    },
    /// A generated token stream.
    Generate(GenSpec),
    /// Accept the request and never answer (no headers, no body).
    Hang,
    /// Answer 200 and stream `data: ` followed by `bytes` bytes without any newline (an
    /// SSE line that never ends), in 64 KiB frames.
    Flood { bytes: u64 },
}

/// What the script sees of a request.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// Arrival order of completion requests, from 0.
    pub index: u64,
    pub body: serde_json::Value,
    pub max_tokens: Option<u64>,
    pub prompt_tokens: u64,
    pub continuous_usage: bool,
    pub headers: hyper::HeaderMap,
    /// `/v1/completions` or `/v1/chat/completions`.
    pub path: String,
    /// The body bytes as received.
    pub raw_body: Bytes,
}

impl RequestInfo {
    /// A chat completion request.
    pub fn is_chat(&self) -> bool {
        self.path.ends_with("/chat/completions")
    }
}

/// A completion request as it arrived (kept when `keep_bodies`).
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub raw_body: Bytes,
}

/// The script.
pub type Script = Arc<dyn Fn(&RequestInfo) -> Reply + Send + Sync>;

/// What `GET /metrics` answers, from the server's counters: a [`Reply::Status`] with a
/// Prometheus page, or [`Reply::Hang`] (other replies answer 500).
pub type MetricsScript = Arc<dyn Fn(&ServerStats) -> Reply + Send + Sync>;

/// Counters of the server.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub requests: AtomicU64,
    pub in_flight: AtomicI64,
    pub max_in_flight: AtomicI64,
    /// Completion request bodies (kept when `keep_bodies`).
    pub bodies: Mutex<Vec<serde_json::Value>>,
    /// Completion requests as they arrived (kept when `keep_bodies`).
    pub recorded: Mutex<Vec<RecordedRequest>>,
    /// `max_model_len` reported by `/v1/models` and `/tokenize` (0: not reported).
    pub max_model_len: AtomicU64,
}

/// Everything a fake server can be started with.
#[derive(Clone)]
pub struct FakeOptions {
    /// Served model name (`/v1/models`).
    pub model: String,
    pub script: Script,
    /// Keep completion requests in [`ServerStats::bodies`] and [`ServerStats::recorded`].
    pub keep_bodies: bool,
    /// `max_model_len` reported by `/v1/models` and `/tokenize` (0: not reported; it can
    /// also be changed while running through [`ServerStats::max_model_len`]).
    pub max_model_len: u64,
    /// Headers added to every response (e.g. `x-pd-lab-backend: sim` to impersonate
    /// the simulator).
    pub headers: Vec<(String, String)>,
    /// Body of `GET /version`.
    pub version: serde_json::Value,
    /// `GET /metrics` (None: 404, like a Ray Serve ingress).
    pub metrics: Option<MetricsScript>,
}

impl FakeOptions {
    pub fn new(model: &str, script: Script) -> Self {
        FakeOptions {
            model: model.to_string(),
            script,
            keep_bodies: false,
            max_model_len: 0,
            headers: vec![],
            version: serde_json::json!({"version": "fake-0"}),
            metrics: None,
        }
    }

    /// Answer like the pd-lab simulator serving deployment `label`.
    pub fn like_simulator(mut self, label: &str) -> Self {
        self.headers
            .push(("x-pd-lab-backend".to_string(), "sim".to_string()));
        self.version = serde_json::json!({"version": "fake-0", "server": "pd-lab-sim", "backend": "sim", "label": label});
        self
    }
}

/// A running fake server (stops accepting when dropped).
pub struct FakeServer {
    pub addr: SocketAddr,
    pub stats: Arc<ServerStats>,
    accept: JoinHandle<()>,
    killed: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FakeServer {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Start on an ephemeral loopback port.
    pub async fn start(model: &str, script: Script, keep_bodies: bool) -> io::Result<Self> {
        Self::start_on(
            "127.0.0.1:0".parse().map_err(io::Error::other)?,
            model,
            script,
            keep_bodies,
        )
        .await
    }

    /// Start on `addr`.
    pub async fn start_on(
        addr: SocketAddr,
        model: &str,
        script: Script,
        keep_bodies: bool,
    ) -> io::Result<Self> {
        let mut opts = FakeOptions::new(model, script);
        opts.keep_bodies = keep_bodies;
        Self::start_with(addr, opts).await
    }

    /// Like a crashed server: stop listening (the port refuses connections) and drop
    /// every open connection at once, mid-stream or not.
    pub fn kill(&self) {
        self.killed.send_replace(true);
    }

    /// Start on `addr` with every option.
    pub async fn start_with(addr: SocketAddr, opts: FakeOptions) -> io::Result<Self> {
        let FakeOptions {
            model,
            script,
            keep_bodies,
            max_model_len,
            headers,
            version,
            metrics,
        } = opts;
        let extra = Arc::new(ExtraResponse {
            metrics,
            headers: headers
                .into_iter()
                .filter_map(|(k, v)| {
                    Some((
                        hyper::header::HeaderName::from_bytes(k.as_bytes()).ok()?,
                        hyper::header::HeaderValue::from_str(&v).ok()?,
                    ))
                })
                .collect(),
            version: version.to_string(),
        });
        let killed = Arc::new(tokio::sync::watch::channel(false).0);
        // A deep accept backlog: thousands of clients connect at once in benchmarks.
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener: TcpListener = socket.listen(16_384)?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(ServerStats::default());
        stats.max_model_len.store(max_model_len, Ordering::SeqCst);
        let st = stats.clone();
        let model = Arc::new(model.to_string());
        let kill_rx = killed.subscribe();
        let accept = tokio::spawn(async move {
            let mut kill_accept = kill_rx.clone();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = kill_accept.wait_for(|k| *k) => return,
                };
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (script, stats, model, extra) =
                    (script.clone(), st.clone(), model.clone(), extra.clone());
                let mut kill_conn = kill_rx.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let extra = extra.clone();
                        let fut = handle(
                            req,
                            script.clone(),
                            stats.clone(),
                            model.clone(),
                            keep_bodies,
                            extra.clone(),
                        );
                        async move {
                            let mut resp = fut.await?;
                            for (k, v) in &extra.headers {
                                resp.headers_mut().insert(k.clone(), v.clone());
                            }
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = kill_conn.wait_for(|k| *k) => {}
                    }
                });
            }
        });
        Ok(FakeServer {
            addr,
            stats,
            accept,
            killed,
        })
    }
}

/// What every response of a server gets.
struct ExtraResponse {
    metrics: Option<MetricsScript>,
    headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    version: String,
}

struct InFlight(Arc<ServerStats>);

impl InFlight {
    fn new(stats: Arc<ServerStats>) -> Self {
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(stats)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Response body fed by a channel.
pub struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, io::Error>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

fn fixed(status: StatusCode, body: String) -> Response<ChannelBody> {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Ok(Bytes::from(body)));
    let mut resp = Response::new(ChannelBody { rx });
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn handle(
    req: Request<Incoming>,
    script: Script,
    stats: Arc<ServerStats>,
    model: Arc<String>,
    keep_bodies: bool,
    extra: Arc<ExtraResponse>,
) -> Result<Response<ChannelBody>, Infallible> {
    let path = req.uri().path().to_string();
    match (req.method().as_str(), path.as_str()) {
        ("GET", "/v1/models") => {
            let mut entry =
                serde_json::json!({"id": *model, "object": "model", "root": "fake/root-model"});
            let max_len = stats.max_model_len.load(Ordering::SeqCst);
            if max_len > 0 {
                entry["max_model_len"] = max_len.into();
            }
            let body = serde_json::json!({"object": "list", "data": [entry]});
            return Ok(fixed(StatusCode::OK, body.to_string()));
        }
        ("GET", "/version") => return Ok(fixed(StatusCode::OK, extra.version.clone())),
        ("GET", "/metrics") if extra.metrics.is_some() => {
            let reply = extra.metrics.as_ref().map(|m| m(&stats));
            return Ok(match reply {
                Some(Reply::Status { status, body }) => fixed(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    body,
                ),
                Some(Reply::Hang) => std::future::pending().await,
                // A slow page: the frames' delays, then their bytes as one 200 body.
                Some(Reply::Frames { frames, .. }) => {
                    let mut body = Vec::new();
                    for (delay, bytes) in frames {
                        tokio::time::sleep(delay).await;
                        body.extend_from_slice(&bytes);
                    }
                    fixed(StatusCode::OK, String::from_utf8_lossy(&body).into_owned())
                }
                _ => fixed(StatusCode::INTERNAL_SERVER_ERROR, String::new()),
            });
        }
        ("POST", "/tokenize") => {
            let bytes = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let body: serde_json::Value =
                serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            let words = body["prompt"]
                .as_str()
                .unwrap_or("")
                .split_whitespace()
                .count();
            let mut out =
                serde_json::json!({"count": words, "tokens": (0..words).collect::<Vec<_>>()});
            let max_len = stats.max_model_len.load(Ordering::SeqCst);
            if max_len > 0 {
                out["max_model_len"] = max_len.into();
            }
            return Ok(fixed(StatusCode::OK, out.to_string()));
        }
        ("POST", "/v1/completions") | ("POST", "/v1/chat/completions") => {}
        _ => {
            return Ok(fixed(
                StatusCode::NOT_FOUND,
                r#"{"detail":"Not Found"}"#.into(),
            ))
        }
    }
    let guard = InFlight::new(stats.clone());
    let index = stats.requests.fetch_add(1, Ordering::SeqCst);
    let headers = req.headers().clone();
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    let words = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.split_whitespace().count() as u64,
        serde_json::Value::Array(parts) => parts
            .iter()
            .map(|p| p["text"].as_str().unwrap_or("").split_whitespace().count() as u64)
            .sum(),
        _ => 0,
    };
    let prompt_tokens = match (&body["prompt"], &body["messages"]) {
        (serde_json::Value::Array(a), _) => a.len() as u64,
        (serde_json::Value::String(s), _) => s.split_whitespace().count() as u64,
        (_, serde_json::Value::Array(msgs)) => msgs.iter().map(|m| words(&m["content"])).sum(),
        _ => 0,
    };
    let info = RequestInfo {
        index,
        max_tokens: body["max_tokens"]
            .as_u64()
            .or_else(|| body["max_completion_tokens"].as_u64()),
        prompt_tokens,
        continuous_usage: body["stream_options"]["continuous_usage_stats"].as_bool() == Some(true),
        body,
        headers,
        path,
        raw_body: bytes,
    };
    if keep_bodies {
        if let Ok(mut b) = stats.bodies.lock() {
            b.push(info.body.clone());
        }
        if let Ok(mut r) = stats.recorded.lock() {
            r.push(RecordedRequest {
                path: info.path.clone(),
                headers: info.headers.clone(),
                raw_body: info.raw_body.clone(),
            });
        }
    }
    let reply = script(&info);
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(16);
    let start = tokio::time::Instant::now();
    let mut status = StatusCode::OK;
    match reply {
        Reply::Status { status: s, body } => {
            status = StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            drop(guard);
            let _ = tx.try_send(Ok(Bytes::from(body)));
        }
        Reply::Frames { frames, then_break } => {
            tokio::spawn(async move {
                let mut guard = Some(guard);
                let last = frames.len().saturating_sub(1);
                for (i, (delay, b)) in frames.into_iter().enumerate() {
                    tokio::time::sleep(delay).await;
                    if i == last {
                        guard.take();
                    }
                    if tx.send(Ok(b)).await.is_err() {
                        return;
                    }
                }
                drop(guard);
                if then_break {
                    let _ = tx
                        .send(Err(io::Error::other("scripted connection break")))
                        .await;
                }
            });
        }
        Reply::Generate(spec) => {
            tokio::spawn(generate(tx, start, spec, info, guard));
        }
        Reply::Hang => {
            let _guard = guard;
            std::future::pending::<()>().await;
        }
        Reply::Flood { bytes } => {
            tokio::spawn(async move {
                let _guard = guard;
                if tx.send(Ok(Bytes::from_static(b"data: "))).await.is_err() {
                    return;
                }
                let frame = Bytes::from(vec![b'a'; 64 * 1024]);
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(frame.len() as u64) as usize;
                    if tx.send(Ok(frame.slice(..n))).await.is_err() {
                        return;
                    }
                    left -= n as u64;
                }
            });
        }
    }
    let mut resp = Response::new(ChannelBody { rx });
    *resp.status_mut() = status;
    let ct = if status == StatusCode::OK {
        "text/event-stream"
    } else {
        "application/json"
    };
    resp.headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static(ct));
    Ok(resp)
}

/// The request counts as in flight until its last bytes are handed to the connection
/// (so a client never sees the end of a stream before the server stopped counting it).
async fn generate(
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    start: tokio::time::Instant,
    spec: GenSpec,
    info: RequestInfo,
    guard: InFlight,
) {
    let n = spec.tokens.or(info.max_tokens).unwrap_or(16);
    let per = spec.tokens_per_chunk.max(1);
    let chat = info.is_chat();
    let mut sent = 0u64;
    while sent < n {
        let upto = (sent + per).min(n);
        let when = start + spec.ttft + spec.interval * u32::try_from(upto - 1).unwrap_or(u32::MAX);
        tokio::time::sleep_until(when).await;
        let text = " x".repeat((upto - sent) as usize);
        let finish = if upto == n { "\"length\"" } else { "null" };
        if chat {
            // vLLM's chat stream: a role-only delta first, then content deltas.
            let role = if sent == 0 {
                "data: {\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
            } else {
                ""
            };
            let msg = format!(
                "{role}data: {{\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n"
            );
            if tx.send(Ok(Bytes::from(msg))).await.is_err() {
                return;
            }
            sent = upto;
            continue;
        }
        let usage = if info.continuous_usage {
            format!(
                ",\"usage\":{{\"prompt_tokens\":{},\"completion_tokens\":{upto},\"total_tokens\":{}}}",
                info.prompt_tokens,
                info.prompt_tokens + upto
            )
        } else {
            String::new()
        };
        let msg = format!(
            "data: {{\"id\":\"cmpl-fake\",\"object\":\"text_completion\",\"created\":0,\"model\":\"m\",\"choices\":[{{\"index\":0,\"text\":\"{text}\",\"logprobs\":null,\"finish_reason\":{finish},\"stop_reason\":null}}]{usage}}}\n\n"
        );
        if tx.send(Ok(Bytes::from(msg))).await.is_err() {
            return;
        }
        sent = upto;
    }
    let tail = format!(
        "data: {{\"id\":\"cmpl-fake\",\"object\":\"text_completion\",\"created\":0,\"model\":\"m\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{},\"completion_tokens\":{n},\"total_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
        info.prompt_tokens,
        info.prompt_tokens + n
    );
    drop(guard);
    let _ = tx.send(Ok(Bytes::from(tail))).await;
}
