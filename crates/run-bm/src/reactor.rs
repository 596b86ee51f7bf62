//! The streaming hot path for plain-TCP responses: one thread with an epoll set of its own
//! reads the bodies of all streamed completions.
//!
//! Through tokio every token costs a wake-up of the request's task, its state transitions,
//! a poll through the request's future, a second readiness check to register the waker,
//! and — with several worker threads — cross-thread wake-ups (`docs/BENCHMARKS.md`, "where
//! run-bm's µs go"). Here an `epoll_wait` returns the ready sockets and each gets one
//! `recv` into a scratch buffer and is decoded in place (chunked framing, SSE, the chunk
//! record), the timestamp taken once per read as before. The request's task only sends the
//! request and reads the response head ([`crate::h1`]), then hands the socket here
//! ([`h1::Exchange::detach_plain`]) and waits for one completion message; a connection
//! that can carry another request goes back to the pool.
//!
//! The limits of a request (its deadline, the stall timeout, the run's abort) are checked
//! every [`SCAN`] and when the thread wakes for data, so they fire at most that late. The
//! thread reports how long each batch of ready sockets took to handle ([`Reactor::take_lag`]):
//! a socket that became ready during a batch waits that long for its timestamp, which is
//! what the point's self-check compares against the token interval. TLS connections stay
//! in tokio ([`h1::Exchange::stream`]).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::cancel::{Cancel, Level};
use crate::chunk::{StreamError, StreamRecorder};
use crate::h1::{self, Detached, ReadError, WatchFired};
use crate::sse::SseParser;

/// How often the limits of every stream are checked.
pub const SCAN: Duration = Duration::from_millis(20);
/// Window of one lag sample: the longest batch in it.
const LAG_WINDOW: Duration = Duration::from_millis(10);
/// Scratch buffer of one `recv`.
const SCRATCH: usize = 64 * 1024;
/// Event token of the wake-up eventfd.
const WAKE: u64 = u64::MAX;
/// Streams expected to carry fewer chunks are read in the calling task: handing a socket
/// over costs each request a few system calls and two cross-thread wake-ups, which a
/// 1-token (prefill-only) response does not earn back (measured: +25–35 % CPU per request
/// at 1 token, even at 16, −5 % at 32, −12 % at 64 tokens; C = 256).
pub const MIN_CHUNKS: usize = 32;

/// Where a streamed body goes: the SSE parser and the request's record.
#[derive(Debug)]
pub struct Sink {
    pub parser: SseParser,
    pub rec: StreamRecorder,
}

impl Sink {
    /// Body bytes read at `t`.
    pub fn data(&mut self, d: &[u8], t: Instant) -> Result<(), StreamError> {
        let rec = &mut self.rec;
        self.parser.feed(d, |p| rec.on_payload(p, t))
    }
}

/// The limits of one streamed body.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub deadline: Option<Instant>,
    pub stall: Option<Duration>,
    pub cancel: Option<Cancel>,
}

/// How a stream ended, with its sink and, when it can carry another request, the socket
/// and the number of requests it carried.
#[derive(Debug)]
pub struct Finished {
    pub result: Result<(), ReadError<StreamError>>,
    pub sink: Sink,
    pub reusable: Option<(std::net::TcpStream, u64)>,
}

struct Job {
    d: Detached,
    sink: Sink,
    limits: Limits,
    last_byte: Instant,
    done: oneshot::Sender<Finished>,
}

impl Job {
    fn finish(self, result: Result<(), ReadError<StreamError>>) {
        let Job { d, sink, done, .. } = self;
        let reusable = (result.is_ok() && d.trailing == 0 && d.keep_alive && d.body.is_done())
            .then_some((d.sock, d.served));
        // The request's task may be gone (its future dropped): then so is the socket.
        let _ = done.send(Finished {
            result,
            sink,
            reusable,
        });
    }

    /// Which limit, if any, is due at `now`.
    fn due(&self, now: Instant) -> Option<WatchFired> {
        if let Some(c) = &self.limits.cancel {
            if c.level_fast() >= Level::Abort {
                return Some(WatchFired::Aborted);
            }
        }
        if self.limits.deadline.is_some_and(|d| now >= d) {
            return Some(WatchFired::Deadline);
        }
        if self.limits.stall.is_some_and(|s| now >= self.last_byte + s) {
            return Some(WatchFired::Stalled);
        }
        None
    }
}

