//! The monitor driven through whole stories on a fake clock: each rule of
//! crash attribution and its edges, in microseconds of test time.
#![allow(clippy::unwrap_used)]

mod sim;

use chrono::{DateTime, Utc};
use fail2ban_healthd::health::{OfflineReason, ServerStatus};
use fail2ban_healthd::monitor::{
    Action, Activation, Cause, Event, Input, Monitor, Refusal, Timing,
};
use sim::{Sim, crash_events, online, secs};

#[test]
fn starts_offline_not_probed_and_probes_at_once() {
    let mut s = Sim::new();
    let snap = s.m.snapshot().clone();
    assert!(!snap.online);
    assert_eq!(snap.offline_reason, OfflineReason::NotProbedYet);
    assert_eq!(snap.offline_reason.code(), 1);
    assert!(snap.last_activation.is_none() && snap.pending_recovery.is_none());
    assert_eq!(s.m.poll_timeout(), Some(s.t0.mono));
    assert_eq!(s.next_probe(), 0.0);
    let events = s.finish(online(&["alpha", "beta"]));
    assert_eq!(
        events,
        [Event::CameOnline {
            version: "1.0.2".into()
        }]
    );
    assert!(s.m.snapshot().online);
    assert_eq!(s.m.snapshot().offline_reason, OfflineReason::None);
    assert_eq!(s.next_probe(), 30.0);
}

#[test]
fn a_slow_probe_delays_the_next_and_never_overlaps() {
    let mut s = Sim::new();
    s.next_probe();
    // Nothing else is due while the probe runs, however long it takes.
    assert_eq!(s.m.poll_timeout(), None);
    s.at(100.0);
    s.m.handle_timeout(s.now);
    assert_eq!(s.m.poll_action(), None);
    assert_eq!(s.m.poll_event(), None);
    s.finish(online(&["alpha"]));
    assert_eq!(s.next_probe(), 130.0);
}

#[test]
fn first_probe_offline_emits_no_transition() {
    let mut s = Sim::new();
    let events = s.probe(Err(OfflineReason::SocketMissing));
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(s.m.snapshot().offline_reason, OfflineReason::SocketMissing);
}

fn crash_at(after_activation: f64) -> Sim {
    let mut s = Sim::new();
    s.probe(online(&["alpha", "beta"]));
    s.at(10.0);
    s.activate("gamma");
    s.probe(online(&["alpha", "beta", "gamma"]));
    s.at(10.0 + after_activation);
    // The next scheduled probe may be later; a probe is requested now.
    s.m.handle_input(s.now, Input::ProbeRequested).unwrap();
    s.next_probe();
    s
}

#[test]
fn offline_inside_the_window_records_cause_1() {
    let mut s = crash_at(20.0);
    let events = s.crash();
    assert_eq!(
        events[0],
        Event::WentOffline {
            reason: OfflineReason::ConnectionRefused
        }
    );
    let Event::CrashDetected {
        record,
        since_activation,
    } = &events[1]
    else {
        panic!("{events:?}")
    };
    assert_eq!(record.jail_name, "gamma");
    assert_eq!(
        record.cause,
        Cause::WentOffline(OfflineReason::ConnectionRefused)
    );
    assert_eq!(record.cause.code(), 1);
    // Detected when the refusal was confirmed, 10 ms after the first.
    assert_eq!(*since_activation, secs(20.01));
    assert_eq!(record.activated_at, s.t0.wall + secs(10.0));
    assert_eq!(record.detected_at, s.t0.wall + secs(30.01));
    assert!(!record.recovered());
    assert_eq!(s.m.snapshot().pending_recovery.as_ref(), Some(record));
}

#[test]
fn exactly_at_the_window_boundary_still_counts() {
    let mut s = crash_at(60.0);
    let events = s.crash();
    assert_eq!(crash_events(&events), 1, "{events:?}");
}

#[test]
fn just_past_the_window_goes_offline_without_a_record() {
    let mut s = crash_at(60.000_001);
    let events = s.finish(Err(OfflineReason::ConnectionRefused));
    assert_eq!(
        events,
        [Event::WentOffline {
            reason: OfflineReason::ConnectionRefused
        }]
    );
    // Nothing to confirm: no probe 200 ms later.
    assert_eq!(s.next_probe(), 100.000_001);
    assert!(s.m.snapshot().pending_recovery.is_none());
}

