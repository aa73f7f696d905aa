//! A headless desktop for testing a StatusNotifierItem tray applet: Xvfb,
//! a private session bus, an XFCE panel holding only its Status Tray
//! (which is the `org.kde.StatusNotifierWatcher` and the tray host), and
//! python3-dbusmock's `notification_daemon` template as
//! `org.freedesktop.Notifications`. [`PolkitMock`] is the `polkitd`
//! template on a private system-type bus.
//!
//! Facts this module relies on (python3-dbusmock 0.28.7, xfce4-panel
//! 4.18, Debian 12):
//!
//! - **Notification ids.** The `notification_daemon` template keeps
//!   `next_id`, set to 1 when the template loads. Its `Notify` returns
//!   `replaces_id` unchanged when it is not 0 (whether or not that id was
//!   ever handed out) and does not advance the counter; otherwise it
//!   returns `next_id` and adds one. The mock runs one call at a time in
//!   the order it receives them and logs each call before running it, so
//!   replaying the logged `Notify` calls with the same rule gives each one
//!   exactly the id the mock answered. The ids start again at 1 with every
//!   mock process; nothing here calls the mock's `ClearCalls` or `Reset`,
//!   which would break the replay.
//! - **The call log.** `org.freedesktop.DBus.Mock.GetCalls() -> a(tsav)`:
//!   one `(timestamp, method, args)` per call, in order, where `timestamp`
//!   is whole seconds since the epoch and `args` the call's arguments, each
//!   as a variant of its wire type (`Notify`: `s u s s s as a{sv} i`; the
//!   `urgency` hint stays a byte). It is decoded here as
//!   `Vec<(u64, String, Vec<OwnedVariant>)>`. The template also logs
//!   `GetCapabilities`, `GetServerInformation` and `CloseNotification`;
//!   only `Notify` is read.
//! - **Capabilities.** The template's default capabilities are
//!   notify-osd's, without `actions`: `notify-send -A` then says "Actions
//!   are not supported by this notifications server" and sends none. The
//!   desktop starts the mock with [`CAPABILITIES`], which include
//!   `actions`.
//! - **A click.** [`Desktop::invoke_action`] has the mock emit
//!   `ActionInvoked(id, key)` through `Mock.EmitSignal`, as a broadcast
//!   from the owner of `org.freedesktop.Notifications`. It emits nothing
//!   else: a real server usually follows with `NotificationClosed(id, 2)`
//!   (libnotify's `notify-send -A` closes the notification itself).
//! - **polkit's `flags`.** The `polkitd` template's `CheckAuthorization`
//!   ignores its `flags` argument, but `AddTemplate` wraps every D-Bus
//!   method a template defines in dbusmock's `loggedmethod`, which records
//!   the call with all its arguments before running it. `GetCalls` thus
//!   lists `CheckAuthorization` with `(sa{sv}) s a{ss} u s`, the `u` being
//!   `flags` as sent; a check that hangs (`SimulateHang`) is listed as soon
//!   as it arrives. The template's own Mock methods (`SetAllowed`, ...) are
//!   listed too; [`PolkitMock::checks`] reads only `CheckAuthorization`.
//! - **The screen.** 480x300, Xvfb's root black; the panel is a light
//!   strip of 480x33 at the top, tray cells from its left end (a 22 px
//!   icon of the first item was drawn at (1, 5) to (22, 26)).
//! - **Start-up.** `python3 -m dbusmock` claims its name before it loads
//!   the template, but runs no call before the template is loaded: a name
//!   owner is enough to call it. xfconfd is started by bus activation
//!   (the only service the private bus can activate); it stays in the bus
//!   daemon's process group and is stopped by the PID the bus gives for
//!   `org.xfce.Xfconf`.

use std::collections::HashMap;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use zbus::OwnedVariant;
use zbus::names::BusName;

use super::require_program;

