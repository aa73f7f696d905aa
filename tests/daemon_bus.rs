//! The daemon binary on a private system-type dbus-daemon (with the
//! project's policy file), probing a real fail2ban-server, checked by a
//! zbus client, busctl and dbus-send.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::Fail2ban;
use common::bus::{Daemon, PrivateBus, get, proxy};
use fail2ban_healthd::bus::proxy::Health1Proxy;
use futures_util::StreamExt;
use nix::sys::signal::Signal;
use zbus::OwnedVariant;

async fn within<T>(what: &str, secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test]
async fn properties_match_fail2ban() {
    let server = Fail2ban::start();
    server.log_line("alpha", "FAIL login from 192.0.2.9");
    common::wait_until(Duration::from_secs(30), "the failure counted", || {
        server
            .client(&["status", "alpha"])
            .contains("Total failed:\t1")
    });
    let bus = PrivateBus::start();
    let _daemon = Daemon::start(
        &bus,
        &server.socket,
        &["--probe-interval", "1m", "--crash-window", "90s"],
        &[],
    )
    .await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    assert!(p.online().await.unwrap());
    assert_eq!(p.offline_reason().await.unwrap(), 0);
    let version =
        fail2ban_healthd::fail2ban::probe_once(&fail2ban_healthd::fail2ban::ProbeConfig {
            socket: server.socket.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .version;
    assert_eq!(p.version().await.unwrap(), version);
    assert_eq!(p.active_jails().await.unwrap(), 2);
    let jails = p.jails().await.unwrap();
    assert_eq!(
        jails,
        [
            ("alpha".to_string(), 1, 1, 0, 0),
            ("beta".to_string(), 0, 0, 0, 0)
        ]
    );
    assert!(p.last_probe_timestamp().await.unwrap() > 1_700_000_000_000_000);
    assert!(p.last_activation().await.unwrap().is_empty());
    assert!(p.pending_recovery().await.unwrap().is_empty());
    assert_eq!(p.probe_interval_usec().await.unwrap(), 60_000_000);
    assert_eq!(p.crash_window_usec().await.unwrap(), 90_000_000);
    assert_eq!(
        p.socket_path().await.unwrap(),
        server.socket.display().to_string()
    );

    // The same through busctl, as an administrator would look.
    let busctl = common::require_program("busctl", "systemd");
    let out = std::process::Command::new(busctl)
        .arg(format!("--address={}", bus.address))
        .args([
            "get-property",
            "org.fail2ban_healthd.Health1",
            "/org/fail2ban_healthd/Health1",
            "org.fail2ban_healthd.Health1",
            "Online",
            "ActiveJails",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "b true\nu 2\n");
}

#[tokio::test]
async fn live_introspection_equals_the_shipped_xml() {
    let bus = PrivateBus::start();
    let dir = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(&bus, &dir.path().join("none.sock"), &[], &[]).await;
    let conn = bus.connect().await;
    let intro = zbus::fdo::IntrospectableProxy::builder(&conn)
        .destination(fail2ban_healthd::bus::NAME)
        .path(fail2ban_healthd::bus::PATH)
        .build()
        .await
        .unwrap()
        .introspect()
        .await
        .unwrap();
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dbus/org.fail2ban_healthd.Health1.xml"
    ))
    .unwrap();
    let block = |s: &str| -> String {
        let start = s
            .find("<interface name=\"org.fail2ban_healthd.Health1\">")
            .expect("interface");
        let end = start + s[start..].find("</interface>").expect("end") + "</interface>".len();
        s[start..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(block(&intro), block(&shipped));
    // Every member the contract names is in the file.
    for name in [
        "Online",
        "OfflineReason",
        "Version",
        "ActiveJails",
        "Jails",
        "LastProbeTimestamp",
        "LastActivation",
        "PendingRecovery",
        "ProbeIntervalUSec",
        "CrashWindowUSec",
        "SocketPath",
        "RegisterActivation",
        "DismissRecovery",
        "Probe",
        "CameOnline",
        "WentOffline",
        "ActivationCrashDetected",
        "RecoveryResolved",
        "Try",
        "Check",
        "Confirm",
        "Abort",
        "Trial",
        "TrialEnded",
    ] {
        assert!(shipped.contains(&format!("name=\"{name}\"")), "{name}");
    }
}

async fn record(p: &Health1Proxy<'_>) -> HashMap<String, OwnedVariant> {
    p.pending_recovery().await.unwrap()
}

#[tokio::test]
async fn a_crash_inside_the_window_is_attributed_and_its_recovery_seen() {
    let mut server = Fail2ban::start();
    let bus = PrivateBus::start();
    let daemon = Daemon::start(
        &bus,
        &server.socket,
        &["--crash-window", "20s", "--jail-start-grace", "1s"],
        &[],
    )
    .await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    let mut offline = p.receive_went_offline().await.unwrap();
    let mut crash = p.receive_activation_crash_detected().await.unwrap();
    let mut resolved = p.receive_recovery_resolved().await.unwrap();
    let mut online = p.receive_came_online().await.unwrap();

    let at = p.register_activation("alpha").await.unwrap();
    let shown = p.last_activation().await.unwrap();
    assert_eq!(get::<String>(&shown, "JailName"), "alpha");
    assert_eq!(get::<u64>(&shown, "ActivatedAt"), at);

    server.signal_and_wait(Signal::SIGKILL);
    common::bus::probe_until(&p, false, "fail2ban killed").await;
    // Refused (3), or connection lost (8) when the kill caught a probe
    // mid-conversation (the activation starts one at once).
    let went = within("WentOffline", 10, offline.next()).await.unwrap();
    let reason = went.args().unwrap().reason;
    assert!(reason == 3 || reason == 8, "{reason}");
    let c = within("ActivationCrashDetected", 10, crash.next())
        .await
        .unwrap();
    let args = c.args().unwrap();
    assert_eq!(args.jail_name, "alpha");
    assert_eq!(args.activated_at, at);
    assert_eq!(args.cause, 1);
    assert!(args.detected_at >= at);
    let r = record(&p).await;
    assert_eq!(get::<String>(&r, "JailName"), "alpha");
    assert_eq!(get::<u32>(&r, "Cause"), 1);
    assert_eq!(get::<u32>(&r, "OfflineReason"), reason);
    assert_eq!(get::<u64>(&r, "ActivatedAt"), at);
    assert!(!get::<bool>(&r, "Recovered"));
    assert_eq!(get::<u64>(&r, "RecoveredAt"), 0);
    assert!(!p.online().await.unwrap());
    // Later probes find the socket refusing connections.
    assert!(matches!(p.offline_reason().await.unwrap(), 3 | 8));
    assert_eq!(p.version().await.unwrap(), "");

    server.spawn();
    common::bus::probe_until(&p, true, "fail2ban back").await;
    within("CameOnline", 10, online.next()).await.unwrap();
    let res = within("RecoveryResolved", 10, resolved.next())
        .await
        .unwrap();
    assert_eq!(res.args().unwrap().jail_name, "alpha");
    let r = record(&p).await;
    assert!(get::<bool>(&r, "Recovered"));
    assert_eq!(
        get::<u64>(&r, "RecoveredAt"),
        res.args().unwrap().recovered_at
    );
    let log = daemon.log_text();
    assert!(
        log.contains("activation_crash_detected") && log.contains("jail=alpha"),
        "{log}"
    );
    assert!(log.contains("pending_recovery_resolved"), "{log}");

    // A record stays until dismissed; then there is nothing to dismiss.
    p.dismiss_recovery().await.unwrap();
    assert!(record(&p).await.is_empty());
    let err = p.dismiss_recovery().await.unwrap_err();
    assert!(err.to_string().contains("NoPendingRecovery"), "{err}");
}

#[tokio::test]
async fn a_crash_after_the_window_is_only_offline() {
    let mut server = Fail2ban::start();
    let bus = PrivateBus::start();
    let _daemon = Daemon::start(
        &bus,
        &server.socket,
        &["--crash-window", "2s", "--jail-start-grace", "1s"],
        &[],
    )
    .await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    // Every signal of the interface, in the order the daemon sent them.
    let mut signals = p.inner().receive_all_signals().await.unwrap();
    let at = p.register_activation("alpha").await.unwrap();
    // The window (2 s from ActivatedAt, microseconds since the epoch) is
    // over on the clock that dated the activation, with half a second to
    // spare for the daemon's own instant being taken a little later.
    let window_end =
        std::time::UNIX_EPOCH + Duration::from_micros(at) + Duration::from_millis(2500);
    common::wait_until(Duration::from_secs(10), "the crash window over", || {
        std::time::SystemTime::now() >= window_end
    });
    server.signal_and_wait(Signal::SIGKILL);
    // `Probe()` may answer from a probe that ended less than a second
    // before the call (the contract's floor), made before the kill: the
    // answer turns false once the daemon has seen the connection end.
    common::bus::probe_until(&p, false, "fail2ban seen down").await;
    // A crash would be judged on this offline transition, before the next
    // one: between WentOffline and the CameOnline of the restart, nothing.
    server.spawn();
    common::bus::probe_until(&p, true, "fail2ban back").await;
    let mut names = Vec::new();
    let mut startup_skipped = false;
    while names.last().map(String::as_str) != Some("CameOnline") {
        let msg = within("CameOnline", 10, signals.next()).await.unwrap();
        let name = msg.header().member().unwrap().to_string();
        // The CameOnline of the daemon's first probe, published after
        // Probe() answered, may reach this subscription first.
        if names.is_empty() && name == "CameOnline" && !startup_skipped {
            startup_skipped = true;
            continue;
        }
        names.push(name);
    }
    assert_eq!(
        names,
        ["WentOffline", "CameOnline"],
        "no crash event expected"
    );
    assert!(record(&p).await.is_empty());
}

#[tokio::test]
async fn a_jail_that_never_runs_is_cause_2_and_its_record_is_never_overwritten() {
    let mut server = Fail2ban::start();
    let bus = PrivateBus::start();
    let _daemon = Daemon::start(
        &bus,
        &server.socket,
        &["--crash-window", "30s", "--jail-start-grace", "1s"],
        &[],
    )
    .await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    let mut crash = p.receive_activation_crash_detected().await.unwrap();
    let mut offline = p.receive_went_offline().await.unwrap();
    let started = Instant::now();
    p.register_activation("ghost").await.unwrap();
    // No call needed: the daemon probes right after the grace by itself.
    let c = within("cause 2", 10, crash.next()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(c.args().unwrap().jail_name, "ghost");
    assert_eq!(c.args().unwrap().cause, 2);
    let first = record(&p).await;
    assert_eq!(get::<u32>(&first, "Cause"), 2);
    assert_eq!(get::<u32>(&first, "OfflineReason"), 0);

    p.register_activation("alpha").await.unwrap();
    server.signal_and_wait(Signal::SIGKILL);
    // `Probe()` may answer from a probe that ended less than a second
    // before the call (the contract's floor), made before the kill: the
    // answer turns false once the daemon has seen the connection end.
    common::bus::probe_until(&p, false, "fail2ban seen down").await;
    within("WentOffline", 10, offline.next()).await.unwrap();
    let after = record(&p).await;
    assert_eq!(get::<String>(&after, "JailName"), "ghost");
    assert_eq!(get::<u32>(&after, "Cause"), 2);
    assert_eq!(
        get::<u64>(&after, "DetectedAt"),
        get::<u64>(&first, "DetectedAt")
    );
    assert!(!get::<bool>(&after, "Recovered"));
}

/// Runs `program` with `args` as user and group nobody.
fn as_nobody(program: &std::path::Path, args: &[&str]) -> std::process::Output {
    let setpriv = common::require_program("setpriv", "util-linux");
    std::process::Command::new(&setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(program)
        .args(args)
        .output()
        .unwrap()
}

/// Nobody calling RegisterActivation and DismissRecovery with dbus-send
/// is not authorized.
fn dbus_send_as_nobody_is_not_authorized(bus: &PrivateBus) {
    let dbus_send = common::require_program("dbus-send", "dbus-bin");
    let bus_arg = format!("--bus={}", bus.address);
    let out = as_nobody(
        &dbus_send,
        &[
            &bus_arg,
            "--print-reply",
            "--dest=org.fail2ban_healthd.Health1",
            "/org/fail2ban_healthd/Health1",
            "org.fail2ban_healthd.Health1.RegisterActivation",
            "string:alpha",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("org.fail2ban_healthd.Health1.Error.NotAuthorized"),
        "{err}"
    );
    let out = as_nobody(
        &dbus_send,
        &[
            &bus_arg,
            "--print-reply",
            "--dest=org.fail2ban_healthd.Health1",
            "/org/fail2ban_healthd/Health1",
            "org.fail2ban_healthd.Health1.DismissRecovery",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Error.NotAuthorized"),
        "{out:?}"
    );
}

/// Nobody with busctl may not manage, but may read.
fn busctl_as_nobody_reads_but_may_not_manage(bus: &PrivateBus) {
    let busctl = common::require_program("busctl", "systemd");
    let addr = format!("--address={}", bus.address);
    let out = as_nobody(
        &busctl,
        &[
            &addr,
            "call",
            "org.fail2ban_healthd.Health1",
            "/org/fail2ban_healthd/Health1",
            "org.fail2ban_healthd.Health1",
            "RegisterActivation",
            "s",
            "alpha",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may not manage"),
        "{out:?}"
    );
    // Reading is open to everyone.
    let out = as_nobody(
        &busctl,
        &[
            &addr,
            "get-property",
            "org.fail2ban_healthd.Health1",
            "/org/fail2ban_healthd/Health1",
            "org.fail2ban_healthd.Health1",
            "ActiveJails",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "u 2\n", "{out:?}");
}

/// Each invalid jail name is refused with InvalidJailName.
async fn invalid_jail_names_are_refused(p: &Health1Proxy<'_>) {
    let long = "j".repeat(200);
    for bad in [
        "",
        long.as_str(),
        "../x",
        "a b",
        "ctl\u{1}",
        ".hidden",
        "-x",
    ] {
        let err = p.register_activation(bad).await.unwrap_err();
        match err {
            zbus::Error::MethodError(name, _, _) => {
                assert_eq!(
                    name.as_str(),
                    "org.fail2ban_healthd.Health1.Error.InvalidJailName",
                    "{bad:?}"
                )
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn managing_needs_root_and_valid_names() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    let _daemon = Daemon::start(&bus, &server.socket, &[], &[]).await;
    let (_c, p) = proxy(&bus).await;
    common::require_program("setpriv", "util-linux");
    dbus_send_as_nobody_is_not_authorized(&bus);
    busctl_as_nobody_reads_but_may_not_manage(&bus);
    assert!(
        p.last_activation().await.unwrap().is_empty(),
        "nothing was recorded"
    );

    invalid_jail_names_are_refused(&p).await;
    assert!(
        p.last_activation().await.unwrap().is_empty(),
        "nothing was recorded"
    );
    p.register_activation("nginx-http-auth").await.unwrap();
    assert_eq!(
        get::<String>(&p.last_activation().await.unwrap(), "JailName"),
        "nginx-http-auth"
    );
}

#[tokio::test]
async fn the_manage_group_may_manage() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    // Group "nogroup" (65534) is on every Debian system.
    let _daemon = Daemon::start(&bus, &server.socket, &["--manage-group", "nogroup"], &[]).await;
    let setpriv = common::require_program("setpriv", "util-linux");
    let busctl = common::require_program("busctl", "systemd");
    let out = std::process::Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(busctl)
        .arg(format!("--address={}", bus.address))
        .args([
            "call",
            "org.fail2ban_healthd.Health1",
            "/org/fail2ban_healthd/Health1",
            "org.fail2ban_healthd.Health1",
            "RegisterActivation",
            "s",
            "beta",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("t "),
        "{out:?}"
    );
}

#[tokio::test]
async fn property_reads_stay_fast_while_a_probe_hangs() {
    let fake = common::fake::FakeServer::start(|_| common::fake::Action::Hang);
    let bus = PrivateBus::start();
    let _daemon = Daemon::start(&bus, &fake.socket, &["--probe-timeout", "30s"], &[]).await;
    let (_c, p) = proxy(&bus).await;
    // The first probe hangs in the daemon; a Probe call waits with it.
    let (_c2, p2) = proxy(&bus).await;
    let waiting = tokio::spawn(async move { p2.probe().await });
    // The daemon's probe has sent its first request, which never gets an
    // answer.
    let start = Instant::now();
    while fake.requests().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "no probe came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let props = zbus::fdo::PropertiesProxy::builder(&_c)
        .destination(fail2ban_healthd::bus::NAME)
        .path(fail2ban_healthd::bus::PATH)
        .build()
        .await
        .unwrap();
    for _ in 0..20 {
        let start = Instant::now();
        assert!(!p.online().await.unwrap());
        assert_eq!(p.offline_reason().await.unwrap(), 1, "not probed yet");
        let iface = zbus::names::InterfaceName::try_from(fail2ban_healthd::bus::INTERFACE).unwrap();
        let all = props.get_all(iface).await.unwrap();
        assert_eq!(all.len(), 12);
        // Far below the 30 s the probe may hang: the reads do not wait for
        // it (they take milliseconds; the bound leaves room for a loaded
        // machine).
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "reads took {:?}",
            start.elapsed()
        );
    }
    assert!(!waiting.is_finished(), "the probe is still hanging");
    waiting.abort();
}
