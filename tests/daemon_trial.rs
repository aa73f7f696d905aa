//! `Try`, `Check`, `Confirm` and `Abort` against a real fail2ban-server in
//! a temporary directory, with the daemon on a private bus (fail2ban is
//! not a systemd unit here: it is reloaded with the reload command).
//!
//! Each failure kind is tried twice: with the checks off, so that the
//! rollback path is what brings fail2ban back, and with them on, so that
//! the checks catch it before the server is touched.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Fail2ban;
use common::bus::{Daemon, PrivateBus, client, proxy};
use fail2ban_healthd::bus::proxy::Health1Proxy;
use fail2ban_healthd::rollback::MARKER;
use futures_util::StreamExt as _;
use zbus::OwnedVariant;

const DROPIN: &str = "zz-fail2ban-healthd-rollback.local";

/// What the daemon's drop-in held before the trials: a jail rolled back
/// earlier, which every trial must leave exactly as it was.
fn earlier_dropin() -> String {
    format!(
        "{MARKER}: jails rolled back after a failed activation.\n# an administrator's note\n\n\
         [old]\nenabled = false\n"
    )
}

fn dropin(server: &Fail2ban) -> PathBuf {
    server.dir().join("conf/jail.d").join(DROPIN)
}

/// The daemon with trials aimed at `server`'s configuration, with the
/// rollback settings of the other tests.
async fn daemon(bus: &PrivateBus, server: &Fail2ban, checks: bool, extra: &[&str]) -> Daemon {
    daemon_reloading_with(bus, server, checks, None, extra).await
}

/// The same, with `reload` as the reload command when given.
async fn daemon_reloading_with(
    bus: &PrivateBus,
    server: &Fail2ban,
    checks: bool,
    reload: Option<&str>,
    extra: &[&str],
) -> Daemon {
    let client = server.client_program();
    let mut args = vec![
        "--fail2ban-client-command",
        &client,
        "--trial-checks",
        if checks { "true" } else { "false" },
    ];
    args.extend_from_slice(extra);
    common::bus::rollback_daemon(bus, server, &dropin(server), reload, None, &args).await
}

/// As [`daemon_reloading_with`] without checks, with a jail start grace of
/// 10 s instead of 1 s: a daemon started again during a trial judges the
/// trial's jail a grace after its activation, and the held reload (then a
/// restart of the daemon, then fail2ban-client's reload) must end before.
async fn daemon_with_a_long_grace(
    bus: &PrivateBus,
    server: &Fail2ban,
    reload: &str,
    extra: &[&str],
) -> Daemon {
    let mut args = vec!["--jail-start-grace", "10s"];
    args.extend_from_slice(extra);
    daemon_reloading_with(bus, server, false, Some(reload), &args).await
}

/// Whether a process runs `script` (its command line names it).
fn running_script(script: &std::path::Path) -> bool {
    let needle = script.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == needle))
    })
}

/// A server with alpha and beta, a private bus, the daemon (its drop-in
/// holding `dropin_text` first, when given) and a proxy that has seen
/// fail2ban online.
async fn setup(
    checks: bool,
    dropin_text: Option<&str>,
) -> (
    Fail2ban,
    PrivateBus,
    Daemon,
    zbus::Connection,
    Health1Proxy<'static>,
) {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    if let Some(text) = dropin_text {
        std::fs::write(dropin(&server), text).unwrap();
    }
    let d = daemon(&bus, &server, checks, &[]).await;
    let (c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    (server, bus, d, c, p)
}

/// The failure kinds, and a good jail, as `conf/jail.d/gamma.local`
/// (disabled, as an administrator leaves a jail before trying it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Good,
    MissingLog,
    InvalidRegex,
    MissingFilter,
}

impl Kind {
    const FAILURES: [Kind; 3] = [Kind::MissingLog, Kind::InvalidRegex, Kind::MissingFilter];

