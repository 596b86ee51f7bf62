//! Side-by-side client benchmark: `run-bm` and `vllm bench serve`, interleaved, against
//! the fast scripted server `pd-fast-openai` (which measures what it actually sent), at
//! rising concurrency. Driven by `scripts/bench-client.sh` (which builds everything and
//! provides vLLM); results in `docs/BENCHMARKS.md`.
//!
//! ```text
//! bench_client --run-bm PATH --server-bin PATH [--vllm PATH --tokenizer DIR]
//!              [--floor PATH] [--client-threads N] [--concurrency 64,256,1024]
//!              [--prompts-per-stream 3] [--repeat 1] [--input-len 64] [--output-len 200]
//!              [--ttft-ms 20] [--interval-ms 10] [--server-threads N] [--work DIR]
//!              [--markdown FILE]
//! ```
//!
//! Per run: the server's window is reset, the client is spawned, its CPU time is read from
//! `/proc` when the server sees its first request (so interpreter start-up, imports and
//! dataset preparation are not counted), its peak RSS is polled from `VmHWM`, and after it
//! exits its CPU time comes from `wait4`. The errors are the client's figures minus what the
//! server actually did (`GET /stats`): TTFT (mean), TPOT (mean), ITL (median). A row whose
//! server missed its own script by more than 0.1 % (TPOT) is marked.
//!
//! `--floor PATH` adds the `floor` client (`examples/floor_client.rs`, one thread): the
//! same streams received with nothing but `epoll_wait` + `recv` — what the kernel costs per
//! token on this machine, the bound under any client that reads each token as it arrives.
//! It measures no latency (its error columns are empty).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Args {
    run_bm: PathBuf,
    server_bin: PathBuf,
    vllm: Option<PathBuf>,
    tokenizer: Option<PathBuf>,
    floor: Option<PathBuf>,
    client_threads: Option<u64>,
    concurrency: Vec<u64>,
    per_stream: u64,
    repeat: u32,
    input_len: u64,
    output_len: u64,
    ttft_ms: f64,
    interval_ms: f64,
    server_threads: usize,
    work: PathBuf,
    markdown: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        run_bm: PathBuf::new(),
        server_bin: PathBuf::new(),
        vllm: None,
        tokenizer: None,
        floor: None,
        client_threads: None,
        concurrency: vec![64, 256, 1024],
        per_stream: 3,
        repeat: 1,
        input_len: 64,
        output_len: 200,
        ttft_ms: 20.0,
        interval_ms: 10.0,
        server_threads: 1,
        work: std::env::temp_dir().join("pd-bench-client"),
        markdown: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("see the header of crates/run-bm/examples/bench_client.rs");
            std::process::exit(0);
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--run-bm" => a.run_bm = v.into(),
            "--server-bin" => a.server_bin = v.into(),
            "--vllm" => a.vllm = (v != "none").then(|| v.into()),
            "--tokenizer" => a.tokenizer = Some(v.into()),
            "--floor" => a.floor = (v != "none").then(|| v.into()),
            "--client-threads" => a.client_threads = Some(num(&v)? as u64),
            "--concurrency" => {
                a.concurrency = v
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|e| format!("{flag}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--prompts-per-stream" => a.per_stream = num(&v)? as u64,
            "--repeat" => a.repeat = num(&v)? as u32,
            "--input-len" => a.input_len = num(&v)? as u64,
            "--output-len" => a.output_len = num(&v)? as u64,
            "--ttft-ms" => a.ttft_ms = num(&v)?,
            "--interval-ms" => a.interval_ms = num(&v)?,
            "--server-threads" => a.server_threads = num(&v)? as usize,
            "--work" => a.work = v.into(),
            "--markdown" => a.markdown = Some(v.into()),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.run_bm.as_os_str().is_empty() || a.server_bin.as_os_str().is_empty() {
        return Err("--run-bm and --server-bin are required".into());
    }
    if a.vllm.is_some() && a.tokenizer.is_none() {
        return Err("--vllm needs --tokenizer".into());
    }
    Ok(a)
}

/// `GET`/`POST` on the server, JSON body back.
fn http(addr: &str, method: &str, path: &str) -> Result<serde_json::Value, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    let body = text.split_once("\r\n\r\n").map_or("", |x| x.1);
    serde_json::from_str(body).map_err(|e| format!("{path}: {e}: {body}"))
}

