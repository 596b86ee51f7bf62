//! HTTP/1.1 for the measurement hot path: streamed completions over keep-alive
//! connections, the body read by the request's own task or handed to the stream-reading
//! thread ([`crate::reactor`], plain TCP, long streams).
//!
//! The general client ([`crate::client`], hyper) serves the control plane (`GET
//! /v1/models`, `/version`, `/tokenize`, …). Streaming through it costs, per SSE chunk, a
//! wake-up of hyper's connection task, a channel hand-off to the request's task and a
//! second wake-up, plus a timer re-armed for the stall timeout. Here the task that sends
//! the request owns the socket: one wake-up and one `read` per network read, the bytes
//! read into a per-thread scratch buffer and decoded in place (chunked transfer
//! encoding, content length or read-to-close, then SSE), the timestamp taken once per
//! read; [`Exchange::detach_plain`] gives the socket and the same body decoder to the
//! stream-reading thread instead. A connection keeps no buffer of its own between reads
//! unless an SSE message is split across two reads.
//!
//! Connections are pooled (LIFO, idle for at most 60 s) and can be opened ahead of a point
//! ([`Pool::prewarm`]), so a closed-loop point does not open C connections at once when it
//! starts. A pooled connection that the server closed is detected before use (a
//! non-blocking read), and a request whose reused connection fails before any byte of the
//! response arrived is sent again once on a new connection (the keep-alive race every
//! HTTP client handles).

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::cancel::{Cancel, Level};

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Pooled connections idle for longer are closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound of one TCP connect (+ TLS handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Size of the per-thread read buffer.
const SCRATCH: usize = 64 * 1024;

thread_local! {
    static SCRATCH_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH]);
}

/// A plain or TLS connection.
#[derive(Debug)]
pub enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Io {
    fn tcp(&self) -> &TcpStream {
        match self {
            Io::Plain(s) => s,
            Io::Tls(s) => s.get_ref().0,
        }
    }

    /// An idle connection that has something to read (the server closed it, or sent
    /// bytes nobody asked for) cannot carry another request.
    fn looks_closed(&self) -> bool {
        let mut b = [0u8; 1];
        !matches!(self.tcp().try_read(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One connection of the pool.
#[derive(Debug)]
pub struct Conn {
    io: Io,
    /// Requests it carried before.
    served: u64,
}

/// Connection counters of a pool.
#[derive(Debug, Default)]
pub struct PoolCounters {
    /// Connections opened (including pre-warmed ones).
    pub opened: AtomicU64,
    /// Requests sent on a connection that carried one before.
    pub reused: AtomicU64,
    /// Pooled connections found closed by the server (or failing on reuse) and replaced.
    pub stale: AtomicU64,
}

/// Where the requests go and the connections to it.
pub struct Pool {
    /// Host to connect to (no brackets for IPv6) and port.
    host: String,
    port: u16,
    /// `Host` header.
    authority: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    idle: Mutex<Vec<(Conn, Instant)>>,
    pub counters: PoolCounters,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("idle", &self.idle())
            .finish()
    }
}

fn set_keepalive(s: &TcpStream) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = s.as_raw_fd();
        let set = |level, name, v: libc::c_int| {
            // SAFETY: setsockopt on an open socket with a c_int option value.
            unsafe {
                libc::setsockopt(
                    fd,
                    level,
                    name,
                    (&v as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        };
        set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
        set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 60);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = s;
}

impl Pool {
    /// A pool for `scheme://authority` (`tls`: the rustls configuration for `https`).
    pub fn new(
        host: &str,
        port: u16,
        authority: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, String> {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = match tls {
            None => None,
            Some(cfg) => {
                let mut cfg = (*cfg).clone();
                cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| format!("not a TLS server name: {e}"))?;
                Some((tokio_rustls::TlsConnector::from(Arc::new(cfg)), name))
            }
        };
        Ok(Pool {
            host,
            port,
            authority: authority.to_string(),
            tls,
            idle: Mutex::new(Vec::new()),
            counters: PoolCounters::default(),
        })
    }

    /// The `Host` header value.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Open a new connection.
    pub async fn connect(&self) -> io::Result<Conn> {
        let what = format!("{}:{}", self.host, self.port);
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting to {what} timed out after 30 s"),
            )
        })?
        .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {what}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        set_keepalive(&tcp);
        let io = match &self.tls {
            None => Io::Plain(tcp),
            Some((connector, name)) => {
                let s = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            "TLS handshake timed out after 30 s",
                        )
                    })?
                    .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake failed: {e}")))?;
                Io::Tls(Box::new(s))
            }
        };
        self.counters.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Conn { io, served: 0 })
    }

    /// A pooled connection that still looks open, else a new one.
    pub async fn get(&self) -> io::Result<Conn> {
        loop {
            let next = self.idle.lock().ok().and_then(|mut v| v.pop());
            let Some((c, since)) = next else { break };
            if since.elapsed() > IDLE_TIMEOUT {
                continue;
            }
            if c.io.looks_closed() {
                self.counters.stale.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            return Ok(c);
        }
        self.connect().await
    }

    /// Give a connection back after a complete response.
    fn put(&self, c: Conn) {
        if let Ok(mut v) = self.idle.lock() {
            v.push((c, Instant::now()));
        }
    }

    /// Idle connections in the pool.
    pub fn idle(&self) -> usize {
        self.idle.lock().map_or(0, |v| v.len())
    }

    /// Open connections until `n` are idle in the pool (at most `parallel` connects at a
    /// time). Returns how many are idle, and the first error when one failed (the pool
    /// keeps what was opened).
    pub async fn prewarm(
        self: &Arc<Self>,
        n: usize,
        parallel: usize,
    ) -> (usize, Option<io::Error>) {
        let mut first_error = None;
        let mut set = tokio::task::JoinSet::new();
        let mut want = n.saturating_sub(self.idle());
        loop {
            while want > 0 && set.len() < parallel.max(1) && first_error.is_none() {
                let me = self.clone();
                set.spawn(async move { me.connect().await });
                want -= 1;
            }
            match set.join_next().await {
                None => break,
                Some(Ok(Ok(c))) => self.put(c),
                Some(Ok(Err(e))) => {
                    want = 0;
                    first_error.get_or_insert(e);
                }
                Some(Err(e)) => {
                    want = 0;
                    first_error.get_or_insert(io::Error::other(e.to_string()));
                }
            }
        }
        (self.idle(), first_error)
    }
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Chunked,
    Length(u64),
    /// Until the server closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    framing: Framing,
    /// The connection may carry another request afterwards.
    keep_alive: bool,
}