#[test]
fn coming_back_online_resolves_the_record() {
    let mut s = crash_at(5.0);
    s.crash();
    s.at(40.0);
    s.m.handle_input(s.now, Input::ProbeRequested).unwrap();
    let events = s.probe(online(&["alpha", "beta"]));
    assert_eq!(
        events[0],
        Event::CameOnline {
            version: "1.0.2".into()
        }
    );
    assert_eq!(
        events[1],
        Event::RecoveryResolved {
            jail: "gamma".into(),
            recovered_at: s.t0.wall + secs(40.0)
        }
    );
    let record = s.m.snapshot().pending_recovery.clone().unwrap();
    assert_eq!(record.recovered_at, Some(s.t0.wall + secs(40.0)));
    // Resolved records stay visible until dismissed.
    s.m.handle_input(s.now, Input::RecoveryDismissed).unwrap();
    assert!(s.m.snapshot().pending_recovery.is_none());
    assert_eq!(
        s.m.handle_input(s.now, Input::RecoveryDismissed),
        Err(Refusal::NoPendingRecovery)
    );
}

#[test]
fn activation_while_offline_records_nothing_until_a_failure_is_seen() {
    let mut s = Sim::new();
    s.probe(Err(OfflineReason::SocketMissing));
    s.at(1.0);
    s.activate("alpha");
    assert!(s.m.snapshot().last_activation.is_some());
    let events = s.probe(Err(OfflineReason::SocketMissing));
    assert!(events.is_empty(), "{events:?}");
    // It comes up without the jail: cause 2 once the grace has passed.
    s.at(3.0);
    s.m.handle_input(s.now, Input::ProbeRequested).unwrap();
    let events = s.probe(online(&["beta"]));
    assert_eq!(
        crash_events(&events),
        0,
        "still inside the grace: {events:?}"
    );
    // The new server's jail list settles first.
    assert_eq!(s.next_probe(), 3.25);
    s.finish(online(&["beta"]));
    assert_eq!(s.next_probe(), 3.5);
    s.finish(online(&["beta"]));
    assert_eq!(s.next_probe(), 6.0, "a probe right after the grace");
    let events = s.finish(online(&["beta"]));
    assert_eq!(crash_events(&events), 1);
    assert_eq!(s.cause(), Some(("alpha".into(), 2, false)));
}

#[test]
fn two_crashes_in_a_row_keep_the_first_record() {
    let mut s = crash_at(5.0);
    s.crash();
    let first = s.m.snapshot().pending_recovery.clone().unwrap();
    // Still down, a new activation, another failed probe: nothing replaces
    // the unresolved record.
    s.at(20.0);
    s.activate("delta");
    let events = s.probe(Err(OfflineReason::SocketMissing));
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(s.m.snapshot().pending_recovery.as_ref(), Some(&first));
    assert_eq!(s.m.snapshot().offline_reason, OfflineReason::SocketMissing);
}

#[test]
fn crash_then_recovery_then_a_new_crash_replaces_the_resolved_record() {
    let mut s = crash_at(5.0);
    s.crash();
    s.at(20.0);
    s.m.handle_input(s.now, Input::ProbeRequested).unwrap();
    s.probe(online(&["alpha", "beta", "gamma"]));
    assert_eq!(s.cause(), Some(("gamma".into(), 1, true)));
    s.at(30.0);
    s.activate("delta");
    s.probe(online(&["alpha", "beta", "gamma", "delta"]));
    s.at(33.0);
    s.m.handle_input(s.now, Input::ProbeRequested).unwrap();
    // A clean stop: recorded once the restart grace ends with fail2ban
    // still down.
    let events = s.probe(Err(OfflineReason::ShuttingDown));
    assert_eq!(crash_events(&events), 0);
    let events = s.offline_until(47.9, OfflineReason::ShuttingDown);
    assert_eq!(crash_events(&events), 0);
    let events = s.offline_until(48.0, OfflineReason::ShuttingDown);
    assert_eq!(crash_events(&events), 1);
    assert_eq!(s.cause(), Some(("delta".into(), 1, false)));
    let r = s.m.snapshot().pending_recovery.clone().unwrap();
    assert_eq!(r.cause.offline_reason(), OfflineReason::ShuttingDown);
}

