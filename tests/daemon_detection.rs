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
        assert!(p.probe().await.unwrap(), "round {round}: online");
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