    fn write(self, server: &Fail2ban, jail: &str) {
        let b = server.dir();
        let log = b.join(format!("log/{jail}.log"));
        std::fs::write(
            b.join("conf/filter.d/bad.conf"),
            "[Definition]\nfailregex = ^(unclosed <HOST>\ndatepattern = {NONE}\n",
        )
        .unwrap();
        let (filter, logpath) = match self {
            Kind::Good => ("t", log.clone()),
            Kind::MissingLog => ("t", b.join("log/nowhere/missing.log")),
            Kind::InvalidRegex => ("bad", log.clone()),
            Kind::MissingFilter => ("no-such-filter", log.clone()),
        };
        std::fs::write(&log, "").unwrap();
        server.write_jail_d(
            jail,
            &format!(
                "[{jail}]\nenabled = false\nfilter = {filter}\naction = t\nlogpath = {} tail\n",
                logpath.display()
            ),
        );
    }

    /// The record's cause when fail2ban meets this mistake at a reload.
    fn cause(self) -> u32 {
        match self {
            Kind::InvalidRegex => 3,
            _ => 2,
        }
    }
}

fn jails_of(server: &Fail2ban) -> Vec<String> {
    let mut names = server.jail_names().unwrap();
    names.sort();
    names
}

fn error_name(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, _, _) => name.as_str().to_owned(),
        other => format!("{other}"),
    }
}

fn field<T: TryFrom<OwnedVariant>>(d: &HashMap<String, OwnedVariant>, key: &str) -> Option<T> {
    d.get(key)
        .and_then(|v| T::try_from(v.try_clone().ok()?).ok())
}

/// Waits for `TrialEnded` on `ended`, at most `limit`.
async fn trial_ended(
    ended: &mut fail2ban_healthd::bus::proxy::TrialEndedStream,
    limit: Duration,
) -> (String, bool, u32) {
    let signal = tokio::time::timeout(limit, ended.next())
        .await
        .expect("TrialEnded in time")
        .expect("the stream goes on");
    let a = signal.args().unwrap();
    (a.jail_name().to_string(), *a.kept(), *a.cause())
}

/// Waits until fail2ban answers with exactly `jails` running.
fn wait_for_jails(server: &Fail2ban, jails: &[&str]) {
    common::wait_until(Duration::from_secs(30), "fail2ban's jails", || {
        server.jail_names().is_ok_and(|mut j| {
            j.sort();
            j == jails
        })
    });
}

async fn trial_property(p: &Health1Proxy<'_>) -> HashMap<String, OwnedVariant> {
    p.trial().await.unwrap()
}

/// A good jail is kept when its deadline passes healthy: its line stays
/// in the drop-in beside the earlier ones, and `TrialEnded` says kept.
/// Then a failing one, with the checks off, is rolled back by the daemon
/// by itself: the drop-in is byte for byte what it was, and the jails
/// that ran before run again.
#[tokio::test]
async fn a_good_jail_is_kept_and_each_failure_kind_is_rolled_back_by_itself() {
    let (server, _bus, d, _c, p) = setup(false, Some(&earlier_dropin())).await;
    let mut ended = p.receive_trial_ended().await.unwrap();

    Kind::Good.write(&server, "gamma");
    let started = p.try_jail("gamma", 3_000_000).await.unwrap();
    let t = trial_property(&p).await;
    assert_eq!(field::<String>(&t, "JailName").as_deref(), Some("gamma"));
    assert_eq!(field::<u64>(&t, "StartedAt"), Some(started));
    assert_eq!(field::<u64>(&t, "DeadlineAt"), Some(started + 3_000_000));
    let text = std::fs::read_to_string(dropin(&server)).unwrap();
    assert!(text.contains("[old]\nenabled = false\n"), "{text}");
    assert!(text.contains("[gamma]\nenabled = true\n"), "{text}");
    let verdict = trial_ended(&mut ended, Duration::from_secs(30)).await;
    assert_eq!(verdict, ("gamma".into(), true, 0), "{}", d.log_text());
    assert!(trial_property(&p).await.is_empty());
    assert_eq!(jails_of(&server), ["alpha", "beta", "gamma"]);
    assert!(p.pending_recovery().await.unwrap().is_empty());
    // The kept jail's line is part of the drop-in now.
    let kept = std::fs::read_to_string(dropin(&server)).unwrap();

    for (i, kind) in Kind::FAILURES.into_iter().enumerate() {
        let jail = format!("bad{i}");
        kind.write(&server, &jail);
        let before = jails_of(&server);
        let started = Instant::now();
        // A reload that fails (a missing log file aborts it) still starts
        // the trial: the daemon judges what fail2ban does.
        let at = p.try_jail(&jail, 60_000_000).await.unwrap();
        let verdict = trial_ended(&mut ended, Duration::from_secs(60)).await;
        let took = started.elapsed();
        assert_eq!(
            verdict,
            (jail.clone(), false, kind.cause()),
            "{kind:?}: {}",
            d.log_text()
        );
        assert_eq!(
            std::fs::read_to_string(dropin(&server)).unwrap(),
            kept,
            "{kind:?}: the drop-in is back byte for byte"
        );
        let want: Vec<&str> = before.iter().map(String::as_str).collect();
        wait_for_jails(&server, &want);
        let r = p.pending_recovery().await.unwrap();
        assert_eq!(field::<String>(&r, "JailName"), Some(jail.clone()));
        assert_eq!(field::<u64>(&r, "ActivatedAt"), Some(at));
        assert_eq!(field::<bool>(&r, "RolledBack"), Some(true), "{kind:?}");
        assert_eq!(field::<bool>(&r, "AutoRolledBack"), Some(true), "{kind:?}");
        assert!(trial_property(&p).await.is_empty());
        println!("{kind:?}: rolled back and fail2ban healthy {took:?} after Try");
        p.dismiss_recovery().await.unwrap();
    }
}

