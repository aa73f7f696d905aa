//! Who may call the managing methods.
//!
//! Managers (`RegisterActivation`, `DismissRecovery`): uid 0, members of
//! `manage_group`, or callers polkit authorizes for
//! `org.fail2ban_healthd.manage`. Rollback managers (`Rollback`): uid 0,
//! members of `rollback_group`, or callers polkit authorizes for
//! `org.fail2ban_healthd.rollback`. The two are checked separately:
//! `manage_group` does not grant `Rollback`.
//!
//! Root and group members are answered from the caller's credentials and
//! never wait on polkit. Everyone else costs a polkit check, so those are
//! bounded: at most [`Limits::GLOBAL`] pending at once, at most
//! [`Limits::PER_USER`] for one calling uid (however many connections it
//! opens), each with a time limit after which it is cancelled in polkit
//! too. A call over a cap is refused at once. This keeps the daemon's
//! pending calls to polkit far below the bus's limit of pending replies
//! per connection (128 on the system bus), so that callers flooding a
//! slow polkit cannot lock out an administrator.
//!
//! When the bus does not report the caller's groups, the group database is
//! asked on a blocking thread, with a time limit, so that a hanging
//! LDAP/SSSD cannot stall the daemon; a lookup that does not answer counts
//! as "not a member".

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;
use zbus::Connection;
use zbus::fdo::DBusProxy;
use zbus::message::{Flags, Header};
use zbus::names::BusName;
use zbus::proxy::CacheProperties;
use zbus_polkit::policykit1::{AuthorityProxy, CheckAuthorizationFlags, Subject};

use super::error::HealthError;

/// The polkit action that lets other callers manage.
pub const MANAGE_ACTION: &str = "org.fail2ban_healthd.manage";
/// The polkit action that lets other callers roll back.
pub const ROLLBACK_ACTION: &str = "org.fail2ban_healthd.rollback";

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// `RegisterActivation`, `DismissRecovery`.
    Manage,
    /// `Rollback`.
    Rollback,
}

impl Right {
    /// The polkit action asked for this right.
    pub fn action(self) -> &'static str {
        match self {
            Right::Manage => MANAGE_ACTION,
            Right::Rollback => ROLLBACK_ACTION,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Right::Manage => "manage fail2ban-healthd",
            Right::Rollback => "roll back jails",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Right::Manage => "manage_group",
            Right::Rollback => "rollback_group",
        }
    }
}

/// The groups whose members hold a right without asking polkit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Groups {
    /// `manage_group`'s gid: members may manage.
    pub manage: Option<u32>,
    /// `rollback_group`'s gid: members may roll back.
    pub rollback: Option<u32>,
}

impl Groups {
    fn of(self, right: Right) -> Option<u32> {
        match right {
            Right::Manage => self.manage,
            Right::Rollback => self.rollback,
        }
    }
}

/// The bounds on authorization checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// polkit checks pending at once, for all callers together.
    pub global: usize,
    /// polkit checks pending at once for one calling uid.
    pub per_user: usize,
    /// How long polkit may take when the call does not allow interaction.
    pub non_interactive: Duration,
    /// How long polkit may take when the call allows interaction (a person
    /// answers an authentication dialog).
    pub interactive: Duration,
    /// How long a group-database lookup may take.
    pub group_lookup: Duration,
    /// Group-database lookups running at once (a hung one keeps its place
    /// until it returns).
    pub group_lookups: usize,
}

impl Limits {
    /// Default of [`Limits::global`].
    pub const GLOBAL: usize = 32;
    /// Default of [`Limits::per_user`].
    pub const PER_USER: usize = 4;
    /// Default of [`Limits::non_interactive`]: polkit answers at once
    /// unless it has to ask someone.
    pub const NON_INTERACTIVE: Duration = Duration::from_secs(5);
    /// Default of [`Limits::interactive`]: time for a person to answer
    /// the dialog, ending before the 60 s call timeout an interactive
    /// client is advised to use, so that it gets the answer.
    pub const INTERACTIVE: Duration = Duration::from_secs(55);
    /// Default of [`Limits::group_lookup`].
    pub const GROUP_LOOKUP: Duration = Duration::from_secs(5);
    /// Default of [`Limits::group_lookups`].
    pub const GROUP_LOOKUPS: usize = 4;
    /// How long a `CancelCheckAuthorization` may take.
    const CANCEL: Duration = Duration::from_secs(2);