/// utime + stime of a running process, seconds.
fn proc_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / hz)
}

fn vm_hwm(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// What one client run gave.
#[derive(Debug, Clone, Default)]
struct Run {
    client: &'static str,
    concurrency: u64,
    ok: bool,
    note: String,
    tok_s: f64,
    completed: u64,
    failed: u64,
    tokens: u64,
    ttft_err_ms: f64,
    ttft_err_rel: f64,
    tpot_err_rel: f64,
    itl_err_rel: f64,
    cpu_s: f64,
    cpu_total_s: f64,
    us_per_tok: f64,
    rss_mb: f64,
    server_tpot_err_rel: f64,
    server_lag_ms: f64,
    load_before: String,
    load_after: String,
}

fn spawn_server(a: &Args) -> Result<(Child, String), String> {
    let mut child = Command::new(&a.server_bin)
        .args([
            "--ttft-ms",
            &a.ttft_ms.to_string(),
            "--interval-ms",
            &a.interval_ms.to_string(),
            "--threads",
            &a.server_threads.to_string(),
            "--model",
            "fake",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", a.server_bin.display()))?;
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while out.read(&mut b).map_err(|e| e.to_string())? == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    let url = String::from_utf8_lossy(&line).trim().to_string();
    let addr = url.trim_start_matches("http://").to_string();
    Ok((child, addr))
}

/// Spawn, watch and wait for one client; fills CPU, RSS, exit.
fn run_client(
    mut cmd: Command,
    addr: &str,
    log: &Path,
) -> Result<(bool, f64, f64, u64, String), String> {
    let logf = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let errf = logf.try_clone().map_err(|e| e.to_string())?;
    let child = cmd
        .stdout(Stdio::from(logf))
        .stderr(Stdio::from(errf))
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id();
    let mut cpu_at_first: Option<f64> = None;
    let mut hwm = 0u64;
    let mut last_cpu = 0.0;
    let start = Instant::now();
    let (status, usage) = loop {
        if let Some(h) = vm_hwm(pid) {
            hwm = hwm.max(h);
        }
        if let Some(c) = proc_cpu(pid) {
            last_cpu = c;
        }
        if cpu_at_first.is_none() {
            if let Ok(st) = http(addr, "GET", "/stats") {
                if st["requests"].as_u64().unwrap_or(0) > 0 {
                    cpu_at_first = Some(last_cpu);
                }
            }
        }
        let mut raw = 0;
        // SAFETY: wait4 writes into a valid int and a zeroed rusage.
        let (r, u) = unsafe {
            let mut u: libc::rusage = std::mem::zeroed();
            (
                libc::wait4(pid as libc::pid_t, &mut raw, libc::WNOHANG, &mut u),
                u,
            )
        };
        if r == pid as libc::pid_t {
            break (raw, u);
        }
        if r < 0 {
            return Err("wait4 failed".into());
        }
        if start.elapsed() > Duration::from_secs(3600) {
            // SAFETY: kill of our own child.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(child);
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let total = tv(usage.ru_utime) + tv(usage.ru_stime);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let note = if ok {
        String::new()
    } else {
        format!("exit status {status:#x}")
    };
    if hwm == 0 {
        hwm = u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024;
    }
    Ok((ok, total, total - cpu_at_first.unwrap_or(0.0), hwm, note))
}

fn one(a: &Args, addr: &str, client: &'static str, c: u64, rep: u32) -> Run {
    let mut run = Run {
        client,
        concurrency: c,
        ..Default::default()
    };
    let dir = a.work.join(format!("c{c}-{client}-{rep}"));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        run.note = e.to_string();
        return run;
    }
    let n = (c * a.per_stream).to_string();
    let url = format!("http://{addr}");
    let (cmd, result) = match client {
        "run-bm" => {
            let mut cmd = Command::new(&a.run_bm);
            cmd.args([
                "--no-deployment",
                "-u",
                &url,
                "-m",
                "fake",
                "--vocab-size",
                "1000",
                "--itl",
                &a.input_len.to_string(),
                "--otl",
                &a.output_len.to_string(),
                "-c",
                &c.to_string(),
                "--num-prompts",
                &n,
                "--result-dir",
                &dir.to_string_lossy(),
                "--result-filename",
                "result.json",
                "--no-progress",
            ]);
            if let Some(t) = a.client_threads {
                cmd.args(["--client-threads", &t.to_string()]);
            }
            (cmd, dir.join("result.json"))
        }
        "floor" => {
            let Some(floor) = &a.floor else {
                run.note = "no floor client".into();
                return run;
            };
            let mut cmd = Command::new(floor);
            cmd.arg(addr)
                .arg(c.to_string())
                .arg(&n)
                .arg(a.input_len.to_string())
                .arg(a.output_len.to_string())
                .arg("1")
                .arg(dir.join("result.json"));
            (cmd, dir.join("result.json"))
        }
        _ => {
            let (Some(vllm), Some(tok)) = (&a.vllm, &a.tokenizer) else {
                run.note = "no vllm".into();
                return run;
            };
            let mut cmd = Command::new(vllm);
            cmd.args([
                "bench",
                "serve",
                "--backend",
                "openai",
                "--base-url",
                &url,
                "--endpoint",
                "/v1/completions",
                "--model",
                "fake",
                "--tokenizer",
                &tok.to_string_lossy(),
                "--dataset-name",
                "random",
                "--random-input-len",
                &a.input_len.to_string(),
                "--random-output-len",
                &a.output_len.to_string(),
                "--ignore-eos",
                "--num-prompts",
                &n,
                "--max-concurrency",
                &c.to_string(),
                "--request-rate",
                "inf",
                "--seed",
                "0",
                "--percentile-metrics",
                "ttft,tpot,itl,e2el",
                "--save-result",
                "--result-dir",
                &dir.to_string_lossy(),
                "--result-filename",
                "result.json",
            ]);
            cmd.env("TQDM_DISABLE", "1");
            (cmd, dir.join("result.json"))
        }
    };
    if let Err(e) = http(addr, "POST", "/stats/reset") {
        run.note = e;
        return run;
    }
    run.load_before = loadavg();
    let watched = run_client(cmd, addr, &dir.join("client.log"));
    run.load_after = loadavg();
    let (ok, total, cpu, hwm, note) = match watched {
        Ok(x) => x,
        Err(e) => {
            run.note = e;
            return run;
        }
    };
    run.cpu_total_s = total;
    run.cpu_s = cpu;
    run.rss_mb = hwm as f64 / (1 << 20) as f64;
    run.note = note;
    let server = http(addr, "GET", "/stats").unwrap_or_default();
    let res: serde_json::Value = std::fs::read_to_string(&result)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    run.completed = res["completed"].as_u64().unwrap_or(0);
    run.failed = res["failed"].as_u64().unwrap_or(0);
    run.tokens = res["total_output_tokens"].as_u64().unwrap_or(0);
    run.tok_s = f(&res, "output_throughput");
    let (s_ttft, s_tpot, s_gap) = (
        f(&server, "mean_ttft_ms"),
        f(&server, "mean_tpot_ms"),
        f(&server, "median_gap_ms"),
    );
    run.ttft_err_ms = f(&res, "mean_ttft_ms") - s_ttft;
    run.ttft_err_rel = run.ttft_err_ms / s_ttft;
    run.tpot_err_rel = f(&res, "mean_tpot_ms") / s_tpot - 1.0;
    run.itl_err_rel = f(&res, "median_itl_ms") / s_gap - 1.0;
    run.server_tpot_err_rel = f(&server, "tpot_error_rel");
    run.server_lag_ms = f(&server, "mean_lag_ms");
    run.us_per_tok = if run.tokens > 0 {
        run.cpu_s * 1e6 / run.tokens as f64
    } else {
        f64::NAN
    };
    run.ok = ok && run.completed > 0;
    if !ok && run.note.is_empty() {
        run.note = "failed".into();
    }
    run
}

fn header() -> String {
    format!(
        "| {:>6} | {:<6} | {:>9} | {:>9} | {:>10} | {:>9} | {:>9} | {:>8} | {:>7} | {:>6} | {:>13} | {:>11} |",
        "C", "client", "tok/s", "TPOT err", "TTFT err", "ITL err", "CPU µs/tok", "RSS MB", "failed",
        "srv ok", "load 1/5/15", "note"
    )
}

fn row(r: &Run) -> String {
    let pct = |x: f64| {
        if x.is_nan() {
            "-".to_string()
        } else {
            format!("{:+.2} %", x * 100.0)
        }
    };
    let ms = |x: f64| {
        if x.is_nan() {
            "-".to_string()
        } else {
            format!("{x:+.1} ms")
        }
    };
    format!(
        "| {:>6} | {:<6} | {:>9.0} | {:>9} | {:>10} | {:>9} | {:>10.2} | {:>8.1} | {:>7} | {:>6} | {:>13} | {:>11} |",
        r.concurrency,
        r.client,
        r.tok_s,
        pct(r.tpot_err_rel),
        ms(r.ttft_err_ms),
        pct(r.itl_err_rel),
        r.us_per_tok,
        r.rss_mb,
        r.failed,
        if r.server_tpot_err_rel.abs() <= 1e-3 { "yes" } else { "NO" },
        r.load_before,
        r.note,
    )
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench_client: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&a.work) {
        eprintln!("bench_client: {}: {e}", a.work.display());
        std::process::exit(1);
    }
    // SAFETY: raising our own soft RLIMIT_NOFILE (inherited by the clients).
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
    let (mut server, addr) = match spawn_server(&a) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("bench_client: cannot start the server: {e}");
            std::process::exit(1);
        }
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut lines = vec![
        format!(
            "server pd-fast-openai ({} thread(s)) at {addr}: TTFT {} ms, {} ms/token; {} in / {} out tokens, {} prompts per stream; {cpus} CPUs; load {}",
            a.server_threads, a.ttft_ms, a.interval_ms, a.input_len, a.output_len, a.per_stream, loadavg()
        ),
        String::new(),
        header(),
        format!("|{}|", ["---:", ":---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", ":---:", ":---", ":---"].join("|")),
    ];
    println!("{}", lines.join("\n"));
    let mut clients: Vec<&'static str> = vec!["run-bm"];
    if a.vllm.is_some() {
        clients.push("vllm");
    }
    if a.floor.is_some() {
        clients.push("floor");
    }
    let mut all: Vec<Run> = Vec::new();
    for &c in &a.concurrency {
        for rep in 0..a.repeat {
            // Interleaved, and the order alternates between repeats.
            let mut order = clients.clone();
            if rep % 2 == 1 {
                order.reverse();
            }
            for client in order {
                let r = one(&a, &addr, client, c, rep);
                let line = row(&r);
                println!("{line}");
                lines.push(line);
                all.push(r);
            }
        }
        let mean = |name: &str, f: &dyn Fn(&Run) -> f64| {
            let v: Vec<f64> = all
                .iter()
                .filter(|r| r.concurrency == c && r.client == name && r.ok)
                .map(f)
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        if clients.contains(&"vllm") {
            let line = format!(
                "| {c:>6} | ratio  | {:>8.2}× | | | | {:>9.2}× | {:>7.2}× | | | | vllm ÷ run-bm (CPU, RSS); run-bm ÷ vllm (tok/s) |",
                mean("run-bm", &|r| r.tok_s) / mean("vllm", &|r| r.tok_s),
                mean("vllm", &|r| r.us_per_tok) / mean("run-bm", &|r| r.us_per_tok),
                mean("vllm", &|r| r.rss_mb) / mean("run-bm", &|r| r.rss_mb),
            );
            println!("{line}");
            lines.push(line);
        }
        if clients.contains(&"floor") {
            let line = format!(
                "| {c:>6} | floor× | | | | | {:>9.2}× | | | | | run-bm ÷ floor (CPU per token) |",
                mean("run-bm", &|r| r.us_per_tok) / mean("floor", &|r| r.us_per_tok),
            );
            println!("{line}");
            lines.push(line);
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    if let Some(md) = &a.markdown {
        if let Err(e) = std::fs::write(md, lines.join("\n") + "\n") {
            eprintln!("bench_client: {}: {e}", md.display());
        }
    }
    let failed = all.iter().filter(|r| !r.ok || r.failed > 0).count();
    if failed > 0 {
        eprintln!("bench_client: {failed} run(s) failed or had failed requests (see the note column and {}/*/client.log)", a.work.display());
        std::process::exit(3);
    }
}
