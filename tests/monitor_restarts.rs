//! The restart rules of the monitor, on a fake clock: a clean stop opens
//! the restart grace and is recorded only by its outcome; an unclean loss
//! is recorded at once, also when systemd restarts fail2ban by itself;
//! under socket activation the units, not connections, say whether
//! fail2ban is up. See the D-Bus contract, "A restart is not a crash".
#![allow(clippy::unwrap_used)]

mod sim;

use fail2ban_healthd::health::OfflineReason;
use fail2ban_healthd::monitor::{Cause, Event, Input, Timing, UnitExit, UnitState};
use sim::{Sim, crash_events, online, secs};

const JAILS: [&str; 2] = ["alpha", "beta"];
const WITH_GOOD: [&str; 3] = ["alpha", "beta", "good"];

/// A daemon with close watch, fail2ban online with alpha and beta, and
/// `good` activated at 10 s and running (its jail list judged).
fn activated() -> Sim {
    let mut s = Sim::with(Timing::default());
    s.probe(online(&JAILS));
    s.at(10.0);
    s.activate("good");
    s.probe(online(&WITH_GOOD));
    s
}

/// Runs the due probes, each answering `jails`, until `until` seconds.
fn online_until(s: &mut Sim, until: f64, jails: &[&str]) -> Vec<Event> {
    let mut events = Vec::new();
    let end = s.t0.mono + secs(until);
    while let Some(due) = s.m.poll_timeout().filter(|d| *d <= end) {
        s.at((due - s.t0.mono).as_secs_f64());
        s.m.handle_timeout(s.now);
        events.extend(s.events());
        if s.actions() {
            events.extend(s.finish(online(jails)));
        }
    }
    s.at(until);
    events
}

/// A probe asked for now, with this result.
fn probe_now(
    s: &mut Sim,
    result: Result<fail2ban_healthd::health::ServerStatus, OfflineReason>,
) -> Vec<Event> {
    s.m.handle_input(s.now, Input::ProbeRequested).unwrap();
    s.probe(result)
}

fn unit(state: &str, result: &str, status: i32, invocation: &str, restarts: u32) -> UnitState {
    UnitState {
        active_state: state.into(),
        result: result.into(),
        exit_status: status,
        invocation_id: invocation.into(),
        n_restarts: restarts,
        socket_state: None,
    }
}

/// The unit in `state` with nothing wrong reported, in invocation `inv`.
fn ok_unit(state: &str, inv: &str) -> UnitState {
    unit(state, "success", 0, inv, 0)
}

/// As `activated`, fail2ban running as its systemd unit.
fn under_systemd() -> Sim {
    let mut s = activated();
    report(&mut s, ok_unit("active", "a1"));
    s
}

fn activated_unit(state: &str, socket: &str) -> UnitState {
    UnitState {
        socket_state: Some(socket.into()),
        ..unit(state, "success", 0, "a1", 0)
    }
}

/// Reports the unit; returns the events (a probe asked for is due at
/// `poll_timeout`, not started).
fn report(s: &mut Sim, state: UnitState) -> Vec<Event> {
    s.m.handle_input(s.now, Input::UnitChanged(state)).unwrap();
    s.events()
}

fn record(s: &Sim) -> fail2ban_healthd::monitor::RecoveryRecord {
    s.m.snapshot().pending_recovery.clone().expect("a record")
}

#[test]
fn a_restart_that_comes_back_healthy_records_nothing() {
    let mut s = activated();
    s.at(12.0);
    // fail2ban-client restart: the socket goes, then a new server answers.
    let events = probe_now(&mut s, Err(OfflineReason::SocketMissing));
    assert_eq!(
        events,
        [Event::WentOffline {
            reason: OfflineReason::SocketMissing
        }]
    );
    s.at(12.6);
    let mut events = probe_now(&mut s, online(&[]));
    // Its jails appear shortly after it first answers; judged once settled.
    events.extend(online_until(&mut s, 14.0, &WITH_GOOD));
    assert!(events.contains(&Event::CameOnline {
        version: "1.0.2".into()
    }));
    assert_eq!(crash_events(&events), 0, "{events:?}");
    // The grace is over (no timer left for it) and nothing was recorded
    // when it would have ended.
    let events = online_until(&mut s, 40.0, &WITH_GOOD);
    assert_eq!(crash_events(&events), 0, "{events:?}");
    assert!(s.m.snapshot().pending_recovery.is_none());
}

