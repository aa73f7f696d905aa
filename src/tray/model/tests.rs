//! The model's stories: what each step of the daemon announces, and what
//! the item shows after it.

use chrono::Local;
use zbus::Variant;

use super::view::trial_line;
use super::words::ago;
use super::*;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_800_000_000 + s, 0).unwrap()
}

fn us(s: i64) -> u64 {
    u64::try_from(t(s).timestamp_micros()).unwrap()
}

fn v<T: Into<Variant<'static>>>(x: T) -> OwnedVariant {
    OwnedVariant::try_from(x.into()).unwrap()
}

fn online(jails: u32) -> HashMap<String, OwnedVariant> {
    HashMap::from([
        ("Online".to_string(), v(true)),
        ("OfflineReason".to_string(), v(0u32)),
        ("Version".to_string(), v("1.0.2")),
        ("ActiveJails".to_string(), v(jails)),
        ("LastProbeTimestamp".to_string(), v(us(0))),
        (
            "PendingRecovery".to_string(),
            v(HashMap::<String, Variant<'static>>::new()),
        ),
    ])
}

fn offline(reason: u32) -> HashMap<String, OwnedVariant> {
    HashMap::from([
        ("Online".to_string(), v(false)),
        ("OfflineReason".to_string(), v(reason)),
        ("Version".to_string(), v("")),
        ("ActiveJails".to_string(), v(0u32)),
    ])
}

fn record(
    jail: &str,
    detected: i64,
    recovered: bool,
    extra: &[(&str, Variant<'static>)],
) -> HashMap<String, OwnedVariant> {
    let mut d: HashMap<String, Variant<'static>> = HashMap::from([
        ("JailName".to_string(), Variant::from(jail.to_string())),
        ("ActivatedAt".to_string(), Variant::from(us(detected - 2))),
        ("DetectedAt".to_string(), Variant::from(us(detected))),
        ("Recovered".to_string(), Variant::from(recovered)),
        (
            "RecoveredAt".to_string(),
            Variant::from(if recovered { us(detected + 5) } else { 0 }),
        ),
        ("Cause".to_string(), Variant::from(1u32)),
        ("OfflineReason".to_string(), Variant::from(3u32)),
        (
            "SuspectJails".to_string(),
            Variant::from(vec![jail.to_string()]),
        ),
        ("RolledBack".to_string(), Variant::from(false)),
        ("RanBefore".to_string(), Variant::from(false)),
    ]);
    for (k, x) in extra {
        d.insert((*k).to_string(), x.try_clone().unwrap());
    }
    HashMap::from([("PendingRecovery".to_string(), v(d))])
}

fn merged(
    a: HashMap<String, OwnedVariant>,
    b: HashMap<String, OwnedVariant>,
) -> HashMap<String, OwnedVariant> {
    a.into_iter().chain(b).collect()
}

fn actions(view: &View) -> Vec<(String, bool)> {
    view.menu
        .iter()
        .filter_map(|e| match e {
            Entry::Item { label, enabled, .. } => Some((label.clone(), *enabled)),
            _ => None,
        })
        .collect()
}

#[test]
fn online_without_a_record_is_green_and_offers_no_rollback() {
    let mut m = Model::new(Duration::from_secs(60));
    assert!(m.appeared(&online(3), t(1)).is_empty());
    let view = m.view(t(5));
    assert_eq!(view.colour, Colour::Green);
    assert!(!view.attention);
    assert_eq!(
        view.lines[0],
        "fail2ban 1.0.2 online: 3 jails, probed 5 s ago"
    );
    assert_eq!(
        actions(&view),
        [
            ("Dismiss".to_string(), false),
            ("Probe now".to_string(), true),
            ("Show status".to_string(), true),
            ("Quit".to_string(), true)
        ]
    );
    assert_eq!(m.next_change(t(5)), None);
}

#[test]
fn a_crash_is_one_notice_red_and_offers_the_rollback() {
    let mut m = Model::new(Duration::from_secs(60));
    m.appeared(&online(3), t(0));
    let step = merged(offline(3), record("beta", 10, false, &[]));
    let notices = m.changed(&step, t(10));
    assert_eq!(notices.len(), 1, "{notices:?}");
    let Notice::Crash { record: r } = &notices[0] else {
        panic!("{notices:?}")
    };
    assert_eq!(r.jail, "beta");
    let view = m.view(t(11));
    assert_eq!(view.colour, Colour::Red);
    assert!(view.attention);
    assert!(
        view.lines[1].contains("jail beta: fail2ban went offline (connection refused)"),
        "{:?}",
        view.lines
    );
    assert_eq!(actions(&view)[0], ("Roll back beta".to_string(), true));
    // The same record again announces nothing.
    assert!(m.changed(&record("beta", 10, false, &[]), t(12)).is_empty());
}

#[test]
fn a_restart_of_the_daemon_announces_nothing() {
    let mut m = Model::new(Duration::from_secs(60));
    m.appeared(&online(3), t(0));
    m.gone();
    assert_eq!(m.colour(t(1)), Colour::Grey);
    assert!(m.view(t(1)).lines[0].contains("not on the bus"));
    // Back, not probed yet, then probed online: no offline/online notice.
    assert!(m.appeared(&offline(1), t(2)).is_empty());
    assert_eq!(m.colour(t(2)), Colour::Grey);
    assert!(m.changed(&online(3), t(3)).is_empty());
    assert_eq!(m.colour(t(3)), Colour::Green);
}

#[test]
fn offline_and_back_are_one_notice_each_and_back_is_amber_for_a_while() {
    let mut m = Model::new(Duration::from_secs(60));
    m.appeared(&online(3), t(0));
    assert_eq!(
        m.changed(&offline(2), t(1)),
        [Notice::WentOffline {
            reason: "its socket is missing".into()
        }]
    );
    // Another change while offline announces nothing more.
    assert!(m.changed(&offline(3), t(2)).is_empty());
    assert_eq!(m.colour(t(2)), Colour::Red);
    assert_eq!(
        m.changed(&online(2), t(3)),
        [Notice::CameOnline {
            version: "1.0.2".into(),
            jails: 2
        }]
    );
    assert_eq!(m.colour(t(4)), Colour::Amber);
    assert_eq!(m.next_change(t(4)), Some(t(63)));
    m.tick(t(63));
    assert_eq!(m.colour(t(63)), Colour::Green);
    assert_eq!(m.next_change(t(63)), None);
}

#[test]
fn resolution_is_announced_once_and_leaves_amber_until_dismissed() {
    let mut m = Model::new(Duration::from_secs(0));
    m.appeared(&online(3), t(0));
    m.changed(&merged(offline(3), record("beta", 10, false, &[])), t(10));
    let notices = m.changed(&merged(online(2), record("beta", 10, true, &[])), t(15));
    assert!(
        matches!(&notices[..], [Notice::Resolved { record }] if record.jail == "beta"),
        "{notices:?}"
    );
    assert!(m.changed(&record("beta", 10, true, &[]), t(16)).is_empty());
    assert_eq!(m.colour(t(16)), Colour::Amber);
    // Dismissed: green.
    let empty = HashMap::from([(
        "PendingRecovery".to_string(),
        v(HashMap::<String, Variant<'static>>::new()),
    )]);
    assert!(m.changed(&empty, t(17)).is_empty());
    assert_eq!(m.colour(t(17)), Colour::Green);
}

#[test]
fn an_unresolved_record_found_at_start_is_announced_a_resolved_one_is_not() {
    let mut m = Model::new(Duration::from_secs(60));
    let n = m.appeared(&merged(offline(3), record("beta", 10, false, &[])), t(20));
    assert!(matches!(&n[..], [Notice::Crash { .. }]), "{n:?}");
    let mut m = Model::new(Duration::from_secs(60));
    assert!(
        m.appeared(&merged(online(3), record("beta", 10, true, &[])), t(20))
            .is_empty()
    );
    assert_eq!(m.colour(t(20)), Colour::Amber);
}

#[test]
fn no_rollback_for_a_jail_that_ran_before_or_one_rolled_back() {
    for key in ["RanBefore", "RolledBack"] {
        let mut m = Model::new(Duration::from_secs(60));
        m.appeared(
            &merged(
                offline(3),
                record("alpha", 10, false, &[(key, Variant::from(true))]),
            ),
            t(10),
        );
        let view = m.view(t(11));
        assert!(
            !actions(&view)
                .iter()
                .any(|(l, _)| l.starts_with("Roll back")),
            "{key}: {view:?}"
        );
        assert_eq!(actions(&view)[0], ("Dismiss".to_string(), true));
    }
}

#[test]
fn a_running_rollback_disables_the_actions_that_exclude_it() {
    let mut m = Model::new(Duration::from_secs(60));
    m.appeared(&merged(offline(3), record("beta", 10, false, &[])), t(10));
    m.set_busy(Some(Action::Rollback));
    let a = actions(&m.view(t(11)));
    assert_eq!(a[0], ("Rolling back beta…".to_string(), false));
    assert_eq!(a[1], ("Dismiss".to_string(), false));
    m.gone();
    assert_eq!(m.busy(), None);
}

#[test]
fn the_record_in_words_names_unit_suspects_and_vanished_jails() {
    let mut m = Model::new(Duration::from_secs(60));
    let extra = [
        ("UnitResult", Variant::from("exit-code".to_string())),
        ("ExitStatus", Variant::from(255i32)),
        (
            "SuspectJails",
            Variant::from(vec!["beta".to_string(), "gamma".to_string()]),
        ),
    ];
    m.appeared(
        &merged(offline(10), record("beta", 10, false, &extra)),
        t(10),
    );
    let lines = m.view(t(70)).lines;
    assert!(
        lines[1].contains("its unit ended: exit-code, status 255"),
        "{lines:?}"
    );
    assert!(
        lines[2].contains("2 s after its activation") && lines[2].contains("(60 s ago)"),
        "{lines:?}"
    );
    assert_eq!(lines[3], "suspects: beta, gamma");
    let cause3 = [
        ("Cause", Variant::from(3u32)),
        (
            "VanishedJails",
            Variant::from(vec!["alpha".to_string(); 10]),
        ),
    ];
    let mut m = Model::new(Duration::from_secs(60));
    m.appeared(
        &merged(online(1), record("beta", 10, false, &cause3)),
        t(10),
    );
    let lines = m.view(t(10)).lines;
    assert!(
        lines[1].ends_with("alpha, alpha, alpha, alpha, alpha, alpha, alpha, alpha and 2 more"),
        "{lines:?}"
    );
    assert_eq!(m.colour(t(10)), Colour::Red);
}

#[test]
fn hostile_text_is_cleaned_and_wrong_types_are_ignored() {
    let mut m = Model::new(Duration::from_secs(60));
    let mut props = online(1);
    props.insert("Version".into(), v("1.0\u{202e}\n2"));
    props.insert("ActiveJails".into(), v("three"));
    m.appeared(&props, t(0));
    let s = m.snapshot().unwrap();
    assert!(
        !s.version.contains('\n') && !s.version.contains('\u{202e}'),
        "{}",
        s.version
    );
    assert_eq!(s.active_jails, 0);
    assert_eq!(Record::from_dict(&HashMap::new()), None);
}

#[test]
fn status_text_lists_the_jails() {
    let mut m = Model::new(Duration::from_secs(60));
    let mut props = online(2);
    props.insert(
        "Jails".into(),
        v(vec![
            ("alpha".to_string(), 1u32, 5u32, 2u32, 7u32),
            ("beta".to_string(), 0, 0, 0, 0),
        ]),
    );
    m.appeared(&props, t(0));
    let text = m.status_text(t(1));
    assert!(
        text.contains("\nalpha: 2 banned (7 in all), 1 failing"),
        "{text}"
    );
    assert!(text.contains("\nbeta: 0 banned"), "{text}");
}

fn trial(jail: &str, started: i64, deadline: i64) -> HashMap<String, OwnedVariant> {
    let d: HashMap<String, Variant<'static>> = HashMap::from([
        ("JailName".to_string(), Variant::from(jail.to_string())),
        ("StartedAt".to_string(), Variant::from(us(started))),
        ("DeadlineAt".to_string(), Variant::from(us(deadline))),
    ]);
    HashMap::from([("Trial".to_string(), v(d))])
}

