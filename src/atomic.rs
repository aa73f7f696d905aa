//! Replacing a file atomically: readers see the old content or the new,
//! never a part, also after a crash or a power cut.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Writes `bytes` to a new temporary file beside `path` with permissions
/// `mode`, syncs it, renames it over `path` and syncs the directory. The
/// directory must exist.
///
/// The temporary file is created exclusively (`O_EXCL`, which never
/// follows a symbolic link), so a link planted at its name by someone who
/// may write the directory makes the write fail instead of redirecting it;
/// the rename replaces a link at `path` itself, never its target.
///
/// # Errors
/// Any failure of those steps; `path` is then untouched and the temporary
/// file removed.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    // One left by a crash of this same pid: removing it removes a link,
    // not what a link points to.
    let _ = fs::remove_file(&tmp);
    let mut created = false;
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        created = true;
        f.write_all(bytes)?;
        // The mode given at creation is reduced by the umask; a file that
        // others must read gets its mode exactly.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() && created {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn replaces_with_the_given_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.local");
        fs::write(&p, "old").unwrap();
        write(&p, b"new", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_link_at_the_target_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let p = dir.path().join("f.prom");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        write(&p, b"new", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert!(!fs::symlink_metadata(&p).unwrap().file_type().is_symlink());
    }

    #[test]
    fn a_missing_directory_is_an_error_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/f.local");
        assert!(write(&p, b"x", 0o644).is_err());
        assert!(!dir.path().join("no").exists());
    }
}
