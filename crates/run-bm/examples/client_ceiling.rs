//! Client ceiling benchmark: runs run-bm's load generator against the fake server
//! emitting tokens at a known rate, and prints the tokens/s the client ingested and its
//! TPOT/TTFT error at each number of concurrent streams.
//!
//! ```text
//! cargo run --release -p run-bm --example client_ceiling -- --streams 1000,10000
//! ```
//!
//! Options: `--tokens N` (per stream, default 200), `--interval-ms F` (server time per
//! token, default 20), `--ttft-ms F` (default 50), `--tokens-per-chunk N` (default 1),
//! `--server in-process|child|auto` (default auto: a child process when one process
//! would need more file descriptors than RLIMIT_NOFILE allows).
//!
//! The server and the client share the machine: on a small or busy machine the
//! numbers are a lower bound of the client's own ceiling.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use pd_common::bench::{compute, MetricName, MetricOptions};
use pd_testkit::fake_openai::{FakeServer, GenSpec, Reply};
use run_bm::cancel::Cancel;
use run_bm::client::HttpClient;
use run_bm::prompt::{PromptFormat, PromptGen};
use run_bm::runner::{run_point, LiveStats, PointPlan, RunSettings};

struct Args {
    streams: Vec<u64>,
    tokens: u64,
    interval_ms: f64,
    ttft_ms: f64,
    per_chunk: u64,
    server: String,
    serve_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        streams: vec![1000, 10000],
        tokens: 200,
        interval_ms: 20.0,
        ttft_ms: 50.0,
        per_chunk: 1,
        server: "auto".into(),
        serve_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--streams" => {
                a.streams = val()?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<u64>()
                            .map_err(|e| format!("--streams: {e}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--tokens" => a.tokens = val()?.parse().map_err(|e| format!("--tokens: {e}"))?,
            "--interval-ms" => {
                a.interval_ms = val()?.parse().map_err(|e| format!("--interval-ms: {e}"))?
            }
            "--ttft-ms" => a.ttft_ms = val()?.parse().map_err(|e| format!("--ttft-ms: {e}"))?,
            "--tokens-per-chunk" => {
                a.per_chunk = val()?
                    .parse()
                    .map_err(|e| format!("--tokens-per-chunk: {e}"))?
            }
            "--server" => a.server = val()?,
            "--serve-only" => a.serve_only = true,
            "-h" | "--help" => {
                println!("client_ceiling [--streams 1000,10000] [--tokens 200] [--interval-ms 20] [--ttft-ms 50] [--tokens-per-chunk 1] [--server auto|in-process|child]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

/// CPU seconds (user + system) of this process or of its waited-for children.
fn cpu_seconds(who: i32) -> f64 {
    // SAFETY: getrusage writes into a zeroed local struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn spec(a: &Args) -> GenSpec {
    GenSpec {
        ttft: Duration::from_secs_f64(a.ttft_ms / 1000.0),
        interval: Duration::from_secs_f64(a.interval_ms / 1000.0),
        tokens: None,
        tokens_per_chunk: a.per_chunk,
    }
}

async fn start_server(a: &Args) -> std::io::Result<FakeServer> {
    let s = spec(a);
    FakeServer::start("fake", Arc::new(move |_| Reply::Generate(s)), false).await
}

/// Start the server in a child process; returns it and its URL.
fn start_child(a: &Args) -> Result<(Child, String), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args([
            "--serve-only",
            "--interval-ms",
            &a.interval_ms.to_string(),
            "--ttft-ms",
            &a.ttft_ms.to_string(),
            "--tokens-per-chunk",
            &a.per_chunk.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok((child, line.trim().to_string()))
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("client_ceiling: {e}");
            std::process::exit(2);
        }
    };
    let nofile = run_bm::limits::raise_nofile_limit().map_or(1024, |l| l.soft);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("client_ceiling: {e}");
            std::process::exit(1);
        }
    };
    if args.serve_only {
        rt.block_on(async {
            match start_server(&args).await {
                Ok(s) => {
                    println!("{}", s.url());
                    std::future::pending::<()>().await;
                }
                Err(e) => eprintln!("client_ceiling server: {e}"),
            }
        });
        return;
    }
    println!(
        "client ceiling: {} tokens/stream, server {} ms/token, TTFT {} ms, {} token(s)/chunk; RLIMIT_NOFILE {}; {} CPUs",
        args.tokens,
        args.interval_ms,
        args.ttft_ms,
        args.per_chunk,
        nofile,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:>8} {:>8} {:>13} {:>14} {:>6} {:>13} {:>13} {:>13} {:>6} {:>10} {:>10} {:>11} {:>16}",
        "streams",
        "server",
        "offered tok/s",
        "achieved tok/s",
        "ratio",
        "TPOT mean err",
        "TPOT p99 err",
        "TTFT med err",
        "failed",
        "client CPU",
        "server CPU",
        "client us/tok",
        "client tok/CPU-s"
    );
    for &streams in &args.streams {
        let child_mode = match args.server.as_str() {
            "child" => true,
            "in-process" => false,
            _ => streams * 2 + 256 > nofile,
        };
        let result = rt.block_on(run_one(&args, streams, child_mode));
        match result {
            Ok(line) => println!("{line}"),
            Err(e) => println!("{streams:>8} error: {e}"),
        }
    }
}

async fn run_one(a: &Args, streams: u64, child_mode: bool) -> Result<String, String> {
    let mut child = None;
    let mut server = None;
    let url = if child_mode {
        let (c, url) = start_child(a)?;
        child = Some(c);
        url
    } else {
        let s = start_server(a).await.map_err(|e| e.to_string())?;
        let url = s.url();
        server = Some(s);
        url
    };
    let client = HttpClient::new(&url, "/v1/completions", None).map_err(|e| e.to_string())?;
    let workload = pd_common::Workload::new(
        16,
        u32::try_from(a.tokens).unwrap_or(u32::MAX),
        pd_common::BenchMode::Mixed,
    )
    .map_err(|e| e.to_string())?;
    let settings = Arc::new(RunSettings {
        client,
        model: "fake".into(),
        prompts: PromptGen::new(&workload, PromptFormat::TokenIds, 0, 1000),
        max_tokens: workload.output_len(),
        timeout: Duration::from_secs(600),
        keep_text: false,
        continuous_usage: true,
        grace: Duration::from_secs(1),
        request_id_prefix: "ceiling-".into(),
        expect_full_output: true,
        prewarm: true,
    });
    let plan = PointPlan {
        num_prompts: streams,
        rate: f64::INFINITY,
        burstiness: 1.0,
        max_concurrency: Some(streams),
        seed: 0,
        index_base: 0,
    };
    let self0 = cpu_seconds(libc::RUSAGE_SELF);
    let child0 = cpu_seconds(libc::RUSAGE_CHILDREN);
    let run = run_point(
        settings,
        &plan,
        &Cancel::new(),
        Arc::new(LiveStats::default()),
    )
    .await;
    let self_cpu = cpu_seconds(libc::RUSAGE_SELF) - self0;
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
    drop(server);
    let child_cpu = cpu_seconds(libc::RUSAGE_CHILDREN) - child0;
    let m = compute(
        &run.outcomes,
        run.duration,
        &MetricOptions {
            metrics: vec![MetricName::Ttft, MetricName::Tpot],
            percentiles: vec![99.0],
            goodput: None,
            has_max_concurrency: true,
            finite_rate: false,
        },
    );
    let stream_s =
        a.ttft_ms / 1000.0 + (a.tokens.saturating_sub(1)) as f64 * a.interval_ms / 1000.0;
    let offered = (streams * a.tokens) as f64 / stream_s;
    let tpot = m.block(MetricName::Tpot).cloned().unwrap_or_default();
    let ttft = m.block(MetricName::Ttft).cloned().unwrap_or_default();
    let p99 = tpot.percentiles.first().map_or(0.0, |p| p.1);
    // In child mode the client is alone in this process, so its CPU time is exact; in
    // process the figure includes the server.
    let tokens = m.total_output_tokens.max(1) as f64;
    let (server_cpu, label) = if child_mode {
        (format!("{child_cpu:.2} s"), "")
    } else {
        ("(shared)".to_string(), "+srv")
    };
    Ok(format!(
        "{:>8} {:>8} {:>13.0} {:>14.0} {:>6.3} {:>10.3} ms {:>10.3} ms {:>10.3} ms {:>6} {:>8.2} s {:>10} {:>7.2}{:<4} {:>16.0}",
        streams,
        if child_mode { "child" } else { "in-proc" },
        offered,
        m.output_throughput,
        m.output_throughput / offered,
        tpot.mean - a.interval_ms,
        p99 - a.interval_ms,
        ttft.median - a.ttft_ms,
        m.failed,
        self_cpu,
        server_cpu,
        self_cpu * 1e6 / tokens,
        label,
        tokens / self_cpu.max(1e-9),
    ))
}
