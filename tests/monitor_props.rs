//! Property tests of the monitor's invariants over random sequences of
//! probe results, activations, requests, dismissals, passing time, unit
//! reports (with and without socket activation), socket appearances, idle
//! connection closes, and rollbacks starting and finishing.
//!
//! The seed is printed (shown when a case fails); replay a run with
//! `PROPTEST_RNG_SEED=<seed> cargo test --test monitor_props`.
#![allow(clippy::unwrap_used)]

mod sim;

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use fail2ban_healthd::health::{OfflineReason, ServerStatus};
use fail2ban_healthd::monitor::{
    Action, Activation, Event, Input, Monitor, Now, RecoveryRecord, Timing, UnitState,
};
use proptest::prelude::*;

const JAILS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Online(Vec<bool>),
    Offline(u32),
    /// The probe failed for a reason of the daemon's own.
    Aborted,
    Activate(usize),
    Request,
    Dismiss,
    /// A unit report: service state, result, invocation, restarts, socket.
    Unit(usize, usize, u8, u32, usize),
    SocketAppeared,
    IdleClosed,
    RollbackStart,
    RollbackFinish(bool),
}

const STATES: [&str; 6] = [
    "active",
    "reloading",
    "activating",
    "deactivating",
    "inactive",
    "failed",
];
const RESULTS: [&str; 4] = ["success", "exit-code", "signal", "start-limit-hit"];
const SOCKETS: [Option<&str>; 4] = [None, Some("active"), Some("failed"), Some("inactive")];

fn unit(op: (usize, usize, u8, u32, usize)) -> UnitState {
    let (state, result, invocation, restarts, socket) = op;
    UnitState {
        active_state: STATES[state].into(),
        result: RESULTS[result].into(),
        exit_status: if result == 0 { 0 } else { 255 },
        invocation_id: format!("{invocation:02x}"),
        n_restarts: restarts,
        socket_state: SOCKETS[socket].map(str::to_owned),
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..40_000).prop_map(Op::Advance),
        3 => prop::collection::vec(any::<bool>(), 4).prop_map(Op::Online),
        2 => (2u32..=8).prop_map(Op::Offline),
        1 => Just(Op::Aborted),
        1 => (0usize..4).prop_map(Op::Activate),
        1 => Just(Op::Request),
        1 => Just(Op::Dismiss),
        2 => (0usize..6, 0usize..4, 0u8..3, 0u32..3, 0usize..4)
            .prop_map(|(a, b, c, d, e)| Op::Unit(a, b, c, d, e)),
        1 => Just(Op::SocketAppeared),
        1 => Just(Op::IdleClosed),
        1 => Just(Op::RollbackStart),
        1 => any::<bool>().prop_map(Op::RollbackFinish),
    ]
}

fn status(running: &[bool]) -> ServerStatus {
    let names: Vec<&str> = JAILS
        .iter()
        .zip(running)
        .filter(|(_, r)| **r)
        .map(|(n, _)| *n)
        .collect();
    sim::online(&names).expect("online")
}

fn identity(r: &RecoveryRecord) -> (String, chrono::DateTime<Utc>, u32) {
    (r.jail_name.clone(), r.detected_at, r.cause.code())
}

/// The monitor under test and what the run knows beside it: the clock,
/// the last activation, the probes started and not finished, and the
/// rollback that runs.
struct Run {
    timing: Timing,
    now: Now,
    m: Monitor,
    last_activation_mono: Option<Instant>,
    outstanding: u32,
    rollback: Option<Activation>,
}

/// What the monitor announced during one step.
struct Announced {
    created: u32,
    resolved: u32,
}

impl Run {
    fn new() -> Self {
        let timing = Timing {
            probe_interval: Duration::from_secs(30),
            crash_window: Duration::from_secs(60),
            jail_start_grace: Duration::from_secs(5),
            watch_interval: Duration::from_secs(1),
            restart_grace: Duration::from_secs(15),
        };
        let t0 = Now {
            mono: Instant::now(),
            wall: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        };
        Run {
            timing,
            now: t0,
            m: Monitor::new(timing, t0),
            last_activation_mono: None,
            outstanding: 0,
            rollback: None,
        }
    }