#[test]
fn a_jail_that_never_starts_is_cause_2_and_resolves_when_it_runs() {
    let mut s = Sim::new();
    s.probe(online(&["alpha", "beta"]));
    s.at(50.0);
    s.activate("gamma");
    // The immediate probe is inside the grace: nothing yet.
    assert_eq!(crash_events(&s.probe(online(&["alpha", "beta"]))), 0);
    // The next probe comes right after the grace, not an interval later.
    assert_eq!(s.next_probe(), 55.0);
    let events = s.finish(online(&["alpha", "beta"]));
    assert_eq!(crash_events(&events), 1);
    assert_eq!(s.cause(), Some(("gamma".into(), 2, false)));
    let r = s.m.snapshot().pending_recovery.clone().unwrap();
    assert_eq!(r.cause.offline_reason(), OfflineReason::None);
    // Later the jail runs: resolved, without any offline phase.
    assert_eq!(s.next_probe(), 85.0);
    let events = s.finish(online(&["alpha", "beta", "gamma"]));
    assert!(
        matches!(events[..], [Event::RecoveryResolved { .. }]),
        "{events:?}"
    );
    assert_eq!(s.cause(), Some(("gamma".into(), 2, true)));
}

#[test]
fn a_reload_that_drops_the_other_jails_is_cause_3() {
    let mut s = Sim::new();
    s.probe(online(&["alpha", "beta"]));
    s.at(1.0);
    s.activate("gamma");
    // The list changed: it settles (two more probes, 250 ms apart) first.
    for _ in 0..3 {
        s.probe(online(&["alpha", "beta", "gamma"]));
    }
    assert_eq!(s.elapsed(), 1.5);
    let events = s.probe(online(&["gamma"]));
    assert_eq!(s.elapsed(), 6.0);
    assert_eq!(crash_events(&events), 0, "judged once the list holds still");
    s.probe(online(&["gamma"]));
    let events = s.probe(online(&["gamma"]));
    assert_eq!(s.elapsed(), 6.5);
    assert_eq!(crash_events(&events), 1);
    let r = s.m.snapshot().pending_recovery.clone().unwrap();
    assert_eq!(
        r.cause,
        Cause::JailsVanished(vec!["alpha".into(), "beta".into()])
    );
    assert_eq!(r.cause.code(), 3);
    // One comes back: not yet; both: resolved.
    assert!(s.probe(online(&["alpha", "gamma"])).is_empty());
    let events = s.probe(online(&["alpha", "beta", "gamma"]));
    assert!(
        matches!(events[..], [Event::RecoveryResolved { .. }]),
        "{events:?}"
    );
}

#[test]
fn no_attribution_after_the_window() {
    let mut s = Sim::new();
    s.probe(online(&["alpha"]));
    s.activate("gamma");
    s.probe(online(&["alpha"]));
    // The grace probe finds the jail missing: cause 2 (then dismissed).
    s.probe(online(&["alpha"]));
    assert_eq!(s.cause().unwrap().1, 2);
    s.m.handle_input(s.now, Input::RecoveryDismissed).unwrap();
    // Past the window a missing jail or a crash is no longer attributed.
    s.at(61.0);
    s.m.handle_input(s.now, Input::ProbeRequested).unwrap();
    assert_eq!(crash_events(&s.probe(online(&["alpha"]))), 0);
    let events = s.probe(Err(OfflineReason::ConnectionRefused));
    assert_eq!(
        events,
        [Event::WentOffline {
            reason: OfflineReason::ConnectionRefused
        }]
    );
    assert!(s.m.snapshot().pending_recovery.is_none());
}

