//! A private system-type dbus-daemon with the project's policy file, and
//! the daemon binary running on it.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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
        Self::with_policy("")
    }

    /// A bus where anyone may own any name (for baselines of other
    /// services), still including the project's policy file.
    pub fn open() -> Self {
        Self::with_policy(
            r#"<policy context="default"><allow own="*"/><allow send_type="method_call"/></policy>"#,
        )
    }

    /// The stock policy plus polkit's own (root owns
    /// `org.freedesktop.PolicyKit1`, anyone may call it), so that a
    /// [`FakePolkit`] can stand in for polkitd. The limits that matter
    /// here are the system bus's: 128 pending replies per connection;
    /// more connections per user are allowed, so that a flood of callers
    /// reaches the daemon instead of being stopped by the bus.
    pub fn with_polkit() -> Self {
        Self::with_policy(
            r#"<policy user="root"><allow own="org.freedesktop.PolicyKit1"/></policy>
  <policy context="default"><allow send_destination="org.freedesktop.PolicyKit1"/></policy>
  <limit name="max_replies_per_connection">128</limit>
  <limit name="max_connections_per_user">2048</limit>
  <limit name="max_completed_connections">4096</limit>
  <limit name="max_incomplete_connections">1024</limit>"#,
        )
    }

    fn with_policy(extra: &str) -> Self {
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

/// What the fake polkit answers for a uid and an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Authorized.
    Allow,
    /// Not authorized.
    Deny,
    /// Not authorized without authentication (`is_challenge`).
    Challenge,
    /// No answer until the check is cancelled (a slow polkit).
    Hang,
}

/// One `CheckAuthorization` as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolkitCheck {
    /// The subject's uid, as the bus reports it for its bus name.
    pub uid: u32,
    pub action: String,
    pub flags: u32,
    pub cancellation_id: String,
    /// The bus name that asked (the daemon).
    pub asker: String,
}

#[derive(Default)]
struct PolkitLog {
    checks: Vec<PolkitCheck>,
    /// Cancellation ids, with the bus name that cancelled.
    cancels: Vec<(String, String)>,
    hanging: HashMap<String, tokio::sync::oneshot::Sender<()>>,
    /// The most checks that hung at once, per uid.
    most_hanging: HashMap<u32, usize>,
    hanging_by_uid: HashMap<u32, usize>,
}

type Decide = dyn Fn(u32, &str) -> Verdict + Send + Sync;

struct Authority {
    decide: Arc<Decide>,
    log: Arc<Mutex<PolkitLog>>,
}

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.freedesktop.PolicyKit1.Error")]
enum PolkitError {
    #[zbus(error)]
    ZBus(zbus::Error),
    Failed(String),
    Cancelled(String),
}

#[zbus::interface(name = "org.freedesktop.PolicyKit1.Authority")]
impl Authority {
    #[allow(clippy::too_many_arguments)]
    async fn check_authorization(
        &self,
        subject: (String, HashMap<String, zbus::OwnedVariant>),
        action_id: String,
        _details: HashMap<String, String>,
        flags: u32,
        cancellation_id: String,
        #[zbus(header)] header: zbus::message::Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(bool, bool, HashMap<String, String>), PolkitError> {
        if subject.0 != "system-bus-name" {
            return Err(PolkitError::Failed(format!(
                "the fake knows bus names only, not {}",
                subject.0
            )));
        }
        let name = subject
            .1
            .get("name")
            .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
            .ok_or_else(|| PolkitError::Failed("no name in the subject".into()))?;
        let uid = zbus::fdo::DBusProxy::new(conn)
            .await?
            .get_connection_unix_user(zbus::names::BusName::try_from(name.as_str()).unwrap())
            .await
            .map_err(|e| PolkitError::Failed(e.to_string()))?;
        let verdict = (self.decide)(uid, &action_id);
        let asker = header.sender().map(|s| s.to_string()).unwrap_or_default();
        let hang = {
            let mut log = self.log.lock().unwrap();
            log.checks.push(PolkitCheck {
                uid,
                action: action_id,
                flags,
                cancellation_id: cancellation_id.clone(),
                asker,
            });
            (verdict == Verdict::Hang).then(|| {
                let (tx, rx) = tokio::sync::oneshot::channel();
                log.hanging.insert(cancellation_id.clone(), tx);
                let n = log.hanging_by_uid.entry(uid).or_default();
                *n += 1;
                let n = *n;
                let most = log.most_hanging.entry(uid).or_default();
                *most = (*most).max(n);
                rx
            })
        };
        match verdict {
            Verdict::Allow => Ok((true, false, HashMap::new())),
            Verdict::Deny => Ok((false, false, HashMap::new())),
            Verdict::Challenge => Ok((false, true, HashMap::new())),
            Verdict::Hang => {
                // Answers only when cancelled, as polkitd does for a check
                // whose agent never replies.
                let cancelled = hang.unwrap().await.is_ok();
                if let Some(n) = self.log.lock().unwrap().hanging_by_uid.get_mut(&uid) {
                    *n -= 1;
                }
                if cancelled {
                    Err(PolkitError::Cancelled(
                        "The authorization check was cancelled".into(),
                    ))
                } else {
                    std::future::pending().await
                }
            }
        }
    }

