//! The daemon's own drop-in on disk: read it, and change it as a rollback
//! says (disable the jail, or put back the text from before a trial). The
//! text itself is [`crate::rollback`]'s; a file there that the daemon did
//! not write is never touched. Writes run on a blocking thread and replace
//! the file atomically, so a rollback cancelled while it writes leaves the
//! old file or the new one, never half of one.

use std::path::{Path, PathBuf};

use crate::rollback::{Failure, dropin_text, sections, settable};

/// Reads the drop-in; `None` when there is none.
pub(in crate::daemon) fn read_dropin(path: &Path) -> Result<Option<String>, Failure> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Failure::Write {
            path: path.to_owned(),
            source,
        }),
    }
}

/// What a rollback does to the drop-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// `Rollback()`: `[JAIL] enabled = false`.
    Disable,
    /// A trial's rollback: the drop-in exactly as it was before the trial
    /// (`None`: no file).
    Restore(Option<String>),
}

/// Changes the drop-in as `undo` says, for `jail`. A file there that the
/// daemon did not write is never touched.
pub(super) async fn write_dropin(
    path: PathBuf,
    jail: String,
    undo: Undo,
) -> Result<PathBuf, Failure> {
    tokio::task::spawn_blocking(move || {
        let io = |source| Failure::Write {
            path: path.clone(),
            source,
        };
        let existing = read_dropin(&path)?;
        let text = match undo {
            Undo::Disable => Some(dropin_text(existing.as_deref(), &jail, &path)?),
            Undo::Restore(before) => {
                settable(&jail)?;
                sections(existing.as_deref(), &path)?;
                before
            }
        };
        match text {
            Some(text) if existing.as_deref() != Some(text.as_str()) => {
                crate::atomic::write(&path, text.as_bytes(), 0o644).map_err(io)?;
            }
            Some(_) => {}
            None if existing.is_some() => std::fs::remove_file(&path).map_err(io)?,
            None => {}
        }
        Ok(path)
    })
    .await
    .map_err(|e| Failure::Write {
        path: PathBuf::new(),
        source: std::io::Error::other(e.to_string()),
    })?
}
