//! systemd's jobs: subscribe before asking for one, and wait for its end
//! (`JobRemoved`) until a deadline. Shared by rollbacks and trials.

use futures_util::StreamExt as _;
use tokio::time::Instant;
use zbus::Connection;

use crate::systemd::{JobRemovedStream, ManagerProxy, UnitProxy};

/// systemd's manager, subscribed, with the stream of ended jobs opened
/// before any job is asked for.
pub(in crate::daemon) async fn job_watch(
    conn: &Connection,
) -> Result<(ManagerProxy<'static>, JobRemovedStream), String> {
    let manager = ManagerProxy::new(conn).await.map_err(|e| e.to_string())?;
    // The unit watch may have subscribed this connection already
    // (AlreadySubscribed): either way systemd sends the job's end.
    if let Err(e) = manager.subscribe().await {
        tracing::debug!(error = %e, "systemd_subscribe");
    }
    let removed = manager
        .receive_job_removed()
        .await
        .map_err(|e| e.to_string())?;
    Ok((manager, removed))
}

/// A proxy on `unit`, loaded by systemd, whose properties are read anew
/// each time.
pub(in crate::daemon) async fn unit_proxy<'a>(
    conn: &Connection,
    manager: &ManagerProxy<'_>,
    unit: &str,
) -> Result<UnitProxy<'a>, String> {
    let path = manager.load_unit(unit).await.map_err(|e| e.to_string())?;
    UnitProxy::builder(conn)
        .path(path)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(|e| e.to_string())
}

/// Waits until systemd removes `job`, which must end `done`.
pub(in crate::daemon) async fn wait_job(
    removed: &mut JobRemovedStream,
    job: &zbus::OwnedObjectPath,
    unit: &str,
    deadline: Instant,
) -> Result<(), String> {
    let wait = async {
        while let Some(signal) = removed.next().await {
            let Ok(args) = signal.args() else { continue };
            if args.job() == job {
                return Some(args.result().clone());
            }
        }
        None
    };
    match tokio::time::timeout_at(deadline, wait).await {
        Ok(Some(result)) if result == "done" => Ok(()),
        Ok(Some(result)) => Err(format!("systemd's job for {unit} ended with {result:?}")),
        Ok(None) => Err("lost systemd's signals".into()),
        Err(_) => Err(format!("systemd's job for {unit} did not end in time")),
    }
}