    fn check(&self, interactive: bool) -> Duration {
        if interactive {
            self.interactive
        } else {
            self.non_interactive
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            global: Self::GLOBAL,
            per_user: Self::PER_USER,
            non_interactive: Self::NON_INTERACTIVE,
            interactive: Self::INTERACTIVE,
            group_lookup: Self::GROUP_LOOKUP,
            group_lookups: Self::GROUP_LOOKUPS,
        }
    }
}

/// polkit checks in flight.
#[derive(Debug, Default)]
struct Pending {
    total: usize,
    by_uid: HashMap<u32, usize>,
}

/// Decides who may call; shared by every call of the served object.
#[derive(Debug)]
pub struct Authorizer {
    groups: Groups,
    limits: Limits,
    pending: Arc<Mutex<Pending>>,
    lookups: Arc<Semaphore>,
    next_id: AtomicU64,
}

/// One place among the pending polkit checks, given back when dropped
/// (also when the call's task is dropped).
struct Slot {
    pending: Arc<Mutex<Pending>>,
    uid: u32,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.total = p.total.saturating_sub(1);
        if let Some(n) = p.by_uid.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                p.by_uid.remove(&self.uid);
            }
        }
    }
}

impl Authorizer {
    /// An authorizer with the default [`Limits`].
    pub fn new(groups: Groups) -> Self {
        Self::with_limits(groups, Limits::default())
    }

    /// An authorizer with other limits.
    pub fn with_limits(groups: Groups, limits: Limits) -> Self {
        Self {
            groups,
            limits,
            pending: Arc::default(),
            lookups: Arc::new(Semaphore::new(limits.group_lookups)),
            next_id: AtomicU64::new(1),
        }
    }

