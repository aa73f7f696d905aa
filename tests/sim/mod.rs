//! A monitor on a fake clock, shared by the scenario tests, and the
//! seeded configuration of their random stories.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use fail2ban_healthd::health::{JailStats, OfflineReason, ServerStatus};
use fail2ban_healthd::monitor::{Action, Activation, Event, Input, Monitor, Now, Timing};
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

pub fn online(jails: &[&str]) -> Result<ServerStatus, OfflineReason> {
    Ok(ServerStatus {
        version: "1.0.2".into(),
        jails: jails
            .iter()
            .map(|n| JailStats {
                name: n.to_string(),
                currently_failed: 0,
                total_failed: 0,
                currently_banned: 0,
                total_banned: 0,
            })
            .collect(),
    })
}

/// A monitor on a fake clock, driven in its call order.
pub struct Sim {
    pub m: Monitor,
    pub t0: Now,
    pub now: Now,
    /// The trials' rollbacks the monitor asked for ([`Action::RollBackTrial`]),
    /// oldest first, until a test takes them with [`Sim::take_rollback`].
    pub rollbacks: VecDeque<(Activation, Option<String>)>,
}

impl Sim {
    /// The interval rules alone: no close watch (its interval is the
    /// whole window), as the design this project replaces had.
    pub fn new() -> Self {
        Self::with(Timing {
            watch_interval: Duration::from_secs(60),
            ..Timing::default()
        })
    }

    pub fn with(timing: Timing) -> Self {
        let t0 = Now {
            mono: Instant::now(),
            wall: Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap(),
        };
        Self {
            m: Monitor::new(timing, t0),
            t0,
            now: t0,
            rollbacks: VecDeque::new(),
        }
    }

    pub fn at(&mut self, s: f64) {
        let target = self.t0.after(secs(s));
        assert!(target.mono >= self.now.mono, "time runs forward");
        self.now = Now {
            mono: target.mono,
            wall: self.now.wall + (target.mono - self.now.mono),
        };
    }

    pub fn elapsed(&self) -> f64 {
        (self.now.mono - self.t0.mono).as_secs_f64()
    }

    /// Lets time pass to the next due probe, returns when it is (seconds).
    pub fn next_probe(&mut self) -> f64 {
        let due = self.m.poll_timeout().expect("a probe is scheduled");
        if due > self.now.mono {
            self.now = Now {
                mono: due,
                wall: self.now.wall + (due - self.now.mono),
            };
        }
        self.m.handle_timeout(self.now);
        assert!(self.actions(), "a probe starts");
        self.elapsed()
    }

    /// Runs the next due probe with this result; returns its events.
    pub fn probe(&mut self, result: Result<ServerStatus, OfflineReason>) -> Vec<Event> {
        self.next_probe();
        self.finish(result)
    }

    /// Finishes the probe in flight now.
    pub fn finish(&mut self, result: Result<ServerStatus, OfflineReason>) -> Vec<Event> {
        assert!(self.m.probe_in_flight());
        self.m
            .handle_input(self.now, Input::ProbeFinished(result))
            .unwrap();
        self.events()
    }

    /// A crash as the probes see it: refused, and refused again when asked
    /// once more shortly after. Returns the events of both.
    pub fn crash(&mut self) -> Vec<Event> {
        let mut events = self.finish(Err(OfflineReason::ConnectionRefused));
        assert_eq!(crash_events(&events), 0, "a first refusal is confirmed");
        events.extend(self.probe(Err(OfflineReason::ConnectionRefused)));
        events
    }

    /// Lets time run to `until`, every probe on the way failing for
    /// `reason`; returns the events.
    pub fn offline_until(&mut self, until: f64, reason: OfflineReason) -> Vec<Event> {
        let mut events = Vec::new();
        let end = self.t0.mono + secs(until);
        while let Some(due) = self.m.poll_timeout().filter(|d| *d <= end) {
            if due > self.now.mono {
                self.now = Now {
                    mono: due,
                    wall: self.now.wall + (due - self.now.mono),
                };
            }
            self.m.handle_timeout(self.now);
            events.extend(self.events());
            if self.actions() {
                events.extend(self.finish(Err(reason)));
            }
        }
        self.at(until);
        events
    }

    pub fn activate(&mut self, jail: &str) {
        self.m
            .handle_input(self.now, Input::ActivationRegistered { jail: jail.into() })
            .unwrap();
    }

    /// Drains the events.
    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.m.poll_event()).collect()
    }

    /// Drains the actions: true when a probe is to start (the caller
    /// finishes it); rollbacks are kept in [`Sim::rollbacks`].
    pub fn actions(&mut self) -> bool {
        let mut probe = false;
        while let Some(action) = self.m.poll_action() {
            match action {
                Action::StartProbe => probe = true,
                Action::RollBackTrial {
                    activation,
                    dropin_before,
                } => self.rollbacks.push_back((activation, dropin_before)),
            }
        }
        probe
    }

    /// The oldest trial rollback the monitor asked for and no test took
    /// yet.
    pub fn take_rollback(&mut self) -> Option<(Activation, Option<String>)> {
        self.actions();
        self.rollbacks.pop_front()
    }

    pub fn cause(&self) -> Option<(String, u32, bool)> {
        self.m
            .snapshot()
            .pending_recovery
            .as_ref()
            .map(|r| (r.jail_name.clone(), r.cause.code(), r.recovered()))
    }
}

pub fn crash_events(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::CrashDetected { .. }))
        .count()
}

/// The configuration of a property test with `cases` random stories, its
/// seed printed (cargo shows it when the test fails). The seed is random,
/// or `PROPTEST_RNG_SEED` when set; to replay a failure run
/// `PROPTEST_RNG_SEED=<printed seed> cargo test --test <file> <test>`.
/// (Cases saved in `*.proptest-regressions` run first either way.)
pub fn seeded(cases: u32) -> ProptestConfig {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| RandomState::new().hash_one(Instant::now()));
    eprintln!("proptest seed: {seed} (replay with PROPTEST_RNG_SEED={seed})");
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}
