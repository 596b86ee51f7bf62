//! `docs/CLI.md` holds every tool's `--help` between markers; each tool's tests compare
//! its live `--help` with its section so the reference cannot drift
//! (regenerate with `bash scripts/gen-cli-docs.sh`).

use std::path::{Path, PathBuf};

/// `docs/CLI.md` of the workspace, from a crate's manifest directory.
pub fn cli_doc_path(crate_manifest_dir: &str) -> PathBuf {
    Path::new(crate_manifest_dir).join("../../docs/CLI.md")
}

/// Environment variables that change what `--help` prints (clap shows env values and
/// wraps to `COLUMNS`); cleared or pinned when rendering help for the reference.
pub const HELP_ENV_REMOVED: [&str; 4] = [
    "PD_LAB_BACKEND",
    "RAY_ADDRESS",
    "OPENAI_API_KEY",
    "PD_LAB_DEPLOYMENT",
];

/// Run `bin args…` the way `scripts/gen-cli-docs.sh` does and return its stdout.
pub fn live_help(bin: &str, args: &[&str]) -> std::io::Result<String> {
    let mut cmd = std::process::Command::new(bin);
    cmd.args(args).env("COLUMNS", "100");
    for var in HELP_ENV_REMOVED {
        cmd.env_remove(var);
    }
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "{bin} {args:?} exited with {}",
            out.status
        )));
    }
    String::from_utf8(out.stdout).map_err(std::io::Error::other)
}

/// Check every `(args)` help of `bin` (documented under the key `<tool> <args…>`)
/// against `docs/CLI.md`; `Err` lists what is out of date.
pub fn check_tool(
    crate_manifest_dir: &str,
    bin: &str,
    tool: &str,
    arg_sets: &[&[&str]],
) -> Result<(), String> {
    let path = cli_doc_path(crate_manifest_dir);
    let doc = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut problems = Vec::new();
    for args in arg_sets {
        let key = format!("{tool} {}", args.join(" "));
        match live_help(bin, args) {
            Ok(live) => {
                if let Err(e) = check_section(&doc, &key, &live) {
                    problems.push(e);
                }
            }
            Err(e) => problems.push(format!("{key}: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The text between `<!-- BEGIN key -->` + a ```` ```text ```` line and the closing fence.
pub fn section<'a>(doc: &'a str, key: &str) -> Option<&'a str> {
    let begin = format!("<!-- BEGIN {key} -->\n```text\n");
    let end = format!("```\n<!-- END {key} -->");
    let start = doc.find(&begin)? + begin.len();
    let len = doc[start..].find(&end)?;
    Some(&doc[start..start + len])
}

/// Compare a tool's live help with its section; `Err` explains the first difference.
pub fn check_section(doc: &str, key: &str, live: &str) -> Result<(), String> {
    let Some(documented) = section(doc, key) else {
        return Err(format!(
            "docs/CLI.md has no section for `{key}`; run scripts/gen-cli-docs.sh"
        ));
    };
    if documented == live {
        return Ok(());
    }
    let first_diff = documented
        .lines()
        .zip(live.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| documented.lines().count().min(live.lines().count()));
    Err(format!(
        "docs/CLI.md is out of date for `{key}` (first difference at line {}):\n  documented: {:?}\n  live:       {:?}\nrun scripts/gen-cli-docs.sh",
        first_diff + 1,
        documented.lines().nth(first_diff).unwrap_or("<end>"),
        live.lines().nth(first_diff).unwrap_or("<end>"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_compares_sections() {
        let doc = "x\n<!-- BEGIN a --help -->\n```text\nUsage: a\n```\n<!-- END a --help -->\n";
        assert_eq!(section(doc, "a --help"), Some("Usage: a\n"));
        assert!(check_section(doc, "a --help", "Usage: a\n").is_ok());
        let e = check_section(doc, "a --help", "Usage: b\n").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        assert!(check_section(doc, "b --help", "").is_err());
    }
}
