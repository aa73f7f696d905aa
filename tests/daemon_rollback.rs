//! `Rollback()` against a real fail2ban-server with real broken jails, on a
//! private system-type bus, called through zbus and through the
//! command-line client.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Fail2ban;
use common::bus::{Daemon, PrivateBus, client, get, proxy, record_when};
use fail2ban_healthd::rollback::MARKER;
use nix::sys::signal::Signal;

const DROPIN: &str = "zz-fail2ban-healthd-rollback.local";

fn dropin(server: &Fail2ban) -> PathBuf {
    server.dir().join("conf/jail.d").join(DROPIN)
}

/// The daemon on `bus` with rollbacks aimed at `server`'s private
/// configuration; `reload` and `start` replace the commands when given.
async fn daemon(
    bus: &PrivateBus,
    server: &Fail2ban,
    reload: Option<&str>,
    start: Option<&str>,
) -> Daemon {
    common::bus::rollback_daemon(bus, server, &dropin(server), reload, start, &[]).await
}

fn error_name(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, _, _) => name.as_str().to_owned(),
        other => format!("{other}"),
    }
}

fn jails_of(server: &Fail2ban) -> Vec<String> {
    let mut names = server.jail_names().unwrap();
    names.sort();
    names
}

fn assert_disables_only(path: &Path, jails: &[&str]) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.starts_with(MARKER), "{text}");
    let sections: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix('[').and_then(|l| l.strip_suffix(']')))
        .collect();
    assert_eq!(sections, jails, "{text}");
    assert_eq!(
        text.matches("enabled = false").count(),
        jails.len(),
        "{text}"
    );
    assert!(!text.contains("enabled = true"));
}

/// The story administrators meet: a jail whose log file is missing makes
/// fail2ban exit 255 at its restart; the crash is attributed, `Rollback`
/// disables that jail alone and starts fail2ban again with the others.
#[tokio::test]
async fn a_jail_that_kills_fail2ban_is_rolled_back_and_fail2ban_returns() {
    let mut server = Fail2ban::start();
    let bus = PrivateBus::start();
    let d = daemon(&bus, &server, None, None).await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());

    // The web UI enables "gamma", whose log file does not exist, and
    // restarts fail2ban.
    server.write_jail_d(
        "gamma",
        &format!(
            "[gamma]\nenabled = true\nfilter = t\naction = t\nlogpath = {}/log/missing.log\n",
            server.dir().display()
        ),
    );
    p.register_activation("gamma").await.unwrap();
    server.signal_and_wait(Signal::SIGTERM);
    assert_eq!(server.spawn_expecting_exit(), Some(255));
    let r = record_when(&p, "a cause-1 record", |r| !r.is_empty()).await;
    assert_eq!(get::<String>(&r, "JailName"), "gamma");
    assert_eq!(get::<u32>(&r, "Cause"), 1);
    assert!(!get::<bool>(&r, "RolledBack"));
    assert!(!p.online().await.unwrap());

    // Rolled back through the command-line client, as root.
    let out = client(&bus, false, &["rollback", "--json"]);
    assert!(out.status.success(), "{out:?}\n{}", d.log_text());
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["jail"], "gamma");
    assert_eq!(answer["restarted"], true);
    assert_eq!(answer["online"], true);
    assert_eq!(answer["active_jails"], 2);
    assert_eq!(
        answer["dropin_path"],
        dropin(&server).display().to_string().as_str()
    );
    assert_disables_only(&dropin(&server), &["gamma"]);
    assert_eq!(jails_of(&server), ["alpha", "beta"]);
    // The web UI's own file is untouched.
    assert!(
        std::fs::read_to_string(server.dir().join("conf/jail.d/gamma.local"))
            .unwrap()
            .contains("enabled = true")
    );

    let r = record_when(&p, "the record rolled back and recovered", |r| {
        get::<bool>(r, "RolledBack") && get::<bool>(r, "Recovered")
    })
    .await;
    assert_eq!(get::<String>(&r, "JailName"), "gamma");
    assert!(p.online().await.unwrap());
    assert_eq!(p.active_jails().await.unwrap(), 2);

    // A second rollback has nothing to do.
    let e = p.rollback().await.unwrap_err();
    assert_eq!(
        error_name(&e),
        "org.fail2ban_healthd.Health1.Error.NoPendingRecovery"
    );
    let log = d.log_text();
    assert!(log.contains("rollback_started"), "{log}");
    assert!(log.contains("uid=0"), "{log}");
}

