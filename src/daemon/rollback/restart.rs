//! How fail2ban is brought back after a rollback: through systemd as its
//! unit (socket-activated or not), or with the configured commands; and
//! the restart of the unit itself, checked by the states systemd reports.

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;
use zbus::Connection;

use super::job::{job_watch, unit_proxy, wait_job};
use crate::rollback::Failure;
use crate::systemd::{ManagerProxy, UnitProxy, activating_socket};

/// How fail2ban is brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::daemon) enum Restart {
    /// Through systemd, as its unit.
    Unit,
    /// With the configured commands.
    Commands,
}

/// Whether this process runs as a systemd service (its own sandbox then
/// applies to any command it starts).
fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some()
}

/// How to bring fail2ban back: as `unit` when systemd knows it and it is
/// not merely installed and switched off (running, failed, or enabled), or
/// whenever this daemon is itself a systemd service (a server started by a
/// command would run inside this daemon's sandbox and cgroup); otherwise
/// with the commands.
pub(in crate::daemon) async fn how_to_restart(
    conn: &Connection,
    unit: &str,
    socket: &Path,
) -> Result<Restart, Failure> {
    let sandboxed = under_systemd();
    let refuse = || {
        Failure::NoWayToRestart(format!(
            "fail2ban-healthd runs as a systemd service and fail2ban is not a systemd unit it \
             knows ({}): a server it started would run inside its sandbox; set fail2ban_unit",
            if unit.is_empty() {
                "fail2ban_unit is empty"
            } else {
                unit
            }
        ))
    };
    if unit.is_empty() {
        return if sandboxed {
            Err(refuse())
        } else {
            Ok(Restart::Commands)
        };
    }
    let check = async {
        let manager = ManagerProxy::new(conn).await?;
        let path = manager.load_unit(unit).await?;
        let u = UnitProxy::builder(conn)
            .path(path)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        let loaded = u.load_state().await? == "loaded";
        let state = u.active_state().await?;
        let file_state = u.unit_file_state().await.unwrap_or_default();
        let activated = activating_socket(conn, &manager, &u, socket)
            .await?
            .is_some();
        let in_use = state != "inactive"
            || file_state.starts_with("enabled")
            || file_state == "static"
            || activated;
        zbus::Result::Ok(loaded && (in_use || sandboxed))
    };
    match tokio::time::timeout(Duration::from_secs(5), check).await {
        Ok(Ok(true)) => Ok(Restart::Unit),
        Ok(Ok(false)) | Err(_) if !sandboxed => Ok(Restart::Commands),
        Ok(Err(e)) if !sandboxed => {
            tracing::debug!(unit, error = %e, "rollback_no_systemd_unit");
            Ok(Restart::Commands)
        }
        _ => Err(refuse()),
    }
}

/// Restarts `unit` and waits for systemd's job to end. Under socket
/// activation the `.socket` unit that listens on `socket` is reset and
/// started first, so that both units end up as they should be: the socket
/// listening, the service active.
pub(super) async fn restart_unit(
    conn: &Connection,
    unit: &str,
    socket: &Path,
    deadline: Instant,
) -> Result<(), String> {
    let (manager, mut removed) = job_watch(conn).await?;
    let service = unit_proxy(conn, &manager, unit).await?;
    let socket_unit = activating_socket(conn, &manager, &service, socket)
        .await
        .map_err(|e| e.to_string())?;
    // A failed unit may also have hit its start rate limit. The service is
    // reset first: resetting a service that hit its limit fails a socket
    // that already listens again (service-start-limit-hit).
    let _ = manager.reset_failed_unit(unit).await;
    if let Some((name, _)) = &socket_unit {
        tracing::info!(unit, socket_unit = %name, "rollback_socket_activated");
        // A failed socket listens again only once reset.
        let _ = manager.reset_failed_unit(name).await;
        let job = manager
            .start_unit(name, "replace")
            .await
            .map_err(|e| format!("systemd refused to start {name}: {e}"))?;
        wait_job(&mut removed, &job, name, deadline).await?;
    }
    let before = service.invocation_id().await.unwrap_or_default();
    let job = manager
        .restart_unit(unit, "replace")
        .await
        .map_err(|e| format!("systemd refused to restart {unit}: {e}"))?;
    if let Err(why) = wait_job(&mut removed, &job, unit, deadline).await {
        // A job that failed may still end with a new server running: a
        // fail2ban whose reload stopped every jail may fail its stop, and
        // the unit's own Restart= starts it again. A new invocation,
        // active, is what counts; anything else is the job's failure.
        if !restarted_since(&service, &before, deadline).await {
            return Err(why);
        }
        tracing::warn!(unit, error = %why, "rollback_restart_job_failed_unit_restarted");
    }
    // A job that is done says the start was queued and began; the states
    // say whether both units are where they should be.
    let mut expected = vec![(unit.to_owned(), service)];
    if let Some((name, _)) = socket_unit {
        let proxy = unit_proxy(conn, &manager, &name).await?;
        expected.push((name, proxy));
    }
    for (name, proxy) in expected {
        let state = proxy.active_state().await.map_err(|e| e.to_string())?;
        if state != "active" {
            return Err(format!("{name} is {state} after its restart"));
        }
    }
    Ok(())
}

/// Waits until `unit` is active in an invocation other than `before`, or
/// until `deadline`; whether it is.
async fn restarted_since(unit: &UnitProxy<'_>, before: &[u8], deadline: Instant) -> bool {
    loop {
        let active = unit.active_state().await.is_ok_and(|s| s == "active");
        let invocation = unit.invocation_id().await.unwrap_or_default();
        if active && !invocation.is_empty() && invocation != before {
            return true;
        }
        if Instant::now() + Duration::from_millis(100) >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
