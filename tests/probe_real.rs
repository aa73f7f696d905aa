//! The probe and the `probe` subcommand against a REAL fail2ban-server
//! started in a temporary directory: counters agree with fail2ban-client,
//! and each way of going down is classified as the D-Bus contract says.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;

use common::Fail2ban;
use fail2ban_healthd::fail2ban::{self, Error, ProbeConfig};
use fail2ban_healthd::health::OfflineReason;
use nix::sys::signal::Signal;

fn config(server: &Fail2ban) -> ProbeConfig {
    ProbeConfig {
        socket: server.socket.clone(),
        ..ProbeConfig::default()
    }
}

async fn probe(server: &Fail2ban) -> Result<fail2ban_healthd::health::ServerStatus, Error> {
    fail2ban::probe_once(&config(server)).await
}

#[tokio::test]
async fn counts_equal_what_fail2ban_client_prints() {
    let server = Fail2ban::start();
    let before = probe(&server).await.unwrap();
    assert_eq!(
        before
            .jails
            .iter()
            .map(|j| j.name.as_str())
            .collect::<Vec<_>>(),
        ["alpha", "beta"]
    );
    assert!(
        before
            .jails
            .iter()
            .all(|j| j.total_failed == 0 && j.total_banned == 0)
    );

    // `Fail2ban::start` returned once both jails follow their log files
    // (the jail's `status` lists the file) and each follows it with
    // `logpath = ... tail`: these lines are counted, whenever the pollers
    // next look. Without `tail`, a line written between the file's
    // addition and the poller's first read was skipped about one run in
    // three (that first read seeks to "now - findtime", and lines without
    // a date are taken for midnight's).
    for _ in 0..3 {
        server.log_line("alpha", "FAIL login from 192.0.2.1");
    }
    server.log_line("beta", "FAIL login from 192.0.2.2");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let after = loop {
        let status = probe(&server).await.unwrap();
        let alpha = &status.jails[0];
        let beta = &status.jails[1];
        if alpha.currently_banned == 1 && beta.total_failed == 1 {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no ban seen: {status:?}\nfail2ban's log:\n{}",
            server.server_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // fail2ban counts a ban before its action runs: the dummy action's
    // file follows a little later.
    common::wait_until(Duration::from_secs(30), "the ban action", || {
        !server.banned().is_empty()
    });
    assert_eq!(server.banned(), ["192.0.2.1"]);
    assert!(!after.version.is_empty());
    assert_eq!(after.jails[0], server.client_counts("alpha"));
    assert_eq!(after.jails[1], server.client_counts("beta"));
    assert_eq!(after.jails[0].total_failed, 3);
    assert_eq!(after.jails[0].total_banned, 1);
    assert_eq!(after.jails[1].currently_failed, 1);
}

#[tokio::test]
async fn after_sigterm_the_socket_is_missing() {
    let mut server = Fail2ban::start();
    probe(&server).await.unwrap();
    server.signal_and_wait(Signal::SIGTERM);
    let err = probe(&server).await.unwrap_err();
    assert!(matches!(err, Error::SocketMissing { .. }), "{err:?}");
    assert_eq!(err.offline_reason(), OfflineReason::SocketMissing);
}

#[tokio::test]
async fn after_sigkill_the_connection_is_refused() {
    let mut server = Fail2ban::start();
    probe(&server).await.unwrap();
    server.signal_and_wait(Signal::SIGKILL);
    assert!(server.socket.exists(), "a killed server leaves its socket");
    let err = probe(&server).await.unwrap_err();
    assert!(matches!(err, Error::ConnectionRefused { .. }), "{err:?}");
    assert_eq!(err.offline_reason(), OfflineReason::ConnectionRefused);
}

#[tokio::test]
async fn a_held_connection_sees_the_server_die_at_once() {
    let mut server = Fail2ban::start();
    // A long time limit: the death is seen from the socket at once, not
    // from a limit running out.
    let limit = Duration::from_secs(60);
    let mut conn = fail2ban::Connection::connect(&server.socket, limit, 1 << 20)
        .await
        .unwrap();
    conn.request(&["version"]).await.unwrap();
    server.signal_and_wait(Signal::SIGKILL);
    let start = std::time::Instant::now();
    let err = conn.request(&["ping"]).await.unwrap_err();
    assert!(matches!(err, Error::ConnectionLost(_)), "{err:?}");
    let took = start.elapsed();
    assert!(took < limit / 6, "{took:?}");
}

fn run_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fail2ban-healthd"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn probe_subcommand_prints_json_and_a_table() {
    let server = Fail2ban::start();
    let socket = server.socket.to_str().unwrap().to_owned();
    let out = run_cli(&["probe", "--json", "--socket", &socket]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["online"], true);
    assert_eq!(report["offline_reason"], serde_json::Value::Null);
    assert_eq!(report["offline_reason_code"], 0);
    assert!(!report["version"].as_str().unwrap().is_empty());
    let names: Vec<&str> = report["jails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    for key in [
        "currently_failed",
        "total_failed",
        "currently_banned",
        "total_banned",
    ] {
        assert_eq!(report["jails"][0][key], 0, "{key}");
    }

    let out = run_cli(&["probe", "--socket", &socket]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("is online with 2 jails"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("alpha ")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("beta ")), "{text}");
}

#[tokio::test]
async fn probe_subcommand_exits_1_when_offline() {
    let mut server = Fail2ban::start();
    server.signal_and_wait(Signal::SIGKILL);
    let socket = server.socket.to_str().unwrap().to_owned();
    let out = run_cli(&["probe", "--json", "--socket", &socket]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["online"], false);
    assert_eq!(report["offline_reason"], "connection_refused");
    assert_eq!(report["offline_reason_code"], 3);
    assert_eq!(report["version"], "");
    assert_eq!(report["jails"], serde_json::json!([]));

    let out = run_cli(&["probe", "--socket", &socket]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("fail2ban is offline (connection_refused)"),
        "{text}"
    );
}

#[test]
fn bad_usage_exits_2_with_a_clear_error() {
    for (args, needle) in [
        (&["probe", "--timeout", "0"][..], "timeout"),
        (&["probe", "--timeout", "soon"][..], "not a number"),
        (&["probe", "--socket", ""][..], "empty"),
        (&["probe", "--bogus"][..], "--bogus"),
        (&["frobnicate"][..], "frobnicate"),
    ] {
        let out = run_cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let long = format!("/{}", "s".repeat(120));
    let out = run_cli(&["probe", "--socket", &long]);
    assert_eq!(out.status.code(), Some(2));
}

/// The socket is `srwx------` root: another user gets permission denied.
#[tokio::test]
async fn an_unprivileged_caller_gets_permission_denied() {
    let setpriv = common::require_program("setpriv", "util-linux");
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test runs as root, like CI"
    );
    let server = Fail2ban::start();
    let mode = std::fs::metadata(&server.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "fail2ban makes its socket private");
    // The build tree may sit under a private home: run a copy from a place
    // uid 65534 can read.
    let bin = server.dir().join("fail2ban-healthd");
    // Copied by `cp`, not in this process: a child that another test
    // thread forks while this process holds the copy open for writing
    // would inherit that descriptor until its exec, and running the copy
    // then fails with "Text file busy".
    let cp = common::require_program("cp", "coreutils");
    let copied = Command::new(cp)
        .arg(env!("CARGO_BIN_EXE_fail2ban-healthd"))
        .arg(&bin)
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["probe", "--json", "--socket"])
        .arg(&server.socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["offline_reason"], "permission_denied", "{report}");
    assert_eq!(report["offline_reason_code"], 4);
    // As root the same socket answers.
    probe(&server).await.unwrap();
}

/// A prober holding its connection across a crash and a restart: the dead
/// connection is no verdict, the fresh one is.
#[tokio::test]
async fn a_holding_prober_survives_a_restart_and_reports_a_crash_truthfully() {
    let mut server = Fail2ban::start();
    let mut prober = fail2ban::Prober::holding(config(&server));
    let first = prober.probe().await.unwrap();
    assert!(prober.holds_connection());

    server.signal_and_wait(Signal::SIGKILL);
    let err = prober.probe().await.unwrap_err();
    assert!(matches!(err, Error::ConnectionRefused { .. }), "{err:?}");
    assert!(!prober.holds_connection());

    server.spawn();
    let again = prober.probe().await.unwrap();
    assert_eq!(again.jails.len(), first.jails.len());
    assert!(prober.holds_connection());

    // A restart between two probes, unseen by the prober: still online.
    server.signal_and_wait(Signal::SIGTERM);
    server.spawn();
    let after = prober.probe().await.unwrap();
    assert_eq!(after.version, first.version);
}
