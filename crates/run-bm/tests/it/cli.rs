//! Command-line behaviour: bad flags exit 2 with a clear message; an unreachable
//! server is a clear error with no result file; `--help` lists the seed's flags.

use assert_cmd::Command;
use predicates::prelude::*;

fn cmd() -> Command {
    let mut c = Command::cargo_bin("run-bm").unwrap();
    c.env_remove("OPENAI_API_KEY")
        .env("PD_LAB_DEPLOYMENT", "/nonexistent/pd-lab.toml");
    c
}

#[test]
fn bad_flags_exit_2_with_clear_messages() {
    let cases: &[(&[&str], &str)] = &[
        (&["-c", "0"], "concurrency must be at least 1"),
        (&["-c", "abc"], "'abc' is not a whole number"),
        (&["-c", "4,,8"], "empty value"),
        (&["--itl", "0"], "must be at least 1"),
        (&["--otl", "x"], "not a whole number"),
        (&["--mode", "decode"], "invalid value 'decode' for '--mode"),
        (&["-t", "rate"], "invalid value 'rate'"),
        (&["-r", "0"], "a request rate must be greater than 0"),
        (
            &["--goodput", "speed:3"],
            "goodput keys are ttft, tpot and e2el",
        ),
        (&["--metric-percentiles", "101"], "not a percentile"),
        (
            &["--percentile-metrics", "ttft,foo"],
            "'foo' is not a metric",
        ),
        (&["-e", "a/b"], "must not contain"),
        (&["--burstiness", "0"], "greater than 0"),
        (&["--no-such-flag"], "unexpected argument"),
    ];
    for (args, msg) in cases {
        cmd()
            .args(*args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(*msg));
    }
}

#[test]
fn help_lists_every_seed_flag() {
    let out = cmd()
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8(out).unwrap();
    for flag in [
        "-e, --exp-name",
        "-t, --type",
        "-c, --concurrency",
        "-r, --request-rate",
        "--itl",
        "--otl",
        "-u, --base-url",
        "-m, --served-model-name",
        "--mode",
        "-s, --smoke",
        "--num-prompts",
        "--max-concurrency",
        "--burstiness",
        "--goodput",
        "--metric-percentiles",
        "--percentile-metrics",
        "--seed",
        "--result-dir",
        "--result-filename",
        "--save-detailed",
        "--api-key",
        "--timeout",
        "--warmup",
        "--resume",
        "--deployment-file",
        "--prompt-format",
        "Examples:",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    assert!(help.contains("[default: default_exp]"));
    assert!(help.contains("[default: 8000]") && help.contains("[default: 1000]"));
}

#[test]
fn unreachable_server_is_a_clear_error_without_files() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    cmd()
        .current_dir(dir.path())
        .args([
            "-c",
            "2",
            "--itl",
            "8",
            "--otl",
            "4",
            "-u",
            &format!("http://127.0.0.1:{port}"),
        ])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot reach http://127.0.0.1:"))
        .stderr(predicate::str::contains("Is the deployment up?"));
    assert!(
        !dir.path().join("bm_results").exists(),
        "no result directory"
    );
}

#[test]
fn smoke_against_unreachable_server_fails() {
    cmd()
        .args(["-s", "-u", "http://127.0.0.1:1"])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot reach"));
}

#[test]
fn bad_base_url_and_missing_record() {
    cmd()
        .args(["-c", "2", "-u", "ftp://example.invalid"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unsupported scheme 'ftp'"));
    cmd()
        .args(["-c", "2", "--deployment-file", "/nonexistent/dep.toml"])
        .assert()
        .code(2) // a usage error: nothing was run
        .stderr(predicate::str::contains("/nonexistent/dep.toml"));
}
