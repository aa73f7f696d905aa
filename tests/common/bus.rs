//! A private system-type dbus-daemon with the project's policy file, and
//! the daemon binary running on it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fail2ban_healthd::bus::proxy::Health1Proxy;

/// A private bus, killed on drop.
pub struct PrivateBus {
    _dir: tempfile::TempDir,
    child: Option<Child>,
    pub address: String,
}

impl PrivateBus {
    pub fn start() -> Self {
        Self::with_policy(false)
    }

    /// A bus where anyone may own any name (for baselines of other
    /// services), still including the project's policy file.
    pub fn open() -> Self {
        Self::with_policy(true)
    }

    fn with_policy(open: bool) -> Self {
        let daemon = super::require_program("dbus-daemon", "dbus-daemon");
        let dir = tempfile::Builder::new().prefix("bus-").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("bus.sock");
        let policy =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("dbus/org.fail2ban_healthd.Health1.conf");
        let config = dir.path().join("bus.conf");
        // The stock system bus policy, with the project's file included.
        std::fs::write(
            &config,
            format!(
                r#"<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
  </policy>
  {extra}
  <include>{policy}</include>
</busconfig>
"#,
                socket = socket.display(),
                policy = policy.display(),
                extra = if open {
                    r#"<policy context="default"><allow own="*"/><allow send_type="method_call"/></policy>"#
                } else {
                    ""
                }
            ),
        )
        .unwrap();
        let child = Command::new(daemon)
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nopidfile", "--nosyslog"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The file appears at bind(), before listen(): wait for a connection.
        super::wait_until(Duration::from_secs(10), "the bus socket", || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        });
        Self {
            _dir: dir,
            child: Some(child),
            address: format!("unix:path={}", socket.display()),
        }
    }

    pub async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .build()
            .await
            .unwrap()
    }

    /// Kills the bus.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The daemon binary, killed on drop.
pub struct Daemon {
    pub child: Option<Child>,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `fail2ban-healthd run` on `bus` probing `socket`, with extra
    /// flags and environment, and waits until it owns its name.
    pub async fn start(
        bus: &PrivateBus,
        socket: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("healthd-")
            .tempdir()
            .unwrap();
        let log = dir.path().join("daemon.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fail2ban-healthd"));
        cmd.args(["run", "--log", "stderr", "--bus-address", &bus.address]);
        if !args.contains(&"--log-level") {
            cmd.args(["--log-level", "debug"]);
        }
        cmd.arg("--socket").arg(socket);
        // Each daemon keeps its state to itself unless the test shares it.
        if !args.contains(&"--state-file") {
            cmd.arg("--state-file").arg(dir.path().join("state.json"));
        }
        let child = cmd
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            // Not a systemd service, even when the tests run inside one.
            .env_remove("INVOCATION_ID")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut daemon = Self {
            child: Some(child),
            log,
            _dir: dir,
        };
        let conn = bus.connect().await;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
        let start = Instant::now();
        loop {
            let name = zbus::names::BusName::try_from(fail2ban_healthd::bus::NAME).unwrap();
            if dbus.name_has_owner(name).await.unwrap_or(false) {
                break;
            }
            if let Some(status) = daemon.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited with {status}: {}", daemon.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "daemon never owned its name: {}",
                daemon.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        daemon
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.as_ref().unwrap().id() as i32)
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "daemon still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A proxy on the daemon over a fresh connection.
pub async fn proxy(bus: &PrivateBus) -> (zbus::Connection, Health1Proxy<'static>) {
    let conn = bus.connect().await;
    let proxy = Health1Proxy::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    (conn, proxy)
}

/// A value of an `a{sv}` map, of the expected type, or a panic naming it.
pub fn get<T: TryFrom<zbus::OwnedVariant>>(
    map: &std::collections::HashMap<String, zbus::OwnedVariant>,
    key: &str,
) -> T {
    let v = map
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {map:?}"))
        .try_clone()
        .unwrap();
    T::try_from(v)
        .ok()
        .unwrap_or_else(|| panic!("{key} has another type"))
}
