//! Atomic file writes (the one implementation every tool uses): write to a temporary file
//! in the same directory, then rename it over the target.
//!
//! * A reader (or an interrupted writer) never sees a half-written file: the target is
//!   either the old content or the new one.
//! * The temporary file has a random name and is created with `O_EXCL` (the `tempfile`
//!   crate), so a file or symlink planted at a predictable name is never followed or
//!   overwritten; a failed write removes it.
//! * Durable writes fsync the file before the rename and the directory after it.
//! * Modes: [`MODE_SHARED`] for results meant to be shared, [`MODE_RESTRICTED`] for files
//!   that describe the machine, commands and environment (never world-readable); the umask
//!   still applies.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Mode of shared result files (before the umask): like any file a program creates.
pub const MODE_SHARED: u32 = 0o666;
/// Mode of files that may describe the client machine, commands and environment
/// (manifests, deployment records): owner read-write, group read, nothing for others.
pub const MODE_RESTRICTED: u32 = 0o640;

/// Write `bytes` to `path` atomically and durably (fsync of the file before the rename and
/// of the directory after it), creating parent directories. For result files.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_via_temp(path, bytes, MODE_SHARED, true)
}

/// Like [`write_atomic`], with mode [`MODE_RESTRICTED`] (manifests, records).
pub fn write_atomic_restricted(path: &Path, bytes: &[u8]) -> Result<()> {
    write_via_temp(path, bytes, MODE_RESTRICTED, true)
}

/// Like [`write_atomic`] but without the fsyncs: readers still never see a half-written
/// file, but a crash may lose it. For outputs that are regenerated at will (plots).
pub fn write_replace(path: &Path, bytes: &[u8]) -> Result<()> {
    write_via_temp(path, bytes, MODE_SHARED, false)
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A temporary file next to `path` (random name starting with `.<file name>.`, created
/// with `O_EXCL`), with `mode` before the umask.
fn temp_beside(path: &Path, dir: &Path, mode: u32) -> std::io::Result<tempfile::NamedTempFile> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    let prefix = format!(".{file_name}.");
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix).suffix(".tmp").rand_bytes(10);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    b.tempfile_in(dir)
}

fn write_via_temp(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = temp_beside(path, dir, mode).map_err(|e| Error::io(path, e))?;
    // On any error below, dropping `tmp` removes the temporary file.
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    tmp.flush().map_err(|e| Error::io(path, e))?;
    if durable {
        tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    if durable {
        sync_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// fsync a directory (makes a rename in it durable).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Prove that files can be created in `dir` before any work whose results would go there,
/// without creating anything that stays: when `dir` does not exist yet, its nearest
/// existing ancestor must be a writable directory (the rest is created when the first
/// file is written).
pub fn check_writable_dir(dir: &Path) -> Result<()> {
    let mut probe_dir = dir;
    loop {
        match std::fs::metadata(probe_dir) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(Error::io(
                    probe_dir,
                    std::io::Error::new(
                        std::io::ErrorKind::NotADirectory,
                        "exists and is not a directory",
                    ),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match probe_dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => probe_dir = p,
                _ => {
                    probe_dir = Path::new(".");
                    break;
                }
            },
            Err(e) => return Err(Error::io(probe_dir, e)),
        }
    }
    let probe = probe_dir.join(".pd-lab-write-check");
    let mut tmp =
        temp_beside(&probe, probe_dir, MODE_SHARED).map_err(|e| Error::io(probe_dir, e))?;
    tmp.write_all(b"ok").map_err(|e| Error::io(probe_dir, e))?;
    tmp.close().map_err(|e| Error::io(probe_dir, e))
}

/// Move `path` aside to `<path>.<tag>-<YYYYmmdd-HHMMSS>` (a counter is added if that name
/// exists) and return the new path. Used to keep a corrupt or replaced file instead of
/// deleting it.
pub fn keep_aside(path: &Path, tag: &str) -> Result<PathBuf> {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    let dir = parent_dir(path);
    for i in 0..1000u32 {
        let candidate = if i == 0 {
            dir.join(format!("{name}.{tag}-{stamp}"))
        } else {
            dir.join(format!("{name}.{tag}-{stamp}-{i}"))
        };
        if candidate.symlink_metadata().is_ok() {
            continue;
        }
        std::fs::rename(path, &candidate).map_err(|e| Error::io(path, e))?;
        return Ok(candidate);
    }
    Err(Error::io(
        path,
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "no free name to keep the file aside",
        ),
    ))
}

/// Read a whole file as a string, with the path in the error.
pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/dir/x.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(
            names(p.parent().unwrap()),
            vec!["x.json"],
            "no temp file left"
        );
    }

    #[cfg(unix)]
    #[test]
    fn planted_symlinks_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        // Every name the old implementation could have used, and the target itself.
        for name in [".x.json.tmp", ".x.json.tmp.1", "x.json"] {
            std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
        }
        write_atomic(&dir.path().join("x.json"), b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let meta = std::fs::symlink_metadata(dir.path().join("x.json")).unwrap();
        assert!(
            meta.file_type().is_file(),
            "the symlink itself was replaced"
        );
    }

    #[cfg(unix)]
    #[test]
    fn modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        write_atomic_restricted(&p, b"{}").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o007, 0, "never world-accessible: {mode:o}");
        assert_eq!(mode & 0o600, 0o600);
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a directory: the rename fails, the temp file is removed.
        std::fs::create_dir(dir.path().join("t")).unwrap();
        std::fs::write(dir.path().join("t/inner"), "x").unwrap();
        assert!(write_atomic(&dir.path().join("t"), b"x").is_err());
        assert_eq!(names(dir.path()), vec!["t"]);
    }

    #[test]
    fn writable_check_and_keep_aside() {
        let dir = tempfile::tempdir().unwrap();
        check_writable_dir(&dir.path().join("a/b")).unwrap();
        assert!(names(dir.path()).is_empty(), "nothing created");
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(check_writable_dir(&file.join("sub")).is_err());
        assert!(check_writable_dir(&file).is_err());
        let kept = keep_aside(&file, "corrupt").unwrap();
        assert!(!file.exists());
        assert!(kept
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("f.corrupt-"));
        std::fs::write(&file, "y").unwrap();
        let kept2 = keep_aside(&file, "corrupt").unwrap();
        assert_ne!(kept, kept2);
    }
}
