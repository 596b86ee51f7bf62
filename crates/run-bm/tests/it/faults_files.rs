//! Fault matrix, files: results of another deployment are never silently overwritten,
//! replaced points are kept, a corrupt manifest does not stop a run, an unwritable or full
//! result directory is reported clearly (before sending, or without leaving a broken file),
//! planted symlinks are never followed, and no secret reaches a file.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pd_common::{BenchResult, ExperimentManifest};
use pd_testkit::fake_openai::RequestInfo;

use crate::faults_common::*;

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_of_another_deployment_are_never_silently_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    // First: 4xtp2.
    let a = sim_like("4xtp2").await;
    let rec_a = dir.path().join("a.toml");
    sim_record(&a.url(), 4, 2, pid).write(&rec_a).unwrap();
    let args = |rec: &Path| {
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
            "same",
            "--no-progress",
        ])
    };
    let r = run_to_end(dir.path(), args(&rec_a)).await;
    assert_eq!(r.code, 0, "{r}");
    let d = rdir(dir.path(), "same");
    let first = read(&d.join("conc2.json"));
    let first_manifest = read(&d.join("manifest.json"));

    // Same -e against another deployment (1xtp2): refused, nothing touched.
    let b = sim_like("1xtp2").await;
    let rec_b = dir.path().join("b.toml");
    sim_record(&b.url(), 1, 2, pid).write(&rec_b).unwrap();
    let r = run_to_end(dir.path(), args(&rec_b)).await;
    assert_eq!(r.code, 2, "refused: {r}");
    assert!(r.err.contains("refusing to write into"), "{r}");
    assert!(r.err.contains("deployment 4xtp2 (now 1xtp2)"), "{r}");
    assert!(r.err.contains("--overwrite"), "{r}");
    assert_eq!(b.stats.requests.load(Ordering::SeqCst), 0, "nothing sent");
    assert_eq!(read(&d.join("conc2.json")), first);
    assert_eq!(read(&d.join("manifest.json")), first_manifest);

    // --overwrite: the old files are kept in .replaced-<time>/, the new ones written.
    let mut ow = args(&rec_b);
    ow.push("--overwrite".into());
    let r = run_to_end(dir.path(), ow).await;
    assert_eq!(r.code, 0, "{r}");
    assert!(r.err.contains("moved 3 old result file(s) to"), "{r}");
    let kept: Vec<_> = all_files(&d)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/.replaced-"))
        .collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    let old = kept.iter().find(|p| p.ends_with("conc2.json")).unwrap();
    assert_eq!(read(old), first);
    let new = BenchResult::read(&d.join("conc2.json")).unwrap();
    assert_eq!(
        new.pd_lab.unwrap().deployment_label.as_deref(),
        Some("1xtp2")
    );
    let m = ExperimentManifest::read(&d.join("manifest.json")).unwrap();
    assert_eq!(m.deployment.unwrap().label, "1xtp2");
    assert_eq!(m.points.len(), 1);

    // The same deployment again: allowed, and the replaced point is kept too.
    let second = read(&d.join("conc2.json"));
    let r = run_to_end(dir.path(), args(&rec_b)).await;
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.err.contains("[conc2] replaces the existing result"),
        "{r}"
    );
    let kept: Vec<_> = all_files(&d)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/.replaced-") && p.ends_with("conc2.json"))
        .map(|p| read(&p))
        .collect();
    assert!(kept.contains(&second), "the replaced point is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_manifest_is_kept_aside_and_the_run_goes_on() {
    let srv = server(Arc::new(|_: &RequestInfo| gen(2, 1))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = base(&srv.url(), "cm");
    args.extend(strings(&["-c", "1,2"]));
    let d = rdir(dir.path(), "cm");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("manifest.json"), "{ not json").unwrap();
    let r = run_to_end(dir.path(), args).await;
    assert_eq!(r.code, 0, "{r}");
    assert!(r.err.contains("manifest.json is unreadable"), "{r}");
    let kept: Vec<_> = all_files(&d)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("manifest.json.corrupt-")
        })
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read_to_string(&kept[0]).unwrap(), "{ not json");
    let m = ExperimentManifest::read(&d.join("manifest.json")).unwrap();
    assert_eq!(
        m.points.len(),
        2,
        "both points recorded in the new manifest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_result_dir_is_reported_before_sending() {
    let srv = server(Arc::new(|_: &RequestInfo| gen(2, 1))).await;
    let dir = tempfile::tempdir().unwrap();
    // A path under a regular file cannot be created, even by root.
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let mut args = base(&srv.url(), "nw");
    args.extend(strings(&["-c", "2", "--result-dir", "file/out"]));
    let r = run_to_end(dir.path(), args).await;
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.err
            .contains("is not writable (checked before sending anything)"),
        "{r}"
    );
    assert_eq!(srv.stats.requests.load(Ordering::SeqCst), 0);
}

