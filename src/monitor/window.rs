//! Activation windows: how long after an activation a failure is
//! attributed to it, and which activations a record names as suspects.
//!
//! The latest activation opens an [`ActivationWindow`] for
//! [`Timing::crash_window`](super::Timing::crash_window) (or a trial's
//! whole length when longer). One window yields at most one record, so a
//! UI does not see the same story twice. Earlier activations still inside
//! the crash window are kept only to be listed as suspects.

use std::time::{Duration, Instant};

use super::{Activation, Monitor, Now};

/// At most this many recent activations are remembered for
/// `SuspectJails`; older ones inside the window are dropped first.
const MAX_SUSPECTS: usize = 32;

/// The latest activation, with what the attribution rules need beyond
/// what is shown.
#[derive(Debug, Clone)]
pub(super) struct ActivationWindow {
    /// The activation as published.
    pub activation: Activation,
    /// When it was registered, on the monotonic clock.
    pub opened: Instant,
    /// Jails running when the activation was registered (`None` when
    /// fail2ban was offline then: nothing can have vanished).
    pub jails_before: Option<Vec<String>>,
    /// A record was attributed to this activation already: one activation
    /// yields one record, so a UI does not see the same story twice (for
    /// instance a crash, then fail2ban restarted without the bad jail).
    pub spent: bool,
    /// The jail was running before the activation (or when fail2ban was
    /// last seen online).
    pub ran_before: bool,
    /// How long failures are attributed to it: the crash window, or a
    /// trial's length when longer.
    pub length: Duration,
}

impl ActivationWindow {
    /// Whether something seen at `at` falls inside the window.
    pub fn covers(&self, at: Instant) -> bool {
        at.saturating_duration_since(self.opened) <= self.length
    }

    /// When the window closes.
    pub fn closes(&self) -> Instant {
        self.opened + self.length
    }
}

impl Monitor {
    /// `jail` was just activated: it opens a new window (closing the
    /// previous one) and asks for a probe.
    pub(super) fn register_activation(&mut self, now: Now, jail: String) {
        let activation = Activation {
            jail_name: jail,
            activated_at: now.wall,
        };
        let jails_before = self.snapshot.online.then(|| self.snapshot.jail_names());
        // Running for a whole crash window already (or since before the
        // daemon first looked): not a jail a probe happened to see just
        // before its activation was registered.
        let ran_before =
            self.seen
                .ran_for(&activation.jail_name, self.timing.crash_window, now.mono);
        self.snapshot.last_activation = Some(activation.clone());
        self.recent.push_back((activation.clone(), now.mono));
        self.forget_old_activations(now);
        self.window = Some(ActivationWindow {
            activation,
            opened: now.mono,
            jails_before,
            spent: false,
            ran_before,
            length: self.timing.crash_window,
        });
        self.request_probe(now);
    }

    /// Marks the latest window spent: nothing more is attributed to it.
    pub(super) fn spend_window(&mut self) {
        if let Some(w) = self.window.as_mut() {
            w.spent = true;
        }
    }

    /// Keeps only activations that can still be blamed, and a bounded
    /// number of them.
    pub(super) fn forget_old_activations(&mut self, now: Now) {
        let window = self.timing.crash_window;
        while let Some((_, at)) = self.recent.front() {
            if now.mono.saturating_duration_since(*at) > window || self.recent.len() > MAX_SUSPECTS
            {
                self.recent.pop_front();
            } else {
                break;
            }
        }
    }

    /// Every jail activated within the crash window before `now`, newest
    /// first, each once.
    pub(super) fn suspects(&mut self, now: Now) -> Vec<String> {
        self.forget_old_activations(now);
        let mut names: Vec<String> = Vec::new();
        for (a, _) in self.recent.iter().rev() {
            if !names.contains(&a.jail_name) {
                names.push(a.jail_name.clone());
            }
        }
        names
    }

    /// The window a failure now would be attributed to, if any.
    pub(super) fn blamable(&self, now: Now) -> Option<ActivationWindow> {
        self.window
            .clone()
            .filter(|w| !w.spent && w.covers(now.mono))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn window(opened: Instant) -> ActivationWindow {
        ActivationWindow {
            activation: Activation {
                jail_name: "alpha".into(),
                activated_at: Utc::now(),
            },
            opened,
            jails_before: None,
            spent: false,
            ran_before: false,
            length: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_window_covers_its_whole_length_and_nothing_after() {
        let opened = Instant::now();
        let w = window(opened);
        assert!(w.covers(opened));
        assert!(w.covers(opened + Duration::from_secs(60)));
        assert!(!w.covers(opened + Duration::from_secs(60) + Duration::from_nanos(1)));
        assert_eq!(w.closes(), opened + Duration::from_secs(60));
    }

    #[test]
    fn a_failure_first_seen_before_the_activation_falls_inside() {
        // A refusal asked about once more is judged by when it was first
        // seen, which may precede an activation registered meanwhile.
        let opened = Instant::now() + Duration::from_secs(5);
        assert!(window(opened).covers(opened - Duration::from_secs(5)));
    }
}
