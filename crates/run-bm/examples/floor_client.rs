//! The kernel's floor for a streaming client on this machine: the least a client can do
//! to receive the same streams run-bm receives — one `epoll_wait` per batch of ready
//! connections, one `recv` per ready connection, the end of each response found with a
//! byte search, the next request written on the same connection — and nothing else (no
//! timestamps, no parsing, no metrics). `scripts/bench-client.sh --floor` runs it against
//! the same server beside run-bm, so run-bm's CPU per token can be read against what the
//! kernel alone costs (docs/BENCHMARKS.md).
//!
//!   floor_client HOST:PORT CONCURRENCY PROMPTS INPUT_LEN OUTPUT_LEN [THREADS [RESULT_JSON]]
//!
//! Prints one line: `tokens=<streamed tokens> responses=<n> failed=<n> wall_s=<s>
//! user_s=<s> sys_s=<s>` (CPU from getrusage of the whole process); with RESULT_JSON also
//! writes `completed`, `failed`, `total_output_tokens` and `output_throughput` there under
//! vLLM's names (what `bench_client` reads). Tokens are counted as responses × OUTPUT_LEN:
//! the scripted server sends exactly `max_tokens` (`ignore_eos`), and counting `data:`
//! lines would be work this client exists to leave out.

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

fn usage() -> ! {
    eprintln!("floor_client HOST:PORT CONCURRENCY PROMPTS INPUT_LEN OUTPUT_LEN [THREADS]");
    std::process::exit(2)
}

fn num(s: Option<String>) -> u64 {
    s.and_then(|v| v.parse().ok()).unwrap_or_else(|| usage())
}

fn request(host: &str, input_len: u64, output_len: u64) -> Vec<u8> {
    let prompt: Vec<String> = (0..input_len).map(|i| (1 + i % 999).to_string()).collect();
    let body = format!(
        "{{\"model\":\"fake\",\"prompt\":[{}],\"max_tokens\":{output_len},\"stream\":true,\
         \"ignore_eos\":true,\"stream_options\":{{\"include_usage\":true,\
         \"continuous_usage_stats\":true}}}}",
        prompt.join(",")
    );
    format!(
        "POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

struct Conn {
    sock: TcpStream,
    /// The last 4 bytes seen (the end marker can straddle two reads).
    tail: [u8; 4],
}

/// Does `tail ++ data` contain the end of a chunked body (`0\r\n\r\n` after a CRLF)?
fn ends(tail: &mut [u8; 4], data: &[u8]) -> bool {
    const END: &[u8] = b"\r\n0\r\n\r\n";
    let mut joined = [0u8; 4 + 64];
    let n = data.len().min(64);
    joined[..4].copy_from_slice(tail);
    joined[4..4 + n].copy_from_slice(&data[data.len() - n..]);
    let w = &joined[..4 + n];
    let hit = w.len() >= END.len() && &w[w.len() - END.len()..] == END;
    let k = data.len().min(4);
    tail.rotate_left(k);
    tail[4 - k..].copy_from_slice(&data[data.len() - k..]);
    hit
}

fn worker(
    addr: String,
    conns: usize,
    left: Arc<AtomicU64>,
    req: Arc<Vec<u8>>,
) -> Result<(u64, u64), String> {
    // SAFETY: plain epoll calls on descriptors this thread owns.
    let ep = unsafe { libc::epoll_create1(0) };
    if ep < 0 {
        return Err(format!(
            "epoll_create1: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut all = Vec::with_capacity(conns);
    for i in 0..conns {
        if left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
            .is_err()
        {
            break;
        }
        let e = |what: &str, err: std::io::Error| format!("{what} {addr}: {err}");
        let mut sock = TcpStream::connect(&addr).map_err(|err| e("connecting to", err))?;
        sock.set_nodelay(true)
            .map_err(|err| e("TCP_NODELAY on", err))?;
        sock.write_all(&req).map_err(|err| e("writing to", err))?;
        sock.set_nonblocking(true)
            .map_err(|err| e("O_NONBLOCK on", err))?;
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: registering an open socket.
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, sock.as_raw_fd(), &mut ev) };
        all.push(Some(Conn { sock, tail: [0; 4] }));
    }
    let mut open = all.len();
    let (mut responses, mut failed) = (0u64, 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    while open > 0 {
        // SAFETY: `events` is a valid buffer of its length.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            continue;
        }
        for ev in &events[..n as usize] {
            let i = ev.u64 as usize;
            let Some(c) = all[i].as_mut() else { continue };
            // SAFETY: reading into our buffer from an open socket.
            let r =
                unsafe { libc::recv(c.sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if r < 0 {
                continue;
            }
            let done = r == 0 || ends(&mut c.tail, &buf[..r as usize]);
            if !done {
                continue;
            }
            if r == 0 {
                failed += 1;
            } else {
                responses += 1;
            }
            let more = r > 0
                && left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
                    .is_ok();
            if more {
                c.tail = [0; 4];
                c.sock.set_nonblocking(false).ok();
                let ok = c.sock.write_all(&req).is_ok();
                c.sock.set_nonblocking(true).ok();
                if ok {
                    continue;
                }
                failed += 1;
            }
            all[i] = None;
            open -= 1;
        }
    }
    // SAFETY: closing the epoll descriptor this thread created.
    unsafe { libc::close(ep) };
    Ok((responses, failed))
}

fn main() {
    let mut a = std::env::args().skip(1);
    let addr = a.next().unwrap_or_else(|| usage());
    let c = num(a.next()) as usize;
    let prompts = num(a.next());
    let input_len = num(a.next());
    let output_len = num(a.next());
    let threads = (num(a.next().or(Some("1".into()))) as usize).max(1);
    let req = Arc::new(request(&addr, input_len, output_len));
    let left = Arc::new(AtomicU64::new(prompts));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let n = c / threads + usize::from(t < c % threads);
            let (addr, left, req) = (addr.clone(), left.clone(), req.clone());
            std::thread::spawn(move || worker(addr, n, left, req))
        })
        .collect();
    let (mut responses, mut failed) = (0, 0);
    for h in handles {
        match h.join() {
            Ok(Ok((r, f))) => {
                responses += r;
                failed += f;
            }
            Ok(Err(e)) => {
                eprintln!("floor_client: {e}");
                std::process::exit(1);
            }
            Err(_) => {
                eprintln!("floor_client: a worker thread panicked");
                std::process::exit(1);
            }
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    // SAFETY: getrusage into a zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let tokens = responses * output_len;
    println!(
        "tokens={tokens} responses={responses} failed={failed} wall_s={wall:.3} user_s={:.3} sys_s={:.3}",
        secs(ru.ru_utime),
        secs(ru.ru_stime)
    );
    if let Some(path) = a.next() {
        let json = format!(
            "{{\"completed\":{responses},\"failed\":{failed},\"total_output_tokens\":{tokens},\
             \"output_throughput\":{}}}\n",
            tokens as f64 / wall
        );
        if let Err(e) = std::fs::write(&path, json) {
            eprintln!("floor_client: {path}: {e}");
            std::process::exit(1);
        }
    }
    if failed > 0 {
        std::process::exit(3);
    }
}