/// `Confirm` keeps at once; `Abort` rolls back with cause 0 and no record;
/// neither works without a trial; a second `Try` during one is refused,
/// and so is a manual `Rollback`.
#[tokio::test]
async fn confirm_abort_and_one_trial_at_a_time() {
    let (server, _bus, _d, _c, p) = setup(false, None).await;
    let mut ended = p.receive_trial_ended().await.unwrap();
    for name in ["gamma", "delta"] {
        Kind::Good.write(&server, name);
    }
    assert_eq!(
        error_name(&p.confirm().await.unwrap_err()),
        "org.fail2ban_healthd.Health1.Error.NoTrial"
    );
    assert_eq!(
        error_name(&p.abort().await.unwrap_err()),
        "org.fail2ban_healthd.Health1.Error.NoTrial"
    );

    // Two calls at once: one trial, one TrialInProgress.
    let (a, b) = tokio::join!(
        p.try_jail("gamma", 600_000_000),
        p.try_jail("delta", 600_000_000)
    );
    let (ok, refused) = match (a, b) {
        (Ok(_), Err(e)) => ("gamma", e),
        (Err(e), Ok(_)) => ("delta", e),
        other => panic!("exactly one trial starts: {other:?}"),
    };
    assert_eq!(
        error_name(&refused),
        "org.fail2ban_healthd.Health1.Error.TrialInProgress"
    );
    assert_eq!(
        field::<String>(&trial_property(&p).await, "JailName").as_deref(),
        Some(ok)
    );
    let e = p.rollback().await.unwrap_err();
    assert!(
        ["TrialInProgress", "NoPendingRecovery"]
            .iter()
            .any(|n| error_name(&e).ends_with(n)),
        "{e}"
    );
    p.confirm().await.unwrap();
    assert_eq!(
        trial_ended(&mut ended, Duration::from_secs(10)).await,
        (ok.to_owned(), true, 0)
    );
    assert!(jails_of(&server).contains(&ok.to_owned()));

    let other = if ok == "gamma" { "delta" } else { "gamma" };
    let text_before = std::fs::read_to_string(dropin(&server)).unwrap();
    p.try_jail(other, 600_000_000).await.unwrap();
    common::wait_until(Duration::from_secs(20), "the jail runs", || {
        server
            .jail_names()
            .is_ok_and(|j| j.iter().any(|n| n == other))
    });
    p.abort().await.unwrap();
    assert_eq!(
        trial_ended(&mut ended, Duration::from_secs(40)).await,
        (other.to_owned(), false, 0)
    );
    assert_eq!(
        std::fs::read_to_string(dropin(&server)).unwrap(),
        text_before
    );
    common::wait_until(Duration::from_secs(20), "the jail is gone", || {
        server
            .jail_names()
            .is_ok_and(|j| !j.iter().any(|n| n == other))
    });
    assert!(p.pending_recovery().await.unwrap().is_empty());
}