fn no_trial() -> HashMap<String, OwnedVariant> {
    HashMap::from([(
        "Trial".to_string(),
        v(HashMap::<String, Variant<'static>>::new()),
    )])
}

/// The record of the trial of `jail` started at `started`: cause 2.
fn trial_record(
    jail: &str,
    started: i64,
    detected: i64,
    extra: &[(&str, Variant<'static>)],
) -> HashMap<String, OwnedVariant> {
    let mut all = vec![
        ("ActivatedAt", Variant::from(us(started))),
        ("Cause", Variant::from(2u32)),
        ("OfflineReason", Variant::from(0u32)),
    ];
    all.extend(extra.iter().map(|(k, x)| (*k, x.try_clone().unwrap())));
    record(jail, detected, false, &all)
}

fn local_hm(s: i64) -> String {
    t(s).with_timezone(&Local).format("%H:%M").to_string()
}

#[test]
fn a_running_trial_is_amber_says_until_when_and_offers_keep_and_abort() {
    let mut m = Model::new(Duration::from_secs(60));
    assert!(
        m.appeared(&merged(online(3), trial("gamma", 0, 600)), t(1))
            .is_empty()
    );
    let view = m.view(t(5));
    assert_eq!(view.colour, Colour::Amber);
    assert!(!view.attention);
    assert_eq!(view.title, "fail2ban 1.0.2 online, trying gamma");
    assert_eq!(
        view.lines[1],
        format!("Trying gamma until {}", local_hm(600))
    );
    assert_eq!(view.menu[1], Entry::Text(view.lines[1].clone()));
    assert_eq!(
        actions(&view),
        [
            ("Keep gamma".to_string(), true),
            ("Roll back gamma now".to_string(), true),
            ("Dismiss".to_string(), false),
            ("Probe now".to_string(), true),
            ("Show status".to_string(), true),
            ("Quit".to_string(), true)
        ]
    );
    let entry = |a: Action| {
        view.menu
            .iter()
            .any(|e| matches!(e, Entry::Item { action, .. } if *action == a))
    };
    assert!(entry(Action::Confirm) && entry(Action::Abort));
    // No timer runs for the trial: the applet stays idle.
    assert_eq!(m.next_change(t(5)), None);
    // A deadline more than 12 h away carries its date; a passed one
    // says the daemon is judging.
    m.changed(&trial("gamma", 0, 20 * 3600), t(6));
    let date = t(20 * 3600).with_timezone(&Local).format("%Y-%m-%d %H:%M");
    assert_eq!(m.view(t(6)).lines[1], format!("Trying gamma until {date}"));
    assert!(
        m.view(t(20 * 3600 + 1)).lines[1].contains("has passed"),
        "{:?}",
        m.view(t(20 * 3600 + 1)).lines
    );
    // Ended: green again, no trial line, no trial actions.
    assert!(m.changed(&no_trial(), t(7)).is_empty());
    let view = m.view(t(7));
    assert_eq!(view.colour, Colour::Green);
    assert!(!view.lines.iter().any(|l| l.contains("gamma")), "{view:?}");
    assert!(
        !actions(&view).iter().any(|(l, _)| l.contains("gamma")),
        "{view:?}"
    );
}

#[test]
fn keep_and_abort_are_disabled_while_either_runs_and_during_the_rollback() {
    let mut m = Model::new(Duration::from_secs(60));
    m.appeared(&merged(online(3), trial("gamma", 0, 600)), t(1));
    m.set_busy(Some(Action::Confirm));
    let a = actions(&m.view(t(2)));
    assert_eq!(a[0], ("Keeping gamma…".to_string(), false));
    assert_eq!(a[1], ("Roll back gamma now".to_string(), false));
    // A refused Confirm: both come back.
    m.finished(Action::Confirm, false);
    let a = actions(&m.view(t(2)));
    assert_eq!(a[0], ("Keep gamma".to_string(), true));
    assert_eq!(a[1], ("Roll back gamma now".to_string(), true));
    m.set_busy(Some(Action::Abort));
    let a = actions(&m.view(t(3)));
    assert_eq!(a[0], ("Keep gamma".to_string(), false));
    assert_eq!(a[1], ("Rolling back gamma…".to_string(), false));
    // Abort answers before the rollback ends: both stay disabled until
    // the trial is over.
    m.finished(Action::Abort, true);
    assert_eq!(m.busy(), None);
    let a = actions(&m.view(t(4)));
    assert_eq!(a[0], ("Keep gamma".to_string(), false));
    assert_eq!(a[1], ("Rolling back gamma…".to_string(), false));
    // fail2ban restarting for that rollback is no notice of its own.
    assert!(m.changed(&offline(3), t(5)).is_empty());
    assert!(m.changed(&online(3), t(6)).is_empty());
    assert!(m.changed(&no_trial(), t(7)).is_empty());
    assert_eq!(
        m.trial_ended("gamma", false, 0),
        [Notice::TrialEnded {
            jail: "gamma".into(),
            kept: false,
            cause: 0,
            record: None,
            online: true,
            state: "fail2ban 1.0.2 is online with 3 jails".into(),
        }]
    );
    // The next trial of the same jail is a new one: its actions work.
    m.changed(&trial("gamma", 10, 600), t(10));
    let a = actions(&m.view(t(10)));
    assert_eq!(a[0], ("Keep gamma".to_string(), true));
    assert_eq!(a[1], ("Roll back gamma now".to_string(), true));
}

#[test]
fn the_trials_failure_offers_no_manual_rollback_and_is_one_story() {
    let mut m = Model::new(Duration::from_secs(0));
    m.appeared(&merged(online(3), trial("gamma", 0, 600)), t(1));
    // The failure: recorded against the trial's activation.
    let n = m.changed(&trial_record("gamma", 0, 2, &[]), t(2));
    assert!(
        matches!(&n[..], [Notice::TrialFailed { record }] if record.jail == "gamma"),
        "{n:?}"
    );
    assert_eq!(m.offers_rollback(), None);
    let view = m.view(t(2));
    assert_eq!(view.colour, Colour::Red);
    assert!(
        view.lines[1].contains("Trial of gamma failed")
            && view.lines[1].contains("rolls it back automatically"),
        "{:?}",
        view.lines
    );
    assert_eq!(
        actions(&view)[..3],
        [
            ("Keep gamma".to_string(), false),
            ("Rolling back gamma…".to_string(), false),
            ("Dismiss".to_string(), false),
        ]
    );
    assert!(
        !actions(&view).iter().any(|(l, _)| l == "Roll back gamma"),
        "{view:?}"
    );
    // Rolled back by the daemon, resolved, the trial over: no resolution
    // notice, no "back online".
    let done = [
        ("RolledBack", Variant::from(true)),
        ("AutoRolledBack", Variant::from(true)),
        ("Recovered", Variant::from(true)),
        ("RecoveredAt", Variant::from(us(4))),
    ];
    let step = merged(trial_record("gamma", 0, 2, &done), no_trial());
    assert!(m.changed(&step, t(4)).is_empty());
    let n = m.trial_ended("gamma", false, 2);
    let [
        Notice::TrialEnded {
            jail,
            kept: false,
            cause: 2,
            record: Some(r),
            online: true,
            state,
        },
    ] = &n[..]
    else {
        panic!("{n:?}")
    };
    assert_eq!(jail, "gamma");
    assert!(r.auto_rolled_back && r.rolled_back, "{r:?}");
    assert_eq!(state, "fail2ban 1.0.2 is online with 3 jails");
    let view = m.view(t(5));
    assert_eq!(view.colour, Colour::Amber);
    assert!(
        view.lines
            .iter()
            .any(|l| l.starts_with("rolled back automatically (trial); resolved at")),
        "{:?}",
        view.lines
    );
    assert!(
        !actions(&view)
            .iter()
            .any(|(l, _)| l.starts_with("Roll back")),
        "{view:?}"
    );
    assert_eq!(actions(&view)[0], ("Dismiss".to_string(), true));
}

#[test]
fn a_trial_that_takes_fail2ban_down_is_one_notice_not_offline_and_back() {
    let mut m = Model::new(Duration::from_secs(60));
    m.appeared(&merged(online(3), trial("gamma", 0, 600)), t(1));
    let step = merged(
        offline(3),
        trial_record("gamma", 0, 2, &[("Cause", Variant::from(1u32))]),
    );
    let n = m.changed(&step, t(2));
    assert!(matches!(&n[..], [Notice::TrialFailed { .. }]), "{n:?}");
    assert_eq!(m.offers_rollback(), None);
    assert!(m.changed(&online(3), t(3)).is_empty());
    let rolled = [
        ("Cause", Variant::from(1u32)),
        ("RolledBack", Variant::from(true)),
        ("AutoRolledBack", Variant::from(true)),
        ("Recovered", Variant::from(true)),
    ];
    let step = merged(trial_record("gamma", 0, 2, &rolled), no_trial());
    assert!(m.changed(&step, t(4)).is_empty());
    let n = m.trial_ended("gamma", false, 1);
    assert!(
        matches!(
            &n[..],
            [Notice::TrialEnded {
                record: Some(_),
                cause: 1,
                ..
            }]
        ),
        "{n:?}"
    );
}

#[test]
fn trial_end_notices_for_kept_and_a_record_of_another_activation() {
    let mut m = Model::new(Duration::from_secs(60));
    m.appeared(&merged(online(3), trial("gamma", 0, 600)), t(1));
    // Another activation's crash during the trial is an ordinary crash,
    // but no manual rollback is offered while the trial runs.
    let other = record("delta", 5, false, &[("Cause", Variant::from(2u32))]);
    let n = m.changed(&other, t(5));
    assert!(
        matches!(&n[..], [Notice::Crash { record }] if record.jail == "delta"),
        "{n:?}"
    );
    assert_eq!(m.offers_rollback(), None);
    m.changed(&no_trial(), t(6));
    assert_eq!(m.offers_rollback().map(|r| r.jail.as_str()), Some("delta"));
    let n = m.trial_ended("gamma", true, 0);
    assert_eq!(
        n,
        [Notice::TrialEnded {
            jail: "gamma".into(),
            kept: true,
            cause: 0,
            record: None,
            online: true,
            state: "fail2ban 1.0.2 is online".into(),
        }]
    );
    // Without the daemon the state says so.
    m.gone();
    let n = m.trial_ended("gamma\u{202e}", true, 0);
    let [
        Notice::TrialEnded {
            jail,
            online,
            state,
            ..
        },
    ] = &n[..]
    else {
        panic!("{n:?}")
    };
    assert!(!jail.contains('\u{202e}'), "{jail}");
    assert!(!online);
    assert_eq!(state, "fail2ban-healthd is not on the bus");
}

#[test]
fn hostile_trial_values_are_cleaned_or_ignored() {
    let d = |pairs: Vec<(&str, Variant<'static>)>| -> HashMap<String, OwnedVariant> {
        pairs
            .into_iter()
            .map(|(k, x)| (k.to_string(), OwnedVariant::try_from(x).unwrap()))
            .collect()
    };
    // No name, a name of the wrong type, an empty name: no trial.
    assert_eq!(Trial::from_dict(&HashMap::new()), None);
    assert_eq!(
        Trial::from_dict(&d(vec![("JailName", Variant::from(7u32))])),
        None
    );
    assert_eq!(
        Trial::from_dict(&d(vec![("JailName", Variant::from(""))])),
        None
    );
    // Control and bidi characters escaped, times of the wrong type 0.
    let t0 = Trial::from_dict(&d(vec![
        ("JailName", Variant::from("ev\u{202e}il\nname")),
        ("StartedAt", Variant::from("yesterday")),
        ("DeadlineAt", Variant::from(u64::MAX)),
    ]))
    .unwrap();
    assert!(
        !t0.jail.contains('\n') && !t0.jail.contains('\u{202e}'),
        "{}",
        t0.jail
    );
    assert_eq!(t0.started_at, 0);
    // A start of 0 owns no record, even one activated at 0.
    let r = Record {
        jail: t0.jail.clone(),
        ..Record::default()
    };
    assert!(!t0.owns(&r));
    assert!(
        trial_line(&t0, None, t(0)).ends_with("until an unknown time"),
        "{}",
        trial_line(&t0, None, t(0))
    );

    let mut m = Model::new(Duration::from_secs(60));
    m.appeared(&merged(online(3), trial("gamma", 0, 600)), t(1));
    // A Trial of the wrong type is ignored: the trial stays.
    let wrong = HashMap::from([("Trial".to_string(), v("gamma"))]);
    assert!(m.changed(&wrong, t(2)).is_empty());
    assert_eq!(m.trial().map(|t| t.jail.as_str()), Some("gamma"));
    // A hostile AutoRolledBack is not true.
    let rec = record("beta", 3, true, &[("AutoRolledBack", Variant::from("yes"))]);
    m.changed(&merged(rec, no_trial()), t(3));
    assert!(!m.record().unwrap().auto_rolled_back);
}

#[test]
fn spans_in_words() {
    assert_eq!(span(500_000), "under a second");
    assert_eq!(span(61_000_000), "61 s");
    assert_eq!(span(600_000_000), "10 min");
    assert_eq!(span(10_800_000_000), "3 h");
    assert_eq!(span(300_000_000_000), "3 days");
    assert_eq!(ago(us(10), t(5)), "just now");
}
