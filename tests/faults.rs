//! Faults and load: a real fail2ban killed and restarted a hundred times,
//! frozen for 30 s; ten thousand activations from eight clients; two
//! hundred subscribers; malformed calls. Each bounded in time.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::bus::{Daemon, PrivateBus, proxy};
use common::{Fail2ban, fds, rss_kib};
use fail2ban_healthd::bus::proxy::Health1Proxy;
use futures_util::StreamExt;
use nix::sys::signal::{Signal, kill};
use tokio::sync::mpsc;

/// Every signal of the daemon's interface, by name, as it arrives.
async fn signals(p: &Health1Proxy<'static>) -> mpsc::UnboundedReceiver<(String, zbus::Message)> {
    let mut stream = p.inner().receive_all_signals().await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            let name = msg
                .header()
                .member()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default();
            if tx.send((name, msg)).is_err() {
                break;
            }
        }
    });
    rx
}

async fn next_signal(rx: &mut mpsc::UnboundedReceiver<(String, zbus::Message)>) -> String {
    next_message(rx).await.0
}

/// The first signal after the first kill: `WentOffline`, after the
/// CameOnline of the daemon's first probe when that reaches the subscriber
/// (`Probe()` answers once the properties show the probe; its signal is
/// published after, and may come after the subscription).
async fn first_after_the_first_kill(
    rx: &mut mpsc::UnboundedReceiver<(String, zbus::Message)>,
) -> (String, zbus::Message) {
    let mut first = next_message(rx).await;
    if first.0 == "CameOnline" {
        first = next_message(rx).await;
    }
    first
}

async fn next_message(
    rx: &mut mpsc::UnboundedReceiver<(String, zbus::Message)>,
) -> (String, zbus::Message) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a signal within 10 s")
        .unwrap()
}

#[tokio::test]
async fn a_hundred_kills_and_restarts_publish_each_transition_once_in_order() {
    let mut server = Fail2ban::start_with(&["alpha"]);
    let bus = PrivateBus::start();
    let daemon = Daemon::start(&bus, &server.socket, &[], &[]).await;
    let (_c, p) = proxy(&bus).await;
    let mut rx = signals(&p).await;
    assert!(p.probe().await.unwrap());
    let mut baseline = None;
    let start = Instant::now();
    for cycle in 0..100 {
        server.signal_and_wait(Signal::SIGKILL);
        let went = if cycle == 0 {
            first_after_the_first_kill(&mut rx).await.0
        } else {
            next_signal(&mut rx).await
        };
        assert_eq!(went, "WentOffline", "cycle {cycle}");
        server.spawn();
        assert_eq!(next_signal(&mut rx).await, "CameOnline", "cycle {cycle}");
        if cycle == 9 {
            // After a warm-up: allocator pools and buffers have settled.
            baseline = Some((rss_kib(daemon.pid()), fds(daemon.pid())));
        }
    }
    let (rss0, fds0) = baseline.unwrap();
    let (rss1, fds1) = (rss_kib(daemon.pid()), fds(daemon.pid()));
    // Each transition was published once: the signal after the last
    // CameOnline is the WentOffline of one more kill.
    server.signal_and_wait(Signal::SIGKILL);
    assert_eq!(next_signal(&mut rx).await, "WentOffline", "an extra signal");
    println!(
        "100 kill/restart cycles in {:.1} s; daemon RSS {rss0} -> {rss1} KiB, fds {fds0} -> {fds1}",
        start.elapsed().as_secs_f64()
    );
    assert!(rss1 <= rss0 + 512, "RSS grew from {rss0} to {rss1} KiB");
    assert!(fds1 <= fds0, "fds grew from {fds0} to {fds1}");
}

