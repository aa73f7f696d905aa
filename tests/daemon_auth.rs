//! Who may manage and who may roll back, with the daemon binary on a
//! private system-type dbus-daemon and a scripted polkit authority on the
//! same bus (a real polkitd cannot be made slow or told what to answer).
//! Callers run as other uids through setpriv, with dbus-send (which never
//! allows interactive authorization) or busctl (which says whether it
//! does). dbus-daemon accepts only users it can look up, so the callers
//! are Debian's base-passwd users: nobody (65534, whose group is nogroup),
//! daemon (1), bin (2), sys (3), games (5) ... uucp (10); mail (8) is in
//! the group mail (8).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use common::bus::{Daemon, FakePolkit, PrivateBus, Verdict, proxy};
use fail2ban_healthd::bus::auth::Limits;

const NAME: &str = "org.fail2ban_healthd.Health1";
const PATH: &str = "/org/fail2ban_healthd/Health1";
const MANAGE: &str = "org.fail2ban_healthd.manage";
const ROLLBACK: &str = "org.fail2ban_healthd.rollback";

struct Tools {
    setpriv: PathBuf,
    dbus_send: PathBuf,
    busctl: PathBuf,
}

fn tools() -> Tools {
    Tools {
        setpriv: common::require_program("setpriv", "util-linux"),
        dbus_send: common::require_program("dbus-send", "dbus-bin"),
        busctl: common::require_program("busctl", "systemd"),
    }
}

impl Tools {
    fn as_user(&self, uid: u32, gid: u32) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.setpriv);
        c.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// `method` called by dbus-send (no interactive authorization) as
    /// `uid`:`gid`.
    fn dbus_send(
        &self,
        bus: &PrivateBus,
        uid: u32,
        gid: u32,
        method: &str,
        args: &[&str],
    ) -> tokio::process::Command {
        let mut c = self.as_user(uid, gid);
        c.arg(&self.dbus_send)
            .arg(format!("--bus={}", bus.address))
            .args(["--print-reply", "--reply-timeout=120000"])
            .arg(format!("--dest={NAME}"))
            .arg(PATH)
            .arg(format!("{NAME}.{method}"))
            .args(args);
        c
    }

    /// `method` called by busctl as `uid`:`gid`, allowing interactive
    /// authorization or not.
    fn busctl(
        &self,
        bus: &PrivateBus,
        uid: u32,
        gid: u32,
        interactive: bool,
        method: &str,
        args: &[&str],
    ) -> tokio::process::Command {
        let mut c = self.as_user(uid, gid);
        c.arg(&self.busctl)
            .arg(format!("--address={}", bus.address))
            .arg(format!(
                "--allow-interactive-authorization={}",
                if interactive { "yes" } else { "no" }
            ))
            .args(["--timeout=120", "call", NAME, PATH, NAME, method])
            .args(args);
        c
    }
}

async fn run(mut c: tokio::process::Command) -> (Output, Duration) {
    let start = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(120), c.output())
        .await
        .expect("the call ended")
        .unwrap();
    (out, start.elapsed())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn not_authorized(out: &Output) -> String {
    assert!(!out.status.success(), "{out:?}");
    let err = stderr(out);
    assert!(
        err.contains("org.fail2ban_healthd.Health1.Error.NotAuthorized"),
        "{err}"
    );
    err
}

async fn daemon(bus: &PrivateBus, dir: &tempfile::TempDir, args: &[&str]) -> Daemon {
    Daemon::start(bus, &dir.path().join("no-fail2ban.sock"), args, &[]).await
}

/// Starts `count` calls of RegisterActivation as uid 65534, each on a
/// connection (and process) of its own, all at once; returns each with
/// when it started.
fn start_flood(t: &Tools, bus: &PrivateBus, count: usize) -> Vec<(Instant, tokio::process::Child)> {
    (0..count)
        .map(|_| {
            let mut c = t.dbus_send(bus, 65534, 65534, "RegisterActivation", &["string:alpha"]);
            let start = Instant::now();
            let child = c.spawn().unwrap();
            (start, child)
        })
        .collect()
}