/// Why a response could not be read (the caller turns it into a request failure).
#[derive(Debug)]
pub enum ReadError<E> {
    /// The connection failed or closed early (`complete: false`), or sent garbage.
    Io(io::Error),
    /// The body's framing is broken.
    Framing(String),
    /// The consumer of the body refused it.
    Consumer(E),
    /// The watchdog fired.
    Watch(WatchFired),
}

/// Which limit ended a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFired {
    /// The request's overall deadline.
    Deadline,
    /// No byte for the stall timeout.
    Stalled,
    /// The run was aborted.
    Aborted,
}

/// Parse a response head out of `buf`; `Ok(None)` when incomplete.
fn parse_head(buf: &[u8]) -> io::Result<Option<(Head, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut r = httparse::Response::new(&mut headers);
    let used = match r.parse(buf).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("invalid HTTP response: {e}"),
        )
    })? {
        httparse::Status::Partial => return Ok(None),
        httparse::Status::Complete(n) => n,
    };
    let status = r.code.unwrap_or(0);
    let http10 = r.version == Some(0);
    let mut chunked = false;
    let mut length = None;
    let mut close = http10;
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = String::from_utf8_lossy(h.value)
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(
                std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "invalid content-length")
                    })?,
            );
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.contains("close") {
                close = true;
            } else if http10 && v.contains("keep-alive") {
                close = false;
            }
        }
    }
    let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    Ok(Some((
        Head {
            status,
            framing,
            keep_alive: !close && framing != Framing::Close,
        },
        used,
    )))
}

/// Incremental decoder of a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    Size {
        value: u64,
        digits: u32,
    },
    /// Chunk extension or whitespace: skip to the end of the line.
    Ext {
        value: u64,
    },
    SizeLf {
        value: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// Trailer section: `at_start` of a line.
    Trailer {
        at_start: bool,
    },
    TrailerLf,
    Done,
}

impl Chunked {
    fn new() -> Self {
        Chunked::Size {
            value: 0,
            digits: 0,
        }
    }