/// Refusals change nothing: a jail that runs already, a foreign file where
/// the drop-in goes (left byte for byte), an unprivileged caller, a bad
/// name, a timeout out of range.
#[tokio::test]
async fn refused_trials_write_nothing() {
    let (server, bus, _d, _c, p) = setup(false, None).await;
    Kind::Good.write(&server, "gamma");

    let e = p.try_jail("alpha", 0).await.unwrap_err();
    assert_eq!(
        error_name(&e),
        "org.fail2ban_healthd.Health1.Error.TryFailed"
    );
    assert!(e.to_string().contains("running already"), "{e}");
    assert!(!dropin(&server).exists());

    let foreign = "[gamma]\nenabled = false\n# the administrator's own\n";
    std::fs::write(dropin(&server), foreign).unwrap();
    let e = p.try_jail("gamma", 0).await.unwrap_err();
    assert_eq!(
        error_name(&e),
        "org.fail2ban_healthd.Health1.Error.TryFailed"
    );
    assert!(
        e.to_string().contains("not written by fail2ban-healthd"),
        "{e}"
    );
    // Checks that cannot run did not pass: `Check` says why.
    let r = p.check("gamma").await.unwrap();
    assert_eq!(field::<bool>(&r, "Ok"), Some(false), "{r:?}");
    let messages: Vec<String> = field(&r, "Messages").unwrap();
    assert!(
        messages[0].contains("not written by fail2ban-healthd"),
        "{messages:?}"
    );
    assert_eq!(std::fs::read_to_string(dropin(&server)).unwrap(), foreign);
    std::fs::remove_file(dropin(&server)).unwrap();

    let e = p.try_jail("a/b", 0).await.unwrap_err();
    assert_eq!(
        error_name(&e),
        "org.fail2ban_healthd.Health1.Error.InvalidJailName"
    );
    let e = p.try_jail("gamma", 10).await.unwrap_err();
    assert_eq!(
        error_name(&e),
        "org.fail2ban_healthd.Health1.Error.TryFailed"
    );
    assert!(e.to_string().contains("timeout"), "{e}");

    for args in [
        &["try", "gamma"][..],
        &["check", "gamma"],
        &["confirm"],
        &["abort"],
    ] {
        let out = client(&bus, true, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("NotAuthorized"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(0), "{args:?}");
    }
    assert_eq!(client(&bus, true, &["try", "gamma"]).status.code(), Some(2));
    assert!(!dropin(&server).exists());
    assert!(trial_property(&p).await.is_empty());
    assert_eq!(jails_of(&server), ["alpha", "beta"]);
    assert!(p.last_activation().await.unwrap().is_empty());
}

/// A trial reaches the state file before its drop-in is written: with the
/// state file unwritable, `Try` fails and changes nothing; once it can be
/// written again, the same trial starts.
#[tokio::test]
async fn a_trial_that_cannot_be_recorded_writes_nothing() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("state");
    std::fs::create_dir(&state_dir).unwrap();
    let state_file = state_dir.join("state.json");
    let _d = daemon(
        &bus,
        &server,
        false,
        &["--state-file", state_file.to_str().unwrap()],
    )
    .await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    Kind::Good.write(&server, "gamma");

    // A file where the state's directory was: no write can succeed, not
    // even root's.
    std::fs::remove_dir_all(&state_dir).unwrap();
    std::fs::write(&state_dir, "not a directory").unwrap();
    let e = p.try_jail("gamma", 0).await.unwrap_err();
    assert_eq!(
        error_name(&e),
        "org.fail2ban_healthd.Health1.Error.TryFailed"
    );
    assert!(e.to_string().contains("state file"), "{e}");
    assert!(!dropin(&server).exists());
    assert!(trial_property(&p).await.is_empty());
    assert_eq!(jails_of(&server), ["alpha", "beta"]);

    std::fs::remove_file(&state_dir).unwrap();
    std::fs::create_dir(&state_dir).unwrap();
    p.try_jail("gamma", 0).await.unwrap();
    let saved = std::fs::read_to_string(&state_file).unwrap();
    assert!(saved.contains("gamma"), "{saved}");
    assert!(dropin(&server).exists());
    p.confirm().await.unwrap();
}

