//! launch-gptoss under faults (the reliability matrix, launch side): racing launches,
//! records pointing at processes that are not ours, a daemon that must not keep what it
//! inherited, a planted symlink at the log path, a non-loopback host, error causes printed
//! once, a closed stdout, signals while waiting.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use pd_common::{DeploymentRecord, StopHandle};
use predicates::str::contains;

use crate::sim_common::{
    blocking_get_full, free_port, pid_alive, wait_until, KillOnDrop, RecordGuard,
};

fn exe() -> PathBuf {
    assert_cmd::cargo::cargo_bin("launch-gptoss")
}

fn cmd(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("launch-gptoss").unwrap();
    c.current_dir(dir)
        .env_remove("PD_LAB_DEPLOYMENT")
        .env_remove("PD_LAB_BACKEND")
        .env_remove("UCX_TLS")
        .timeout(Duration::from_secs(60));
    c
}

fn sim_launch(dir: &Path, port: u16, record: &Path) -> Command {
    let mut c = cmd(dir);
    c.args(["--backend", "sim", "--mode", "collocated", "--port"])
        .arg(port.to_string())
        .arg("--deployment-file")
        .arg(record);
    c
}

fn record_pid(record: &Path) -> u32 {
    match DeploymentRecord::read(record).unwrap().stop {
        StopHandle::Pid { pid } => pid,
        other => panic!("{other:?}"),
    }
}

/// Stop whatever a record names (test teardown), by the tool itself.
fn shutdown(dir: &Path, record: &Path) {
    let _ = cmd(dir)
        .args(["-q", "shutdown", "--deployment-file"])
        .arg(record)
        .output();
}

/// No error line repeats one of its causes (": cause: … : cause").
fn assert_causes_once(stderr: &str) {
    for line in stderr.lines().filter(|l| l.contains("error:")) {
        let parts: Vec<&str> = line.split(": ").map(str::trim).collect();
        for (i, p) in parts.iter().enumerate() {
            if p.len() >= 12 {
                assert!(
                    !parts[i + 1..].contains(p),
                    "cause '{p}' printed twice in: {line}"
                );
            }
        }
    }
}

#[test]
fn racing_launches_on_one_port_never_both_report_ready() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let port = free_port();
        let records: Vec<PathBuf> = (0..4)
            .map(|i| dir.path().join(format!("r{round}-{i}.toml")))
            .collect();
        let _guards: Vec<RecordGuard> = records.iter().map(|r| RecordGuard(r)).collect();
        let children: Vec<_> = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                StdCommand::new(exe())
                    .current_dir(dir.path())
                    .env_remove("PD_LAB_DEPLOYMENT")
                    .args(["--backend", "sim", "--mode", "collocated", "--num"])
                    .arg((i + 1).to_string())
                    .args(["--port", &port.to_string(), "--deployment-file"])
                    .arg(r)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outcomes: Vec<(bool, String)> = children
            .into_iter()
            .map(|c| {
                let o = c.wait_with_output().unwrap();
                (
                    o.status.success(),
                    String::from_utf8_lossy(&o.stderr).into_owned(),
                )
            })
            .collect();
        let ready: Vec<usize> = (0..4).filter(|i| outcomes[*i].0).collect();
        assert_eq!(
            ready.len(),
            1,
            "round {round}: exactly one launch wins: {outcomes:?}"
        );
        for (i, (ok, err)) in outcomes.iter().enumerate() {
            if !ok {
                assert!(err.contains("already in use"), "launch {i}: {err}");
                assert!(!records[i].exists(), "a loser wrote its record");
            }
        }
        // The winner's record names the process that answers on the port.
        let winner = &records[ready[0]];
        let pid = record_pid(winner);
        let rec = DeploymentRecord::read(winner).unwrap();
        let r = blocking_get_full(&rec.base_url, "/version");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["pid"], pid, "round {round}");
        assert_eq!(rec.label, format!("{}xtp2", ready[0] + 1));
        shutdown(dir.path(), winner);
    }
}