#[tokio::test]
async fn a_frozen_fail2ban_times_out_while_the_bus_stays_responsive() {
    let mut server = Fail2ban::start_with(&["alpha"]);
    let bus = PrivateBus::start();
    // A probe of the frozen server lasts 3 s, twice (a timeout is asked
    // again at once): a read that waited for it would take seconds.
    let _daemon = Daemon::start(
        &bus,
        &server.socket,
        &["--probe-interval", "1s", "--probe-timeout", "3s"],
        &[],
    )
    .await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    let mut rx = signals(&p).await;
    let props = zbus::fdo::PropertiesProxy::builder(p.inner().connection())
        .destination(fail2ban_healthd::bus::NAME)
        .path(fail2ban_healthd::bus::PATH)
        .build()
        .await
        .unwrap();
    let iface = zbus::names::InterfaceName::try_from(fail2ban_healthd::bus::INTERFACE).unwrap();

    kill(server.pid(), Signal::SIGSTOP).unwrap();
    let frozen = Instant::now();
    let mut went_offline = None;
    let mut startup_skipped = false;
    let mut worst = Duration::ZERO;
    let mut reads = 0;
    while frozen.elapsed() < Duration::from_secs(30) {
        let t = Instant::now();
        let all: HashMap<String, zbus::OwnedVariant> = props.get_all(iface.clone()).await.unwrap();
        worst = worst.max(t.elapsed());
        reads += 1;
        assert!(all.contains_key("Online"));
        if went_offline.is_none()
            && let Ok((name, msg)) = rx.try_recv()
        {
            if name == "CameOnline" && !startup_skipped {
                // The daemon's first probe's (see
                // first_after_the_first_kill).
                startup_skipped = true;
            } else {
                assert_eq!(name, "WentOffline");
                let (reason,): (u32,) = msg.body().deserialize().unwrap();
                assert_eq!(reason, 5, "a frozen server is a timeout");
                went_offline = Some(frozen.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // About 1 s + 2 x 3 s after the freeze; within the 30 s it lasts.
    let went_offline = went_offline.expect("WentOffline while frozen");
    assert!(!p.online().await.unwrap());
    assert_eq!(p.offline_reason().await.unwrap(), 5);
    kill(server.pid(), Signal::SIGCONT).unwrap();
    let thawed = Instant::now();
    assert_eq!(next_signal(&mut rx).await, "CameOnline");
    println!(
        "frozen 30 s: WentOffline(5) after {went_offline:?}; {reads} GetAll, worst {worst:?}; \
         CameOnline {:?} after SIGCONT",
        thawed.elapsed()
    );
    // Reads take milliseconds; one that waited for a probe of the frozen
    // server would take 3 s or more. The bound proves the point with room
    // for a loaded machine.
    assert!(worst < Duration::from_secs(1), "a read took {worst:?}");
    assert!(p.online().await.unwrap());
    assert_eq!(p.active_jails().await.unwrap(), 1);
    // Each transition once: the signal after CameOnline is the WentOffline
    // of a kill.
    server.signal_and_wait(Signal::SIGKILL);
    assert_eq!(next_signal(&mut rx).await, "WentOffline", "an extra signal");
}

#[tokio::test]
async fn ten_thousand_activations_from_eight_clients() {
    let server = Fail2ban::start_with(&["alpha"]);
    let bus = PrivateBus::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let daemon = Daemon::start(
        &bus,
        &server.socket,
        &["--state-file", state.to_str().unwrap()],
        &[],
    )
    .await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    let before = rss_kib(daemon.pid());
    let start = Instant::now();
    let mut clients = Vec::new();
    for c in 0..8 {
        let (conn, p) = proxy(&bus).await;
        clients.push(tokio::spawn(async move {
            let _conn = conn;
            let mut last = 0;
            for i in 0..1250 {
                last = p
                    .register_activation(&format!("jail-{c}-{i}"))
                    .await
                    .unwrap();
            }
            last
        }));
    }
    let mut lasts = Vec::new();
    for c in clients {
        lasts.push(c.await.unwrap());
    }
    let took = start.elapsed();
    let after = rss_kib(daemon.pid());
    println!(
        "10 000 RegisterActivation from 8 clients in {:.2} s ({:.0}/s); daemon RSS {before} -> {after} KiB",
        took.as_secs_f64(),
        10_000.0 / took.as_secs_f64()
    );
    // The latest activation is the one shown.
    let shown = p.last_activation().await.unwrap();
    let at: u64 = shown["ActivatedAt"]
        .try_clone()
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(at, *lasts.iter().max().unwrap());
    let name: String = shown["JailName"].try_clone().unwrap().try_into().unwrap();
    assert!(name.ends_with("-1249"), "{name}");
    // Activations are kept only while they can matter, and a bounded
    // number of them: memory and the state file stay small.
    assert!(
        after < before + 4096,
        "RSS grew from {before} to {after} KiB"
    );
    common::wait_until(Duration::from_secs(20), "the state written", || {
        std::fs::read_to_string(&state).is_ok_and(|t| t.contains(&name))
    });
    let size = std::fs::metadata(&state).unwrap().len();
    assert!(size < 64 * 1024, "state file of {size} bytes");
    assert!(p.online().await.unwrap());
}

#[tokio::test]
async fn two_hundred_subscribers_all_receive_a_crash() {
    let mut server = Fail2ban::start_with(&["alpha"]);
    let bus = PrivateBus::start();
    let _daemon = Daemon::start(&bus, &server.socket, &[], &[]).await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    let mut subscribers = Vec::new();
    for _ in 0..200 {
        let (conn, p) = proxy(&bus).await;
        let stream = p.receive_activation_crash_detected().await.unwrap();
        subscribers.push((conn, p, stream));
    }
    p.register_activation("gamma").await.unwrap();
    server.signal_and_wait(Signal::SIGKILL);
    let start = Instant::now();
    let mut received = 0;
    for (_conn, _p, mut stream) in subscribers {
        let signal = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("every subscriber hears of the crash")
            .unwrap();
        assert_eq!(*signal.args().unwrap().jail_name(), "gamma");
        received += 1;
    }
    println!(
        "{received} subscribers received ActivationCrashDetected within {:?}",
        start.elapsed()
    );
    assert_eq!(received, 200);
}

/// Calls that break the contract: every invalid jail name class, wrong
/// argument types and counts, unknown members. Each is refused with a clear
/// error, and nothing changes.
#[tokio::test]
async fn malformed_calls_are_refused_and_change_nothing() {
    let server = Fail2ban::start_with(&["alpha"]);
    let bus = PrivateBus::start();
    let _daemon = Daemon::start(&bus, &server.socket, &[], &[]).await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    let long = "a".repeat(129);
    for name in [
        "",
        long.as_str(),
        ".hidden",
        "-flag",
        "with space",
        "a/b",
        "a\\b",
        "é",
        "line\nbreak",
        "[DEFAULT]",
        "a;b",
        "a$b",
        "tab\t",
    ] {
        let err = p.register_activation(name).await.unwrap_err();
        assert!(
            matches!(&err, zbus::Error::MethodError(n, _, _) if n.as_str().ends_with(".InvalidJailName")),
            "{name:?}: {err:?}"
        );
    }
    assert!(p.last_activation().await.unwrap().is_empty());

    let busctl = common::require_program("busctl", "systemd");
    let call = |args: &[&str]| {
        std::process::Command::new(&busctl)
            .arg(format!("--address={}", bus.address))
            .args([
                "call",
                fail2ban_healthd::bus::NAME,
                fail2ban_healthd::bus::PATH,
                fail2ban_healthd::bus::INTERFACE,
            ])
            .args(args)
            .output()
            .unwrap()
    };
    for (args, expected) in [
        (
            &["RegisterActivation", "u", "5"][..],
            "Signature mismatch: got `u`, expected `s`",
        ),
        (
            &["RegisterActivation", "ss", "a", "b"],
            "Signature mismatch",
        ),
        (&["RegisterActivation"], "Signature mismatch"),
        (&["DismissRecovery", "s", "x"], "Signature mismatch"),
        (&["Rollback", "b", "true"], "Signature mismatch"),
        (&["Probe", "t", "1"], "Signature mismatch"),
        (&["NoSuchMethod"], "Unknown method"),
    ] {
        let out = call(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let out = call(&["RegisterActivation", "s", "alpha"]);
    assert!(out.status.success(), "{out:?}");
    // Only the valid call recorded anything.
    let shown = p.last_activation().await.unwrap();
    let name: String = shown["JailName"].try_clone().unwrap().try_into().unwrap();
    assert_eq!(name, "alpha");
    assert!(p.pending_recovery().await.unwrap().is_empty());
    assert!(p.online().await.unwrap());
}
