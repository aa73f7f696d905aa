//! The client and the probe against an in-process fake fail2ban: replaying
//! the replies recorded from each of the five versions users run (the
//! `stats` fast path on 1.1.0, 1.1.1 and head, the per-jail fallback on
//! 0.11.2 and 1.0.2, the same counters from all), and what a real server
//! will not do: garbage, error strings, shutdown replies, exceptions,
//! hangs, drips, closes in mid-reply and oversize replies.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fake::{Action, FakeServer, ok_reply};
use fail2ban_healthd::fail2ban::{self, Connection, Error, ProbeConfig, codec};
use fail2ban_healthd::health::{JailStats, OfflineReason};
use serde_pickle::Value;

fn config(server: &FakeServer, timeout: Duration) -> ProbeConfig {
    ProbeConfig {
        socket: server.socket.clone(),
        timeout,
        max_reply: codec::DEFAULT_MAX_REPLY,
    }
}

fn req(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn expected_jails() -> Vec<JailStats> {
    vec![
        JailStats {
            name: "alpha".into(),
            currently_failed: 1,
            total_failed: 4,
            currently_banned: 1,
            total_banned: 1,
        },
        JailStats {
            name: "beta".into(),
            currently_failed: 2,
            total_failed: 2,
            currently_banned: 0,
            total_banned: 0,
        },
    ]
}

/// Whether fail2ban `version` answers `stats` (1.1.0 and later).
fn has_stats(version: &str) -> bool {
    !matches!(version, "0.11.2" | "1.0.2")
}

/// What a first probe asks of fail2ban `version`.
fn first_probe(version: &str) -> Vec<Vec<String>> {
    let mut requests = vec![req(&["version"]), req(&["stats"])];
    if !has_stats(version) {
        requests.extend(steady_fallback());
    }
    requests
}

/// The per-jail requests without `stats`.
fn steady_fallback() -> [Vec<String>; 3] {
    [
        req(&["status"]),
        req(&["status", "alpha", "short"]),
        req(&["status", "beta", "short"]),
    ]
}

/// What a prober that knows fail2ban `version` asks of it again.
fn steady_probe(version: &str) -> Vec<Vec<String>> {
    let mut requests = vec![req(&["version"])];
    if has_stats(version) {
        requests.push(req(&["stats"]));
    } else {
        requests.extend(steady_fallback());
    }
    requests
}

#[tokio::test]
async fn replay_of_1_1_and_head_uses_one_stats_request_for_all_jails() {
    for version in common::FIXTURE_VERSIONS
        .into_iter()
        .filter(|v| has_stats(v))
    {
        let server = replay(version);
        let status = fail2ban::probe_once(&config(&server, Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(status.version, version);
        assert_eq!(status.jails, expected_jails(), "{version}");
        // `version`, then `stats`: one round trip for every jail.
        assert_eq!(
            server.requests(),
            [req(&["version"]), req(&["stats"])],
            "{version}"
        );
    }
}

#[tokio::test]
async fn replay_of_0_11_and_1_0_falls_back_to_status_per_jail() {
    for version in ["0.11.2", "1.0.2"] {
        let server = replay(version);
        let status = fail2ban::probe_once(&config(&server, Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(status.version, version);
        assert_eq!(status.jails, expected_jails(), "{version}");
        assert_eq!(
            server.requests(),
            [
                req(&["version"]),
                req(&["stats"]),
                req(&["status"]),
                req(&["status", "alpha", "short"]),
                req(&["status", "beta", "short"]),
            ],
            "{version}"
        );
    }
}

/// Every version, by either path, gives the same counters: only the
/// version string tells them apart.
#[tokio::test]
async fn every_version_gives_the_same_counters() {
    let mut seen = Vec::new();
    for version in common::FIXTURE_VERSIONS {
        let server = replay(version);
        let mut status = fail2ban::probe_once(&config(&server, Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(status.version, version);
        assert_eq!(server.requests(), first_probe(version), "{version}");
        status.version.clear();
        seen.push(status);
    }
    assert_eq!(seen.len(), 5);
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:#?}");
    assert_eq!(seen[0].jails, expected_jails());
}

#[tokio::test]
async fn a_jail_removed_between_status_and_its_counters_is_skipped() {
    let server = FakeServer::start(|r| match r.join(" ").as_str() {
        "version" => Action::Send(common::fixture("1.0.2", "version")),
        "status" => Action::Send(common::fixture("1.0.2", "status")),
        "status alpha short" => Action::Send(common::fixture("1.0.2", "status-unknown-jail")),
        "status beta short" => Action::Send(common::fixture("1.0.2", "status-beta")),
        _ => Action::Send(common::fixture("1.0.2", "invalid-command")),
    });
    let status = fail2ban::probe_once(&config(&server, Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(status.jails, expected_jails()[1..]);
}

async fn probe_error(action: Action, timeout: Duration) -> (Error, Duration) {
    let server = FakeServer::start(move |_| action.clone());
    let start = Instant::now();
    let err = fail2ban::probe_once(&config(&server, timeout))
        .await
        .unwrap_err();
    (err, start.elapsed())
}

#[tokio::test]
async fn garbage_is_a_protocol_error() {
    let (err, _) = probe_error(
        Action::Send(b"\x00\xffnot a pickle<F2B_END_COMMAND>".to_vec()),
        Duration::from_secs(5),
    )
    .await;
    assert!(
        matches!(err, Error::Protocol(codec::CodecError::Garbage(_))),
        "{err:?}"
    );
    assert_eq!(err.offline_reason(), OfflineReason::ProtocolError);
}

#[tokio::test]
async fn an_error_string_is_a_protocol_error() {
    let (err, _) = probe_error(
        Action::Send(common::fixture("1.0.2", "garbage")),
        Duration::from_secs(5),
    )
    .await;
    assert!(
        matches!(&err, Error::Protocol(codec::CodecError::Rejected(m)) if m == "could not find MARK"),
        "{err:?}"
    );
    assert_eq!(err.offline_reason(), OfflineReason::ProtocolError);
}

#[tokio::test]
async fn a_shutdown_reply_means_shutting_down() {
    let (err, _) = probe_error(
        Action::Send(common::fixture("1.0.2", "shutdown")),
        Duration::from_secs(5),
    )
    .await;
    assert!(matches!(err, Error::ShuttingDown), "{err:?}");
    assert_eq!(err.offline_reason(), OfflineReason::ShuttingDown);
}

#[tokio::test]
async fn an_exception_reply_carries_its_message() {
    let server =
        FakeServer::start(|_| Action::Send(common::fixture("1.1.1", "status-unknown-jail")));
    let mut conn = Connection::connect(&server.socket, Duration::from_secs(5), 1024)
        .await
        .unwrap();
    let err = conn.request(&["status", "nosuchjail"]).await.unwrap_err();
    assert!(
        matches!(&err, Error::Server { message } if message == "nosuchjail"),
        "{err:?}"
    );
    // The probe never expects `version` to fail: that is not fail2ban as we know it.
    let (err, _) = probe_error(
        Action::Send(common::fixture("1.0.2", "invalid-command")),
        Duration::from_secs(5),
    )
    .await;
    assert!(matches!(err, Error::Server { .. }), "{err:?}");
    assert_eq!(err.offline_reason(), OfflineReason::ProtocolError);
}

#[tokio::test]
async fn an_unexpected_shape_is_a_protocol_error() {
    let (err, _) = probe_error(
        Action::Send(ok_reply(Value::I64(42))),
        Duration::from_secs(5),
    )
    .await;
    assert!(
        matches!(err, Error::Protocol(codec::CodecError::UnexpectedShape(_))),
        "{err:?}"
    );
}

/// Not before the deadline, and not long after it: a timer overruns by
/// milliseconds, even on a loaded machine. A deadline that a drip or a
/// second request stretched would run seconds longer (the one-byte drip
/// below lasts 4 s; the 400 ms replies add up to more than 2 s).
fn assert_on_time(elapsed: Duration, timeout: Duration) {
    assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
    assert!(
        elapsed < timeout + Duration::from_secs(1),
        "deadline overrun: {elapsed:?} for {timeout:?}"
    );
}

#[tokio::test]
async fn a_reply_that_never_comes_times_out_on_the_deadline() {
    let timeout = Duration::from_secs(1);
    let (err, elapsed) = probe_error(Action::Hang, timeout).await;
    assert!(
        matches!(err, Error::Timeout { budget } if budget == timeout),
        "{err:?}"
    );
    assert_eq!(err.offline_reason(), OfflineReason::Timeout);
    assert_on_time(elapsed, timeout);
}

#[tokio::test]
async fn a_drip_of_one_byte_per_100_ms_does_not_stretch_the_deadline() {
    let timeout = Duration::from_secs(1);
    let reply = common::fixture("1.1.1", "version");
    let (err, elapsed) =
        probe_error(Action::Drip(reply, Duration::from_millis(100)), timeout).await;
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_on_time(elapsed, timeout);
}

#[tokio::test]
async fn the_deadline_covers_the_whole_probe_not_each_request() {
    // Each reply takes 400 ms: every single request fits in 1 s, the
    // probe's several requests do not.
    let timeout = Duration::from_secs(1);
    let server = FakeServer::start(|r| {
        let name = r.join("-");
        let bytes = if name == "stats" {
            common::fixture("1.0.2", "invalid-command")
        } else {
            std::fs::read(common::fixture_dir("1.0.2").join(format!("reply-{name}.bin")))
                .unwrap_or_else(|_| common::fixture("1.0.2", "status-beta"))
        };
        let interval = Duration::from_millis(400) / bytes.len() as u32;
        Action::Drip(bytes, interval)
    });
    let start = Instant::now();
    let err = fail2ban::probe_once(&config(&server, timeout))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_on_time(start.elapsed(), timeout);
}

#[tokio::test]
async fn a_reply_dripped_in_tiny_chunks_is_reassembled() {
    let server = FakeServer::start(|r| {
        let name = if r == ["version"] { "version" } else { "stats" };
        Action::Drip(common::fixture("1.1.1", name), Duration::from_micros(200))
    });
    let status = fail2ban::probe_once(&config(&server, Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(status.jails, expected_jails());
}

#[tokio::test]
async fn a_close_in_mid_reply_is_a_lost_connection() {
    let reply = common::fixture("1.1.1", "version");
    let (err, _) = probe_error(
        Action::SendAndClose(reply[..reply.len() / 2].to_vec()),
        Duration::from_secs(5),
    )
    .await;
    assert!(matches!(err, Error::ConnectionLost(_)), "{err:?}");
    assert_eq!(err.offline_reason(), OfflineReason::ConnectionLost);
    let (err, _) = probe_error(Action::SendAndClose(Vec::new()), Duration::from_secs(5)).await;
    assert!(matches!(err, Error::ConnectionLost(_)), "{err:?}");
}

#[tokio::test]
async fn a_reply_over_the_cap_is_refused_early() {
    let server = FakeServer::start(|_| Action::Flood(vec![b'x'; 64 * 1024]));
    let cfg = ProbeConfig {
        max_reply: 1 << 20,
        ..config(&server, Duration::from_secs(10))
    };
    let err = fail2ban::probe_once(&cfg).await.unwrap_err();
    assert!(
        matches!(err, Error::Protocol(codec::CodecError::Oversize { limit }) if limit == 1 << 20),
        "{err:?}"
    );
    assert_eq!(err.offline_reason(), OfflineReason::ProtocolError);
    // The client stopped reading soon after the cap: the fake could only
    // push what the socket buffers hold beyond it.
    let sent = *server.flooded.lock().unwrap();
    assert!(sent < 4 << 20, "the fake sent {sent} bytes");
}

/// The default 16 MiB cap keeps the binary's memory bounded whatever the
/// peer sends: under a 96 MiB address-space limit it still ends cleanly
/// while the fake offers far more than that.
#[tokio::test]
async fn an_endless_reply_leaves_the_binary_memory_bounded() {
    let server = FakeServer::start(|_| Action::Flood(vec![b'x'; 64 * 1024]));
    let socket = server.socket.clone();
    let out =
        tokio::task::spawn_blocking(move || common::probe_binary_under_limit(&socket, 96 << 20))
            .await
            .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["offline_reason"], "protocol_error");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("exceeds the limit of 16777216 bytes"),
        "{report}"
    );
    let sent = *server.flooded.lock().unwrap();
    assert!(
        ((16 << 20)..(24 << 20)).contains(&sent),
        "the fake sent {sent} bytes"
    );
}

#[tokio::test]
async fn connect_errors_are_classified() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing.sock");
    let err = Connection::connect(&missing, Duration::from_secs(1), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SocketMissing { .. }), "{err:?}");
    assert_eq!(err.offline_reason(), OfflineReason::SocketMissing);

    // A socket file nobody listens on: what a SIGKILLed server leaves.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let err = Connection::connect(&stale, Duration::from_secs(1), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConnectionRefused { .. }), "{err:?}");
    assert_eq!(err.offline_reason(), OfflineReason::ConnectionRefused);

    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"").unwrap();
    let err = Connection::connect(&not_a_dir.join("x.sock"), Duration::from_secs(1), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SocketMissing { .. }), "{err:?}");
}

/// A fake replaying the replies recorded from fail2ban `version`, which the
/// test may change between probes: `["status", "alpha", "short"]` gets
/// `reply-status-alpha-short.bin`, or the long status where only that was
/// recorded (it carries the same counters).
fn replay_switchable(version: Arc<Mutex<&'static str>>) -> FakeServer {
    FakeServer::start(move |r| {
        let v = *version.lock().unwrap();
        let dir = common::fixture_dir(v);
        let name = r.join("-");
        let path = dir.join(format!("reply-{name}.bin"));
        let path = if path.exists() {
            path
        } else {
            dir.join(format!("reply-{}.bin", name.trim_end_matches("-short")))
        };
        // Not every version's `Invalid command` was recorded; the reply is
        // the same bytes in all that were.
        Action::Send(
            std::fs::read(path).unwrap_or_else(|_| common::fixture("1.0.2", "invalid-command")),
        )
    })
}

/// A fake replaying fail2ban `version`.
fn replay(version: &'static str) -> FakeServer {
    replay_switchable(Arc::new(Mutex::new(version)))
}

#[tokio::test]
async fn a_prober_remembers_what_the_server_supports() {
    use fail2ban_healthd::fail2ban::Prober;
    let version = Arc::new(Mutex::new("1.0.2"));
    let server = replay_switchable(version.clone());
    let mut prober = Prober::new(config(&server, Duration::from_secs(5)));
    let first = prober.probe().await.unwrap();
    assert_eq!(server.requests().len(), 5);
    server.requests.lock().unwrap().clear();
    // fail2ban 1.0 lacks `stats`: the next probe does not ask it again, and
    // learns the same counters in fewer requests.
    let second = prober.probe().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(
        server.requests(),
        [
            req(&["version"]),
            req(&["status"]),
            req(&["status", "alpha", "short"]),
            req(&["status", "beta", "short"])
        ]
    );
    // An upgrade to 1.1 is noticed from the version and `stats` is used.
    *version.lock().unwrap() = "1.1.1";
    server.requests.lock().unwrap().clear();
    let upgraded = prober.probe().await.unwrap();
    assert_eq!(upgraded.version, "1.1.1");
    assert_eq!(upgraded.jails, expected_jails());
    // The steady-state write asked for the old jails in advance; the
    // version in its reply says to learn afresh.
    assert_eq!(
        server.requests(),
        [
            req(&["version"]),
            req(&["status"]),
            req(&["status", "alpha", "short"]),
            req(&["status", "beta", "short"]),
            req(&["version"]),
            req(&["stats"]),
        ]
    );
    server.requests.lock().unwrap().clear();
    prober.probe().await.unwrap();
    assert_eq!(server.requests(), [req(&["version"]), req(&["stats"])]);
    // A downgrade back to 1.0 is noticed from `stats` failing.
    *version.lock().unwrap() = "1.0.2";
    server.requests.lock().unwrap().clear();
    let downgraded = prober.probe().await.unwrap();
    assert_eq!(downgraded, first);
    assert_eq!(
        server.requests()[..4],
        [
            req(&["version"]),
            req(&["stats"]),
            req(&["version"]),
            req(&["stats"])
        ]
    );
}

/// The upgrade path users take, 0.11 to head, then a rollback to 0.11:
/// at each step the prober learns the new version's commands within one
/// probe, with the counters unchanged, and then asks only what that
/// version needs.
#[tokio::test]
async fn a_prober_follows_every_upgrade_and_a_rollback() {
    use fail2ban_healthd::fail2ban::Prober;
    let version = Arc::new(Mutex::new(common::FIXTURE_VERSIONS[0]));
    let server = replay_switchable(version.clone());
    let mut prober = Prober::new(config(&server, Duration::from_secs(5)));
    let path = common::FIXTURE_VERSIONS
        .into_iter()
        .chain([common::FIXTURE_VERSIONS[0]]);
    for (step, v) in path.enumerate() {
        *version.lock().unwrap() = v;
        let status = prober.probe().await.unwrap();
        assert_eq!(status.version, v, "step {step}");
        assert_eq!(status.jails, expected_jails(), "step {step}: {v}");
        server.requests.lock().unwrap().clear();
        let again = prober.probe().await.unwrap();
        assert_eq!(again, status, "step {step}: {v}");
        assert_eq!(server.requests(), steady_probe(v), "step {step}: {v}");
        server.requests.lock().unwrap().clear();
    }
}

#[tokio::test]
async fn a_prober_notices_jails_that_start_and_stop() {
    use fail2ban_healthd::fail2ban::Prober;
    use std::sync::{Arc, Mutex};
    // A fail2ban 1.0 whose jail list the test changes between probes.
    let listed: Arc<Mutex<&'static str>> = Arc::new(Mutex::new("alpha, beta"));
    let l = listed.clone();
    let server = FakeServer::start(move |r| {
        let running = *l.lock().unwrap();
        match r.join(" ").as_str() {
            "version" => Action::Send(common::fixture("1.0.2", "version")),
            "status" => Action::Send(ok_reply(Value::List(vec![
                Value::Tuple(vec![
                    Value::String("Number of jail".into()),
                    Value::I64(running.split(", ").count() as i64),
                ]),
                Value::Tuple(vec![
                    Value::String("Jail list".into()),
                    Value::String(running.into()),
                ]),
            ]))),
            s if s.starts_with("status ") && running.contains(r[1].as_str()) => {
                Action::Send(common::fixture("1.0.2", "status-beta"))
            }
            s if s.starts_with("status ") => {
                Action::Send(common::fixture("1.0.2", "status-unknown-jail"))
            }
            _ => Action::Send(common::fixture("1.0.2", "invalid-command")),
        }
    });
    let mut prober = Prober::new(config(&server, Duration::from_secs(5)));
    let names = |s: &fail2ban_healthd::health::ServerStatus| {
        s.jails.iter().map(|j| j.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(&prober.probe().await.unwrap()), ["alpha", "beta"]);
    *listed.lock().unwrap() = "beta";
    assert_eq!(names(&prober.probe().await.unwrap()), ["beta"]);
    *listed.lock().unwrap() = "beta, gamma";
    assert_eq!(names(&prober.probe().await.unwrap()), ["beta", "gamma"]);
    server.requests.lock().unwrap().clear();
    assert_eq!(names(&prober.probe().await.unwrap()), ["beta", "gamma"]);
    assert_eq!(
        server.requests().len(),
        4,
        "steady state: version, status and two jails"
    );
}

#[tokio::test]
async fn a_holding_prober_uses_one_connection_for_many_probes() {
    use fail2ban_healthd::fail2ban::Prober;
    for version in common::FIXTURE_VERSIONS {
        let server = replay(version);
        let mut prober = Prober::holding(config(&server, Duration::from_secs(5)));
        for _ in 0..5 {
            let status = prober.probe().await.unwrap();
            assert_eq!(status.jails, expected_jails());
            assert!(prober.holds_connection());
        }
        assert_eq!(*server.connections.lock().unwrap(), 1, "{version}");
        // Steady state on the held connection: what the version needs.
        let all = server.requests();
        assert_eq!(
            all[all.len() - steady_probe(version).len()..],
            steady_probe(version)
        );
        let closes_before = server.requests().len();
        prober.release().await;
        assert!(!prober.holds_connection());
        assert_eq!(server.requests().len(), closes_before);
    }
}

#[tokio::test]
async fn a_one_shot_prober_closes_politely_in_its_last_write() {
    let server = FakeServer::replay("1.1.1");
    let mut prober =
        fail2ban_healthd::fail2ban::Prober::new(config(&server, Duration::from_secs(5)));
    prober.probe().await.unwrap();
    prober.probe().await.unwrap();
    assert!(!prober.holds_connection());
    assert_eq!(*server.connections.lock().unwrap(), 2);
}

/// The binary's `probe ARGS` against `server`.
async fn probe_binary(server: &FakeServer, args: &[&str]) -> common::fake::ProbeRun {
    let socket = server.socket.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::fake::run_probe(&socket, &args, &[])
    })
    .await
    .unwrap()
}

/// A fail2ban 1.1.1 whose `version` answer is `version`.
fn with_version(version: &'static str) -> FakeServer {
    FakeServer::start(move |r| match r.join(" ").as_str() {
        "version" => Action::Send(ok_reply(Value::String(version.into()))),
        "stats" => Action::Send(common::fixture("1.1.1", "stats")),
        _ => Action::Send(common::fixture("1.1.1", "invalid-command")),
    })
}

/// A version string that would inject `MAINPID=1` into sd_notify and
/// break a D-Bus message: a protocol error, and nothing of it reaches the
/// output unescaped, in text or JSON.
#[tokio::test]
async fn a_version_with_control_characters_is_a_protocol_error() {
    for version in ["1.0.2\0\nMAINPID=1", "1.0.2\u{1b}[2J", "1.0\u{2028}2", ""] {
        let server = with_version(version);
        let err = fail2ban::probe_once(&config(&server, Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Protocol(codec::CodecError::UnexpectedShape(m)) if m.starts_with("version")),
            "{version:?}: {err:?}"
        );
        let json = probe_binary(&server, &["--json"]).await;
        assert_eq!(json.status, Some(1), "{json:?}");
        common::fake::assert_no_control(&json.stdout);
        let report = json.json();
        assert_eq!(report["offline_reason"], "protocol_error", "{report}");
        assert_eq!(report["version"], "");
        let error = report["error"].as_str().unwrap();
        assert!(fail2ban_healthd::text::printable(error), "{error:?}");
        assert!(!error.contains("\nMAINPID"), "{error:?}");
        let text = probe_binary(&server, &[]).await;
        assert_eq!(text.status, Some(1), "{text:?}");
        common::fake::assert_no_control(&text.stdout);
        assert_eq!(text.stdout.lines().count(), 1, "{:?}", text.stdout);
        assert!(
            text.stdout.starts_with(
                "fail2ban is offline (protocol_error): protocol error: unexpected reply: version"
            ),
            "{:?}",
            text.stdout
        );
    }
    // A version over 64 bytes is refused too; 64 pass.
    let long: &'static str = Box::leak("1".repeat(65).into_boxed_str());
    let err = fail2ban::probe_once(&config(&with_version(long), Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err:?}");
    let ok: &'static str = Box::leak("1".repeat(64).into_boxed_str());
    let status = fail2ban::probe_once(&config(&with_version(ok), Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(status.version, ok);
}

/// Jail names that break the contract's rule, from `stats` (fail2ban 1.1)
/// or from `status` (1.0): a protocol error, printed cleanly.
#[tokio::test]
async fn bad_jail_names_are_a_protocol_error() {
    let bad = [
        "be\nta",
        "x\u{1b}[31m",
        "-dash",
        ".dot",
        "sp ace",
        "a/b",
        "nul\0",
        "é",
    ];
    let too_long = "a".repeat(129);
    for name in bad.iter().copied().chain([too_long.as_str()]) {
        let stats_name = name.to_owned();
        let stats = FakeServer::start(move |r| match r.join(" ").as_str() {
            "version" => Action::Send(common::fixture("1.1.1", "version")),
            _ => {
                let entry = Value::List(vec![
                    Value::String("polling".into()),
                    Value::Tuple(vec![Value::I64(1), Value::I64(4)]),
                    Value::Tuple(vec![Value::I64(1), Value::I64(1)]),
                ]);
                let mut map = std::collections::BTreeMap::new();
                map.insert(
                    serde_pickle::HashableValue::String(stats_name.clone()),
                    entry,
                );
                Action::Send(ok_reply(Value::Dict(map)))
            }
        });
        let list = format!("alpha, {name}");
        let status = FakeServer::start(move |r| match r.join(" ").as_str() {
            "version" => Action::Send(common::fixture("1.0.2", "version")),
            "status" => Action::Send(ok_reply(Value::List(vec![
                Value::Tuple(vec![Value::String("Number of jail".into()), Value::I64(2)]),
                Value::Tuple(vec![
                    Value::String("Jail list".into()),
                    Value::String(list.clone()),
                ]),
            ]))),
            s if s.starts_with("status ") => Action::Send(common::fixture("1.0.2", "status-beta")),
            _ => Action::Send(common::fixture("1.0.2", "invalid-command")),
        });
        for server in [&stats, &status] {
            let err = fail2ban::probe_once(&config(server, Duration::from_secs(5)))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, Error::Protocol(codec::CodecError::UnexpectedShape(m)) if m.contains("invalid jail name")),
                "{name:?}: {err:?}"
            );
            let run = probe_binary(server, &["--json"]).await;
            assert_eq!(run.status, Some(1), "{name:?}: {run:?}");
            common::fake::assert_no_control(&run.stdout);
            let report = run.json();
            assert_eq!(report["offline_reason"], "protocol_error", "{report}");
            assert_eq!(report["jails"], serde_json::json!([]));
            assert!(
                fail2ban_healthd::text::printable(report["error"].as_str().unwrap()),
                "{report}"
            );
        }
    }
}

/// With too few file descriptors for the probe's own socket (EMFILE from
/// socket()), `probe` says it is its own failure, with exit status 3, not
/// that fail2ban refused the connection. The limit is raised one by one
/// from where the binary cannot even start its runtime to where it
/// probes normally, so the test does not depend on how many descriptors
/// the runtime takes.
#[tokio::test]
async fn the_probes_own_emfile_is_reported_as_its_own_failure() {
    let server = FakeServer::replay("1.1.1");
    let socket = server.socket.clone();
    let runs = tokio::task::spawn_blocking(move || {
        let mut runs = Vec::new();
        for n in 4..=64 {
            let limit = format!("--nofile={n}");
            let prefix = ["prlimit", limit.as_str()];
            let run = common::fake::run_probe(&socket, &["--json"], &prefix);
            let online = run.status == Some(0);
            runs.push((n, run));
            if online {
                break;
            }
        }
        runs
    })
    .await
    .unwrap();
    let (last_n, last) = runs.last().unwrap();
    assert_eq!(
        last.status,
        Some(0),
        "never online up to {last_n} descriptors"
    );
    let mut local = None;
    for (n, run) in &runs {
        // Never a verdict on fail2ban, which was online all along.
        assert!(!run.stdout.contains("connection_refused"), "{n}: {run:?}");
        if run.status == Some(3) {
            let report = run.json();
            assert_eq!(report["local_error"], true, "{report}");
            assert_eq!(report["online"], false);
            assert!(report["offline_reason"].is_null(), "{report}");
            local = Some(*n);
        }
    }
    let n = local.unwrap_or_else(|| panic!("no run failed on its own socket: {runs:#?}"));
    let report = runs.iter().find(|(m, _)| *m == n).unwrap().1.json();
    let error = report["error"].as_str().unwrap();
    assert!(
        error.starts_with("fail2ban-healthd's own failure, not fail2ban's")
            && error.ends_with("Too many open files (os error 24)"),
        "{error}"
    );
    assert_eq!(report["offline_reason_code"], 0);
    // The same in text.
    let socket = server.socket.clone();
    let text = tokio::task::spawn_blocking(move || {
        let limit = format!("--nofile={n}");
        common::fake::run_probe(&socket, &[], &["prlimit", limit.as_str()])
    })
    .await
    .unwrap();
    assert_eq!(text.status, Some(3), "{text:?}");
    assert!(
        text.stdout.starts_with(
            "fail2ban-healthd could not probe fail2ban: fail2ban-healthd's own failure, not fail2ban's"
        ),
        "{:?}",
        text.stdout
    );
    assert!(!text.stdout.contains("offline"), "{:?}", text.stdout);
}
