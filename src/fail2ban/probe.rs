//! One health probe of fail2ban: its version and every jail's counters.
//!
//! Owns the choice of commands. On ONE connection it asks `version`, then
//! `stats` (fail2ban 1.1 and later answer for all jails in one round trip);
//! when `stats` is unknown (code 1, fail2ban 1.0) it falls back to `status`
//! and one `status JAIL short` per jail. It never asks for banned-address
//! lists, which can be huge. One deadline covers the whole probe, and one
//! decoding budget ([`Budget`]) all its replies.
//!
//! Requests go out together in one write wherever they can, since on a
//! small server each wake-up of either side costs more than the work. A
//! [`Prober`] that probes the same server again remembers what it learned:
//! whether this version answers `stats`, and if not, which jails ran last
//! time, so a steady-state probe is one write and one round trip on every
//! version. Whatever changed (a version, a new jail) is noticed in the
//! replies, and the probe then learns afresh.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use super::client::{Connection, Error};
use super::codec::{self, Reply};
use super::pickle_guard::Budget;
use crate::health::{JailStats, ServerStatus};

/// Debian's default control socket.
pub const DEFAULT_SOCKET: &str = "/run/fail2ban/fail2ban.sock";

/// Default deadline for one whole probe.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    /// fail2ban's control socket.
    pub socket: PathBuf,
    /// Deadline for the whole probe: connect and every request.
    pub timeout: Duration,
    /// Cap on one reply's size in bytes.
    pub max_reply: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            timeout: DEFAULT_TIMEOUT,
            max_reply: codec::DEFAULT_MAX_REPLY,
        }
    }
}

/// Probes fail2ban once, on a connection of its own.
///
/// # Errors
/// Any [`Error`]; [`Error::offline_reason`] says how to publish it.
pub async fn probe_once(config: &ProbeConfig) -> Result<ServerStatus, Error> {
    Prober::new(config.clone()).probe().await
}

/// Probes one fail2ban server again and again, remembering what it
/// supports so that each probe takes as few round trips as it can.
#[derive(Debug)]
pub struct Prober {
    config: ProbeConfig,
    capability: Capability,
    /// Whether the connection stays open between probes.
    hold: bool,
    /// The connection kept from the last probe, when holding.
    held: Option<Connection>,
    /// Whether a probe that lost its connection may open another: not
    /// under socket activation, where a connection to a server that just
    /// went away would start fail2ban again.
    reconnect: bool,
}

/// What the prober has learned about the server's commands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Capability {
    /// Nothing yet: ask `stats` and see.
    Unknown,
    /// `stats` answered last time.
    Stats,
    /// This version answered `stats` with code 1.
    NoStats {
        /// The version that lacks `stats`.
        version: String,
        /// The jails it ran at the last probe, asked for in advance.
        jails: Vec<String>,
    },
}

/// How often one probe may find the server changed under a speculative
/// request before it stops speculating.
const MAX_RELEARN: u32 = 2;

impl Prober {
    /// A prober that opens a connection for each probe and closes it after.
    pub fn new(config: ProbeConfig) -> Self {
        Self {
            config,
            capability: Capability::Unknown,
            hold: false,
            held: None,
            reconnect: true,
        }
    }

    /// A prober that keeps its connection open between probes, as a
    /// long-running watcher does: a probe then costs no connect, and the
    /// server's death shows on the idle connection.
    pub fn holding(config: ProbeConfig) -> Self {
        Self {
            hold: true,
            ..Self::new(config)
        }
    }

    /// What this prober probes.
    pub fn config(&self) -> &ProbeConfig {
        &self.config
    }

    /// Whether a probe that lost its connection may retry on a new one
    /// (the default).
    pub fn set_reconnect(&mut self, reconnect: bool) {
        self.reconnect = reconnect;
    }

    /// Whether a connection is held open from the last probe.
    pub fn holds_connection(&self) -> bool {
        self.held.is_some()
    }

    /// Waits until the connection held between probes is closed by the
    /// server (it died or restarted), then forgets it. Never ends while no
    /// connection is held.
    pub async fn held_connection_closed(&mut self) {
        match self.held.as_mut() {
            Some(conn) => {
                conn.wait_closed().await;
                self.held = None;
            }
            None => std::future::pending().await,
        }
    }