#[test]
fn the_activation_is_not_used_up_by_a_healthy_restart() {
    let mut s = activated();
    s.at(12.0);
    probe_now(&mut s, Err(OfflineReason::ShuttingDown));
    s.at(12.5);
    probe_now(&mut s, online(&WITH_GOOD));
    online_until(&mut s, 14.0, &WITH_GOOD);
    assert!(s.m.snapshot().pending_recovery.is_none());
    // A real crash later in the window is still attributed.
    s.at(30.0);
    probe_now(&mut s, Err(OfflineReason::ConnectionRefused));
    let events = s.probe(Err(OfflineReason::ConnectionRefused));
    assert_eq!(crash_events(&events), 1);
    assert_eq!(record(&s).jail_name, "good");
}

#[test]
fn the_grace_ending_with_fail2ban_down_records_at_that_moment() {
    let mut s = activated();
    s.at(12.0);
    probe_now(&mut s, Err(OfflineReason::SocketMissing));
    let events = s.offline_until(26.99, OfflineReason::SocketMissing);
    assert_eq!(crash_events(&events), 0, "{events:?}");
    let events = s.offline_until(27.0, OfflineReason::SocketMissing);
    assert_eq!(crash_events(&events), 1, "{events:?}");
    let r = record(&s);
    assert_eq!(r.cause, Cause::WentOffline(OfflineReason::SocketMissing));
    assert_eq!(r.detected_at, s.t0.wall + secs(27.0));
}

#[test]
fn a_grace_runs_out_even_after_the_window_closed() {
    let mut s = activated();
    // Stopped cleanly 1 s before the window (60 s from 10 s) closes.
    s.at(69.0);
    probe_now(&mut s, Err(OfflineReason::SocketMissing));
    let events = s.offline_until(84.0, OfflineReason::SocketMissing);
    assert_eq!(crash_events(&events), 1, "{events:?}");
}

#[test]
fn coming_back_without_the_jail_is_cause_2_and_without_others_cause_3() {
    let mut s = activated();
    s.at(12.0);
    probe_now(&mut s, Err(OfflineReason::SocketMissing));
    s.at(12.5);
    probe_now(&mut s, online(&JAILS));
    let events = online_until(&mut s, 14.0, &JAILS);
    assert_eq!(crash_events(&events), 1);
    assert_eq!(record(&s).cause, Cause::JailNotRunning);

    let mut s = activated();
    s.at(12.0);
    probe_now(&mut s, Err(OfflineReason::SocketMissing));
    s.at(12.5);
    probe_now(&mut s, online(&["good"]));
    let events = online_until(&mut s, 14.0, &["good"]);
    assert_eq!(crash_events(&events), 1);
    assert_eq!(
        record(&s).cause,
        Cause::JailsVanished(vec!["alpha".into(), "beta".into()])
    );
}

#[test]
fn going_down_again_before_the_verdict_is_recorded() {
    // Killed right after it came back: at once.
    let mut s = activated();
    s.at(12.0);
    probe_now(&mut s, Err(OfflineReason::SocketMissing));
    s.at(12.5);
    probe_now(&mut s, online(&WITH_GOOD));
    s.at(12.6);
    let events = probe_now(&mut s, Err(OfflineReason::ConnectionLost));
    assert_eq!(crash_events(&events), 1, "{events:?}");
    assert_eq!(
        record(&s).cause,
        Cause::WentOffline(OfflineReason::ConnectionLost)
    );
    // An invalid failregex at a restart without systemd: the server lists
    // its jails, then answers SHUTDOWN and exits. That stop is clean, so
    // it gets its own grace, and fail2ban still down when it ends is
    // recorded then. (Under systemd the unit's exit status 255 records it
    // at once.)
    let mut s = activated();
    s.at(12.0);
    probe_now(&mut s, Err(OfflineReason::SocketMissing));
    s.at(12.5);
    probe_now(&mut s, online(&WITH_GOOD));
    s.at(12.6);
    let events = probe_now(&mut s, Err(OfflineReason::ShuttingDown));
    assert_eq!(crash_events(&events), 0, "{events:?}");
    let events = s.offline_until(27.5, OfflineReason::SocketMissing);
    assert_eq!(crash_events(&events), 0, "{events:?}");
    let events = s.offline_until(27.6, OfflineReason::SocketMissing);
    assert_eq!(crash_events(&events), 1, "{events:?}");
}

