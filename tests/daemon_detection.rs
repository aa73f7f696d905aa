//! Detection of the daemon against a real fail2ban-server: the idle
//! connection makes a crash visible at once, and the close watch after an
//! activation finds a jail that never starts soon after the grace, both
//! long before the next interval (1 h). The bounds are generous: what they
//! prove is "not at the interval"; the figures are `cargo bench`'s.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::Fail2ban;
use common::bus::{Daemon, PrivateBus, proxy};
use futures_util::StreamExt;
use nix::sys::signal::Signal;

#[tokio::test]
async fn a_killed_fail2ban_is_seen_at_once_not_at_the_next_interval() {
    let mut server = Fail2ban::start();
    let bus = PrivateBus::start();
    // A long interval: only the idle connection can notice in time.
    let _daemon = Daemon::start(&bus, &server.socket, &["--probe-interval", "1h"], &[]).await;
    let (_c, p) = proxy(&bus).await;
    let mut offline = p.receive_went_offline().await.unwrap();
    let mut latencies = Vec::new();
    for round in 0..20 {
        if round > 0 {
            server.spawn();
        }
        common::bus::probe_until(&p, true, &format!("round {round}")).await;
        let start = Instant::now();
        server.signal_and_wait(Signal::SIGKILL);
        let killed = start.elapsed();
        // Milliseconds, where the interval would take an hour.
        tokio::time::timeout(Duration::from_secs(10), offline.next())
            .await
            .unwrap_or_else(|_| panic!("round {round}: no WentOffline"))
            .unwrap();
        latencies.push(start.elapsed().saturating_sub(killed));
    }
    latencies.sort();
    println!(
        "kill to WentOffline over {} kills: min {:?}, median {:?}, max {:?}",
        latencies.len(),
        latencies[0],
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
}

#[tokio::test]
async fn close_watch_finds_a_jail_that_never_starts_soon_after_the_grace() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    let _daemon = Daemon::start(
        &bus,
        &server.socket,
        &[
            "--probe-interval",
            "1h",
            "--jail-start-grace",
            "2s",
            "--crash-window",
            "30s",
        ],
        &[],
    )
    .await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    let mut crash = p.receive_activation_crash_detected().await.unwrap();
    let start = Instant::now();
    p.register_activation("never-starts").await.unwrap();
    // Not before the 2 s grace; a probe right after it finds the jail
    // missing (2 s and some milliseconds), long before the 1 h interval.
    let c = tokio::time::timeout(Duration::from_secs(20), crash.next())
        .await
        .unwrap()
        .unwrap();
    let took = start.elapsed();
    assert_eq!(c.args().unwrap().cause, 2);
    assert!(took >= Duration::from_secs(2), "before the grace: {took:?}");
    println!("cause 2 after {took:?} for a 2 s grace");
    let r = p.pending_recovery().await.unwrap();
    let suspects: Vec<String> = r
        .get("SuspectJails")
        .unwrap()
        .try_clone()
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(suspects, ["never-starts"]);
}

/// CPU time of each of a process's threads, in nanoseconds.
fn cpu_ns(pid: nix::unistd::Pid) -> std::collections::HashMap<String, u64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| {
            let task = task.ok()?;
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            let ns = stat.split_whitespace().next()?.parse().ok()?;
            Some((task.file_name().to_string_lossy().into_owned(), ns))
        })
        .collect()
}

/// CPU time spent between two readings by the threads alive at the second
/// (a blocking-pool thread may exit in between, idle).
fn cpu_spent(
    before: &std::collections::HashMap<String, u64>,
    after: &std::collections::HashMap<String, u64>,
) -> Duration {
    Duration::from_nanos(
        after
            .iter()
            .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
            .sum(),
    )
}

