//! The daemon binary against a hostile fail2ban: text from the socket that
//! would break the bus, systemd's notify protocol or the journal is refused
//! as a protocol error, and the daemon keeps running. A fake server (a
//! real one never sends such text), a private dbus-daemon, a notify socket
//! of the test's own.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::bus::{Daemon, PrivateBus, proxy};
use common::fake::{Action, FakeServer, ok_reply};
use serde_pickle::Value;

/// Replays fail2ban 1.0.2's recorded replies, except where `hostile`
/// answers.
fn server(hostile: impl Fn(&[String]) -> Option<Vec<u8>> + Send + Sync + 'static) -> FakeServer {
    FakeServer::start(move |req| {
        if let Some(bytes) = hostile(req) {
            return Action::Send(bytes);
        }
        let dir = common::fixture_dir("1.0.2");
        let name = req.join("-");
        let mut path = dir.join(format!("reply-{name}.bin"));
        if !path.exists() {
            path = dir.join(format!("reply-{}.bin", name.trim_end_matches("-short")));
        }
        Action::Send(
            std::fs::read(&path).unwrap_or_else(|_| common::fixture("1.0.2", "invalid-command")),
        )
    })
}

fn status_listing(list: &str) -> Vec<u8> {
    ok_reply(Value::List(vec![
        Value::Tuple(vec![Value::String("Number of jail".into()), Value::I64(2)]),
        Value::Tuple(vec![
            Value::String("Jail list".into()),
            Value::String(list.into()),
        ]),
    ]))
}

/// Every notification line received within `limit` after `until` holds.
fn notifications(
    notify: &UnixDatagram,
    limit: Duration,
    until: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    notify
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut seen: Vec<String> = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let start = Instant::now();
    while !until(&seen) && start.elapsed() < limit {
        if let Ok(n) = notify.recv(&mut buf) {
            seen.extend(
                String::from_utf8_lossy(&buf[..n])
                    .split('\n')
                    .map(str::to_owned),
            );
        }
    }
    seen
}

#[tokio::test]
async fn hostile_text_from_the_socket_is_a_protocol_error_and_the_daemon_lives_on() {
    let bus = PrivateBus::start();
    let cases: Vec<(&str, FakeServer)> = vec![
        (
            "a version carrying a NUL and a notify line",
            server(|req| {
                (req == ["version"]).then(|| ok_reply(Value::String("1.0.2\0\nMAINPID=1".into())))
            }),
        ),
        (
            "a version of 100 000 bytes",
            server(|req| {
                (req == ["version"]).then(|| ok_reply(Value::String("9".repeat(100_000))))
            }),
        ),
        (
            "a jail name with an escape sequence",
            server(|req| (req == ["status"]).then(|| status_listing("alpha, be\u{1b}[31mta"))),
        ),
        (
            "a jail name with a newline",
            server(|req| (req == ["status"]).then(|| status_listing("alpha\nMAINPID=1, beta"))),
        ),
    ];
    for (what, fake) in cases {
        let dir = tempfile::tempdir().unwrap();
        let notify_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        let daemon = Daemon::start(
            &bus,
            &fake.socket,
            &[],
            &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())],
        )
        .await;
        let (_c, p) = proxy(&bus).await;
        assert!(!p.probe().await.unwrap(), "{what}: not online");
        assert_eq!(
            p.offline_reason().await.unwrap(),
            6,
            "{what}: protocol error"
        );
        assert_eq!(p.version().await.unwrap(), "", "{what}");
        assert!(p.jails().await.unwrap().is_empty(), "{what}");
        // Asked again: still answering, still the same.
        assert!(!p.probe().await.unwrap(), "{what}");
        let lines = notifications(&notify, Duration::from_secs(5), |seen| {
            seen.iter()
                .any(|l| l.starts_with("STATUS=fail2ban offline"))
        });
        assert!(
            lines
                .iter()
                .any(|l| l == "STATUS=fail2ban offline: protocol error"),
            "{what}: {lines:?}"
        );
        for line in &lines {
            assert!(
                ["READY=1", "STATUS=", "WATCHDOG=1", "STOPPING=1"]
                    .iter()
                    .any(|k| line.is_empty() || line.starts_with(k)),
                "{what}: a line that is not the daemon's: {line:?}"
            );
            assert!(!line.chars().any(char::is_control), "{what}: {line:?}");
        }
        // The journal's (here standard error's) lines stay lines, and short.
        let log = daemon.log_text();
        assert!(!log.contains("MAINPID=1\n"), "{what}: {log}");
        assert!(
            log.lines().all(|l| l.len() < 2000),
            "{what}: a line of {} bytes",
            log.lines().map(str::len).max().unwrap_or(0)
        );
        assert!(!log.contains('\u{1b}'), "{what}: {log}");
    }
}