    /// Decode `input`, passing data spans to `on_data`; returns the bytes consumed (less
    /// than `input.len()` only when the body ended).
    fn decode<E>(
        &mut self,
        input: &[u8],
        on_data: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<usize, ReadError<E>> {
        let bad = |m: &str| ReadError::Framing(format!("invalid chunked encoding: {m}"));
        let mut i = 0;
        while i < input.len() {
            match *self {
                Chunked::Data(n) => {
                    let take = (input.len() - i).min(usize::try_from(n).unwrap_or(usize::MAX));
                    on_data(&input[i..i + take]).map_err(ReadError::Consumer)?;
                    i += take;
                    let left = n - take as u64;
                    *self = if left == 0 {
                        Chunked::DataCr
                    } else {
                        Chunked::Data(left)
                    };
                    continue;
                }
                Chunked::Done => return Ok(i),
                _ => {}
            }
            let b = input[i];
            i += 1;
            *self = match *self {
                Chunked::Size { value, digits } => match (b as char).to_digit(16) {
                    Some(d) => {
                        if digits >= 15 {
                            return Err(bad("chunk size too large"));
                        }
                        Chunked::Size {
                            value: value * 16 + u64::from(d),
                            digits: digits + 1,
                        }
                    }
                    None if digits == 0 => return Err(bad("missing chunk size")),
                    None => match b {
                        b'\r' => Chunked::SizeLf { value },
                        b'\n' => Self::after_size(value),
                        _ => Chunked::Ext { value },
                    },
                },
                Chunked::Ext { value } => match b {
                    b'\r' => Chunked::SizeLf { value },
                    b'\n' => Self::after_size(value),
                    _ => Chunked::Ext { value },
                },
                Chunked::SizeLf { value } => match b {
                    b'\n' => Self::after_size(value),
                    _ => return Err(bad("expected LF after the chunk size")),
                },
                Chunked::DataCr => match b {
                    b'\r' => Chunked::DataLf,
                    b'\n' => Chunked::new(),
                    _ => return Err(bad("expected CRLF after chunk data")),
                },
                Chunked::DataLf => match b {
                    b'\n' => Chunked::new(),
                    _ => return Err(bad("expected LF after chunk data")),
                },
                Chunked::Trailer { at_start } => match b {
                    b'\r' if at_start => Chunked::TrailerLf,
                    b'\n' if at_start => Chunked::Done,
                    b'\n' => Chunked::Trailer { at_start: true },
                    _ => Chunked::Trailer { at_start: false },
                },
                Chunked::TrailerLf => match b {
                    b'\n' => Chunked::Done,
                    _ => return Err(bad("expected LF at the end of the trailer")),
                },
                Chunked::Data(_) | Chunked::Done => unreachable!("handled above"),
            };
            if *self == Chunked::Done {
                return Ok(i);
            }
        }
        Ok(i)
    }

    fn after_size(value: u64) -> Self {
        if value == 0 {
            Chunked::Trailer { at_start: true }
        } else {
            Chunked::Data(value)
        }
    }
}

/// The body decoder of one response.
#[derive(Debug)]
pub(crate) struct Body {
    framing: Framing,
    chunked: Chunked,
    /// Bytes left of a `Length` body.
    left: u64,
    done: bool,
}

impl Body {
    fn new(framing: Framing) -> Self {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        Body {
            framing,
            chunked: Chunked::new(),
            left,
            done: framing == Framing::Length(0),
        }
    }

    /// Feed bytes read; returns the bytes that are past the end of the body.
    pub(crate) fn feed<E>(
        &mut self,
        input: &[u8],
        on_data: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<usize, ReadError<E>> {
        if self.done {
            return Ok(input.len());
        }
        match self.framing {
            Framing::Chunked => {
                let used = self.chunked.decode(input, on_data)?;
                self.done = self.chunked == Chunked::Done;
                Ok(input.len() - used)
            }
            Framing::Length(_) => {
                let take = (input.len() as u64).min(self.left) as usize;
                on_data(&input[..take]).map_err(ReadError::Consumer)?;
                self.left -= take as u64;
                self.done = self.left == 0;
                Ok(input.len() - take)
            }
            Framing::Close => {
                on_data(input).map_err(ReadError::Consumer)?;
                Ok(0)
            }
        }
    }

    /// The body is complete.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// The connection ended: is the body complete?
    pub(crate) fn at_eof(&mut self) -> bool {
        if self.framing == Framing::Close {
            self.done = true;
        }
        self.done
    }
}

/// What watches a request while its body streams: the overall deadline, the stall
/// timeout and the run's abort, with one timer that is re-armed only when it fires (never
/// per chunk) and the abort checked through an atomic (its future is polled only when the
/// cancellation level changed, to stay registered for the wake-up).
#[derive(Clone, Copy, Default)]
pub struct Watch<'a> {
    pub deadline: Option<Instant>,
    pub stall: Option<Duration>,
    pub cancel: Option<&'a Cancel>,
}

/// Receives the body bytes of a streamed response with the time of the read.
pub type OnData<'a, E> = dyn FnMut(&[u8], Instant) -> Result<(), E> + Send + 'a;

/// A request sent on a connection, its response head read.
pub struct Exchange<'p> {
    pool: &'p Pool,
    conn: Option<Conn>,
    pub head: Head,
    /// Bytes read past the head (the start of the body).
    head_rest: Vec<u8>,
}