#[test]
fn a_refusal_then_a_missing_socket_is_a_clean_stop() {
    // fail2ban 1.1.1 sometimes refuses for a moment while it stops.
    let mut s = activated();
    s.at(12.0);
    let events = probe_now(&mut s, Err(OfflineReason::ConnectionRefused));
    assert_eq!(crash_events(&events), 0);
    // Asked again 10 ms later.
    assert!((s.next_probe() - 12.01).abs() < 1e-9);
    let events = s.finish(Err(OfflineReason::SocketMissing));
    assert_eq!(crash_events(&events), 0);
    s.at(13.0);
    probe_now(&mut s, online(&WITH_GOOD));
    let events = online_until(&mut s, 40.0, &WITH_GOOD);
    assert_eq!(crash_events(&events), 0, "{events:?}");
}

#[test]
fn unclean_losses_are_recorded_at_once() {
    for reason in [
        OfflineReason::ConnectionLost,
        OfflineReason::ProtocolError,
        OfflineReason::PermissionDenied,
    ] {
        let mut s = activated();
        s.at(12.0);
        let events = probe_now(&mut s, Err(reason));
        assert_eq!(crash_events(&events), 1, "{reason}");
        assert_eq!(record(&s).detected_at, s.t0.wall + secs(12.0));
    }
}

#[test]
fn a_timeout_is_asked_again_at_once_before_it_counts() {
    // A hung server: two timeouts in a row.
    let mut s = activated();
    s.at(12.0);
    let events = probe_now(&mut s, Err(OfflineReason::Timeout));
    assert_eq!(crash_events(&events), 0);
    assert_eq!(s.next_probe(), 12.0, "asked again at once");
    s.at(17.0);
    let events = s.finish(Err(OfflineReason::Timeout));
    assert_eq!(crash_events(&events), 1);
    assert_eq!(record(&s).cause, Cause::WentOffline(OfflineReason::Timeout));
    // A slow answer after a timeout: fail2ban was busy, not gone.
    let mut s = activated();
    s.at(12.0);
    probe_now(&mut s, Err(OfflineReason::Timeout));
    s.next_probe();
    let mut events = s.finish(online(&WITH_GOOD));
    events.extend(online_until(&mut s, 40.0, &WITH_GOOD));
    assert_eq!(crash_events(&events), 0, "{events:?}");
    // fail2ban 1.1 stopping its jails answers nothing, then its socket
    // goes: a clean stop after all.
    let mut s = activated();
    s.at(12.0);
    probe_now(&mut s, Err(OfflineReason::Timeout));
    s.next_probe();
    s.at(15.0);
    let events = s.finish(Err(OfflineReason::SocketMissing));
    assert_eq!(crash_events(&events), 0);
    s.at(15.5);
    probe_now(&mut s, online(&WITH_GOOD));
    let events = online_until(&mut s, 40.0, &WITH_GOOD);
    assert_eq!(crash_events(&events), 0, "{events:?}");
}

#[test]
fn a_lost_held_connection_then_a_new_server_is_a_crash() {
    // Under socket activation a crashed server is replaced before any
    // probe can fail: only the lost connection shows it.
    let mut s = activated();
    s.at(12.0);
    s.m.handle_input(s.now, Input::IdleConnectionClosed)
        .unwrap();
    s.next_probe();
    let events = s.finish(online(&WITH_GOOD));
    assert_eq!(crash_events(&events), 1, "{events:?}");
    assert_eq!(
        record(&s).cause,
        Cause::WentOffline(OfflineReason::ConnectionLost)
    );
}

#[test]
fn a_systemctl_restart_with_a_good_jail_records_nothing() {
    let mut s = under_systemd();
    s.at(12.0);
    // The stop job: deactivating with Result=success, the old server still
    // answering for a moment, then gone.
    report(&mut s, ok_unit("deactivating", "a1"));
    s.next_probe();
    s.finish(online(&WITH_GOOD));
    s.at(12.3);
    s.m.handle_input(s.now, Input::IdleConnectionClosed)
        .unwrap();
    s.next_probe();
    s.finish(Err(OfflineReason::SocketMissing));
    report(&mut s, ok_unit("inactive", "a1"));
    s.at(12.4);
    report(&mut s, ok_unit("active", "b2"));
    s.at(12.6);
    let mut events = probe_now(&mut s, online(&WITH_GOOD));
    events.extend(online_until(&mut s, 40.0, &WITH_GOOD));
    assert_eq!(crash_events(&events), 0, "{events:?}");
}

