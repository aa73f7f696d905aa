//! The served interface in process: `bus::interface::Health` in front of an
//! in-memory [`Backend`], on a private system-type dbus-daemon (with the
//! project's policy file), called through the client proxy. Checks that
//! each method reaches the backend with its arguments, that each domain
//! answer becomes the contract's error name, that properties are the
//! snapshot's values in the contract's types, and that the signals arrive
//! as the proxy expects them. No fail2ban, no daemon binary.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::bus::{PrivateBus, get};
use fail2ban_healthd::bus::auth::{Authorizer, Groups};
use fail2ban_healthd::bus::backend::{Answer, Backend, Reply};
use fail2ban_healthd::bus::interface::{Constants, Health};
use fail2ban_healthd::bus::proxy::Health1Proxy;
use fail2ban_healthd::bus::{ERROR_PREFIX, NAME, PATH};
use fail2ban_healthd::fail2ban::check::CheckReport;
use fail2ban_healthd::health::{JailStats, OfflineReason};
use fail2ban_healthd::monitor::{Activation, Cause, RecoveryRecord, Refusal, Snapshot, Trial};
use fail2ban_healthd::rollback::{Failure, Outcome, RollbackError, TryError};
use futures_util::StreamExt as _;
use zbus::Connection;

/// What the backend answers next.
#[derive(Debug, Clone)]
enum Script {
    Ok,
    Refuse(Refusal),
    Fail(String),
    Stopping,
}

/// The backend: a snapshot, a script, and the calls it got.
#[derive(Debug)]
struct Memory {
    snapshot: Mutex<Arc<Snapshot>>,
    script: Mutex<Script>,
    calls: Mutex<Vec<String>>,
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).unwrap()
}

fn usec(secs: i64) -> u64 {
    u64::try_from(secs).unwrap() * 1_000_000
}

impl Memory {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            snapshot: Mutex::new(Arc::new(Snapshot::default())),
            script: Mutex::new(Script::Ok),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn script(&self, s: Script) {
        *self.script.lock().unwrap() = s;
    }

    fn next(&self, call: String) -> Script {
        self.calls.lock().unwrap().push(call);
        self.script.lock().unwrap().clone()
    }

    fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn answer<T>(&self, call: &str, ok: T) -> Answer<T> {
        match self.next(call.to_owned()) {
            Script::Ok => Some(Ok(ok)),
            Script::Refuse(r) => Some(Err(r)),
            Script::Fail(why) => Some(Err(Refusal::NotHealthy(why))),
            Script::Stopping => None,
        }
    }

    fn trial() -> Trial {
        Trial {
            jail_name: "nginx".into(),
            started_at: at(1_700_000_000),
            deadline_at: at(1_700_000_060),
            dropin_before: None,
        }
    }
}

impl Backend for Memory {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.lock().unwrap().clone()
    }

    fn register_activation(&self, jail: String) -> Reply<'_, Option<DateTime<Utc>>> {
        let answer = self.answer(&format!("register_activation {jail}"), at(1_700_000_001));
        Box::pin(async move { answer.map(|a| a.unwrap()) })
    }

    fn dismiss_recovery(&self) -> Reply<'_, Answer<()>> {
        let answer = self.answer("dismiss_recovery", ());
        Box::pin(async move { answer })
    }

    fn probe(&self) -> Reply<'_, Option<bool>> {
        let answer = self.answer("probe", true);
        Box::pin(async move { answer.map(|a| a.unwrap()) })
    }

    fn rollback<'a>(
        &'a self,
        _conn: &'a Connection,
        uid: u32,
    ) -> Reply<'a, Result<Outcome, RollbackError>> {
        let answer = match self.next(format!("rollback uid={uid}")) {
            Script::Ok => Ok(Outcome {
                jail: "nginx".into(),
                dropin: PathBuf::from("/etc/fail2ban/jail.d/zz.local"),
                restarted: true,
                online: true,
                active_jails: 3,
            }),
            Script::Refuse(r) => Err(RollbackError::Refused(r)),
            Script::Fail(why) => Err(RollbackError::Failed(Failure::NoWayToRestart(why))),
            Script::Stopping => Err(RollbackError::ShuttingDown),
        };
        Box::pin(async move { answer })
    }

    fn check<'a>(&'a self, jail: &'a str) -> Reply<'a, CheckReport> {
        self.next(format!("check {jail}"));
        let report = CheckReport {
            ok: jail == "good",
            messages: vec![format!("checked {jail}")],
        };
        Box::pin(async move { report })
    }

    fn try_jail<'a>(
        &'a self,
        _conn: &'a Connection,
        jail: &'a str,
        timeout: Duration,
        uid: u32,
    ) -> Reply<'a, Result<DateTime<Utc>, TryError>> {
        let call = format!("try {jail} {}s uid={uid}", timeout.as_secs());
        let answer = match self.next(call) {
            Script::Ok => Ok(at(1_700_000_002)),
            Script::Refuse(r) => Err(TryError::from(r)),
            Script::Fail(why) => Err(TryError::Failed(why)),
            Script::Stopping => Err(TryError::ShuttingDown),
        };
        Box::pin(async move { answer })
    }

    fn confirm_trial(&self) -> Reply<'_, Answer<Option<Trial>>> {
        let answer = self.answer("confirm", Some(Memory::trial()));
        Box::pin(async move { answer })
    }

    fn abort_trial(&self) -> Reply<'_, Answer<Option<Trial>>> {
        let answer = self.answer("abort", Some(Memory::trial()));
        Box::pin(async move { answer })
    }
}

