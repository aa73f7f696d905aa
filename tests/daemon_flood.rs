//! Callers cannot make the daemon hammer fail2ban or the disk: `Probe()`
//! from many clients at once is answered by a probe that ended less than a
//! second before, and the metrics file is rewritten at most once a second
//! (at once when the recovery record changes). The daemon binary, a real
//! fail2ban-server, a private dbus-daemon.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Fail2ban;
use common::bus::{Daemon, PrivateBus, proxy};

/// Probes the daemon finished so far, from its debug log.
fn probes(daemon: &Daemon) -> usize {
    daemon.log_text().matches("health_check_complete").count()
}

/// Counts the renames onto `file` in its directory (each atomic write of
/// the metrics file is one) while `work` runs.
async fn count_writes<F: std::future::Future<Output = ()>>(file: &Path, work: F) -> usize {
    use inotify::{EventMask, Inotify, WatchMask};
    let mut inotify = Inotify::init().unwrap();
    inotify
        .watches()
        // CREATE too: each write creates its temporary file, so no two
        // renames are queued back to back (inotify merges identical
        // consecutive events).
        .add(
            file.parent().unwrap(),
            WatchMask::MOVED_TO | WatchMask::CREATE,
        )
        .unwrap();
    work.await;
    let name = file.file_name().unwrap();
    let mut buffer = vec![0u8; 1 << 16];
    let mut writes = 0;
    loop {
        match inotify.read_events(&mut buffer) {
            Ok(events) => {
                let batch: Vec<_> = events.collect();
                if batch.is_empty() {
                    break;
                }
                writes += batch
                    .iter()
                    .filter(|e| e.name == Some(name) && e.mask.contains(EventMask::MOVED_TO))
                    .count();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("inotify: {e}"),
        }
    }
    writes
}

/// Sixteen clients call `Probe()` back to back for `for_how_long`; returns
/// the calls answered.
async fn flood(bus: &PrivateBus, for_how_long: Duration) -> usize {
    let end = Instant::now() + for_how_long;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (conn, p) = proxy(bus).await;
        tasks.push(tokio::spawn(async move {
            let _keep = conn;
            let mut calls = 0;
            while Instant::now() < end {
                assert!(p.probe().await.unwrap(), "fail2ban is up");
                calls += 1;
            }
            calls
        }));
    }
    let mut calls = 0;
    for t in tasks {
        calls += t.await.unwrap();
    }
    calls
}

/// A real fail2ban with one jail, and the daemon writing its metrics to
/// `healthd.prom` in the returned directory.
async fn with_metrics() -> (Fail2ban, PrivateBus, tempfile::TempDir, Daemon) {
    let server = Fail2ban::start_with(&["alpha"]);
    let bus = PrivateBus::start();
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("healthd.prom");
    let daemon = Daemon::start(
        &bus,
        &server.socket,
        &["--metrics-file", metrics.to_str().unwrap()],
        &[],
    )
    .await;
    (server, bus, dir, daemon)
}

#[tokio::test]
async fn sixteen_clients_calling_probe_cost_fail2ban_one_probe_a_second() {
    let (_server, bus, dir, daemon) = with_metrics().await;
    let metrics = dir.path().join("healthd.prom");
    common::wait_until(Duration::from_secs(10), "the first probe", || {
        probes(&daemon) >= 1
    });

    // Baseline: the same daemon left alone for as long.
    let window = Duration::from_secs(10);
    let before = probes(&daemon);
    let idle_writes = count_writes(&metrics, tokio::time::sleep(window)).await;
    let idle = probes(&daemon) - before;

    let before = probes(&daemon);
    let started = Instant::now();
    let mut calls = 0;
    let flood_writes = count_writes(&metrics, async {
        calls = flood(&bus, window).await;
    })
    .await;
    let took = started.elapsed().as_secs_f64();
    let flooded = probes(&daemon) - before;
    println!(
        "16 clients calling Probe() for {took:.1} s: {calls} calls answered, \
         {flooded} probes of fail2ban, {flood_writes} metrics writes; \
         left alone for {:.0} s: {idle} probes, {idle_writes} metrics writes",
        window.as_secs_f64()
    );
    assert!(calls >= 16, "every client was answered");
    // At most one probe a second beyond the interval's (30 s), with room
    // for a second that straddles the window's ends.
    let allowed = took.ceil() as usize + idle + 2;
    assert!(
        flooded <= allowed,
        "{flooded} probes in {took:.1} s (allowed {allowed})"
    );
    assert!(
        flood_writes <= allowed,
        "{flood_writes} metrics writes in {took:.1} s"
    );
}

#[tokio::test]
async fn a_flood_of_activations_rewrites_the_metrics_at_most_once_a_second() {
    let (_server, bus, dir, daemon) = with_metrics().await;
    let metrics = dir.path().join("healthd.prom");
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    common::wait_until(Duration::from_secs(10), "the metrics file", || {
        metrics.exists()
    });
    // Root registers activations back to back: each starts a probe and
    // changes the snapshot, none changes the record ("alpha" runs). For 4 s
    // at least, and until 20 probes were made (a loaded machine probes
    // more slowly).
    let window = Duration::from_secs(4);
    let mut registered = 0;
    let before = probes(&daemon);
    let started = Instant::now();
    let writes = count_writes(&metrics, async {
        while started.elapsed() < window || probes(&daemon) - before < 20 {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{} probes for {registered} activations",
                probes(&daemon) - before
            );
            p.register_activation("alpha").await.unwrap();
            registered += 1;
        }
    })
    .await;
    let took = started.elapsed().as_secs_f64();
    let probed = probes(&daemon) - before;
    println!("{registered} activations in {took:.1} s: {probed} probes, {writes} metrics writes");
    assert!(probed >= 20, "the activations probed ({probed})");
    let allowed = took.ceil() as usize + 2;
    assert!(writes <= allowed, "{writes} writes in {took:.1} s");
    // The last value wins: the file ends up showing the latest probe (or
    // one that ended after this read).
    let latest = p.last_probe_timestamp().await.unwrap() as f64 / 1e6;
    common::wait_until(
        Duration::from_secs(20),
        "the latest probe in the file",
        || {
            std::fs::read_to_string(&metrics)
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("fail2ban_healthd_last_probe_timestamp_seconds "))
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|v| v >= latest - 0.001)
        },
    );
}
