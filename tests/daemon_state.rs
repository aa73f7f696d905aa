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
    common::wait_until(Duration::from_secs(20), "the record on disk", || {
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
    // The restored activation is spent: no second record for it. Its grace
    // is long over, so the new daemon's first probe would judge it; once
    // Probe() has answered, that probe's events are in the log (they are
    // logged before its snapshot is published).
    assert!(p2.probe().await.unwrap());
    let log = again.log_text();
    assert!(log.contains("health_check_complete"), "{log}");
    assert!(!log.contains("activation_crash_detected"), "{log}");
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
    common::wait_until(Duration::from_secs(20), "a fresh state file", || {
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
    // The kill moments come from a seed, printed; HEALTHD_TEST_SEED=N
    // replays a run.
    let mut seed = match std::env::var("HEALTHD_TEST_SEED") {
        Ok(v) => v.parse().expect("HEALTHD_TEST_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    println!("seed {seed} (HEALTHD_TEST_SEED={seed} replays its kill moments)");
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
        // A guard against a loop that makes no progress, not a figure.
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{changes} changes in {kills} kills"
        );
    }
    assert!(kills >= 2);
    println!("{changes} changes, {kills} kills at random moments, the file parsed every time");
}

/// A valid file, as the daemon writes it, with a cause-1 record.
fn valid_state_text() -> String {
    use chrono::DateTime;
    use fail2ban_healthd::health::OfflineReason;
    use fail2ban_healthd::monitor::{Activation, Cause, Memory, RecoveryRecord, UnitExit};
    let t = |s: i64| DateTime::from_timestamp(1_790_000_000 + s, 0).unwrap();
    let a = Activation {
        jail_name: "nginx".into(),
        activated_at: t(0),
    };
    let memory = Memory {
        last_activation: Some(a.clone()),
        jails_before: Some(vec!["sshd".into()]),
        spent: true,
        ran_before: false,
        seen_jails: vec![("sshd".into(), None)],
        recent: vec![a],
        record: Some(RecoveryRecord {
            jail_name: "nginx".into(),
            activated_at: t(0),
            detected_at: t(3),
            recovered_at: None,
            cause: Cause::WentOffline(OfflineReason::ConnectionRefused),
            suspect_jails: vec!["nginx".into()],
            unit_exit: Some(UnitExit {
                result: "signal".into(),
                exit_status: 9,
            }),
            rolled_back: false,
            auto_rolled_back: false,
            ran_before: false,
        }),
        trial: None,
    };
    String::from_utf8(fail2ban_healthd::state::encode(&memory)).unwrap()
}

/// Each hostile state file, by what is wrong with it: the text to write, or
/// `None` for a FIFO in place of the file.
fn hostile_state_files(good: &str) -> Vec<(&'static str, Option<String>)> {
    vec![
        // A NUL in a suspect jail once made the daemon exit on the first
        // read of PendingRecovery.
        (
            "a NUL in suspect_jails",
            Some(good.replacen("\"nginx\"\n    ]", "\"ng\\u0000inx\"\n    ]", 1)),
        ),
        (
            "a newline in unit_result",
            Some(good.replace("\"signal\"", "\"signal\\nMAINPID=1\"")),
        ),
        (
            "a file far too large",
            Some(format!("{good}{}", " ".repeat(2 << 20))),
        ),
        ("a FIFO", None),
    ]
}

/// Puts the hostile file `text` (a FIFO for `None`) at `state`.
fn place_hostile_file(state: &std::path::Path, text: Option<&str>, good: &str, what: &str) {
    match text {
        Some(text) => {
            assert_ne!(text, good, "{what}: the case changes the file");
            std::fs::write(state, text).unwrap();
        }
        None => {
            let made = std::process::Command::new("mkfifo")
                .arg(state)
                .status()
                .unwrap();
            assert!(made.success());
        }
    }
}

/// Nothing was restored, yet every property answers and the daemon probes.
async fn every_property_still_answers(bus: &PrivateBus, what: &str) {
    let (conn, p) = proxy(bus).await;
    assert!(
        p.pending_recovery().await.unwrap().is_empty(),
        "{what}: nothing restored"
    );
    assert!(p.last_activation().await.unwrap().is_empty(), "{what}");
    let all = zbus::fdo::PropertiesProxy::builder(&conn)
        .destination(fail2ban_healthd::bus::NAME)
        .path(fail2ban_healthd::bus::PATH)
        .build()
        .await
        .unwrap()
        .get_all(zbus::names::InterfaceName::try_from(fail2ban_healthd::bus::INTERFACE).unwrap())
        .await
        .unwrap();
    assert!(all.contains_key("PendingRecovery"), "{what}");
    assert!(p.probe().await.unwrap(), "{what}: the daemon still probes");
}

/// How many state files were moved aside in `dir`.
fn files_moved_aside(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("state.json.corrupt-")
        })
        .count()
}

#[tokio::test]
async fn a_hostile_state_file_is_moved_aside_and_every_property_still_answers() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    let good = valid_state_text();
    for (what, text) in hostile_state_files(&good) {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        place_hostile_file(&state, text.as_deref(), &good, what);
        let daemon = Daemon::start(
            &bus,
            &server.socket,
            &["--state-file", state.to_str().unwrap()],
            &[],
        )
        .await;
        every_property_still_answers(&bus, what).await;
        let log = daemon.log_text();
        assert!(
            log.contains("state_file_unusable") && log.contains("state_file_moved_aside"),
            "{what}: {log}"
        );
        assert_eq!(files_moved_aside(dir.path()), 1, "{what}: moved aside");
        drop(daemon);
    }
}