/// An administrator that polkit authorizes (uid 1) is answered at once,
/// and the activation is recorded.
async fn an_administrator_is_answered_at_once(t: &Tools, bus: &PrivateBus, d: &Daemon) {
    let (out, latency) =
        run(t.busctl(bus, 1, 1, false, "RegisterActivation", &["s", "beta"])).await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("t "),
        "{out:?}"
    );
    println!(
        "administrator's RegisterActivation during the flood: {} ms (setpriv + busctl, whole process)",
        latency.as_millis()
    );
    assert!(
        latency < Limits::NON_INTERACTIVE,
        "the administrator waited {latency:?}"
    );
    let (_c, p) = proxy(bus).await;
    let shown = p.last_activation().await.unwrap();
    assert_eq!(
        common::bus::get::<String>(&shown, "JailName"),
        "beta",
        "{}",
        d.log_text()
    );
}

/// Every call of the flood is refused, over the cap or timed out in
/// polkit; returns how many timed out.
async fn every_flood_call_is_refused(flood: Vec<(Instant, tokio::process::Child)>) -> usize {
    let count = flood.len();
    let mut over_cap = 0;
    let mut timed_out = 0;
    let mut slowest_refusal = Duration::ZERO;
    for (start, child) in flood {
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("a flood call ended")
            .unwrap();
        let err = not_authorized(&out);
        if err.contains("too many authorization checks pending (4 for uid 65534)") {
            over_cap += 1;
            slowest_refusal = slowest_refusal.max(start.elapsed());
        } else if err.contains("polkit did not answer within 5s") {
            timed_out += 1;
        } else {
            panic!("unexpected answer: {err}");
        }
    }
    println!(
        "flood of {count}: {over_cap} refused over the cap, {timed_out} timed out in polkit and cancelled"
    );
    assert_eq!(over_cap + timed_out, count);
    assert!(timed_out >= Limits::PER_USER, "{timed_out}");
    assert!(over_cap >= count / 2, "{over_cap}");
    timed_out
}

/// Every check of uid 65534 that reached polkit timed out, and was
/// cancelled by the daemon with its own cancellation id; the
/// administrator was asked about without interaction.
async fn every_timed_out_check_was_cancelled(polkit: &FakePolkit, timed_out: usize) {
    let checks = polkit.checks();
    let flooded: Vec<_> = checks.iter().filter(|c| c.uid == 65534).collect();
    assert_eq!(flooded.len(), timed_out);
    let ids: HashSet<_> = flooded.iter().map(|c| c.cancellation_id.clone()).collect();
    assert_eq!(ids.len(), flooded.len(), "cancellation ids are unique");
    assert!(ids.iter().all(|id| !id.is_empty()));
    polkit
        .wait_for(
            "every timed-out check cancelled",
            Duration::from_secs(30),
            |p| p.cancels().len() == timed_out,
        )
        .await;
    let cancels = polkit.cancels();
    let cancelled: HashSet<_> = cancels.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(cancelled, ids);
    for (id, asker) in &cancels {
        let check = flooded.iter().find(|c| &c.cancellation_id == id).unwrap();
        assert_eq!(asker, &check.asker, "cancelled by the daemon that asked");
    }
    assert_eq!(polkit.hanging(), 0);
    assert!(
        checks
            .iter()
            .any(|c| c.uid == 1 && c.action == MANAGE && c.flags == 0)
    );
}

