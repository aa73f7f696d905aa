//! The check's private directory: a bounded copy of fail2ban's
//! configuration with the drop-in text in place, and an empty working
//! directory for the children. It holds no symbolic link, so nothing
//! written into it lands elsewhere; it is removed when dropped.

use std::fs;
use std::io::{self, Read as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::CheckError;

/// Bounds of the private copy.
#[derive(Debug, Clone, Copy)]
pub(super) struct CopyLimits {
    entries: usize,
    bytes: u64,
    depth: usize,
}

pub(super) const COPY_LIMITS: CopyLimits = CopyLimits {
    entries: 8192,
    bytes: 32 << 20,
    depth: 32,
};

/// A private directory holding `conf/` (the copy) and `work/` (an empty
/// working directory for the children); removed on drop.
#[derive(Debug)]
pub(super) struct PrivateCopy {
    pub(super) root: PathBuf,
    pub(super) conf: PathBuf,
    pub(super) work: PathBuf,
}

impl PrivateCopy {
    /// Creates the directory, copies `config_dir` into it and writes the
    /// drop-in text at `dropin` (relative) in the copy. Runs on the
    /// blocking pool; a check dropped meanwhile still removes it.
    pub(super) async fn make(
        config_dir: PathBuf,
        dropin: PathBuf,
        text: String,
    ) -> Result<Self, CheckError> {
        let source = config_dir.clone();
        tokio::task::spawn_blocking(move || {
            let copy = Self::create_in(&std::env::temp_dir())?;
            copy_tree(&config_dir, &copy.conf, COPY_LIMITS)?;
            copy.write_dropin(&dropin, &text)?;
            Ok(copy)
        })
        .await
        .map_err(join_failed(source))?
    }

    /// A new directory under `parent`, mode 0700, with a name no one else
    /// can have taken: `mkdir` fails on anything already there.
    fn create_in(parent: &Path) -> Result<Self, CheckError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut last = None;
        for _ in 0..16 {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let root = parent.join(format!(
                "fail2ban-healthd-check-{}-{nanos:08x}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match fs::DirBuilder::new().mode(0o700).create(&root) {
                Ok(()) => {
                    let copy = Self {
                        conf: root.join("conf"),
                        work: root.join("work"),
                        root,
                    };
                    fs::DirBuilder::new()
                        .mode(0o700)
                        .create(&copy.work)
                        .map_err(|error| CheckError::Copy {
                            path: copy.work.clone(),
                            error,
                        })?;
                    return Ok(copy);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(error) => return Err(CheckError::Copy { path: root, error }),
            }
        }
        Err(CheckError::Copy {
            path: parent.to_path_buf(),
            error: last.unwrap_or_else(|| io::Error::other("no free name")),
        })
    }

    /// Puts `text` at `dropin` in the copy, replacing the copy of the real
    /// drop-in. The copy holds no symbolic links, so nothing written here
    /// can land outside it.
    fn write_dropin(&self, dropin: &Path, text: &str) -> Result<(), CheckError> {
        let target = self.conf.join(dropin);
        let failed = |error| CheckError::Copy {
            path: target.clone(),
            error,
        };
        if let Some(parent) = target.parent() {
            fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(parent)
                .map_err(failed)?;
        }
        match fs::remove_file(&target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)
            .and_then(|mut f| io::Write::write_all(&mut f, text.as_bytes()))
            .map_err(failed)
    }

    /// Takes the drop-in out of the copy again.
    pub(super) async fn remove_dropin(&self, dropin: PathBuf) -> Result<(), CheckError> {
        let target = self.conf.join(dropin);
        let shown = target.clone();
        tokio::task::spawn_blocking(move || {
            fs::remove_file(&target).map_err(|error| CheckError::Copy {
                path: target,
                error,
            })
        })
        .await
        .map_err(join_failed(shown))?
    }

    /// Removes the directory on the blocking pool.
    pub(super) async fn dispose(self) {
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }
}

/// A blocking task that panicked, as a failed copy of `path`.
fn join_failed(path: PathBuf) -> impl FnOnce(tokio::task::JoinError) -> CheckError {
    move |e| CheckError::Copy {
        path,
        error: io::Error::other(e.to_string()),
    }
}

impl Drop for PrivateCopy {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// What the copy has used of its bounds.
struct Budget {
    source: PathBuf,
    limits: CopyLimits,
    entries: usize,
    bytes: u64,
    /// Directories being copied, by device and inode: a link back to one
    /// of them is a loop, skipped.
    ancestors: Vec<(u64, u64)>,
}

impl Budget {
    fn too_large(&self, what: String) -> CheckError {
        CheckError::TooLarge {
            dir: self.source.clone(),
            what,
        }
    }
}

/// Copies the directory `src` to the new directory `dst`, following
/// symbolic links (dangling ones and loops are skipped), regular files and
/// directories only, within `limits`.
fn copy_tree(src: &Path, dst: &Path, limits: CopyLimits) -> Result<(), CheckError> {
    let meta = fs::metadata(src).map_err(|error| CheckError::Copy {
        path: src.to_path_buf(),
        error,
    })?;
    if !meta.is_dir() {
        return Err(CheckError::Copy {
            path: src.to_path_buf(),
            error: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let mut budget = Budget {
        source: src.to_path_buf(),
        limits,
        entries: 0,
        bytes: 0,
        ancestors: Vec::new(),
    };
    copy_dir(src, &meta, dst, &mut budget)
}

fn copy_dir(
    src: &Path,
    meta: &fs::Metadata,
    dst: &Path,
    budget: &mut Budget,
) -> Result<(), CheckError> {
    if budget.ancestors.len() >= budget.limits.depth {
        return Err(budget.too_large(format!(
            "directories nested deeper than {}",
            budget.limits.depth
        )));
    }
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |error| CheckError::Copy { path, error }
    };
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dst)
        .map_err(failed(dst))?;
    budget.ancestors.push((meta.dev(), meta.ino()));
    for entry in fs::read_dir(src).map_err(failed(src))? {
        let entry = entry.map_err(failed(src))?;
        let path = entry.path();
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            // A dangling link, or a loop of links: nothing fail2ban reads.
            Err(_) if fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink()) => continue,
            Err(error) => return Err(CheckError::Copy { path, error }),
        };
        budget.entries += 1;
        if budget.entries > budget.limits.entries {
            return Err(budget.too_large(format!("more than {} entries", budget.limits.entries)));
        }
        let target = dst.join(entry.file_name());
        if meta.is_dir() {
            if !budget.ancestors.contains(&(meta.dev(), meta.ino())) {
                copy_dir(&path, &meta, &target, budget)?;
            }
        } else if meta.is_file() {
            copy_file(&path, &target, budget)?;
        }
        // Sockets, FIFOs and devices are no configuration: skipped, and a
        // FIFO is never opened.
    }
    budget.ancestors.pop();
    Ok(())
}

fn copy_file(src: &Path, dst: &Path, budget: &mut Budget) -> Result<(), CheckError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |error| CheckError::Copy { path, error }
    };
    // Non-blocking: a FIFO put in the file's place since it was looked at
    // must not hang the open; a regular file reads as ever.
    let from = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(src)
        .map_err(failed(src))?;
    // The entry may have been replaced since it was looked at.
    if !from.metadata().map_err(failed(src))?.is_file() {
        return Ok(());
    }
    let mut to = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .map_err(failed(dst))?;
    let room = budget.limits.bytes - budget.bytes;
    let copied = io::copy(&mut from.take(room + 1), &mut to).map_err(failed(dst))?;
    budget.bytes += copied;
    if budget.bytes > budget.limits.bytes {
        return Err(budget.too_large(format!(
            "more than {} MiB of files",
            budget.limits.bytes >> 20
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("conf");
        fs::create_dir_all(c.join("filter.d/sub")).unwrap();
        fs::write(c.join("jail.conf"), "[alpha]\n").unwrap();
        fs::write(c.join("filter.d/t.conf"), "[Definition]\n").unwrap();
        fs::write(c.join("filter.d/sub/deep.conf"), "deep").unwrap();
        fs::write(dir.path().join("outside.conf"), "outside").unwrap();
        symlink(dir.path().join("outside.conf"), c.join("linked.conf")).unwrap();
        symlink(c.join("filter.d"), c.join("filters")).unwrap();
        symlink("/nonexistent/x", c.join("dangling.conf")).unwrap();
        symlink(&c, c.join("filter.d/sub/loop")).unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(c.join("fifo"))
            .status()
            .unwrap();
        assert!(fifo.success());
        dir
    }

    #[test]
    fn the_copy_follows_links_skips_fifos_dangling_links_and_loops() {
        let dir = tree();
        let dst = dir.path().join("copy");
        copy_tree(&dir.path().join("conf"), &dst, COPY_LIMITS).unwrap();
        assert_eq!(
            fs::read_to_string(dst.join("jail.conf")).unwrap(),
            "[alpha]\n"
        );
        assert_eq!(
            fs::read_to_string(dst.join("filter.d/sub/deep.conf")).unwrap(),
            "deep"
        );
        assert_eq!(
            fs::read_to_string(dst.join("filters/t.conf")).unwrap(),
            "[Definition]\n"
        );
        // Links become what they point to: nothing written in the copy
        // can reach outside it.
        let linked = fs::symlink_metadata(dst.join("linked.conf")).unwrap();
        assert!(linked.is_file());
        assert_eq!(
            fs::read_to_string(dst.join("linked.conf")).unwrap(),
            "outside"
        );
        assert!(!dst.join("dangling.conf").exists());
        assert!(!dst.join("fifo").exists());
        assert!(!dst.join("filter.d/sub/loop").exists());
        assert_eq!(
            fs::metadata(&dst).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn the_copy_is_bounded() {
        let dir = tree();
        let src = dir.path().join("conf");
        let cases = [
            (
                CopyLimits {
                    entries: 3,
                    ..COPY_LIMITS
                },
                "more than 3 entries",
            ),
            (
                CopyLimits {
                    bytes: 5,
                    ..COPY_LIMITS
                },
                "MiB of files",
            ),
            (
                CopyLimits {
                    depth: 2,
                    ..COPY_LIMITS
                },
                "deeper than 2",
            ),
        ];
        for (i, (limits, what)) in cases.into_iter().enumerate() {
            let e = copy_tree(&src, &dir.path().join(format!("c{i}")), limits).unwrap_err();
            assert!(
                matches!(&e, CheckError::TooLarge { what: w, .. } if w.contains(what)),
                "{e}"
            );
            assert!(e.to_string().contains(&src.display().to_string()), "{e}");
        }
        let e = copy_tree(
            &dir.path().join("nonexistent"),
            &dir.path().join("n"),
            COPY_LIMITS,
        )
        .unwrap_err();
        assert!(matches!(e, CheckError::Copy { .. }), "{e}");
    }

    #[test]
    fn the_private_directory_is_0700_holds_the_dropin_and_goes_on_drop() {
        let dir = tree();
        let copy = PrivateCopy::create_in(dir.path()).unwrap();
        copy_tree(&dir.path().join("conf"), &copy.conf, COPY_LIMITS).unwrap();
        let root = copy.root.clone();
        assert_eq!(
            fs::metadata(&root).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // The copy of a link to a file outside is replaced, never written
        // through.
        copy.write_dropin(Path::new("linked.conf"), "[alpha]\nenabled = true\n")
            .unwrap();
        copy.write_dropin(Path::new("jail.d/new.local"), "[beta]\n")
            .unwrap();
        assert_eq!(
            fs::read_to_string(copy.conf.join("linked.conf")).unwrap(),
            "[alpha]\nenabled = true\n"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("outside.conf")).unwrap(),
            "outside"
        );
        assert_eq!(
            fs::read_to_string(copy.conf.join("jail.d/new.local")).unwrap(),
            "[beta]\n"
        );
        let other = PrivateCopy::create_in(dir.path()).unwrap();
        assert_ne!(other.root, root);
        drop(copy);
        assert!(!root.exists());
    }
}