#[test]
fn a_restart_into_a_bad_jail_is_recorded_when_the_unit_fails() {
    let mut s = under_systemd();
    s.at(12.0);
    report(&mut s, ok_unit("deactivating", "a1"));
    s.at(12.3);
    s.next_probe();
    s.finish(Err(OfflineReason::SocketMissing));
    report(&mut s, ok_unit("active", "b2"));
    s.at(12.5);
    let events = report(&mut s, unit("failed", "exit-code", 255, "b2", 0));
    assert_eq!(crash_events(&events), 1, "{events:?}");
    let r = record(&s);
    assert_eq!(r.detected_at, s.t0.wall + secs(12.5));
    assert_eq!(
        r.unit_exit,
        Some(UnitExit {
            result: "exit-code".into(),
            exit_status: 255
        })
    );
    assert_eq!(s.m.snapshot().offline_reason, OfflineReason::UnitFailed);
}

#[test]
fn a_crash_that_systemd_restarts_is_a_crash() {
    let killed = UnitExit {
        result: "signal".into(),
        exit_status: 9,
    };
    // Seen step by step.
    let mut s = under_systemd();
    s.at(12.0);
    let events = report(&mut s, unit("deactivating", "signal", 9, "a1", 0));
    assert_eq!(crash_events(&events), 1, "{events:?}");
    assert_eq!(record(&s).unit_exit, Some(killed.clone()));
    // Seen only afterwards: a new invocation, NRestarts up, the result
    // already reset by the new start.
    let mut s = under_systemd();
    s.at(12.0);
    let events = report(&mut s, unit("active", "success", 0, "b2", 1));
    assert_eq!(crash_events(&events), 1, "{events:?}");
    // And fail2ban answering again does not undo it.
    let mut events = s.probe(online(&WITH_GOOD));
    events.extend(online_until(&mut s, 20.0, &WITH_GOOD));
    assert_eq!(crash_events(&events), 0);
    assert_eq!(record(&s).jail_name, "good");
}

#[test]
fn a_refused_connection_joined_by_the_unit_records_how_it_ended() {
    let mut s = under_systemd();
    s.at(12.0);
    probe_now(&mut s, Err(OfflineReason::ConnectionRefused));
    let events = report(&mut s, unit("activating", "signal", 9, "a1", 0));
    assert_eq!(crash_events(&events), 1);
    assert_eq!(
        record(&s).unit_exit.map(|u| u.result),
        Some("signal".into())
    );
}

#[test]
fn under_socket_activation_a_stopped_service_is_never_connected_to() {
    let mut s = Sim::with(Timing::default());
    let events = report(&mut s, activated_unit("inactive", "active"));
    assert!(events.is_empty(), "no probe: {events:?}");
    assert_eq!(s.m.connect_gate(), Some(OfflineReason::Inactive));
    assert_eq!(s.m.snapshot().offline_reason, OfflineReason::Inactive);
    assert_eq!(s.m.poll_timeout(), None);
    // Nothing asks for a connection: not a request, not an activation.
    s.m.handle_input(s.now, Input::ProbeRequested).unwrap();
    s.activate("good");
    s.m.handle_input(s.now, Input::SocketAppeared).unwrap();
    s.at(120.0);
    s.m.handle_timeout(s.now);
    assert!(s.events().is_empty());
    // The service starts (someone else started it): probe at once.
    report(&mut s, activated_unit("active", "active"));
    assert!(
        s.m.poll_timeout().is_some_and(|due| due <= s.now.mono),
        "a probe is due"
    );
}