#[test]
fn the_window_ignores_wall_clock_jumps() {
    let mut s = Sim::new();
    s.probe(online(&["alpha"]));
    s.activate("alpha");
    s.probe(online(&["alpha"]));
    // The wall clock jumps a day back, then 30 s pass on the monotonic clock.
    s.now.wall -= chrono::Duration::days(1);
    s.at(30.0);
    s.m.handle_input(s.now, Input::ProbeRequested).unwrap();
    s.next_probe();
    let events = s.crash();
    assert_eq!(crash_events(&events), 1);
    let r = s.m.snapshot().pending_recovery.clone().unwrap();
    let shown: DateTime<Utc> = s.t0.wall + secs(30.01) - chrono::Duration::days(1);
    assert_eq!(r.detected_at, shown, "people see the wall clock");
}

#[test]
fn a_probe_asked_for_during_a_probe_follows_it_at_once() {
    let mut s = Sim::new();
    s.next_probe();
    s.at(2.0);
    s.m.handle_input(s.now, Input::ProbeRequested).unwrap();
    assert_eq!(s.events(), []);
    s.finish(online(&["alpha"]));
    assert_eq!(s.next_probe(), 2.0);
}

#[test]
fn an_unresolved_cause_2_record_survives_a_new_activation_and_a_crash() {
    let mut s = Sim::new();
    s.probe(online(&["alpha"]));
    s.activate("ghost");
    s.probe(online(&["alpha"]));
    s.probe(online(&["alpha"]));
    let first = s.m.snapshot().pending_recovery.clone().unwrap();
    assert_eq!(first.cause.code(), 2);
    s.at(10.0);
    s.activate("other");
    s.probe(online(&["alpha", "other"]));
    let events = s.probe(Err(OfflineReason::ConnectionRefused));
    assert_eq!(crash_events(&events), 0);
    assert_eq!(s.m.snapshot().pending_recovery.as_ref(), Some(&first));
}

#[test]
fn close_watch_probes_every_watch_interval_inside_the_window_then_relaxes() {
    let mut s = Sim::with(Timing::default());
    s.probe(online(&["alpha"]));
    assert_eq!(s.next_probe(), 30.0);
    s.finish(online(&["alpha"]));
    s.at(40.0);
    s.activate("ghost");
    // At once, then every second until the window closes at 100 s.
    let mut times = Vec::new();
    loop {
        let t = s.next_probe();
        let events = s.finish(online(&["alpha"]));
        if crash_events(&events) == 1 {
            assert_eq!(s.cause().unwrap().1, 2);
        }
        times.push(t);
        if t >= 100.0 {
            break;
        }
    }
    assert_eq!(times[0], 40.0);
    assert!(
        times.windows(2).all(|w| w[1] - w[0] <= 1.0 + 1e-9),
        "{times:?}"
    );
    assert_eq!(*times.last().unwrap(), 100.0);
    // Cause 2 came with the first probe past the grace: 45 s.
    let r = s.m.snapshot().pending_recovery.clone().unwrap();
    assert_eq!(r.detected_at, s.t0.wall + secs(45.0));
    // After the window, back to the normal interval.
    assert_eq!(s.next_probe(), 130.0);
}

#[test]
fn suspect_jails_lists_every_activation_in_the_window_newest_first() {
    let mut s = Sim::new();
    s.probe(online(&["alpha", "beta", "gamma"]));
    s.activate("alpha");
    s.at(10.0);
    s.activate("beta");
    s.at(20.0);
    s.activate("gamma");
    s.at(25.0);
    s.activate("beta");
    // alpha's activation is outside the window by now.
    s.at(61.0);
    s.m.handle_input(s.now, Input::ProbeRequested).unwrap();
    s.next_probe();
    s.crash();
    let r = s.m.snapshot().pending_recovery.clone().unwrap();
    assert_eq!(r.jail_name, "beta");
    assert_eq!(r.suspect_jails, ["beta", "gamma"]);
}

#[test]
fn a_closed_idle_connection_probes_at_once() {
    let mut s = Sim::new();
    s.probe(online(&["alpha"]));
    s.at(3.0);
    s.m.handle_input(s.now, Input::IdleConnectionClosed)
        .unwrap();
    assert_eq!(s.next_probe(), 3.0);
}