/// Write `request` on a pooled connection and read the response head. A reused
/// connection that fails before any response byte is replaced once.
pub async fn send<'p>(pool: &'p Pool, request: &[u8]) -> io::Result<Exchange<'p>> {
    let mut conn = pool.get().await?;
    loop {
        let reused = conn.served > 0;
        match try_send(&mut conn, request).await {
            Ok((head, rest)) => {
                if reused {
                    pool.counters.reused.fetch_add(1, Ordering::Relaxed);
                }
                conn.served += 1;
                return Ok(Exchange {
                    pool,
                    conn: Some(conn),
                    head,
                    head_rest: rest,
                });
            }
            Err((e, got_bytes)) => {
                if reused && !got_bytes {
                    pool.counters.stale.fetch_add(1, Ordering::Relaxed);
                    conn = pool.connect().await?;
                    continue;
                }
                return Err(e);
            }
        }
    }
}

/// Write the request and read the head; the error says whether any response byte came.
async fn try_send(conn: &mut Conn, request: &[u8]) -> Result<(Head, Vec<u8>), (io::Error, bool)> {
    conn.io.write_all(request).await.map_err(|e| (e, false))?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut got = false;
    loop {
        match parse_head(&buf).map_err(|e| (e, true))? {
            Some((head, used)) if (100..200).contains(&head.status) && head.status != 101 => {
                // 1xx (e.g. 100 Continue): the real head follows.
                buf.drain(..used);
                continue;
            }
            Some((head, used)) => {
                buf.drain(..used);
                return Ok((head, buf));
            }
            None if buf.len() > MAX_HEAD => {
                let e = io::Error::new(io::ErrorKind::InvalidData, "response head too large");
                return Err((e, true));
            }
            None => {}
        }
        let n = read_into(&mut conn.io, &mut buf)
            .await
            .map_err(|e| (e, got))?;
        if n == 0 {
            let e = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response head",
            );
            return Err((e, got));
        }
        got = true;
    }
}

async fn read_into(io: &mut Io, buf: &mut Vec<u8>) -> io::Result<usize> {
    use tokio::io::AsyncReadExt;
    buf.reserve(4096);
    io.read_buf(buf).await
}

/// A plain-TCP response body handed to another reader ([`crate::reactor`]): the socket
/// (non-blocking, out of tokio's reactor), the body decoder with the bytes read past the
/// head already fed, and what is needed to pool the connection again.
pub(crate) struct Detached {
    pub sock: std::net::TcpStream,
    pub body: Body,
    /// Bytes past the end of the body seen so far (the connection cannot be reused).
    pub trailing: usize,
    pub keep_alive: bool,
    pub served: u64,
}

impl<'p> Exchange<'p> {
    /// The pool the connection came from.
    pub(crate) fn pool(&self) -> &'p Pool {
        self.pool
    }

    /// Take a plain connection out of tokio to stream its body elsewhere: the bytes read
    /// with the head go to `on_data` first (time `t`). `Ok(None)` when this is a TLS
    /// connection (it stays here: use [`Exchange::stream`]).
    pub(crate) fn detach_plain<E>(
        &mut self,
        t: Instant,
        on_data: &mut OnData<'_, E>,
    ) -> Result<Option<Detached>, ReadError<E>> {
        if !matches!(self.conn.as_ref().map(|c| &c.io), Some(Io::Plain(_))) {
            return Ok(None);
        }
        let mut body = Body::new(self.head.framing);
        let rest = std::mem::take(&mut self.head_rest);
        let trailing = if rest.is_empty() {
            0
        } else {
            body.feed(&rest, &mut |d| on_data(d, t))?
        };
        let Some(Conn {
            io: Io::Plain(tcp),
            served,
        }) = self.conn.take()
        else {
            return Ok(None);
        };
        let sock = tcp.into_std().map_err(ReadError::Io)?;
        Ok(Some(Detached {
            sock,
            body,
            trailing,
            keep_alive: self.head.keep_alive,
            served,
        }))
    }
}