#[tokio::test]
async fn a_restarted_fail2ban_is_seen_at_once_and_a_down_one_costs_no_cpu() {
    let mut server = Fail2ban::start();
    let bus = PrivateBus::start();
    let daemon = Daemon::start(&bus, &server.socket, &["--probe-interval", "1h"], &[]).await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    let mut online = p.receive_came_online().await.unwrap();
    let mut offline = p.receive_went_offline().await.unwrap();

    // Graceful stop: the socket file goes away.
    server.signal_and_wait(Signal::SIGTERM);
    tokio::time::timeout(Duration::from_secs(5), offline.next())
        .await
        .unwrap()
        .unwrap();
    // Down for a while: no probing, no busy loop. The 10 s are a window
    // of measure, not a wait for something; a busy loop would spend
    // seconds of CPU in it, an idle daemon about nothing (the bound leaves
    // room for the bookkeeping that follows WentOffline).
    let before = cpu_ns(daemon.pid());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let spent = cpu_spent(&before, &cpu_ns(daemon.pid()));
    println!("CPU while fail2ban was down for 10 s: {spent:?}");
    assert!(spent < Duration::from_millis(100), "{spent:?}");

    // The socket's appearance is watched: CameOnline comes at once (often
    // before `spawn` has seen every jail follow its log), long before the
    // 1 h interval.
    server.spawn();
    let ready = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), online.next())
        .await
        .unwrap_or_else(|_| panic!("no CameOnline: {}", daemon.log_text()))
        .unwrap();
    println!(
        "CameOnline {:?} after the new server answered",
        ready.elapsed()
    );

    // Its whole directory removed and created again, as systemd's
    // RuntimeDirectory does.
    server.signal_and_wait(Signal::SIGTERM);
    tokio::time::timeout(Duration::from_secs(5), offline.next())
        .await
        .unwrap()
        .unwrap();
    let run = server.dir().join("run");
    let armed_before = watch_armed_on(&daemon, server.dir());
    std::fs::remove_dir_all(&run).unwrap();
    // The daemon has seen the directory go: it watches its parent now.
    common::wait_until(Duration::from_secs(10), "the watch on the parent", || {
        watch_armed_on(&daemon, server.dir()) > armed_before
    });
    std::fs::create_dir(&run).unwrap();
    server.spawn();
    let ready = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), online.next())
        .await
        .unwrap_or_else(|_| panic!("no CameOnline: {}", daemon.log_text()))
        .unwrap();
    println!(
        "CameOnline {:?} after a server in a re-created directory answered",
        ready.elapsed()
    );
}

/// How many times the daemon's log says it armed its socket watch on `dir`.
fn watch_armed_on(daemon: &Daemon, dir: &std::path::Path) -> usize {
    let field = format!("dir={}", dir.display());
    daemon
        .log_text()
        .lines()
        .filter(|l| l.contains("socket_watch_armed") && l.split_whitespace().any(|w| w == field))
        .count()
}

#[tokio::test]
async fn without_instant_sources_only_the_interval_notices() {
    let mut server = Fail2ban::start();
    let bus = PrivateBus::start();
    let _daemon = Daemon::start(
        &bus,
        &server.socket,
        &["--probe-interval", "3s", "--instant-detection", "false"],
        &[],
    )
    .await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    let mut offline = p.receive_went_offline().await.unwrap();
    // The probe before the kill (microseconds since the epoch): the next
    // one is due an interval after it began.
    let last = p.last_probe_timestamp().await.unwrap();
    server.signal_and_wait(Signal::SIGKILL);
    tokio::time::timeout(Duration::from_secs(30), offline.next())
        .await
        .expect("WentOffline at the interval")
        .unwrap();
    // An instant source would have noticed within milliseconds of the
    // kill; the interval's probe comes no earlier than 3 s after the last
    // one (less the few milliseconds that probe took). Load only delays it.
    let seen = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let after = seen.saturating_sub(Duration::from_micros(last));
    assert!(
        after >= Duration::from_millis(2500),
        "noticed {after:?} after the last probe: not by the interval"
    );
    assert!(!p.online().await.unwrap());
}
