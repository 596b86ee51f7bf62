//! Golden files: the one way pd-lab's tests compare an output with a reviewed file.
//!
//! A golden file is the output itself (a Serve config JSON, a text table), so other
//! tests and readers can use it as it is. [`check`] fails with the first differing line;
//! with `UPDATE_GOLDEN=1` in the environment it (re)writes the file instead, and the
//! change is then reviewed in the diff like any other.

use std::path::{Path, PathBuf};

/// Environment variable that makes [`check`] write the golden files.
pub const UPDATE_ENV: &str = "UPDATE_GOLDEN";

/// `<crate>/tests/golden`, the golden directory of the crate whose manifest dir is given
/// (`env!("CARGO_MANIFEST_DIR")`).
pub fn dir(manifest_dir: &str) -> PathBuf {
    Path::new(manifest_dir).join("tests/golden")
}

/// Compare `actual` with the golden file `dir/name`, or write it under `UPDATE_GOLDEN=1`.
///
/// # Panics
/// When the file is missing or differs (this is a test assertion).
pub fn check(dir: &Path, name: &str, actual: &str) {
    let update = std::env::var_os(UPDATE_ENV).is_some_and(|v| !v.is_empty());
    check_or_update(dir, name, actual, update);
}

fn check_or_update(dir: &Path, name: &str, actual: &str, update: bool) {
    let path = dir.join(name);
    if update {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
        }
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {}: {e} (run with {UPDATE_ENV}=1 to create it)",
            path.display()
        )
    });
    if let Some(diff) = first_difference(&expected, actual) {
        panic!(
            "golden file {} differs ({UPDATE_ENV}=1 regenerates it):\n{diff}",
            path.display()
        );
    }
}

/// The first line where `expected` and `actual` differ, described; `None` if equal.
pub fn first_difference(expected: &str, actual: &str) -> Option<String> {
    if expected == actual {
        return None;
    }
    let (mut e, mut a) = (expected.lines(), actual.lines());
    for n in 1.. {
        match (e.next(), a.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (None, None) => {
                return Some("the texts differ only in their line endings or final newline".into())
            }
            (x, y) => {
                return Some(format!(
                    "line {n}:\n  golden: {}\n  actual: {}",
                    x.unwrap_or("<end of file>"),
                    y.unwrap_or("<end of output>")
                ))
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_first_differing_line() {
        assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
        let d = first_difference("a\nb\nc\n", "a\nB\nc\n").unwrap();
        assert!(
            d.contains("line 2") && d.contains("golden: b") && d.contains("actual: B"),
            "{d}"
        );
        let d = first_difference("a\n", "a\nmore\n").unwrap();
        assert!(d.contains("line 2") && d.contains("<end of file>"), "{d}");
        assert!(first_difference("a\n", "a")
            .unwrap()
            .contains("final newline"));
    }

    #[test]
    fn check_passes_on_equal_and_fails_on_a_change() {
        let dir = std::env::temp_dir().join(format!("pd-golden-{}", std::process::id()));
        check_or_update(&dir, "x.txt", "one\ntwo\n", true);
        check_or_update(&dir, "x.txt", "one\ntwo\n", false);
        let changed =
            std::panic::catch_unwind(|| check_or_update(&dir, "x.txt", "one\nthree\n", false));
        let missing = std::panic::catch_unwind(|| check_or_update(&dir, "missing.txt", "x", false));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(changed.is_err() && missing.is_err());
    }
}
