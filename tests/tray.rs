//! The tray applet on real parts: the daemon on a private system-type bus
//! with the project's policy, a real fail2ban-server, and the applet on a
//! headless desktop (Xvfb, a private session bus, xfce4-panel's Status
//! Tray as the StatusNotifierItem host, python3-dbusmock as the
//! notification server; see `common/desktop.rs`).
//!
//! Trials (`Try`, `Confirm`, `Abort`, `TrialEnded`) are followed on the
//! same parts, with fail2ban reloaded by its own client.
//!
//! Each state is checked three ways: the item's properties and menu over
//! D-Bus, the notifications, and the pixel at the icon on a screenshot
//! of the panel (kept under `target/tmp/tray-screens/`).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Fail2ban;
use common::bus::{Daemon, PrivateBus, get, proxy};
use common::desktop::{Applet, Desktop, Image, Notification, PolkitMock};
use fail2ban_healthd::bus::proxy::Health1Proxy;
use fail2ban_healthd::bus::proxy::TrialEndedStream;
use futures_util::StreamExt as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use zbus::{OwnedVariant, Variant};

const DROPIN: &str = "zz-fail2ban-healthd-rollback.local";
/// Generous: the machine may be loaded.
const LIMIT: Duration = Duration::from_secs(40);

fn dropin(server: &Fail2ban) -> PathBuf {
    server.dir().join("conf/jail.d").join(DROPIN)
}

/// The daemon with rollbacks aimed at `server`'s private configuration.
async fn daemon(bus: &PrivateBus, server: &Fail2ban) -> Daemon {
    // -x: the socket a killed server left behind is no obstacle.
    let start = server.client_command("-x start");
    common::bus::rollback_daemon(bus, server, &dropin(server), None, Some(&start), &[]).await
}

/// The daemon with rollbacks as [`daemon`] makes them, and trials run
/// with fail2ban's own client and without the checks, so that a failing
/// jail reaches the server and the daemon rolls it back by itself.
async fn trial_daemon(bus: &PrivateBus, server: &Fail2ban) -> Daemon {
    let start = server.client_command("-x start");
    let client = server.client_program();
    let extra = [
        "--fail2ban-client-command",
        &client,
        "--trial-checks",
        "false",
    ];
    common::bus::rollback_daemon(bus, server, &dropin(server), None, Some(&start), &extra).await
}

/// A disabled jail as `conf/jail.d/NAME.local`, as an administrator leaves
/// one before trying it, with the test filter or a filter that is missing.
fn write_jail(server: &Fail2ban, jail: &str, filter_exists: bool) {
    let log = server.dir().join(format!("log/{jail}.log"));
    std::fs::write(&log, "").unwrap();
    let filter = if filter_exists { "t" } else { "no-such-filter" };
    server.write_jail_d(
        jail,
        &format!(
            "[{jail}]\nenabled = false\nfilter = {filter}\naction = t\nlogpath = {} tail\n",
            log.display()
        ),
    );
}

/// The next `TrialEnded`: jail, kept, cause.
async fn next_trial_end(ended: &mut TrialEndedStream, daemon: &Daemon) -> (String, bool, u32) {
    let signal = tokio::time::timeout(LIMIT, ended.next())
        .await
        .unwrap_or_else(|_| panic!("no TrialEnded within {LIMIT:?}: {}", daemon.log_text()))
        .unwrap();
    let a = signal.args().unwrap();
    (a.jail_name().to_string(), *a.kept(), *a.cause())
}

/// One line of the item's menu.
#[derive(Debug, Clone)]
struct Line {
    id: i32,
    label: String,
    enabled: bool,
    separator: bool,
}

/// The item as a host sees it, over the session bus.
struct Item {
    conn: zbus::Connection,
    service: String,
    path: String,
}

impl Item {
    async fn new(desktop: &Desktop, listed: &str) -> Self {
        // The watcher lists `service/path`, or only the service.
        let (service, path) = match listed.find('/') {
            Some(i) => (listed[..i].to_owned(), listed[i..].to_owned()),
            None => (listed.to_owned(), "/StatusNotifierItem".to_owned()),
        };
        Item {
            conn: desktop.session().await,
            service,
            path,
        }
    }