/// The bus name of the tray's watcher.
pub const WATCHER: &str = "org.kde.StatusNotifierWatcher";
const WATCHER_PATH: &str = "/StatusNotifierWatcher";
/// The bus name of the notification server.
pub const NOTIFICATIONS: &str = "org.freedesktop.Notifications";
const NOTIFICATIONS_PATH: &str = "/org/freedesktop/Notifications";
const MOCK_IFACE: &str = "org.freedesktop.DBus.Mock";
const POLKIT: &str = "org.freedesktop.PolicyKit1";
const POLKIT_PATH: &str = "/org/freedesktop/PolicyKit1/Authority";
const XFCONF: &str = "org.xfce.Xfconf";
/// The interpreter python3-dbusmock is installed for.
const PYTHON: &str = "/usr/bin/python3";
/// The screen, as Xvfb takes it.
pub const SCREEN: &str = "480x300x24";
/// What the notification mock announces from `GetCapabilities`.
pub const CAPABILITIES: &str = "actions body body-hyperlinks body-markup icon-static persistence";
/// How long any part of the desktop may take to come up.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The panel: one horizontal panel at the top left, 32 px high and as
/// wide as the screen, holding only the Status Tray. `configver` 2 and a
/// non-empty channel keep the panel from asking which layout to use.
const PANEL_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-panel" version="1.0">
  <property name="configver" type="int" value="2"/>
  <property name="panels" type="array">
    <value type="int" value="1"/>
    <property name="panel-1" type="empty">
      <property name="mode" type="uint" value="0"/>
      <property name="position" type="string" value="p=6;x=0;y=0"/>
      <property name="position-locked" type="bool" value="true"/>
      <property name="length" type="uint" value="100"/>
      <property name="size" type="uint" value="32"/>
      <property name="plugin-ids" type="array">
        <value type="int" value="1"/>
      </property>
    </property>
  </property>
  <property name="plugins" type="empty">
    <property name="plugin-1" type="string" value="systray"/>
  </property>
</channel>
"#;

/// Xvfb, a private session bus with xfconfd, an XFCE panel with only the
/// Status Tray, and a notification server mock. Every process is killed,
/// and the temporary directory removed, on drop.
pub struct Desktop {
    display: String,
    address: String,
    home: PathBuf,
    runtime: PathBuf,
    conn: Option<zbus::Connection>,
    procs: Procs,
}

/// One `Notify` call the notification server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The id the server answered to this call.
    pub id: u32,
    pub app_name: String,
    pub replaces_id: u32,
    pub summary: String,
    pub body: String,
    /// Action keys and labels, alternating, as sent.
    pub actions: Vec<String>,
    /// The `urgency` hint: 0 low, 1 normal, 2 critical.
    pub urgency: Option<u8>,
    pub expire_timeout: i32,
}