#[test]
fn shutdown_leaves_a_planted_process_alone() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("dep.toml");
    let _guard = RecordGuard(&rec);
    sim_launch(dir.path(), free_port(), &rec).assert().success();
    let sim_pid = record_pid(&rec);
    let _kill_sim = KillOnDrop(Some(sim_pid));
    // An unrelated process whose command line says "serve-sim" and "--foreground".
    let mut planted = StdCommand::new("sh")
        .args(["-c", "sleep 60; true", "serve-sim", "--foreground"])
        .spawn()
        .unwrap();
    let _kill_planted = KillOnDrop(Some(planted.id()));
    let mut r = DeploymentRecord::read(&rec).unwrap();
    r.stop = StopHandle::Pid { pid: planted.id() };
    r.write(&rec).unwrap();
    cmd(dir.path())
        .args(["shutdown", "--deployment-file"])
        .arg(&rec)
        .assert()
        .success()
        .stderr(contains(
            "is not the launch-gptoss simulator this record describes",
        ))
        .stderr(contains("left alone"));
    assert!(
        pid_alive(planted.id()),
        "an unrelated process was signalled"
    );
    assert!(!rec.exists(), "the stale record goes");
    planted.kill().unwrap();
    planted.wait().unwrap();

    // Our own simulator, but the record was written before it started: a reused pid.
    let mut r2 = DeploymentRecord::read_optional(&rec)
        .unwrap()
        .unwrap_or(r.clone());
    r2.stop = StopHandle::Pid { pid: sim_pid };
    r2.created_at = "2001-01-01T00:00:00+00:00".into();
    r2.write(&rec).unwrap();
    cmd(dir.path())
        .args(["shutdown", "--deployment-file"])
        .arg(&rec)
        .assert()
        .success()
        .stderr(contains("started after the record was written"));
    assert!(
        pid_alive(sim_pid),
        "a simulator of another record was stopped"
    );
    // Its own record (rewritten by hand here) still stops it.
    let mut own = r2.clone();
    own.created_at = pd_common::deployment::now_rfc3339();
    own.write(&rec).unwrap();
    cmd(dir.path())
        .args(["shutdown", "--deployment-file"])
        .arg(&rec)
        .assert()
        .success()
        .stderr(contains("stopped simulator pid"));
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(sim_pid)));
}

#[test]
fn shutdown_never_signals_another_users_process() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to start a process as another user");
        return;
    }
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("dep.toml");
    // Another user's process that looks like a simulator to a command-line check.
    let mut theirs = StdCommand::new("sh");
    theirs
        .args(["-c", "sleep 60; true", "serve-sim", "--foreground"])
        .uid(65534)
        .gid(65534);
    let mut theirs = theirs.spawn().unwrap();
    let _kill = KillOnDrop(Some(theirs.id()));
    let mut r = crate::sim_process::stale_record(theirs.id());
    r.created_at = pd_common::deployment::now_rfc3339();
    r.write(&rec).unwrap();
    cmd(dir.path())
        .args(["shutdown", "--deployment-file"])
        .arg(&rec)
        .assert()
        .code(1)
        .stderr(contains("a process of user 65534 (not us)"))
        .stderr(contains("the record is kept"));
    assert!(
        pid_alive(theirs.id()),
        "another user's process was signalled"
    );
    assert!(rec.exists(), "the record is kept");
    cmd(dir.path())
        .args(["status", "--deployment-file"])
        .arg(&rec)
        .assert()
        .code(1)
        .stdout(contains("belongs to user 65534"));
    theirs.kill().unwrap();
    theirs.wait().unwrap();
}

