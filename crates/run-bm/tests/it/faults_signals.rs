//! Fault matrix, interruptions: SIGINT, SIGTERM and SIGHUP write the running point marked
//! interrupted and exit 130/143/129; `--resume` runs interrupted and entirely failed points
//! again; a server killed mid-sweep gives failed requests and a non-zero exit; a closed
//! stdout (`run-bm | head`) neither panics nor stops the sweep.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pd_common::{BenchResult, ExperimentManifest};
use pd_testkit::fake_openai::{FakeOptions, FakeServer, RequestInfo};

use crate::faults_common::*;

/// A server whose streams are long while `slow` is set.
async fn switchable(slow: Arc<AtomicBool>) -> FakeServer {
    server(Arc::new(move |_: &RequestInfo| {
        if slow.load(Ordering::SeqCst) {
            gen(5, 100)
        } else {
            gen(2, 1)
        }
    }))
    .await
}

async fn interrupt_with(sig: i32, code: i32, close_stderr: bool) {
    let slow = Arc::new(AtomicBool::new(true));
    let srv = switchable(slow.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let exp = format!("sig{sig}");
    let mut args = base(&srv.url(), &exp);
    args.extend(strings(&["-c", "2", "--otl", "1000", "--grace", "0.2"]));
    let d = dir.path().to_path_buf();
    let stats = srv.stats.clone();
    let r = tokio::task::spawn_blocking(move || {
        let mut cmd = run_bm(&d, &args.iter().map(String::as_str).collect::<Vec<_>>());
        let mut child = ChildGuard::spawn(&mut cmd);
        if close_stderr {
            // The terminal went away: writing to stderr now fails (EPIPE).
            drop(child.0.as_mut().unwrap().stderr.take());
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while stats.requests.load(Ordering::SeqCst) < 2 {
            child.assert_running();
            assert!(Instant::now() < deadline, "no request reached the server");
            std::thread::sleep(ms(20));
        }
        std::thread::sleep(ms(300));
        pd_testkit::process::signal(child.pid() as u32, sig);
        let (status, out, err) = child.wait_timeout(Duration::from_secs(60));
        Ran {
            code: status.code().unwrap_or(-1),
            out,
            err,
        }
    })
    .await
    .unwrap();
    assert_eq!(r.code, code, "{r}");
    let d = dir
        .path()
        .join(format!("bm_results/fake_itl8_otl1000_mixed_{exp}"));
    let res = BenchResult::read(&d.join("conc2.json")).unwrap();
    assert!(res.interrupted, "partial point marked interrupted");
    assert_eq!(res.completed, 0);
    let m = ExperimentManifest::read(&d.join("manifest.json")).unwrap();
    assert!(m.points[0].interrupted);
    if !close_stderr {
        assert!(r.err.contains("interrupted by"), "{r}");
        assert!(r.err.contains("partial point written"), "{r}");
    }

    // --resume runs the interrupted point again (now quick) and keeps the old one.
    slow.store(false, Ordering::SeqCst);
    let mut again = base(&srv.url(), &exp);
    again.extend(strings(&["-c", "2", "--otl", "1000", "--resume"]));
    let r = run_to_end(dir.path(), again).await;
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.err.contains("run again (--resume): it was interrupted"),
        "{r}"
    );
    let res = BenchResult::read(&d.join("conc2.json")).unwrap();
    assert!(!res.interrupted);
    assert_eq!(res.completed, 10);
    let kept: Vec<_> = all_files(&d)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/.replaced-") && p.ends_with("conc2.json"))
        .collect();
    assert_eq!(
        kept.len(),
        1,
        "the interrupted point is kept: {:?}",
        all_files(&d)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_writes_the_partial_point_and_exits_130() {
    interrupt_with(libc::SIGINT, 130, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_writes_the_partial_point_and_exits_143() {
    interrupt_with(libc::SIGTERM, 143, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_without_a_terminal_writes_the_partial_point_and_exits_129() {
    interrupt_with(libc::SIGHUP, 129, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_mid_sweep_fails_requests_and_resume_redoes_the_dead_point() {
    let srv = server(Arc::new(|_: &RequestInfo| gen(5, 20))).await;
    let addr = srv.addr;
    let dir = tempfile::tempdir().unwrap();
    let mut args = base(&srv.url(), "kill");
    args.extend(strings(&[
        "-c",
        "2,4",
        "--otl",
        "40",
        "--num-prompts",
        "10",
    ]));
    let d = dir.path().to_path_buf();
    let stats = srv.stats.clone();
    let a = args.clone();
    let (r, srv) = tokio::task::spawn_blocking(move || {
        let mut child = ChildGuard::spawn(&mut run_bm(
            &d,
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
        ));
        let deadline = Instant::now() + Duration::from_secs(60);
        while stats.requests.load(Ordering::SeqCst) < 5 {
            child.assert_running();
            assert!(
                Instant::now() < deadline,
                "requests never reached the server"
            );
            std::thread::sleep(ms(10));
        }
        srv.kill();
        let (status, out, err) = child.wait_timeout(Duration::from_secs(90));
        (
            Ran {
                code: status.code().unwrap_or(-1),
                out,
                err,
            },
            srv,
        )
    })
    .await
    .unwrap();
    drop(srv);
    // conc2 lost its later requests, conc4 found no server at all.
    assert_eq!(r.code, 1, "a point where no request succeeded: {r}");
    assert!(r.err.contains("no request succeeded in: conc4.json"), "{r}");
    assert!(r.out.contains("requests failed: transport"), "{r}");
    let d = dir.path().join("bm_results/fake_itl8_otl40_mixed_kill");
    let c2 = BenchResult::read(&d.join("conc2.json")).unwrap();
    assert!(c2.completed >= 1 && c2.failed.unwrap() >= 1, "{c2:?}");
    let c4 = BenchResult::read(&d.join("conc4.json")).unwrap();
    assert_eq!(c4.completed, 0);

    // The server is back: --resume keeps conc2 (it has results) and redoes conc4.
    let back = FakeServer::start_with(
        addr,
        FakeOptions::new("fake", Arc::new(|_: &RequestInfo| gen(2, 1))),
    )
    .await
    .unwrap();
    let before = std::fs::read(d.join("conc2.json")).unwrap();
    let mut again = args.clone();
    again.push("--resume".into());
    let r = run_to_end(dir.path(), again).await;
    assert_eq!(r.code, 0, "{r}");
    assert!(r.err.contains("[conc2] done, skipped (--resume)"), "{r}");
    assert!(
        r.err
            .contains("[conc4] run again (--resume): no request of it succeeded"),
        "{r}"
    );
    assert_eq!(std::fs::read(d.join("conc2.json")).unwrap(), before);
    let c4 = BenchResult::read(&d.join("conc4.json")).unwrap();
    assert_eq!(c4.completed, 10);
    drop(back);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_neither_panics_nor_stops_the_sweep() {
    let srv = server(Arc::new(|_: &RequestInfo| gen(2, 1))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = base(&srv.url(), "pipe");
    args.extend(strings(&["-c", "1,2,3"]));
    let d = dir.path().to_path_buf();
    let r = tokio::task::spawn_blocking(move || {
        let mut child = ChildGuard::spawn(&mut run_bm(
            &d,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        ));
        // `run-bm | head -0`: the reader is gone before anything is printed.
        drop(child.0.as_mut().unwrap().stdout.take());
        let (status, out, err) = child.wait_timeout(Duration::from_secs(90));
        Ran {
            code: status.code().unwrap_or(-1),
            out,
            err,
        }
    })
    .await
    .unwrap();
    assert_eq!(r.code, 0, "{r}");
    assert!(!r.err.contains("panicked"), "{r}");
    for c in [1, 2, 3] {
        assert!(rdir(dir.path(), "pipe")
            .join(format!("conc{c}.json"))
            .exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_while_waiting_for_the_server_ends_the_run_at_once() {
    // Nothing listens on the port: run-bm waits up to 600 s for it to answer.
    let port = pd_testkit::net::free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut args = base(&format!("http://127.0.0.1:{port}"), "wait");
    args.extend(strings(&["-c", "1", "--ready-check-timeout-sec", "600"]));
    let d = dir.path().to_path_buf();
    let (r, waited) = tokio::task::spawn_blocking(move || {
        let mut cmd = run_bm(&d, &args.iter().map(String::as_str).collect::<Vec<_>>());
        let mut child = ChildGuard::spawn(&mut cmd);
        std::thread::sleep(ms(1500));
        child.assert_running();
        let t = Instant::now();
        pd_testkit::process::signal(child.pid() as u32, libc::SIGTERM);
        let (status, out, err) = child.wait_timeout(Duration::from_secs(60));
        (
            Ran {
                code: status.code().unwrap_or(-1),
                out,
                err,
            },
            t.elapsed(),
        )
    })
    .await
    .unwrap();
    assert_eq!(r.code, 143, "{r}");
    assert!(r.err.contains("waiting up to 600 s"), "{r}");
    assert!(
        waited < Duration::from_secs(20),
        "took {waited:?} after SIGTERM"
    );
    // No point was run: no result file.
    let d = rdir(dir.path(), "wait");
    assert!(!d.join("conc1.json").exists());
}