/// A screenshot decoded to 8-bit RGB, row by row from the top left.
#[derive(Debug, Clone)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Image {
    /// The colour at `(x, y)`; a point outside the image fails the test.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        assert!(
            x < self.width && y < self.height,
            "pixel ({x}, {y}) is outside the {}x{} image",
            self.width,
            self.height
        );
        let i = ((y * self.width + x) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

impl Desktop {
    /// Starts the desktop and waits until the tray's watcher has an owner
    /// and a host, and the notification server has an owner. A part that
    /// does not come up within 30 s fails the test with its standard error.
    pub async fn start() -> Desktop {
        // What is missing fails here, before anything starts.
        let xvfb = require_program("Xvfb", "xvfb");
        let dbus_daemon = require_program("dbus-daemon", "dbus-daemon");
        let panel = require_program("xfce4-panel", "xfce4-panel");
        require_program("busctl", "systemd");
        let xfconfd = xfconfd_program();
        let python = dbusmock_python("notification_daemon");

        let dir = tempfile::Builder::new()
            .prefix("desktop-")
            .tempdir()
            .expect("temp dir");
        // Traversable by everyone: an applet running as another user must
        // reach the bus socket.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let root = dir.path().to_path_buf();
        let (home, runtime) = write_home(&root);
        let address = write_session_bus_config(&root, &xfconfd);

        let mut desktop = Desktop {
            display: String::new(),
            address: address.clone(),
            home,
            runtime,
            conn: None,
            procs: Procs {
                children: Vec::new(),
                pipes: Vec::new(),
                bus_address: address.clone(),
                xfconfd: None,
                dir: Some(dir),
            },
        };
        desktop.start_x_and_bus(&xvfb, &dbus_daemon, &root).await;
        let conn = connect(&address).await;
        desktop.conn = Some(conn.clone());
        desktop.spawn_notification_mock(&python, &root);
        desktop.spawn_panel(&panel, &root);

        let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("DBus proxy");
        desktop.wait_tray(&dbus, &root.join("panel.log")).await;
        desktop
            .wait_owner(
                &dbus,
                NOTIFICATIONS,
                "notification mock",
                &root.join("notifications.err"),
            )
            .await;
        desktop
    }

    /// Starts Xvfb and the session bus side by side and waits until Xvfb
    /// gives its display number and dbus-daemon its address.
    async fn start_x_and_bus(&mut self, xvfb: &Path, dbus_daemon: &Path, root: &Path) {
        let base_env = self.base_env();
        let mut xvfb = Command::new(xvfb)
            .args(["-displayfd", "1", "-screen", "0", SCREEN])
            .args(["-nolisten", "tcp", "-noreset"])
            .envs(base_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(root, "xvfb.log"))
            .process_group(0)
            .spawn()
            .expect("spawn Xvfb");
        let xvfb_out = xvfb.stdout.take().expect("Xvfb's stdout");
        self.procs.children.push(Proc::new("Xvfb", xvfb, true));

        let mut bus = Command::new(dbus_daemon)
            .arg(format!(
                "--config-file={}",
                root.join("session.conf").display()
            ))
            .args(["--nofork", "--nopidfile", "--nosyslog", "--print-address=1"])
            .envs(base_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(root, "bus.log"))
            .process_group(0)
            .spawn()
            .expect("spawn dbus-daemon");
        let bus_out = bus.stdout.take().expect("dbus-daemon's stdout");
        self.procs
            .children
            .push(Proc::new("dbus-daemon", bus, false));

        // Xvfb writes the display number once its sockets listen;
        // dbus-daemon its address once it accepts connections.
        let (xvfb_log, bus_log) = (root.join("xvfb.log"), root.join("bus.log"));
        let (display, bus_line) = tokio::join!(
            read_line(xvfb_out, &xvfb_log, "Xvfb"),
            read_line(bus_out, &bus_log, "dbus-daemon"),
        );
        let (display, pipe) = display;
        self.procs.pipes.push(pipe);
        let (bus_line, pipe) = bus_line;
        self.procs.pipes.push(pipe);
        let number: u32 = display
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb gave {display:?} as its display number"));
        self.display = format!(":{number}");
        let address = &self.address;
        assert!(
            bus_line.starts_with(address),
            "dbus-daemon listens on {bus_line:?}, not {address}"
        );
    }

    /// Starts python3-dbusmock's notification server, with [`CAPABILITIES`].
    fn spawn_notification_mock(&mut self, python: &Path, root: &Path) {
        let mock = Command::new(python)
            .args(["-m", "dbusmock", "--session", "-t", "notification_daemon"])
            .arg("-p")
            .arg(format!(r#"{{"capabilities": "{CAPABILITIES}"}}"#))
            .envs(self.env())
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(log_file(root, "notifications.log"))
            .stderr(log_file(root, "notifications.err"))
            .process_group(0)
            .spawn()
            .expect("spawn python3 -m dbusmock");
        self.procs
            .children
            .push(Proc::new("notification mock", mock, false));
    }

    /// Starts the XFCE panel.
    fn spawn_panel(&mut self, panel: &Path, root: &Path) {
        let panel = Command::new(panel)
            .arg("--disable-wm-check")
            .envs(self.env())
            // No accessibility bus, no dconf: nothing else to start.
            .env("NO_AT_BRIDGE", "1")
            .env("GSETTINGS_BACKEND", "memory")
            .env_remove("SESSION_MANAGER")
            .stdin(Stdio::null())
            .stdout(log_file(root, "panel.out"))
            .stderr(log_file(root, "panel.log"))
            .process_group(0)
            .spawn()
            .expect("spawn xfce4-panel");
        self.procs
            .children
            .push(Proc::new("xfce4-panel", panel, false));
    }

    /// Waits until the tray's watcher has an owner and a host, and notes
    /// the xfconfd the bus started for the panel.
    async fn wait_tray(&mut self, dbus: &zbus::fdo::DBusProxy<'_>, panel_log: &Path) {
        self.wait_owner(dbus, WATCHER, "xfce4-panel", panel_log)
            .await;
        // The host registers right after the watcher is up; until then an
        // item would be registered but not shown.
        let start = Instant::now();
        while !self.host_registered().await {
            self.check_alive("xfce4-panel", panel_log);
            assert!(
                start.elapsed() < START_LIMIT,
                "the tray registered no host within {START_LIMIT:?}; panel's stderr:\n{}",
                read_log(panel_log)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The panel reads its layout from xfconfd, which the bus started.
        if let Ok(pid) = dbus
            .get_connection_unix_process_id(BusName::try_from(XFCONF).expect("bus name"))
            .await
        {
            self.procs.xfconfd = Some(pid);
        }
    }

    /// The X display, `:N`.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The private session bus, `unix:path=...`.
    pub fn session_address(&self) -> &str {
        &self.address
    }

    /// The environment a child needs on this desktop: `DISPLAY`,
    /// `DBUS_SESSION_BUS_ADDRESS`, `HOME` and the `XDG_*_HOME` and
    /// `XDG_RUNTIME_DIR` directories.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("DISPLAY".to_owned(), self.display.clone()),
            ("DBUS_SESSION_BUS_ADDRESS".to_owned(), self.address.clone()),
        ];
        env.extend(self.base_env());
        env
    }

    fn base_env(&self) -> Vec<(String, String)> {
        let path = |p: PathBuf| p.display().to_string();
        vec![
            ("HOME".to_owned(), path(self.home.clone())),
            (
                "XDG_CONFIG_HOME".to_owned(),
                path(self.home.join(".config")),
            ),
            (
                "XDG_DATA_HOME".to_owned(),
                path(self.home.join(".local/share")),
            ),
            ("XDG_CACHE_HOME".to_owned(), path(self.home.join(".cache"))),
            ("XDG_RUNTIME_DIR".to_owned(), path(self.runtime.clone())),
        ]
    }

    /// A new connection to the private session bus.
    pub async fn session(&self) -> zbus::Connection {
        connect(&self.address).await
    }

    fn conn(&self) -> &zbus::Connection {
        self.conn.as_ref().expect("connected")
    }

    /// The watcher's `RegisteredStatusNotifierItems`.
    pub async fn items(&self) -> Vec<String> {
        let v = self
            .watcher_property("RegisteredStatusNotifierItems")
            .await
            .unwrap_or_else(|e| panic!("RegisteredStatusNotifierItems: {e}"));
        Vec::<String>::try_from(v).expect("RegisteredStatusNotifierItems is not `as`")
    }

    /// Waits until the watcher lists exactly one item and returns it as
    /// listed (`service/path`); fails the test after `limit`, naming what
    /// was listed.
    pub async fn wait_item(&self, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let mut items = self.items().await;
            if items.len() == 1 {
                return items.remove(0);
            }
            assert!(
                start.elapsed() < limit,
                "the watcher did not list exactly one item within {limit:?}: {items:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn host_registered(&self) -> bool {
        match self
            .watcher_property("IsStatusNotifierHostRegistered")
            .await
        {
            Ok(v) => bool::try_from(v).unwrap_or(false),
            Err(_) => false,
        }
    }

    async fn watcher_property(&self, name: &str) -> zbus::Result<OwnedVariant> {
        let reply = self
            .conn()
            .call_method(
                Some(WATCHER),
                WATCHER_PATH,
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &(WATCHER, name),
            )
            .await?;
        reply.body().deserialize::<OwnedVariant>()
    }

    /// Every `Notify` the server received so far, in order, each with the
    /// id the server answered (see the module's documentation).
    pub async fn notifications(&self) -> Vec<Notification> {
        let mut next_id = 1u32;
        mock_calls(self.conn(), NOTIFICATIONS, NOTIFICATIONS_PATH)
            .await
            .into_iter()
            .filter(|(_, method, _)| method == "Notify")
            .map(|(_, _, args)| parse_notify(&args, &mut next_id))
            .collect()
    }

    /// Waits until a notification received so far satisfies `pred` and
    /// returns the first that does; fails the test after `limit`, listing
    /// every notification received.
    pub async fn wait_notification(
        &self,
        limit: Duration,
        pred: impl Fn(&Notification) -> bool,
    ) -> Notification {
        let start = Instant::now();
        loop {
            let all = self.notifications().await;
            if let Some(n) = all.iter().find(|n| pred(n)) {
                return n.clone();
            }
            assert!(
                start.elapsed() < limit,
                "no matching notification within {limit:?}; received: {all:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Has the server emit `ActionInvoked(id, action_key)`, as when the
    /// user clicks that button of the notification.
    pub async fn invoke_action(&self, id: u32, action_key: &str) {
        let args = vec![zbus::Variant::from(id), zbus::Variant::from(action_key)];
        self.conn()
            .call_method(
                Some(NOTIFICATIONS),
                NOTIFICATIONS_PATH,
                Some(MOCK_IFACE),
                "EmitSignal",
                &(NOTIFICATIONS, "ActionInvoked", "us", args),
            )
            .await
            .unwrap_or_else(|e| panic!("EmitSignal ActionInvoked: {e}"));
    }

    /// The whole screen, saved as `png` and decoded.
    pub fn screenshot(&self, png: &Path) -> Image {
        let import = require_program("import", "imagemagick");
        let out = Command::new(import)
            .args(["-window", "root"])
            // ImageMagick refuses to guess some formats from a name: say it.
            .arg(format!("png:{}", png.display()))
            .envs(self.env())
            .stdin(Stdio::null())
            .output()
            .expect("run import");
        assert!(
            out.status.success(),
            "import -window root on {}: {}\n{}",
            self.display,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        decode_png(png)
    }

    async fn wait_owner(
        &mut self,
        dbus: &zbus::fdo::DBusProxy<'_>,
        name: &str,
        who: &str,
        log: &Path,
    ) {
        let bus_name = BusName::try_from(name).expect("bus name");
        let start = Instant::now();
        while !dbus.name_has_owner(bus_name.clone()).await.unwrap_or(false) {
            self.check_alive(who, log);
            assert!(
                start.elapsed() < START_LIMIT,
                "{name} had no owner within {START_LIMIT:?}; {who}'s stderr:\n{}",
                read_log(log)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fails the test with the process's stderr if it has exited.
    fn check_alive(&mut self, who: &str, log: &Path) {
        if let Some(p) = self.procs.children.iter_mut().find(|p| p.name == who)
            && let Some(status) = p.child.try_wait().expect("wait")
        {
            panic!("{who} exited with {status}; its stderr:\n{}", read_log(log));
        }
    }
}

/// Decodes a PNG file to 8-bit RGB (`convert png:FILE -depth 8 ppm:-`).
pub fn decode_png(png: &Path) -> Image {
    let convert = require_program("convert", "imagemagick");
    let out = Command::new(convert)
        .arg(format!("png:{}", png.display()))
        .args(["-depth", "8", "ppm:-"])
        .stdin(Stdio::null())
        .output()
        .expect("run convert");
    assert!(
        out.status.success(),
        "convert {}: {}\n{}",
        png.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_ppm(&out.stdout).unwrap_or_else(|e| panic!("convert's PPM of {}: {e}", png.display()))
}

/// A binary PPM (`P6`) with a maximum value of 255.
fn parse_ppm(data: &[u8]) -> Result<Image, String> {
    let mut pos = 0;
    let mut fields = Vec::new();
    while fields.len() < 4 {
        while pos < data.len() && (data[pos].is_ascii_whitespace() || data[pos] == b'#') {
            if data[pos] == b'#' {
                while pos < data.len() && data[pos] != b'\n' {
                    pos += 1;
                }
            } else {
                pos += 1;
            }
        }
        let begin = pos;
        while pos < data.len() && !data[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if begin == pos {
            return Err("truncated header".into());
        }
        fields.push(String::from_utf8_lossy(&data[begin..pos]).into_owned());
    }
    // One whitespace byte ends the header.
    pos += 1;
    if fields[0] != "P6" || fields[3] != "255" {
        return Err(format!("not an 8-bit P6 image: {fields:?}"));
    }
    let width: u32 = fields[1].parse().map_err(|_| "bad width")?;
    let height: u32 = fields[2].parse().map_err(|_| "bad height")?;
    let rgb = data.get(pos..).unwrap_or_default().to_vec();
    if rgb.len() != (width * height * 3) as usize {
        return Err(format!(
            "{} bytes of pixels for {width}x{height}",
            rgb.len()
        ));
    }
    Ok(Image { width, height, rgb })
}

fn parse_notify(args: &[OwnedVariant], next_id: &mut u32) -> Notification {
    assert_eq!(
        args.len(),
        8,
        "Notify with {} arguments: {args:?}",
        args.len()
    );
    let hints: HashMap<String, OwnedVariant> = arg(args, 6, "hints");
    let urgency = hints.get("urgency").map(|v| {
        u8::try_from(v.try_clone().expect("clone"))
            .unwrap_or_else(|_| panic!("the urgency hint is not a byte: {v:?}"))
    });
    let replaces_id: u32 = arg(args, 1, "replaces_id");
    // The template: `if args[1]: ret = args[1] else: ret = self.next_id;
    // self.next_id += 1`.
    let id = if replaces_id != 0 {
        replaces_id
    } else {
        *next_id += 1;
        *next_id - 1
    };
    Notification {
        id,
        app_name: arg(args, 0, "app_name"),
        replaces_id,
        summary: arg(args, 3, "summary"),
        body: arg(args, 4, "body"),
        actions: arg(args, 5, "actions"),
        urgency,
        expire_timeout: arg(args, 7, "expire_timeout"),
    }
}

/// Argument `i` of a logged call, of type `T`, or a failed test naming it.
fn arg<T>(args: &[OwnedVariant], i: usize, what: &str) -> T
where
    T: TryFrom<OwnedVariant>,
{
    let v = args[i].try_clone().expect("clone");
    let shown = format!("{v:?}");
    T::try_from(v)
        .ok()
        .unwrap_or_else(|| panic!("argument {i} ({what}) has another type: {shown}"))
}

/// The mock's `GetCalls()`: `(timestamp, method, args)` per call, in order.
async fn mock_calls(
    conn: &zbus::Connection,
    name: &str,
    path: &str,
) -> Vec<(u64, String, Vec<OwnedVariant>)> {
    let reply = conn
        .call_method(Some(name), path, Some(MOCK_IFACE), "GetCalls", &())
        .await
        .unwrap_or_else(|e| panic!("{name} GetCalls: {e}"));
    reply
        .body()
        .deserialize()
        .unwrap_or_else(|e| panic!("{name} GetCalls is not a(tsav): {e}"))
}

/// python3-dbusmock's `polkitd` template owning
/// `org.freedesktop.PolicyKit1` on a private system-type bus; killed on
/// drop. By default it denies every action.
pub struct PolkitMock {
    conn: zbus::Connection,
    child: Option<Proc>,
    dir: tempfile::TempDir,
}

impl PolkitMock {
    /// Starts the mock on `bus_address` (a bus that lets root own
    /// `org.freedesktop.PolicyKit1`, as `PrivateBus::with_polkit()`) and
    /// waits until it owns the name.
    pub async fn start(bus_address: &str) -> PolkitMock {
        let python = dbusmock_python("polkitd");
        let dir = tempfile::Builder::new()
            .prefix("polkit-mock-")
            .tempdir()
            .expect("temp dir");
        let err = dir.path().join("stderr");
        let child = Command::new(python)
            .args(["-m", "dbusmock", "--system", "-t", "polkitd"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus_address)
            .stdin(Stdio::null())
            .stdout(log_file(dir.path(), "stdout"))
            .stderr(log_file(dir.path(), "stderr"))
            .process_group(0)
            .spawn()
            .expect("spawn python3 -m dbusmock");
        let mut mock = PolkitMock {
            conn: connect(bus_address).await,
            child: Some(Proc::new("polkit mock", child, false)),
            dir,
        };
        let dbus = zbus::fdo::DBusProxy::new(&mock.conn)
            .await
            .expect("DBus proxy");
        let start = Instant::now();
        while !dbus
            .name_has_owner(BusName::try_from(POLKIT).expect("bus name"))
            .await
            .unwrap_or(false)
        {
            let p = mock.child.as_mut().expect("spawned");
            if let Some(status) = p.child.try_wait().expect("wait") {
                panic!(
                    "the polkit mock exited with {status}; its stderr:\n{}",
                    read_log(&err)
                );
            }
            assert!(
                start.elapsed() < START_LIMIT,
                "{POLKIT} had no owner within {START_LIMIT:?}; the mock's stderr:\n{}",
                read_log(&err)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        mock
    }

    /// The template's `SetAllowed`: these actions are authorized, all
    /// others not.
    pub async fn set_allowed(&self, actions: &[&str]) {
        self.conn
            .call_method(
                Some(POLKIT),
                POLKIT_PATH,
                Some(MOCK_IFACE),
                "SetAllowed",
                &(actions,),
            )
            .await
            .unwrap_or_else(|e| panic!("SetAllowed: {e}"));
    }

    /// Every `CheckAuthorization` so far, in order: the action id and the
    /// `flags` argument as sent.
    pub async fn checks(&self) -> Vec<(String, u32)> {
        mock_calls(&self.conn, POLKIT, POLKIT_PATH)
            .await
            .into_iter()
            .filter(|(_, method, _)| method == "CheckAuthorization")
            .map(|(_, _, args)| {
                assert_eq!(args.len(), 5, "CheckAuthorization with {args:?}");
                (arg(&args, 1, "action_id"), arg(&args, 3, "flags"))
            })
            .collect()
    }
}

impl Drop for PolkitMock {
    fn drop(&mut self) {
        if let Some(mut p) = self.child.take() {
            p.stop();
        }
    }
}

/// A child leading a process group of its own.
struct Proc {
    name: &'static str,
    child: Child,
    /// Ask with SIGTERM first (Xvfb then removes its lock file and socket).
    gentle: bool,
}

impl Proc {
    fn new(name: &'static str, child: Child, gentle: bool) -> Self {
        Self {
            name,
            child,
            gentle,
        }
    }

    /// Kills the process group and waits until it is empty (at most 10 s,
    /// then says so on standard error: a panic in a drop would abort).
    fn stop(&mut self) {
        let pgid = Pid::from_raw(self.child.id() as i32);
        if self.gentle {
            let _ = killpg(pgid, Signal::SIGTERM);
            if !wait_child(&mut self.child, Duration::from_secs(5)) {
                eprintln!("{} ignored SIGTERM for 5 s", self.name);
            }
        }
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = self.child.wait();
        let start = Instant::now();
        while group_alive(pgid) {
            if start.elapsed() > Duration::from_secs(10) {
                eprintln!("process group of {} still alive after 10 s", self.name);
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The state and process group of a process, from `/proc/PID/stat`.
fn stat(pid: &str) -> Option<(char, i32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces and parentheses.
    let mut rest = text[text.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let _ppid = rest.next()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Whether the process runs: a zombie has ended, it only waits for its
/// parent (init, for an orphan) to reap it.
fn alive(pid: Pid) -> bool {
    stat(&pid.to_string()).is_some_and(|(state, _)| state != 'Z')
}

/// Whether any process of the group runs.
fn group_alive(pgid: Pid) -> bool {
    if killpg(pgid, None).is_err() {
        return false;
    }
    let Ok(dir) = fs::read_dir("/proc") else {
        return true;
    };
    dir.flatten().any(|e| {
        stat(&e.file_name().to_string_lossy())
            .is_some_and(|(state, pgrp)| pgrp == pgid.as_raw() && state != 'Z')
    })
}

fn wait_child(child: &mut Child, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The desktop's processes, in start order, and its directory.
struct Procs {
    children: Vec<Proc>,
    /// The read ends of Xvfb's and dbus-daemon's stdout, kept open.
    pipes: Vec<OwnedFd>,
    bus_address: String,
    xfconfd: Option<u32>,
    dir: Option<tempfile::TempDir>,
}

impl Procs {
    /// Stops xfconfd by the PID the bus gives for its name now, else by
    /// the one it gave at start-up, if that process is still xfconfd.
    fn stop_xfconfd(&mut self) {
        let now = Command::new(require_program("busctl", "systemd"))
            .arg(format!("--address={}", self.bus_address))
            .args(["--timeout=5", "call", "org.freedesktop.DBus"])
            .args(["/org/freedesktop/DBus", "org.freedesktop.DBus"])
            .args(["GetConnectionUnixProcessID", "s", XFCONF])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .and_then(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                text.trim().strip_prefix("u ")?.parse::<u32>().ok()
            });
        for pid in now.into_iter().chain(self.xfconfd) {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() != "xfconfd" {
                continue;
            }
            let pid = Pid::from_raw(pid as i32);
            let _ = kill(pid, Signal::SIGTERM);
            let start = Instant::now();
            while alive(pid) && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        // Clients first, then xfconfd, the bus and the X server.
        while let Some(mut p) = self.children.pop() {
            if p.name == "dbus-daemon" {
                self.stop_xfconfd();
            }
            p.stop();
        }
        self.pipes.clear();
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// Makes the home (with the panel's layout) and runtime directories under
/// `root`, and returns them.
fn write_home(root: &Path) -> (PathBuf, PathBuf) {
    let home = root.join("home");
    let runtime = root.join("runtime");
    let channel_dir = home.join(".config/xfce4/xfconf/xfce-perchannel-xml");
    for d in [
        &channel_dir,
        &home.join(".local/share"),
        &home.join(".cache"),
        &runtime,
        &root.join("services"),
    ] {
        fs::create_dir_all(d).expect("mkdir");
    }
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).expect("chmod");
    write(&channel_dir.join("xfce4-panel.xml"), PANEL_XML);
    (home, runtime)
}

/// Writes the session bus's configuration and xfconfd's service file
/// under `root`, and returns the bus's address.
fn write_session_bus_config(root: &Path, xfconfd: &Path) -> String {
    write(
        &root.join("services/org.xfce.Xfconf.service"),
        &format!(
            "[D-BUS Service]\nName={XFCONF}\nExec={}\n",
            xfconfd.display()
        ),
    );
    let socket = root.join("session.sock");
    let address = format!("unix:path={}", socket.display());
    // A session bus anyone may connect to, where anyone may own and
    // call anything, and which can start nothing but xfconfd.
    write(
        &root.join("session.conf"),
        &format!(
            r#"<busconfig>
  <type>session</type>
  <listen>{address}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{services}</servicedir>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <limit name="service_start_timeout">60000</limit>
</busconfig>
"#,
            services = root.join("services").display(),
        ),
    );
    address
}

/// Reads the first line a child writes to its stdout, without blocking
/// the runtime; fails the test with the child's stderr if it ends first or
/// takes over 30 s. Returns the line and the pipe, still open.
async fn read_line(out: std::process::ChildStdout, log: &Path, who: &str) -> (String, OwnedFd) {
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(out))
        .expect("a pipe from the child's stdout");
    let mut line = Vec::new();
    let read = async {
        let mut byte = [0u8; 1];
        loop {
            match pipe.read(&mut byte).await {
                Ok(0) => return false,
                Ok(_) if byte[0] == b'\n' => return true,
                Ok(_) => line.push(byte[0]),
                Err(e) => panic!("reading {who}'s stdout: {e}"),
            }
        }
    };
    match tokio::time::timeout(START_LIMIT, read).await {
        Ok(true) => {}
        Ok(false) => panic!(
            "{who} ended before writing a line; its stderr:\n{}",
            read_log(log)
        ),
        Err(_) => panic!(
            "{who} wrote no line within {START_LIMIT:?}; its stderr:\n{}",
            read_log(log)
        ),
    }
    let fd = pipe.into_nonblocking_fd().expect("the pipe's descriptor");
    (String::from_utf8_lossy(&line).into_owned(), fd)
}

async fn connect(address: &str) -> zbus::Connection {
    zbus::connection::Builder::address(address)
        .build()
        .await
        .unwrap_or_else(|e| panic!("connect to {address}: {e}"))
}

/// xfconfd, as the system's service file for `org.xfce.Xfconf` names it.
fn xfconfd_program() -> PathBuf {
    let service = Path::new("/usr/share/dbus-1/services/org.xfce.Xfconf.service");
    let text = fs::read_to_string(service).unwrap_or_else(|_| {
        panic!(
            "{} is required by this test and is missing: apt-get install -y xfconf",
            service.display()
        )
    });
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("Exec="))
        .unwrap_or_else(|| panic!("no Exec= in {}", service.display()));
    let program = PathBuf::from(exec.split_whitespace().next().unwrap_or_default());
    assert!(
        program.is_file(),
        "{} names {}, which is missing: apt-get install -y xfconf",
        service.display(),
        program.display()
    );
    program
}

/// `/usr/bin/python3`, after checking that python3-dbusmock and its
/// `template` are installed for it.
fn dbusmock_python(template: &str) -> PathBuf {
    let python = PathBuf::from(PYTHON);
    assert!(
        python.is_file(),
        "{PYTHON} is required by this test and is missing: apt-get install -y python3"
    );
    let file = Path::new("/usr/lib/python3/dist-packages/dbusmock/templates")
        .join(format!("{template}.py"));
    assert!(
        file.is_file(),
        "{} is required by this test and is missing: apt-get install -y python3-dbusmock",
        file.display()
    );
    python
}

fn log_file(dir: &Path, name: &str) -> fs::File {
    fs::File::create(dir.join(name)).unwrap_or_else(|e| panic!("create {name}: {e}"))
}

fn read_log(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()))
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The applet's process, killed on drop, its standard error kept.
#[cfg(feature = "tray")]
pub struct Applet {
    pub child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

#[cfg(feature = "tray")]
impl Applet {
    /// Starts the applet on `desktop`, following the daemon on `bus`;
    /// `prefix` runs it through another program (`setpriv ...`).
    pub fn start(
        desktop: &Desktop,
        bus: &super::bus::PrivateBus,
        prefix: &[&str],
        extra: &[&str],
    ) -> Self {
        let dir = tempfile::Builder::new().prefix("tray-").tempdir().unwrap();
        let log = dir.path().join("tray.log");
        let bin = env!("CARGO_BIN_EXE_fail2ban-healthd-tray");
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args(["--bus-address", &bus.address])
            .args(if extra.contains(&"--settle-time") {
                &[][..]
            } else {
                &["--settle-time", "2s"][..]
            })
            .args(["--log-level", "debug"])
            .args(extra)
            .envs(desktop.env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Applet {
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the applet to exit by itself; its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(40),
                "the applet did not exit: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(feature = "tray")]
impl Drop for Applet {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
