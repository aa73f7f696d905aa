//! One health probe of fail2ban: its version and every jail's counters.
//!
//! Owns the choice of commands. On ONE connection it asks `version`, then
//! `stats` (fail2ban 1.1 and later answer for all jails in one round trip);
//! when `stats` is unknown (code 1, fail2ban 1.0) it falls back to `status`
//! and one `status JAIL short` per jail. It never asks for banned-address
//! lists, which can be huge. One deadline covers the whole probe.
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

/// Probes fail2ban once.
///
/// # Errors
/// Any [`Error`]; [`Error::offline_reason`] says how to publish it.
pub async fn probe_once(config: &ProbeConfig) -> Result<ServerStatus, Error> {
    Prober::new(config.clone()).probe().await
}

/// Probes one fail2ban server again and again, remembering what it
/// supports so that each probe takes as few round trips as it can.
#[derive(Debug, Clone)]
pub struct Prober {
    config: ProbeConfig,
    capability: Capability,
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

impl Prober {
    /// A prober that knows nothing about the server yet.
    pub fn new(config: ProbeConfig) -> Self {
        Self {
            config,
            capability: Capability::Unknown,
        }
    }

    /// What this prober probes.
    pub fn config(&self) -> &ProbeConfig {
        &self.config
    }

    /// Probes once, on a new connection that is closed afterwards.
    ///
    /// # Errors
    /// Any [`Error`]; [`Error::offline_reason`] says how to publish it.
    pub async fn probe(&mut self) -> Result<ServerStatus, Error> {
        let deadline = Instant::now() + self.config.timeout;
        match self.probe_until(deadline).await? {
            Some(status) => Ok(status),
            // What was asked in advance no longer fits the server; the
            // prober has learned what changed and asks once more.
            None => match self.probe_until(deadline).await? {
                Some(status) => Ok(status),
                None => {
                    self.capability = Capability::Unknown;
                    self.probe_until(deadline).await?.ok_or_else(missing_reply)
                }
            },
        }
    }

    /// One attempt; `None` when the server changed under a speculative
    /// request and the attempt must be repeated.
    async fn probe_until(&mut self, deadline: Instant) -> Result<Option<ServerStatus>, Error> {
        let c = &self.config;
        let mut conn =
            Connection::connect_until(&c.socket, deadline, c.timeout, c.max_reply).await?;
        match std::mem::replace(&mut self.capability, Capability::Unknown) {
            Capability::Stats => {
                // One write, one round trip: version, stats, goodbye.
                let mut replies = conn
                    .pipeline_then_close(&[&["version"], &["stats"]])
                    .await?
                    .into_iter();
                let version = codec::parse_version(&expect_ok(replies.next())?)?;
                match replies.next() {
                    Some(Reply::Ok(value)) => {
                        let jails = codec::parse_stats(&value)?;
                        self.capability = Capability::Stats;
                        Ok(Some(ServerStatus { version, jails }))
                    }
                    // `stats` went away (a downgrade) and the server has
                    // closed this connection: learn afresh on a new one.
                    Some(Reply::Failed(_)) => Ok(None),
                    None => Err(missing_reply()),
                }
            }
            Capability::NoStats {
                version: known,
                jails: expected,
            } => {
                // One write: version, jail list, and the counters of the
                // jails that ran last time.
                let status_requests: Vec<[&str; 3]> = expected
                    .iter()
                    .map(|n| ["status", n.as_str(), "short"])
                    .collect();
                let mut requests: Vec<&[&str]> = vec![&["version"], &["status"]];
                requests.extend(status_requests.iter().map(|r| &r[..]));
                let mut replies = conn.pipeline_then_close(&requests).await?.into_iter();
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
                self.capability = Capability::NoStats {
                    version: version.clone(),
                    jails: jails.iter().map(|j| j.name.clone()).collect(),
                };
                Ok(Some(ServerStatus { version, jails }))
            }
            Capability::Unknown => {
                let mut replies = conn
                    .pipeline(&[&["version"], &["stats"]])
                    .await?
                    .into_iter();
                let version = codec::parse_version(&expect_ok(replies.next())?)?;
                self.learn(conn, version, replies.next()).await.map(Some)
            }
        }
    }

    /// Finishes a probe from the reply to `stats`, falling back to `status`
    /// per jail, and remembers which of the two this version answers.
    async fn learn(
        &mut self,
        mut conn: Connection,
        version: String,
        stats: Option<Reply>,
    ) -> Result<ServerStatus, Error> {
        let jails = match stats {
            Some(Reply::Ok(value)) => {
                let jails = codec::parse_stats(&value)?;
                conn.close().await;
                self.capability = Capability::Stats;
                jails
            }
            // fail2ban 1.0 does not know `stats`.
            Some(Reply::Failed(_)) => {
                let names = codec::parse_jail_list(&conn.request(&["status"]).await?)?;
                let jails = jails_one_by_one(conn, &names).await?;
                self.capability = Capability::NoStats {
                    version: version.clone(),
                    jails: jails.iter().map(|j| j.name.clone()).collect(),
                };
                jails
            }
            None => return Err(missing_reply()),
        };
        Ok(ServerStatus { version, jails })
    }
}

/// How many `status JAIL short` requests go out in one write: enough to
/// make a thousand jails a few round trips, few enough that the requests
/// always fit in the socket's buffer while replies wait to be read.
const STATUS_BATCH: usize = 64;

/// Asks each jail's counters, in batches, and closes the connection with
/// the last batch.
async fn jails_one_by_one(conn: Connection, names: &[String]) -> Result<Vec<JailStats>, Error> {
    let mut jails = Vec::with_capacity(names.len());
    let batches: Vec<&[String]> = names.chunks(STATUS_BATCH).collect();
    let mut conn = Some(conn);
    for (i, batch) in batches.iter().enumerate() {
        let requests: Vec<[&str; 3]> = batch
            .iter()
            .map(|n| ["status", n.as_str(), "short"])
            .collect();
        let requests: Vec<&[&str]> = requests.iter().map(|r| &r[..]).collect();
        let replies = if i + 1 == batches.len() {
            conn.take()
                .ok_or_else(missing_reply)?
                .pipeline_then_close(&requests)
                .await?
        } else {
            conn.as_mut()
                .ok_or_else(missing_reply)?
                .pipeline(&requests)
                .await?
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
    if let Some(conn) = conn {
        conn.close().await;
    }
    jails.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(jails)
}

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