    /// Closes the held connection, if any.
    pub async fn release(&mut self) {
        if let Some(conn) = self.held.take() {
            conn.close().await;
        }
    }

    /// Probes once. One deadline of the configured timeout covers it all.
    ///
    /// # Errors
    /// Any [`Error`]; [`Error::offline_reason`] says how to publish it.
    pub async fn probe(&mut self) -> Result<ServerStatus, Error> {
        let deadline = Instant::now() + self.config.timeout;
        // One budget for every reply of this probe, across its attempts
        // and connections.
        let decode = Budget::default();
        let mut relearned = 0;
        let mut retried = false;
        loop {
            let (mut conn, reused) = match self.held.take() {
                Some(mut conn) => {
                    conn.set_deadline(deadline, self.config.timeout);
                    (conn, true)
                }
                None => {
                    let c = &self.config;
                    let conn =
                        Connection::connect_until(&c.socket, deadline, c.timeout, c.max_reply)
                            .await?;
                    (conn, false)
                }
            };
            conn.set_decode_budget(decode.clone());
            match self.attempt(conn).await {
                Ok(Some(status)) => return Ok(status),
                // What was asked in advance no longer fits the server; the
                // prober has learned what changed and asks once more.
                Ok(None) => {
                    relearned += 1;
                    if relearned > MAX_RELEARN {
                        self.capability = Capability::Unknown;
                    }
                }
                // A lost connection is no verdict on the server: a held one
                // may have been closed by a restart since the last probe,
                // and one lost mid-probe usually means the server just
                // died. A fresh connection tells which (refused, missing,
                // or online after all).
                Err(Error::ConnectionLost(_)) if self.reconnect && (reused || !retried) => {
                    retried = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt on `conn`; `None` when the server changed under a
    /// speculative request and the attempt must be repeated.
    async fn attempt(&mut self, conn: Connection) -> Result<Option<ServerStatus>, Error> {
        // Taken out, so that an attempt that fails for any reason leaves
        // the prober to learn afresh; each path puts back what it learned.
        match std::mem::replace(&mut self.capability, Capability::Unknown) {
            Capability::Stats => self.attempt_with_stats(conn).await,
            Capability::NoStats { version, jails } => {
                self.attempt_without_stats(conn, &version, &jails).await
            }
            Capability::Unknown => self.attempt_learning(conn).await.map(Some),
        }
    }

    /// The server answered `stats` last time: one write, one round trip,
    /// version and stats.
    async fn attempt_with_stats(
        &mut self,
        conn: Connection,
    ) -> Result<Option<ServerStatus>, Error> {
        let mut replies = self
            .finish(conn, &[&["version"], &["stats"]])
            .await?
            .into_iter();
        let version = codec::parse_version(&expect_ok(replies.next())?)?;
        match replies.next() {
            Some(Reply::Ok(value)) => {
                let jails = codec::parse_stats(&value)?;
                self.capability = Capability::Stats;
                Ok(Some(ServerStatus { version, jails }))
            }
            // `stats` went away (a downgrade): learn afresh.
            Some(Reply::Failed(_)) => Ok(None),
            None => Err(missing_reply()),
        }
    }

    /// Version `known` lacks `stats`: one write asks the version, the jail
    /// list, and the counters of the jails that ran last time (`expected`).
    async fn attempt_without_stats(
        &mut self,
        conn: Connection,
        known: &str,
        expected: &[String],
    ) -> Result<Option<ServerStatus>, Error> {
        let status_requests: Vec<[&str; 3]> = expected
            .iter()
            .map(|n| ["status", n.as_str(), "short"])
            .collect();
        let mut requests: Vec<&[&str]> = vec![&["version"], &["status"]];
        requests.extend(status_requests.iter().map(|r| &r[..]));
        let mut replies = self.finish(conn, &requests).await?.into_iter();
        let version = codec::parse_version(&expect_ok(replies.next())?)?;
        let names = codec::parse_jail_list(&expect_ok(replies.next())?)?;
        if version != known {
            return Ok(None);
        }
        if names.iter().any(|n| !expected.contains(n)) {
            // A jail started since: ask for it too, next attempt.
            self.capability = Capability::NoStats {
                version,
                jails: names,
            };
            return Ok(None);
        }
        let mut jails = Vec::with_capacity(names.len());
        for (name, reply) in expected.iter().zip(replies) {
            if let (true, Reply::Ok(value)) = (names.contains(name), reply) {
                jails.push(codec::parse_jail_status(name, &value)?);
            }
        }
        jails.sort_by(|a, b| a.name.cmp(&b.name));
        self.remember_without_stats(&version, &jails);
        Ok(Some(ServerStatus { version, jails }))
    }

    /// Nothing known yet: asks `version` and `stats`, and on fail2ban 1.0,
    /// which does not know `stats`, the jail list and each jail's counters.
    async fn attempt_learning(&mut self, mut conn: Connection) -> Result<ServerStatus, Error> {
        let mut replies = conn
            .pipeline(&[&["version"], &["stats"]])
            .await?
            .into_iter();
        let version = codec::parse_version(&expect_ok(replies.next())?)?;
        let jails = match replies.next() {
            Some(Reply::Ok(value)) => {
                let jails = codec::parse_stats(&value)?;
                self.finish(conn, &[]).await?;
                self.capability = Capability::Stats;
                jails
            }
            // fail2ban 1.0 does not know `stats`.
            Some(Reply::Failed(_)) => {
                let names = codec::parse_jail_list(&conn.request(&["status"]).await?)?;
                let jails = self.jails_one_by_one(conn, &names).await?;
                self.remember_without_stats(&version, &jails);
                jails
            }
            None => return Err(missing_reply()),
        };
        Ok(ServerStatus { version, jails })
    }

    fn remember_without_stats(&mut self, version: &str, jails: &[JailStats]) {
        self.capability = Capability::NoStats {
            version: version.to_owned(),
            jails: jails.iter().map(|j| j.name.clone()).collect(),
        };
    }

    /// The last exchange of a probe: the connection is then kept, or closed
    /// with the polite goodbye in the same write, so that it costs the
    /// server no extra wake-up.
    async fn finish(
        &mut self,
        mut conn: Connection,
        requests: &[&[&str]],
    ) -> Result<Vec<Reply>, Error> {
        if self.hold {
            let replies = if requests.is_empty() {
                Vec::new()
            } else {
                conn.pipeline(requests).await?
            };
            self.held = Some(conn);
            Ok(replies)
        } else {
            conn.pipeline_then_close(requests).await
        }
    }

    /// Asks each jail's counters, in batches, the last one finishing the
    /// probe.
    async fn jails_one_by_one(
        &mut self,
        conn: Connection,
        names: &[String],
    ) -> Result<Vec<JailStats>, Error> {
        let mut jails = Vec::with_capacity(names.len());
        let mut conn = Some(conn);
        let mut batches = names.chunks(STATUS_BATCH).peekable();
        while let Some(batch) = batches.next() {
            let requests: Vec<[&str; 3]> = batch
                .iter()
                .map(|n| ["status", n.as_str(), "short"])
                .collect();
            let requests: Vec<&[&str]> = requests.iter().map(|r| &r[..]).collect();
            let replies = match (batches.peek(), conn.take()) {
                (None, Some(last)) => self.finish(last, &requests).await?,
                (Some(_), Some(mut open)) => {
                    let replies = open.pipeline(&requests).await?;
                    conn = Some(open);
                    replies
                }
                (_, None) => return Err(missing_reply()),
            };
            for (name, reply) in batch.iter().zip(replies) {
                match reply {
                    Reply::Ok(value) => jails.push(codec::parse_jail_status(name, &value)?),
                    // The jail was stopped between the two requests: it is
                    // simply no longer running.
                    Reply::Failed(_) => {}
                }
            }
        }
        // No jails at all: the probe still ends properly.
        if let Some(conn) = conn {
            self.finish(conn, &[]).await?;
        }
        jails.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(jails)
    }
}

/// How many `status JAIL short` requests go out in one write: enough to
/// make a thousand jails a few round trips, few enough that the requests
/// always fit in the socket's buffer while replies wait to be read.
const STATUS_BATCH: usize = 64;

fn expect_ok(reply: Option<Reply>) -> Result<serde_pickle::Value, Error> {
    match reply {
        Some(Reply::Ok(value)) => Ok(value),
        Some(Reply::Failed(message)) => Err(Error::Server { message }),
        None => Err(missing_reply()),
    }
}

fn missing_reply() -> Error {
    Error::Protocol(codec::CodecError::UnexpectedShape(
        "a reply is missing".into(),
    ))
}