/// An invalid failregex noticed only by the server: on reload, every jail
/// that ran stops (cause 3). The rollback reloads without the bad jail and
/// the vanished jails come back.
#[tokio::test]
async fn vanished_jails_come_back_after_a_rollback_by_reload() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    let d = daemon(&bus, &server, None, None).await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    std::fs::write(
        server.dir().join("conf/filter.d/bad.conf"),
        "[Definition]\nfailregex = ^(unclosed <HOST>\ndatepattern = {NONE}\n",
    )
    .unwrap();
    std::fs::File::create(server.dir().join("log/delta.log")).unwrap();
    server.write_jail_d(
        "delta",
        &format!(
            "[delta]\nenabled = true\nfilter = bad\naction = t\nlogpath = {}/log/delta.log\n",
            server.dir().display()
        ),
    );
    p.register_activation("delta").await.unwrap();
    // The client reports NOK; the server stays up without its jails.
    let out = std::process::Command::new(common::require_program("fail2ban-client", "fail2ban"))
        .args(server.client_command("reload").split_whitespace().skip(1))
        .output()
        .unwrap();
    drop(out);
    let r = record_when(&p, "a cause-3 record", |r| !r.is_empty()).await;
    assert_eq!(get::<u32>(&r, "Cause"), 3, "{r:?}");
    assert_eq!(get::<String>(&r, "JailName"), "delta");
    let mut vanished = get::<Vec<String>>(&r, "VanishedJails");
    vanished.sort();
    assert_eq!(vanished, ["alpha", "beta"]);

    let answer = p.rollback().await.unwrap();
    assert!(get::<bool>(&answer, "Restarted"));
    assert!(get::<bool>(&answer, "Online"));
    assert_eq!(get::<u32>(&answer, "ActiveJails"), 2, "{}", d.log_text());
    assert_eq!(jails_of(&server), ["alpha", "beta"]);
    assert_disables_only(&dropin(&server), &["delta"]);
    record_when(&p, "the record resolved", |r| {
        get::<bool>(r, "Recovered") && get::<bool>(r, "RolledBack")
    })
    .await;
}

