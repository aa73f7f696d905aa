//! The parts of systemd's D-Bus API the daemon uses: following fail2ban's
//! unit (and its `.socket` under socket activation) and restarting it
//! after a rollback.
//!
//! The interfaces themselves are declared in `proxy`; this file reads
//! fail2ban's units through them.

use std::path::Path;

use zbus::{Connection, OwnedObjectPath};

use crate::monitor::UnitState;

mod proxy;

// Every item the proxy macros generate (`ManagerProxy`, `JobRemovedStream`,
// ...) stays where the rest of the crate has always found it.
pub use proxy::*;

/// fail2ban's service unit, and its `.socket` unit under socket
/// activation, read through uncached proxies so every read is fresh.
pub struct FailUnit<'a> {
    /// The service's name, e.g. `fail2ban.service`.
    pub name: String,
    /// The service's `Unit` interface.
    pub unit: UnitProxy<'a>,
    service: ServiceProxy<'a>,
    /// Under socket activation, the `.socket` unit's name and interface.
    pub socket: Option<(String, UnitProxy<'a>)>,
}

impl<'a> FailUnit<'a> {
    /// Finds `unit` and the `.socket` unit (named in its `TriggeredBy`) that
    /// listens on `socket_path`; `None` when systemd does not know `unit`.
    ///
    /// # Errors
    /// A failed call to systemd.
    pub async fn open(
        conn: &Connection,
        unit: &str,
        socket_path: &Path,
    ) -> zbus::Result<Option<FailUnit<'a>>> {
        let manager = ManagerProxy::new(conn).await?;
        let path = manager.load_unit(unit).await?;
        let service_unit = uncached::<UnitProxy<'a>>(conn, path.clone()).await?;
        if service_unit.load_state().await? != "loaded" {
            return Ok(None);
        }
        let socket = match activating_socket(conn, &manager, &service_unit, socket_path).await? {
            Some((name, path)) => Some((name, uncached::<UnitProxy<'a>>(conn, path).await?)),
            None => None,
        };
        Ok(Some(FailUnit {
            name: unit.to_owned(),
            unit: service_unit,
            service: uncached::<ServiceProxy<'a>>(conn, path).await?,
            socket,
        }))
    }

    /// The units' state now.
    ///
    /// # Errors
    /// A failed call to systemd.
    pub async fn state(&self) -> zbus::Result<UnitState> {
        let socket_state = match &self.socket {
            Some((_, proxy)) => Some(proxy.active_state().await?),
            None => None,
        };
        Ok(UnitState {
            active_state: self.unit.active_state().await?,
            result: self.service.result().await.unwrap_or_default(),
            exit_status: self.service.exec_main_status().await.unwrap_or_default(),
            invocation_id: hex(&self.unit.invocation_id().await.unwrap_or_default()),
            n_restarts: self.service.n_restarts().await.unwrap_or_default(),
            socket_state,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn uncached<'a, P>(conn: &Connection, path: OwnedObjectPath) -> zbus::Result<P>
where
    P: From<zbus::Proxy<'a>> + zbus::proxy::Defaults,
{
    zbus::proxy::Builder::<P>::new(conn)
        .path(path)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
}

/// The `.socket` unit that activates `unit` and listens on `socket_path`:
/// its name and object path. A path through a link (`/var/run` for `/run`)
/// is the same path. A `.socket` that triggers the unit but listens
/// elsewhere is taken all the same, with a warning: a connection to the
/// configured path cannot be told apart from one that starts fail2ban.
///
/// # Errors
/// A failed call to systemd.
pub async fn activating_socket(
    conn: &Connection,
    manager: &ManagerProxy<'_>,
    unit: &UnitProxy<'_>,
    socket_path: &Path,
) -> zbus::Result<Option<(String, OwnedObjectPath)>> {
    let mut other = None;
    for name in unit.triggered_by().await? {
        if !name.ends_with(".socket") {
            continue;
        }
        let path = manager.load_unit(&name).await?;
        let socket = uncached::<SocketProxy<'_>>(conn, path.clone()).await?;
        let listens = socket.listen().await.unwrap_or_default();
        if listens
            .iter()
            .any(|(_, address)| same_path(Path::new(address), socket_path))
        {
            return Ok(Some((name, path)));
        }
        tracing::warn!(
            socket_unit = %name,
            listens = ?listens,
            socket = %socket_path.display(),
            "fail2ban_socket_unit_listens_elsewhere"
        );
        other.get_or_insert((name, path));
    }
    Ok(other)
}

/// Whether two socket paths name the same file, links in their
/// directories resolved.
fn same_path(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    let resolved = |p: &Path| -> Option<std::path::PathBuf> {
        let dir = std::fs::canonicalize(p.parent()?).ok()?;
        Some(dir.join(p.file_name()?))
    };
    matches!((resolved(a), resolved(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_through_a_link_is_the_same_path() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("run");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("var-run")).unwrap();
        let a = real.join("fail2ban.sock");
        let b = dir.path().join("var-run/fail2ban.sock");
        assert!(same_path(&a, &b));
        assert!(same_path(&a, &a));
        assert!(!same_path(&a, &real.join("other.sock")));
    }
}
