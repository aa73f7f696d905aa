//! The state-file writer: saves the monitor's memory after every change,
//! off the owner task, the latest value winning when changes come faster
//! than the disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::monitor::Memory;
use crate::state;

/// After a failed write, how long until the next try.
const RETRY: Duration = Duration::from_secs(5);

/// Writes each new memory until the sender is dropped, then the last one,
/// and tells `saved` each memory once it is on disk. A failed write (a full
/// disk, say) is tried again until it succeeds.
pub async fn run(
    path: PathBuf,
    mut memory: watch::Receiver<Arc<Memory>>,
    saved: watch::Sender<Arc<Memory>>,
) {
    // What is on disk already (restored from it, or nothing yet).
    let mut written = memory.borrow_and_update().clone();
    let mut failing = false;
    loop {
        let closed = if failing {
            tokio::select! {
                changed = memory.changed() => changed.is_err(),
                () = tokio::time::sleep(RETRY) => false,
            }
        } else {
            memory.changed().await.is_err()
        };
        let current = memory.borrow_and_update().clone();
        if !Arc::ptr_eq(&written, &current) {
            let (p, m) = (path.clone(), current.clone());
            match tokio::task::spawn_blocking(move || state::save(&p, &m)).await {
                Ok(Ok(())) => {
                    written = current;
                    saved.send_replace(written.clone());
                    failing = false;
                }
                Ok(Err(e)) => {
                    tracing::warn!(path = %path.display(), error = %e, "state_file_write_failed");
                    failing = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "state_file_write_failed");
                    failing = true;
                }
            }
        }
        if closed {
            return;
        }
    }
}