    /// Applies `op`, the pending recovery being `before`; returns whether
    /// the record was dismissed.
    fn apply(&mut self, op: Op, before: &Option<RecoveryRecord>) -> Result<bool, TestCaseError> {
        let now = self.now;
        let m = &mut self.m;
        match op {
            Op::Advance(ms) => {
                self.now = now.after(Duration::from_millis(ms));
                if let Some(due) = m.poll_timeout()
                    && due <= self.now.mono
                {
                    m.handle_timeout(self.now);
                }
            }
            Op::Online(r) if m.probe_in_flight() => {
                m.handle_input(now, Input::ProbeFinished(Ok(status(&r))))
                    .unwrap();
                self.outstanding -= 1;
            }
            Op::Offline(c) if m.probe_in_flight() => {
                let reason = OfflineReason::from_code(c).unwrap();
                m.handle_input(now, Input::ProbeFinished(Err(reason)))
                    .unwrap();
                self.outstanding -= 1;
            }
            Op::Aborted if m.probe_in_flight() => {
                let snap = m.snapshot().clone();
                m.handle_input(now, Input::ProbeAborted).unwrap();
                self.outstanding -= 1;
                // Nothing learned, nothing changed.
                prop_assert_eq!(&snap, m.snapshot());
            }
            Op::Online(_) | Op::Offline(_) | Op::Aborted => {}
            Op::Activate(i) => {
                m.handle_input(
                    now,
                    Input::ActivationRegistered {
                        jail: JAILS[i].into(),
                    },
                )
                .unwrap();
                self.last_activation_mono = Some(now.mono);
            }
            Op::Request => m.handle_input(now, Input::ProbeRequested).unwrap(),
            Op::Unit(a, b, c, d, e) => {
                m.handle_input(now, Input::UnitChanged(unit((a, b, c, d, e))))
                    .unwrap();
            }
            Op::SocketAppeared => m.handle_input(now, Input::SocketAppeared).unwrap(),
            Op::IdleClosed => m.handle_input(now, Input::IdleConnectionClosed).unwrap(),
            Op::RollbackStart => self.start_rollback(before)?,
            Op::RollbackFinish(done) => {
                if let Some(activation) = self.rollback.take() {
                    m.handle_input(now, Input::RollbackFinished { activation, done })
                        .unwrap();
                }
            }
            Op::Dismiss => {
                // A running rollback owns the record.
                let may = before.is_some() && self.rollback.is_none();
                prop_assert_eq!(m.handle_input(now, Input::RecoveryDismissed).is_ok(), may);
                return Ok(may);
            }
        }
        Ok(false)
    }

    fn start_rollback(&mut self, before: &Option<RecoveryRecord>) -> Result<(), TestCaseError> {
        let started = self
            .m
            .handle_input(self.now, Input::RollbackStarted)
            .is_ok();
        // Refused while one runs, once rolled back, and for a
        // jail that ran before its activation.
        prop_assert_eq!(
            started,
            before
                .as_ref()
                .is_some_and(|r| !r.rolled_back && !r.ran_before)
                && self.rollback.is_none()
        );
        if started {
            let r = before.as_ref().unwrap();
            self.rollback = Some(Activation {
                jail_name: r.jail_name.clone(),
                activated_at: r.activated_at,
            });
        }
        Ok(())
    }

    /// Takes the step's actions and events, checking each.
    fn drain(&mut self) -> Result<Announced, TestCaseError> {
        let m = &mut self.m;
        let mut created = 0;
        let mut resolved = 0;
        while let Some(a) = m.poll_action() {
            match a {
                Action::StartProbe => {
                    self.outstanding += 1;
                    // Never a connection while it would start fail2ban.
                    prop_assert_eq!(m.connect_gate(), None);
                }
                // No trial is ever claimed here.
                a @ Action::RollBackTrial { .. } => {
                    prop_assert!(false, "a trial's rollback without a trial: {a:?}");
                }
            }
        }
        while let Some(e) = m.poll_event() {
            match e {
                Event::CrashDetected {
                    since_activation,
                    record,
                } => {
                    created += 1;
                    let at = self.last_activation_mono.expect("an activation exists");
                    // At the step's time, or at a grace's end passed
                    // during the step.
                    prop_assert!(since_activation <= self.now.mono - at);
                    prop_assert!(!record.recovered());
                }
                Event::RecoveryResolved { .. } => resolved += 1,
                Event::CameOnline { version } => prop_assert!(!version.is_empty()),
                Event::WentOffline { reason } => prop_assert_ne!(reason, OfflineReason::None),
                // No trial is ever claimed here.
                e @ Event::TrialEnded { .. } => {
                    prop_assert!(false, "a trial event without a trial: {e:?}");
                }
            }
        }
        Ok(Announced { created, resolved })
    }

