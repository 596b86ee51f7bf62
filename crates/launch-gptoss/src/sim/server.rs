//! The simulator's OpenAI-compatible HTTP server (hyper 1, HTTP/1.1), shaped like vLLM:
//! `POST /v1/completions` (SSE streaming and non-streaming), `GET /v1/models`,
//! `/health`, `/metrics`, `/version`. Every response carries `x-pd-lab-backend: sim`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;

use super::engine::{EmissionKind, Engine, SimRequest};
use super::lag::{LagHistogram, LagSummary};
use super::metrics::{self, MetricsInfo, ServerCounters};
use super::protocol::{self, ApiError, ChunkFormatter, CompletionRequest, ModelInfo, TextGen};
use super::realtime::{Clock, Delivery, Driver, DriverHandle};

/// Name of the server in `/version`.
pub const SERVER_NAME: &str = "pd-lab-sim";
/// Header present on every response of the simulator.
pub const BACKEND_HEADER: &str = "x-pd-lab-backend";
/// Header carrying the server's instance token (see [`ServerOptions::instance`]).
pub const INSTANCE_HEADER: &str = "x-pd-lab-instance";
/// Largest request body accepted (a 16k-token id prompt is ~100 KB).
const MAX_BODY_BYTES: usize = 32 << 20;

type ResBody = UnsyncBoxBody<Bytes, Infallible>;

/// Errors of the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the engine thread")]
    Thread(#[source] std::io::Error),
}

/// What the server says about the model and deployment.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub served_model_name: String,
    pub model_source: String,
    pub max_model_len: u32,
    /// Deployment label (`4xtp2`), shown in `/metrics` and `/version`.
    pub label: String,
    pub gpu: String,
    /// Token returned in every response ([`INSTANCE_HEADER`]): whoever started this server
    /// can tell it from another one answering on the same address.
    pub instance: Option<String>,
    /// The `corrupt-kv` fault of a PD deployment: decode's tokens ignore the prompt
    /// ([`protocol::TextGen`]).
    pub corrupt_kv: bool,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    rejected: AtomicU64,
    cancelled: AtomicU64,
    active: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    opts: ServerOptions,
    model: ModelInfo,
    driver: DriverHandle,
    write_lag: Arc<LagHistogram>,
    dispatch_lag: Arc<LagHistogram>,
    next_id: AtomicU64,
    counters: Counters,
    created: u64,
    id_salt: u64,
    instance: Option<HeaderValue>,
}

/// Read-only access to the server's lag measurements (for benchmarks and tests).
#[derive(Debug, Clone)]
pub struct ServerMonitor {
    shared: Arc<Shared>,
}

impl ServerMonitor {
    /// Emission lag: model time → hand-off of the SSE chunk to the connection.
    pub fn emission_lag(&self) -> LagSummary {
        self.shared.write_lag.summary()
    }
    /// Dispatch lag: model time → the engine thread hands the emission to the request.
    pub fn dispatch_lag(&self) -> LagSummary {
        self.shared.dispatch_lag.summary()
    }
    pub fn reset(&self) {
        self.shared.write_lag.reset();
        self.shared.dispatch_lag.reset();
    }
}

/// A bound, not yet serving, simulator server.
#[derive(Debug)]
pub struct SimServer {
    listener: TcpListener,
    shared: Arc<Shared>,
    driver: Driver,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl SimServer {
    /// Bind the listener and start the engine thread (simulated time starts now).
    pub async fn bind(
        addr: SocketAddr,
        engine: Engine,
        opts: ServerOptions,
    ) -> Result<Self, ServerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        Self::from_listener(listener, engine, opts)
    }

