//! Trials in the monitor, on a fake clock: kept at the deadline, rolled
//! back on a failure attributed to them, confirmed, aborted, refused, and
//! resumed after a restart of the daemon.
#![allow(clippy::unwrap_used)]

mod sim;

use std::time::Duration;

use fail2ban_healthd::health::{OfflineReason, ServerStatus};
use std::time::Instant;

use fail2ban_healthd::monitor::{
    Action, Activation, Cause, Event, Input, Monitor, Refusal, Timing,
};
use sim::{Sim, online, secs};

const BEFORE: &str = "# Written by fail2ban-healthd: x\n\n[old]\nenabled = false\n";

fn timing() -> Timing {
    Timing::default()
}

/// fail2ban online with alpha and beta, then a trial of gamma for
/// `timeout` seconds at t = 10 s.
fn trial(timeout: f64) -> Sim {
    let mut s = Sim::with(timing());
    s.probe(online(&["alpha", "beta"]));
    s.at(10.0);
    s.m.handle_input(
        s.now,
        Input::TrialClaimed {
            jail: "gamma".into(),
        },
    )
    .unwrap();
    s.m.handle_input(
        s.now,
        Input::TrialStarted {
            jail: "gamma".into(),
            timeout: secs(timeout),
            dropin_before: Some(BEFORE.into()),
        },
    )
    .unwrap();
    s
}

/// Runs every due step until `until` (seconds), each probe answered by
/// `answer(elapsed)`; returns the events (rollbacks asked for wait in
/// `s.rollbacks`).
fn run(
    s: &mut Sim,
    until: f64,
    answer: impl Fn(f64) -> Result<ServerStatus, OfflineReason>,
) -> Vec<Event> {
    let mut events = Vec::new();
    let end = s.t0.mono + secs(until);
    while let Some(due) = s.m.poll_timeout().filter(|d| *d <= end) {
        if due > s.now.mono {
            s.at((due - s.t0.mono).as_secs_f64());
        }
        s.m.handle_timeout(s.now);
        events.extend(s.events());
        if s.actions() {
            let result = answer(s.elapsed());
            events.extend(s.finish(result));
        }
    }
    s.at(until);
    events
}

fn ended(events: &[Event]) -> Vec<(String, bool, u32)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TrialEnded { jail, kept, cause } => Some((jail.clone(), *kept, *cause)),
            _ => None,
        })
        .collect()
}

/// The daemon's rollback of `activation` ended well.
fn rollback_done(s: &mut Sim, activation: Activation) {
    s.m.handle_input(
        s.now,
        Input::RollbackFinished {
            activation,
            done: true,
        },
    )
    .unwrap();
}

#[test]
fn a_healthy_trial_is_kept_at_its_deadline_and_not_before() {
    let mut s = trial(30.0);
    let t = s.m.snapshot().trial.clone().unwrap();
    assert_eq!(t.jail_name, "gamma");
    assert_eq!(t.deadline_at - t.started_at, chrono::Duration::seconds(30));
    assert_eq!(
        s.m.snapshot().last_activation.as_ref().unwrap().jail_name,
        "gamma"
    );
    let events = run(&mut s, 39.9, |_| online(&["alpha", "beta", "gamma"]));
    assert!(ended(&events).is_empty(), "{events:?}");
    assert!(s.m.snapshot().trial.is_some());
    let events = run(&mut s, 41.0, |_| online(&["alpha", "beta", "gamma"]));
    assert_eq!(ended(&events), [("gamma".into(), true, 0)]);
    assert!(s.m.snapshot().trial.is_none());
    assert!(s.m.snapshot().pending_recovery.is_none());
    assert!(s.m.memory().trial.is_none());
}

