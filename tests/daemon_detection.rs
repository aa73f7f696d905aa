//! Detection speed of the daemon against a real fail2ban-server: the idle
//! connection makes a crash visible at once, and the close watch after an
//! activation finds a jail that never starts within a second or two.
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
        tokio::time::timeout(Duration::from_secs(5), offline.next())
            .await
            .unwrap_or_else(|_| panic!("round {round}: no WentOffline"))
            .unwrap();
        let latency = start.elapsed().saturating_sub(killed);
        latencies.push(latency);
        assert!(
            latency < Duration::from_secs(1),
            "round {round}: {latency:?}"
        );
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
async fn close_watch_finds_a_jail_that_never_starts_within_grace_plus_2_s() {
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
    let c = tokio::time::timeout(Duration::from_secs(10), crash.next())
        .await
        .unwrap()
        .unwrap();
    let took = start.elapsed();
    assert_eq!(c.args().unwrap().cause, 2);
    assert!(
        took >= Duration::from_secs(2) && took <= Duration::from_secs(4),
        "{took:?}"
    );
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
async fn a_restarted_fail2ban_is_seen_within_a_second_and_a_down_one_costs_no_cpu() {
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
    // Down for a while: no probing, no busy loop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu_ns(daemon.pid());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let spent = cpu_spent(&before, &cpu_ns(daemon.pid()));
    println!("CPU while fail2ban was down for 10 s: {spent:?}");
    assert!(spent < Duration::from_millis(10), "{spent:?}");

    server.spawn();
    let ready = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), online.next())
        .await
        .unwrap_or_else(|_| panic!("no CameOnline: {}", daemon.log_text()))
        .unwrap();
    let late = ready.elapsed();
    println!("CameOnline {late:?} after the new server answered");
    assert!(late < Duration::from_secs(1), "{late:?}");

    // Its whole directory removed and created again, as systemd's
    // RuntimeDirectory does.
    server.signal_and_wait(Signal::SIGTERM);
    tokio::time::timeout(Duration::from_secs(5), offline.next())
        .await
        .unwrap()
        .unwrap();
    let run = server.dir().join("run");
    std::fs::remove_dir_all(&run).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::create_dir(&run).unwrap();
    server.spawn();
    let ready = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), online.next())
        .await
        .unwrap_or_else(|_| panic!("no CameOnline: {}", daemon.log_text()))
        .unwrap();
    let late = ready.elapsed();
    println!("CameOnline {late:?} after a server in a re-created directory answered");
    assert!(late < Duration::from_secs(1), "{late:?}");
}

#[tokio::test]
async fn without_instant_sources_only_the_interval_notices() {
    let mut server = Fail2ban::start();
    let bus = PrivateBus::start();
    let _daemon = Daemon::start(
        &bus,
        &server.socket,
        &["--probe-interval", "1h", "--instant-detection", "false"],
        &[],
    )
    .await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    let mut offline = p.receive_went_offline().await.unwrap();
    server.signal_and_wait(Signal::SIGKILL);
    assert!(
        tokio::time::timeout(Duration::from_secs(1), offline.next())
            .await
            .is_err(),
        "no instant source is running"
    );
    assert!(!p.probe().await.unwrap());
    tokio::time::timeout(Duration::from_secs(2), offline.next())
        .await
        .unwrap()
        .unwrap();
}