/// 500 calls from uid 65534 against a polkit that never answers it: at
/// most 4 of them wait on polkit at once, the others are refused at once,
/// each waiting one is cancelled in polkit at its limit, and an
/// administrator that polkit authorizes (another uid) is answered at once.
#[tokio::test]
async fn a_flood_of_slow_checks_leaves_room_for_an_administrator() {
    const FLOOD: usize = 500;
    let t = tools();
    let bus = PrivateBus::with_polkit();
    let polkit = FakePolkit::start(&bus, |uid, _| match uid {
        65534 => Verdict::Hang,
        1 => Verdict::Allow,
        _ => Verdict::Deny,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&bus, &dir, &[]).await;

    let flood = start_flood(&t, &bus, FLOOD);
    polkit
        .wait_for(
            "4 checks of uid 65534 pending",
            Duration::from_secs(60),
            |p| p.hanging() == Limits::PER_USER,
        )
        .await;
    an_administrator_is_answered_at_once(&t, &bus, &d).await;
    let timed_out = every_flood_call_is_refused(flood).await;
    assert_eq!(polkit.most_hanging(65534), Limits::PER_USER);
    every_timed_out_check_was_cancelled(&polkit, timed_out).await;
    let log = d.log_text();
    assert!(log.contains("polkit_check_refused_over_cap"), "{log}");
    assert!(log.contains("polkit_check_timed_out"), "{log}");
}

/// polkit may ask for a password only when the caller allows interactive
/// authorization; without it, a check that would need authentication is
/// refused with a message that says so.
#[tokio::test]
async fn the_interactive_flag_reaches_polkit_only_when_the_caller_sets_it() {
    let t = tools();
    let bus = PrivateBus::with_polkit();
    let polkit = FakePolkit::start(&bus, |uid, _| match uid {
        1 => Verdict::Allow,
        2 => Verdict::Challenge,
        _ => Verdict::Deny,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let _d = daemon(&bus, &dir, &[]).await;

    let (out, _) = run(t.busctl(&bus, 1, 1, true, "RegisterActivation", &["s", "alpha"])).await;
    assert!(out.status.success(), "{out:?}");
    let (out, _) = run(t.busctl(&bus, 1, 1, false, "RegisterActivation", &["s", "alpha"])).await;
    assert!(out.status.success(), "{out:?}");
    let (out, _) = run(t.dbus_send(&bus, 1, 1, "RegisterActivation", &["string:alpha"])).await;
    assert!(out.status.success(), "{out:?}");
    let flags: Vec<_> = polkit
        .checks()
        .iter()
        .map(|c| (c.uid, c.action.clone(), c.flags))
        .collect();
    assert_eq!(
        flags,
        [
            (1, MANAGE.to_string(), 1),
            (1, MANAGE.to_string(), 0),
            (1, MANAGE.to_string(), 0)
        ]
    );

    let (out, _) = run(t.dbus_send(&bus, 2, 2, "DismissRecovery", &[])).await;
    let err = not_authorized(&out);
    assert!(
        err.contains("polkit requires authentication for org.fail2ban_healthd.manage")
            && err.contains("allowing interactive authorization"),
        "{err}"
    );
}

/// A check polkit does not answer is cancelled in polkit (with the id it
/// was started with) at the non-interactive limit; one that allows
/// interaction has the longer limit and is still waiting then.
#[tokio::test]
async fn a_check_that_times_out_is_cancelled_in_polkit() {
    let t = tools();
    let bus = PrivateBus::with_polkit();
    let polkit = FakePolkit::start(&bus, |uid, _| match uid {
        65534 | 1 => Verdict::Hang,
        _ => Verdict::Deny,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(&bus, &dir, &[]).await;

    let mut interactive = t
        .busctl(&bus, 1, 1, true, "DismissRecovery", &[])
        .spawn()
        .unwrap();
    polkit
        .wait_for("the interactive check", Duration::from_secs(30), |p| {
            p.hanging() == 1
        })
        .await;
    let (out, took) = run(t.dbus_send(&bus, 65534, 65534, "DismissRecovery", &[])).await;
    let err = not_authorized(&out);
    assert!(err.contains("polkit did not answer within 5s"), "{err}");
    assert!(took >= Limits::NON_INTERACTIVE, "{took:?}");
    assert!(took < Duration::from_secs(60), "{took:?}");

    let checks = polkit.checks();
    assert_eq!(checks.len(), 2, "{checks:?}");
    let (slow, waiting) = (&checks[1], &checks[0]);
    assert_eq!((slow.uid, slow.flags), (65534, 0));
    assert_eq!((waiting.uid, waiting.flags), (1, 1));
    assert_ne!(slow.cancellation_id, waiting.cancellation_id);
    polkit
        .wait_for("the cancellation", Duration::from_secs(10), |p| {
            !p.cancels().is_empty()
        })
        .await;
    assert_eq!(
        polkit.cancels(),
        [(slow.cancellation_id.clone(), slow.asker.clone())],
        "only the non-interactive check, by its id, from the daemon"
    );
    // The interactive one still waits, for a person to answer polkit.
    assert_eq!(polkit.hanging(), 1);
    assert!(interactive.try_wait().unwrap().is_none());
    assert!(d.log_text().contains("polkit_check_timed_out"));
    interactive.kill().await.unwrap();
}

/// With the global cap of pending polkit checks reached, another caller
/// is refused at once with the reason, while root and group members,
/// who never wait on polkit, are answered as usual.
#[tokio::test]
async fn over_the_global_cap_calls_are_refused_at_once_and_managers_never_wait() {
    // Eight users with four checks each fill the 32 places.
    const FLOODERS: [u32; 8] = [1, 2, 3, 5, 6, 7, 8, 9];
    assert_eq!(FLOODERS.len() * Limits::PER_USER, Limits::GLOBAL);
    let t = tools();
    let bus = PrivateBus::with_polkit();
    let polkit = FakePolkit::start(&bus, |uid, _| {
        if FLOODERS.contains(&uid) {
            Verdict::Hang
        } else {
            Verdict::Allow
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let _d = daemon(&bus, &dir, &["--manage-group", "nogroup"]).await;

    let waiting: Vec<_> = FLOODERS
        .iter()
        .flat_map(|&uid| std::iter::repeat_n(uid, Limits::PER_USER))
        .map(|uid| {
            t.dbus_send(&bus, uid, uid, "RegisterActivation", &["string:alpha"])
                .spawn()
                .unwrap()
        })
        .collect();
    polkit
        .wait_for("32 pending checks", Duration::from_secs(60), |p| {
            p.hanging() == Limits::GLOBAL
        })
        .await;

    // polkit would allow uid 10, but no check is started for it.
    let (out, took) = run(t.dbus_send(&bus, 10, 10, "RegisterActivation", &["string:beta"])).await;
    let err = not_authorized(&out);
    assert!(
        err.contains("too many authorization checks pending (32 for all callers)"),
        "{err}"
    );
    assert!(took < Limits::NON_INTERACTIVE, "refused after {took:?}");
    assert!(polkit.checks().iter().all(|c| c.uid != 10));

    // A member of manage_group, and root.
    let (out, took) =
        run(t.dbus_send(&bus, 65534, 65534, "RegisterActivation", &["string:gamma"])).await;
    assert!(out.status.success(), "{out:?}");
    assert!(took < Limits::NON_INTERACTIVE, "{took:?}");
    let (_c, p) = proxy(&bus).await;
    p.register_activation("delta").await.unwrap();
    assert!(polkit.checks().iter().all(|c| FLOODERS.contains(&c.uid)));
    assert_eq!(polkit.hanging(), Limits::GLOBAL);

    for child in waiting {
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("a waiting call ended")
            .unwrap();
        let err = not_authorized(&out);
        assert!(err.contains("polkit did not answer within 5s"), "{err}");
    }
    polkit
        .wait_for("every check cancelled", Duration::from_secs(30), |p| {
            p.cancels().len() == Limits::GLOBAL
        })
        .await;
    // The places came back: uid 10 is now asked, and allowed.
    let (out, _) = run(t.dbus_send(&bus, 10, 10, "RegisterActivation", &["string:beta"])).await;
    assert!(out.status.success(), "{out:?}");
    assert!(polkit.checks().iter().any(|c| c.uid == 10));
}

/// `method` called by dbus-send as `uid`:`gid` (RegisterActivation with
/// jail alpha).
async fn call_as(t: &Tools, bus: &PrivateBus, uid: u32, gid: u32, method: &str) -> Output {
    let args: &[&str] = if method == "RegisterActivation" {
        &["string:alpha"]
    } else {
        &[]
    };
    run(t.dbus_send(bus, uid, gid, method, args)).await.0
}

/// The call was let through and found no record.
fn no_record(out: &Output) {
    assert!(!out.status.success());
    let err = stderr(out);
    assert!(
        err.contains("org.fail2ban_healthd.Health1.Error.NoPendingRecovery"),
        "{err}"
    );
}

/// A manage_group member (nobody) manages but may not roll back.
async fn a_manage_group_member_may_not_roll_back(t: &Tools, bus: &PrivateBus) {
    let out = call_as(t, bus, 65534, 65534, "RegisterActivation").await;
    assert!(out.status.success(), "{out:?}");
    let out = call_as(t, bus, 65534, 65534, "DismissRecovery").await;
    no_record(&out);
    let out = call_as(t, bus, 65534, 65534, "Rollback").await;
    let err = not_authorized(&out);
    assert!(
        err.contains("may not roll back")
            && err.contains("rollback_group")
            && err.contains(ROLLBACK),
        "{err}"
    );
}

/// A rollback_group member (mail) rolls back but may not manage.
async fn a_rollback_group_member_may_not_manage(t: &Tools, bus: &PrivateBus) {
    let out = call_as(t, bus, 8, 8, "Rollback").await;
    no_record(&out);
    let out = call_as(t, bus, 8, 8, "RegisterActivation").await;
    let err = not_authorized(&out);
    assert!(
        err.contains("may not manage") && err.contains(MANAGE),
        "{err}"
    );
}

/// polkit allows uid 1 to manage, uid 2 to roll back, and nothing else.
async fn polkit_grants_each_right_alone(t: &Tools, bus: &PrivateBus) {
    let out = call_as(t, bus, 1, 1, "RegisterActivation").await;
    assert!(out.status.success(), "{out:?}");
    let out = call_as(t, bus, 1, 1, "DismissRecovery").await;
    no_record(&out);
    let out = call_as(t, bus, 1, 1, "Rollback").await;
    not_authorized(&out);
    let out = call_as(t, bus, 2, 2, "Rollback").await;
    no_record(&out);
    let out = call_as(t, bus, 2, 2, "DismissRecovery").await;
    not_authorized(&out);
}

/// manage_group does not grant Rollback, rollback_group grants only
/// Rollback, and polkit is asked for the rollback action for Rollback and
/// for the manage action for the others.
#[tokio::test]
async fn manage_and_rollback_are_separate_rights() {
    let t = tools();
    let bus = PrivateBus::with_polkit();
    let polkit = FakePolkit::start(&bus, |uid, action| match (uid, action) {
        (1, MANAGE) | (2, ROLLBACK) => Verdict::Allow,
        _ => Verdict::Deny,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // nogroup (65534) manages; mail (8) rolls back.
    let _d = daemon(
        &bus,
        &dir,
        &["--manage-group", "nogroup", "--rollback-group", "mail"],
    )
    .await;
    a_manage_group_member_may_not_roll_back(&t, &bus).await;
    a_rollback_group_member_may_not_manage(&t, &bus).await;
    polkit_grants_each_right_alone(&t, &bus).await;

    let asked: Vec<_> = polkit
        .checks()
        .iter()
        .map(|c| (c.uid, c.action.clone()))
        .collect();
    assert_eq!(
        asked,
        [
            (65534, ROLLBACK.to_string()),
            (8, MANAGE.to_string()),
            (1, MANAGE.to_string()),
            (1, MANAGE.to_string()),
            (1, ROLLBACK.to_string()),
            (2, ROLLBACK.to_string()),
            (2, MANAGE.to_string()),
        ]
    );
}

#[test]
fn an_unknown_rollback_group_is_a_one_line_error_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let never = format!("unix:path={}", dir.path().join("no-bus").display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fail2ban-healthd"))
        .args(["run", "--log", "stderr", "--bus-address", &never])
        .args(["--rollback-group", "no-such-group-here"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("rollback_group"), "{err}");
    assert!(err.contains("no-such-group-here"), "{err}");
}

/// The command-line client asks polkit for interaction only on a terminal
/// (here a pseudo-terminal from `script`), never from a script; its hint
/// names the group of the right that was missing.
#[tokio::test]
async fn the_client_allows_interaction_only_on_a_terminal() {
    let t = tools();
    let script = common::require_program("script", "bsdutils");
    let bus = PrivateBus::with_polkit();
    let polkit = FakePolkit::start(&bus, |uid, _| match uid {
        1 => Verdict::Allow,
        _ => Verdict::Deny,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let _d = daemon(&bus, &dir, &[]).await;
    let exe = env!("CARGO_BIN_EXE_fail2ban-healthd");
    let words = format!("{exe} activate alpha --bus-address {}", bus.address);

    let mut on_tty = t.as_user(1, 1);
    on_tty.arg(&script).args(["-qec", &words, "/dev/null"]);
    let (out, _) = run(on_tty).await;
    assert!(out.status.success(), "{out:?}");
    let mut piped = t.as_user(1, 1);
    piped.args(words.split(' '));
    let (out, _) = run(piped).await;
    assert!(out.status.success(), "{out:?}");
    let flags: Vec<u32> = polkit.checks().iter().map(|c| c.flags).collect();
    assert_eq!(flags, [1, 0], "terminal, then no terminal");

    let mut denied = t.as_user(65534, 65534);
    denied
        .arg(exe)
        .args(["rollback", "--bus-address", &bus.address]);
    let (out, _) = run(denied).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.starts_with("fail2ban-healthd: NotAuthorized")
            && err.contains("rollback_group")
            && err.contains("sudo")
            && err.contains("org.fail2ban_healthd.rollback"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