    async fn proxy(&self, path: &str, interface: &'static str) -> zbus::Proxy<'static> {
        zbus::proxy::Builder::new(&self.conn)
            .destination(self.service.clone())
            .path(path.to_owned())
            .interface(interface)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .unwrap()
    }

    async fn property<T>(&self, name: &str) -> T
    where
        T: TryFrom<OwnedVariant>,
        T::Error: std::fmt::Debug,
    {
        let p = self.proxy(&self.path, "org.kde.StatusNotifierItem").await;
        let v: OwnedVariant = p.get_property(name).await.unwrap();
        T::try_from(v).unwrap()
    }

    /// The centre pixel of the largest `IconPixmap`, RGB.
    async fn icon_colour(&self) -> [u8; 3] {
        let icons: Vec<(i32, i32, Vec<u8>)> = self.property("IconPixmap").await;
        let (w, h, data) = icons.iter().max_by_key(|(w, _, _)| *w).unwrap();
        assert!(
            [16, 22, 24, 32, 48]
                .iter()
                .all(|s| icons.iter().any(|(w, _, _)| w == s)),
            "sizes: {:?}",
            icons.iter().map(|i| i.0).collect::<Vec<_>>()
        );
        let i = ((h / 2 * w + w / 2) * 4) as usize;
        assert_eq!(data[i], 255, "the centre is opaque");
        [data[i + 1], data[i + 2], data[i + 3]]
    }

    /// `ToolTip`: title and description.
    async fn tooltip(&self) -> (String, String) {
        type ToolTip = (String, Vec<(i32, i32, Vec<u8>)>, String, String);
        let (_, _, title, text): ToolTip = self.property("ToolTip").await;
        (title, text)
    }

    async fn menu(&self) -> Vec<Line> {
        let path: zbus::OwnedObjectPath = self.property("Menu").await;
        let p = self.proxy(path.as_str(), "com.canonical.dbusmenu").await;
        type Node = (i32, HashMap<String, OwnedVariant>, Vec<OwnedVariant>);
        let (_rev, (_, _, children)): (u32, Node) = p
            .call("GetLayout", &(0i32, -1i32, Vec::<String>::new()))
            .await
            .unwrap();
        children
            .into_iter()
            .map(|c| {
                let (id, props, _): Node = Node::try_from(c).unwrap();
                let text = |k: &str| {
                    props
                        .get(k)
                        .and_then(|v| <&str>::try_from(&**v).ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let flag = |k: &str| {
                    props
                        .get(k)
                        .map(|v| bool::try_from(&**v).unwrap())
                        .unwrap_or(true)
                };
                Line {
                    id,
                    label: text("label").replace("__", "_"),
                    enabled: flag("enabled"),
                    separator: text("type") == "separator",
                }
            })
            .collect()
    }

    fn labels(menu: &[Line]) -> Vec<String> {
        menu.iter()
            .filter(|l| !l.separator)
            .map(|l| l.label.clone())
            .collect()
    }

    /// Clicks the menu line labelled `label` as XFCE does: `EventGroup`.
    async fn click(&self, label: &str) {
        let menu = self.menu().await;
        let line = menu
            .iter()
            .find(|l| l.label == label)
            .unwrap_or_else(|| panic!("no {label:?} in {menu:#?}"));
        assert!(line.enabled, "{label} is disabled: {menu:#?}");
        let path: zbus::OwnedObjectPath = self.property("Menu").await;
        let p = self.proxy(path.as_str(), "com.canonical.dbusmenu").await;
        let events = vec![(line.id, "clicked", Variant::from(""), 0u32)];
        let errors: Vec<i32> = p.call("EventGroup", &(events,)).await.unwrap();
        assert!(errors.is_empty(), "EventGroup: {errors:?}");
    }

    /// Waits until the menu satisfies `cond`; returns its labels.
    async fn wait_menu(
        &self,
        applet: &Applet,
        what: &str,
        cond: impl Fn(&[Line]) -> bool,
    ) -> Vec<Line> {
        let start = Instant::now();
        loop {
            let menu = self.menu().await;
            if cond(&menu) {
                return menu;
            }
            assert!(
                start.elapsed() < LIMIT,
                "the menu never showed {what}: {:#?}; the applet's log:\n{}",
                Item::labels(&menu),
                applet.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the icon is of `colour`.
    async fn wait_colour(&self, colour: &str, applet: &Applet) {
        let start = Instant::now();
        loop {
            let c = self.icon_colour().await;
            if classify(c) == colour {
                return;
            }
            assert!(
                start.elapsed() < LIMIT,
                "the icon stayed {} ({c:?}), not {colour}; the applet's log:\n{}",
                classify(c),
                applet.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A colour's state: the hue family, whatever the exact shade.
fn classify([r, g, b]: [u8; 3]) -> &'static str {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    let spread = r.max(g).max(b) - r.min(g).min(b);
    if spread < 24 {
        "grey"
    } else if g > r && g > b {
        "green"
    } else if r > g && g > b && g - b > 40 {
        "amber"
    } else if r > 2 * g && r > 2 * b {
        "red"
    } else {
        "other"
    }
}

/// Where the screenshots go.
fn screens() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tray-screens");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The icon's centre on the screen: the middle of the pixels of the
/// item's own colour in the panel's strip.
fn locate(img: &Image, colour: [u8; 3]) -> Option<(u32, u32)> {
    let near = |p: [u8; 3]| {
        p.iter()
            .zip(colour)
            .all(|(a, b)| (i32::from(*a) - i32::from(b)).abs() <= 10)
    };
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for y in 0..img.height.min(40) {
        for x in 0..img.width {
            if near(img.pixel(x, y)) {
                xs.push(x);
                ys.push(y);
            }
        }
    }
    if xs.len() < 16 {
        return None;
    }
    let mid = |v: &[u32]| (v.iter().min().unwrap() + v.iter().max().unwrap()) / 2;
    Some((mid(&xs), mid(&ys)))
}

/// Waits until the screen shows the icon in `colour` at `at` (found
/// from the item's own pixmap when `None`), keeps that screenshot as
/// `NAME.png`, and returns where the icon is.
async fn wait_screen(
    desktop: &Desktop,
    item: &Item,
    name: &str,
    at: Option<(u32, u32)>,
) -> (u32, u32) {
    let want = item.icon_colour().await;
    let png = screens().join(format!("{name}.png"));
    let start = Instant::now();
    loop {
        let img = desktop.screenshot(&png);
        let spot = at.or_else(|| locate(&img, want));
        if let Some((x, y)) = spot
            && classify(img.pixel(x, y)) == classify(want)
        {
            return (x, y);
        }
        assert!(
            start.elapsed() < LIMIT,
            "the panel never showed the {} icon ({want:?}) at {spot:?}; see {}",
            classify(want),
            png.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn record_when(
    p: &Health1Proxy<'_>,
    applet: Option<&Applet>,
    what: &str,
    cond: impl Fn(&HashMap<String, OwnedVariant>) -> bool,
) -> HashMap<String, OwnedVariant> {
    let explain = || {
        applet
            .map(|a| format!("; the applet's log:\n{}", a.log_text()))
            .unwrap_or_default()
    };
    common::bus::record_when_explained(p, what, explain, cond).await
}

/// SIGKILLs the server that runs now, whoever started it (the test, or
/// the daemon's start command during a rollback): its pid file names it.
fn kill_server(server: &mut Fail2ban) {
    let pid = std::fs::read_to_string(server.dir().join("run/fail2ban.pid")).unwrap();
    let pid = Pid::from_raw(pid.trim().parse().unwrap());
    kill(pid, Signal::SIGKILL).unwrap();
}

fn crashes(all: &[Notification]) -> Vec<&Notification> {
    all.iter()
        .filter(|n| n.summary.starts_with("fail2ban crash"))
        .collect()
}

/// One desktop with the applet on it, and the daemon and fail2ban it
/// follows. The fields drop in this order: the item and the applet
/// first, the desktop last.
struct Stage {
    item: Item,
    applet: Applet,
    /// `TrialEnded`, followed from before the applet starts when the
    /// daemon runs trials.
    ended: Option<TrialEndedStream>,
    p: Health1Proxy<'static>,
    _conn: zbus::Connection,
    daemon: Option<Daemon>,
    bus: PrivateBus,
    server: Fail2ban,
    desktop: Desktop,
}

impl Stage {
    /// Starts the desktop, fail2ban, the daemon (for trials when `trial`)
    /// and the applet, and waits until the panel lists the applet's item.
    async fn start(trial: bool) -> Stage {
        let desktop = Desktop::start().await;
        let server = Fail2ban::start();
        let bus = PrivateBus::start();
        let d = if trial {
            trial_daemon(&bus, &server).await
        } else {
            daemon(&bus, &server).await
        };
        let (conn, p) = proxy(&bus).await;
        assert!(p.probe().await.unwrap());
        let ended = if trial {
            Some(p.receive_trial_ended().await.unwrap())
        } else {
            None
        };
        let applet = Applet::start(&desktop, &bus, &[], &[]);
        let listed = desktop.wait_item(LIMIT).await;
        let item = Item::new(&desktop, &listed).await;
        Stage {
            item,
            applet,
            ended,
            p,
            _conn: conn,
            daemon: Some(d),
            bus,
            server,
            desktop,
        }
    }

    /// The daemon that runs now.
    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("the daemon runs")
    }

    /// The next `TrialEnded`: jail, kept, cause.
    async fn next_trial_end(&mut self) -> (String, bool, u32) {
        let ended = self.ended.as_mut().expect("a daemon for trials");
        next_trial_end(ended, self.daemon.as_ref().expect("the daemon runs")).await
    }

    /// Waits until the screen shows the icon as the item draws it; see
    /// [`wait_screen`].
    async fn wait_screen(&self, name: &str, at: Option<(u32, u32)>) -> (u32, u32) {
        wait_screen(&self.desktop, &self.item, name, at).await
    }

    /// Waits until the pending recovery satisfies `cond`.
    async fn record_when(
        &self,
        what: &str,
        cond: impl Fn(&HashMap<String, OwnedVariant>) -> bool,
    ) -> HashMap<String, OwnedVariant> {
        record_when(&self.p, Some(&self.applet), what, cond).await
    }
}

/// Online: green, Active, nothing to roll back. Returns where the icon is
/// on the screen.
async fn online_is_green_with_nothing_to_roll_back(s: &Stage) -> (u32, u32) {
    let item = &s.item;
    item.wait_colour("green", &s.applet).await;
    assert_eq!(item.property::<String>("Id").await, "fail2ban-healthd-tray");
    assert_eq!(item.property::<String>("Category").await, "SystemServices");
    assert_eq!(item.property::<String>("Status").await, "Active");
    assert_eq!(
        item.property::<String>("IconName").await,
        "fail2ban-healthd-ok"
    );
    let version = s.server.version();
    let (title, text) = item.tooltip().await;
    assert!(
        title.contains(&version) && title.contains("online"),
        "{title}"
    );
    assert!(text.contains("2 jails"), "{text}");
    let menu = item.menu().await;
    let labels = Item::labels(&menu);
    assert!(
        labels[0].starts_with(&format!("fail2ban {version} online: 2 jails")),
        "{labels:?}"
    );
    assert_eq!(
        labels[labels.len() - 4..],
        ["Dismiss", "Probe now", "Show status", "Quit"],
        "{labels:?}"
    );
    assert!(!menu.iter().find(|l| l.label == "Dismiss").unwrap().enabled);
    s.wait_screen("1-online", None).await
}

/// Show status: the status text, with the jails, as a notification.
async fn show_status_notifies_the_jails(s: &Stage) {
    s.item.click("Show status").await;
    let n = s
        .desktop
        .wait_notification(LIMIT, |n| n.summary == "fail2ban status")
        .await;
    assert!(
        n.body.contains("alpha: 0 banned") && n.body.contains("beta: 0 banned"),
        "{n:?}"
    );
}

/// A crash right after an activation: red, NeedsAttention, Roll back
/// offered, one critical notification naming the jail, which is returned.
async fn a_crash_is_red_and_offers_a_rollback(s: &mut Stage, at: (u32, u32)) -> Notification {
    s.p.register_activation("gamma").await.unwrap();
    s.server.signal_and_wait(Signal::SIGKILL);
    record_when(&s.p, None, "a cause-1 record", |r| !r.is_empty()).await;
    let item = &s.item;
    item.wait_colour("red", &s.applet).await;
    // Red comes with fail2ban's going offline already; the record follows
    // (a probe later) on its own property change.
    let menu = item
        .wait_menu(&s.applet, "the crash's record", |m| {
            Item::labels(m)
                .iter()
                .any(|l| l.starts_with("Crash attributed to jail gamma"))
        })
        .await;
    assert_eq!(item.property::<String>("Status").await, "NeedsAttention");
    let labels = Item::labels(&menu);
    assert!(
        labels.contains(&"Roll back gamma".to_string()),
        "{labels:?}"
    );
    assert!(item.tooltip().await.1.contains("gamma"));
    let crash = s
        .desktop
        .wait_notification(LIMIT, |n| n.summary.contains("crash"))
        .await;
    assert!(crash.summary.contains("gamma"), "{crash:?}");
    assert_eq!(crash.urgency, Some(2), "{crash:?}");
    assert_eq!(
        crash.actions,
        ["rollback", "Roll back gamma", "dismiss", "Dismiss"]
    );
    s.wait_screen("2-crash", Some(at)).await;
    crash
}

/// Roll back from the menu: the daemon writes the drop-in and the record
/// shows RolledBack; the icon turns amber (a resolved record), and the
/// resolution takes the place of the `crash` notification.
async fn rolling_back_from_the_menu_turns_amber(s: &Stage, crash: &Notification, at: (u32, u32)) {
    s.item.click("Roll back gamma").await;
    let r = s
        .record_when("the record rolled back", |r| get::<bool>(r, "RolledBack"))
        .await;
    assert_eq!(get::<String>(&r, "JailName"), "gamma");
    let written = std::fs::read_to_string(dropin(&s.server)).unwrap();
    assert!(
        written.contains("[gamma]") && written.contains("enabled = false"),
        "{written}"
    );
    let done = s
        .desktop
        .wait_notification(LIMIT, |n| n.summary == "Rolled back")
        .await;
    assert!(done.body.contains("gamma is disabled in"), "{done:?}");
    // Resolved: said once, in the crash notification's place.
    let resolved = s
        .desktop
        .wait_notification(LIMIT, |n| n.summary.starts_with("fail2ban recovered"))
        .await;
    assert!(resolved.summary.contains("gamma"), "{resolved:?}");
    assert_eq!(resolved.replaces_id, crash.id, "{resolved:?}");
    s.item.wait_colour("amber", &s.applet).await;
    let labels = Item::labels(&s.item.menu().await);
    assert!(
        !labels.iter().any(|l| l.starts_with("Roll back")),
        "{labels:?}"
    );
    assert!(
        labels
            .iter()
            .any(|l| l.starts_with("rolled back; resolved")),
        "{labels:?}"
    );
    s.wait_screen("3-rolled-back", Some(at)).await;
}

/// One notification for the crash: the daemon publishes "offline" first
/// and the record a moment later, and the crash's notification takes the
/// place of the offline one.
async fn one_notification_for_the_crash(s: &Stage, crash: &Notification) {
    let all = s.desktop.notifications().await;
    assert_eq!(crashes(&all).len(), 1, "{all:#?}");
    for offline in all.iter().filter(|n| n.summary == "fail2ban went offline") {
        assert_eq!(crash.replaces_id, offline.id, "{all:#?}");
    }
}

/// Dismiss from the menu: green once "just back" is over.
async fn dismiss_turns_green(s: &Stage) {
    s.item.click("Dismiss").await;
    s.record_when("no record", HashMap::is_empty).await;
    s.item.wait_colour("green", &s.applet).await;
}

/// A second crash, rolled back from the notification's button.
async fn a_second_crash_rolls_back_from_the_notification(s: &mut Stage) {
    s.p.register_activation("delta").await.unwrap();
    kill_server(&mut s.server);
    let second = s
        .desktop
        .wait_notification(LIMIT, |n| {
            n.summary.contains("crash") && n.summary.contains("delta")
        })
        .await;
    s.item.wait_colour("red", &s.applet).await;
    s.desktop.invoke_action(second.id, "rollback").await;
    s.record_when("delta rolled back", |r| {
        get::<bool>(r, "RolledBack") && get::<String>(r, "JailName") == "delta"
    })
    .await;
    let written = std::fs::read_to_string(dropin(&s.server)).unwrap();
    assert!(
        written.contains("[delta]") && written.contains("[gamma]"),
        "{written}"
    );
    s.item.wait_colour("amber", &s.applet).await;
}

/// The daemon gone: grey, and the item says so.
async fn the_daemon_gone_is_grey(s: &mut Stage, at: (u32, u32)) {
    let mut gone = s.daemon.take().unwrap();
    let mut child = gone.child.take().unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    child.wait().unwrap();
    drop(gone);
    let item = &s.item;
    item.wait_colour("grey", &s.applet).await;
    assert_eq!(item.property::<String>("Status").await, "Active");
    let (title, _) = item.tooltip().await;
    assert!(title.contains("not running"), "{title}");
    let menu = item.menu().await;
    assert!(
        !menu
            .iter()
            .find(|l| l.label == "Probe now")
            .unwrap()
            .enabled,
        "{menu:#?}"
    );
    s.wait_screen("4-daemon-gone", Some(at)).await;
}

/// Back: the applet finds the daemon again by itself.
async fn the_daemon_back_is_found_again(s: &mut Stage, at: (u32, u32)) {
    s.daemon = Some(daemon(&s.bus, &s.server).await);
    let item = &s.item;
    let start = Instant::now();
    while classify(item.icon_colour().await) == "grey" {
        assert!(
            start.elapsed() < LIMIT,
            "still grey: {}",
            s.applet.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        item.menu()
            .await
            .iter()
            .find(|l| l.label == "Probe now")
            .unwrap()
            .enabled
    );
    item.wait_colour("green", &s.applet).await;
    s.wait_screen("5-daemon-back", Some(at)).await;
}

/// Quit: the applet ends cleanly and its item leaves the panel.
async fn quit_ends_the_applet_and_its_item(s: &mut Stage) {
    s.item.click("Quit").await;
    assert!(s.applet.wait_exit().success(), "{}", s.applet.log_text());
    let start = Instant::now();
    while !s.desktop.items().await.is_empty() {
        assert!(
            start.elapsed() < LIMIT,
            "the item stayed: {:?}",
            s.desktop.items().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every state in turn, on one desktop: online, a crash record, rolled
/// back from the menu, a second crash rolled back from the notification,
/// the daemon gone and back, and Quit.
#[tokio::test]
async fn the_applet_follows_every_state_and_rolls_back_from_menu_and_notification() {
    let mut s = Stage::start(false).await;
    let at = online_is_green_with_nothing_to_roll_back(&s).await;
    show_status_notifies_the_jails(&s).await;
    let crash = a_crash_is_red_and_offers_a_rollback(&mut s, at).await;
    rolling_back_from_the_menu_turns_amber(&s, &crash, at).await;
    one_notification_for_the_crash(&s, &crash).await;
    dismiss_turns_green(&s).await;
    a_second_crash_rolls_back_from_the_notification(&mut s).await;
    the_daemon_gone_is_grey(&mut s, at).await;
    the_daemon_back_is_found_again(&mut s, at).await;
    quit_ends_the_applet_and_its_item(&mut s).await;
}

/// An unprivileged desktop user: polkit is asked with the interactive
/// flag; a denial comes back as a notification in words, with nothing
/// written; once polkit allows it, the same click rolls back.
#[tokio::test]
async fn polkit_denial_is_a_notification_and_the_call_is_interactive() {
    let desktop = Desktop::start().await;
    let mut server = Fail2ban::start();
    let bus = PrivateBus::with_polkit();
    let polkit = PolkitMock::start(&bus.address).await;
    let _d = daemon(&bus, &server).await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    p.register_activation("gamma").await.unwrap();
    server.signal_and_wait(Signal::SIGKILL);
    record_when(&p, None, "a cause-1 record", |r| !r.is_empty()).await;

    let setpriv = common::require_program("setpriv", "util-linux");
    let applet = Applet::start(
        &desktop,
        &bus,
        &[
            setpriv.to_str().unwrap(),
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ],
        &[],
    );
    let item = Item::new(&desktop, &desktop.wait_item(LIMIT).await).await;
    item.wait_colour("red", &applet).await;

    item.click("Roll back gamma").await;
    let refused = desktop
        .wait_notification(LIMIT, |n| n.summary == "Roll back failed")
        .await;
    assert!(refused.body.starts_with("Not authorized"), "{refused:?}");
    let checks = polkit.checks().await;
    assert!(
        checks.contains(&("org.fail2ban_healthd.rollback".to_string(), 1)),
        "the check was not interactive: {checks:?}"
    );
    assert!(!dropin(&server).exists(), "nothing is written");
    assert!(!get::<bool>(
        &p.pending_recovery().await.unwrap(),
        "RolledBack"
    ));

    polkit.set_allowed(&["org.fail2ban_healthd.rollback"]).await;
    item.click("Roll back gamma").await;
    record_when(&p, Some(&applet), "the record rolled back", |r| {
        get::<bool>(r, "RolledBack")
    })
    .await;
    assert!(
        std::fs::read_to_string(dropin(&server))
            .unwrap()
            .contains("[gamma]")
    );
}

/// Whether `menu` has an enabled line labelled `label`.
fn offers(menu: &[Line], label: &str) -> bool {
    menu.iter().any(|l| l.label == label && l.enabled)
}

/// A good jail on trial for 10 minutes: amber, and the deadline as local
/// wall-clock time in the tooltip and the menu; Keep and Roll back now
/// offered, no plain Roll back.
async fn a_trial_is_amber_and_says_until_when(s: &Stage) {
    write_jail(&s.server, "gamma", true);
    s.p.try_jail("gamma", 600_000_000).await.unwrap();
    let item = &s.item;
    item.wait_colour("amber", &s.applet).await;
    let deadline: u64 = get(&s.p.trial().await.unwrap(), "DeadlineAt");
    let until = chrono::DateTime::from_timestamp_micros(i64::try_from(deadline).unwrap())
        .unwrap()
        .with_timezone(&chrono::Local)
        .format("%H:%M")
        .to_string();
    let line = format!("Trying gamma until {until}");
    let (title, text) = item.tooltip().await;
    assert!(title.ends_with("trying gamma"), "{title}");
    assert!(text.contains(&line), "{text}");
    assert_eq!(item.property::<String>("Status").await, "Active");
    let menu = item.menu().await;
    let labels = Item::labels(&menu);
    assert_eq!(labels[1], line, "{labels:?}");
    assert!(offers(&menu, "Keep gamma"), "{menu:#?}");
    assert!(offers(&menu, "Roll back gamma now"), "{menu:#?}");
    assert!(
        !labels.contains(&"Roll back gamma".to_string()),
        "{labels:?}"
    );
    s.wait_screen("6-trial", None).await;
}

/// Roll back now: Abort, the trial ends rolled back with cause 0, one
/// normal notice says so, and the item is green with no trial.
async fn roll_back_now_aborts_the_trial(s: &mut Stage) {
    s.item.click("Roll back gamma now").await;
    assert_eq!(s.next_trial_end().await, ("gamma".into(), false, 0));
    let aborted = s
        .desktop
        .wait_notification(LIMIT, |n| {
            n.summary == "Trial of gamma aborted, rolled back"
        })
        .await;
    assert_eq!(aborted.urgency, Some(1), "{aborted:?}");
    assert!(
        aborted.body.contains(&format!(
            "fail2ban {} is online with 2 jails",
            s.server.version()
        )),
        "{aborted:?}"
    );
    s.item
        .wait_menu(&s.applet, "no trial", |m| {
            !m.iter().any(|l| l.label.contains("gamma"))
        })
        .await;
    s.item.wait_colour("green", &s.applet).await;
    assert!(
        !s.server
            .jail_names()
            .unwrap()
            .contains(&"gamma".to_string())
    );
}

/// Keep: Confirm, the trial ends kept, and the jail runs.
async fn keep_confirms_the_trial(s: &mut Stage) {
    write_jail(&s.server, "delta", true);
    s.p.try_jail("delta", 600_000_000).await.unwrap();
    s.item
        .wait_menu(&s.applet, "Keep delta", |m| offers(m, "Keep delta"))
        .await;
    s.item.click("Keep delta").await;
    assert_eq!(s.next_trial_end().await, ("delta".into(), true, 0));
    let kept = s
        .desktop
        .wait_notification(LIMIT, |n| {
            n.summary == "delta kept: fail2ban stayed healthy"
        })
        .await;
    assert_eq!(kept.urgency, Some(1), "{kept:?}");
    let online = format!("fail2ban {} is online", s.server.version());
    assert!(kept.body.ends_with(&format!("{online}.")), "{kept:?}");
    s.item.wait_colour("green", &s.applet).await;
    let start = Instant::now();
    while !s
        .server
        .jail_names()
        .unwrap()
        .contains(&"delta".to_string())
    {
        assert!(
            start.elapsed() < LIMIT,
            "delta does not run: {}",
            s.daemon().log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let labels = Item::labels(&s.item.menu().await);
    assert!(!labels.iter().any(|l| l.contains("delta")), "{labels:?}");
}

/// A jail whose filter is missing: the reload drops it, the daemon
/// records the failure against the trial and rolls it back by itself,
/// with one critical notice (returned) and no manual Roll back offered.
async fn a_failing_jail_is_rolled_back_by_itself(s: &mut Stage) -> Notification {
    write_jail(&s.server, "bad", false);
    s.p.try_jail("bad", 600_000_000).await.unwrap();
    assert_eq!(s.next_trial_end().await, ("bad".into(), false, 2));
    let r = s.p.pending_recovery().await.unwrap();
    assert_eq!(get::<String>(&r, "JailName"), "bad");
    assert!(get::<bool>(&r, "AutoRolledBack"), "{r:?}");
    let failed = s
        .desktop
        .wait_notification(LIMIT, |n| {
            n.summary == "Trial of bad failed and was rolled back"
        })
        .await;
    assert_eq!(failed.urgency, Some(2), "{failed:?}");
    assert!(
        failed.body.contains("the jail is not running")
            && failed.body.contains("rolled bad back by itself")
            && failed.body.contains("online with 3 jails"),
        "{failed:?}"
    );
    assert_eq!(failed.actions, ["dismiss", "Dismiss"], "{failed:?}");
    let menu = s
        .item
        .wait_menu(&s.applet, "the automatic rollback", |m| {
            m.iter()
                .any(|l| l.label.starts_with("rolled back automatically (trial)"))
        })
        .await;
    let labels = Item::labels(&menu);
    assert!(
        !labels.iter().any(|l| l.starts_with("Roll back")),
        "{labels:?}"
    );
    assert!(offers(&menu, "Dismiss"), "{menu:#?}");
    s.item.wait_colour("amber", &s.applet).await;
    s.wait_screen("7-trial-rolled-back", None).await;
    failed
}

/// One story, one notification: the failure's notice (critical, without
/// buttons) came first, and the end (`failed`) took its place; neither
/// offered a manual Roll back, and no crash notice came.
async fn one_notification_tells_the_failed_trial(s: &Stage, failed: &Notification) {
    let all = s.desktop.notifications().await;
    let about_bad: Vec<&Notification> = all.iter().filter(|n| n.summary.contains("bad")).collect();
    assert_eq!(about_bad.len(), 2, "{all:#?}");
    let first = about_bad[0];
    assert_eq!(
        first.summary, "Trial of jail bad failed: rolling back automatically",
        "{all:#?}"
    );
    assert_eq!(first.urgency, Some(2), "{all:#?}");
    assert!(first.actions.is_empty(), "{all:#?}");
    assert_eq!(failed.replaces_id, first.id, "{all:#?}");
    assert_eq!(failed.id, first.id, "{all:#?}");
    assert!(crashes(&all).is_empty(), "{all:#?}");
    assert!(
        !all.iter().any(|n| n.summary == "fail2ban went offline"),
        "{all:#?}"
    );
}

/// Trials from the panel: a running trial is amber, says until when, and
/// offers Keep and Roll back now; Roll back now aborts it and Keep
/// confirms another, each ending in one notice; a failing jail is rolled
/// back by the daemon by itself, with one critical notice and no manual
/// Roll back offered anywhere.
#[tokio::test]
async fn a_trial_shows_in_the_panel_and_ends_from_the_menu_or_by_itself() {
    let mut s = Stage::start(true).await;
    s.item.wait_colour("green", &s.applet).await;
    a_trial_is_amber_and_says_until_when(&s).await;
    roll_back_now_aborts_the_trial(&mut s).await;
    keep_confirms_the_trial(&mut s).await;
    let failed = a_failing_jail_is_rolled_back_by_itself(&mut s).await;
    one_notification_tells_the_failed_trial(&s, &failed).await;
}