#[test]
fn a_jail_that_never_starts_is_rolled_back_with_the_drop_in_it_found() {
    let mut s = trial(60.0);
    let events = run(&mut s, 20.0, |_| online(&["alpha", "beta"]));
    let (activation, before) = s.take_rollback().expect("a rollback is due");
    assert_eq!(activation.jail_name, "gamma");
    assert_eq!(before.as_deref(), Some(BEFORE));
    // Cause 2, found once the jail's start grace has passed.
    assert_eq!(s.cause(), Some(("gamma".into(), 2, false)));
    assert!(ended(&events).is_empty());
    // A manual rollback, a second trial and a confirmation wait for it.
    assert_eq!(
        s.m.handle_input(s.now, Input::RollbackStarted),
        Err(Refusal::TrialRunning)
    );
    assert_eq!(
        s.m.handle_input(
            s.now,
            Input::TrialClaimed {
                jail: "delta".into()
            }
        ),
        Err(Refusal::TrialRunning)
    );
    assert_eq!(
        s.m.handle_input(s.now, Input::TrialConfirmed),
        Err(Refusal::RollbackRunning)
    );
    rollback_done(&mut s, activation);
    let events = s.events();
    assert_eq!(ended(&events), [("gamma".into(), false, 2)]);
    let r = s.m.snapshot().pending_recovery.clone().unwrap();
    assert!(r.rolled_back && r.auto_rolled_back);
    assert!(s.m.snapshot().trial.is_none());
}

#[test]
fn vanished_jails_roll_the_trial_back_with_cause_3() {
    let mut s = trial(60.0);
    let events = run(&mut s, 20.0, |_| online(&["gamma"]));
    assert!(s.take_rollback().is_some(), "{events:?}");
    assert_eq!(s.cause().map(|c| c.1), Some(3));
}

#[test]
fn a_crash_after_the_crash_window_but_inside_a_longer_trial_is_the_trials() {
    let mut s = trial(120.0);
    let events = run(&mut s, 100.0, |_| online(&["alpha", "beta", "gamma"]));
    assert!(s.take_rollback().is_none(), "{events:?}");
    // 90 s after the activation: past the 60 s window, inside the trial.
    let events = run(&mut s, 102.0, |_| Err(OfflineReason::ConnectionRefused));
    assert!(s.take_rollback().is_some(), "{events:?}");
    assert_eq!(s.cause().map(|c| c.1), Some(1));
}

#[test]
fn confirm_keeps_and_abort_rolls_back_without_a_record() {
    let mut s = trial(60.0);
    run(&mut s, 15.0, |_| online(&["alpha", "beta", "gamma"]));
    s.m.handle_input(s.now, Input::TrialConfirmed).unwrap();
    assert_eq!(ended(&s.events()), [("gamma".into(), true, 0)]);
    assert_eq!(
        s.m.handle_input(s.now, Input::TrialConfirmed),
        Err(Refusal::NoTrial)
    );
    assert_eq!(
        s.m.handle_input(s.now, Input::TrialAborted),
        Err(Refusal::NoTrial)
    );

    let mut s = trial(60.0);
    run(&mut s, 15.0, |_| online(&["alpha", "beta", "gamma"]));
    s.m.handle_input(s.now, Input::TrialAborted).unwrap();
    let (activation, _) = s.take_rollback().unwrap();
    rollback_done(&mut s, activation);
    assert_eq!(ended(&s.events()), [("gamma".into(), false, 0)]);
    assert!(s.m.snapshot().pending_recovery.is_none());
}

#[test]
fn a_trial_is_refused_when_it_cannot_be_judged() {
    let mut s = Sim::with(timing());
    s.probe(online(&["alpha"]));
    let claim = |s: &mut Sim, jail: &str| {
        s.m.handle_input(s.now, Input::TrialClaimed { jail: jail.into() })
    };
    assert!(matches!(claim(&mut s, "alpha"), Err(Refusal::JailRunning(j)) if j == "alpha"));
    claim(&mut s, "gamma").unwrap();
    assert_eq!(claim(&mut s, "delta"), Err(Refusal::TrialRunning));
    // A cancelled claim frees the slot and leaves no activation.
    s.m.handle_input(s.now, Input::TrialCancelled).unwrap();
    assert!(s.m.snapshot().last_activation.is_none());
    claim(&mut s, "delta").unwrap();
    s.m.handle_input(s.now, Input::TrialCancelled).unwrap();

    let mut s = Sim::with(timing());
    s.probe(Err(OfflineReason::SocketMissing));
    assert!(matches!(
        claim(&mut s, "gamma"),
        Err(Refusal::NotHealthy(_))
    ));
}