/// The bus, the serving connection (owning the name) and a client proxy.
struct Served {
    bus: PrivateBus,
    server: Connection,
    proxy: Health1Proxy<'static>,
    memory: Arc<Memory>,
}

async fn serve() -> Served {
    let bus = PrivateBus::start();
    let memory = Memory::new();
    let constants = Constants {
        probe_interval_usec: 5_000_000,
        crash_window_usec: 60_000_000,
        socket_path: "/run/fail2ban/fail2ban.sock".into(),
    };
    let health = Health::new(
        memory.clone(),
        constants,
        Authorizer::new(Groups::default()),
    );
    let server = zbus::connection::Builder::address(bus.address.as_str())
        .serve_at(PATH, health)
        .name(NAME)
        .build()
        .await
        .unwrap();
    let client = bus.connect().await;
    let proxy = Health1Proxy::builder(&client)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    Served {
        bus,
        server,
        proxy,
        memory,
    }
}

/// The contract's short error name of a failed call (`NoTrial`), or the
/// full name of any other error.
fn error_name<T: std::fmt::Debug>(r: zbus::Result<T>) -> String {
    match r {
        Err(zbus::Error::MethodError(name, _, _)) => {
            let name = name.as_str();
            name.strip_prefix(&format!("{ERROR_PREFIX}."))
                .unwrap_or(name)
                .to_owned()
        }
        other => panic!("expected a D-Bus error, got {other:?}"),
    }
}

#[tokio::test]
async fn methods_reach_the_backend_with_their_arguments() {
    let s = serve().await;
    let p = &s.proxy;
    assert_eq!(
        p.register_activation("sshd").await.unwrap(),
        usec(1_700_000_001)
    );
    p.dismiss_recovery().await.unwrap();
    assert!(p.probe().await.unwrap());
    let result = p.rollback().await.unwrap();
    assert_eq!(get::<String>(&result, "JailName"), "nginx");
    assert_eq!(
        get::<String>(&result, "DropInPath"),
        "/etc/fail2ban/jail.d/zz.local"
    );
    assert!(get::<bool>(&result, "Restarted"));
    assert!(get::<bool>(&result, "Online"));
    assert_eq!(get::<u32>(&result, "ActiveJails"), 3);
    let report = p.check("good").await.unwrap();
    assert!(get::<bool>(&report, "Ok"));
    assert_eq!(
        get::<Vec<String>>(&report, "Messages"),
        ["checked good".to_owned()]
    );
    assert!(!get::<bool>(&p.check("bad").await.unwrap(), "Ok"));
    assert_eq!(p.try_jail("nginx", 0).await.unwrap(), usec(1_700_000_002));
    p.try_jail("nginx", 90_000_000).await.unwrap();
    p.confirm().await.unwrap();
    p.abort().await.unwrap();
    assert_eq!(
        s.memory.take_calls(),
        [
            "register_activation sshd",
            "dismiss_recovery",
            "probe",
            "rollback uid=0",
            "check good",
            "check bad",
            // 0: the crash window (60 s).
            "try nginx 60s uid=0",
            "try nginx 90s uid=0",
            "confirm",
            "abort",
        ]
    );
}

