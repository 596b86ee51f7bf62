//! A fast scripted OpenAI-compatible streaming server for client benchmarks
//! (`scripts/bench-client.sh`, binary `pd-fast-openai`).
//!
//! Unlike [`crate::fake_openai`] (hyper, a channel and a task per stream, every fault a
//! test needs), this server does the least work per token a streaming server can do: one
//! task per connection that owns its socket, one timer wait and one `write` per SSE
//! message, the message formatted into a reused buffer, chunked transfer encoding written
//! by hand. So on a shared machine as much CPU as possible is left to the client being
//! measured.
//!
//! Script: every streamed completion (`/v1/completions`, `/v1/chat/completions`) gets
//! `max_tokens` tokens (or `--tokens`), token j (from 0) sent `ttft + j × interval` after
//! the request was read, `tokens_per_chunk` tokens per SSE message, per-chunk usage when
//! the request asks for `continuous_usage_stats`, the final usage message when it asks
//! for `include_usage`, then `data: [DONE]`.
//!
//! **The server checks its own timing.** It records when each message was actually
//! written: `GET /stats` returns the achieved TTFT (first write − request read), TPOT
//! ((last write − first write) / (tokens − 1)), the gap between writes (exact median on
//! 1 µs buckets) and the emission lag (write − scripted time); `POST /stats/reset` starts
//! a new window. A client's error is then its measurement minus what the server actually
//! did, and `tpot_error_rel` says whether the server kept to the script (the benchmark
//! requires |error| ≤ 0.1 %).
//!
//! Also served: `GET /v1/models`, `GET /version`, `GET /health`. HTTP/1.1 keep-alive;
//! request bodies need `content-length`.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What every stream gets.
#[derive(Debug, Clone, PartialEq)]
pub struct FastSpec {
    pub model: String,
    pub ttft: Duration,
    pub interval: Duration,
    /// Tokens per SSE message (≥ 1).
    pub tokens_per_chunk: u32,
    /// Tokens per stream (None: the request's `max_tokens`, 16 when absent).
    pub tokens: Option<u64>,
}

impl Default for FastSpec {
    fn default() -> Self {
        FastSpec {
            model: "fake".into(),
            ttft: Duration::from_millis(20),
            interval: Duration::from_millis(10),
            tokens_per_chunk: 1,
            tokens: None,
        }
    }
}

/// Largest request head + body accepted.
const MAX_REQUEST: usize = 64 << 20;
/// Write gaps are counted in 1 µs buckets up to this many µs (larger ones in the last).
const GAP_BUCKETS: usize = 1_000_000;

/// What the server did since the last reset (see the module documentation).
#[derive(Debug)]
pub struct FastStats {
    inner: Mutex<Totals>,
    /// Gap between consecutive writes of one stream, 1 µs buckets.
    gaps: Box<[AtomicU64]>,
    pub requests: AtomicU64,
    pub in_flight: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    completed: u64,
    aborted: u64,
    tokens: u64,
    chunks: u64,
    ttft_sum: f64,
    ttft_n: u64,
    ttft_max: f64,
    tpot_sum: f64,
    tpot_n: u64,
    lag_sum: f64,
    lag_max: f64,
    lag_over_1ms: u64,
    lag_over_5ms: u64,
    first_arrival: Option<Instant>,
    last_write: Option<Instant>,
}

/// One stream's record, merged into [`FastStats`] when it ends.
#[derive(Debug, Default)]
struct StreamTotals {
    tokens: u64,
    chunks: u64,
    ttft: Option<f64>,
    first: Option<Instant>,
    last: Option<Instant>,
    lag_sum: f64,
    lag_max: f64,
    lag_over_1ms: u64,
    lag_over_5ms: u64,
}

