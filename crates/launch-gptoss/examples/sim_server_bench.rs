//! Load benchmark of the simulator's HTTP server: can it keep up with the model?
//!
//! Starts the simulator server in this process (its own tokio runtime, like
//! `serve-sim`), then opens N concurrent streaming completions over loopback (all at
//! once, one request per stream) and reports:
//! * server side: emission lag = (time the SSE chunk is handed to the connection) −
//!   (the engine's model time of that emission), p50/p99/max; and the same for the
//!   engine thread's dispatch;
//! * client side: TTFT, chunk gaps, tokens, throughput, wall time;
//! * the load average before and after (the machine's other work shifts every figure).
//!
//! ```text
//! cargo run --release -p launch-gptoss --example sim_server_bench -- \
//!     [--streams 2000] [--input-len 1000] [--output-len 200] [--num 4] [--tp 2] [--gpu h100]
//!     [--server-threads 2] [--client-threads 2] [--sim-config FILE]
//! ```

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use launch_gptoss::sim::engine::{ClusterConfig, Engine, NetworkKind, SimConstants};
use launch_gptoss::sim::lag::LagSummary;
use launch_gptoss::sim::server::{ServerOptions, SimServer};
use pd_common::deployment::{DeploymentSpec, GpuKind};

#[derive(Debug, Clone)]
struct Opts {
    streams: usize,
    input_len: usize,
    output_len: u32,
    num: u32,
    tp: u32,
    gpu: GpuKind,
    server_threads: usize,
    client_threads: usize,
    sim_config: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Opts> {
    let mut o = Opts {
        streams: 2000,
        input_len: 1000,
        output_len: 200,
        num: 4,
        tp: 2,
        gpu: GpuKind::H100,
        server_threads: 2,
        client_threads: 2,
        sim_config: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("usage: sim_server_bench [--streams N] [--input-len N] [--output-len N] [--num N] [--tp N] [--gpu h100|h200] [--server-threads N] [--client-threads N] [--sim-config FILE]");
            std::process::exit(0);
        }
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--streams" => o.streams = v.parse()?,
            "--input-len" => o.input_len = v.parse()?,
            "--output-len" => o.output_len = v.parse()?,
            "--num" => o.num = v.parse()?,
            "--tp" => o.tp = v.parse()?,
            "--gpu" => o.gpu = v.parse()?,
            "--server-threads" => o.server_threads = v.parse()?,
            "--client-threads" => o.client_threads = v.parse()?,
            "--sim-config" => o.sim_config = Some(v.into()),
            _ => bail!("unknown flag {flag} (see --help)"),
        }
    }
    Ok(o)
}

#[cfg(unix)]
fn raise_nofile() {
    // SAFETY: plain getrlimit/setrlimit on this process.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

#[cfg(not(unix))]
fn raise_nofile() {}

#[derive(Debug, Default)]
struct StreamStats {
    ttft: f64,
    gaps: Vec<f64>,
    chunks: u32,
    tokens: u64,
    e2e: f64,
}

async fn one_stream(
    addr: std::net::SocketAddr,
    body: String,
    start: Instant,
) -> Result<StreamStats> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::builder()
        .method("POST")
        .uri("/v1/completions")
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let sent = Instant::now();
    let resp = sender.send_request(req).await?;
    if !resp.status().is_success() {
        bail!("HTTP {}", resp.status());
    }
    let mut body = resp.into_body();
    let mut st = StreamStats::default();
    let mut last: Option<Instant> = None;
    let mut tail = String::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        let now = Instant::now();
        let text = std::str::from_utf8(data).unwrap_or("");
        if text.contains("\"text\":") {
            st.chunks += 1;
            match last {
                None => st.ttft = (now - sent).as_secs_f64(),
                Some(l) => st.gaps.push((now - l).as_secs_f64()),
            }
            last = Some(now);
        }
        if text.contains("\"choices\":[]") {
            tail = text.to_string();
        }
    }
    st.e2e = (Instant::now() - start).as_secs_f64();
    if let Some(i) = tail.find("\"completion_tokens\":") {
        let rest = &tail[i + 20..];
        let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
        st.tokens = n.parse().unwrap_or(0);
    }
    Ok(st)
}

/// CPU seconds used so far by this process's threads, summed per thread name.
fn thread_cpu() -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, t)) => *t += ticks / hz,
            None => out.push((name, ticks / hz)),
        }
    }
    out
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1);
    sorted[i]
}

fn show(name: &str, s: &LagSummary) {
    println!(
        "{name:<28} n={:<9} p50 {:>8.3} ms  p90 {:>8.3} ms  p99 {:>8.3} ms  p99.9 {:>8.3} ms  max {:>8.3} ms",
        s.count,
        s.p50 * 1e3,
        s.p90 * 1e3,
        s.p99 * 1e3,
        s.p999 * 1e3,
        s.max * 1e3
    );
}

/// The machine's load average (Linux), to state the conditions of a run.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