struct Inner {
    ep: OwnedFd,
    wake: OwnedFd,
    incoming: Mutex<Vec<Job>>,
    stop: AtomicBool,
    /// Longest batch per [`LAG_WINDOW`] while streams were open, µs.
    lag: Mutex<Vec<u32>>,
    /// Tests: the thread panics when it next takes new jobs.
    #[cfg(test)]
    panic_on_wake: AtomicBool,
}

impl Inner {
    /// Drop the jobs nobody took: their requests see [`Gone`].
    fn drain_incoming(&self) {
        let jobs = match self.incoming.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        drop(jobs);
    }

    fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes to our eventfd.
        unsafe {
            libc::write(
                self.wake.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

/// The reading thread; stopped and joined when dropped.
pub struct Reactor {
    inner: Arc<Inner>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor").finish_non_exhaustive()
    }
}

/// The reading thread is gone (it could not be started, or it stopped).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the stream-reading thread is not running")]
pub struct Gone;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Reactor {
    /// Start the thread.
    pub fn start() -> io::Result<Reactor> {
        // SAFETY: creating descriptors that the OwnedFds below take over.
        let ep = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        let ep = unsafe { OwnedFd::from_raw_fd(ep) };
        let wake = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        let wake = unsafe { OwnedFd::from_raw_fd(wake) };
        ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, wake.as_raw_fd(), WAKE)?;
        let inner = Arc::new(Inner {
            ep,
            wake,
            incoming: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            lag: Mutex::new(Vec::new()),
            #[cfg(test)]
            panic_on_wake: AtomicBool::new(false),
        });
        let me = inner.clone();
        let thread = std::thread::Builder::new()
            .name("run-bm-streams".into())
            .spawn(move || run(&me))?;
        Ok(Reactor {
            inner,
            thread: Some(thread),
        })
    }

    /// Stream the rest of a detached body into `sink`; resolves when it ended.
    pub(crate) async fn stream(
        &self,
        d: Detached,
        sink: Sink,
        limits: Limits,
    ) -> Result<Finished, Gone> {
        let (tx, rx) = oneshot::channel();
        let job = Job {
            d,
            sink,
            limits,
            last_byte: Instant::now(),
            done: tx,
        };
        if job.d.body.is_done() {
            job.finish(Ok(()));
        } else {
            if self.inner.stop.load(Ordering::Acquire) {
                return Err(Gone);
            }
            self.inner.incoming.lock().map_err(|_| Gone)?.push(job);
            self.inner.ring();
            if self.inner.stop.load(Ordering::Acquire) {
                // The thread ended meanwhile (see `Ended`): nobody takes the job, so
                // drop it here (its sender with it) rather than wait forever.
                self.inner.drain_incoming();
            }
        }
        rx.await.map_err(|_| Gone)
    }

    /// The lag samples since the last call, µs.
    pub fn take_lag(&self) -> Vec<u32> {
        self.inner
            .lag
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        self.inner.ring();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ctl(ep: RawFd, op: libc::c_int, fd: RawFd, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: epoll_ctl on descriptors we own, with a valid event.
    cvt(unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) }).map(|_| ())
}

/// The open streams, by event token.
#[derive(Default)]
struct Slab {
    jobs: Vec<Option<Job>>,
    free: Vec<usize>,
    open: usize,
}

impl Slab {
    fn insert(&mut self, job: Job) -> usize {
        self.open += 1;
        match self.free.pop() {
            Some(i) => {
                self.jobs[i] = Some(job);
                i
            }
            None => {
                self.jobs.push(Some(job));
                self.jobs.len() - 1
            }
        }
    }

    fn remove(&mut self, ep: RawFd, i: usize) -> Option<Job> {
        let job = self.jobs.get_mut(i)?.take()?;
        let _ = ctl(ep, libc::EPOLL_CTL_DEL, job.d.sock.as_raw_fd(), 0);
        self.free.push(i);
        self.open -= 1;
        Some(job)
    }
}

/// Marks the thread ended however it ends (a panic included), so no request waits for it.
struct Ended<'a>(&'a Inner);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Release);
        self.0.drain_incoming();
    }
}

