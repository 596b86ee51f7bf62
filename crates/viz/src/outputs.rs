//! Output names and the rule that a plot of one comparison never silently replaces the
//! plot of another.
//!
//! * The stem of every output file is `--name`, else the single directory's name, else a
//!   name derived from the compared directories ([`derived_stem`]): their display names
//!   joined by `_vs_` (`baseline_4xtp2_vs_pd_p1xtp2-d2xtp2`), or, when that is long,
//!   `<first>_vs_<N>_more_<hash>`.
//! * Every plot carries its provenance (the stem and the canonical paths of the
//!   directories it shows): a PNG iTXt chunk, an SVG comment ([`Provenance`]).
//! * A derived stem whose files already hold another comparison gets a short hash of the
//!   directories appended ([`resolve_stem`]); an explicit `--name` overwrites, with a
//!   warning when the file showed something else.
//! * Without `--name`, the comprehensive figure is also written under the original
//!   viz.py's fixed name `comprehensive_analysis.png` ([`write_alias`]): the latest
//!   comparison in that folder. When it held another comparison, that figure is kept:
//!   either it still exists under its own stem, or it is moved aside.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, VizError};

/// Key of the PNG iTXt chunk / marker of the SVG comment holding the provenance.
pub const PROVENANCE_KEY: &str = "pd-lab-viz";

/// File stem of the original viz.py's comprehensive figure.
pub const ALIAS_STEM: &str = "comprehensive_analysis";

/// What a plot file shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The output stem it was written under.
    pub name: String,
    /// Canonical paths of the result directories, in plotting order.
    pub dirs: Vec<String>,
}

impl Provenance {
    pub fn new(name: &str, dirs: &[PathBuf]) -> Self {
        Provenance {
            name: name.to_string(),
            dirs: dirs.iter().map(|d| canonical(d)).collect(),
        }
    }

    /// JSON text (one line).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Same directories (the stem does not matter).
    pub fn same_data(&self, other: &Provenance) -> bool {
        self.dirs == other.dirs
    }

    /// The SVG comment carrying it (`--` cannot occur inside an XML comment).
    pub fn svg_comment(&self) -> String {
        format!(
            "<!-- {PROVENANCE_KEY} {} -->",
            self.to_json().replace("--", "-\\u002d")
        )
    }
}

/// The canonical path of a directory as text (the path itself when it cannot be resolved).
pub fn canonical(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}

/// 64-bit FNV-1a: a stable hash (same input, same name on every machine and run).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Six hex digits identifying a set of directories (their canonical paths, in order).
pub fn dirs_hash(dirs: &[PathBuf]) -> String {
    let joined = dirs
        .iter()
        .map(|d| canonical(d))
        .collect::<Vec<_>>()
        .join("\n");
    format!("{:06x}", fnv1a(joined.as_bytes()) & 0xff_ffff)
}

/// A file-name-safe version of `raw` (`/`, `\`, whitespace and control characters → `_`).
pub fn sanitize(raw: &str) -> String {
    let clean: String = raw
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if clean.is_empty() || clean == "." || clean == ".." {
        "comparison".to_string()
    } else {
        clean
    }
}

/// Longest stem derived by joining display names.
const MAX_JOINED: usize = 120;

/// The default stem of a comparison: the display names joined by `_vs_`, or
/// `<first>_vs_<N>_more_<hash>` when that would be longer than 120 characters.
/// One experiment: its display name.
pub fn derived_stem(display_names: &[String], dirs: &[PathBuf]) -> String {
    match display_names {
        [] => "comparison".to_string(),
        [one] => sanitize(one),
        [first, rest @ ..] => {
            let joined = display_names.join("_vs_");
            if joined.chars().count() <= MAX_JOINED {
                sanitize(&joined)
            } else {
                let first: String = first.chars().take(60).collect();
                sanitize(&format!(
                    "{first}_vs_{}_more_{}",
                    rest.len(),
                    dirs_hash(dirs)
                ))
            }
        }
    }
}

/// Read the provenance stored in a plot file (PNG iTXt/tEXt chunk or SVG comment).
/// `None` when the file does not exist, cannot be read, or carries none (e.g. a plot of
/// the original viz.py).
pub fn read_provenance(path: &Path) -> Option<Provenance> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "png" => {
            let file = std::fs::File::open(path).ok()?;
            let decoder = png::Decoder::new(std::io::BufReader::new(file));
            let reader = decoder.read_info().ok()?;
            let info = reader.info();
            let from_itxt = info
                .utf8_text
                .iter()
                .filter(|c| c.keyword == PROVENANCE_KEY)
                .find_map(|c| c.get_text().ok());
            let text = from_itxt.or_else(|| {
                info.uncompressed_latin1_text
                    .iter()
                    .find(|c| c.keyword == PROVENANCE_KEY)
                    .map(|c| c.text.clone())
            })?;
            serde_json::from_str(&text).ok()
        }
        "svg" => {
            use std::io::Read;
            let mut head = Vec::new();
            std::fs::File::open(path)
                .ok()?
                .take(16 * 1024)
                .read_to_end(&mut head)
                .ok()?;
            let head = String::from_utf8_lossy(&head);
            let marker = format!("<!-- {PROVENANCE_KEY} ");
            let start = head.find(&marker)? + marker.len();
            let end = start + head[start..].find(" -->")?;
            serde_json::from_str(&head[start..end]).ok()
        }
        _ => None,
    }
}