#[test]
fn a_trial_cancelled_after_it_started_blames_nobody() {
    let mut s = trial(60.0);
    s.m.handle_input(s.now, Input::TrialCancelled).unwrap();
    let mut events = s.events();
    events.extend(run(&mut s, 80.0, |_| online(&["alpha", "beta"])));
    assert_eq!(ended(&events), [("gamma".into(), false, 0)]);
    assert!(s.take_rollback().is_none(), "{events:?}");
    assert!(s.m.snapshot().pending_recovery.is_none(), "{events:?}");
}

#[test]
fn a_restored_trial_keeps_its_wall_clock_deadline() {
    let mut s = trial(60.0);
    run(&mut s, 20.0, |_| online(&["alpha", "beta", "gamma"]));
    let memory = s.m.memory();
    assert!(memory.trial.is_some());
    // The daemon comes back 20 s later: 30 s are left.
    let now = s.now.after(secs(20.0));
    let mut m = Monitor::restored(timing(), now, memory.clone());
    assert_eq!(m.snapshot().trial, memory.trial);
    let mut s2 = Sim::with(timing());
    s2.t0 = now;
    s2.now = now;
    std::mem::swap(&mut s2.m, &mut m);
    let events = run(&mut s2, 29.0, |_| online(&["alpha", "beta", "gamma"]));
    assert!(ended(&events).is_empty(), "{events:?}");
    let events = run(&mut s2, 31.0, |_| online(&["alpha", "beta", "gamma"]));
    assert_eq!(ended(&events), [("gamma".into(), true, 0)]);
}

#[test]
fn a_trial_whose_deadline_passed_while_the_daemon_was_down_is_judged_at_once() {
    let mut s = trial(30.0);
    run(&mut s, 12.0, |_| online(&["alpha", "beta", "gamma"]));
    let memory = s.m.memory();
    // Back 10 minutes later, fail2ban gone meanwhile.
    let now = s.now.after(Duration::from_secs(600));
    let mut s2 = Sim::with(timing());
    s2.t0 = now;
    s2.now = now;
    s2.m = Monitor::restored(timing(), now, memory);
    let events = run(&mut s2, 0.5, |_| Err(OfflineReason::SocketMissing));
    let (activation, before) = s2.take_rollback().expect("judged at once");
    assert!(ended(&events).is_empty(), "{events:?}");
    assert_eq!(activation.jail_name, "gamma");
    assert_eq!(before.as_deref(), Some(BEFORE));
    let r = s2.m.snapshot().pending_recovery.clone().unwrap();
    assert_eq!(r.cause, Cause::WentOffline(OfflineReason::SocketMissing));
}

mod props {
    //! Random stories with trials: whatever happens, a trial ends once,
    //! is kept only when confirmed or healthy at its deadline, and its
    //! rollback is asked for once and never overlaps a record.
    //!
    //! The seed is printed (shown when a case fails); replay a run with
    //! `PROPTEST_RNG_SEED=<seed> cargo test --test monitor_trials props`.
    use super::*;
    use proptest::prelude::*;

