//! The daemon's life cycle: systemd notifications, SIGTERM, a lost bus,
//! bad configuration, bus selection, and one PropertiesChanged per step.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Fail2ban;
use common::bus::{Daemon, PrivateBus, proxy};
use futures_util::StreamExt;
use nix::sys::signal::{Signal, kill};

#[tokio::test]
async fn notifies_systemd_and_stops_cleanly_on_sigterm() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut daemon = Daemon::start(
        &bus,
        &server.socket,
        &[],
        &[
            ("NOTIFY_SOCKET", notify_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    )
    .await;
    let mut seen: Vec<String> = Vec::new();
    let mut read_until = |pred: &dyn Fn(&[String]) -> bool, limit: Duration| {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while !pred(&seen) {
            assert!(start.elapsed() < limit, "notifications so far: {seen:?}");
            if let Ok(n) = notify.recv(&mut buf) {
                seen.extend(
                    String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .map(str::to_owned),
                );
            }
        }
    };
    read_until(
        &|s| s.iter().any(|l| l == "READY=1"),
        Duration::from_secs(20),
    );
    read_until(
        &|s| {
            s.iter()
                .any(|l| l.starts_with("STATUS=fail2ban ") && l.contains("online, 2 jails"))
        },
        Duration::from_secs(20),
    );
    // Half of WATCHDOG_USEC: several pings within a second (the bound
    // leaves room for a loaded machine; pings at the 30 s probe interval
    // would not make it).
    read_until(
        &|s| s.iter().filter(|l| *l == "WATCHDOG=1").count() >= 3,
        Duration::from_secs(5),
    );

    let conn = bus.connect().await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
    let name = || zbus::names::BusName::try_from(fail2ban_healthd::bus::NAME).unwrap();
    assert!(dbus.name_has_owner(name()).await.unwrap());
    kill(daemon.pid(), Signal::SIGTERM).unwrap();
    let status = daemon.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", daemon.log_text());
    read_until(
        &|s| s.iter().any(|l| l == "STOPPING=1"),
        Duration::from_secs(10),
    );
    assert!(
        !dbus.name_has_owner(name()).await.unwrap(),
        "the name is released"
    );
    let ready = seen.iter().position(|l| l == "READY=1").unwrap();
    let stopping = seen.iter().position(|l| l == "STOPPING=1").unwrap();
    assert!(ready < stopping);
}

#[tokio::test]
async fn status_line_tells_why_fail2ban_is_offline() {
    let mut server = Fail2ban::start();
    server.signal_and_wait(Signal::SIGKILL);
    let bus = PrivateBus::start();
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _daemon = Daemon::start(
        &bus,
        &server.socket,
        &[],
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())],
    )
    .await;
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    loop {
        let n = notify.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.contains("STATUS=fail2ban offline: connection refused") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "last: {text}");
    }
}

#[tokio::test]
async fn losing_the_bus_makes_the_daemon_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut bus = PrivateBus::start();
    let mut daemon = Daemon::start(&bus, &dir.path().join("none.sock"), &[], &[]).await;
    bus.kill();
    // It exits by itself (at once; the limit is generous).
    let status = daemon.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{}", daemon.log_text());
}

