//! `docs/CLI.md` holds every tool's `--help` between markers; each tool's tests compare
//! its live `--help` with its section so the reference cannot drift
//! (regenerate with `bash scripts/gen-cli-docs.sh`).

use std::path::{Path, PathBuf};

/// `docs/CLI.md` of the workspace, from a crate's manifest directory.
pub fn cli_doc_path(crate_manifest_dir: &str) -> PathBuf {
    Path::new(crate_manifest_dir).join("../../docs/CLI.md")
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
        return Err(format!("docs/CLI.md has no section for `{key}`; run scripts/gen-cli-docs.sh"));
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
