//! `check`, `try`, `confirm` and `abort`.
//!
//! `try` subscribes to `TrialEnded` before it calls `Try`, so the verdict
//! cannot pass unseen, then shows the time left until it comes. The
//! `Trial` property is read every few seconds as well: a verdict given
//! while the daemon restarted is found in it and in the record.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::json;

use super::connect::{BusArgs, Failure, call_failed, call_managing, connect, unreachable};
use super::values::{Dict, cause_name, clean, field, strings, text, time};
use crate::bus::proxy::Health1Proxy;

/// How often the `Trial` property is read while waiting.
const POLL: Duration = Duration::from_secs(5);

/// `check JAIL`: 0 when the checks pass, 1 when they fail.
///
/// # Errors
/// The daemon refused or could not be asked.
pub async fn check(bus: &BusArgs, jail: &str, as_json: bool) -> Result<u8, Failure> {
    let (_conn, p) = connect(bus).await?;
    let result: Dict = call_managing(&p, "Check", &(jail,))
        .await
        .map_err(|e| call_failed(bus, e))?;
    let ok = field::<bool>(&result, "Ok").unwrap_or(false);
    let messages = strings(&result, "Messages");
    if as_json {
        println!(
            "{}",
            json!({ "jail": jail, "ok": ok, "messages": messages })
        );
    } else {
        println!(
            "{jail}: {}",
            if ok {
                "fail2ban's checks pass"
            } else {
                "fail2ban's checks FAIL"
            }
        );
        for m in &messages {
            println!("  {m}");
        }
    }
    Ok(u8::from(!ok))
}

/// How a trial ended.
struct Verdict {
    kept: bool,
    cause: u32,
}

/// `try JAIL`: 0 kept, 1 rolled back, 2 could not start, 130 after
/// Ctrl-C (the trial goes on).
///
/// # Errors
/// The trial could not start (status 2), or the bus was lost.
pub async fn run(
    bus: &BusArgs,
    jail: &str,
    timeout: Option<Duration>,
    as_json: bool,
) -> Result<u8, Failure> {
    let (conn, p) = connect(bus).await?;
    let mut ended = p
        .receive_trial_ended()
        .await
        .map_err(|e| unreachable(bus, &e))?;
    let started = start(bus, &p, jail, timeout).await?;
    let trial: Dict = p.trial().await.unwrap_or_default();
    let deadline = field::<u64>(&trial, "DeadlineAt").unwrap_or(0);
    eprintln!(
        "{jail}: enabled and fail2ban reloaded; watching until {} (fail2ban-healthd confirm | abort)",
        time(deadline).unwrap_or_else(|| "the verdict".into())
    );
    let watched = Watched {
        conn: &conn,
        p: &p,
        jail,
        started,
        deadline,
    };
    match watched.until_verdict(&mut ended).await {
        Outcome::Verdict(v) => {
            report(&p, jail, started, deadline, &v, as_json).await;
            Ok(if v.kept { 0 } else { 1 })
        }
        Outcome::Interrupted => {
            eprintln!(
                "{jail}: stopped watching; the trial goes on until {} and is judged by \
                 the daemon (fail2ban-healthd status | confirm | abort)",
                time(deadline).unwrap_or_default()
            );
            Ok(130)
        }
        Outcome::Lost => Err(Failure {
            message: format!(
                "lost the connection to {} while the trial of {jail} ran; the daemon judges it \
                 all the same (fail2ban-healthd status)",
                bus.describe()
            ),
            status: 2,
        }),
    }
}

/// Calls `Try`; answers with the trial's start.
async fn start(
    bus: &BusArgs,
    p: &Health1Proxy<'_>,
    jail: &str,
    timeout: Option<Duration>,
) -> Result<u64, Failure> {
    eprintln!("{jail}: running fail2ban's checks and reloading fail2ban…");
    let usec = timeout.map_or(0, |t| u64::try_from(t.as_micros()).unwrap_or(u64::MAX));
    match call_managing(p, "Try", &(jail, usec)).await {
        Ok(started) => Ok(started),
        // The daemon's own refusal: nothing started.
        Err(e @ zbus::Error::MethodError(..)) => Err(Failure {
            status: 2,
            ..call_failed(bus, e)
        }),
        // No answer (the daemon restarted during the reload, say): the
        // trial may have started all the same, and is then followed.
        Err(e) => started_meanwhile(p, jail).await.ok_or_else(|| Failure {
            status: 2,
            ..call_failed(bus, e)
        }),
    }
}

/// How watching a trial ended.
enum Outcome {
    /// The daemon's verdict.
    Verdict(Verdict),
    /// Ctrl-C: the trial goes on without the client.
    Interrupted,
    /// The bus went away.
    Lost,
}

/// A started trial being watched.
struct Watched<'a> {
    conn: &'a zbus::Connection,
    p: &'a Health1Proxy<'a>,
    jail: &'a str,
    started: u64,
    deadline: u64,
}