    async fn cancel_check_authorization(
        &self,
        cancellation_id: String,
        #[zbus(header)] header: zbus::message::Header<'_>,
    ) -> Result<(), PolkitError> {
        let asker = header.sender().map(|s| s.to_string()).unwrap_or_default();
        let mut log = self.log.lock().unwrap();
        log.cancels.push((cancellation_id.clone(), asker));
        match log.hanging.remove(&cancellation_id) {
            Some(tx) => {
                let _ = tx.send(());
                Ok(())
            }
            None => Err(PolkitError::Failed(format!(
                "no pending check with cancellation id {cancellation_id}"
            ))),
        }
    }
}

/// A scripted polkit authority owning `org.freedesktop.PolicyKit1` on a
/// [`PrivateBus::with_polkit`] bus: a real polkitd cannot be made slow or
/// told what to answer. It records every check and cancellation.
pub struct FakePolkit {
    _conn: zbus::Connection,
    log: Arc<Mutex<PolkitLog>>,
}

impl FakePolkit {
    pub async fn start(
        bus: &PrivateBus,
        decide: impl Fn(u32, &str) -> Verdict + Send + Sync + 'static,
    ) -> Self {
        let log = Arc::new(Mutex::new(PolkitLog::default()));
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .serve_at(
                "/org/freedesktop/PolicyKit1/Authority",
                Authority {
                    decide: Arc::new(decide),
                    log: Arc::clone(&log),
                },
            )
            .name("org.freedesktop.PolicyKit1")
            .build()
            .await
            .unwrap();
        Self { _conn: conn, log }
    }

    pub fn checks(&self) -> Vec<PolkitCheck> {
        self.log.lock().unwrap().checks.clone()
    }

    /// Cancellation ids received, with who sent each.
    pub fn cancels(&self) -> Vec<(String, String)> {
        self.log.lock().unwrap().cancels.clone()
    }

    /// Checks hanging now.
    pub fn hanging(&self) -> usize {
        self.log.lock().unwrap().hanging.len()
    }

    /// The most checks of `uid` that hung at once.
    pub fn most_hanging(&self, uid: u32) -> usize {
        self.log
            .lock()
            .unwrap()
            .most_hanging
            .get(&uid)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until `what` holds, at most `limit`.
    pub async fn wait_for(&self, what: &str, limit: Duration, cond: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while !cond(self) {
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Calls `Probe()` until it answers `expected`, for at most 10 s. A probe
/// that ended less than a second before a call answers it (the contract's
/// floor), so a change made just now may take a second to show.
pub async fn probe_until(p: &Health1Proxy<'_>, expected: bool, what: &str) {
    let start = Instant::now();
    while p.probe().await.unwrap() != expected {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: Probe() never answered {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The daemon on `bus` with rollbacks aimed at `server`'s private
/// configuration (the drop-in at `dropin`), with short waits; `reload`
/// and `start` replace fail2ban-client's `reload` and `start` when given.
pub async fn rollback_daemon(
    bus: &PrivateBus,
    server: &super::Fail2ban,
    dropin: &Path,
    reload: Option<&str>,
    start: Option<&str>,
    extra: &[&str],
) -> Daemon {
    let reload = reload.map_or_else(|| server.client_command("reload"), str::to_owned);
    let start = start.map_or_else(|| server.client_command("start"), str::to_owned);
    let dropin = dropin.to_str().unwrap();
    let defaults = [
        ("--probe-interval", "1m"),
        ("--crash-window", "60s"),
        ("--jail-start-grace", "1s"),
        ("--watch-interval", "200ms"),
        ("--rollback-timeout", "20s"),
        ("--rollback-dropin", dropin),
        ("--fail2ban-reload-command", reload.as_str()),
        ("--fail2ban-start-command", start.as_str()),
    ];
    // A flag in `extra` replaces its default (clap refuses a flag twice).
    let mut args: Vec<&str> = defaults
        .iter()
        .filter(|(flag, _)| !extra.contains(flag))
        .flat_map(|&(flag, value)| [flag, value])
        .collect();
    args.extend_from_slice(extra);
    Daemon::start(bus, &server.socket, &args, &[]).await
}

/// The client binary with `args` on `bus`, optionally as uid 65534, with
/// standard input closed.
pub fn client(bus: &PrivateBus, as_nobody: bool, args: &[&str]) -> std::process::Output {
    let exe = env!("CARGO_BIN_EXE_fail2ban-healthd");
    let mut cmd = if as_nobody {
        let mut c = Command::new(super::require_program("setpriv", "util-linux"));
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", exe]);
        c
    } else {
        Command::new(exe)
    };
    cmd.args(args)
        .args(["--bus-address", &bus.address])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Polls `PendingRecovery` until `cond` holds, for at most 40 s; the
/// panic names `what` and adds `explain()` (an applet's log, say).
pub async fn record_when_explained(
    p: &Health1Proxy<'_>,
    what: &str,
    explain: impl Fn() -> String,
    cond: impl Fn(&HashMap<String, zbus::OwnedVariant>) -> bool,
) -> HashMap<String, zbus::OwnedVariant> {
    let start = Instant::now();
    loop {
        let r = p.pending_recovery().await.unwrap();
        if cond(&r) {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "timed out waiting for {what}: {r:?}{}",
            explain()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`record_when_explained`] without more to say.
pub async fn record_when(
    p: &Health1Proxy<'_>,
    what: &str,
    cond: impl Fn(&HashMap<String, zbus::OwnedVariant>) -> bool,
) -> HashMap<String, zbus::OwnedVariant> {
    record_when_explained(p, what, String::new, cond).await
}