impl FastStats {
    fn new() -> Self {
        FastStats {
            inner: Mutex::new(Totals::default()),
            gaps: (0..GAP_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        }
    }

    /// Start a new measurement window.
    pub fn reset(&self) {
        if let Ok(mut t) = self.inner.lock() {
            *t = Totals::default();
        }
        for g in self.gaps.iter() {
            g.store(0, Ordering::Relaxed);
        }
        self.requests.store(0, Ordering::Relaxed);
    }

    fn arrived(&self, at: Instant) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut t) = self.inner.lock() {
            t.first_arrival.get_or_insert(at);
        }
    }

    fn gap(&self, d: Duration) {
        let us = (d.as_micros() as usize).min(GAP_BUCKETS - 1);
        self.gaps[us].fetch_add(1, Ordering::Relaxed);
    }

    fn merge(&self, s: &StreamTotals, complete: bool) {
        let Ok(mut t) = self.inner.lock() else {
            return;
        };
        if complete {
            t.completed += 1;
        } else {
            t.aborted += 1;
        }
        t.tokens += s.tokens;
        t.chunks += s.chunks;
        if let Some(ttft) = s.ttft {
            t.ttft_sum += ttft;
            t.ttft_n += 1;
            t.ttft_max = t.ttft_max.max(ttft);
        }
        if let (true, Some(f), Some(l)) = (complete && s.tokens > 1, s.first, s.last) {
            t.tpot_sum += l.saturating_duration_since(f).as_secs_f64() / (s.tokens - 1) as f64;
            t.tpot_n += 1;
        }
        t.lag_sum += s.lag_sum;
        t.lag_max = t.lag_max.max(s.lag_max);
        t.lag_over_1ms += s.lag_over_1ms;
        t.lag_over_5ms += s.lag_over_5ms;
        if let Some(l) = s.last {
            t.last_write = Some(t.last_write.map_or(l, |x| x.max(l)));
        }
    }

    /// The window's figures as JSON (times in ms).
    pub fn to_json(&self, spec: &FastSpec) -> serde_json::Value {
        let t = self.inner.lock().map(|t| *t).unwrap_or_default();
        let counts: Vec<u64> = self
            .gaps
            .iter()
            .map(|g| g.load(Ordering::Relaxed))
            .collect();
        let n_gaps: u64 = counts.iter().sum();
        let gap_sum_us: f64 = counts
            .iter()
            .enumerate()
            .map(|(us, &c)| us as f64 * c as f64)
            .sum();
        let per = |x: f64, n: u64| if n > 0 { x / n as f64 } else { 0.0 };
        let tpot = per(t.tpot_sum, t.tpot_n);
        let scripted = spec.interval.as_secs_f64() / f64::from(spec.tokens_per_chunk.max(1));
        let span = match (t.first_arrival, t.last_write) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        serde_json::json!({
            "requests": self.requests.load(Ordering::Relaxed),
            "in_flight": self.in_flight.load(Ordering::Relaxed),
            "completed": t.completed,
            "aborted": t.aborted,
            "tokens": t.tokens,
            "chunks": t.chunks,
            "span_s": span,
            "scripted_ttft_ms": spec.ttft.as_secs_f64() * 1e3,
            "scripted_tpot_ms": scripted * 1e3,
            "mean_ttft_ms": per(t.ttft_sum, t.ttft_n) * 1e3,
            "max_ttft_ms": t.ttft_max * 1e3,
            "mean_tpot_ms": tpot * 1e3,
            "tpot_error_rel": if t.tpot_n > 0 && scripted > 0.0 { tpot / scripted - 1.0 } else { 0.0 },
            "mean_gap_ms": per(gap_sum_us, n_gaps) / 1e3,
            "median_gap_ms": median_of_counts(&counts) / 1e3,
            "mean_lag_ms": per(t.lag_sum, t.chunks) * 1e3,
            "max_lag_ms": t.lag_max * 1e3,
            "lag_over_1ms": t.lag_over_1ms,
            "lag_over_5ms": t.lag_over_5ms,
        })
    }
}

/// numpy's median of a histogram of integer values (bucket index = value).
fn median_of_counts(counts: &[u64]) -> f64 {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return 0.0;
    }
    let kth = |k: u64| {
        let mut seen = 0;
        for (v, &c) in counts.iter().enumerate() {
            seen += c;
            if seen > k {
                return v as f64;
            }
        }
        (counts.len() - 1) as f64
    };
    if n % 2 == 1 {
        kth(n / 2)
    } else {
        (kth(n / 2 - 1) + kth(n / 2)) / 2.0
    }
}