/// What happened to an existing file when a new plot was written over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    /// Nothing was there, or the same comparison: written.
    Fresh,
    /// It showed another comparison, which still exists under `kept`.
    StillAt { previous: String, kept: PathBuf },
    /// It showed another (or an unknown) comparison and was moved to `kept`.
    MovedTo { kept: PathBuf },
}

/// Whether writing the files `paths` would replace a plot of other directories.
fn foreign_file(paths: &[PathBuf], prov: &Provenance) -> Option<PathBuf> {
    paths
        .iter()
        .find(|p| p.exists() && read_provenance(p).is_none_or(|old| !old.same_data(prov)))
        .cloned()
}

/// The stem to write under. `explicit`: the user chose it (`--name`): keep it even when
/// it replaces other plots. Otherwise a stem whose files (`files(stem)`) hold another
/// comparison gets `_<hash>` appended. Returns the stem and the file that forced the
/// suffix (for a warning), or the foreign file an explicit name replaces.
pub fn resolve_stem(
    stem: &str,
    explicit: bool,
    dirs: &[PathBuf],
    files: impl Fn(&str) -> Vec<PathBuf>,
) -> (String, Option<PathBuf>) {
    let prov = Provenance::new(stem, dirs);
    let Some(foreign) = foreign_file(&files(stem), &prov) else {
        return (stem.to_string(), None);
    };
    if explicit {
        return (stem.to_string(), Some(foreign));
    }
    let hashed = format!("{stem}_{}", dirs_hash(dirs));
    (hashed, Some(foreign))
}