fn main() -> Result<()> {
    let o = parse_args()?;
    raise_nofile();
    let load_before = load_average();
    let spec = DeploymentSpec {
        gpu: o.gpu,
        ..DeploymentSpec::collocated(o.num, o.tp)
    };
    spec.validate(8)?;
    let cfg = ClusterConfig {
        spec: spec.clone(),
        gpus_per_node: 8,
        network: NetworkKind::EfaSrd,
        constants: match &o.sim_config {
            Some(p) => SimConstants::load(p)?,
            None => SimConstants::builtin(o.gpu)?,
        },
        max_model_len: 16000,
        seed: 0,
    };
    let engine = Engine::new(cfg)?;
    let opts = ServerOptions {
        served_model_name: "gptoss".into(),
        model_source: "openai/gpt-oss-120b".into(),
        max_model_len: 16000,
        label: spec.label(),
        gpu: o.gpu.to_string(),
        instance: None,
        corrupt_kv: false,
    };

    // The server: its own runtime, as in `serve-sim`.
    let srv_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.server_threads)
        .thread_name("bench-server")
        .on_thread_start(launch_gptoss::sim::realtime::apply_thread_nice)
        .enable_all()
        .build()?;
    let t0 = Instant::now();
    let server = srv_rt.block_on(SimServer::bind("127.0.0.1:0".parse()?, engine, opts))?;
    let addr = server.local_addr()?;
    let monitor = server.monitor();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let srv_task = srv_rt.spawn(server.run(async {
        let _ = stop_rx.await;
    }));
    println!(
        "server {} ({}) on {addr}, bound in {:.1} ms",
        spec.label(),
        o.gpu,
        t0.elapsed().as_secs_f64() * 1e3
    );

    // The client.
    let cli_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.client_threads)
        .thread_name("bench-client")
        .enable_all()
        .build()?;
    let start = Instant::now();
    let results: Vec<Result<StreamStats>> = cli_rt.block_on(async {
        let mut tasks = Vec::with_capacity(o.streams);
        for i in 0..o.streams {
            // Distinct prompts (no shared prefix), like random-token benchmarks.
            let prompt: Vec<u32> = (0..o.input_len as u32)
                .map(|k| (i as u32 * 7919 + k * 104_729) % 200_000)
                .collect();
            let body = serde_json::json!({
                "model": "gptoss", "prompt": prompt, "max_tokens": o.output_len, "stream": true,
                "ignore_eos": true, "stream_options": {"include_usage": true},
            })
            .to_string();
            tasks.push(tokio::spawn(one_stream(addr, body, start)));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(
                t.await
                    .unwrap_or_else(|e| Err(anyhow::anyhow!("task: {e}"))),
            );
        }
        out
    });
    let wall = start.elapsed().as_secs_f64();
    let emission = monitor.emission_lag();
    let dispatch = monitor.dispatch_lag();
    let cpu = thread_cpu();
    let _ = stop_tx.send(());
    let _ = srv_rt.block_on(srv_task);

    let mut ok = Vec::new();
    let mut errors = 0;
    for r in results {
        match r {
            Ok(s) => ok.push(s),
            Err(e) => {
                if errors < 3 {
                    eprintln!("stream failed: {e:#}");
                }
                errors += 1;
            }
        }
    }
    let tokens: u64 = ok.iter().map(|s| s.tokens).sum();
    let chunks: u64 = ok.iter().map(|s| u64::from(s.chunks)).sum();
    let mut ttft: Vec<f64> = ok.iter().map(|s| s.ttft).collect();
    let mut gaps: Vec<f64> = ok.iter().flat_map(|s| s.gaps.iter().copied()).collect();
    let mut e2e: Vec<f64> = ok.iter().map(|s| s.e2e).collect();
    for v in [&mut ttft, &mut gaps, &mut e2e] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "streams {} ok, {errors} failed; input {} output {} tokens; wall {wall:.2} s",
        ok.len(),
        o.input_len,
        o.output_len
    );
    println!("--- server (model time vs hand-off to the connection) ---");
    show("emission lag", &emission);
    show("engine dispatch lag", &dispatch);
    println!("--- client (loopback, same machine) ---");
    println!(
        "tokens {tokens} in {chunks} chunks ({:.2} tokens/chunk); output throughput {:.0} tokens/s; {:.0} chunks/s",
        tokens as f64 / chunks.max(1) as f64,
        tokens as f64 / wall,
        chunks as f64 / wall
    );
    println!(
        "TTFT p50 {:.1} ms p99 {:.1} ms; chunk gap p50 {:.2} ms p99 {:.2} ms; E2E p50 {:.2} s max {:.2} s",
        pct(&ttft, 0.5) * 1e3,
        pct(&ttft, 0.99) * 1e3,
        pct(&gaps, 0.5) * 1e3,
        pct(&gaps, 0.99) * 1e3,
        pct(&e2e, 0.5),
        pct(&e2e, 1.0)
    );
    let cpu_text: Vec<String> = cpu.iter().map(|(n, t)| format!("{n} {t:.2} s")).collect();
    println!("CPU time by thread: {}", cpu_text.join(", "));
    println!(
        "load average (1, 5, 15 min): before {load_before}, after {}",
        load_average()
    );
    let verdict = if emission.p99 <= 5e-3 { "PASS" } else { "FAIL" };
    println!(
        "target emission lag p99 <= 5 ms: {verdict} ({:.3} ms)",
        emission.p99 * 1e3
    );
    if errors > 0 {
        bail!("{errors} streams failed");
    }
    srv_rt.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}