/// What the backend answers to DismissRecovery, RegisterActivation and
/// Rollback, and the contract's error name for it.
fn recovery_answers() -> Vec<(Script, &'static str, String)> {
    vec![
        (
            Script::Refuse(Refusal::NoPendingRecovery),
            "dismiss",
            "NoPendingRecovery".into(),
        ),
        (
            Script::Refuse(Refusal::RollbackRunning),
            "dismiss",
            "RollbackInProgress".into(),
        ),
        (Script::Stopping, "dismiss", "ShuttingDown".into()),
        (Script::Stopping, "register", "ShuttingDown".into()),
        (
            Script::Refuse(Refusal::NoPendingRecovery),
            "rollback",
            "NoPendingRecovery".into(),
        ),
        (
            Script::Refuse(Refusal::RolledBackAlready),
            "rollback",
            "NoPendingRecovery".into(),
        ),
        (
            Script::Refuse(Refusal::RollbackRunning),
            "rollback",
            "RollbackInProgress".into(),
        ),
        (
            Script::Refuse(Refusal::TrialRunning),
            "rollback",
            "TrialInProgress".into(),
        ),
        (
            Script::Refuse(Refusal::JailRanBefore("sshd".into())),
            "rollback",
            "RollbackFailed".into(),
        ),
        (
            Script::Fail("no way".into()),
            "rollback",
            "RollbackFailed".into(),
        ),
        (Script::Stopping, "rollback", "ShuttingDown".into()),
    ]
}

/// What the backend answers to Try, Confirm and Abort, and the contract's
/// error name for it.
fn trial_answers() -> Vec<(Script, &'static str, String)> {
    vec![
        (
            Script::Refuse(Refusal::TrialRunning),
            "try",
            "TrialInProgress".into(),
        ),
        (
            Script::Refuse(Refusal::RollbackRunning),
            "try",
            "RollbackInProgress".into(),
        ),
        (
            Script::Refuse(Refusal::JailRunning("nginx".into())),
            "try",
            "TryFailed".into(),
        ),
        (Script::Fail("no reload".into()), "try", "TryFailed".into()),
        (Script::Stopping, "try", "ShuttingDown".into()),
        (
            Script::Refuse(Refusal::NoTrial),
            "confirm",
            "NoTrial".into(),
        ),
        (
            Script::Refuse(Refusal::RollbackRunning),
            "confirm",
            "RollbackInProgress".into(),
        ),
        (Script::Stopping, "confirm", "ShuttingDown".into()),
        (Script::Refuse(Refusal::NoTrial), "abort", "NoTrial".into()),
        (
            Script::Refuse(Refusal::RollbackRunning),
            "abort",
            "RollbackInProgress".into(),
        ),
    ]
}

/// The error name `method` (by its short name in the tables) answers.
async fn error_of(p: &Health1Proxy<'static>, method: &str) -> String {
    match method {
        "dismiss" => error_name(p.dismiss_recovery().await),
        "register" => error_name(p.register_activation("sshd").await),
        "rollback" => error_name(p.rollback().await),
        "try" => error_name(p.try_jail("nginx", 0).await),
        "confirm" => error_name(p.confirm().await),
        "abort" => error_name(p.abort().await),
        other => unreachable!("{other}"),
    }
}

#[tokio::test]
async fn every_domain_answer_has_its_contract_error() {
    let s = serve().await;
    let p = &s.proxy;
    let m = &s.memory;
    // Refused before the backend is asked.
    assert_eq!(
        error_name(p.register_activation("-bad").await),
        "InvalidJailName"
    );
    assert_eq!(error_name(p.try_jail("a b", 0).await), "InvalidJailName");
    assert_eq!(error_name(p.check("").await), "InvalidJailName");
    assert_eq!(error_name(p.try_jail("nginx", 999_999).await), "TryFailed");
    assert!(m.take_calls().is_empty());

    for (script, method, expected) in recovery_answers().into_iter().chain(trial_answers()) {
        m.script(script.clone());
        let name = error_of(p, method).await;
        assert_eq!(name, expected, "{method} answered {script:?}");
        assert_eq!(m.take_calls().len(), 1, "{method} asked the backend once");
    }
    // The reason of a failed rollback reaches the caller.
    m.script(Script::Fail("systemd is away".into()));
    let Err(zbus::Error::MethodError(_, Some(text), _)) = p.rollback().await else {
        panic!("a rollback error with a text")
    };
    assert!(text.contains("systemd is away"), "{text}");
    // A stopping daemon still answers Probe from the snapshot.
    m.script(Script::Stopping);
    assert!(!p.probe().await.unwrap());
}