    const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];

    #[derive(Debug, Clone)]
    enum Op {
        Advance(u64),
        Answer([bool; 3]),
        Offline(u32),
        Try(usize, u64),
        Confirm,
        Abort,
        Activate(usize),
        FinishRollback(bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..20_000).prop_map(Op::Advance),
            4 => any::<[bool; 3]>().prop_map(Op::Answer),
            1 => (2u32..=8).prop_map(Op::Offline),
            2 => (0usize..3, 1u64..120).prop_map(|(j, t)| Op::Try(j, t)),
            1 => Just(Op::Confirm),
            1 => Just(Op::Abort),
            1 => (0usize..3).prop_map(Op::Activate),
            2 => any::<bool>().prop_map(Op::FinishRollback),
        ]
    }

    fn answer(running: [bool; 3]) -> Result<ServerStatus, OfflineReason> {
        let names: Vec<&str> = NAMES
            .iter()
            .zip(running)
            .filter(|(_, r)| *r)
            .map(|(n, _)| *n)
            .collect();
        online(&names)
    }

    /// The simulated monitor, the trial that runs (with its deadline) and
    /// the trial's rollback that is due.
    struct Story {
        s: Sim,
        running: Option<(String, Instant)>,
        rollback: Option<Activation>,
    }

    impl Story {
        fn new() -> Self {
            let mut s = Sim::with(timing());
            s.probe(online(&["alpha"]));
            Story {
                s,
                running: None,
                rollback: None,
            }
        }

        /// Applies `op`; returns whether it confirmed the trial.
        fn apply(&mut self, op: Op) -> Result<bool, TestCaseError> {
            let s = &mut self.s;
            match op {
                Op::Advance(ms) => {
                    s.now = s.now.after(Duration::from_millis(ms));
                    if s.m.poll_timeout().is_some_and(|d| d <= s.now.mono) {
                        s.m.handle_timeout(s.now);
                    }
                }
                Op::Answer(r) if s.m.probe_in_flight() => {
                    s.m.handle_input(s.now, Input::ProbeFinished(answer(r)))
                        .unwrap();
                }
                Op::Offline(c) if s.m.probe_in_flight() => {
                    let reason = OfflineReason::from_code(c).unwrap();
                    s.m.handle_input(s.now, Input::ProbeFinished(Err(reason)))
                        .unwrap();
                }
                Op::Answer(_) | Op::Offline(_) => {}
                Op::Try(j, secs_) => self.try_jail(j, secs_)?,
                Op::Confirm => {
                    let r = s.m.handle_input(s.now, Input::TrialConfirmed);
                    prop_assert_eq!(r.is_ok(), self.running.is_some() && self.rollback.is_none());
                    return Ok(r.is_ok());
                }
                Op::Abort => {
                    let r = s.m.handle_input(s.now, Input::TrialAborted);
                    prop_assert_eq!(r.is_ok(), self.running.is_some() && self.rollback.is_none());
                }
                Op::Activate(j) => {
                    s.m.handle_input(
                        s.now,
                        Input::ActivationRegistered {
                            jail: NAMES[j].into(),
                        },
                    )
                    .unwrap();
                }
                Op::FinishRollback(done) => {
                    if let Some(activation) = self.rollback.take() {
                        s.m.handle_input(s.now, Input::RollbackFinished { activation, done })
                            .unwrap();
                    }
                }
            }
            Ok(false)
        }

        /// Claims and starts a trial of jail `j` for `secs_` seconds.
        fn try_jail(&mut self, j: usize, secs_: u64) -> Result<(), TestCaseError> {
            let s = &mut self.s;
            let claimed = s.m.handle_input(
                s.now,
                Input::TrialClaimed {
                    jail: NAMES[j].into(),
                },
            );
            if self.running.is_some() || self.rollback.is_some() {
                prop_assert!(claimed.is_err());
            }
            if claimed.is_ok() {
                s.m.handle_input(
                    s.now,
                    Input::TrialStarted {
                        jail: NAMES[j].into(),
                        timeout: secs(secs_ as f64),
                        dropin_before: None,
                    },
                )
                .unwrap();
                self.running = Some((NAMES[j].into(), s.now.mono + secs(secs_ as f64)));
            }
            Ok(())
        }

        /// Checks the step's events; returns how many trials ended.
        fn check_events(&mut self, confirmed: bool) -> Result<u32, TestCaseError> {
            let mut ends = 0;
            // Events first: a record and the rollback it asks for come
            // in the same step, the record first.
            for e in self.s.events() {
                match e {
                    Event::TrialEnded { jail, kept, cause } => {
                        ends += 1;
                        let (name, due) = self.running.take().expect("a trial was running");
                        prop_assert_eq!(&jail, &name);
                        if kept {
                            prop_assert_eq!(cause, 0);
                            let snap = self.s.m.snapshot();
                            let healthy = snap.online && snap.jails.iter().any(|j| j.name == name);
                            prop_assert!(
                                confirmed || (self.s.now.mono >= due && healthy),
                                "kept without being confirmed or healthy at its deadline"
                            );
                        }
                        prop_assert!(self.rollback.is_none() || !kept);
                    }
                    Event::CrashDetected { .. } => {
                        prop_assert!(
                            self.rollback.is_none(),
                            "no record while a trial's rollback runs"
                        );
                    }
                    _ => {}
                }
            }
            Ok(ends)
        }

        /// Takes the step's actions: a trial's rollback, one at a time.
        fn take_rollbacks(&mut self) -> Result<(), TestCaseError> {
            while let Some(action) = self.s.m.poll_action() {
                if let Action::RollBackTrial { activation, .. } = action {
                    prop_assert!(self.rollback.is_none(), "one rollback at a time");
                    prop_assert_eq!(
                        Some(&activation.jail_name),
                        self.running.as_ref().map(|r| &r.0)
                    );
                    self.rollback = Some(activation);
                }
            }
            Ok(())
        }

        /// The property and the memory show exactly the running trial,
        /// which has a wake-up planned.
        fn check_trial_shown(&self) -> Result<(), TestCaseError> {
            let s = &self.s;
            prop_assert_eq!(
                s.m.snapshot().trial.as_ref().map(|t| t.jail_name.clone()),
                self.running.as_ref().map(|r| r.0.clone())
            );
            prop_assert_eq!(s.m.memory().trial.is_some(), self.running.is_some());
            if s.m.probe_in_flight() {
                return Ok(());
            }
            // A running trial always has a wake-up planned.
            if self.running.is_some() && self.rollback.is_none() {
                prop_assert!(s.m.poll_timeout().is_some());
            }
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(sim::seeded(512))]

        #[test]
        fn a_trial_ends_once_and_is_kept_only_when_it_earned_it(ops in prop::collection::vec(op(), 1..150)) {
            let mut story = Story::new();
            for op in ops {
                let confirmed = story.apply(op)?;
                let ends = story.check_events(confirmed)?;
                story.take_rollbacks()?;
                prop_assert!(ends <= 1);
                story.check_trial_shown()?;
            }
        }
    }
}

