//! Follows fail2ban's systemd unit on the bus: when it leaves the active
//! state, reports how it ended (`Result`, `ExecMainStatus`). Without systemd
//! on the bus, or without the unit, it stays quiet.

use super::systemd::{ManagerProxy, ServiceProxy, UnitProxy};
use crate::monitor::UnitExit;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use zbus::Connection;

/// Sends an exit each time the unit leaves the active state, until the
/// receiver is gone.
pub async fn run(conn: Connection, unit: String, exits: mpsc::UnboundedSender<UnitExit>) {
    if let Err(e) = follow(&conn, &unit, &exits).await {
        tracing::debug!(unit = %unit, error = %e, "unit_watch_quiet");
    }
}

async fn follow(
    conn: &Connection,
    unit: &str,
    exits: &mpsc::UnboundedSender<UnitExit>,
) -> zbus::Result<()> {
    let manager = ManagerProxy::new(conn).await?;
    let path = manager.load_unit(unit).await?;
    // systemd sends unit property changes only to subscribed clients.
    manager.subscribe().await?;
    let unit_proxy = UnitProxy::builder(conn).path(path.clone()).build().await?;
    let service = ServiceProxy::builder(conn)
        .path(path)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    tracing::info!(unit = %unit, "unit_watch_started");
    let mut states = unit_proxy.receive_active_state_changed().await;
    let up = |s: &str| matches!(s, "active" | "reloading" | "refreshing");
    let mut was_up = unit_proxy.active_state().await.is_ok_and(|s| up(&s));
    while let Some(change) = states.next().await {
        let Ok(state) = change.get().await else {
            continue;
        };
        // A reload is not a stop, and while deactivating the result is not
        // final yet: wait for the state after it.
        if state == "deactivating" {
            continue;
        }
        if was_up && !up(&state) {
            let exit = UnitExit {
                result: service.result().await.unwrap_or_default(),
                exit_status: service.exec_main_status().await.unwrap_or_default(),
            };
            tracing::info!(
                unit = %unit,
                state = %state,
                result = %exit.result,
                exit_status = exit.exit_status,
                "fail2ban_unit_stopped"
            );
            if exits.send(exit).is_err() {
                break;
            }
        }
        was_up = up(&state);
    }
    Ok(())
}
