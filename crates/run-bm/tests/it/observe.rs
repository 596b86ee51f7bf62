//! Runs one can trust and read: the server's metrics captured around each point, repeated
//! runs with Student-t intervals, and the sweep-level console (overall line with ETA, final
//! table, `--json`), against the scripted server.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{run_to_end_env, strs, ChildGuard};
use pd_common::repeats::recorded;
use pd_common::server_metrics::{read_metrics_csv, Phase};
use pd_common::BenchResult;
use pd_testkit::fake_openai::{
    FakeOptions, FakeServer, GenSpec, MetricsScript, Reply, RequestInfo, ServerStats,
};

const ITL: u64 = 8;
const OTL: u64 = 5;

/// A vLLM-like page from the fake's counters: every request received counts its ITL
/// prompt tokens; finished ones their OTL generated tokens; in-flight ones are running.
fn vllm_page(s: &ServerStats) -> String {
    let req = s.requests.load(Ordering::SeqCst);
    let running = s.in_flight.load(Ordering::SeqCst).max(0) as u64;
    let done = req - running.min(req);
    format!(
        "# TYPE vllm:num_requests_running gauge\n\
         vllm:num_requests_running{{engine=\"0\",model_name=\"fake\"}} {running}\n\
         vllm:num_requests_waiting{{engine=\"0\",model_name=\"fake\"}} 0\n\
         vllm:kv_cache_usage_perc{{engine=\"0\",model_name=\"fake\"}} {}\n\
         # TYPE vllm:prompt_tokens counter\n\
         vllm:prompt_tokens_total{{engine=\"0\",model_name=\"fake\"}} {}\n\
         vllm:generation_tokens_total{{engine=\"0\",model_name=\"fake\"}} {}\n\
         vllm:time_to_first_token_seconds_bucket{{engine=\"0\",le=\"+Inf\"}} {done}\n\
         process_cpu_seconds_total 1.5\n",
        running as f64 / 10.0,
        req * ITL,
        done * OTL
    )
}

async fn server(metrics: Option<MetricsScript>, keep_bodies: bool) -> FakeServer {
    let spec = GenSpec {
        ttft: Duration::from_millis(40),
        interval: Duration::from_millis(15),
        tokens: None,
        tokens_per_chunk: 1,
    };
    let mut opts = FakeOptions::new(
        "fake",
        Arc::new(move |_: &RequestInfo| Reply::Generate(spec)),
    );
    opts.keep_bodies = keep_bodies;
    opts.metrics = metrics;
    FakeServer::start_with("127.0.0.1:0".parse().unwrap(), opts)
        .await
        .unwrap()
}

/// The vLLM page for the first two scrapes (run-bm's probe and the `before` scrape), then
/// `then` for every later one.
fn after_two_pages(then: impl Fn(&ServerStats) -> Reply + Send + Sync + 'static) -> MetricsScript {
    let calls = Mutex::new(0u32);
    Arc::new(move |s: &ServerStats| {
        let mut n = calls.lock().unwrap();
        *n += 1;
        if *n <= 2 {
            Reply::Status {
                status: 200,
                body: vllm_page(s),
            }
        } else {
            then(s)
        }
    })
}

fn page_script() -> MetricsScript {
    Arc::new(|s: &ServerStats| Reply::Status {
        status: 200,
        body: vllm_page(s),
    })
}

fn args(url: &str, extra: &[&str]) -> Vec<String> {
    let mut a = strs(&[
        "-e",
        "obs",
        "--itl",
        "8",
        "--otl",
        "5",
        "-u",
        url,
        "-m",
        "fake",
        "--vocab-size",
        "1000",
    ]);
    a.extend(strs(extra));
    a
}

fn rdir(dir: &Path) -> PathBuf {
    dir.join("bm_results/fake_itl8_otl5_mixed_obs")
}