#[test]
fn under_socket_activation_the_units_give_the_reason() {
    let mut s = Sim::with(Timing::default());
    report(&mut s, activated_unit("active", "active"));
    s.probe(online(&JAILS));
    let events = report(&mut s, activated_unit("inactive", "active"));
    assert_eq!(
        events,
        [Event::WentOffline {
            reason: OfflineReason::Inactive
        }]
    );
    // A failed socket listens no more: a connection starts nothing, so the
    // daemon may probe, and the units name the reason.
    report(&mut s, activated_unit("inactive", "failed"));
    assert_eq!(s.m.snapshot().offline_reason, OfflineReason::SocketFailed);
    assert_eq!(s.m.connect_gate(), None);
    s.probe(Err(OfflineReason::SocketMissing));
    assert_eq!(s.m.snapshot().offline_reason, OfflineReason::SocketFailed);
    // A failed service behind a listening socket: not connected to.
    let failed = UnitState {
        result: "exit-code".into(),
        exit_status: 255,
        ..activated_unit("failed", "active")
    };
    report(&mut s, failed.clone());
    assert_eq!(s.m.snapshot().offline_reason, OfflineReason::UnitFailed);
    assert_eq!(s.m.poll_timeout(), None);
    // start-limit-hit fails both: the service's failure is the reason.
    report(
        &mut s,
        UnitState {
            socket_state: Some("failed".into()),
            ..failed
        },
    );
    assert_eq!(s.m.snapshot().offline_reason, OfflineReason::UnitFailed);
}

#[test]
fn under_socket_activation_a_stop_and_start_of_the_service_is_a_restart() {
    let mut s = Sim::with(Timing::default());
    report(&mut s, activated_unit("active", "active"));
    s.probe(online(&JAILS));
    s.at(10.0);
    s.activate("good");
    s.probe(online(&WITH_GOOD));
    s.at(12.0);
    let events = report(&mut s, activated_unit("deactivating", "active"));
    assert_eq!(crash_events(&events), 0);
    report(&mut s, activated_unit("inactive", "active"));
    s.at(12.5);
    report(
        &mut s,
        UnitState {
            invocation_id: "b2".into(),
            ..activated_unit("active", "active")
        },
    );
    assert!(
        s.m.poll_timeout().is_some_and(|due| due <= s.now.mono),
        "a probe is due"
    );
    // A new server answers with no jails at first, then with all of them.
    let mut events = s.probe(online(&[]));
    events.extend(online_until(&mut s, 40.0, &WITH_GOOD));
    assert_eq!(crash_events(&events), 0, "{events:?}");
}

#[test]
fn a_failed_unit_without_activation_names_the_reason() {
    let mut s = Sim::with(Timing::default());
    report(&mut s, ok_unit("active", "a1"));
    s.probe(online(&JAILS));
    report(&mut s, unit("failed", "exit-code", 255, "a1", 0));
    s.next_probe();
    s.finish(Err(OfflineReason::SocketMissing));
    assert_eq!(s.m.snapshot().offline_reason, OfflineReason::UnitFailed);
    // Probing goes on: without activation a connection starts nothing.
    assert!(s.m.poll_timeout().is_some());
}

#[test]
fn the_grace_counts_from_the_end_of_a_slow_systemd_stop() {
    // fail2ban 1.1 with many jails: the stop job runs 20 s, longer than
    // the 15 s grace, answering nothing meanwhile.
    let mut s = under_systemd();
    s.at(12.0);
    report(&mut s, ok_unit("deactivating", "a1"));
    let events = s.offline_until(32.0, OfflineReason::Timeout);
    assert_eq!(crash_events(&events), 0, "{events:?}");
    report(&mut s, ok_unit("inactive", "a1"));
    report(&mut s, ok_unit("active", "b2"));
    let events = s.offline_until(33.0, OfflineReason::SocketMissing);
    assert_eq!(crash_events(&events), 0, "{events:?}");
    let mut events = probe_now(&mut s, online(&WITH_GOOD));
    events.extend(online_until(&mut s, 60.0, &WITH_GOOD));
    assert_eq!(crash_events(&events), 0, "{events:?}");
    // The same stop followed by no return is recorded a grace after the
    // stop ended, not after it began.
    let mut s = under_systemd();
    s.at(12.0);
    report(&mut s, ok_unit("deactivating", "a1"));
    s.offline_until(32.0, OfflineReason::Timeout);
    report(&mut s, ok_unit("inactive", "a1"));
    let events = s.offline_until(46.9, OfflineReason::SocketMissing);
    assert_eq!(crash_events(&events), 0, "{events:?}");
    let events = s.offline_until(47.0, OfflineReason::SocketMissing);
    assert_eq!(crash_events(&events), 1, "{events:?}");
}