/// A free path `<dir>/<stem>.<ext>`, `<dir>/<stem>-2.<ext>`, …
fn free_path(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    let first = dir.join(format!("{stem}.{ext}"));
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|k| dir.join(format!("{stem}-{k}.{ext}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Write `bytes` (a comprehensive figure of `prov`) as `<dir>/comprehensive_analysis.<ext>`.
/// When that file showed another comparison: if that comparison's own file still exists
/// (same provenance), it is simply replaced; otherwise it is first moved to
/// `<its stem or previous>_comprehensive_analysis.<ext>` (a free name).
pub fn write_alias(dir: &Path, ext: &str, bytes: &[u8], prov: &Provenance) -> Result<Replaced> {
    let alias = dir.join(format!("{ALIAS_STEM}.{ext}"));
    let mut outcome = Replaced::Fresh;
    if alias.exists() {
        let old = read_provenance(&alias);
        match old {
            Some(old) if old.same_data(prov) => {}
            _ => {
                let own = old
                    .as_ref()
                    .map(|o| dir.join(format!("{}_{ALIAS_STEM}.{ext}", o.name)));
                let still_there = match (&old, &own) {
                    (Some(o), Some(own)) => {
                        own.exists() && read_provenance(own).is_some_and(|p| p.same_data(o))
                    }
                    _ => false,
                };
                outcome = if let (true, Some(o), Some(own)) = (still_there, &old, own) {
                    Replaced::StillAt {
                        previous: o.name.clone(),
                        kept: own,
                    }
                } else {
                    let stem = match &old {
                        Some(o) => format!("{}_{ALIAS_STEM}", o.name),
                        None => format!("previous_{ALIAS_STEM}"),
                    };
                    let kept = free_path(dir, &stem, ext);
                    std::fs::rename(&alias, &kept).map_err(|e| VizError::io(&alias, e))?;
                    Replaced::MovedTo { kept }
                };
            }
        }
    }
    pd_common::fsutil::write_replace(&alias, bytes)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn derived_stems_are_readable_and_distinct() {
        let dirs = vec![
            PathBuf::from("/nonexistent/a"),
            PathBuf::from("/nonexistent/b"),
        ];
        assert_eq!(
            derived_stem(&s(&["baseline_4xtp2", "pd_p1xtp2-d2xtp2"]), &dirs),
            "baseline_4xtp2_vs_pd_p1xtp2-d2xtp2"
        );
        assert_eq!(derived_stem(&s(&["only one"]), &dirs[..1]), "only_one");
        let long: Vec<String> = (0..14).map(|i| format!("configuration_{i:02}")).collect();
        let many: Vec<PathBuf> = (0..14).map(|i| PathBuf::from(format!("/x/{i}"))).collect();
        let stem = derived_stem(&long, &many);
        assert!(stem.starts_with("configuration_00_vs_13_more_"), "{stem}");
        assert!(stem.len() < 60);
        // Another set of directories with the same names: another hash.
        let other: Vec<PathBuf> = (0..14).map(|i| PathBuf::from(format!("/y/{i}"))).collect();
        assert_ne!(stem, derived_stem(&long, &other));
        assert_eq!(stem, derived_stem(&long, &many), "stable");
        assert_eq!(sanitize("a/b c"), "a_b_c");
        assert_eq!(sanitize(".."), "comparison");
    }

    #[test]
    fn svg_provenance_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let prov = Provenance {
            name: "x--y".into(),
            dirs: vec!["/a--b/c".into()],
        };
        let path = tmp.path().join("p.svg");
        std::fs::write(
            &path,
            format!("<svg width=\"1\">{}\n<rect/></svg>", prov.svg_comment()),
        )
        .unwrap();
        assert!(!prov.svg_comment()[4..prov.svg_comment().len() - 3].contains("--"));
        assert_eq!(read_provenance(&path), Some(prov));
        std::fs::write(&path, "<svg></svg>").unwrap();
        assert_eq!(read_provenance(&path), None);
        assert_eq!(read_provenance(&tmp.path().join("missing.svg")), None);
    }

    #[test]
    fn alias_keeps_the_previous_comparison() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let svg = |p: &Provenance| format!("<svg>{}</svg>", p.svg_comment());
        let a = Provenance {
            name: "a".into(),
            dirs: vec!["/d/a".into()],
        };
        let b = Provenance {
            name: "b".into(),
            dirs: vec!["/d/b".into()],
        };
        assert_eq!(
            write_alias(d, "svg", svg(&a).as_bytes(), &a).unwrap(),
            Replaced::Fresh
        );
        // Same data again: replaced in place.
        assert_eq!(
            write_alias(d, "svg", svg(&a).as_bytes(), &a).unwrap(),
            Replaced::Fresh
        );
        // b over a, a's own file missing: a is moved aside under its stem.
        let out = write_alias(d, "svg", svg(&b).as_bytes(), &b).unwrap();
        let kept = d.join("a_comprehensive_analysis.svg");
        assert_eq!(out, Replaced::MovedTo { kept: kept.clone() });
        assert_eq!(read_provenance(&kept), Some(a.clone()));
        assert_eq!(
            read_provenance(&d.join("comprehensive_analysis.svg")),
            Some(b)
        );
        // a over b while b's own file exists: replaced, b still at its own file.
        let b_own = d.join("b_comprehensive_analysis.svg");
        std::fs::write(
            &b_own,
            svg(&Provenance {
                name: "b".into(),
                dirs: vec!["/d/b".into()],
            }),
        )
        .unwrap();
        let out = write_alias(d, "svg", svg(&a).as_bytes(), &a).unwrap();
        assert_eq!(
            out,
            Replaced::StillAt {
                previous: "b".into(),
                kept: b_own
            }
        );
        // A foreign file (no provenance, e.g. the original viz.py's) is moved aside.
        std::fs::write(d.join("comprehensive_analysis.svg"), "<svg/>").unwrap();
        let out = write_alias(d, "svg", svg(&a).as_bytes(), &a).unwrap();
        assert_eq!(
            out,
            Replaced::MovedTo {
                kept: d.join("previous_comprehensive_analysis.svg")
            }
        );
        assert_eq!(
            std::fs::read_to_string(d.join("previous_comprehensive_analysis.svg")).unwrap(),
            "<svg/>"
        );
    }

    #[test]
    fn derived_stems_never_replace_another_comparison() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        let dirs = vec![tmp.path().join("r1")];
        let files = |stem: &str| vec![d.join(format!("{stem}_pareto.svg"))];
        assert_eq!(
            resolve_stem("x", false, &dirs, files),
            ("x".to_string(), None)
        );
        // The file holds another comparison.
        let other = Provenance {
            name: "x".into(),
            dirs: vec!["/elsewhere".into()],
        };
        std::fs::write(
            d.join("x_pareto.svg"),
            format!("<svg>{}</svg>", other.svg_comment()),
        )
        .unwrap();
        let (stem, why) = resolve_stem("x", false, &dirs, files);
        assert_eq!(stem, format!("x_{}", dirs_hash(&dirs)));
        assert_eq!(why, Some(d.join("x_pareto.svg")));
        // --name keeps the name (the caller warns).
        let (stem, why) = resolve_stem("x", true, &dirs, files);
        assert_eq!((stem.as_str(), why.is_some()), ("x", true));
        // Same data: no suffix.
        let same = Provenance::new("x", &dirs);
        std::fs::write(
            d.join("x_pareto.svg"),
            format!("<svg>{}</svg>", same.svg_comment()),
        )
        .unwrap();
        assert_eq!(resolve_stem("x", false, &dirs, files).0, "x");
    }
}