    /// The caller's uid when it holds `right`, else `NotAuthorized` saying
    /// why.
    ///
    /// # Errors
    /// `NotAuthorized`, or a bus failure while asking for the caller's
    /// credentials.
    pub async fn authorize(
        &self,
        right: Right,
        header: &Header<'_>,
        conn: &Connection,
    ) -> Result<u32, HealthError> {
        let sender = header
            .sender()
            .ok_or_else(|| HealthError::NotAuthorized("the call has no sender".into()))?;
        let creds = DBusProxy::builder(conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await?
            .get_connection_credentials(BusName::from(sender.to_owned()))
            .await
            .map_err(|e| HealthError::ZBus(e.into()))?;
        let uid = creds.unix_user_id().ok_or_else(|| {
            HealthError::NotAuthorized("the bus does not say who the caller is".into())
        })?;
        if uid == 0 {
            return Ok(uid);
        }
        if let Some(gid) = self.groups.of(right) {
            let member = match creds.unix_group_ids() {
                Some(groups) => groups.contains(&gid),
                // The bus did not say: ask the group database.
                None => self.member_by_nss(uid, gid).await,
            };
            if member {
                return Ok(uid);
            }
        }
        let _slot = self.take_slot(right, uid)?;
        let interactive = header
            .primary()
            .flags()
            .contains(Flags::ALLOW_INTERACTIVE_AUTH);
        match self.polkit(right, header, conn, uid, interactive).await {
            Answer::Yes => Ok(uid),
            Answer::Challenge => Err(HealthError::NotAuthorized(format!(
                "uid {uid} may not {}: polkit requires authentication for {}; call again \
                 allowing interactive authorization",
                right.verb(),
                right.action()
            ))),
            Answer::TimedOut(limit) => Err(HealthError::NotAuthorized(format!(
                "uid {uid} may not {}: polkit did not answer within {}s",
                right.verb(),
                limit.as_secs()
            ))),
            Answer::No => Err(HealthError::NotAuthorized(format!(
                "uid {uid} may not {}: use sudo, join the group set as {}, or get polkit's \
                 authorization for {}",
                right.verb(),
                right.key(),
                right.action()
            ))),
        }
    }

    /// A place among the pending polkit checks, or `NotAuthorized` at once
    /// when a cap is reached.
    fn take_slot(&self, right: Right, uid: u32) -> Result<Slot, HealthError> {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = p.by_uid.get(&uid).copied().unwrap_or(0);
        let refusal = if p.total >= self.limits.global {
            Some(format!(
                "too many authorization checks pending ({} for all callers)",
                self.limits.global
            ))
        } else if mine >= self.limits.per_user {
            Some(format!(
                "too many authorization checks pending ({} for uid {uid})",
                self.limits.per_user
            ))
        } else {
            None
        };
        if let Some(why) = refusal {
            tracing::warn!(
                uid,
                action = right.action(),
                "polkit_check_refused_over_cap"
            );
            return Err(HealthError::NotAuthorized(format!(
                "uid {uid} may not {} now: {why}; try again later",
                right.verb()
            )));
        }
        p.total += 1;
        *p.by_uid.entry(uid).or_default() += 1;
        Ok(Slot {
            pending: Arc::clone(&self.pending),
            uid,
        })
    }

    /// Asks polkit about the caller's bus name, taken from the message
    /// header (polkit resolves it to the caller's process), never about
    /// this daemon's own process. No polkit on the bus, or any failure,
    /// means no. A check that outlives its limit is cancelled in polkit.
    async fn polkit(
        &self,
        right: Right,
        header: &Header<'_>,
        conn: &Connection,
        uid: u32,
        interactive: bool,
    ) -> Answer {
        let Ok(subject) = Subject::new_for_message_header(header) else {
            return Answer::No;
        };
        let authority = match AuthorityProxy::builder(conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "polkit_unavailable");
                return Answer::No;
            }
        };
        let flags = if interactive {
            CheckAuthorizationFlags::ALLOW_USER_INTERACTION
        } else {
            CheckAuthorizationFlags::empty()
        };
        let id = format!(
            "fail2ban-healthd-{}-{}",
            std::process::id(),
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let limit = self.limits.check(interactive);
        let details = HashMap::new();
        let check = authority.check_authorization(&subject, right.action(), &details, flags, &id);
        match tokio::time::timeout(limit, check).await {
            Ok(Ok(r)) if r.is_authorized => Answer::Yes,
            Ok(Ok(r)) if r.is_challenge => Answer::Challenge,
            Ok(Ok(_)) => Answer::No,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "polkit_unavailable");
                Answer::No
            }
            Err(_) => {
                tracing::warn!(
                    uid,
                    action = right.action(),
                    interactive,
                    limit_secs = limit.as_secs(),
                    cancellation_id = %id,
                    "polkit_check_timed_out"
                );
                // polkit answers the cancelled check, which frees its place
                // among the bus's pending replies.
                let cancel = authority.cancel_check_authorization(&id);
                match tokio::time::timeout(Limits::CANCEL, cancel).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "polkit_cancel_failed"),
                    Err(_) => tracing::warn!("polkit_cancel_timed_out"),
                }
                Answer::TimedOut(limit)
            }
        }
    }

    /// Whether `uid` belongs to `gid` according to the group database,
    /// asked off the runtime's thread.
    async fn member_by_nss(&self, uid: u32, gid: u32) -> bool {
        member_within(
            &self.lookups,
            self.limits.group_lookup,
            move || user_in_group(uid, gid),
            uid,
        )
        .await
    }
}

/// polkit's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Yes,
    /// Authentication would grant it, but interaction was not allowed.
    Challenge,
    No,
    TimedOut(Duration),
}

/// Runs the blocking `lookup` on the blocking pool, holding one of
/// `lookups`' permits until it returns; false (not a member) when no permit
/// is free, when it takes longer than `limit`, or when it panics.
async fn member_within<F>(lookups: &Arc<Semaphore>, limit: Duration, lookup: F, uid: u32) -> bool
where
    F: FnOnce() -> bool + Send + 'static,
{
    let Ok(permit) = Arc::clone(lookups).try_acquire_owned() else {
        tracing::warn!(uid, "group_lookup_skipped_lookups_hanging");
        return false;
    };
    let task = tokio::task::spawn_blocking(move || {
        let member = lookup();
        drop(permit);
        member
    });
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(member)) => member,
        Ok(Err(e)) => {
            tracing::warn!(uid, error = %e, "group_lookup_failed");
            false
        }
        Err(_) => {
            tracing::warn!(
                uid,
                limit_secs = limit.as_secs(),
                "group_lookup_timed_out_not_a_member"
            );
            false
        }
    }
}