#[test]
fn a_restored_record_resolves_only_by_its_own_condition() {
    use fail2ban_healthd::monitor::Memory;
    let mut s = Sim::new();
    s.probe(online(&["alpha"]));
    s.activate("ghost");
    s.probe(online(&["alpha"]));
    s.probe(online(&["alpha"]));
    assert_eq!(s.cause(), Some(("ghost".into(), 2, false)));
    let memory: Memory = s.m.memory();
    // The daemon restarts 10 s later (wall clock); ghost still does not run.
    let later = s.now.after(secs(10.0));
    let mut r = Monitor::restored(Timing::default(), later, memory.clone());
    assert_eq!(r.snapshot().pending_recovery, memory.record);
    assert_eq!(r.snapshot().last_activation, memory.last_activation);
    r.handle_timeout(later);
    assert_eq!(r.poll_action(), Some(Action::StartProbe));
    r.handle_input(later, Input::ProbeFinished(online(&["alpha"])))
        .unwrap();
    let events: Vec<Event> = std::iter::from_fn(|| r.poll_event()).collect();
    assert_eq!(
        events,
        [Event::CameOnline {
            version: "1.0.2".into()
        }],
        "no resolution, no new record"
    );
    assert!(!r.snapshot().pending_recovery.as_ref().unwrap().recovered());
    // A restored cause-1 record resolves once fail2ban answers.
    let mut crashed = crash_at(5.0);
    crashed.crash();
    let now = crashed.now.after(secs(3.0));
    let mut r = Monitor::restored(Timing::default(), now, crashed.m.memory());
    r.handle_timeout(now);
    assert_eq!(r.poll_action(), Some(Action::StartProbe));
    r.handle_input(now, Input::ProbeFinished(online(&["alpha", "beta"])))
        .unwrap();
    assert!(r.snapshot().pending_recovery.as_ref().unwrap().recovered());
}

#[test]
fn a_restored_activation_keeps_its_window_by_wall_clock() {
    let mut s = Sim::new();
    s.probe(online(&["alpha"]));
    s.activate("alpha");
    s.probe(online(&["alpha"]));
    let memory = s.m.memory();
    for (after, attributed) in [(50.0, true), (70.0, false)] {
        let now = s.now.after(secs(after));
        let mut r = Monitor::restored(Timing::default(), now, memory.clone());
        r.handle_timeout(now);
        assert_eq!(r.poll_action(), Some(Action::StartProbe));
        r.handle_input(now, Input::ProbeFinished(online(&["alpha"])))
            .unwrap();
        r.handle_input(now, Input::ProbeRequested).unwrap();
        r.handle_timeout(now);
        assert_eq!(r.poll_action(), Some(Action::StartProbe));
        // A lost connection is recorded at once (a refusal or a timeout
        // would be asked again).
        r.handle_input(
            now,
            Input::ProbeFinished(Err(OfflineReason::ConnectionLost)),
        )
        .unwrap();
        assert_eq!(
            r.snapshot().pending_recovery.is_some(),
            attributed,
            "{after} s after"
        );
    }
}

#[test]
fn a_socket_appearing_during_a_probe_is_not_lost() {
    let mut s = Sim::new();
    s.probe(online(&["alpha"]));
    // The next probe is running (fail2ban is in fact restarting).
    s.next_probe();
    s.m.handle_input(s.now, Input::SocketAppeared).unwrap();
    s.finish(Err(OfflineReason::SocketMissing));
    // Quick retries follow instead of a whole interval.
    assert_eq!(s.next_probe(), 30.0);
    s.finish(Err(OfflineReason::ConnectionRefused));
    assert!((s.next_probe() - 30.1).abs() < 1e-9);
}

#[test]
fn a_closed_idle_connection_never_probes_back_to_back() {
    let mut s = Sim::new();
    s.probe(online(&["alpha"]));
    s.m.handle_input(s.now, Input::IdleConnectionClosed)
        .unwrap();
    // 50 ms after the end of the last probe at the earliest.
    assert!((s.next_probe() - 0.05).abs() < 1e-9);
}

/// Ends the running rollback of the current record's activation.
fn finish_rollback(s: &mut Sim, done: bool) {
    let activation = blamed(s);
    s.m.handle_input(s.now, Input::RollbackFinished { activation, done })
        .unwrap();
}

/// The activation the current record blames.
fn blamed(s: &Sim) -> Activation {
    let r = s.m.snapshot().pending_recovery.clone().unwrap();
    Activation {
        jail_name: r.jail_name,
        activated_at: r.activated_at,
    }
}

