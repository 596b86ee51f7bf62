//! Every launch command line in the docs (fenced code blocks of docs/*.md and README.md,
//! `--help` examples included through docs/CLI.md) and in the seed methodology renders
//! with `--dry-run` and no cluster: the inventory it assumed is printed first. A line whose
//! comment says "refused" must be refused (exit 2) under that default inventory.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The launch command lines of the seed's METHODOLOGY.md (as written there).
const SEED_METHODOLOGY: &[&str] = &[
    "python launch_gptoss.py --mode collocated --tp 2 --num-replicas 4",
    "python launch_gptoss.py --mode pd-pack --p-num 2 --p-tp 1 --d-num 4 --d-tp 2 --use-ucx   # refused on 8-GPU nodes",
    "python launch_gptoss.py --mode pd-spread --p-num 1 --p-tp 4 --d-num 1 --d-tp 4 --use-ucx",
    "python launch_gptoss.py --mode collocated --tp 1 --num-replicas 8",
    "python launch_gptoss.py --mode pd-pack --p-num 1 --p-tp 2 --d-num 2 --d-tp 2",
    "python launch_gptoss.py --mode pd-pack --p-num 2 --p-tp 2 --d-num 2 --d-tp 2",
    "python launch_gptoss.py --mode pd-pack --p-num 1 --p-tp 4 --d-num 1 --d-tp 4 --use-ucx",
    "python launch_gptoss.py --mode pd-spread --p-num 1 --p-tp 4 --d-num 1 --d-tp 4 --use-ucx",
];

/// One command line to check.
#[derive(Debug)]
struct Line {
    origin: String,
    env: Vec<(String, String)>,
    args: Vec<String>,
    refused: bool,
}

/// Split a shell line into words (quotes, no expansions); `None` if it needs a shell.
fn words(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, '$' | '`' | '|' | '&' | ';' | '<' | '>' | '(' | ')' | '*' | '…') => {
                return None
            }
            (None, c) if c.is_whitespace() => {
                if started {
                    out.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            (None, c) => {
                cur.push(c);
                started = true;
            }
        }
    }
    if started {
        out.push(cur);
    }
    Some(out)
}

/// A launch command in `text` (one logical line): env assignments, the tool, launch flags.
fn parse_line(origin: String, text: &str) -> Option<Line> {
    let (code, comment) = match text.find(" #") {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    let code = code.trim().trim_start_matches("$ ");
    let mut ws = words(code)?.into_iter().peekable();
    let mut env = Vec::new();
    while let Some(w) = ws.peek() {
        match w.split_once('=') {
            Some((k, v)) if k.chars().all(|c| c.is_ascii_uppercase() || c == '_') => {
                env.push((k.to_string(), v.to_string()));
                ws.next();
            }
            _ => break,
        }
    }
    match ws.next()?.as_str() {
        "launch-gptoss" => {}
        "python" | "python3" if ws.next().as_deref() == Some("launch_gptoss.py") => {}
        _ => return None,
    }
    let args: Vec<String> = ws.collect();
    // Launches only: subcommands (shutdown, status, sim-calibrate…) are not launch lines.
    if !args.first().is_some_and(|a| a.starts_with("--")) {
        return None;
    }
    Some(Line {
        origin,
        env,
        args,
        refused: comment.contains("refused"),
    })
}

/// Launch lines in the fenced code blocks of a Markdown file.
fn lines_of(path: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut in_code = false;
    let mut pending = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.starts_with("```") {
            in_code = !in_code;
            pending.clear();
            continue;
        }
        if !in_code {
            continue;
        }
        if pending.is_empty() {
            start = i + 1;
        }
        if let Some(cont) = t.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(t);
        let origin = format!("{}:{start}", path.display());
        if let Some(l) = parse_line(origin, &pending) {
            out.push(l);
        }
        pending.clear();
    }
    out
}

fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.push(root.join("README.md"));
    files.sort();
    files
}

fn dry_run(line: &Line) {
    let dir = tempfile::tempdir().unwrap();
    let closed = format!("http://127.0.0.1:{}", pd_testkit::fake_ray::closed_port());
    let mut c = Command::cargo_bin("launch-gptoss").unwrap();
    c.current_dir(dir.path())
        .env_remove("PD_LAB_DEPLOYMENT")
        .env_remove("PD_LAB_BACKEND")
        .env_remove("UCX_TLS")
        .env("RAY_ADDRESS", &closed)
        .timeout(std::time::Duration::from_secs(60))
        .args(&line.args);
    for (k, v) in &line.env {
        c.env(k, v);
    }
    if !line.args.iter().any(|a| a == "--dry-run") {
        c.arg("--dry-run");
    }
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!("{} ({:?}):\n{stderr}", line.origin, line.args);
    if line.refused {
        assert_eq!(out.status.code(), Some(2), "should be refused: {what}");
        assert!(stderr.contains("pre-flight check failed"), "{what}");
        return;
    }
    assert!(out.status.success(), "{what}");
    let v: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {what}\n{stdout}"));
    assert!(v.is_object(), "{what}");
    let first = stderr
        .lines()
        .find(|l| !l.contains("WARN"))
        .unwrap_or_default();
    assert!(
        first.starts_with("dry run"),
        "the inventory (or plan) comes first: {what}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a dry run wrote files: {what}"
    );
}

#[test]
fn every_launch_line_in_the_docs_dry_runs() {
    let lines: Vec<Line> = doc_files().iter().flat_map(|f| lines_of(f)).collect();
    assert!(
        lines.len() >= 15,
        "found only {} launch lines: {lines:#?}",
        lines.len()
    );
    assert!(
        lines.iter().any(|l| l.origin.contains("CLI.md")),
        "the --help examples are checked too"
    );
    for l in &lines {
        dry_run(l);
    }
}

#[test]
fn every_launch_line_of_the_seed_methodology_dry_runs() {
    for (i, text) in SEED_METHODOLOGY.iter().enumerate() {
        let l = parse_line(format!("seed METHODOLOGY #{i}"), text).unwrap();
        dry_run(&l);
    }
}

#[test]
fn the_extractor_reads_what_it_should() {
    let l = parse_line(
        "x".into(),
        "PD_LAB_BACKEND=sim launch-gptoss --mode collocated --tp 2   # note",
    )
    .unwrap();
    assert_eq!(
        l.env,
        vec![("PD_LAB_BACKEND".to_string(), "sim".to_string())]
    );
    assert_eq!(l.args, ["--mode", "collocated", "--tp", "2"]);
    assert!(!l.refused);
    assert!(parse_line("x".into(), "launch-gptoss shutdown").is_none());
    assert!(parse_line("x".into(), "launch-gptoss --dry-run --nodes $NODES").is_none());
    assert!(parse_line("x".into(), "cargo run -p launch-gptoss -- sim-calibrate").is_none());
    assert!(
        parse_line(
            "x".into(),
            "launch-gptoss --mode pd-pack   # refused on 8-GPU nodes"
        )
        .unwrap()
        .refused
    );
}