impl Watched<'_> {
    /// Waits for `TrialEnded` (or, every [`POLL`], a settled `Trial`
    /// property), showing the time left on a terminal.
    async fn until_verdict(&self, ended: &mut crate::bus::proxy::TrialEndedStream) -> Outcome {
        let (jail, deadline) = (self.jail, self.deadline);
        let terminal = std::io::stderr().is_terminal();
        let mut poll = tokio::time::interval(POLL);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
        let mut closed = std::pin::pin!(async { self.conn.closed().await });
        let outcome = loop {
            tokio::select! {
                signal = ended.next() => {
                    let Some(signal) = signal else { break Outcome::Lost };
                    let Ok(args) = signal.args() else { continue };
                    if *args.jail_name() == jail {
                        break Outcome::Verdict(Verdict { kept: *args.kept(), cause: *args.cause() });
                    }
                }
                _ = poll.tick() => {
                    if let Some(v) = settled(self.p, jail, self.started).await {
                        break Outcome::Verdict(v);
                    }
                }
                _ = tick.tick(), if terminal && deadline > 0 => {
                    let now = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0);
                    let left = deadline.saturating_sub(now) / 1_000_000;
                    eprint!("\r{jail}: watching, {left} s left   ");
                    let _ = std::io::stderr().flush();
                }
                _ = &mut interrupt => break Outcome::Interrupted,
                () = &mut closed => break Outcome::Lost,
            }
        };
        if terminal {
            eprintln!();
        }
        outcome
    }
}

/// The start of a trial of `jail` that the daemon shows, waiting up to
/// 30 s for it to be back on the bus.
async fn started_meanwhile(p: &Health1Proxy<'_>, jail: &str) -> Option<u64> {
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(trial) = p.trial().await {
            return (text(&trial, "JailName") == jail)
                .then(|| field::<u64>(&trial, "StartedAt"))
                .flatten();
        }
        if tokio::time::Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The verdict as the properties tell it, once `Trial` no longer shows the
/// trial started at `started`: rolled back when the record of that
/// activation says so, else kept.
async fn settled(p: &Health1Proxy<'_>, jail: &str, started: u64) -> Option<Verdict> {
    let trial: Dict = p.trial().await.ok()?;
    if field::<u64>(&trial, "StartedAt") == Some(started) {
        return None;
    }
    let record: Dict = p.pending_recovery().await.unwrap_or_default();
    let ours = text(&record, "JailName") == jail
        && field::<u64>(&record, "ActivatedAt") == Some(started)
        && field::<bool>(&record, "RolledBack") == Some(true);
    Some(if ours {
        Verdict {
            kept: false,
            cause: field::<u32>(&record, "Cause").unwrap_or(0),
        }
    } else {
        // Ended by Confirm, the deadline, or Abort: the signal was lost,
        // and only a record tells a rollback after a failure.
        Verdict {
            kept: true,
            cause: 0,
        }
    })
}

async fn report(
    p: &Health1Proxy<'_>,
    jail: &str,
    started: u64,
    deadline: u64,
    v: &Verdict,
    as_json: bool,
) {
    let online = p.online().await.unwrap_or(false);
    let jails = p.active_jails().await.unwrap_or(0);
    if as_json {
        println!(
            "{}",
            json!({
                "jail": jail,
                "started_at": started,
                "deadline_at": deadline,
                "kept": v.kept,
                "cause": v.cause,
                "cause_name": if v.kept || v.cause == 0 { "" } else { cause_name(v.cause) },
                "online": online,
                "active_jails": jails,
            })
        );
        return;
    }
    let state = if online {
        format!("fail2ban is online with {jails} jails")
    } else {
        "fail2ban is NOT answering (fail2ban-healthd status; journalctl -u fail2ban)".to_owned()
    };
    if v.kept {
        println!("{jail}: kept; {state}");
    } else if v.cause == 0 {
        println!("{jail}: aborted and rolled back; {state}");
    } else {
        println!(
            "{jail}: FAILED ({}) and was rolled back; {state}",
            cause_name(v.cause)
        );
    }
}

/// `confirm`.
///
/// # Errors
/// The daemon refused or could not be asked.
pub async fn confirm(bus: &BusArgs) -> Result<u8, Failure> {
    let (_conn, p) = connect(bus).await?;
    let trial: Dict = p.trial().await.unwrap_or_default();
    call_managing::<_, ()>(&p, "Confirm", &())
        .await
        .map_err(|e| call_failed(bus, e))?;
    println!("{}: kept", clean(&text(&trial, "JailName")));
    Ok(0)
}

/// `abort`: waits for the rollback's end; 0 when fail2ban answers
/// afterwards.
///
/// # Errors
/// The daemon refused or could not be asked.
pub async fn abort(bus: &BusArgs) -> Result<u8, Failure> {
    let (_conn, p) = connect(bus).await?;
    let mut ended = p
        .receive_trial_ended()
        .await
        .map_err(|e| unreachable(bus, &e))?;
    let trial: Dict = p.trial().await.unwrap_or_default();
    let jail = text(&trial, "JailName");
    call_managing::<_, ()>(&p, "Abort", &())
        .await
        .map_err(|e| call_failed(bus, e))?;
    eprintln!("{jail}: rolling back…");
    let wait = async {
        while let Some(signal) = ended.next().await {
            if signal.args().is_ok_and(|a| a.jail_name() == &jail) {
                return true;
            }
        }
        false
    };
    let seen = tokio::time::timeout(Duration::from_secs(300), wait)
        .await
        .unwrap_or(false);
    let online = p.online().await.unwrap_or(false);
    let jails = p.active_jails().await.unwrap_or(0);
    if seen && online {
        println!("{jail}: rolled back; fail2ban is online with {jails} jails");
        Ok(0)
    } else {
        println!(
            "{jail}: rollback asked; fail2ban is {} (fail2ban-healthd status)",
            if online { "online" } else { "NOT answering" }
        );
        Ok(1)
    }
}