#[test]
fn a_rollback_runs_once_at_a_time_and_marks_the_record_once() {
    let mut s = Sim::new();
    s.probe(online(&["alpha"]));
    assert_eq!(
        s.m.handle_input(s.now, Input::RollbackStarted),
        Err(Refusal::NoPendingRecovery)
    );
    // A jail that never runs: cause 2.
    s.activate("gamma");
    s.at(6.0);
    s.probe(online(&["alpha"]));
    assert_eq!(
        s.m.snapshot()
            .pending_recovery
            .as_ref()
            .unwrap()
            .cause
            .code(),
        2
    );

    s.m.handle_input(s.now, Input::RollbackStarted).unwrap();
    assert_eq!(
        s.m.handle_input(s.now, Input::RollbackStarted),
        Err(Refusal::RollbackRunning)
    );
    // A failed rollback leaves the record as it was and may be retried.
    finish_rollback(&mut s, false);
    let r = s.m.snapshot().pending_recovery.clone().unwrap();
    assert!(!r.rolled_back && !r.recovered());
    s.m.handle_input(s.now, Input::RollbackStarted).unwrap();
    finish_rollback(&mut s, true);
    // Marked, a probe is due at once, and the disabled jail is no longer
    // expected: the next online probe resolves the record.
    assert!(
        s.m.snapshot()
            .pending_recovery
            .as_ref()
            .unwrap()
            .rolled_back
    );
    assert_eq!(s.next_probe(), 6.0);
    s.finish(online(&["alpha"]));
    assert!(
        s.m.snapshot()
            .pending_recovery
            .as_ref()
            .unwrap()
            .recovered()
    );
    assert_eq!(
        s.m.handle_input(s.now, Input::RollbackStarted),
        Err(Refusal::RolledBackAlready)
    );
}

#[test]
fn a_rollback_for_another_activation_marks_nothing() {
    let mut s = crash_at(5.0);
    s.crash();
    s.m.handle_input(s.now, Input::RollbackStarted).unwrap();
    // The end of a rollback for another activation of the same jail (one
    // whose record was replaced) marks nothing.
    s.m.handle_input(
        s.now,
        Input::RollbackFinished {
            activation: Activation {
                jail_name: "gamma".into(),
                activated_at: DateTime::from_timestamp(1, 0).unwrap(),
            },
            done: true,
        },
    )
    .unwrap();
    assert!(
        !s.m.snapshot()
            .pending_recovery
            .as_ref()
            .unwrap()
            .rolled_back
    );
}

fn record_of(s: &Sim) -> fail2ban_healthd::monitor::RecoveryRecord {
    s.m.snapshot().pending_recovery.clone().expect("a record")
}

/// At `t`, a probe asked for (as `Probe()` does) that ends with `result`.
fn ask(s: &mut Sim, t: f64, result: Result<ServerStatus, OfflineReason>) -> Vec<Event> {
    s.at(t);
    s.m.handle_input(s.now, Input::ProbeRequested).unwrap();
    s.next_probe();
    s.finish(result)
}

/// At `t`, a crash as two asked-for probes see it.
fn crash_now(s: &mut Sim, t: f64) -> Vec<Event> {
    let mut events = ask(s, t, Err(OfflineReason::ConnectionRefused));
    events.extend(ask(s, t + 0.1, Err(OfflineReason::ConnectionRefused)));
    events
}

#[test]
fn a_rollback_refuses_a_jail_that_ran_before_its_activation() {
    // Running, then activated again (say, after editing its filter), then
    // fail2ban crashes: the record blames it, but it protected the machine
    // before, so a rollback must not disable it.
    let mut s = Sim::new();
    s.probe(online(&["alpha", "sshd"]));
    s.activate("sshd");
    ask(&mut s, 1.0, online(&["alpha", "sshd"]));
    crash_now(&mut s, 2.0);
    let r = record_of(&s);
    assert_eq!((r.jail_name.as_str(), r.cause.code()), ("sshd", 1));
    assert!(r.ran_before);
    assert_eq!(
        s.m.handle_input(s.now, Input::RollbackStarted),
        Err(Refusal::JailRanBefore("sshd".into()))
    );
    // Nothing changed: no rollback runs, the record may be dismissed.
    assert_eq!(record_of(&s), r);
    s.m.handle_input(s.now, Input::RecoveryDismissed).unwrap();

    // A new jail is not refused.
    let mut s = Sim::new();
    s.probe(online(&["alpha"]));
    s.activate("gamma");
    ask(&mut s, 6.0, online(&["alpha"]));
    assert!(!record_of(&s).ran_before);
    s.m.handle_input(s.now, Input::RollbackStarted).unwrap();
}