/// Whether `uid` belongs to `gid` (primary or supplementary) according to
/// the system's databases. Blocks.
fn user_in_group(uid: u32, gid: u32) -> bool {
    use nix::unistd::{Gid, Uid, User, getgrouplist};
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return false;
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return false;
    };
    getgrouplist(&name, user.gid).is_ok_and(|groups| groups.contains(&Gid::from_raw(gid)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn each_right_asks_its_own_action_and_group() {
        assert_eq!(Right::Manage.action(), "org.fail2ban_healthd.manage");
        assert_eq!(Right::Rollback.action(), "org.fail2ban_healthd.rollback");
        let g = Groups {
            manage: Some(10),
            rollback: None,
        };
        assert_eq!(g.of(Right::Manage), Some(10));
        assert_eq!(g.of(Right::Rollback), None);
    }

    #[test]
    fn interactive_checks_get_the_longer_limit() {
        let l = Limits::default();
        assert_eq!(l.check(false), Duration::from_secs(5));
        assert_eq!(l.check(true), Duration::from_secs(55));
        assert!(l.global < 128 && l.per_user < l.global);
    }

    #[test]
    fn caps_are_global_and_per_uid_and_slots_come_back() {
        let a = Authorizer::with_limits(
            Groups::default(),
            Limits {
                global: 3,
                per_user: 2,
                ..Limits::default()
            },
        );
        let s1 = a.take_slot(Right::Manage, 1000).unwrap();
        let s2 = a.take_slot(Right::Rollback, 1000).unwrap();
        let err = a.take_slot(Right::Manage, 1000).err().unwrap().to_string();
        assert!(
            err.contains("too many authorization checks pending (2 for uid 1000)"),
            "{err}"
        );
        let s3 = a.take_slot(Right::Manage, 1001).unwrap();
        let err = a.take_slot(Right::Manage, 1002).err().unwrap().to_string();
        assert!(
            err.contains("too many authorization checks pending (3 for all callers)"),
            "{err}"
        );
        drop(s1);
        let _s4 = a.take_slot(Right::Manage, 1002).unwrap();
        drop((s2, s3));
        let p = a.pending.lock().unwrap();
        assert_eq!(p.total, 1);
        assert_eq!(p.by_uid.get(&1000), None);
        assert_eq!(p.by_uid.get(&1002), Some(&1));
    }

    /// A group lookup that hangs (as NSS does when LDAP or SSSD does not
    /// answer) runs off the runtime's only thread, ends at its limit, and
    /// counts as "not a member"; while it hangs its permit stays taken.
    #[tokio::test(flavor = "current_thread")]
    async fn a_hanging_group_lookup_times_out_closed_without_blocking_the_runtime() {
        let lookups = Arc::new(Semaphore::new(1));
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let start = Instant::now();
        let check = tokio::spawn({
            let lookups = Arc::clone(&lookups);
            async move {
                member_within(
                    &lookups,
                    Duration::from_millis(500),
                    move || {
                        let _ = entered_tx.send(());
                        // Would say "member" if it ever came back in time.
                        let _ = release_rx.recv_timeout(Duration::from_secs(30));
                        true
                    },
                    1000,
                )
                .await
            }
        });
        tokio::time::timeout(Duration::from_secs(10), entered_rx)
            .await
            .expect("the lookup started")
            .unwrap();
        // The lookup now blocks its thread; this runtime's one thread is
        // still free to run other tasks.
        let other = tokio::time::timeout(Duration::from_millis(100), tokio::spawn(async { 7 }))
            .await
            .expect("the runtime is not blocked")
            .unwrap();
        assert_eq!(other, 7);
        assert!(!check.is_finished(), "the lookup is still hanging");
        let member = tokio::time::timeout(Duration::from_secs(10), check)
            .await
            .expect("the limit ended the wait")
            .unwrap();
        assert!(!member, "a lookup that did not answer is not membership");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(500), "{took:?}");
        assert!(took < Duration::from_secs(10), "{took:?}");
        // The hung thread keeps its permit: a second lookup is refused at
        // once, closed, without starting another thread.
        let start = Instant::now();
        assert!(!member_within(&lookups, Duration::from_secs(5), || true, 1000).await);
        assert!(start.elapsed() < Duration::from_secs(1));
        release_tx.send(()).unwrap();
        // Once it returns, lookups run again.
        let deadline = Instant::now() + Duration::from_secs(10);
        while lookups.available_permits() == 0 {
            assert!(Instant::now() < deadline, "the permit never came back");
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(member_within(&lookups, Duration::from_secs(5), || true, 1000).await);
    }
}