async fn run(dir: &Path, args: Vec<String>) -> (i32, String, String) {
    run_to_end_env(dir, args, vec![]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_metrics_are_captured_before_during_and_after_each_point() {
    let srv = server(Some(page_script()), false).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(
        dir.path(),
        args(&srv.url(), &["-c", "2,4", "--metrics-interval", "0.1"]),
    )
    .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("server metrics from http://127.0.0.1:"),
        "{err}"
    );
    assert!(out.contains("pd-lab: server: KV cache mean"), "{out}");
    for (c, n) in [(2u64, 10u64), (4, 20)] {
        let csv = rdir(dir.path()).join(format!("conc{c}.metrics.csv"));
        let text = std::fs::read_to_string(&csv).unwrap();
        assert!(
            text.starts_with("t_s,phase,metric,labels,value\n"),
            "{text}"
        );
        let rows = read_metrics_csv(&csv).unwrap();
        let phases: Vec<Phase> = rows.iter().map(|r| r.phase).collect();
        assert_eq!(phases.first(), Some(&Phase::Before));
        assert_eq!(phases.last(), Some(&Phase::After));
        assert!(phases.contains(&Phase::During), "{text}");
        // Times: before ≤ 0 < during < after, in order.
        assert!(rows[0].t_s <= 0.0);
        assert!(rows.windows(2).all(|w| w[0].t_s <= w[1].t_s));
        // vLLM's namespace only, no histogram buckets.
        assert!(rows.iter().all(|r| r.metric.starts_with("vllm:")));
        assert!(!text.contains("_bucket") && !text.contains("process_cpu"));
        assert!(rows
            .iter()
            .any(|r| r.labels == "engine=\"0\",model_name=\"fake\""));
        // The summary: counter deltas are exactly this point's requests.
        let r = BenchResult::read(&rdir(dir.path()).join(format!("conc{c}.json"))).unwrap();
        let sm = &r.pd_lab.as_ref().unwrap().other["server_metrics"];
        assert_eq!(sm["prompt_tokens"], n * ITL, "conc{c}: {sm}");
        assert_eq!(sm["generation_tokens"], n * OTL, "conc{c}: {sm}");
        assert_eq!(sm["file"], format!("conc{c}.metrics.csv"));
        assert_eq!(sm["scrapes"]["failed"], 0);
        assert!(sm["scrapes"]["during"].as_u64().unwrap() >= 1, "{sm}");
        let max_running = sm["num_requests_running_max"].as_f64().unwrap();
        assert!(
            (1.0..=c as f64).contains(&max_running),
            "conc{c}: {max_running}"
        );
        assert!(sm["kv_cache_usage_max"].as_f64().unwrap() <= c as f64 / 10.0 + 1e-9);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_or_no_flag_means_no_capture() {
    // A server without /metrics (like a Ray Serve ingress): run, say so, write nothing.
    let srv = server(None, false).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(dir.path(), args(&srv.url(), &["-c", "2"])).await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("server metrics not captured") && err.contains("HTTP 404"),
        "{err}"
    );
    assert!(!rdir(dir.path()).join("conc2.metrics.csv").exists());
    let r = BenchResult::read(&rdir(dir.path()).join("conc2.json")).unwrap();
    assert!(!r.pd_lab.unwrap().other.contains_key("server_metrics"));
    // A server with a page, and --no-server-metrics: not even asked.
    let calls = Arc::new(Mutex::new(0u32));
    let c2 = calls.clone();
    let srv = server(
        Some(Arc::new(move |s: &ServerStats| {
            *c2.lock().unwrap() += 1;
            Reply::Status {
                status: 200,
                body: vllm_page(s),
            }
        })),
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(
        dir.path(),
        args(&srv.url(), &["-c", "2", "--no-server-metrics"]),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(*calls.lock().unwrap(), 0);
    assert!(!rdir(dir.path()).join("conc2.metrics.csv").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_metrics_url_must_answer() {
    let srv = server(None, false).await;
    let closed = pd_testkit::net::free_port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{closed}");
    let (code, _, err) = run(
        dir.path(),
        args(&srv.url(), &["-c", "2", "--metrics-url", &url]),
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--metrics-url") && err.contains(&url), "{err}");
    assert_eq!(srv.stats.requests.load(Ordering::SeqCst), 0, "nothing sent");
    // Several agents (a Ray cluster's nodes): each scraped, samples told apart by
    // `instance`.
    let a = server(Some(page_script()), false).await;
    let b = server(Some(page_script()), false).await;
    let urls = format!("{},{}/metrics", a.url(), b.url());
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(
        dir.path(),
        args(&srv.url(), &["-c", "2", "--metrics-url", &urls]),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let rows = read_metrics_csv(&rdir(dir.path()).join("conc2.metrics.csv")).unwrap();
    for s in [&a, &b] {
        let inst = format!("instance=\"127.0.0.1:{}\"", s.addr.port());
        assert!(rows.iter().any(|r| r.labels.contains(&inst)), "{inst}");
    }
    // Nothing was sent to the agents' servers: their counters stayed at zero.
    let r = BenchResult::read(&rdir(dir.path()).join("conc2.json")).unwrap();
    assert_eq!(
        r.pd_lab.unwrap().other["server_metrics"]["prompt_tokens"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_metrics_page_never_stalls_the_measurement() {
    // The probe and the `before` scrape answer; then the page hangs.
    let srv = server(Some(after_two_pages(|_| Reply::Hang)), false).await;
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (code, out, err) = run(
        dir.path(),
        args(&srv.url(), &["-c", "2", "--metrics-interval", "0.1"]),
    )
    .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // The point itself is not slowed down (its duration) and the whole run waits at most
    // one scrape timeout (5 s) for the `after` scrape.
    let r = BenchResult::read(&rdir(dir.path()).join("conc2.json")).unwrap();
    assert!(r.duration < 3.0, "{}", r.duration);
    assert!(started.elapsed() < Duration::from_secs(30));
    let sm = &r.pd_lab.unwrap().other["server_metrics"];
    assert_eq!(sm["scrapes"]["before"], 1);
    assert!(sm["scrapes"]["failed"].as_u64().unwrap() >= 1, "{sm}");
    assert!(
        err.contains("server metrics:") && err.contains("failed"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_before_scrape_is_tried_again() {
    // The probe answers, the first `before` attempt fails (as a metrics agent's page that
    // timed out on a loaded machine), every later scrape answers.
    let calls = Mutex::new(0u32);
    let srv = server(
        Some(Arc::new(move |s: &ServerStats| {
            let mut n = calls.lock().unwrap();
            *n += 1;
            if *n == 2 {
                Reply::Status {
                    status: 503,
                    body: "busy".into(),
                }
            } else {
                Reply::Status {
                    status: 200,
                    body: vllm_page(s),
                }
            }
        })),
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(
        dir.path(),
        args(&srv.url(), &["-c", "2", "--metrics-interval", "0.1"]),
    )
    .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let r = BenchResult::read(&rdir(dir.path()).join("conc2.json")).unwrap();
    let sm = &r.pd_lab.unwrap().other["server_metrics"];
    assert_eq!(sm["scrapes"]["before"], 1, "{sm}");
    assert_eq!(sm["scrapes"]["failed"], 0, "{sm}");
    assert_eq!(sm["scrapes"]["retried"], 1, "{sm}");
    // The deltas are there and exact.
    assert_eq!(sm["prompt_tokens"], 10 * ITL, "{sm}");
    assert_eq!(sm["generation_tokens"], 10 * OTL, "{sm}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_exporter_is_waited_for() {
    // Like Ray's metrics agent: the page shows the counters as they were 1.5 s earlier.
    const LAG: Duration = Duration::from_millis(1500);
    let history: Arc<Mutex<Vec<(Instant, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let h2 = history.clone();
    let srv = server(
        Some(Arc::new(move |_: &ServerStats| {
            let h = h2.lock().unwrap();
            let now = Instant::now();
            let page = h
                .iter()
                .rev()
                .find(|(t, _)| now.duration_since(*t) >= LAG)
                .or(h.first())
                .map(|(_, p)| p.clone())
                .unwrap_or_default();
            Reply::Status {
                status: 200,
                body: page,
            }
        })),
        false,
    )
    .await;
    let stats = srv.stats.clone();
    let sampler = tokio::spawn(async move {
        loop {
            history
                .lock()
                .unwrap()
                .push((Instant::now(), vllm_page(&stats)));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    tokio::time::sleep(LAG + Duration::from_millis(100)).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(
        dir.path(),
        args(&srv.url(), &["-c", "2,3", "--warmup", "2", "-v"]),
    )
    .await;
    sampler.abort();
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for (c, n) in [(2u64, 10u64), (3, 15)] {
        let r = BenchResult::read(&rdir(dir.path()).join(format!("conc{c}.json"))).unwrap();
        let sm = &r.pd_lab.as_ref().unwrap().other["server_metrics"];
        // Exactly this point's requests: not the warmup's, not short of the last ones.
        assert_eq!(sm["prompt_tokens"], n * ITL, "conc{c}: {sm}");
        assert_eq!(sm["generation_tokens"], n * OTL, "conc{c}: {sm}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_an_exporter_has_not_published_yet_are_waited_for() {
    // Like Ray's metrics agent before its first report of a new engine: only vLLM's info
    // metric, then (1.5 s after the first request, longer than the point) the counters.
    const DELAY: Duration = Duration::from_millis(1500);
    let first: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let f2 = first.clone();
    let srv = server(
        Some(Arc::new(move |s: &ServerStats| {
            let mut f = f2.lock().unwrap();
            if f.is_none() && s.requests.load(Ordering::SeqCst) > 0 {
                *f = Some(Instant::now());
            }
            let body = match *f {
                Some(t) if t.elapsed() >= DELAY => vllm_page(s),
                _ => "# TYPE vllm:cache_config_info gauge\n\
                      vllm:cache_config_info{block_size=\"16\"} 1\n"
                    .to_string(),
            };
            Reply::Status { status: 200, body }
        })),
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let metrics = format!("{}/metrics", srv.url());
    let (code, out, err) = run(
        dir.path(),
        args(&srv.url(), &["-c", "2", "--metrics-url", &metrics]),
    )
    .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let r = BenchResult::read(&rdir(dir.path()).join("conc2.json")).unwrap();
    assert!(
        r.duration < DELAY.as_secs_f64(),
        "the point outlasted the delay"
    );
    let sm = &r.pd_lab.as_ref().unwrap().other["server_metrics"];
    // The counters appeared after the point: they count from 0, and cover its requests.
    let n = r.completed;
    assert!(
        sm["generation_tokens"].as_u64().unwrap_or(0) >= n * OTL,
        "{sm}"
    );
    assert!(sm["prompt_tokens"].as_u64().unwrap_or(0) >= n * ITL, "{sm}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_in_flight_when_a_short_point_ends_is_kept() {
    // After the probe and the `before` scrape, every page takes 1.5 s to arrive (a large
    // exporter page, a slow agent); the point is over well before the first during-scrape
    // (started 0.1 s in) completes.
    let srv = server(
        Some(after_two_pages(|s| Reply::Frames {
            frames: vec![(Duration::from_millis(1500), vllm_page(s).into())],
            then_break: false,
        })),
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(
        dir.path(),
        args(&srv.url(), &["-c", "2", "--metrics-interval", "0.2"]),
    )
    .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let r = BenchResult::read(&rdir(dir.path()).join("conc2.json")).unwrap();
    assert!(
        r.duration < 1.5,
        "the point outlasted the page delay: {}",
        r.duration
    );
    let sm = &r.pd_lab.as_ref().unwrap().other["server_metrics"];
    assert_eq!(sm["scrapes"]["during"], 1, "{sm}");
    assert_eq!(sm["scrapes"]["failed"], 0, "{sm}");
    let rows = read_metrics_csv(&rdir(dir.path()).join("conc2.metrics.csv")).unwrap();
    assert!(
        rows.iter().any(|r| r.phase == Phase::During),
        "no during row"
    );
}

/// Student t, 0.975 quantile, 2 degrees of freedom.
const T_975_2: f64 = 4.302_652_729_911_275;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_writes_each_run_and_an_aggregate_with_95_percent_intervals() {
    let srv = server(Some(page_script()), true).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(
        dir.path(),
        args(&srv.url(), &["-c", "2", "--repeat", "3", "--warmup", "1"]),
    )
    .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let d = rdir(dir.path());
    let runs: Vec<BenchResult> = (1..=3)
        .map(|k| {
            for suffix in ["requests.csv", "metrics.csv"] {
                assert!(
                    d.join(format!("conc2-{k}.{suffix}")).is_file(),
                    "{k} {suffix}"
                );
            }
            BenchResult::read(&d.join(format!("conc2-{k}.json"))).unwrap()
        })
        .collect();
    assert!(runs.iter().all(|r| r.completed == 10));
    // 3 × (1 warmup + 10) requests, each run with its own prompts.
    assert_eq!(srv.stats.requests.load(Ordering::SeqCst), 33);
    let bodies = srv.stats.bodies.lock().unwrap().clone();
    let prompts = |range: std::ops::Range<usize>| -> Vec<String> {
        bodies[range]
            .iter()
            .map(|b| b["prompt"].to_string())
            .collect()
    };
    let (first, second) = (prompts(1..11), prompts(12..22));
    assert!(
        first.iter().all(|p| !second.contains(p)),
        "run 2 resends run 1's prompts"
    );
    // The aggregate: means, and mean ± t(0.975, 2) · s / √3 computed here by hand.
    let agg = BenchResult::read(&d.join("conc2.json")).unwrap();
    assert!(!d.join("conc2.requests.csv").exists());
    let rec = recorded(&agg).expect("pd_lab.repeats");
    assert_eq!(rec.count, 3);
    assert_eq!(rec.files, ["conc2-1.json", "conc2-2.json", "conc2-3.json"]);
    let check = |key: &str, f: &dyn Fn(&BenchResult) -> f64| {
        let v: Vec<f64> = runs.iter().map(f).collect();
        let mean = (v[0] + v[1] + v[2]) / 3.0;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        let half = T_975_2 * sd / 3f64.sqrt();
        let (lo, hi) = rec.ci95[key];
        assert!(
            (lo - (mean - half)).abs() < 1e-9 * mean.abs().max(1.0),
            "{key} lo"
        );
        assert!(
            (hi - (mean + half)).abs() < 1e-9 * mean.abs().max(1.0),
            "{key} hi"
        );
        assert!((rec.std[key] - sd).abs() < 1e-9 * sd.max(1.0), "{key} sd");
        mean
    };
    let m = check("median_tpot_ms", &|r| r.median_tpot_ms().unwrap());
    assert!((agg.median_tpot_ms().unwrap() - m).abs() < 1e-9);
    let m = check("output_throughput", &|r| r.output_throughput);
    assert!((agg.output_throughput - m).abs() < 1e-9);
    check("p99_ttft_ms", &|r| r.stat("p99_ttft_ms").unwrap());
    // The table says so.
    assert!(out.contains("Sweep summary") && out.contains(" ±"), "{out}");

    // --resume redoes only the missing run and rewrites the aggregate.
    std::fs::remove_file(d.join("conc2-2.json")).unwrap();
    let (code, _, err) = run(
        dir.path(),
        args(&srv.url(), &["-c", "2", "--repeat", "3", "--resume"]),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(srv.stats.requests.load(Ordering::SeqCst), 33 + 10);
    assert!(err.contains("run 1/3 done, skipped (--resume)"), "{err}");
    let again = recorded(&BenchResult::read(&d.join("conc2.json")).unwrap()).unwrap();
    assert_eq!(again.count, 3);
    // Everything done: nothing sent.
    let (code, _, err) = run(
        dir.path(),
        args(&srv.url(), &["-c", "2", "--repeat", "3", "--resume"]),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(srv.stats.requests.load(Ordering::SeqCst), 43);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_summary_is_the_only_thing_on_stdout() {
    let srv = server(Some(page_script()), false).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(
        dir.path(),
        args(&srv.url(), &["-c", "2,3", "--repeat", "2", "--json"]),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("stdout is one JSON object");
    assert_eq!(v["tool"], "run-bm");
    assert_eq!(v["repeat"], 2);
    assert_eq!(v["interrupted"], false);
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[1]["point"], "conc3");
    assert_eq!(points[1]["runs"], 2);
    assert_eq!(points[1]["completed"], 15);
    assert_eq!(points[1]["run_files"][1], "conc3-2.json");
    assert!(points[0]["ci95"]["median_ttft_ms"].is_array());
    assert_eq!(points[0]["server_metrics"]["prompt_tokens"], 10 * ITL);
    // The human summaries went to stderr.
    assert!(err.contains("Serving Benchmark Result"), "{err}");
}

/// Run `argv` under a pseudo-terminal (`script`) and return what the terminal showed.
fn on_a_terminal(dir: &Path, argv: &[String]) -> Option<String> {
    let script = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let quote = |a: &str| format!("'{}'", a.replace('\'', "'\\''"));
    let cmd: Vec<String> = std::iter::once(crate::common::bin())
        .chain(argv.iter().cloned())
        .map(|a| quote(&a))
        .collect();
    let typescript = dir.join("typescript.txt");
    let mut c = std::process::Command::new(script);
    c.current_dir(dir)
        .env("PD_LAB_DEPLOYMENT", dir.join("no-record.toml"))
        .env("COLUMNS", "160")
        .env("TERM", "xterm")
        .args(["-q", "-e", "-c", &cmd.join(" ")])
        .arg(&typescript)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = ChildGuard::spawn(&mut c);
    let (status, _, _) = child.wait_timeout(Duration::from_secs(120));
    assert!(status.success(), "{status:?}");
    Some(String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_shows_the_sweep_line_with_eta_and_the_final_table() {
    let srv = server(Some(page_script()), false).await;
    let dir = tempfile::tempdir().unwrap();
    let argv = args(&srv.url(), &["-c", "2,3,4"]);
    let d = dir.path().to_path_buf();
    let Some(screen) = tokio::task::spawn_blocking(move || on_a_terminal(&d, &argv))
        .await
        .unwrap()
    else {
        eprintln!("skipped: no `script` command to provide a pseudo-terminal");
        return;
    };
    // The overall line, point by point; an ETA once a point has completed.
    for i in 1..=3 {
        assert!(screen.contains(&format!("sweep {i}/3 · conc")), "{screen}");
    }
    assert!(screen.contains("ETA after the first run"), "{screen}");
    let eta = regex_like_eta(&screen);
    assert!(eta, "no `ETA m:ss` on the sweep line:\n{screen}");
    // The point's bar (indicatif) and the final table.
    assert!(screen.contains("/20"), "{screen}");
    let table = screen
        .split("Sweep summary")
        .nth(1)
        .expect("the final table");
    for c in ["conc2", "conc3", "conc4"] {
        assert!(table.contains(c), "{table}");
    }
    assert!(table.contains("median TPOT ms"));
}

/// `ETA <m>:<ss>` somewhere in the text.
fn regex_like_eta(s: &str) -> bool {
    s.match_indices("ETA ").any(|(i, _)| {
        let rest = &s[i + 4..];
        let mut parts = rest.splitn(2, ':');
        let m = parts.next().unwrap_or("");
        let sec: String = parts.next().unwrap_or("").chars().take(2).collect();
        !m.is_empty()
            && m.chars().all(|c| c.is_ascii_digit())
            && sec.len() == 2
            && sec.chars().all(|c| c.is_ascii_digit())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_repeat_keeps_its_runs_and_resume_completes_it() {
    use std::sync::atomic::AtomicBool;
    // Run 1 (requests 0–9) is quick; run 2 is slow until `slow` is cleared.
    let slow = Arc::new(AtomicBool::new(true));
    let s2 = slow.clone();
    let quick = GenSpec {
        ttft: Duration::from_millis(5),
        interval: Duration::from_millis(1),
        tokens: None,
        tokens_per_chunk: 1,
    };
    let mut opts = FakeOptions::new(
        "fake",
        Arc::new(move |r: &RequestInfo| {
            if r.index >= 10 && s2.load(Ordering::SeqCst) {
                Reply::Generate(GenSpec {
                    interval: Duration::from_millis(200),
                    ..quick
                })
            } else {
                Reply::Generate(quick)
            }
        }),
    );
    opts.metrics = Some(page_script());
    let srv = FakeServer::start_with("127.0.0.1:0".parse().unwrap(), opts)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let argv = args(&srv.url(), &["-c", "2", "--repeat", "3", "--grace", "0.2"]);
    let (d, stats) = (dir.path().to_path_buf(), srv.stats.clone());
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let mut cmd =
            crate::common::run_bm(&d, &argv.iter().map(String::as_str).collect::<Vec<_>>());
        let mut child = ChildGuard::spawn(&mut cmd);
        let deadline = Instant::now() + Duration::from_secs(60);
        while stats.requests.load(Ordering::SeqCst) < 12 {
            assert!(Instant::now() < deadline, "run 2 never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        pd_testkit::process::signal(child.pid() as u32, libc::SIGTERM);
        let (status, out, err) = child.wait_timeout(Duration::from_secs(60));
        (status.code().unwrap_or(-1), out, err)
    })
    .await
    .unwrap();
    assert_eq!(code, 143, "stdout:\n{out}\nstderr:\n{err}");
    let d = rdir(dir.path());
    assert!(
        !BenchResult::read(&d.join("conc2-1.json"))
            .unwrap()
            .interrupted
    );
    assert!(
        BenchResult::read(&d.join("conc2-2.json"))
            .unwrap()
            .interrupted
    );
    assert!(!d.join("conc2-3.json").exists());
    assert!(
        !d.join("conc2.json").exists(),
        "no aggregate of an interrupted point"
    );
    assert!(out.contains("conc2-2 (interrupted)"), "{out}");
    // --resume keeps run 1, redoes run 2, runs 3, writes the aggregate.
    slow.store(false, Ordering::SeqCst);
    let before = srv.stats.requests.load(Ordering::SeqCst);
    let (code, _, err) = run(
        dir.path(),
        args(&srv.url(), &["-c", "2", "--repeat", "3", "--resume"]),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(srv.stats.requests.load(Ordering::SeqCst) - before, 20);
    assert!(
        err.contains("run 2/3 run again (--resume): it was interrupted"),
        "{err}"
    );
    let agg = BenchResult::read(&d.join("conc2.json")).unwrap();
    assert_eq!(recorded(&agg).unwrap().count, 3);
    assert!(!agg.interrupted);
}