fn run_with(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fail2ban-healthd"))
        .arg("run")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bad_configuration_exits_2_before_touching_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    // A bus address that would hang or fail if it were used.
    let never = format!("unix:path={}", dir.path().join("no-bus").display());
    for (text, key) in [
        ("probe_interval = \"often\"\n", "probe_interval"),
        ("crash_window = 60\n", "line 1"),
        ("colour = \"blue\"\n", "colour"),
        ("jail_start_grace = \"2m\"\n", "jail_start_grace"),
        ("manage_group = \"no-such-group-here\"\n", "manage_group"),
        ("socket = \"fail2ban.sock\"\n", "socket"),
        // Every other key, each with a value of the wrong kind.
        ("probe_timeout = \"0s\"\n", "probe_timeout"),
        ("watch_interval = \"1ms\"\n", "watch_interval"),
        ("state_file = \"state.json\"\n", "state_file"),
        ("fail2ban_unit = \"fail2ban\"\n", "fail2ban_unit"),
        ("instant_detection = \"yes\"\n", "line 1"),
        ("bus = \"tcp\"\n", "bus"),
        ("bus_address = \"nowhere\"\n", "bus_address"),
        ("log = \"syslog\"\n", "log"),
        ("log_level = \"loud\"\n", "log_level"),
        (
            "rollback_dropin = \"/etc/fail2ban/jail.d/x.conf\"\n",
            "rollback_dropin",
        ),
        (
            "fail2ban_reload_command = \"\"\n",
            "fail2ban_reload_command",
        ),
        ("fail2ban_start_command = \" \"\n", "fail2ban_start_command"),
        ("rollback_timeout = \"forever\"\n", "rollback_timeout"),
        ("metrics_file = \"/tmp/fail2ban.txt\"\n", "metrics_file"),
        ("probe_interval = [1, 2]\n", "line 1"),
        ("[section]\nx = 1\n", "section"),
    ] {
        let file = dir.path().join("config.toml");
        std::fs::write(&file, text).unwrap();
        // The flag would override a bad bus_address in the file.
        let out = if key == "bus_address" {
            run_with(&["--config", file.to_str().unwrap()])
        } else {
            run_with(&["--config", file.to_str().unwrap(), "--bus-address", &never])
        };
        assert_eq!(out.status.code(), Some(2), "{text}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("configuration error") && err.contains(key),
            "{text}: {err}"
        );
    }
    let out = run_with(&[
        "--config",
        dir.path().join("missing.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    let out = run_with(&["--probe-interval", "-5s", "--bus-address", &never]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = run_with(&["--log", "syslog", "--bus-address", &never]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn an_unreachable_bus_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let never = format!("unix:path={}", dir.path().join("no-bus").display());
    let out = run_with(&["--bus-address", &never, "--log", "stderr"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect to the D-Bus bus"));
}

#[tokio::test]
async fn a_second_daemon_on_the_same_bus_fails_and_leaves_the_name_to_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let bus = PrivateBus::start();
    let first = Daemon::start(&bus, &dir.path().join("none.sock"), &[], &[]).await;
    let conn = bus.connect().await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
    let name = zbus::names::BusName::try_from(fail2ban_healthd::bus::NAME).unwrap();
    let owner = dbus.get_name_owner(name.clone()).await.unwrap();

    let mut second = Command::new(env!("CARGO_BIN_EXE_fail2ban-healthd"))
        .args([
            "run",
            "--log",
            "stderr",
            "--bus-address",
            &bus.address,
            "--socket",
        ])
        .arg(dir.path().join("none.sock"))
        .arg("--state-file")
        .arg(dir.path().join("second-state.json"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Generous: it fails at its first bus call. One that took the name
    // would run on; it is killed so that the assertions below say so.
    let limit = Instant::now() + Duration::from_secs(30);
    while second.try_wait().unwrap().is_none() && Instant::now() < limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = second.kill();
    let out = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot own the bus name"),
        "the second daemon says why it stops: {stderr}"
    );
    // The first still owns the name, with the same connection, and answers.
    assert_eq!(dbus.get_name_owner(name).await.unwrap(), owner);
    let (_c, p) = proxy(&bus).await;
    assert!(!p.probe().await.unwrap(), "fail2ban is absent: offline");
    drop(first);
}

#[tokio::test]
async fn the_file_is_read_and_flags_override_it() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        "socket = \"/nonexistent.sock\"\nprobe_interval = \"45s\"\ncrash_window = \"2m\"\nbus = \"session\"\n",
    )
    .unwrap();
    let _daemon = Daemon::start(
        &bus,
        &server.socket,
        &[
            "--config",
            file.to_str().unwrap(),
            "--probe-interval",
            "50s",
        ],
        &[],
    )
    .await;
    let (_c, p) = proxy(&bus).await;
    assert_eq!(
        p.probe_interval_usec().await.unwrap(),
        50_000_000,
        "the flag wins"
    );
    assert_eq!(
        p.crash_window_usec().await.unwrap(),
        120_000_000,
        "the file is read"
    );
    assert_eq!(
        p.socket_path().await.unwrap(),
        server.socket.display().to_string()
    );
    assert!(p.probe().await.unwrap());
}

async fn serves_on(bus_flag: &str, env_name: &str) {
    let bus = PrivateBus::start();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fail2ban-healthd"))
        .args(["run", "--log", "stderr", "--bus", bus_flag, "--socket"])
        .arg(dir.path().join("none.sock"))
        .arg("--state-file")
        .arg(dir.path().join("state.json"))
        .env(env_name, &bus.address)
        .spawn()
        .unwrap();
    let (_c, p) = proxy(&bus).await;
    let start = Instant::now();
    while p.socket_path().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never served on the {bus_flag} bus"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn system_and_session_buses_follow_their_environment() {
    serves_on("system", "DBUS_SYSTEM_BUS_ADDRESS").await;
    serves_on("session", "DBUS_SESSION_BUS_ADDRESS").await;
}

#[tokio::test]
async fn one_step_is_one_properties_changed() {
    let mut server = Fail2ban::start();
    server.signal_and_wait(Signal::SIGKILL);
    let bus = PrivateBus::start();
    // Only the explicit probe below may notice fail2ban's return: one step.
    let _daemon = Daemon::start(&bus, &server.socket, &["--instant-detection", "false"], &[]).await;
    let (conn, p) = proxy(&bus).await;
    assert!(!p.probe().await.unwrap());
    let props = zbus::fdo::PropertiesProxy::builder(&conn)
        .destination(fail2ban_healthd::bus::NAME)
        .path(fail2ban_healthd::bus::PATH)
        .build()
        .await
        .unwrap();
    let mut changes = props.receive_properties_changed().await.unwrap();
    server.spawn();
    common::bus::probe_until(&p, true, "fail2ban back").await;
    let mut first = tokio::time::timeout(Duration::from_secs(10), changes.next())
        .await
        .unwrap()
        .unwrap();
    // The first probe's change (OfflineReason, from "not probed yet" to
    // refused) is published after Probe() answered, and may reach this
    // subscription first.
    let startup = first
        .args()
        .unwrap()
        .changed_properties
        .keys()
        .copied()
        .collect::<Vec<_>>()
        == ["OfflineReason"];
    if startup {
        first = tokio::time::timeout(Duration::from_secs(10), changes.next())
            .await
            .unwrap()
            .unwrap();
    }
    let args = first.args().unwrap();
    assert_eq!(
        args.interface_name.as_str(),
        fail2ban_healthd::bus::INTERFACE
    );
    let mut names: Vec<&str> = args.changed_properties.keys().copied().collect();
    names.sort();
    assert_eq!(
        names,
        ["ActiveJails", "Jails", "OfflineReason", "Online", "Version"]
    );
    // One signal for the step: the next one is a later step's, that of an
    // activation registered now.
    p.register_activation("alpha").await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), changes.next())
        .await
        .unwrap()
        .unwrap();
    let args = next.args().unwrap();
    let names: Vec<&str> = args.changed_properties.keys().copied().collect();
    assert!(
        names.contains(&"LastActivation") && !names.contains(&"Online"),
        "one signal for the step, then the activation's: {names:?}"
    );
}

/// SIGTERM while a rollback waits for a reload command that hangs: the
/// rollback gets its grace, is cancelled (the command killed, the drop-in
/// left whole), every task is waited for and named in the log, and the
/// daemon exits 0 well within its deadline.
#[tokio::test]
async fn sigterm_during_a_hung_rollback_stops_every_task_within_the_deadline() {
    use common::bus::{get, record_when};
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    let dropin = server.dir().join("conf/jail.d/zz-healthd.local");
    // A reload that never ends, with an argument no other test uses, so
    // that its process can be found.
    let sleep = common::require_program("sleep", "coreutils");
    let reload = format!("{} 987", sleep.display());
    let mut daemon =
        common::bus::rollback_daemon(&bus, &server, &dropin, Some(&reload), None, &[]).await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    p.register_activation("bogus").await.unwrap();
    let r = record_when(&p, "a cause-2 record", |r| !r.is_empty()).await;
    assert_eq!(get::<String>(&r, "JailName"), "bogus");
    let (_c2, p2) = proxy(&bus).await;
    let rollback = tokio::spawn(async move { p2.rollback().await });
    let started = Instant::now();
    while !daemon.log_text().contains("rollback_running_command") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the rollback never ran its command: {}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hung = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c.ends_with(b"sleep\0987\0"))
        })
    };
    assert!(hung(), "the reload command is not running");

    let signalled = Instant::now();
    kill(daemon.pid(), Signal::SIGTERM).unwrap();
    // The rollback's grace is 4 s and the deadline 5 s: 30 s is generous.
    let status = daemon.wait_exit(Duration::from_secs(30));
    let took = signalled.elapsed();
    let log = daemon.log_text();
    assert!(status.success(), "exit {status}: {log}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(
        log.contains("the daemon stopped before the rollback ended"),
        "{log}"
    );
    let stopped = log
        .lines()
        .find(|l| l.contains("daemon_tasks_stopped"))
        .unwrap_or_else(|| panic!("no daemon_tasks_stopped: {log}"));
    for task in [
        "rollback of jail bogus",
        "owner (probes, state file, metrics)",
        "publisher",
        "rollback runner",
    ] {
        assert!(stopped.contains(task), "{task} not named: {stopped}");
    }
    assert!(!log.contains("daemon_tasks_not_stopped"), "{log}");
    common::wait_until(Duration::from_secs(10), "the reload command killed", || {
        !hung()
    });
    // The drop-in was written whole before the command ran.
    let text = std::fs::read_to_string(&dropin).unwrap();
    assert!(
        text.starts_with(fail2ban_healthd::rollback::MARKER),
        "{text}"
    );
    assert!(text.ends_with("[bogus]\nenabled = false\n"), "{text}");
    // The caller is answered (an error), not left waiting.
    let answer = tokio::time::timeout(Duration::from_secs(30), rollback)
        .await
        .expect("the Rollback call ended")
        .unwrap();
    assert!(answer.is_err(), "{answer:?}");
}
