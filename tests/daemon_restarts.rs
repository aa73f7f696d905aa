//! A restart is not a crash, checked with the daemon binary on a private
//! bus against REAL fail2ban servers (the installed 1.0.2, and 1.1.1 and
//! upstream head from their source trees), without systemd:
//! - 20 cycles of "activate a good jail, then restart fail2ban" (a
//!   graceful SIGTERM or `fail2ban-client stop`, then a new server) make no
//!   record, and a real crash afterwards is still attributed;
//! - a restart into a broken jail is recorded once the restart grace ends
//!   with fail2ban down, or at once when the new server goes down again;
//! - a restart that comes back without the jail is cause 2.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::bus::{Daemon, PrivateBus, get, proxy};
use common::{Fail2ban, Release};
use fail2ban_healthd::bus::proxy::Health1Proxy;
use futures_util::StreamExt;
use nix::sys::signal::Signal;

const CYCLES: usize = 20;

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Waits, up to `limit`, until `cond` holds, checking every 50 ms.
async fn until(limit: Duration, what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the daemon has judged fail2ban's return: online with
/// `jails` jails in a probe that finished at least 1.5 s after `back`
/// (microseconds since the epoch). A new server's jail list is judged once
/// it holds still for 0.5 s, probed every 250 ms, so this comes after the
/// verdict.
async fn judged_after(p: &Health1Proxy<'_>, back: u64, jails: u32) {
    until(
        Duration::from_secs(30),
        "a probe 1.5 s after the return",
        async || {
            p.online().await.unwrap()
                && p.active_jails().await.unwrap() == jails
                && p.last_probe_timestamp().await.unwrap() >= back + 1_500_000
        },
    )
    .await;
}

async fn start_daemon(bus: &PrivateBus, server: &Fail2ban, grace: &str) -> Daemon {
    Daemon::start(
        bus,
        &server.socket,
        &[
            "--probe-interval",
            "1h",
            "--crash-window",
            "10m",
            "--jail-start-grace",
            "1s",
            "--restart-grace",
            grace,
            "--fail2ban-unit",
            "",
        ],
        &[],
    )
    .await
}

/// Stops `server` gracefully: by SIGTERM on even cycles, by
/// `fail2ban-client stop` on odd ones.
fn stop(server: &mut Fail2ban, cycle: usize) {
    if cycle % 2 == 1 {
        server.client(&["stop"]);
    }
    server.signal_and_wait(Signal::SIGTERM);
}

async fn restart_cycles(release: Release) {
    let mut server = Fail2ban::start_release(release);
    let bus = PrivateBus::start();
    let daemon = start_daemon(&bus, &server, "15s").await;
    let (_c, p) = proxy(&bus).await;
    let mut crashes = p.receive_activation_crash_detected().await.unwrap();
    let mut came_online = p.receive_came_online().await.unwrap();
    assert!(p.probe().await.unwrap());
    let started = Instant::now();
    for cycle in 0..CYCLES {
        p.register_activation("beta").await.unwrap();
        stop(&mut server, cycle);
        server.spawn();
        tokio::time::timeout(Duration::from_secs(30), came_online.next())
            .await
            .unwrap_or_else(|_| panic!("cycle {cycle}: no CameOnline: {}", daemon.log_text()))
            .unwrap();
        judged_after(&p, micros_now(), 2).await;
    }
    // Nothing recorded so far; the crash below must be the first record.
    assert!(
        p.pending_recovery().await.unwrap().is_empty(),
        "a restart was recorded: {:?}\n{}",
        p.pending_recovery().await.unwrap(),
        daemon.log_text()
    );
    let killed_at = micros_now();
    server.signal_and_wait(Signal::SIGKILL);
    let crash = tokio::time::timeout(Duration::from_secs(10), crashes.next())
        .await
        .expect("the crash after the restarts is recorded")
        .unwrap();
    let args = crash.args().unwrap();
    assert_eq!(*args.jail_name(), "beta");
    assert_eq!(*args.cause(), 1);
    assert!(
        *args.detected_at() >= killed_at,
        "the first record is the crash's, not a restart's"
    );
    println!(
        "{}: {CYCLES} activate-then-restart cycles in {:.1} s, 0 false records; \
         the crash after them recorded {} ms after the kill",
        release.label(),
        started.elapsed().as_secs_f64(),
        (*args.detected_at() - killed_at) / 1000
    );
}

#[tokio::test]
async fn restarts_of_the_installed_fail2ban_are_not_crashes() {
    restart_cycles(Release::Installed).await;
}

#[tokio::test]
async fn restarts_of_fail2ban_1_1_1_are_not_crashes() {
    restart_cycles(Release::V1_1_1).await;
}

#[tokio::test]
async fn restarts_of_upstream_head_are_not_crashes() {
    restart_cycles(Release::Head).await;
}

/// The installed fail2ban with alpha and beta, watched by the daemon with
/// this restart grace, online.
struct Watched {
    server: Fail2ban,
    _bus: PrivateBus,
    daemon: Daemon,
    p: Health1Proxy<'static>,
    _conn: zbus::Connection,
    crashes: fail2ban_healthd::bus::proxy::ActivationCrashDetectedStream,
}

impl Watched {
    async fn start(grace: &str) -> Self {
        let server = Fail2ban::start();
        let bus = PrivateBus::start();
        let daemon = start_daemon(&bus, &server, grace).await;
        let (conn, p) = proxy(&bus).await;
        let crashes = p.receive_activation_crash_detected().await.unwrap();
        assert!(p.probe().await.unwrap());
        Self {
            server,
            _bus: bus,
            daemon,
            p,
            _conn: conn,
            crashes,
        }
    }

    /// Enables `gamma` with this filter and log file (relative to the
    /// server's directory) and registers its activation.
    async fn activate_gamma(&self, filter: &str, log: &str) {
        self.server.write_jail_d(
            "gamma",
            &format!(
                "[gamma]\nenabled = true\nfilter = {filter}\naction = t\nlogpath = {}/{log}\n",
                self.server.dir().display()
            ),
        );
        self.p.register_activation("gamma").await.unwrap();
    }

    async fn next_crash(&mut self) -> fail2ban_healthd::bus::proxy::ActivationCrashDetected {
        tokio::time::timeout(Duration::from_secs(15), self.crashes.next())
            .await
            .unwrap_or_else(|_| panic!("no record: {}", self.daemon.log_text()))
            .unwrap()
    }
}

#[tokio::test]
async fn a_restart_into_a_broken_jail_is_recorded_when_the_grace_ends() {
    let mut w = Watched::start("2s").await;
    // The log file does not exist: the new server exits 255 at start.
    w.activate_gamma("t", "log/missing.log").await;
    let stopped = micros_now();
    w.server.signal_and_wait(Signal::SIGTERM);
    assert_eq!(w.server.spawn_expecting_exit(), Some(255));
    let crash = w.next_crash().await;
    let args = crash.args().unwrap();
    assert_eq!(*args.jail_name(), "gamma");
    assert_eq!(*args.cause(), 1);
    let waited = *args.detected_at() - stopped;
    // Not before the grace (2 s) has run out.
    assert!(waited >= 1_900_000, "recorded {waited} µs after the stop");
    let r = w.p.pending_recovery().await.unwrap();
    assert_eq!(get::<u32>(&r, "OfflineReason"), 2, "socket missing");
}

#[tokio::test]
async fn a_restart_whose_server_goes_down_again_is_recorded_at_once() {
    // A long grace: only the second loss can make the record in time.
    let mut w = Watched::start("10m").await;
    let mut came_online = w.p.receive_came_online().await.unwrap();
    w.p.register_activation("beta").await.unwrap();
    w.server.signal_and_wait(Signal::SIGTERM);
    w.server.spawn();
    tokio::time::timeout(Duration::from_secs(30), came_online.next())
        .await
        .unwrap()
        .unwrap();
    // Killed before (or right after) its jail list was judged.
    w.server.signal_and_wait(Signal::SIGKILL);
    assert_eq!(*w.next_crash().await.args().unwrap().cause(), 1);
}

#[tokio::test]
async fn a_restart_that_comes_back_without_the_jail_is_cause_2() {
    let mut w = Watched::start("15s").await;
    // A missing filter: fail2ban skips the jail and starts without it.
    w.activate_gamma("no-such-filter", "log/alpha.log").await;
    w.server.signal_and_wait(Signal::SIGTERM);
    w.server.spawn();
    let crash = w.next_crash().await;
    let args = crash.args().unwrap();
    assert_eq!(*args.jail_name(), "gamma");
    assert_eq!(*args.cause(), 2);
}