/// The command line: `try` exits 0 when kept and 1 when rolled back, with
/// the verdict in JSON; `status` shows a running trial.
#[tokio::test]
async fn the_try_command_waits_for_the_verdict() {
    let (server, bus, _d, _c, p) = setup(false, None).await;
    Kind::Good.write(&server, "gamma");
    Kind::MissingFilter.write(&server, "bad");

    let out = client(&bus, false, &["try", "gamma", "--timeout", "2s", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["jail"], "gamma");
    assert_eq!(v["kept"], true);
    assert_eq!(v["online"], true);
    assert_eq!(
        v["deadline_at"].as_u64().unwrap() - v["started_at"].as_u64().unwrap(),
        2_000_000
    );

    let out = client(&bus, false, &["try", "bad", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("bad: FAILED") && text.contains("rolled back"),
        "{text}"
    );

    let out = client(&bus, false, &["try", "alpha"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("TryFailed"));

    p.dismiss_recovery().await.unwrap();
    p.try_jail("bad", 600_000_000).await.unwrap();
    let out = client(&bus, false, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["trial"]["jail"], "bad", "{v}");
    let out = client(&bus, false, &["status"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("trial:"));
}

/// A daemon SIGKILLed during a trial resumes it from its state file with
/// the same deadline; one whose deadline passed while it was down is
/// judged at once.
#[tokio::test]
async fn a_trial_survives_a_sigkill_of_the_daemon() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("state.json");
    let extra = ["--state-file", state_file.to_str().unwrap()];
    let mut d = daemon(&bus, &server, false, &extra).await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    Kind::Good.write(&server, "gamma");
    p.try_jail("gamma", 8_000_000).await.unwrap();
    let before = trial_property(&p).await;
    nix::sys::signal::kill(d.pid(), nix::sys::signal::Signal::SIGKILL).unwrap();
    d.wait_exit(Duration::from_secs(10));

    let d = daemon(&bus, &server, false, &extra).await;
    let (_c, p) = proxy(&bus).await;
    let mut ended = p.receive_trial_ended().await.unwrap();
    assert_eq!(trial_property(&p).await, before, "{}", d.log_text());
    assert_eq!(
        trial_ended(&mut ended, Duration::from_secs(30)).await,
        ("gamma".into(), true, 0)
    );

    // A failing jail (its log file is missing: the reload aborts, the jail
    // never runs); the daemon is killed at once and stays down past the
    // deadline. Judged at once when it is back, and rolled back.
    Kind::MissingLog.write(&server, "bad");
    let kept = std::fs::read_to_string(dropin(&server)).unwrap();
    let mut d2 = d;
    let at = p.try_jail("bad", 1_000_000).await.unwrap();
    let deadline = field::<u64>(&trial_property(&p).await, "DeadlineAt").unwrap();
    nix::sys::signal::kill(d2.pid(), nix::sys::signal::Signal::SIGKILL).unwrap();
    d2.wait_exit(Duration::from_secs(10));
    common::wait_until(Duration::from_secs(10), "the deadline passes", || {
        u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap() > deadline + 100_000
    });
    let d3 = daemon(&bus, &server, false, &extra).await;
    let (_c, p) = proxy(&bus).await;
    common::wait_until(Duration::from_secs(60), "the drop-in restored", || {
        std::fs::read_to_string(dropin(&server)).is_ok_and(|t| t == kept)
    });
    let r = common::bus::record_when(&p, "the record rolled back", |r| {
        field::<bool>(r, "RolledBack") == Some(true)
    })
    .await;
    assert_eq!(field::<String>(&r, "JailName").as_deref(), Some("bad"));
    assert_eq!(field::<u64>(&r, "ActivatedAt"), Some(at));
    assert_eq!(
        field::<bool>(&r, "AutoRolledBack"),
        Some(true),
        "{}",
        d3.log_text()
    );
    assert!(trial_property(&p).await.is_empty());
    wait_for_jails(&server, &["alpha", "beta", "gamma"]);
}

/// `Check` answers `{Ok, Messages}` without writing anything or touching
/// the server; with the checks on, `Try` refuses each failure kind the
/// same way, before the server is touched.
#[tokio::test]
async fn the_checks_catch_every_failure_kind_before_the_server_is_touched() {
    let (server, bus, d, _c, p) = setup(true, Some(&earlier_dropin())).await;
    Kind::Good.write(&server, "gamma");
    let r = p.check("gamma").await.unwrap();
    assert_eq!(field::<bool>(&r, "Ok"), Some(true), "{r:?}");
    let pid = server.pid();
    for (i, kind) in Kind::FAILURES.into_iter().enumerate() {
        let jail = format!("bad{i}");
        kind.write(&server, &jail);
        let r = p.check(&jail).await.unwrap();
        assert_eq!(field::<bool>(&r, "Ok"), Some(false), "{kind:?}: {r:?}");
        let messages: Vec<String> = field(&r, "Messages").unwrap();
        assert!(!messages.is_empty());
        let e = p.try_jail(&jail, 0).await.unwrap_err();
        assert_eq!(
            error_name(&e),
            "org.fail2ban_healthd.Health1.Error.TryFailed",
            "{kind:?}"
        );
        assert_eq!(
            std::fs::read_to_string(dropin(&server)).unwrap(),
            earlier_dropin()
        );
        assert!(trial_property(&p).await.is_empty());
        println!("{kind:?}: caught by Check: {messages:?}");
    }
    assert_eq!(jails_of(&server), ["alpha", "beta"]);
    assert_eq!(server.pid(), pid);
    assert!(
        p.last_activation().await.unwrap().is_empty(),
        "{}",
        d.log_text()
    );
    let out = client(&bus, false, &["check", "bad0", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
}

/// `try` whose daemon is SIGKILLed while the reload runs gets no answer;
/// the trial was recorded before the reload, so the restarted daemon
/// resumes it, and `try` follows it to its verdict instead of saying it
/// could not start.
#[tokio::test]
async fn try_follows_a_trial_whose_daemon_died_during_the_reload() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("state.json");
    // The reload waits for the test's word.
    let (reload, go) = server.reload_on_word();
    let extra = ["--state-file", state_file.to_str().unwrap()];
    let mut d = daemon_with_a_long_grace(&bus, &server, &reload, &extra).await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    Kind::Good.write(&server, "gamma");
    let address = bus.address.clone();
    let cli = std::thread::spawn(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_fail2ban-healthd"))
            .args([
                "try",
                "gamma",
                "--timeout",
                "20s",
                "--json",
                "--bus-address",
                &address,
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    });
    // The trial is recorded and the reload waits.
    let started = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(t) = field::<u64>(&trial_property(&p).await, "StartedAt") {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the trial starts");
    // The daemon dies during the reload: the reload command runs (it
    // waits for the word), and the state file holds the trial. The daemon
    // saves the trial off the task that writes the drop-in and starts the
    // reload, so a kill right after the trial shows can come before either
    // (both seen under load), which this test is not about.
    let script = server.dir().join("reload.sh");
    common::wait_until(Duration::from_secs(20), "the reload running", || {
        running_script(&script)
    });
    common::wait_until(Duration::from_secs(20), "the trial on disk", || {
        fail2ban_healthd::state::load(&state_file)
            .ok()
            .flatten()
            .and_then(|m| m.trial)
            .is_some_and(|t| t.jail_name == "gamma")
    });
    nix::sys::signal::kill(d.pid(), nix::sys::signal::Signal::SIGKILL).unwrap();
    d.wait_exit(Duration::from_secs(10));
    let d = daemon_with_a_long_grace(&bus, &server, &reload, &extra).await;
    std::fs::write(&go, "").unwrap();
    let out = tokio::task::spawn_blocking(move || cli.join().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}\n{}", d.log_text());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kept"], true);
    assert_eq!(v["started_at"].as_u64(), Some(started));
    assert!(jails_of(&server).contains(&"gamma".to_owned()));
}