/// Run `script` in a private mount namespace where `mnt` is a tiny tmpfs; `None` when
/// this machine does not allow it.
fn tmpfs_available() -> Option<Vec<String>> {
    let probe = tempfile::tempdir().ok()?;
    let p = probe.path().to_str()?.to_string();
    for prefix in [vec!["unshare", "-m"], vec!["unshare", "-rm"]] {
        let ok = std::process::Command::new(prefix[0])
            .args(&prefix[1..])
            .args([
                "sh",
                "-c",
                &format!("mount -t tmpfs -o size=64k tmpfs '{p}'"),
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return Some(prefix.iter().map(|s| s.to_string()).collect());
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_clearly_without_a_broken_file() {
    let Some(prefix) = tmpfs_available() else {
        println!("SKIPPED a_full_disk_fails_clearly_without_a_broken_file: cannot mount a tmpfs here (needs root or user namespaces)");
        return;
    };
    let srv = server(Arc::new(|_: &RequestInfo| gen(1, 0))).await;
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let copy = dir.path().join("copy");
    std::fs::create_dir_all(&mnt).unwrap();
    // 96 KiB: enough for the checks and the CSV, not for the detailed JSON (~400 KB).
    let script = format!(
        "mount -t tmpfs -o size=96k tmpfs '{m}' || exit 99; \
         '{bin}' -u {url} -m fake --itl 8 --otl 400 --vocab-size 100 -c 4 --num-prompts 40 \
           --save-detailed --no-progress --result-dir '{m}/out'; rc=$?; \
         cp -a '{m}/out' '{c}' 2>/dev/null; ls -la '{m}/out' >&2; exit $rc",
        m = mnt.display(),
        bin = crate::common::bin(),
        url = srv.url(),
        c = copy.display()
    );
    let mut cmd = std::process::Command::new(&prefix[0]);
    cmd.args(&prefix[1..])
        .args(["sh", "-c", &script])
        .env_remove("OPENAI_API_KEY")
        .env("PD_LAB_DEPLOYMENT", dir.path().join("none.toml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let r = run_cmd_to_end(cmd).await;
    assert_eq!(r.code, 1, "{r}");
    assert!(r.err.contains("No space left on device"), "{r}");
    assert!(
        r.err.contains("cannot write the results of conc4.json"),
        "{r}"
    );
    assert!(
        r.out.contains("Serving Benchmark Result"),
        "the summary is printed before the write: {r}"
    );
    for f in all_files(&copy) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "temp file left: {name}");
        if name.ends_with(".json") {
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(
                serde_json::from_str::<serde_json::Value>(&text).is_ok(),
                "{name} is a broken file"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_symlinks_on_temp_names_are_never_followed() {
    let srv = server(Arc::new(|_: &RequestInfo| gen(1500, 5))).await;
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let d = rdir(dir.path(), "sym");
    std::fs::create_dir_all(&d).unwrap();
    let mut args = base(&srv.url(), "sym");
    args.extend(strings(&["-c", "2", "--num-prompts", "4"]));
    let dd = dir.path().to_path_buf();
    let target = victim.clone();
    let r = tokio::task::spawn_blocking(move || {
        let mut child = ChildGuard::spawn(&mut run_bm(
            &dd,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        ));
        let pid = child.pid();
        // Every name the writer could pick predictably, planted while the point runs.
        for name in [
            format!(".conc2.json.tmp.{pid}"),
            format!(".conc2.requests.csv.tmp.{pid}"),
            format!(".manifest.json.tmp.{pid}"),
            ".conc2.json.tmp".to_string(),
            ".manifest.json.tmp".to_string(),
        ] {
            std::os::unix::fs::symlink(&target, d.join(name)).unwrap();
        }
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
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let res = BenchResult::read(&rdir(dir.path(), "sym").join("conc2.json")).unwrap();
    assert_eq!(res.completed, 4);
    for f in all_files(&rdir(dir.path(), "sym")) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&f).unwrap();
        if ["conc2.json", "conc2.requests.csv", "manifest.json"].contains(&name.as_str()) {
            assert!(meta.file_type().is_file(), "{name} is a regular file");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_written_file() {
    let auth = Arc::new(std::sync::Mutex::new(String::new()));
    let seen = auth.clone();
    let srv = server(Arc::new(move |info: &RequestInfo| {
        if let Some(v) = info.headers.get("authorization") {
            *seen.lock().unwrap() = v.to_str().unwrap_or("").to_string();
        }
        gen(2, 1)
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = base(&srv.url(), "sec");
    args.extend(strings(&[
        "-c",
        "2",
        "--api-key",
        "sk-SECRET-FLAG-111",
        "--api-key=sk-SECRET-FLAG-222",
    ]));
    let mut cmd = run_bm(
        dir.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    cmd.env("MY_PASSWORD", "pw-SECRET-333")
        .env("UCX_PASSWD", "pw-SECRET-444")
        .env("NIXL_AUTH_TOKEN", "tok-SECRET-555")
        .env("RAY_CREDENTIALS", "cred-SECRET-666")
        .env("VLLM_API_KEY", "key-SECRET-777")
        .env("RAY_ADDRESS", "http://admin:pw-SECRET-888@head:8265")
        .env("UCX_TLS", "tcp");
    let r = run_cmd_to_end(cmd).await;
    assert_eq!(r.code, 0, "{r}");
    // The key was used (the last --api-key wins) …
    assert_eq!(*auth.lock().unwrap(), "Bearer sk-SECRET-FLAG-222");
    // … and is nowhere on disk.
    let files = all_files(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        let text = String::from_utf8_lossy(&read(f)).into_owned();
        assert!(
            !text.contains("SECRET"),
            "{} leaks a secret:\n{text}",
            f.display()
        );
    }
    let d = rdir(dir.path(), "sec");
    let m = ExperimentManifest::read(&d.join("manifest.json")).unwrap();
    assert_eq!(m.env.get("UCX_TLS").map(String::as_str), Some("tcp"));
    assert_eq!(
        m.env.get("RAY_ADDRESS").map(String::as_str),
        Some("http://***@head:8265")
    );
    assert!(m.command.iter().any(|a| a == "***"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.join("manifest.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o007, 0, "manifest not world-readable: {mode:o}");
}