fn run(inner: &Inner) {
    let _ended = Ended(inner);
    let ep = inner.ep.as_raw_fd();
    let mut slab = Slab::default();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut scratch = vec![0u8; SCRATCH];
    let mut next_scan = Instant::now() + SCAN;
    let mut window_end = Instant::now() + LAG_WINDOW;
    let mut window_max = 0u32;
    loop {
        let wait_ms = next_scan
            .saturating_duration_since(Instant::now())
            .as_millis()
            .min(1000) as libc::c_int
            + 1;
        // SAFETY: `events` is a valid buffer of its length.
        let n = unsafe {
            libc::epoll_wait(
                ep,
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                wait_ms,
            )
        };
        let batch_start = Instant::now();
        for ev in &events[..n.max(0) as usize] {
            let token = ev.u64;
            if token == WAKE {
                #[cfg(test)]
                if inner.panic_on_wake.load(Ordering::Acquire) {
                    panic!("test: the stream-reading thread fails");
                }
                let mut buf = [0u8; 8];
                // SAFETY: reading the eventfd's counter into a local buffer.
                unsafe { libc::read(inner.wake.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
                let new = inner
                    .incoming
                    .lock()
                    .map(|mut v| std::mem::take(&mut *v))
                    .unwrap_or_default();
                for job in new {
                    let fd = job.d.sock.as_raw_fd();
                    let i = slab.insert(job);
                    if let Err(e) = ctl(ep, libc::EPOLL_CTL_ADD, fd, i as u64) {
                        if let Some(job) = slab.remove(ep, i) {
                            job.finish(Err(ReadError::Io(e)));
                        }
                    }
                }
                continue;
            }
            let i = token as usize;
            let Some(Some(job)) = slab.jobs.get_mut(i) else {
                continue;
            };
            let fd = job.d.sock.as_raw_fd();
            // SAFETY: reading into our scratch buffer from an open socket. The raw system
            // call: glibc's `recv` wrapper adds a thread-cancellation prologue that cost
            // 2 % of this thread's samples, and this thread is never cancelled.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_recvfrom,
                    fd,
                    scratch.as_mut_ptr(),
                    scratch.len(),
                    0,
                    std::ptr::null_mut::<libc::sockaddr>(),
                    std::ptr::null_mut::<libc::socklen_t>(),
                )
            };
            let end = match r {
                0 => Some(if job.d.body.at_eof() {
                    Ok(())
                } else {
                    Err(ReadError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed before the message completed",
                    )))
                }),
                r if r < 0 => {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => None,
                        _ => Some(Err(ReadError::Io(e))),
                    }
                }
                r => {
                    let t = Instant::now();
                    job.last_byte = t;
                    let sink = &mut job.sink;
                    match job
                        .d
                        .body
                        .feed(&scratch[..r as usize], &mut |d| sink.data(d, t))
                    {
                        Ok(trailing) => {
                            job.d.trailing += trailing;
                            job.d.body.is_done().then_some(Ok(()))
                        }
                        Err(e) => Some(Err(e)),
                    }
                }
            };
            if let Some(result) = end {
                if let Some(job) = slab.remove(ep, i) {
                    job.finish(result);
                }
            }
        }
        let now = Instant::now();
        if inner.stop.load(Ordering::Acquire) {
            for i in 0..slab.jobs.len() {
                if let Some(job) = slab.remove(ep, i) {
                    job.finish(Err(ReadError::Watch(WatchFired::Aborted)));
                }
            }
            return;
        }
        if slab.open > 0 && n > 0 {
            let busy = now.saturating_duration_since(batch_start).as_micros();
            window_max = window_max.max(u32::try_from(busy).unwrap_or(u32::MAX));
        }
        if now >= window_end {
            if slab.open > 0 {
                if let Ok(mut lag) = inner.lag.lock() {
                    lag.push(window_max);
                }
            }
            window_max = 0;
            window_end = now + LAG_WINDOW;
        }
        if now >= next_scan {
            for i in 0..slab.jobs.len() {
                let fired = match &slab.jobs[i] {
                    Some(job) if job.done.is_closed() => {
                        // The request's task is gone: drop the stream.
                        slab.remove(ep, i);
                        continue;
                    }
                    Some(job) => job.due(now),
                    None => None,
                };
                if let Some(w) = fired {
                    if let Some(job) = slab.remove(ep, i) {
                        job.finish(Err(ReadError::Watch(w)));
                    }
                }
            }
            next_scan = now + SCAN;
        }
    }
}