#[tokio::test]
async fn an_exception_text_of_a_mebibyte_reaches_the_log_cut() {
    let bus = PrivateBus::start();
    // fail2ban answers an error as (1, exception); this one's text is huge.
    let huge = format!("Exception: {}", "x".repeat(1 << 20));
    let fake = server(move |req| {
        (req == ["status"]).then(|| {
            let pair = Value::Tuple(vec![Value::I64(1), Value::String(huge.clone())]);
            let mut out =
                serde_pickle::value_to_vec(&pair, serde_pickle::SerOptions::new()).unwrap();
            out.extend_from_slice(fail2ban_healthd::fail2ban::codec::END_COMMAND);
            out
        })
    });
    let daemon = Daemon::start(&bus, &fake.socket, &[], &[]).await;
    let (_c, p) = proxy(&bus).await;
    assert!(!p.probe().await.unwrap());
    assert_eq!(p.offline_reason().await.unwrap(), 6);
    let log = daemon.log_text();
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 2000, "a log line of {longest} bytes");
}

/// The lowest file descriptor number `pid` has free: with its soft limit
/// set there, its next `socket()` fails with EMFILE.
fn lowest_free_fd(pid: nix::unistd::Pid) -> u64 {
    let used: std::collections::HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|n| !used.contains(n)).unwrap()
}

fn set_nofile(pid: nix::unistd::Pid, soft: &str) {
    let out = std::process::Command::new(common::require_program("prlimit", "util-linux"))
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={soft}:"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Out of file descriptors, the daemon cannot connect to fail2ban: that
/// is its own failure, logged as such, and fail2ban stays online on the
/// bus; no record, no `WentOffline`.
#[tokio::test]
async fn the_daemons_own_emfile_is_not_fail2ban_going_offline() {
    let server = common::Fail2ban::start();
    let bus = PrivateBus::start();
    let daemon = Daemon::start(
        &bus,
        &server.socket,
        // A new connection for every probe.
        &["--instant-detection", "false", "--crash-window", "60s"],
        &[],
    )
    .await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    p.register_activation("alpha").await.unwrap();
    let started = Instant::now();
    while !daemon.log_text().contains("probe_failed_locally") {
        // The last probe's socket may close only now: lower the limit to
        // whatever is free at this moment.
        set_nofile(daemon.pid(), &lowest_free_fd(daemon.pid()).to_string());
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no local failure: {}",
            daemon.log_text()
        );
        // Answered at once by the floor until a second has passed.
        assert!(p.probe().await.unwrap(), "still online");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(p.online().await.unwrap());
    assert_eq!(p.offline_reason().await.unwrap(), 0);
    assert!(p.pending_recovery().await.unwrap().is_empty());
    let log = daemon.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("probe_failed_locally"))
        .unwrap();
    assert!(line.contains("file"), "{line}");
    assert!(!log.contains("fail2ban_went_offline"), "{log}");

    set_nofile(daemon.pid(), "1024");
    let started = Instant::now();
    while !daemon.log_text().contains("probe_possible_again") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            daemon.log_text()
        );
        assert!(p.probe().await.unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A probe after the recovery: every event before it is in the log
    // (the daemon logs a step's events before it publishes them).
    assert!(p.probe().await.unwrap());
    let log = daemon.log_text();
    assert!(!log.contains("fail2ban_went_offline"), "{log}");
    assert!(p.pending_recovery().await.unwrap().is_empty());
}