/// Who may not, and what cannot be done: nothing is written, the record
/// stays, and a rollback that failed can be tried again.
#[tokio::test]
async fn refused_and_failed_rollbacks_change_nothing_they_should_not() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    // A reload command the test controls: failing first, working later.
    let script = server.dir().join("reload.sh");
    std::fs::write(&script, "echo 'no way to reload here' >&2\nexit 3\n").unwrap();
    let reload = format!("/bin/sh {}", script.display());
    let d = daemon(&bus, &server, Some(&reload), None).await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());

    // No record yet.
    let e = p.rollback().await.unwrap_err();
    assert_eq!(
        error_name(&e),
        "org.fail2ban_healthd.Health1.Error.NoPendingRecovery"
    );

    // A jail that never starts: cause 2.
    p.register_activation("gamma").await.unwrap();
    record_when(&p, "a cause-2 record", |r| !r.is_empty()).await;

    // Not a manager: refused with advice, nothing written.
    let out = client(&bus, true, &["rollback"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NotAuthorized"), "{err}");
    assert!(err.contains("sudo"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!dropin(&server).exists());

    // Someone else's file where the drop-in goes: left as it is.
    std::fs::write(dropin(&server), "[sshd]\nenabled = true\n").unwrap();
    let e = p.rollback().await.unwrap_err();
    assert_eq!(
        error_name(&e),
        "org.fail2ban_healthd.Health1.Error.RollbackFailed"
    );
    assert!(e.to_string().contains("left untouched"), "{e}");
    assert_eq!(
        std::fs::read_to_string(dropin(&server)).unwrap(),
        "[sshd]\nenabled = true\n"
    );
    std::fs::remove_file(dropin(&server)).unwrap();

    // The reload fails: the caller learns why; the record is not marked.
    let e = p.rollback().await.unwrap_err();
    assert_eq!(
        error_name(&e),
        "org.fail2ban_healthd.Health1.Error.RollbackFailed"
    );
    assert!(e.to_string().contains("no way to reload here"), "{e}");
    assert!(!get::<bool>(
        &p.pending_recovery().await.unwrap(),
        "RolledBack"
    ));

    // Fixed, it works on the next try, and the jail is not expected any
    // more: the record resolves.
    std::fs::write(
        &script,
        format!("exec {}\n", server.client_command("reload")),
    )
    .unwrap();
    let answer = p.rollback().await.unwrap();
    assert!(get::<bool>(&answer, "Online"), "{}", d.log_text());
    assert_disables_only(&dropin(&server), &["gamma"]);
    record_when(&p, "the record resolved", |r| {
        get::<bool>(r, "Recovered") && get::<bool>(r, "RolledBack")
    })
    .await;
    assert_eq!(jails_of(&server), ["alpha", "beta"]);
}

/// A rollback after which fail2ban still does not answer says so, leaves
/// the record not rolled back, and may be tried again.
#[tokio::test]
async fn a_rollback_after_which_fail2ban_stays_down_can_be_tried_again() {
    let mut server = Fail2ban::start();
    let bus = PrivateBus::start();
    let dropin = dropin(&server);
    let d = Daemon::start(
        &bus,
        &server.socket,
        &[
            "--crash-window",
            "60s",
            "--rollback-timeout",
            "2s",
            "--rollback-dropin",
            dropin.to_str().unwrap(),
            // Succeeds, and starts nothing.
            "--fail2ban-start-command",
            "/bin/true",
        ],
        &[],
    )
    .await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    p.register_activation("gamma").await.unwrap();
    server.signal_and_wait(Signal::SIGKILL);
    record_when(&p, "a cause-1 record", |r| !r.is_empty()).await;

    for _ in 0..2 {
        let out = client(&bus, false, &["rollback"]);
        assert_eq!(out.status.code(), Some(1), "{out:?}\n{}", d.log_text());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("rolled back gamma"), "{text}");
        assert!(text.contains("NOT answering"), "{text}");
        let r = p.pending_recovery().await.unwrap();
        assert!(!get::<bool>(&r, "RolledBack"), "{r:?}");
        assert!(!get::<bool>(&r, "Recovered"));
    }
    assert_disables_only(&dropin, &["gamma"]);
}

/// A manager who registers a bogus jail, then a healthy one, then starts a
/// rollback and dismisses the record at once, must not get the healthy
/// jail blamed by the rollback's own restart and then disabled.
#[tokio::test]
async fn a_running_rollback_keeps_its_record_and_its_restart_blames_nobody() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    // The reload waits for the test's word, so that calls land while the
    // rollback runs.
    let (reload, go) = server.reload_on_word();
    let d = daemon(&bus, &server, Some(&reload), None).await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    let mut crashes = p.receive_activation_crash_detected().await.unwrap();

    p.register_activation("bogus").await.unwrap();
    let r = record_when(&p, "a cause-2 record", |r| !r.is_empty()).await;
    assert_eq!(get::<String>(&r, "JailName"), "bogus");
    assert!(!get::<bool>(&r, "RanBefore"), "{r:?}");
    use futures_util::StreamExt as _;
    crashes.next().await.unwrap();
    p.register_activation("alpha").await.unwrap();

    let (_c2, p2) = proxy(&bus).await;
    let rollback = tokio::spawn(async move { p2.rollback().await });
    let started = Instant::now();
    while !d.log_text().contains("rollback_started") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the rollback never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = p.dismiss_recovery().await.unwrap_err();
    assert_eq!(
        error_name(&e),
        "org.fail2ban_healthd.Health1.Error.RollbackInProgress"
    );
    let e = p.rollback().await.unwrap_err();
    assert_eq!(
        error_name(&e),
        "org.fail2ban_healthd.Health1.Error.RollbackInProgress"
    );
    assert_eq!(
        get::<String>(&p.pending_recovery().await.unwrap(), "JailName"),
        "bogus"
    );
    std::fs::write(&go, b"").unwrap();
    let answer = rollback.await.unwrap().unwrap();
    assert!(get::<bool>(&answer, "Online"), "{}", d.log_text());
    assert_eq!(get::<String>(&answer, "JailName"), "bogus");
    let r = record_when(&p, "the record rolled back and resolved", |r| {
        get::<bool>(r, "RolledBack") && get::<bool>(r, "Recovered")
    })
    .await;
    assert_eq!(get::<String>(&r, "JailName"), "bogus");
    // Settled: the healthy jail runs and nothing blamed it.
    assert!(p.probe().await.unwrap());
    assert_eq!(jails_of(&server), ["alpha", "beta"]);
    p.dismiss_recovery().await.unwrap();
    let e = p.rollback().await.unwrap_err();
    assert_eq!(
        error_name(&e),
        "org.fail2ban_healthd.Health1.Error.NoPendingRecovery"
    );
    // Nothing blamed alpha: the probe above came after the reload, and a
    // step's events are logged before it is published.
    let log = d.log_text();
    let blamed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("activation_crash_detected"))
        .collect();
    assert!(
        blamed.len() == 1 && blamed[0].contains("jail=bogus"),
        "a record was made: {blamed:?} {:?}",
        p.pending_recovery().await
    );
    assert_disables_only(&dropin(&server), &["bogus"]);
}

/// A jail that ran before its activation protected the machine: even
/// root's `Rollback` refuses it, and nothing is written.
#[tokio::test]
async fn a_jail_that_ran_before_its_activation_is_never_rolled_back() {
    let mut server = Fail2ban::start();
    let bus = PrivateBus::start();
    let d = daemon(&bus, &server, None, None).await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    // Activated again, say after its filter was edited; then fail2ban dies.
    p.register_activation("alpha").await.unwrap();
    server.signal_and_wait(Signal::SIGKILL);
    let r = record_when(&p, "a cause-1 record", |r| !r.is_empty()).await;
    assert_eq!(get::<String>(&r, "JailName"), "alpha");
    // Applets read this to leave out their Roll back action.
    assert!(get::<bool>(&r, "RanBefore"), "{r:?}");

    let e = p.rollback().await.unwrap_err();
    assert_eq!(
        error_name(&e),
        "org.fail2ban_healthd.Health1.Error.RollbackFailed"
    );
    assert!(e.to_string().contains("running before"), "{e}");
    assert!(!dropin(&server).exists(), "nothing is written");
    let out = client(&bus, false, &["rollback"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!dropin(&server).exists());
    let r = p.pending_recovery().await.unwrap();
    assert!(!get::<bool>(&r, "RolledBack"), "{r:?}");
    assert!(!d.log_text().contains("rollback_started"));
    // The record is the administrator's to dismiss.
    p.dismiss_recovery().await.unwrap();
}
