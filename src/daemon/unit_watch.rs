//! Follows fail2ban's systemd unit on the bus and reports its state (active
//! state, `Result`, `ExecMainStatus`, `InvocationID`, `NRestarts`) once at
//! start and at every change, so the monitor can tell a restart from a
//! crash. Under socket activation (the service's `TriggeredBy` names a
//! `.socket` unit listening on fail2ban's socket path) the socket unit is
//! followed too. Without systemd on the bus, or without the unit, it stays
//! quiet and the daemon works from the socket alone.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use zbus::Connection;

use crate::monitor::UnitState;
use crate::systemd::{FailUnit, UnitProxy};

/// Sends the unit's state at start and after each change, until the
/// receiver is gone.
pub async fn run(
    conn: Connection,
    unit: String,
    socket_path: PathBuf,
    states: mpsc::UnboundedSender<UnitState>,
) {
    if let Err(e) = follow(&conn, &unit, &socket_path, &states).await {
        tracing::debug!(unit = %unit, error = %e, "unit_watch_quiet");
    }
}

async fn follow(
    conn: &Connection,
    unit: &str,
    socket_path: &Path,
    states: &mpsc::UnboundedSender<UnitState>,
) -> zbus::Result<()> {
    // systemd sends unit property changes only to subscribed clients.
    crate::systemd::ManagerProxy::new(conn)
        .await?
        .subscribe()
        .await?;
    let Some(units) = FailUnit::open(conn, unit, socket_path).await? else {
        tracing::info!(unit = %unit, "unit_watch_no_unit");
        return Ok(());
    };
    if let Some((name, _)) = &units.socket {
        tracing::info!(unit = %unit, socket_unit = %name, "fail2ban_socket_activated");
    }
    // The change streams need cached proxies of their own.
    let watched = cached(conn, &units.unit).await?;
    let mut service_changes = watched.receive_active_state_changed().await;
    let socket_watched = match &units.socket {
        Some((_, proxy)) => Some(cached(conn, proxy).await?),
        None => None,
    };
    let mut socket_changes = match &socket_watched {
        Some(p) => Some(p.receive_active_state_changed().await),
        None => None,
    };
    tracing::info!(unit = %unit, "unit_watch_started");
    let mut last = units.state().await?;
    if states.send(last.clone()).is_err() {
        return Ok(());
    }
    loop {
        let socket_next = async {
            match socket_changes.as_mut() {
                Some(s) => s.next().await.map(|_| ()),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            change = service_changes.next() => if change.is_none() { break },
            change = socket_next => if change.is_none() { break },
        }
        let Ok(state) = units.state().await else {
            continue;
        };
        if state == last {
            continue;
        }
        tracing::info!(
            unit = %unit,
            state = %state.active_state,
            result = %state.result,
            exit_status = state.exit_status,
            n_restarts = state.n_restarts,
            socket_state = state.socket_state.as_deref().unwrap_or(""),
            "fail2ban_unit_changed"
        );
        last = state.clone();
        if states.send(state).is_err() {
            break;
        }
    }
    Ok(())
}

async fn cached<'a>(conn: &Connection, unit: &UnitProxy<'_>) -> zbus::Result<UnitProxy<'a>> {
    UnitProxy::builder(conn)
        .path(unit.inner().path().to_owned())
        .build()
        .await
}