impl Pool {
    /// Give back a plain connection whose body another reader completed (call from
    /// within the runtime).
    pub(crate) fn put_plain(&self, sock: std::net::TcpStream, served: u64) {
        if let Ok(tcp) = TcpStream::from_std(sock) {
            self.put(Conn {
                io: Io::Plain(tcp),
                served,
            });
        }
    }
}

impl Exchange<'_> {
    /// Read the whole body (at most `limit` bytes kept) — error responses.
    pub async fn read_body(mut self, limit: usize) -> Vec<u8> {
        fn keep(out: &mut Vec<u8>, limit: usize, d: &[u8]) {
            let room = limit.saturating_sub(out.len());
            out.extend_from_slice(&d[..d.len().min(room)]);
        }
        let mut out = Vec::new();
        let mut body = Body::new(self.head.framing);
        let rest = std::mem::take(&mut self.head_rest);
        let fed = body.feed(&rest, &mut |d| {
            keep(&mut out, limit, d);
            Ok::<(), ()>(())
        });
        if fed.is_err() {
            return out;
        }
        let Some(conn) = self.conn.as_mut() else {
            return out;
        };
        let mut buf = Vec::new();
        while !body.done && out.len() < limit {
            buf.clear();
            match read_into(&mut conn.io, &mut buf).await {
                Ok(0) | Err(_) => {
                    body.at_eof();
                    break;
                }
                Ok(_) => {
                    let fed = body.feed(&buf, &mut |d| {
                        keep(&mut out, limit, d);
                        Ok::<(), ()>(())
                    });
                    if fed.is_err() {
                        break;
                    }
                }
            }
        }
        if body.done && self.head.keep_alive {
            if let Some(c) = self.conn.take() {
                self.pool.put(c);
            }
        }
        out
    }

    /// Stream the body: `on_data(bytes, t)` for every span of body bytes, `t` the time
    /// of the read that brought them. Returns when the body is complete (the connection
    /// goes back to the pool when it can carry another request).
    pub async fn stream<E>(
        mut self,
        watch: Watch<'_>,
        on_data: &mut OnData<'_, E>,
    ) -> Result<(), ReadError<E>> {
        let mut body = Body::new(self.head.framing);
        let start = Instant::now();
        let rest = std::mem::take(&mut self.head_rest);
        if !rest.is_empty() {
            body.feed(&rest, &mut |d| on_data(d, start))?;
        }
        let Some(mut conn) = self.conn.take() else {
            return Err(ReadError::Io(io::ErrorKind::NotConnected.into()));
        };
        let mut last_byte = start;
        // The watchdog timer: armed at the earliest limit, re-armed only when it fires.
        let next_limit = |last: Instant| -> Option<Instant> {
            match (watch.deadline, watch.stall.map(|s| last + s)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        let mut armed = next_limit(last_byte);
        let mut sleep = armed.map(|at| Box::pin(tokio::time::sleep_until(at.into())));
        let mut sleep_polled = false;
        let mut abort_wait = watch.cancel.map(|c| Box::pin(c.reached(Level::Abort)));
        let mut seen_level = None;
        let mut trailing = 0usize;
        let result = std::future::poll_fn(|cx| {
            if let (Some(c), Some(w)) = (watch.cancel, abort_wait.as_mut()) {
                let level = c.level_fast();
                if seen_level != Some(level) {
                    seen_level = Some(level);
                    let _ = w.as_mut().poll(cx);
                }
                if level >= Level::Abort {
                    return Poll::Ready(Err(ReadError::Watch(WatchFired::Aborted)));
                }
            }
            while !body.done {
                let polled = SCRATCH_BUF.with(|cell| {
                    let mut scratch = cell.borrow_mut();
                    let mut rb = ReadBuf::new(&mut scratch[..]);
                    match Pin::new(&mut conn.io).poll_read(cx, &mut rb) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(Err(e)) => Poll::Ready(Err(ReadError::Io(e))),
                        Poll::Ready(Ok(())) => {
                            let n = rb.filled().len();
                            if n == 0 {
                                return Poll::Ready(Ok(0));
                            }
                            let t = Instant::now();
                            last_byte = t;
                            trailing += body.feed(&scratch[..n], &mut |d| on_data(d, t))?;
                            Poll::Ready(Ok(n))
                        }
                    }
                });
                match polled {
                    Poll::Pending => break,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(0)) => {
                        if body.at_eof() {
                            return Poll::Ready(Ok(()));
                        }
                        return Poll::Ready(Err(ReadError::Io(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "connection closed before the message completed",
                        ))));
                    }
                    Poll::Ready(Ok(_)) => {}
                }
            }
            if body.done {
                return Poll::Ready(Ok(()));
            }
            // Pending: is a limit due?
            if let (Some(at), Some(sl)) = (armed, sleep.as_mut()) {
                let now = Instant::now();
                if now >= at {
                    if watch.deadline.is_some_and(|d| now >= d) {
                        return Poll::Ready(Err(ReadError::Watch(WatchFired::Deadline)));
                    }
                    if watch.stall.is_some_and(|s| now >= last_byte + s) {
                        return Poll::Ready(Err(ReadError::Watch(WatchFired::Stalled)));
                    }
                    armed = next_limit(last_byte);
                    if let Some(next) = armed {
                        sl.as_mut().reset(next.into());
                    }
                    sleep_polled = false;
                }
                if !sleep_polled {
                    sleep_polled = true;
                    if sl.as_mut().poll(cx).is_ready() {
                        // Already due: come back at once to evaluate it.
                        sleep_polled = false;
                        cx.waker().wake_by_ref();
                    }
                }
            }
            Poll::Pending
        })
        .await;
        if result.is_ok() && trailing == 0 && self.head.keep_alive {
            self.pool.put(conn);
        }
        result
    }
}