#[tokio::test]
async fn a_caller_without_the_right_is_not_authorized_and_nothing_is_asked() {
    let s = serve().await;
    let nobody = |call: &[&str]| {
        let mut c = tokio::process::Command::new(common::require_program("setpriv", "util-linux"));
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(common::require_program("dbus-send", "dbus-bin"))
            .arg(format!("--bus={}", s.bus.address))
            .args(["--print-reply", &format!("--dest={NAME}"), PATH])
            .arg(format!("{NAME}.{}", call[0]))
            .args(&call[1..]);
        c
    };
    let calls: [&[&str]; 5] = [
        &["RegisterActivation", "string:sshd"],
        &["DismissRecovery"],
        &["Rollback"],
        &["Try", "string:nginx", "uint64:0"],
        &["Abort"],
    ];
    for call in calls {
        let out = nobody(call).output().await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{call:?} as nobody succeeded");
        assert!(
            err.contains(&format!("{ERROR_PREFIX}.NotAuthorized")),
            "{call:?}: {err}"
        );
    }
    // Probe needs no right.
    let out = nobody(&["Probe"]).output().await.unwrap();
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(reply.contains("boolean true"), "{reply}");
    assert_eq!(s.memory.take_calls(), ["probe"]);
}

/// A snapshot with every property set: online, two jails, an activation,
/// a pending recovery and a trial.
fn busy_snapshot() -> Snapshot {
    let jail = |name: &str, n: u32| JailStats {
        name: name.into(),
        currently_failed: n,
        total_failed: n + 1,
        currently_banned: n + 2,
        total_banned: n + 3,
    };
    Snapshot {
        online: true,
        offline_reason: OfflineReason::None,
        version: "1.0.2".into(),
        jails: vec![jail("nginx", 1), jail("sshd", 10)],
        last_probe: Some(at(1_700_000_100)),
        last_activation: Some(Activation {
            jail_name: "nginx".into(),
            activated_at: at(1_700_000_000),
        }),
        pending_recovery: Some(RecoveryRecord {
            jail_name: "nginx".into(),
            activated_at: at(1_700_000_000),
            detected_at: at(1_700_000_030),
            recovered_at: None,
            cause: Cause::JailNotRunning,
            suspect_jails: vec!["nginx".into()],
            unit_exit: None,
            rolled_back: false,
            auto_rolled_back: false,
            ran_before: false,
        }),
        trial: Some(Memory::trial()),
    }
}

#[tokio::test]
async fn properties_are_the_snapshots_values() {
    let s = serve().await;
    let p = &s.proxy;
    assert!(!p.online().await.unwrap());
    assert_eq!(
        p.offline_reason().await.unwrap(),
        OfflineReason::NotProbedYet.code()
    );
    assert!(p.pending_recovery().await.unwrap().is_empty());
    assert!(p.trial().await.unwrap().is_empty());
    assert!(p.last_activation().await.unwrap().is_empty());
    assert_eq!(p.last_probe_timestamp().await.unwrap(), 0);
    assert_eq!(p.probe_interval_usec().await.unwrap(), 5_000_000);
    assert_eq!(p.crash_window_usec().await.unwrap(), 60_000_000);
    assert_eq!(
        p.socket_path().await.unwrap(),
        "/run/fail2ban/fail2ban.sock"
    );

    *s.memory.snapshot.lock().unwrap() = Arc::new(busy_snapshot());
    assert!(p.online().await.unwrap());
    assert_eq!(p.offline_reason().await.unwrap(), 0);
    assert_eq!(p.version().await.unwrap(), "1.0.2");
    assert_eq!(p.active_jails().await.unwrap(), 2);
    assert_eq!(
        p.jails().await.unwrap(),
        [
            ("nginx".to_owned(), 1, 2, 3, 4),
            ("sshd".to_owned(), 10, 11, 12, 13)
        ]
    );
    assert_eq!(p.last_probe_timestamp().await.unwrap(), usec(1_700_000_100));
    let a = p.last_activation().await.unwrap();
    assert_eq!(get::<String>(&a, "JailName"), "nginx");
    assert_eq!(get::<u64>(&a, "ActivatedAt"), usec(1_700_000_000));
    let r = p.pending_recovery().await.unwrap();
    assert_eq!(get::<String>(&r, "JailName"), "nginx");
    assert_eq!(get::<u64>(&r, "DetectedAt"), usec(1_700_000_030));
    assert!(!get::<bool>(&r, "Recovered"));
    assert_eq!(get::<u64>(&r, "RecoveredAt"), 0);
    assert_eq!(get::<u32>(&r, "Cause"), 2);
    assert_eq!(get::<Vec<String>>(&r, "SuspectJails"), ["nginx".to_owned()]);
    assert!(!get::<bool>(&r, "RolledBack"));
    let t = p.trial().await.unwrap();
    assert_eq!(get::<String>(&t, "JailName"), "nginx");
    assert_eq!(get::<u64>(&t, "StartedAt"), usec(1_700_000_000));
    assert_eq!(get::<u64>(&t, "DeadlineAt"), usec(1_700_000_060));
    // Properties never ask the backend anything but its snapshot.
    assert!(s.memory.take_calls().is_empty());
}

