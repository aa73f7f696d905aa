//! Follows fail2ban's systemd unit on the bus and reports its state (active
//! state, `Result`, `ExecMainStatus`, `InvocationID`, `NRestarts`) once at
//! start and at every change, so the monitor can tell a restart from a
//! crash. Under socket activation (the service's `TriggeredBy` names a
//! `.socket` unit listening on fail2ban's socket path) the socket unit is
//! followed too. Without systemd on the bus, or without the unit, it stays
//! quiet and the daemon works from the socket alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use zbus::Connection;

use super::tasks::Stop;
use crate::monitor::UnitState;
use crate::systemd::{FailUnit, ManagerProxy, ReloadingStream, UnitProxy};

/// Sends the unit's state at start and after each change, until the
/// receiver is gone or the daemon stops. Looks again after systemd reloads
/// its units (socket activation may have been switched on), and after a
/// failure, with a growing pause; without systemd on the bus it ends at
/// once.
pub async fn run(
    conn: Connection,
    unit: String,
    socket_path: PathBuf,
    states: mpsc::UnboundedSender<UnitState>,
    mut stop: Stop,
) {
    tokio::select! {
        () = stop.stopped() => tracing::debug!(unit = %unit, "unit_watch_stopped"),
        () = follow_all(&conn, &unit, &socket_path, &states) => {}
    }
}

async fn follow_all(
    conn: &Connection,
    unit: &str,
    socket_path: &Path,
    states: &mpsc::UnboundedSender<UnitState>,
) {
    let mut pause = Duration::from_secs(1);
    loop {
        match follow(conn, unit, socket_path, states).await {
            Ok(Followed::Reloaded) => pause = Duration::from_secs(1),
            Ok(Followed::Done) => return,
            Err(e) if no_systemd(&e) => {
                tracing::info!(unit = %unit, error = %e, "unit_watch_no_systemd");
                return;
            }
            Err(e) => {
                tracing::warn!(unit = %unit, error = %e, "unit_watch_failed");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Why `follow` returned.
enum Followed {
    /// systemd reloaded its units: look at them again.
    Reloaded,
    /// No unit to follow, or nobody listens any more.
    Done,
}

/// Whether the bus says there is no systemd on it.
fn no_systemd(e: &zbus::Error) -> bool {
    let name = match e {
        zbus::Error::MethodError(name, _, _) => name.as_str().to_owned(),
        zbus::Error::FDO(fdo) => match **fdo {
            zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_) => {
                return true;
            }
            _ => return false,
        },
        _ => return false,
    };
    name.ends_with(".ServiceUnknown")
        || name.ends_with(".NameHasNoOwner")
        || name.contains(".Spawn.")
}

/// The units' state, read again a few times if systemd does not answer:
/// a change must not be lost.
async fn read_state(units: &FailUnit<'_>) -> zbus::Result<UnitState> {
    let mut tries = 0;
    loop {
        match units.state().await {
            Ok(state) => return Ok(state),
            Err(e) if tries >= 4 => return Err(e),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What is followed: the units, systemd's reloads, and the change streams
/// of the service and of its `.socket` unit.
struct Watched {
    units: FailUnit<'static>,
    reloads: ReloadingStream,
    service_changes: zbus::proxy::PropertyStream<'static, String>,
    socket_changes: Option<zbus::proxy::PropertyStream<'static, String>>,
}

/// Subscribes to systemd and opens the units; `None` without systemd on
/// the bus or without the unit.
async fn open(conn: &Connection, unit: &str, socket_path: &Path) -> zbus::Result<Option<Watched>> {
    // Asked first, so that a bus without systemd is not asked to start it.
    let systemd = zbus::names::BusName::try_from("org.freedesktop.systemd1")?;
    if !zbus::fdo::DBusProxy::new(conn)
        .await?
        .name_has_owner(systemd)
        .await?
    {
        tracing::info!(unit = %unit, "unit_watch_no_systemd");
        return Ok(None);
    }
    let manager = ManagerProxy::new(conn).await?;
    let reloads = manager.receive_reloading().await?;
    // systemd sends unit property changes only to subscribed clients; a
    // second subscription of this connection is refused, and harmless.
    if let Err(e) = manager.subscribe().await
        && no_systemd(&e)
    {
        return Err(e);
    }
    let Some(units) = FailUnit::open(conn, unit, socket_path).await? else {
        tracing::info!(unit = %unit, "unit_watch_no_unit");
        return Ok(None);
    };
    if let Some((name, _)) = &units.socket {
        tracing::info!(unit = %unit, socket_unit = %name, "fail2ban_socket_activated");
    }
    // The change streams need cached proxies of their own.
    let watched = cached(conn, &units.unit).await?;
    let service_changes = watched.receive_active_state_changed().await;
    let socket_changes = match &units.socket {
        Some((_, proxy)) => Some(
            cached(conn, proxy)
                .await?
                .receive_active_state_changed()
                .await,
        ),
        None => None,
    };
    Ok(Some(Watched {
        units,
        reloads,
        service_changes,
        socket_changes,
    }))
}

/// Follows the units until systemd reloads, the receiver is gone, or
/// systemd's signals end.
async fn follow(
    conn: &Connection,
    unit: &str,
    socket_path: &Path,
    states: &mpsc::UnboundedSender<UnitState>,
) -> zbus::Result<Followed> {
    let Some(Watched {
        units,
        mut reloads,
        mut service_changes,
        mut socket_changes,
    }) = open(conn, unit, socket_path).await?
    else {
        return Ok(Followed::Done);
    };
    tracing::info!(unit = %unit, "unit_watch_started");
    let mut last = read_state(&units).await?;
    if states.send(last.clone()).is_err() {
        return Ok(Followed::Done);
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
            reload = reloads.next() => match reload {
                None => break,
                Some(signal) => {
                    if signal.args().is_ok_and(|a| !*a.active()) {
                        return Ok(Followed::Reloaded);
                    }
                    continue;
                }
            },
        }
        let state = read_state(&units).await?;
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
            return Ok(Followed::Done);
        }
    }
    Err(zbus::Error::Failure("systemd's signals ended".into()))
}

async fn cached<'a>(conn: &Connection, unit: &UnitProxy<'_>) -> zbus::Result<UnitProxy<'a>> {
    UnitProxy::builder(conn)
        .path(unit.inner().path().to_owned())
        .build()
        .await
}