/// Build the bytes of a `POST` request.
pub fn post_request(
    path: &str,
    authority: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 256);
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut has_host = false;
    for (name, value) in headers {
        has_host |= name.eq_ignore_ascii_case("host");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !has_host {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Result<(Vec<u8>, bool, usize), String> {
        let mut d = Chunked::new();
        let mut out = Vec::new();
        let mut trailing = 0;
        for c in chunks {
            let used = d
                .decode(c, &mut |x: &[u8]| {
                    out.extend_from_slice(x);
                    Ok::<(), ()>(())
                })
                .map_err(|e| match e {
                    ReadError::Framing(m) => m,
                    _ => "other".into(),
                })?;
            trailing += c.len() - used;
        }
        Ok((out, d == Chunked::Done, trailing))
    }

    #[test]
    fn chunked_bodies_in_any_split() {
        let whole: &[u8] =
            b"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nx-t: 1\r\n\r\nNEXT";
        let (out, done, trailing) = decode_all(&[whole]).unwrap();
        assert_eq!(out, b"hello 0123456789");
        assert!(done);
        assert_eq!(trailing, 4, "bytes after the body are not consumed");
        for split in 1..whole.len() {
            let (a, b) = whole.split_at(split);
            let r = decode_all(&[a, b]).unwrap();
            assert_eq!(
                (r.0.as_slice(), r.1, r.2),
                (&b"hello 0123456789"[..], true, 4),
                "split at {split}"
            );
        }
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(decode_all(&bytes).unwrap().0, b"hello 0123456789");
        // Lenient bare LF line ends.
        assert_eq!(
            decode_all(&[b"3\nabc\n0\n\n"]).unwrap(),
            (b"abc".to_vec(), true, 0)
        );
    }

    #[test]
    fn broken_chunked_bodies_are_errors() {
        for bad in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX",
            b"ffffffffffffffffff\r\n",
            b"\r\n",
        ] {
            assert!(
                decode_all(&[bad]).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Cut short: not done, no error.
        let r = decode_all(&[b"5\r\nhel"]).unwrap();
        assert_eq!((r.0.as_slice(), r.1), (&b"hel"[..], false));
    }

    #[test]
    fn heads_and_framing() {
        let (h, n) = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nrest")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.status, h.framing, h.keep_alive, n),
            (200, Framing::Chunked, true, 47)
        );
        let (h, _) =
            parse_head(b"HTTP/1.1 500 X\r\ncontent-length: 7\r\nconnection: close\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (500, Framing::Length(7), false)
        );
        let (h, _) = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Close, false));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le")
            .unwrap()
            .is_none());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
    }

    #[test]
    fn request_bytes() {
        let r = post_request(
            "/v1/completions",
            "127.0.0.1:8000",
            &[
                ("content-type", b"application/json"),
                ("x-request-id", b"a-1"),
            ],
            b"{}",
        );
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "POST /v1/completions HTTP/1.1\r\ncontent-type: application/json\r\nx-request-id: a-1\r\nhost: 127.0.0.1:8000\r\ncontent-length: 2\r\n\r\n{}"
        );
    }
}