#[test]
fn the_daemon_keeps_nothing_it_inherited() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("dep.toml");
    let _guard = RecordGuard(&rec);
    let lock = dir.path().join("L");
    let marker = dir.path().join("marker");
    // `flock L launch-gptoss …` with an extra inherited descriptor (fd 9).
    let status = StdCommand::new("sh")
        .current_dir(dir.path())
        .env_remove("PD_LAB_DEPLOYMENT")
        .arg("-c")
        .arg(format!(
            "exec 9>'{}'; exec flock '{}' '{}' --backend sim --mode collocated --port {} --deployment-file '{}' >/dev/null",
            marker.display(),
            lock.display(),
            exe().display(),
            free_port(),
            rec.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let pid = record_pid(&rec);
    let _kill = KillOnDrop(Some(pid));
    let free = StdCommand::new("flock")
        .args(["-n"])
        .arg(&lock)
        .arg("true")
        .status()
        .unwrap();
    assert!(free.success(), "the daemon still holds the caller's flock");
    let fds: Vec<(String, PathBuf)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_link(e.path()).ok()?,
            ))
        })
        .collect();
    for (fd, target) in &fds {
        assert_ne!(target, &marker, "fd {fd} inherited");
        assert_ne!(target, &lock, "fd {fd} inherited");
    }
    assert!(
        fds.iter()
            .any(|(fd, t)| fd == "0" && t == Path::new("/dev/null")),
        "stdin is /dev/null: {fds:?}"
    );
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert_eq!(
        cwd,
        Path::new("/"),
        "the daemon does not hold the caller's directory"
    );
    // Own session: no controlling terminal, session id = its pid.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let sid: u32 = after.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(sid, pid);
    shutdown(dir.path(), &rec);
}