    /// Probes, the connect gate, the next timeout and the snapshot agree.
    fn check_probing(&self, created: u32) -> Result<(), TestCaseError> {
        let (m, now, timing) = (&self.m, self.now, self.timing);
        // A rollback's restart is nobody's crash.
        if self.rollback.is_some() {
            prop_assert_eq!(created, 0);
        }
        let snap = m.snapshot();
        // Never two probes at a time.
        prop_assert!(self.outstanding <= 1);
        prop_assert_eq!(self.outstanding == 1, m.probe_in_flight());
        let gated = m.connect_gate().is_some();
        if gated {
            // The units say fail2ban is not up; nothing connects.
            prop_assert!(!snap.online);
            prop_assert_eq!(Some(snap.offline_reason), m.connect_gate());
        }
        // A next probe is always planned within one interval, and within
        // a watch interval while an activation's window is open, unless
        // a probe runs or connecting is not allowed.
        if !m.probe_in_flight() && !gated {
            let due = m.poll_timeout();
            prop_assert!(due.is_some());
            let due = due.unwrap();
            prop_assert!(due <= now.mono + timing.probe_interval);
            if self
                .last_activation_mono
                .is_some_and(|a| now.mono < a + timing.crash_window)
            {
                prop_assert!(due <= now.mono + timing.watch_interval, "close watch");
            }
        }
        // Online and the reason agree; offline shows no version or jails.
        prop_assert_eq!(snap.online, snap.offline_reason == OfflineReason::None);
        prop_assert_eq!(snap.online, !snap.version.is_empty());
        if !snap.online {
            prop_assert!(snap.jails.is_empty());
        }
        Ok(())
    }

    /// The pending recovery, `before` the step, after it.
    fn check_record(
        &self,
        before: &Option<RecoveryRecord>,
        dismissed: bool,
        Announced { created, resolved }: Announced,
    ) -> Result<(), TestCaseError> {
        let snap = self.m.snapshot();
        prop_assert!(created <= 1 && resolved <= 1);
        // An unresolved record is never overwritten.
        if let (Some(b), false) = (before, dismissed) {
            let after = snap
                .pending_recovery
                .as_ref()
                .expect("records only go by dismissal");
            if !b.recovered() && created == 0 {
                prop_assert_eq!(identity(b), identity(after));
                prop_assert_eq!(resolved == 1, after.recovered());
            } else if !b.recovered() {
                // Replaced only after being resolved in the same step
                // (fail2ban back, then a newer activation's jail missing).
                // (The new record may look the same when no time
                // passed: a second crash of the same jail.)
                prop_assert_eq!(resolved, 1);
                prop_assert!(!after.recovered());
            } else {
                prop_assert_eq!(resolved, 0);
            }
        }
        if dismissed {
            prop_assert!(snap.pending_recovery.is_none());
        }
        // A record exists exactly when one was created and not dismissed.
        if created == 1 {
            prop_assert!(
                snap.pending_recovery
                    .as_ref()
                    .is_some_and(|r| !r.recovered())
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(sim::seeded(512))]

    #[test]
    fn invariants_hold(ops in prop::collection::vec(op(), 1..120)) {
        let mut run = Run::new();
        for op in ops {
            let before = run.m.snapshot().pending_recovery.clone();
            let dismissed = run.apply(op, &before)?;
            let announced = run.drain()?;
            run.check_probing(announced.created)?;
            run.check_record(&before, dismissed, announced)?;
        }
    }
}