    /// Serve on a socket bound elsewhere (the launcher binds it, so that two launches on one
    /// port cannot both succeed) and start the engine thread.
    pub fn from_listener(
        listener: TcpListener,
        engine: Engine,
        opts: ServerOptions,
    ) -> Result<Self, ServerError> {
        let instance = opts
            .instance
            .as_deref()
            .and_then(|i| HeaderValue::from_str(i).ok());
        let write_lag = Arc::new(LagHistogram::new());
        let dispatch_lag = Arc::new(LagHistogram::new());
        let driver = Driver::start(engine, dispatch_lag.clone()).map_err(ServerError::Thread)?;
        let model = ModelInfo {
            served_model_name: opts.served_model_name.clone(),
            max_model_len: opts.max_model_len,
        };
        let shared = Arc::new(Shared {
            opts,
            model,
            driver: driver.handle(),
            write_lag,
            dispatch_lag,
            next_id: AtomicU64::new(1),
            counters: Counters::default(),
            created: unix_now(),
            id_salt: rand::random(),
            instance,
        });
        Ok(SimServer {
            listener,
            shared,
            driver,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn monitor(&self) -> ServerMonitor {
        ServerMonitor {
            shared: self.shared.clone(),
        }
    }

    /// Serve until `shutdown` completes, then stop the engine thread.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let SimServer {
            listener,
            shared,
            mut driver,
        } = self;
        if let Some(fan_out) = driver.take_fan_out() {
            tokio::spawn(fan_out.run());
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                acc = listener.accept() => match acc {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            let svc = hyper::service::service_fn(move |req| handle(shared.clone(), req));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors or similar: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
        }
        drop(listener);
        driver.stop();
    }
}

fn full(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ResBody> {
    let mut r = Response::new(Full::new(body.into()).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn json(status: StatusCode, body: String) -> Response<ResBody> {
    full(status, "application/json", body)
}

fn api_error(shared: &Shared, e: &ApiError) -> Response<ResBody> {
    shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, e.body())
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, Infallible> {
    let mut resp = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/completions") => completions(&shared, req).await,
        (&Method::GET, "/health") => full(StatusCode::OK, "application/json", Bytes::new()),
        (&Method::GET, "/v1/models") => json(
            StatusCode::OK,
            protocol::models_response(&shared.model, &shared.opts.model_source, shared.created),
        ),
        (&Method::GET, "/version") => json(
            StatusCode::OK,
            serde_json::json!({
                "version": pd_common::VERSION,
                "server": SERVER_NAME,
                "backend": "sim",
                "label": shared.opts.label,
                "gpu": shared.opts.gpu,
                "pid": std::process::id(),
            })
            .to_string(),
        ),
        (&Method::GET, "/metrics") => metrics_page(&shared).await,
        (_, "/v1/completions" | "/health" | "/v1/models" | "/version" | "/metrics") => json(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"detail":"Method Not Allowed"}"#.to_string(),
        ),
        _ => json(
            StatusCode::NOT_FOUND,
            r#"{"detail":"Not Found"}"#.to_string(),
        ),
    };
    resp.headers_mut()
        .insert(BACKEND_HEADER, HeaderValue::from_static("sim"));
    if let Some(i) = &shared.instance {
        resp.headers_mut().insert(INSTANCE_HEADER, i.clone());
    }
    Ok(resp)
}

async fn metrics_page(shared: &Shared) -> Response<ResBody> {
    let Ok(stats) = shared.driver.stats().await else {
        return api_error(
            shared,
            &ApiError::internal("the simulator engine thread has stopped"),
        );
    };
    let c = &shared.counters;
    let counters = ServerCounters {
        requests_total: c.requests.load(Ordering::Relaxed),
        requests_rejected_total: c.rejected.load(Ordering::Relaxed),
        requests_cancelled_total: c.cancelled.load(Ordering::Relaxed),
        active_streams: c.active.load(Ordering::Relaxed),
        uptime_seconds: shared.driver.clock().now(),
    };
    let info = MetricsInfo {
        model_name: shared.opts.served_model_name.clone(),
        label: shared.opts.label.clone(),
        gpu: shared.opts.gpu.clone(),
        version: pd_common::VERSION.to_string(),
    };
    let page = metrics::render(
        &info,
        &stats,
        &counters,
        &shared.write_lag.summary(),
        &shared.dispatch_lag.summary(),
    );
    full(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        page,
    )
}

/// Cancels the request in the engine if the response is dropped before the end
/// (client disconnect), and keeps the active-stream gauge.
struct RequestGuard {
    id: u64,
    shared: Arc<Shared>,
    finished: bool,
}

impl RequestGuard {
    fn new(id: u64, shared: Arc<Shared>) -> Self {
        shared.counters.active.fetch_add(1, Ordering::Relaxed);
        RequestGuard {
            id,
            shared,
            finished: false,
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.shared.counters.active.fetch_sub(1, Ordering::Relaxed);
        if !self.finished {
            self.shared
                .counters
                .cancelled
                .fetch_add(1, Ordering::Relaxed);
            self.shared.driver.cancel(self.id);
        }
    }
}

async fn completions(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<ResBody> {
    let arrival = Instant::now();
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return api_error(
                shared,
                &ApiError::bad_request(format!("cannot read the request body: {e}"), None),
            )
        }
    };
    let parsed = match protocol::parse_completion(&body, &shared.model) {
        Ok(p) => p,
        Err(e) => return api_error(shared, &e),
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let request_id = format!("cmpl-{:016x}{:016x}", shared.id_salt, id);
    let sim = SimRequest {
        id,
        prompt_tokens: parsed.prompt_tokens,
        max_tokens: parsed.max_tokens,
        block_hashes: parsed.block_hashes.clone(),
    };
    let rx = match shared.driver.submit(sim, arrival) {
        Ok(rx) => rx,
        Err(e) => return api_error(shared, &ApiError::internal(e.to_string())),
    };
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let guard = RequestGuard::new(id, shared.clone());
    let created = unix_now();
    let text = TextGen::new(&parsed, shared.opts.corrupt_kv);
    let mut resp = if parsed.stream {
        let fmt = ChunkFormatter::new(
            &request_id,
            created,
            &shared.opts.served_model_name,
            &parsed,
            text,
        );
        let body = SseBody {
            rx,
            fmt,
            req: parsed,
            emitted: 0,
            final_sent: false,
            done: false,
            guard,
            clock: shared.driver.clock(),
            buf: String::new(),
            out: BytesMut::new(),
        };
        let mut r = Response::new(body.boxed_unsync());
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        r
    } else {
        non_streaming(shared, rx, guard, &request_id, created, &parsed, text).await
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

async fn non_streaming(
    shared: &Shared,
    mut rx: UnboundedReceiver<Delivery>,
    mut guard: RequestGuard,
    request_id: &str,
    created: u64,
    req: &CompletionRequest,
    text: TextGen,
) -> Response<ResBody> {
    let mut tokens: u32 = 0;
    loop {
        match rx.recv().await {
            Some(Delivery {
                kind: EmissionKind::Tokens(n),
                time,
            }) => {
                shared.write_lag.record(shared.driver.clock().now() - time);
                tokens = tokens.saturating_add(n).min(req.max_tokens);
            }
            Some(Delivery {
                kind: EmissionKind::Finished,
                ..
            }) => break,
            Some(Delivery {
                kind: EmissionKind::Failed(msg),
                ..
            }) => {
                guard.finished = true;
                return api_error(shared, &ApiError::internal(msg));
            }
            None => {
                guard.finished = true;
                return api_error(
                    shared,
                    &ApiError::internal("the simulator engine thread has stopped"),
                );
            }
        }
    }
    guard.finished = true;
    json(
        StatusCode::OK,
        protocol::completion_response(
            request_id,
            created,
            &shared.opts.served_model_name,
            req.prompt_tokens,
            tokens,
            text,
        ),
    )
}

/// Output buffer of a stream: frames are split off it, so a frame costs no allocation
/// until the buffer is used up (then a new one is allocated, or the old one reclaimed
/// once hyper has written and dropped its frames).
const SSE_OUT_CAPACITY: usize = 4096;

/// The SSE body of a streamed completion: one `data:` event per emission; the events
/// that are ready when hyper polls go out in one frame (one write).
struct SseBody {
    rx: UnboundedReceiver<Delivery>,
    fmt: ChunkFormatter,
    req: CompletionRequest,
    emitted: u32,
    final_sent: bool,
    done: bool,
    guard: RequestGuard,
    clock: Clock,
    /// The events being formatted (reused).
    buf: String,
    out: BytesMut,
}

impl SseBody {
    fn finish(&mut self) {
        ChunkFormatter::push_done(&mut self.buf);
        self.done = true;
        self.guard.finished = true;
    }

    fn on_delivery(&mut self, d: Delivery) {
        match d.kind {
            EmissionKind::Tokens(n) => {
                if self.final_sent {
                    return;
                }
                self.guard
                    .shared
                    .write_lag
                    .record(self.clock.now() - d.time);
                let from = self.emitted;
                let to = from.saturating_add(n).min(self.req.max_tokens);
                let last = to >= self.req.max_tokens;
                self.fmt.push_tokens(&mut self.buf, from, to, last);
                self.emitted = to;
                self.final_sent = last;
            }
            EmissionKind::Finished => {
                if !self.final_sent {
                    let e = self.emitted;
                    self.fmt.push_tokens(&mut self.buf, e, e, true);
                    self.final_sent = true;
                }
                if self.req.include_usage {
                    self.fmt.push_usage_event(&mut self.buf, self.emitted);
                }
                self.finish();
            }
            EmissionKind::Failed(msg) => {
                self.fmt
                    .push_error_event(&mut self.buf, &ApiError::internal(msg));
                self.finish();
            }
        }
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        this.buf.clear();
        while !this.done && this.buf.len() < 32 * 1024 {
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(d)) => this.on_delivery(d),
                Poll::Ready(None) => {
                    let e = ApiError::internal("the simulator engine thread has stopped");
                    this.fmt.push_error_event(&mut this.buf, &e);
                    this.finish();
                }
                Poll::Pending => break,
            }
        }
        if this.buf.is_empty() {
            return if this.done {
                Poll::Ready(None)
            } else {
                Poll::Pending
            };
        }
        if this.out.capacity() < this.buf.len() {
            this.out.reserve(this.buf.len().max(SSE_OUT_CAPACITY));
        }
        this.out.extend_from_slice(this.buf.as_bytes());
        this.buf.clear();
        let chunk = this.out.split().freeze();
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.buf.is_empty()
    }
}