#[test]
fn a_jail_activated_while_fail2ban_was_down_ran_before_if_it_ran_when_last_seen() {
    for (jail, back_with, ran_before) in [
        ("gamma", &["alpha", "sshd"][..], false),
        ("sshd", &["alpha"][..], true),
    ] {
        let mut s = Sim::new();
        s.probe(online(&["alpha", "sshd"]));
        ask(&mut s, 1.0, Err(OfflineReason::SocketMissing));
        s.activate(jail);
        // Back without the jail: cause 2, once the jail had its time to
        // start.
        ask(&mut s, 3.0, online(back_with));
        ask(&mut s, 4.0, online(back_with));
        ask(&mut s, 8.0, online(back_with));
        let r = record_of(&s);
        assert_eq!((r.jail_name.as_str(), r.cause.code()), (jail, 2));
        assert_eq!(r.ran_before, ran_before, "{jail}");
        let started = s.m.handle_input(s.now, Input::RollbackStarted);
        if ran_before {
            assert_eq!(started, Err(Refusal::JailRanBefore(jail.into())));
        } else {
            assert_eq!(started, Ok(()));
        }
    }
}

#[test]
fn a_running_rollback_owns_the_record_and_its_restart_records_nothing() {
    // A manager registers a bogus jail (cause 2), then a healthy one, then
    // starts a rollback and tries to dismiss the record at once, so that
    // the rollback's restart would blame the healthy jail.
    let mut s = Sim::new();
    s.probe(online(&["sshd"]));
    s.activate("bogus");
    ask(&mut s, 6.0, online(&["sshd"]));
    assert_eq!(s.cause(), Some(("bogus".into(), 2, false)));
    s.activate("nginx");
    ask(&mut s, 7.0, online(&["nginx", "sshd"]));
    s.m.handle_input(s.now, Input::RollbackStarted).unwrap();
    let before = record_of(&s);
    assert_eq!(
        s.m.handle_input(s.now, Input::RecoveryDismissed),
        Err(Refusal::RollbackRunning)
    );
    assert_eq!(record_of(&s), before);
    // The rollback restarts fail2ban; even a crash-like loss during it
    // makes no record, and neither does its return.
    let mut events = crash_now(&mut s, 7.5);
    events.extend(s.offline_until(9.0, OfflineReason::ConnectionRefused));
    events.extend(ask(&mut s, 9.5, online(&["sshd"])));
    finish_rollback(&mut s, true);
    events.extend(s.events());
    events.extend(ask(&mut s, 10.0, online(&["sshd"])));
    events.extend(ask(&mut s, 11.0, online(&["sshd"])));
    assert_eq!(crash_events(&events), 0, "{events:?}");
    let r = record_of(&s);
    assert_eq!(r.jail_name, "bogus");
    assert!(r.rolled_back && r.recovered());
    // The activations before the rollback are done with: a later loss
    // inside their window blames nobody.
    s.m.handle_input(s.now, Input::RecoveryDismissed).unwrap();
    let events = crash_now(&mut s, 12.0);
    assert_eq!(crash_events(&events), 0, "{events:?}");
    assert!(s.m.snapshot().pending_recovery.is_none());
    // A new activation after the rollback is watched as ever.
    ask(&mut s, 20.0, online(&["sshd"]));
    s.activate("apache");
    let events = crash_now(&mut s, 21.0);
    assert_eq!(crash_events(&events), 1, "{events:?}");
    assert_eq!(s.cause(), Some(("apache".into(), 1, false)));
}

