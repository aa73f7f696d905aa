//! Since when each jail has been running, as the probes saw it: what tells
//! a jail that protected the machine before its activation from a new one
//! that a probe happened to see a moment before the activation was
//! registered.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// A jail missing from the answers for this long is forgotten: it was
/// switched off, and switching it on again later makes it new.
const FORGET_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
struct Entry {
    /// When first seen; `None`: it ran before the daemon first looked.
    first: Option<Instant>,
    /// The same on the wall clock, for the state file.
    first_wall: Option<DateTime<Utc>>,
    /// When last seen in an answer.
    last: Instant,
}

/// The jails seen running, each with when it was first seen.
#[derive(Debug, Clone, Default)]
pub(super) struct Seen {
    jails: HashMap<String, Entry>,
    /// An answer has been seen (or remembered): a jail new to the list is
    /// new, not one that ran before the daemon looked.
    looked: bool,
}

impl Seen {
    /// What a state file remembered: jails with when they were first seen
    /// (wall clock; `None` for before the daemon first looked).
    pub fn restored(list: &[(String, Option<DateTime<Utc>>)], now: super::Now) -> Self {
        let jails = list
            .iter()
            .map(|(name, first_wall)| {
                // A time the monotonic clock cannot go back to counts as
                // before the daemon first looked.
                let first = first_wall.map(|wall| {
                    let ago = (now.wall - wall).to_std().unwrap_or(Duration::ZERO);
                    now.mono.checked_sub(ago)
                });
                (
                    name.clone(),
                    Entry {
                        first: first.flatten(),
                        first_wall: first.flatten().and(*first_wall),
                        last: now.mono,
                    },
                )
            })
            .collect();
        Self {
            jails,
            looked: !list.is_empty(),
        }
    }

    /// What a state file keeps, sorted by name.
    pub fn remembered(&self) -> Vec<(String, Option<DateTime<Utc>>)> {
        let mut list: Vec<_> = self
            .jails
            .iter()
            .map(|(name, e)| (name.clone(), e.first_wall))
            .collect();
        list.sort();
        list
    }

    /// The jails of an answer.
    pub fn saw(&mut self, names: &[String], now: super::Now) {
        let looked = self.looked;
        for name in names {
            self.jails
                .entry(name.clone())
                .and_modify(|e| e.last = now.mono)
                .or_insert(Entry {
                    first: looked.then_some(now.mono),
                    first_wall: looked.then_some(now.wall),
                    last: now.mono,
                });
        }
        self.jails
            .retain(|_, e| now.mono.saturating_duration_since(e.last) < FORGET_AFTER);
        self.looked = true;
    }

    /// Whether `jail` had been running for at least `long` at `now` (or
    /// since before the daemon first looked).
    pub fn ran_for(&self, jail: &str, long: Duration, now: Instant) -> bool {
        self.jails.get(jail).is_some_and(|e| {
            e.first
                .is_none_or(|first| now.saturating_duration_since(first) >= long)
        })
    }
}