#[test]
fn a_second_restart_before_the_verdict_on_the_first_is_a_restart_too() {
    // systemctl restart twice in a row: the second stop job begins while
    // the first return's jail list is still settling.
    let mut s = under_systemd();
    s.at(12.0);
    report(&mut s, ok_unit("deactivating", "a1"));
    s.next_probe();
    s.finish(Err(OfflineReason::SocketMissing));
    report(&mut s, ok_unit("active", "b2"));
    s.at(12.5);
    let mut events = probe_now(&mut s, online(&WITH_GOOD));
    s.at(12.6);
    events.extend(report(&mut s, ok_unit("deactivating", "b2")));
    s.next_probe();
    events.extend(s.finish(Err(OfflineReason::SocketMissing)));
    report(&mut s, ok_unit("active", "c3"));
    s.at(13.0);
    events.extend(probe_now(&mut s, online(&WITH_GOOD)));
    events.extend(online_until(&mut s, 40.0, &WITH_GOOD));
    assert_eq!(crash_events(&events), 0, "{events:?}");
    // The same without systemd: the socket goes again right after the
    // return (fail2ban-client restart twice).
    let mut s = activated();
    s.at(12.0);
    probe_now(&mut s, Err(OfflineReason::SocketMissing));
    s.at(12.5);
    let mut events = probe_now(&mut s, online(&WITH_GOOD));
    s.at(12.6);
    events.extend(probe_now(&mut s, Err(OfflineReason::SocketMissing)));
    s.at(13.0);
    events.extend(probe_now(&mut s, online(&WITH_GOOD)));
    events.extend(online_until(&mut s, 40.0, &WITH_GOOD));
    assert_eq!(crash_events(&events), 0, "{events:?}");
}

#[test]
fn a_return_cut_short_by_another_stop_is_judged_at_the_next_return() {
    // The first return is stopped again before its list settled; the
    // second one comes back without the jail: cause 2.
    let mut s = activated();
    s.at(12.0);
    probe_now(&mut s, Err(OfflineReason::SocketMissing));
    s.at(12.5);
    probe_now(&mut s, online(&[]));
    s.at(12.6);
    let mut events = probe_now(&mut s, Err(OfflineReason::SocketMissing));
    assert_eq!(
        crash_events(&events),
        0,
        "an unsettled list says nothing yet"
    );
    s.at(13.0);
    events.extend(probe_now(&mut s, online(&JAILS)));
    events.extend(online_until(&mut s, 15.0, &JAILS));
    assert_eq!(crash_events(&events), 1, "{events:?}");
    assert_eq!(record(&s).cause, Cause::JailNotRunning);
}

#[test]
fn jails_gone_just_before_a_graceful_stop_are_not_cause_3() {
    // fail2ban 1.1 stopping: its last answer lists no jail, then its
    // socket goes; it comes back healthy.
    let mut s = activated();
    online_until(&mut s, 12.0, &WITH_GOOD);
    let events = probe_now(&mut s, online(&[]));
    assert_eq!(crash_events(&events), 0, "judged once the list holds still");
    s.at(12.05);
    probe_now(&mut s, Err(OfflineReason::SocketMissing));
    s.at(13.0);
    let mut events = probe_now(&mut s, online(&WITH_GOOD));
    events.extend(online_until(&mut s, 40.0, &WITH_GOOD));
    assert_eq!(crash_events(&events), 0, "{events:?}");
    // A reload that drops the other jails for good is still cause 3: half
    // a second after the change once the jail start grace (5 s after the
    // activation at 10 s) is over.
    let mut s = activated();
    online_until(&mut s, 15.0, &WITH_GOOD);
    let mut events = probe_now(&mut s, online(&["good"]));
    events.extend(online_until(&mut s, 15.4, &["good"]));
    assert_eq!(crash_events(&events), 0, "{events:?}");
    let events = online_until(&mut s, 16.0, &["good"]);
    assert_eq!(crash_events(&events), 1, "{events:?}");
    assert_eq!(
        record(&s).cause,
        Cause::JailsVanished(vec!["alpha".into(), "beta".into()])
    );
}

