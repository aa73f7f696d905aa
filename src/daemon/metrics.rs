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
pub async fn run(path: PathBuf, samples: watch::Receiver<Sample>) {
    run_with_gap(path, samples, MIN_GAP).await;
}

async fn run_with_gap(path: PathBuf, mut samples: watch::Receiver<Sample>, gap: Duration) {
    let mut failing: Option<String> = None;
    let mut written: Sample = None;
    let mut last_write: Option<Instant> = None;
    let mut open = true;
    while open && samples.changed().await.is_ok() {
        let mut sample = samples.borrow_and_update().clone();
        if let Some(at) = last_write.filter(|_| !record_changed(&written, &sample)) {
            let until = at + gap;
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
                tracing::debug!("metrics_written");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::Snapshot;

    fn sample(n: u64) -> Sample {
        let snapshot = Snapshot {
            last_probe: chrono::DateTime::from_timestamp(1_790_000_000 + n as i64, 0),
            ..Snapshot::default()
        };
        Some((Arc::new(snapshot), Duration::from_millis(1)))
    }

    fn last_probe(path: &std::path::Path) -> Option<String> {
        std::fs::read_to_string(path).ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("fail2ban_healthd_last_probe_timestamp_seconds "))
                .map(str::to_owned)
        })
    }

    async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let started = Instant::now();
        while !cond() {
            assert!(started.elapsed() < Duration::from_secs(30), "{what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn within_the_gap_only_a_record_change_is_written_and_the_latest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.prom");
        let (tx, rx) = watch::channel(None);
        // A gap far longer than the test: what appears was not waited for.
        let task = tokio::spawn(run_with_gap(path.clone(), rx, Duration::from_secs(600)));
        tx.send_replace(sample(1));
        wait_for("the first write", || last_probe(&path).is_some()).await;
        let first = last_probe(&path);
        for n in 2..50 {
            tx.send_replace(sample(n));
            tokio::task::yield_now().await;
        }
        // A new record is written at once, with the latest probe.
        let mut with_record = (*sample(50).unwrap().0).clone();
        with_record.pending_recovery = Some(crate::monitor::RecoveryRecord {
            jail_name: "alpha".into(),
            activated_at: chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
            detected_at: chrono::DateTime::from_timestamp(1_790_000_050, 0).unwrap(),
            recovered_at: None,
            cause: crate::monitor::Cause::JailNotRunning,
            suspect_jails: vec!["alpha".into()],
            unit_exit: None,
            rolled_back: false,
            auto_rolled_back: false,
            ran_before: false,
        });
        tx.send_replace(Some((Arc::new(with_record), Duration::from_millis(1))));
        wait_for("the record's write", || {
            std::fs::read_to_string(&path).is_ok_and(|t| t.contains("jail=\"alpha\""))
        })
        .await;
        assert_ne!(last_probe(&path), first);
        assert_eq!(last_probe(&path).as_deref(), Some("1790000050"));
        // Stopping removes the file.
        drop(tx);
        task.await.unwrap();
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_flood_of_samples_is_written_about_once_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.prom");
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(run(path.clone(), rx));
        let started = Instant::now();
        let mut n = 0;
        let mut seen = std::collections::HashSet::new();
        while started.elapsed() < Duration::from_millis(3500) {
            n += 1;
            tx.send_replace(sample(n));
            tokio::time::sleep(Duration::from_millis(5)).await;
            if let Some(v) = last_probe(&path) {
                seen.insert(v);
            }
        }
        // 0 s, 1 s, 2 s, 3 s; a loaded machine may write late, never more.
        assert!(
            (1..=5).contains(&seen.len()),
            "{n} samples, {} values",
            seen.len()
        );
        drop(tx);
        task.await.unwrap();
    }
}