#[test]
fn a_probe_the_daemon_itself_could_not_make_changes_nothing() {
    let mut s = Sim::new();
    s.probe(online(&["alpha"]));
    s.activate("beta");
    let before = s.m.snapshot().clone();
    // Out of file descriptors, again and again: nothing is learned about
    // fail2ban, so nothing is published and nobody is blamed.
    for t in [1.0, 2.0, 3.0, 40.0] {
        s.at(t);
        s.m.handle_input(s.now, Input::ProbeRequested).unwrap();
        s.next_probe();
        s.m.handle_input(s.now, Input::ProbeAborted).unwrap();
        assert!(s.events().is_empty());
        assert_eq!(*s.m.snapshot(), before);
        assert!(!s.m.probe_in_flight());
    }
    // The next probe is still planned, within an interval.
    assert!(s.next_probe() <= 40.0 + 30.0);
    // Once the daemon can probe again, the rules apply as ever: beta
    // never started.
    let events = s.finish(online(&["alpha"]));
    assert_eq!(crash_events(&events), 1, "{events:?}");
}

#[test]
fn a_new_jail_a_probe_saw_just_before_its_activation_did_not_run_before() {
    // The tool switches the jail on and reloads; a probe sees it a moment
    // before the tool registers the activation; then fail2ban dies.
    let mut s = Sim::new();
    s.probe(online(&["sshd"]));
    ask(&mut s, 100.0, online(&["newjail", "sshd"]));
    s.at(101.0);
    s.activate("newjail");
    crash_now(&mut s, 102.0);
    let r = record_of(&s);
    assert_eq!((r.jail_name.as_str(), r.cause.code()), ("newjail", 1));
    assert!(!r.ran_before, "seen for 1 s only");
    s.m.handle_input(s.now, Input::RollbackStarted).unwrap();

    // Seen for a whole crash window before its activation, it ran before.
    let mut s = Sim::new();
    s.probe(online(&["sshd"]));
    ask(&mut s, 100.0, online(&["newjail", "sshd"]));
    ask(&mut s, 161.0, online(&["newjail", "sshd"]));
    s.activate("newjail");
    crash_now(&mut s, 162.0);
    assert!(record_of(&s).ran_before);
    assert_eq!(
        s.m.handle_input(s.now, Input::RollbackStarted),
        Err(Refusal::JailRanBefore("newjail".into()))
    );
}

#[test]
fn what_ran_before_survives_a_restart_of_the_daemon() {
    let mut s = Sim::new();
    s.probe(online(&["sshd"]));
    ask(&mut s, 100.0, online(&["fresh", "sshd"]));
    let memory = s.m.memory();
    assert_eq!(
        memory
            .seen_jails
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["fresh", "sshd"]
    );
    // The daemon restarts 10 s later; its first answer lists both jails.
    // sshd ran since before the daemon first looked; "fresh" was first
    // seen 11 s before its activation, even though this daemon sees it
    // from its first answer.
    for (jail, ran_before) in [("sshd", true), ("fresh", false)] {
        s.at(110.0);
        let m = Monitor::restored(s.m.timing(), s.now, memory.clone());
        let mut r = Sim {
            m,
            t0: s.t0,
            now: s.now,
            rollbacks: Default::default(),
        };
        r.next_probe();
        r.finish(online(&["fresh", "sshd"]));
        r.activate(jail);
        crash_now(&mut r, 111.0);
        let record = record_of(&r);
        assert_eq!(record.jail_name, jail);
        assert_eq!(record.ran_before, ran_before, "{jail}");
    }
}

#[test]
fn probes_the_daemon_cannot_make_never_spin_while_a_timeout_awaits_confirmation() {
    let mut s = Sim::new();
    s.probe(online(&["alpha"]));
    s.activate("beta");
    // A timeout inside the window is asked again at once...
    ask(&mut s, 1.0, Err(OfflineReason::Timeout));
    let due = s.next_probe();
    assert!((due - 1.0).abs() < 1e-6, "{due}");
    // ...but when the daemon itself cannot probe, not back to back.
    s.m.handle_input(s.now, Input::ProbeAborted).unwrap();
    let retry = s.m.poll_timeout().unwrap();
    assert!(retry >= s.now.mono + std::time::Duration::from_millis(999));
}
