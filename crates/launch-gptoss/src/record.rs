//! Exclusive use of a deployment record while a launch or a shutdown works with it.
//!
//! Two launches writing the same record would both report "ready" and the second would
//! orphan the first deployment. A launch (and `shutdown`) therefore holds an advisory lock
//! (`flock`) on `.<record name>.lock` next to the record from before it reads the record
//! until after it wrote or removed it; a second one fails at once, naming the holder.
//! The lock file is removed on release (and the directory, if the lock created it and it
//! is still empty), so a failed launch leaves nothing behind.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::Classify;

/// Errors of the record lock.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Another process holds the lock.
    #[error(
        "another launch-gptoss{} is launching or stopping the deployment of record {}; wait for it \
         to finish",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        record.display()
    )]
    Busy {
        record: PathBuf,
        holder: Option<u32>,
    },
    /// The lock file cannot be created or locked.
    #[error("cannot lock {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for RecordError {
    fn exit_code(&self) -> i32 {
        pd_common::exit::FAILED
    }
}

/// A held record lock; released (and its file removed) on drop.
#[derive(Debug)]
pub struct RecordLock {
    file: File,
    path: PathBuf,
    /// Directories created for the lock, deepest first (removed on release if empty).
    created: Vec<PathBuf>,
}

/// The lock file of a record: `.<name>.lock` in the record's directory.
pub fn lock_path(record: &Path) -> PathBuf {
    let name = record
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "deployment".into());
    parent_dir(record).join(format!(".{name}.lock"))
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Create `dir` and its missing ancestors; return the ones created, deepest first.
fn create_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    std::fs::create_dir_all(dir)?;
    Ok(missing)
}

#[cfg(unix)]
fn open_lock_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Same file (device and inode)?
#[cfg(unix)]
fn same_file(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(unix)]
fn try_flock(f: &File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock(2) on a file descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

impl RecordLock {
    /// Lock `record` (which need not exist yet) or fail at once if another process holds it.
    #[cfg(unix)]
    pub fn acquire(record: &Path) -> Result<RecordLock, RecordError> {
        let path = lock_path(record);
        let io = |source| RecordError::Io {
            path: path.clone(),
            source,
        };
        let created = create_dirs(&parent_dir(record)).map_err(io)?;
        // The holder removes the file on release: a file locked after it was unlinked
        // (or replaced) protects nothing, so check it is still the one at `path`.
        for _ in 0..20 {
            let mut file = open_lock_file(&path).map_err(io)?;
            if !try_flock(&file).map_err(io)? {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(RecordError::Busy {
                    record: record.to_path_buf(),
                    holder: text.trim().parse().ok(),
                });
            }
            if !same_file(&file, &path) {
                continue;
            }
            let _ = file.set_len(0);
            let _ = file.seek(SeekFrom::Start(0));
            let _ = write!(file, "{}", std::process::id());
            let _ = file.flush();
            return Ok(RecordLock {
                file,
                path,
                created,
            });
        }
        Err(io(std::io::Error::other(
            "the lock file keeps being replaced",
        )))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RecordLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock, then close (releases it).
        #[cfg(unix)]
        if same_file(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
        for d in &self.created {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_and_release_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("state/sub/dep.toml");
        let lock = RecordLock::acquire(&record).unwrap();
        assert!(lock.path().ends_with("state/sub/.dep.toml.lock"));
        let e = RecordLock::acquire(&record).unwrap_err();
        assert!(
            matches!(e, RecordError::Busy { holder: Some(p), .. } if p == std::process::id()),
            "{e}"
        );
        assert!(e.to_string().contains("another launch-gptoss"), "{e}");
        drop(lock);
        assert!(
            !dir.path().join("state").exists(),
            "created directories removed"
        );
        let again = RecordLock::acquire(&record).unwrap();
        std::fs::write(record.parent().unwrap().join("keep"), "x").unwrap();
        drop(again);
        assert!(record.parent().unwrap().exists(), "non-empty dir kept");
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let record = dir.path().join("dep.toml");
        std::os::unix::fs::symlink(&victim, lock_path(&record)).unwrap();
        assert!(RecordLock::acquire(&record).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }
}