/// Read the body of `exchange` to its end: plain connections of streams expected to carry
/// at least [`MIN_CHUNKS`] chunks on `reactor`; TLS ones, short ones (or all when `reactor`
/// is `None`) in the calling task. Returns the sink back with the result.
pub async fn stream_body(
    reactor: Option<&Reactor>,
    mut exchange: h1::Exchange<'_>,
    mut sink: Sink,
    limits: Limits,
) -> (Result<(), ReadError<StreamError>>, Sink) {
    let reactor = reactor.filter(|_| sink.rec.expected_chunks >= MIN_CHUNKS);
    if let Some(reactor) = reactor {
        let start = Instant::now();
        let detached = exchange.detach_plain(start, &mut |d, t| sink.data(d, t));
        match detached {
            Err(e) => return (Err(e), sink),
            Ok(Some(d)) => {
                let pool = exchange.pool();
                let placeholder = Sink {
                    parser: SseParser::new(),
                    rec: StreamRecorder::new(sink.rec.st, 0, false),
                };
                let owned = std::mem::replace(&mut sink, placeholder);
                return match reactor.stream(d, owned, limits).await {
                    Ok(f) => {
                        if let Some((sock, served)) = f.reusable {
                            pool.put_plain(sock, served);
                        }
                        (f.result, f.sink)
                    }
                    // The record went down with the thread: what is left is empty.
                    Err(Gone) => (Err(ReadError::Io(io::Error::other(Gone.to_string()))), sink),
                };
            }
            Ok(None) => {}
        }
    }
    let watch = h1::Watch {
        deadline: limits.deadline,
        stall: limits.stall,
        cancel: limits.cancel.as_ref(),
    };
    let r = exchange.stream(watch, &mut |d, t| sink.data(d, t)).await;
    (r, sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    const HEAD: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

    fn chunk(out: &mut Vec<u8>, data: &[u8]) {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }

    fn event(i: u64) -> Vec<u8> {
        format!(
            "data: {{\"choices\":[{{\"index\":0,\"text\":\" w{i}\"}}],\"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":{}}}}}\n\n",
            i + 1
        )
        .into_bytes()
    }

    /// A server that answers each request on a connection by `script(request number,
    /// socket)`; returns its address and the number of connections it accepted.
    fn server(
        script: impl Fn(usize, &mut std::net::TcpStream) + Send + Sync + 'static,
    ) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let script = Arc::new(script);
        let acc = accepted.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                acc.fetch_add(1, Ordering::SeqCst);
                let script = script.clone();
                std::thread::spawn(move || {
                    let mut n = 0;
                    let mut buf = vec![0u8; 65536];
                    let mut got = Vec::new();
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(k) => got.extend_from_slice(&buf[..k]),
                        }
                        // One request per `\r\n\r\n` + body of content-length 2 ("{}").
                        while let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                            if got.len() < p + 4 + 2 {
                                break;
                            }
                            got.drain(..p + 6);
                            script(n, &mut s);
                            n += 1;
                        }
                    }
                });
            }
        });
        (port, accepted)
    }

    fn full_stream(tokens: u64) -> Vec<u8> {
        let mut out = HEAD.to_vec();
        for i in 0..tokens {
            chunk(&mut out, &event(i));
        }
        chunk(&mut out, b"data: [DONE]\n\n");
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    fn sink() -> Sink {
        Sink {
            parser: SseParser::new(),
            rec: StreamRecorder::new(Instant::now(), MIN_CHUNKS, false),
        }
    }

    async fn one(
        reactor: &Reactor,
        pool: &h1::Pool,
        limits: Limits,
    ) -> (Result<(), ReadError<StreamError>>, Sink) {
        let req = h1::post_request("/v1/completions", pool.authority(), &[], b"{}");
        let ex = h1::send(pool, &req).await.unwrap();
        stream_body(Some(reactor), ex, sink(), limits).await
    }

    fn pool(port: u16) -> h1::Pool {
        h1::Pool::new("127.0.0.1", port, &format!("127.0.0.1:{port}"), None).unwrap()
    }

    #[tokio::test]
    async fn streams_are_recorded_and_connections_reused() {
        let (port, accepted) = server(|_, s| {
            // Token by token, each in its own write.
            let whole = full_stream(5);
            let (head, body) = whole.split_at(HEAD.len());
            s.write_all(head).unwrap();
            for piece in body.chunks(40) {
                s.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let reactor = Reactor::start().unwrap();
        let pool = pool(port);
        for _ in 0..3 {
            let (r, sink) = one(&reactor, &pool, Limits::default()).await;
            r.unwrap();
            assert_eq!(sink.rec.chunks(), 5);
            assert_eq!(sink.rec.reported_tokens(), Some(5));
            assert!(sink.parser.saw_done());
            assert!(sink.rec.ttft() > 0.0);
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one keep-alive connection"
        );
        assert_eq!(pool.counters.reused.load(Ordering::Relaxed), 2);
        assert!(
            !reactor.take_lag().is_empty(),
            "lag sampled while streams ran"
        );
    }

    #[tokio::test]
    async fn short_streams_are_read_in_the_calling_task() {
        let (port, _) = server(|_, s| {
            let whole = full_stream(1);
            let (head, body) = whole.split_at(HEAD.len());
            s.write_all(head).unwrap();
            std::thread::sleep(Duration::from_millis(30));
            s.write_all(body).unwrap();
        });
        let reactor = Reactor::start().unwrap();
        let pool = pool(port);
        let req = h1::post_request("/v1/completions", pool.authority(), &[], b"{}");
        for expected in [1, MIN_CHUNKS - 1] {
            let ex = h1::send(&pool, &req).await.unwrap();
            let short = Sink {
                parser: SseParser::new(),
                rec: StreamRecorder::new(Instant::now(), expected, false),
            };
            let (r, sink) = stream_body(Some(&reactor), ex, short, Limits::default()).await;
            r.unwrap();
            assert_eq!(sink.rec.chunks(), 1);
        }
        std::thread::sleep(LAG_WINDOW * 2);
        assert!(
            reactor.take_lag().is_empty(),
            "the reading thread never had a stream"
        );
        assert_eq!(pool.idle(), 1, "the connection went back to the pool");
    }

    #[tokio::test]
    async fn a_body_that_came_with_the_head_needs_no_read() {
        let (port, _) = server(|_, s| s.write_all(&full_stream(2)).unwrap());
        let reactor = Reactor::start().unwrap();
        let pool = pool(port);
        let (r, sink) = one(&reactor, &pool, Limits::default()).await;
        r.unwrap();
        assert_eq!(sink.rec.chunks(), 2);
    }

    #[tokio::test]
    async fn a_connection_closed_early_is_an_error_and_not_pooled() {
        let (port, _) = server(|_, s| {
            let whole = full_stream(5);
            s.write_all(&whole[..whole.len() / 2]).unwrap();
            let _ = s.shutdown(std::net::Shutdown::Both);
        });
        let reactor = Reactor::start().unwrap();
        let pool = pool(port);
        let (r, sink) = one(&reactor, &pool, Limits::default()).await;
        match r {
            Err(ReadError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(sink.rec.chunks() >= 1, "what came before is kept");
        assert_eq!(pool.idle(), 0);
    }

    #[tokio::test]
    async fn broken_framing_and_bad_json_are_errors() {
        // Per server, not per connection: the broken one is not reused.
        let count = std::sync::atomic::AtomicUsize::new(0);
        let (port, _) = server(move |_, s| {
            let mut out = HEAD.to_vec();
            if count.fetch_add(1, Ordering::SeqCst) == 0 {
                out.extend_from_slice(b"zz\r\n");
            } else {
                chunk(&mut out, b"data: {not json\n\n");
            }
            s.write_all(&out).unwrap();
        });
        let reactor = Reactor::start().unwrap();
        let pool = pool(port);
        let (r, _) = one(&reactor, &pool, Limits::default()).await;
        assert!(matches!(r, Err(ReadError::Framing(_))), "{r:?}");
        let (r, _) = one(&reactor, &pool, Limits::default()).await;
        assert!(
            matches!(r, Err(ReadError::Consumer(StreamError::Json { .. }))),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn stall_deadline_and_abort_end_a_silent_stream() {
        let (port, _) = server(|_, s| {
            let whole = full_stream(3);
            s.write_all(&whole[..HEAD.len() + 20]).unwrap();
            std::thread::sleep(Duration::from_secs(5));
        });
        let reactor = Reactor::start().unwrap();
        let pool = pool(port);
        let t = Instant::now();
        let limits = Limits {
            stall: Some(Duration::from_millis(150)),
            ..Default::default()
        };
        let (r, _) = one(&reactor, &pool, limits).await;
        assert!(
            matches!(r, Err(ReadError::Watch(WatchFired::Stalled))),
            "{r:?}"
        );
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_millis(150) + 4 * SCAN,
            "{took:?}"
        );
        let limits = Limits {
            deadline: Some(Instant::now() + Duration::from_millis(100)),
            stall: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        let (r, _) = one(&reactor, &pool, limits).await;
        assert!(
            matches!(r, Err(ReadError::Watch(WatchFired::Deadline))),
            "{r:?}"
        );
        let cancel = Cancel::new();
        let limits = Limits {
            cancel: Some(cancel.clone()),
            ..Default::default()
        };
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            c2.raise(Level::StopSending);
            tokio::time::sleep(Duration::from_millis(50)).await;
            c2.raise(Level::Abort);
        });
        let t = Instant::now();
        let (r, _) = one(&reactor, &pool, limits).await;
        assert!(
            matches!(r, Err(ReadError::Watch(WatchFired::Aborted))),
            "{r:?}"
        );
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "not before the abort"
        );
    }

    #[tokio::test]
    async fn a_dropped_request_closes_its_connection() {
        let (tx, rx) = std::sync::mpsc::channel::<bool>();
        let tx = Mutex::new(tx);
        let (port, _) = server(move |_, s| {
            s.write_all(HEAD).unwrap();
            // Wait until the client closes (a read returns 0) or 5 s pass.
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut b = [0u8; 16];
            let closed = matches!(s.read(&mut b), Ok(0));
            let _ = tx.lock().unwrap().send(closed);
        });
        let reactor = Reactor::start().unwrap();
        let pool = pool(port);
        let r = tokio::time::timeout(
            Duration::from_millis(100),
            one(&reactor, &pool, Limits::default()),
        )
        .await;
        assert!(r.is_err(), "the request's future was dropped");
        let closed = tokio::task::spawn_blocking(move || rx.recv().unwrap())
            .await
            .unwrap();
        assert!(
            closed,
            "the stream-reading thread closed the abandoned socket"
        );
    }

    #[tokio::test]
    async fn requests_fail_instead_of_hanging_when_the_thread_died() {
        let (port, _) = server(|_, s| {
            s.write_all(HEAD).unwrap();
            std::thread::sleep(Duration::from_secs(5));
        });
        let reactor = Reactor::start().unwrap();
        reactor.inner.panic_on_wake.store(true, Ordering::Release);
        let pool = pool(port);
        for _ in 0..2 {
            let r = tokio::time::timeout(
                Duration::from_secs(3),
                one(&reactor, &pool, Limits::default()),
            )
            .await
            .expect("no hang");
            match r.0 {
                Err(ReadError::Io(e)) => assert!(e.to_string().contains("not running"), "{e}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn dropping_the_reactor_stops_its_thread() {
        let r = Reactor::start().unwrap();
        let inner = Arc::downgrade(&r.inner);
        drop(r);
        assert!(inner.upgrade().is_none(), "thread joined, state freed");
    }
}