/// A running server (stops accepting when dropped).
pub struct FastServer {
    pub addr: SocketAddr,
    pub stats: Arc<FastStats>,
    accept: JoinHandle<()>,
}

impl Drop for FastServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FastServer {
    /// Start on `addr` (port 0: any free port) inside the current tokio runtime.
    pub async fn start(addr: SocketAddr, spec: FastSpec) -> io::Result<FastServer> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener: TcpListener = socket.listen(16_384)?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(FastStats::new());
        let spec = Arc::new(spec);
        let st = stats.clone();
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(connection(stream, spec.clone(), st.clone()));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        });
        Ok(FastServer {
            addr,
            stats,
            accept,
        })
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A parsed request.
struct Req {
    method: String,
    path: String,
    close: bool,
    body: Vec<u8>,
}

/// Read one request; `None` at a clean end of the connection.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<Req>> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Request::new(&mut headers);
        match r.parse(buf) {
            Ok(httparse::Status::Complete(head)) => {
                let mut len = 0usize;
                let mut close = r.version == Some(0);
                for h in r.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        len = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                            .ok_or_else(|| io::Error::other("bad content-length"))?;
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        return Err(io::Error::other("chunked request bodies are not supported"));
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close = h.value.eq_ignore_ascii_case(b"close");
                    }
                }
                if head + len > MAX_REQUEST {
                    return Err(io::Error::other("request too large"));
                }
                let method = r.method.unwrap_or("").to_string();
                let path = r.path.unwrap_or("").to_string();
                while buf.len() < head + len {
                    if s.read_buf(buf).await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                let body = buf[head..head + len].to_vec();
                buf.drain(..head + len);
                return Ok(Some(Req {
                    method,
                    path,
                    close,
                    body,
                }));
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() > MAX_REQUEST {
                    return Err(io::Error::other("request head too large"));
                }
                if s.read_buf(buf).await? == 0 {
                    return if buf.is_empty() {
                        Ok(None)
                    } else {
                        Err(io::ErrorKind::UnexpectedEof.into())
                    };
                }
            }
            Err(e) => return Err(io::Error::other(e.to_string())),
        }
    }
}

async fn respond(s: &mut TcpStream, status: &str, ctype: &str, body: &[u8]) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    s.write_all(&out).await
}

async fn connection(mut s: TcpStream, spec: Arc<FastSpec>, stats: Arc<FastStats>) {
    let mut buf = Vec::with_capacity(8192);
    loop {
        let req = match read_request(&mut s, &mut buf).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                let _ = respond(
                    &mut s,
                    "400 Bad Request",
                    "application/json",
                    serde_json::json!({"error": {"message": e.to_string()}})
                        .to_string()
                        .as_bytes(),
                )
                .await;
                return;
            }
        };
        let arrived = Instant::now();
        let ok = match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v1/models") => {
                let body = serde_json::json!({"object": "list", "data": [
                    {"id": spec.model, "object": "model", "root": spec.model, "owned_by": "pd-lab"}]});
                respond(
                    &mut s,
                    "200 OK",
                    "application/json",
                    body.to_string().as_bytes(),
                )
                .await
            }
            ("GET", "/version") => {
                respond(
                    &mut s,
                    "200 OK",
                    "application/json",
                    br#"{"version":"pd-fast-openai"}"#,
                )
                .await
            }
            ("GET", "/health") => respond(&mut s, "200 OK", "application/json", b"").await,
            ("GET", "/stats") => {
                let body = stats.to_json(&spec).to_string();
                respond(&mut s, "200 OK", "application/json", body.as_bytes()).await
            }
            ("POST", "/stats/reset") => {
                stats.reset();
                respond(&mut s, "200 OK", "application/json", b"{}").await
            }
            ("POST", "/v1/completions") | ("POST", "/v1/chat/completions") => {
                let chat = req.path.ends_with("/chat/completions");
                match serde_json::from_slice::<serde_json::Value>(&req.body) {
                    Ok(body) if body["stream"].as_bool() == Some(true) => {
                        stats.arrived(arrived);
                        stats.in_flight.fetch_add(1, Ordering::Relaxed);
                        let r = stream(&mut s, &spec, &stats, &body, chat, arrived).await;
                        stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                        r
                    }
                    Ok(_) => respond(
                        &mut s,
                        "400 Bad Request",
                        "application/json",
                        br#"{"error":{"message":"pd-fast-openai streams only (stream: true)"}}"#,
                    )
                    .await,
                    Err(e) => {
                        respond(
                            &mut s,
                            "400 Bad Request",
                            "application/json",
                            serde_json::json!({"error": {"message": format!("invalid JSON: {e}")}})
                                .to_string()
                                .as_bytes(),
                        )
                        .await
                    }
                }
            }
            _ => {
                respond(
                    &mut s,
                    "404 Not Found",
                    "application/json",
                    br#"{"detail":"Not Found"}"#,
                )
                .await
            }
        };
        if ok.is_err() || req.close {
            return;
        }
    }
}

