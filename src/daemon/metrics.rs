//! Writes the Prometheus text file after probes, off the owner task: at
//! most once a second (the latest sample wins), and at once when the
//! recovery record changes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::monitor::Snapshot;

/// What one write needs: the snapshot after a probe and the probe's time.
pub type Sample = Option<(Arc<Snapshot>, Duration)>;

/// At most one write in this time, unless the record changed.
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// Whether two samples differ in their recovery record.
fn record_changed(written: &Sample, next: &Sample) -> bool {
    let record = |s: &Sample| s.as_ref().map(|(snap, _)| snap.pending_recovery.clone());
    record(written) != record(next)
}

/// Writes samples until the sender is gone, then removes the file: a
/// daemon that stopped must not leave numbers that look current. Samples
/// arriving within [`MIN_GAP`] of the last write wait for the gap's end,
/// the latest of them winning, unless one changes the recovery record:
/// that is written at once. A failure is logged when it first happens and
/// when it clears.
pub async fn run(path: PathBuf, mut samples: watch::Receiver<Sample>) {
    let mut failing: Option<String> = None;
    let mut written: Sample = None;
    let mut last_write: Option<Instant> = None;
    let mut open = true;
    while open && samples.changed().await.is_ok() {
        let mut sample = samples.borrow_and_update().clone();
        if let Some(at) = last_write.filter(|_| !record_changed(&written, &sample)) {
            let until = at + MIN_GAP;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => break,
                    changed = samples.changed() => {
                        if changed.is_err() {
                            open = false;
                            break;
                        }
                        sample = samples.borrow_and_update().clone();
                        if record_changed(&written, &sample) {
                            break;
                        }
                    }
                }
            }
            if !open {
                break;
            }
        }
        let Some((snapshot, took)) = sample.clone() else {
            continue;
        };
        last_write = Some(Instant::now());
        written = sample;
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
