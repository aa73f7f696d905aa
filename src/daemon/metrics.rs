//! Writes the Prometheus text file after every probe, off the owner task.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::monitor::Snapshot;

/// What one write needs: the snapshot after a probe and the probe's time.
pub type Sample = Option<(Arc<Snapshot>, Duration)>;

/// Writes each sample (the latest, when several arrive during a write)
/// until the sender is gone, then removes the file: a daemon that stopped
/// must not leave numbers that look current. A failure is logged when it
/// first happens and when it clears.
pub async fn run(path: PathBuf, mut samples: watch::Receiver<Sample>) {
    let mut failing: Option<String> = None;
    while samples.changed().await.is_ok() {
        let Some((snapshot, took)) = samples.borrow_and_update().clone() else {
            continue;
        };
        let text = crate::metrics::render(&snapshot, Some(took));
        let target = path.clone();
        let result = tokio::task::spawn_blocking(move || {
            crate::atomic::write(&target, text.as_bytes(), 0o644)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match result {
            Ok(()) => {
                if failing.take().is_some() {
                    tracing::info!(path = %path.display(), "metrics_written_again");
                }
            }
            Err(e) => {
                let e = e.to_string();
                if failing.as_deref() != Some(e.as_str()) {
                    tracing::warn!(path = %path.display(), error = %e, "metrics_not_written");
                }
                failing = Some(e);
            }
        }
    }
    let _ = tokio::fs::remove_file(&path).await;
}