/// A restart's return is judged against the activation its stop was for:
/// one registered while the return's jail list settles (a trial started
/// right after a restart) had no chance to start its jail yet, and is
/// judged by its own start grace.
#[test]
fn a_return_judges_only_the_activation_its_stop_was_for() {
    let mut s = Sim::with(timing());
    s.probe(online(&["alpha", "beta"]));
    s.at(10.0);
    s.activate("gamma");
    run(&mut s, 20.0, |_| online(&["alpha", "beta", "gamma"]));
    // A clean stop (a restart), then the server back.
    let mut events = run(&mut s, 22.5, |_| Err(OfflineReason::SocketMissing));
    s.m.handle_input(s.now, Input::ProbeRequested).unwrap();
    let back = s.elapsed() + 0.001;
    events.extend(run(&mut s, back, |_| online(&["alpha", "beta", "gamma"])));
    assert!(
        events.iter().any(|e| matches!(e, Event::CameOnline { .. })),
        "{events:?}"
    );
    // Before the list has settled, a trial of delta starts.
    s.m.handle_input(
        s.now,
        Input::TrialClaimed {
            jail: "delta".into(),
        },
    )
    .unwrap();
    s.m.handle_input(
        s.now,
        Input::TrialStarted {
            jail: "delta".into(),
            timeout: secs(10.0),
            dropin_before: None,
        },
    )
    .unwrap();
    let started = s.elapsed();
    // delta runs a second later, after its reload.
    let events = run(&mut s, 40.0, |t| {
        if t < started + 1.0 {
            online(&["alpha", "beta", "gamma"])
        } else {
            online(&["alpha", "beta", "delta", "gamma"])
        }
    });
    assert!(s.m.snapshot().pending_recovery.is_none(), "{events:?}");
    assert_eq!(ended(&events), [("delta".into(), true, 0)]);
}
