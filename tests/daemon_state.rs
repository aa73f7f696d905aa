//! The state file: records and activations survive a SIGKILL of the
//! daemon, a corrupt file never stops it, and a kill at any moment leaves a
//! file that parses.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::Fail2ban;
use common::bus::{Daemon, PrivateBus, proxy};
use futures_util::StreamExt;
use nix::sys::signal::{Signal, kill};
use zbus::OwnedVariant;

fn entries(map: &HashMap<String, OwnedVariant>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = map
        .iter()
        .map(|(k, v)| (k.clone(), format!("{v:?}")))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_record_survives_sigkill_of_the_daemon() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let state_arg = state.to_str().unwrap();
    let args = [
        "--state-file",
        state_arg,
        "--jail-start-grace",
        "1s",
        "--crash-window",
        "30s",
    ];
    let mut daemon = Daemon::start(&bus, &server.socket, &args, &[]).await;
    let (_c, p) = proxy(&bus).await;
    let mut crash = p.receive_activation_crash_detected().await.unwrap();
    p.register_activation("ghost").await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), crash.next())
        .await
        .unwrap()
        .unwrap();
    let record = p.pending_recovery().await.unwrap();
    let activation = p.last_activation().await.unwrap();
    // The write follows the change at once; give the disk a moment.
    common::wait_until(Duration::from_secs(5), "the record on disk", || {
        fail2ban_healthd::state::load(&state)
            .ok()
            .flatten()
            .is_some_and(|m| m.record.is_some())
    });
    kill(daemon.pid(), Signal::SIGKILL).unwrap();
    daemon.wait_exit(Duration::from_secs(5));

    // Visible from the very first read, even while the first probe hangs.
    {
        let hanging = common::fake::FakeServer::start(|_| common::fake::Action::Hang);
        let early = Daemon::start(&bus, &hanging.socket, &args, &[]).await;
        let (_c3, p3) = proxy(&bus).await;
        assert_eq!(
            p3.offline_reason().await.unwrap(),
            1,
            "the first probe is still hanging"
        );
        assert_eq!(
            entries(&p3.pending_recovery().await.unwrap()),
            entries(&record)
        );
        assert_eq!(
            entries(&p3.last_activation().await.unwrap()),
            entries(&activation)
        );
        drop(early);
    }
    let again = Daemon::start(&bus, &server.socket, &args, &[]).await;
    let (_c2, p2) = proxy(&bus).await;
    assert_eq!(
        entries(&p2.pending_recovery().await.unwrap()),
        entries(&record)
    );
    assert_eq!(
        entries(&p2.last_activation().await.unwrap()),
        entries(&activation)
    );
    assert!(
        again.log_text().contains("state_restored"),
        "{}",
        again.log_text()
    );
    // The restored activation is spent: no second record for it.
    let mut crash2 = p2.receive_activation_crash_detected().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(2500), crash2.next())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_garbage_state_file_is_moved_aside_and_the_daemon_starts_clean() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, b"\x00\xff{ not json").unwrap();
    let daemon = Daemon::start(
        &bus,
        &server.socket,
        &["--state-file", state.to_str().unwrap()],
        &[],
    )
    .await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    assert!(p.pending_recovery().await.unwrap().is_empty());
    let log = daemon.log_text();
    assert!(
        log.contains("state_file_unusable") && log.contains("state_file_moved_aside"),
        "{log}"
    );
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("state.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), b"\x00\xff{ not json");
    // New changes are saved to a fresh file.
    p.register_activation("alpha").await.unwrap();
    common::wait_until(Duration::from_secs(5), "a fresh state file", || {
        fail2ban_healthd::state::load(&state)
            .ok()
            .flatten()
            .is_some()
    });
}

#[tokio::test]
async fn a_kill_at_any_moment_leaves_a_state_file_that_parses() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let state_arg = state.to_str().unwrap().to_owned();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut next_random = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut changes = 0;
    let mut kills = 0;
    let started = Instant::now();
    while changes < 200 {
        let mut daemon =
            Daemon::start(&bus, &server.socket, &["--state-file", &state_arg], &[]).await;
        let (_c, p) = proxy(&bus).await;
        let kill_after = Duration::from_millis(20 + next_random() % 200);
        let t0 = Instant::now();
        while t0.elapsed() < kill_after {
            if p.register_activation(&format!("jail-{changes}"))
                .await
                .is_ok()
            {
                changes += 1;
            }
        }
        kill(daemon.pid(), Signal::SIGKILL).unwrap();
        daemon.wait_exit(Duration::from_secs(5));
        kills += 1;
        if state.exists() {
            let memory = fail2ban_healthd::state::load(&state)
                .unwrap_or_else(|e| panic!("after kill {kills}: {e}"))
                .unwrap();
            assert!(memory.last_activation.is_some());
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{changes} changes in {kills} kills"
        );
    }
    assert!(kills >= 2);
    println!("{changes} changes, {kills} kills at random moments, the file parsed every time");
}