#[tokio::test]
async fn signals_reach_the_proxy_with_their_arguments() {
    let s = serve().await;
    let p = &s.proxy;
    let mut came = p.receive_came_online().await.unwrap();
    let mut went = p.receive_went_offline().await.unwrap();
    let mut crash = p.receive_activation_crash_detected().await.unwrap();
    let mut resolved = p.receive_recovery_resolved().await.unwrap();
    let mut ended = p.receive_trial_ended().await.unwrap();
    let emitter = zbus::object_server::SignalEmitter::new(&s.server, PATH).unwrap();
    Health::came_online(&emitter, "1.0.2").await.unwrap();
    Health::went_offline(&emitter, OfflineReason::ConnectionRefused.code())
        .await
        .unwrap();
    Health::activation_crash_detected(&emitter, "nginx", 1, 2, 3)
        .await
        .unwrap();
    Health::recovery_resolved(&emitter, "nginx", 4)
        .await
        .unwrap();
    Health::trial_ended(&emitter, "nginx", false, 2)
        .await
        .unwrap();
    let c = next(&mut came, "CameOnline").await;
    assert_eq!(*c.args().unwrap().version(), "1.0.2");
    let w = next(&mut went, "WentOffline").await;
    assert_eq!(
        *w.args().unwrap().reason(),
        OfflineReason::ConnectionRefused.code()
    );
    let d = next(&mut crash, "ActivationCrashDetected").await;
    let d = d.args().unwrap();
    assert_eq!(
        (
            *d.jail_name(),
            *d.activated_at(),
            *d.detected_at(),
            *d.cause()
        ),
        ("nginx", 1, 2, 3)
    );
    let r = next(&mut resolved, "RecoveryResolved").await;
    assert_eq!(*r.args().unwrap().recovered_at(), 4);
    let e = next(&mut ended, "TrialEnded").await;
    let e = e.args().unwrap();
    assert_eq!((*e.jail_name(), *e.kept(), *e.cause()), ("nginx", false, 2));
    // The interface's introspection names every member of the contract.
    let xml = zbus::fdo::IntrospectableProxy::builder(p.inner().connection())
        .destination(NAME)
        .path(PATH)
        .build()
        .await
        .unwrap()
        .introspect()
        .await
        .unwrap();
    for member in [
        "RegisterActivation",
        "DismissRecovery",
        "Rollback",
        "Probe",
        "Try",
        "Check",
        "Confirm",
        "Abort",
        "CameOnline",
        "WentOffline",
        "ActivationCrashDetected",
        "RecoveryResolved",
        "TrialEnded",
        "ProbeIntervalUSec",
        "CrashWindowUSec",
        "LastProbeTimestamp",
    ] {
        assert!(
            xml.contains(&format!("name=\"{member}\"")),
            "{member} missing"
        );
    }
}

/// The next item of a signal stream, within a generous limit.
async fn next<S: futures_util::Stream + Unpin>(stream: &mut S, what: &str) -> S::Item {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .unwrap_or_else(|_| panic!("no {what} within 20 s"))
        .unwrap_or_else(|| panic!("the {what} stream ended"))
}
