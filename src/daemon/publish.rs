//! The bus publisher: one `PropertiesChanged` per step carrying every
//! property that changed, then the step's signals, in order.

use std::borrow::Cow;
use std::sync::Arc;

use tokio::sync::mpsc;
use zbus::Connection;
use zbus::object_server::{Interface, SignalEmitter};

use crate::bus::PATH;
use crate::bus::interface::Health;
use crate::bus::values;
use crate::monitor::{Event, Snapshot};

/// One step of the owner task, to announce.
#[derive(Debug)]
pub struct Job {
    /// The snapshot published before the step.
    pub before: Arc<Snapshot>,
    /// The snapshot after it.
    pub after: Arc<Snapshot>,
    /// The step's events, in order.
    pub events: Vec<Event>,
}

/// Announces jobs until the sender is dropped.
pub async fn run(conn: Connection, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let emitter = match SignalEmitter::new(&conn, PATH) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "cannot_emit_signals");
            return;
        }
    };
    while let Some(job) = jobs.recv().await {
        if let Err(e) = announce(&emitter, job).await {
            tracing::warn!(error = %e, "signal_emission_failed");
        }
    }
}

async fn announce(emitter: &SignalEmitter<'_>, job: Job) -> zbus::Result<()> {
    let changed = values::changed(&job.before, &job.after);
    if !changed.is_empty() {
        zbus::fdo::Properties::properties_changed(
            emitter,
            Health::name(),
            changed,
            Cow::Borrowed(&[]),
        )
        .await?;
    }
    for event in job.events {
        match event {
            Event::CameOnline { version } => Health::came_online(emitter, &version).await?,
            Event::WentOffline { reason } => Health::went_offline(emitter, reason.code()).await?,
            Event::CrashDetected { record, .. } => {
                Health::activation_crash_detected(
                    emitter,
                    &record.jail_name,
                    values::usec(Some(record.activated_at)),
                    values::usec(Some(record.detected_at)),
                    record.cause.code(),
                )
                .await?;
            }
            Event::RecoveryResolved { jail, recovered_at } => {
                Health::recovery_resolved(emitter, &jail, values::usec(Some(recovered_at))).await?;
            }
            Event::TrialEnded { jail, kept, cause } => {
                Health::trial_ended(emitter, &jail, kept, cause).await?;
            }
        }
    }
    Ok(())
}