/// Prompt tokens of a request: a token-id list's length, else whitespace words.
fn prompt_tokens(body: &serde_json::Value) -> u64 {
    let words = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.split_whitespace().count() as u64,
        serde_json::Value::Array(parts) => parts
            .iter()
            .map(|p| p["text"].as_str().unwrap_or("").split_whitespace().count() as u64)
            .sum(),
        _ => 0,
    };
    match (&body["prompt"], &body["messages"]) {
        (serde_json::Value::Array(a), _) => a.len() as u64,
        (serde_json::Value::String(s), _) => s.split_whitespace().count() as u64,
        (_, serde_json::Value::Array(m)) => m.iter().map(|m| words(&m["content"])).sum(),
        _ => 0,
    }
}

/// Wrap `msg` as one HTTP chunk into `out`.
fn http_chunk(out: &mut Vec<u8>, msg: &[u8]) {
    use std::io::Write;
    let _ = write!(out, "{:x}\r\n", msg.len());
    out.extend_from_slice(msg);
    out.extend_from_slice(b"\r\n");
}

async fn stream(
    s: &mut TcpStream,
    spec: &FastSpec,
    stats: &FastStats,
    body: &serde_json::Value,
    chat: bool,
    arrived: Instant,
) -> io::Result<()> {
    use std::fmt::Write;
    let n = spec
        .tokens
        .or_else(|| body["max_tokens"].as_u64())
        .or_else(|| body["max_completion_tokens"].as_u64())
        .unwrap_or(16);
    let prompt = prompt_tokens(body);
    let continuous = body["stream_options"]["continuous_usage_stats"].as_bool() == Some(true);
    let include_usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
    let per = u64::from(spec.tokens_per_chunk.max(1));
    let mut st = StreamTotals::default();
    let mut msg = String::with_capacity(512);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
    );
    let mut result = s.write_all(&out).await;
    let mut sent = 0u64;
    while result.is_ok() && sent < n {
        let upto = (sent + per).min(n);
        let due = arrived
            + spec.ttft
            + spec
                .interval
                .saturating_mul(u32::try_from(upto - 1).unwrap_or(u32::MAX));
        tokio::time::sleep_until(due.into()).await;
        msg.clear();
        let text = " x".repeat((upto - sent) as usize);
        let finish = if upto == n { "\"length\"" } else { "null" };
        if chat {
            if sent == 0 {
                msg.push_str("data: {\"id\":\"chatcmpl-fast\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
            }
            let _ = write!(msg, "data: {{\"id\":\"chatcmpl-fast\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"logprobs\":null,\"finish_reason\":{finish}}}]");
        } else {
            let _ = write!(msg, "data: {{\"id\":\"cmpl-fast\",\"object\":\"text_completion\",\"created\":0,\"model\":\"m\",\"choices\":[{{\"index\":0,\"text\":\"{text}\",\"logprobs\":null,\"finish_reason\":{finish},\"stop_reason\":null}}]");
        }
        if continuous {
            let _ = write!(
                msg,
                ",\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{upto},\"total_tokens\":{}}}",
                prompt + upto
            );
        }
        msg.push_str("}\n\n");
        out.clear();
        http_chunk(&mut out, msg.as_bytes());
        let now = Instant::now();
        result = s.write_all(&out).await;
        let lag = now.saturating_duration_since(due).as_secs_f64();
        st.lag_sum += lag;
        st.lag_max = st.lag_max.max(lag);
        st.lag_over_1ms += u64::from(lag > 1e-3);
        st.lag_over_5ms += u64::from(lag > 5e-3);
        if st.first.is_none() {
            st.first = Some(now);
            st.ttft = Some(now.saturating_duration_since(arrived).as_secs_f64());
        }
        if let Some(prev) = st.last {
            stats.gap(now.saturating_duration_since(prev));
        }
        st.last = Some(now);
        st.chunks += 1;
        st.tokens = upto;
        sent = upto;
    }
    if result.is_ok() {
        msg.clear();
        if include_usage {
            let object = if chat {
                "chat.completion.chunk"
            } else {
                "text_completion"
            };
            let _ = write!(msg, "data: {{\"id\":\"cmpl-fast\",\"object\":\"{object}\",\"created\":0,\"model\":\"m\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{n},\"total_tokens\":{}}}}}\n\n", prompt + n);
        }
        msg.push_str("data: [DONE]\n\n");
        out.clear();
        http_chunk(&mut out, msg.as_bytes());
        out.extend_from_slice(b"0\r\n\r\n");
        result = s.write_all(&out).await;
    }
    stats.merge(&st, result.is_ok());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_a_histogram_is_numpys() {
        assert_eq!(median_of_counts(&[0, 0, 0]), 0.0);
        assert_eq!(median_of_counts(&[0, 3, 0]), 1.0);
        // values 1, 2 → 1.5; values 1, 1, 2 → 1.
        assert_eq!(median_of_counts(&[0, 1, 1]), 1.5);
        assert_eq!(median_of_counts(&[0, 2, 1]), 1.0);
    }

    #[tokio::test]
    async fn streams_on_time_and_reports_what_it_did() {
        let spec = FastSpec {
            ttft: Duration::from_millis(20),
            interval: Duration::from_millis(5),
            ..Default::default()
        };
        let srv = FastServer::start("127.0.0.1:0".parse().unwrap(), spec.clone())
            .await
            .unwrap();
        let body = r#"{"model":"fake","prompt":[1,2,3],"max_tokens":6,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}"#;
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        let t0 = Instant::now();
        let req = format!(
            "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).await.unwrap();
        let took = t0.elapsed().as_secs_f64();
        let text = String::from_utf8(resp).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("transfer-encoding: chunked"));
        assert_eq!(text.matches("\"text\":\" x\"").count(), 6, "{text}");
        assert!(text.contains("\"completion_tokens\":6,\"total_tokens\":9"));
        assert!(text.contains("\"choices\":[],\"usage\""));
        assert!(text.ends_with("data: [DONE]\n\n\r\n0\r\n\r\n"), "{text}");
        assert!(took >= 0.045, "20 ms + 5 × 5 ms, took {took}");
        let st = srv.stats.to_json(&spec);
        assert_eq!(st["completed"], 1);
        assert_eq!(st["tokens"], 6);
        assert_eq!(st["chunks"], 6);
        // What the server measured of itself: never early, and late by no more than a
        // loaded machine explains (no tight timing bound: this runs beside other tests).
        let tpot = st["mean_tpot_ms"].as_f64().unwrap();
        assert!((4.0..100.0).contains(&tpot), "{st}");
        let ttft = st["mean_ttft_ms"].as_f64().unwrap();
        assert!((20.0..1000.0).contains(&ttft), "{st}");
        srv.stats.reset();
        assert_eq!(srv.stats.to_json(&spec)["completed"], 0);
    }

    #[tokio::test]
    async fn keep_alive_and_errors() {
        let srv = FastServer::start("127.0.0.1:0".parse().unwrap(), FastSpec::default())
            .await
            .unwrap();
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        let mut buf = vec![0u8; 4096];
        for _ in 0..2 {
            s.write_all(b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let n = s.read(&mut buf).await.unwrap();
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(
                text.contains("200 OK") && text.contains("\"id\":\"fake\""),
                "{text}"
            );
        }
        s.write_all(b"POST /v1/completions HTTP/1.1\r\ncontent-length: 5\r\n\r\n{bad}")
            .await
            .unwrap();
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).contains("400 Bad Request"));
    }
}
