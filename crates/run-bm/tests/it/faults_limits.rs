//! Fault matrix, limits and trust: the open-file limit is raised, a point that cannot fit
//! is refused (exit 2, nothing sent) and running out of descriptors never loses a point's
//! files; absurd flag values are usage errors; a stale or foreign deployment record is
//! refused before sending; errors print each cause once; the endpoint chosen by default is
//! announced.

use std::os::unix::process::CommandExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use pd_common::deployment::{DeploymentSpec, ServingBackend, StopHandle};
use pd_common::BenchResult;
use pd_testkit::fake_openai::RequestInfo;
use pd_testkit::fake_ray::{app, deployment, serve_state, FakeRay};

use crate::faults_common::*;

/// run-bm with RLIMIT_NOFILE set to (soft, hard) in the child.
fn with_nofile(mut cmd: std::process::Command, soft: u64, hard: u64) -> std::process::Command {
    // SAFETY: only async-signal-safe setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: soft as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

fn cmd(dir: &std::path::Path, args: &[String]) -> std::process::Command {
    run_bm(dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_above_the_fd_limit_is_refused_before_sending() {
    let srv = server(Arc::new(|_: &RequestInfo| gen(2, 1))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = base(&srv.url(), "fd");
    args.extend(strings(&["-c", "200"]));
    let r = run_cmd_to_end(with_nofile(cmd(dir.path(), &args), 64, 64)).await;
    assert_eq!(r.code, 2, "{r}");
    assert!(r.err.contains("the open-file limit is 64"), "{r}");
    assert!(r.err.contains("conc200.json"), "{r}");
    assert!(r.err.contains("ulimit -n"), "{r}");
    assert_eq!(srv.stats.requests.load(Ordering::SeqCst), 0);
    assert!(!dir.path().join("bm_results").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_fd_limit_is_raised_to_the_hard_one() {
    let srv = server(Arc::new(|_: &RequestInfo| gen(200, 2))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = base(&srv.url(), "fdup");
    args.extend(strings(&["-c", "200", "--num-prompts", "200"]));
    let r = run_cmd_to_end(with_nofile(cmd(dir.path(), &args), 64, 4096)).await;
    assert_eq!(r.code, 0, "{r}");
    let res = BenchResult::read(&rdir(dir.path(), "fdup").join("conc200.json")).unwrap();
    assert_eq!(res.completed, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_fds_fails_requests_never_the_point_files() {
    // An uncapped rate point: every request is in flight at once, far more than the limit.
    let srv = server(Arc::new(|_: &RequestInfo| gen(1500, 5))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = base(&srv.url(), "emfile");
    args.extend(strings(&[
        "-t",
        "request-rate",
        "-r",
        "inf",
        "--num-prompts",
        "300",
    ]));
    let r = run_cmd_to_end(with_nofile(cmd(dir.path(), &args), 128, 128)).await;
    assert_eq!(
        r.code, 3,
        "some requests failed, the point was written: {r}"
    );
    assert!(r.err.contains("Too many open files"), "{r}");
    assert!(r.out.contains("requests failed: transport"), "{r}");
    let d = rdir(dir.path(), "emfile");
    let res = BenchResult::read(&d.join("rrinf.json")).unwrap();
    assert!(res.completed > 0 && res.failed.unwrap() > 0, "{res:?}");
    assert!(d.join("rrinf.requests.csv").exists());
    assert!(d.join("manifest.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_values_are_usage_errors_before_anything_is_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let port = pd_testkit::net::free_port();
    let url = format!("http://127.0.0.1:{port}");
    for extra in [
        &["--timeout", "1e300"][..],
        &["--grace", "1e300"],
        &["--stall-timeout", "1e300"],
        &["--ready-check-timeout-sec", "99999999999"],
        &["--num-prompts", "10000000000000"],
        &["-c", "1000000"],
        &["--max-concurrency", "100000000"],
        &["--warmup", "10000000000000"],
        &["-u", "http://h:99999"],
    ] {
        let mut args = strings(&["-u", &url, "--no-progress"]);
        args.extend(strings(extra));
        let t = Instant::now();
        let r = run_to_end(dir.path(), args).await;
        assert_eq!(r.code, 2, "{extra:?}: {r}");
        assert!(!r.err.contains("panicked"), "{extra:?}: {r}");
        assert!(
            t.elapsed().as_secs() < 30,
            "{extra:?} took {:?}",
            t.elapsed()
        );
    }
    let r = run_to_end(dir.path(), strings(&["-u", "http://h:99999"])).await;
    assert!(r.err.contains("port '99999' is not in 1–65535"), "{r}");
    assert!(!dir.path().join("bm_results").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_causes_are_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_to_end(
        dir.path(),
        strings(&["--deployment-file", "/nonexistent/dep.toml"]),
    )
    .await;
    assert_eq!(
        r.code, 2,
        "a record that cannot be read: nothing was run: {r}"
    );
    assert_eq!(r.err.matches("No such file or directory").count(), 1, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_record_the_default_endpoint_is_announced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "x").unwrap();
    // Nothing is sent: the result directory is unusable (checked before any request).
    let r = run_to_end(dir.path(), strings(&["--result-dir", "file/x"])).await;
    assert_eq!(r.code, 1, "{r}");
    assert!(r.err.contains("no deployment record"), "{r}");
    assert!(
        r.err
            .contains("benchmarking http://127.0.0.1:8000, the default URL"),
        "{r}"
    );
}

async fn expect_stale(
    record: pd_common::DeploymentRecord,
    srv_requests: impl Fn() -> u64,
    why: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("dep.toml");
    record.write(&rec).unwrap();
    let r = run_to_end(
        dir.path(),
        strings(&[
            "--deployment-file",
            rec.to_str().unwrap(),
            "--itl",
            "8",
            "--otl",
            "4",
            "--vocab-size",
            "100",
            "-c",
            "2",
            "--no-progress",
        ]),
    )
    .await;
    assert_eq!(r.code, 1, "{r}");
    assert!(r.err.contains("does not describe the server at"), "{r}");
    assert!(r.err.contains(why), "{why}: {r}");
    assert!(r.err.contains("--no-deployment"), "{r}");
    assert_eq!(srv_requests(), 0, "nothing sent");
    assert!(!dir.path().join("bm_results").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_or_foreign_deployment_records_are_refused() {
    // A 4xtp2 record whose simulator died; a 1xtp2 simulator now answers on its port.
    let sim1 = sim_like("1xtp2").await;
    let s = sim1.stats.clone();
    let n = move || s.requests.load(Ordering::SeqCst);
    expect_stale(
        sim_record(&sim1.url(), 4, 2, dead_pid()),
        n.clone(),
        "is not running",
    )
    .await;
    // The process is alive but the port serves another deployment.
    expect_stale(
        sim_record(&sim1.url(), 4, 2, std::process::id()),
        n.clone(),
        "serves deployment 1xtp2, the record says 4xtp2",
    )
    .await;
    // Not the simulator at all.
    let plain = server(Arc::new(|_: &RequestInfo| gen(2, 1))).await;
    let s = plain.stats.clone();
    expect_stale(
        sim_record(&plain.url(), 1, 2, std::process::id()),
        move || s.requests.load(Ordering::SeqCst),
        "is not the simulator",
    )
    .await;
    // A Ray record whose application is gone from Ray Serve.
    let ray = FakeRay::start(
        "2.60.0",
        serde_json::json!({}),
        serve_state(vec![pd_testkit::fake_ray::hello_app()]),
        vec![],
        None,
    );
    let s = plain.stats.clone();
    let rec = record(
        &plain.url(),
        DeploymentSpec::pd(pd_common::PdPlacement::Pack, reps(1, 2), reps(2, 2)),
        ServingBackend::Ray,
        StopHandle::Ray {
            address: ray.url(),
            app_name: "pd".into(),
        },
    );
    expect_stale(
        rec,
        move || s.requests.load(Ordering::SeqCst),
        "has no application 'pd' (it has: hello)",
    )
    .await;
    // A Ray record pointing at the simulator.
    let s = sim1.stats.clone();
    let rec = record(
        &sim1.url(),
        DeploymentSpec::collocated(1, 2),
        ServingBackend::Ray,
        StopHandle::Ray {
            address: ray.url(),
            app_name: "hello".into(),
        },
    );
    expect_stale(
        rec,
        move || s.requests.load(Ordering::SeqCst),
        "is the pd-lab simulator",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_ray_record_labels_the_results() {
    let plain = server(Arc::new(|_: &RequestInfo| gen(2, 1))).await;
    let ray = FakeRay::start(
        "2.60.0",
        serde_json::json!({}),
        serve_state(vec![app(
            "pd",
            "/",
            "RUNNING",
            "",
            vec![deployment("LLMServer", "HEALTHY", "", "", 1, &["RUNNING"])],
        )]),
        vec![],
        None,
    );
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("dep.toml");
    record(
        &plain.url(),
        DeploymentSpec::pd(pd_common::PdPlacement::Pack, reps(1, 2), reps(2, 2)),
        ServingBackend::Ray,
        StopHandle::Ray {
            address: ray.url(),
            app_name: "pd".into(),
        },
    )
    .write(&rec)
    .unwrap();
    let r = run_to_end(
        dir.path(),
        strings(&[
            "--deployment-file",
            rec.to_str().unwrap(),
            "--itl",
            "8",
            "--otl",
            "4",
            "--vocab-size",
            "100",
            "-c",
            "2",
            "-e",
            "ray",
            "--no-progress",
        ]),
    )
    .await;
    assert_eq!(r.code, 0, "{r}");
    let res = BenchResult::read(&rdir(dir.path(), "ray").join("conc2.json")).unwrap();
    assert_eq!(
        res.pd_lab.unwrap().deployment_label.as_deref(),
        Some("p1xtp2-d2xtp2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_records_of_https_endpoints_are_checked_too() {
    // The simulator behind TLS: the record's https URL is checked through the run's
    // client (with its --ca-cert) before anything is sent.
    let sim = sim_like("1xtp2").await;
    let front = pd_testkit::tls::TlsFront::start(sim.addr).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &front.cert.cert_pem).unwrap();
    let rec = dir.path().join("dep.toml");
    let run = |exp: &str| {
        run_to_end(
            dir.path(),
            strings(&[
                "--deployment-file",
                rec.to_str().unwrap(),
                "--ca-cert",
                ca.to_str().unwrap(),
                "--itl",
                "8",
                "--otl",
                "4",
                "--vocab-size",
                "100",
                "-c",
                "2",
                "-e",
                exp,
                "--no-progress",
            ]),
        )
    };
    // Another deployment answers there: refused, nothing sent.
    sim_record(&front.url(), 4, 2, std::process::id())
        .write(&rec)
        .unwrap();
    let r = run("stale").await;
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.err
            .contains("serves deployment 1xtp2, the record says 4xtp2"),
        "{r}"
    );
    assert_eq!(sim.stats.requests.load(Ordering::SeqCst), 0, "nothing sent");
    // The record is true: the run is labelled with it.
    sim_record(&front.url(), 1, 2, std::process::id())
        .write(&rec)
        .unwrap();
    let r = run("live").await;
    assert_eq!(r.code, 0, "{r}");
    let res = BenchResult::read(&rdir(dir.path(), "live").join("conc2.json")).unwrap();
    let x = res.pd_lab.unwrap();
    assert_eq!(x.deployment_label.as_deref(), Some("1xtp2"));
    assert_eq!(
        x.other["base_url"].as_str(),
        Some(front.url().as_str()),
        "the https endpoint of the record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_for_another_endpoint_than_the_flags_name_is_ignored() {
    let sim = sim_like("1xtp2").await;
    let other = server(Arc::new(|_: &RequestInfo| gen(2, 1))).await;
    let dir = tempfile::tempdir().unwrap();
    // The record at the default path (run_bm points $PD_LAB_DEPLOYMENT there).
    sim_record(&sim.url(), 1, 2, std::process::id())
        .write(&dir.path().join("no-record.toml"))
        .unwrap();
    let port = sim.addr.port().to_string();
    let label_of = |exp: &str| {
        BenchResult::read(&rdir(dir.path(), exp).join("conc2.json"))
            .unwrap()
            .pd_lab
            .unwrap()
            .deployment_label
    };
    let common = ["--itl", "8", "--otl", "4", "--vocab-size", "100", "-c", "2"];
    // The record's endpoint, however it is named: its labels are used.
    let localhost = format!("http://localhost:{port}");
    for (exp, endpoint) in [
        ("alias", vec!["-u", localhost.as_str()]),
        (
            "hostport",
            vec!["--host", "127.0.0.1", "--port", port.as_str()],
        ),
    ] {
        let mut args = strings(&endpoint);
        args.extend(strings(&common));
        args.extend(strings(&["-e", exp, "--no-progress"]));
        let r = run_to_end(dir.path(), args).await;
        assert_eq!(r.code, 0, "{exp}: {r}");
        assert_eq!(label_of(exp).as_deref(), Some("1xtp2"), "{exp}");
    }
    // Another endpoint: the record would label it wrongly, so it is ignored.
    let mut args = strings(&["-u", &other.url(), "-m", "fake"]);
    args.extend(strings(&common));
    args.extend(strings(&["-e", "other", "--no-progress"]));
    let r = run_to_end(dir.path(), args).await;
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.err
            .contains("is not the endpoint of the deployment record"),
        "{r}"
    );
    assert_eq!(label_of("other"), None);
}
