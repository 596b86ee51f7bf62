//! `pd-fast-openai`: the fast scripted streaming server of `scripts/bench-client.sh`
//! (see `pd_testkit::fast_openai`). Prints its URL on the first line of stdout, then
//! serves until SIGINT/SIGTERM.
//!
//! ```text
//! pd-fast-openai [--port 0] [--ttft-ms 20] [--interval-ms 10] [--tokens-per-chunk 1]
//!                [--tokens N] [--model fake] [--threads N]
//! ```

use std::time::Duration;

use pd_testkit::fast_openai::{FastServer, FastSpec};

fn parse() -> Result<(FastSpec, u16, usize), String> {
    let mut spec = FastSpec::default();
    let mut port = 0u16;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("pd-fast-openai [--port 0] [--ttft-ms 20] [--interval-ms 10] [--tokens-per-chunk 1] [--tokens N] [--model fake] [--threads N]");
            std::process::exit(0);
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let ms = |v: &str| -> Result<Duration, String> {
            let x: f64 = v.parse().map_err(|e| format!("{flag}: {e}"))?;
            if !(0.0..=3.6e6).contains(&x) {
                return Err(format!("{flag}: out of range"));
            }
            Ok(Duration::from_secs_f64(x / 1e3))
        };
        match flag.as_str() {
            "--port" => port = v.parse().map_err(|e| format!("--port: {e}"))?,
            "--ttft-ms" => spec.ttft = ms(&v)?,
            "--interval-ms" => spec.interval = ms(&v)?,
            "--tokens-per-chunk" => {
                spec.tokens_per_chunk = v.parse().map_err(|e| format!("{flag}: {e}"))?
            }
            "--tokens" => spec.tokens = Some(v.parse().map_err(|e| format!("{flag}: {e}"))?),
            "--model" => spec.model = v,
            "--threads" => threads = v.parse().map_err(|e| format!("{flag}: {e}"))?,
            other => return Err(format!("unknown flag {other} (see --help)")),
        }
    }
    Ok((spec, port, threads.max(1)))
}

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

fn main() {
    let (spec, port, threads) = match parse() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("pd-fast-openai: {e}");
            std::process::exit(2);
        }
    };
    raise_nofile();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pd-fast-openai: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async move {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let srv = match FastServer::start(addr, spec).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("pd-fast-openai: cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
        };
        println!("{}", srv.url());
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            eprintln!("pd-fast-openai: cannot install signal handlers");
            std::process::exit(1);
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        drop(srv);
    });
}