#[test]
fn launch_piped_into_cat_returns() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("dep.toml");
    let _guard = RecordGuard(&rec);
    // The shell keeps a second copy of the pipe (fd 7), as shells and wrappers often do.
    let mut child = StdCommand::new("sh")
        .current_dir(dir.path())
        .env_remove("PD_LAB_DEPLOYMENT")
        .arg("-c")
        .arg(format!(
            "exec 7>&1; exec '{}' --backend sim --mode collocated --port {} --deployment-file '{}'",
            exe().display(),
            free_port(),
            rec.display()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    let got = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.wait();
    if let Ok(Some(r)) = DeploymentRecord::read_optional(&rec) {
        if let StopHandle::Pid { pid } = r.stop {
            drop(KillOnDrop(Some(pid)));
        }
    }
    let text = got.expect("`launch-gptoss … | cat` did not end: the daemon holds the pipe");
    assert!(text.contains("ready at"), "{text}");
}

#[test]
fn a_planted_symlink_at_the_log_path_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("dep.toml");
    let _guard = RecordGuard(&rec);
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    let port = free_port();
    std::os::unix::fs::symlink(&victim, dir.path().join(format!("sim-{port}.log"))).unwrap();
    let out = sim_launch(dir.path(), port, &rec)
        .assert()
        .code(1)
        .stderr(contains("refusing to write the simulator log"))
        .stderr(contains("symbolic link"));
    assert_causes_once(&String::from_utf8_lossy(&out.get_output().stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(!rec.exists());
    assert!(
        !dir.path().join(format!("sim-{port}.plan.json")).exists(),
        "plan file cleaned up"
    );
}

#[test]
fn a_public_host_needs_an_explicit_flag_and_is_announced() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("dep.toml");
    let _guard = RecordGuard(&rec);
    let port = free_port();
    sim_launch(dir.path(), port, &rec)
        .args(["--host", "0.0.0.0"])
        .assert()
        .code(2)
        .stderr(contains("reachable from other machines"))
        .stderr(contains("--allow-remote"));
    assert!(!rec.exists());
    sim_launch(dir.path(), port, &rec)
        .args(["--host", "0.0.0.0", "--allow-remote"])
        .assert()
        .success()
        .stderr(contains("answers anyone who can reach it"));
    let r = DeploymentRecord::read(&rec).unwrap();
    assert_eq!(r.base_url, format!("http://127.0.0.1:{port}"));
    shutdown(dir.path(), &rec);
}

#[test]
fn errors_print_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let cases: Vec<Vec<String>> = vec![
        vec![
            "--backend".into(),
            "sim".into(),
            "--mode".into(),
            "collocated".into(),
            "--port".into(),
            port.to_string(),
        ],
        vec![
            "--backend".into(),
            "sim".into(),
            "--mode".into(),
            "collocated".into(),
            "--sim-config".into(),
            "/nonexistent/x.toml".into(),
            "--port".into(),
            free_port().to_string(),
        ],
        vec![
            "--mode".into(),
            "collocated".into(),
            "--ray-address".into(),
            format!("http://127.0.0.1:{}", pd_testkit::fake_ray::closed_port()),
        ],
        vec![
            "--mode".into(),
            "collocated".into(),
            "--overrides".into(),
            "/nonexistent/o.toml".into(),
            "--dry-run".into(),
            "--nodes".into(),
            "10.0.0.1:8".into(),
        ],
        vec![
            "shutdown".into(),
            "--deployment-file".into(),
            "/proc/self/nonexistent/dep.toml".into(),
        ],
    ];
    for args in cases {
        let mut c = cmd(dir.path());
        c.args(&args);
        if args[0] != "shutdown" {
            c.arg("--deployment-file").arg(dir.path().join("dep.toml"));
        }
        let out = c.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            err.contains("launch-gptoss: error:") || err.contains("error:"),
            "{args:?}: {err}"
        );
        assert_causes_once(&err);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec![
            "--mode",
            "pd-pack",
            "--p-num",
            "1",
            "--p-tp",
            "2",
            "--d-num",
            "2",
            "--d-tp",
            "2",
            "--dry-run",
            "--nodes",
            "10.0.0.1:8",
        ],
        vec!["--backend", "sim", "--mode", "collocated", "--dry-run"],
        vec!["status"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = StdCommand::new(exe())
            .current_dir(dir.path())
            .env_remove("PD_LAB_DEPLOYMENT")
            .args(&args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
    }
}

#[test]
fn sigint_while_waiting_for_ray_removes_the_app_and_exits_130() {
    use pd_testkit::fake_ray::*;
    let stuck = serve_state(vec![app(
        "gptoss",
        "/",
        "DEPLOYING",
        "",
        vec![deployment(
            "LLMServer:gptoss",
            "UPDATING",
            "CONFIG_UPDATE_STARTED",
            "",
            1,
            &["STARTING"],
        )],
    )]);
    let fake = FakeRay::start(
        "2.60.0",
        nodes_body(&[("127.0.0.1", 2.0)]),
        empty_state(),
        vec![stuck],
        None,
    );
    let dir = tempfile::tempdir().unwrap();
    let url = fake.url();
    let mut child = StdCommand::new(exe())
        .current_dir(dir.path())
        .env_remove("PD_LAB_DEPLOYMENT")
        .args([
            "--mode",
            "collocated",
            "--tp",
            "1",
            "--ray-address",
            &url,
            "--serve-url",
            &url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(Some(child.id()));
    assert!(
        wait_until(Duration::from_secs(30), || fake.count("PUT") == 1),
        "no PUT"
    );
    std::thread::sleep(Duration::from_millis(300));
    pd_testkit::process::signal(child.id(), libc::SIGINT);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "ignored SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    assert_eq!(
        fake.count("DELETE"),
        1,
        "the half-deployed app is removed: {err}"
    );
    assert!(!dir.path().join(".pd-lab/deployment.toml").exists());
}

#[test]
fn non_utf8_arguments_are_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let odd = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"dep-\xff.toml"));
    for backend in ["sim", "ray"] {
        let out = StdCommand::new(exe())
            .current_dir(dir.path())
            .env_remove("PD_LAB_DEPLOYMENT")
            .args([
                "--backend",
                backend,
                "--mode",
                "collocated",
                "--dry-run",
                "--nodes",
                "10.0.0.1:8",
            ])
            .arg("--deployment-file")
            .arg(&odd)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{backend}: {err}");
        assert_ne!(out.status.code(), Some(101), "{backend}: {err}");
    }
}