#[test]
fn an_answer_from_the_old_server_while_systemd_stops_it_is_no_return() {
    let mut s = under_systemd();
    s.at(12.0);
    let mut events = report(&mut s, ok_unit("deactivating", "a1"));
    s.next_probe();
    s.at(17.0);
    events.extend(s.finish(Err(OfflineReason::Timeout)));
    s.next_probe();
    s.at(19.0);
    // Its last answer: no jails left.
    events.extend(s.finish(online(&[])));
    s.at(19.05);
    events.extend(probe_now(&mut s, Err(OfflineReason::SocketMissing)));
    events.extend(report(&mut s, ok_unit("inactive", "a1")));
    s.at(19.2);
    events.extend(report(&mut s, ok_unit("active", "b2")));
    s.at(19.5);
    events.extend(probe_now(&mut s, online(&WITH_GOOD)));
    events.extend(online_until(&mut s, 60.0, &WITH_GOOD));
    assert_eq!(crash_events(&events), 0, "{events:?}");
}

#[test]
fn a_return_just_before_the_grace_ends_is_judged_once_settled() {
    let mut s = activated();
    s.at(12.0);
    probe_now(&mut s, Err(OfflineReason::SocketMissing));
    let events = s.offline_until(26.9, OfflineReason::SocketMissing);
    assert_eq!(crash_events(&events), 0);
    // Back at 26.9 s with its jails not listed yet.
    let mut events = probe_now(&mut s, online(&[]));
    events.extend(online_until(&mut s, 60.0, &WITH_GOOD));
    assert_eq!(crash_events(&events), 0, "{events:?}");
}

#[test]
fn a_zero_grace_does_not_spin_while_systemd_stops_fail2ban() {
    let mut s = Sim::with(Timing {
        restart_grace: std::time::Duration::ZERO,
        ..Timing::default()
    });
    s.probe(online(&JAILS));
    s.at(10.0);
    s.activate("good");
    s.probe(online(&WITH_GOOD));
    report(&mut s, ok_unit("active", "a1"));
    s.at(12.0);
    report(&mut s, ok_unit("deactivating", "a1"));
    s.next_probe();
    for i in 0..100 {
        s.at(12.0 + f64::from(i) * 1e-6);
        s.m.handle_timeout(s.now);
        assert!(
            s.m.poll_timeout().is_some_and(|due| due > s.now.mono),
            "due again at once after wake-up {i}"
        );
    }
}

#[test]
fn a_stop_that_systemd_never_reports_finished_is_recorded_in_the_end() {
    let mut s = under_systemd();
    s.at(12.0);
    report(&mut s, ok_unit("deactivating", "a1"));
    let events = s.offline_until(3600.0, OfflineReason::SocketMissing);
    assert_eq!(crash_events(&events), 1, "{events:?}");
}

#[test]
fn under_socket_activation_a_closed_connection_waits_for_the_unit() {
    let mut s = Sim::with(Timing::default());
    report(&mut s, activated_unit("active", "active"));
    s.probe(online(&JAILS));
    // Before the next interval probe, due at 30 s.
    s.at(20.0);
    s.m.handle_input(s.now, Input::IdleConnectionClosed)
        .unwrap();
    s.m.handle_timeout(s.now);
    assert!(!s.actions(), "a connection now could start fail2ban again");
}

#[test]
fn a_failed_socket_does_not_stop_probes_of_a_running_service() {
    // fail2ban 1.1.1: a restart leaves its socket unit failed, and the
    // service runs on its own socket.
    let mut s = Sim::with(Timing::default());
    report(&mut s, activated_unit("active", "active"));
    s.probe(online(&JAILS));
    s.at(10.0);
    s.activate("good");
    s.probe(online(&WITH_GOOD));
    s.at(12.0);
    let mut events = report(&mut s, activated_unit("deactivating", "active"));
    events.extend(report(&mut s, activated_unit("inactive", "failed")));
    s.at(12.5);
    events.extend(report(
        &mut s,
        UnitState {
            invocation_id: "b2".into(),
            ..activated_unit("active", "failed")
        },
    ));
    assert_eq!(s.m.connect_gate(), None);
    let mut more = s.probe(online(&WITH_GOOD));
    more.extend(online_until(&mut s, 60.0, &WITH_GOOD));
    events.extend(more);
    assert_eq!(crash_events(&events), 0, "{events:?}");
}
