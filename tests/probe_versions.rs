//! The probe against a REAL server of each fail2ban release a test can
//! start: the installed package (Debian 12: 1.0.2), and 1.1.1 and upstream
//! head (1.1.2.dev1) run from their source trees in `../shared/upstream`.
//! For each one:
//! - after failures and a ban, the probe's counters equal what that
//!   release's own fail2ban-client prints;
//! - the probe takes the `stats` fast path on 1.1 and later and falls back
//!   to `status` and `status JAIL short` before, as seen by a relay that
//!   records what the probe really sends;
//! - a graceful stop (SIGTERM) and a SIGKILL are classified as the D-Bus
//!   contract says, and the graceful stop's duration is measured, with two
//!   jails and with one and four, since the daemon's timing relies on it.
//!   Figures are printed: run with `--nocapture` to see them.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Fail2ban, Release};
use fail2ban_healthd::fail2ban::codec::{self, FrameBuffer, Reply};
use fail2ban_healthd::fail2ban::{self, Error, ProbeConfig, Prober};
use fail2ban_healthd::health::{OfflineReason, ServerStatus};
use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// How long anything may take: generous, since a loaded machine polls its
/// log files and starts Python late.
const DEADLINE: Duration = Duration::from_secs(30);

fn config(socket: &Path) -> ProbeConfig {
    ProbeConfig {
        socket: socket.to_path_buf(),
        ..ProbeConfig::default()
    }
}

/// Whether fail2ban `version` answers `stats` (1.1.0 and later).
fn has_stats(version: &str) -> bool {
    !(version.starts_with("0.") || version.starts_with("1.0."))
}

fn req(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// A relay between the probe and a real server, recording every request
/// the probe sends: a real server does not say which commands it was asked.
struct Recorder {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    requests: Arc<Mutex<Vec<Vec<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    fn start(server: &Path) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("f2b-relay-")
            .tempdir()
            .unwrap();
        let socket = dir.path().join("relay.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (reqs, server) = (requests.clone(), server.to_path_buf());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, server.clone(), reqs.clone()));
            }
        });
        Self {
            _dir: dir,
            socket,
            requests,
            task,
        }
    }

    /// The requests recorded since the last call.
    fn take(&self) -> Vec<Vec<String>> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies bytes both ways, recording each request before passing it on,
/// so that every request is recorded by the time its reply arrives.
async fn relay(client: UnixStream, server: PathBuf, requests: Arc<Mutex<Vec<Vec<String>>>>) {
    let Ok(upstream) = UnixStream::connect(&server).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = upstream.into_split();
    let close = codec::CLOSE_COMMAND
        .strip_suffix(codec::END_COMMAND)
        .unwrap();
    let up = async move {
        let mut frames = FrameBuffer::new(1 << 20);
        let mut buf = vec![0u8; 8192];
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            frames.push(&buf[..n]).unwrap();
            while let Some(frame) = frames.next_frame().unwrap() {
                if frame != close {
                    let words: Vec<String> =
                        serde_pickle::from_slice(&frame, serde_pickle::DeOptions::new()).unwrap();
                    requests.lock().unwrap().push(words);
                }
            }
            if to_server.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_server.shutdown().await;
    };
    let down = async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::join!(up, down);
}

use common::jail;

/// Probes until `done` holds, or fails after [`DEADLINE`].
async fn probe_until(
    server: &Fail2ban,
    what: &str,
    done: impl Fn(&ServerStatus) -> bool,
) -> ServerStatus {
    let start = Instant::now();
    loop {
        let status = fail2ban::probe_once(&config(&server.socket)).await.unwrap();
        if done(&status) {
            return status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not seen within {DEADLINE:?}; last probe {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How the probe classifies a server that is gone.
async fn offline_reason(server: &Fail2ban) -> OfflineReason {
    let err = fail2ban::probe_once(&config(&server.socket))
        .await
        .unwrap_err();
    let reason = err.offline_reason();
    // The error and the published reason tell the same story.
    match (&err, reason) {
        (Error::SocketMissing { .. }, OfflineReason::SocketMissing)
        | (Error::ConnectionRefused { .. }, OfflineReason::ConnectionRefused) => {}
        _ => panic!("a stopped server gave {err:?} ({reason})"),
    }
    reason
}

/// Failures and a ban. The harness returned once both jails follow their
/// log files, so every line is counted. Returns the probe's status.
async fn failures_and_a_ban_are_counted(
    server: &Fail2ban,
    version: &str,
    label: &str,
) -> ServerStatus {
    for _ in 0..3 {
        server.log_line("alpha", "FAIL login from 192.0.2.1");
    }
    server.log_line("beta", "FAIL login from 192.0.2.2");
    let status = probe_until(server, "the ban and beta's failure", |s| {
        let [alpha, beta] = &s.jails[..] else {
            return false;
        };
        (
            alpha.total_failed,
            alpha.currently_banned,
            alpha.total_banned,
        ) == (3, 1, 1)
            && *beta == jail("beta", 1, 1, 0, 0)
    })
    .await;
    assert_eq!(status.version, version);
    // fail2ban counts a ban before its action runs.
    common::wait_until(DEADLINE, "the ban action", || !server.banned().is_empty());
    assert_eq!(server.banned(), ["192.0.2.1"], "{label}");
    assert_eq!(status.jails[0], server.client_counts("alpha"), "{label}");
    assert_eq!(status.jails[1], server.client_counts("beta"), "{label}");
    status
}

/// `stats` itself: one reply for every jail on 1.1, an unknown command
/// before.
fn stats_is_known_from_1_1(server: &Fail2ban, version: &str, label: &str, status: &ServerStatus) {
    match common::blocking_request(&server.socket, &["stats"]).unwrap() {
        Reply::Ok(v) => {
            assert!(has_stats(version), "{label} answers stats: {v:?}");
            assert_eq!(codec::parse_stats(&v).unwrap(), status.jails, "{label}");
        }
        Reply::Failed(m) => {
            assert!(!has_stats(version), "{label} refuses stats: {m}");
            assert_eq!(m, "Invalid command", "{label}");
        }
    }
}

/// What the probe sends, first and in the steady state.
async fn the_probe_sends_stats_or_falls_back(
    server: &Fail2ban,
    version: &str,
    label: &str,
    status: &ServerStatus,
) {
    let recorder = Recorder::start(&server.socket);
    let mut prober = Prober::new(config(&recorder.socket));
    assert_eq!(&prober.probe().await.unwrap(), status, "{label}");
    let first = recorder.take();
    assert_eq!(&prober.probe().await.unwrap(), status, "{label}");
    let steady = recorder.take();
    let per_jail = [
        req(&["status"]),
        req(&["status", "alpha", "short"]),
        req(&["status", "beta", "short"]),
    ];
    if has_stats(version) {
        // The fast path: `version` and `stats`, in one round trip.
        assert_eq!(first, [req(&["version"]), req(&["stats"])], "{label}");
        assert_eq!(steady, first, "{label}");
    } else {
        let mut fallback = vec![req(&["version"]), req(&["stats"])];
        fallback.extend(per_jail.iter().cloned());
        assert_eq!(first, fallback, "{label}");
        // Having learned that `stats` is unknown, it is not asked again.
        let mut steady_expected = vec![req(&["version"])];
        steady_expected.extend(per_jail.iter().cloned());
        assert_eq!(steady, steady_expected, "{label}");
    }
    drop(recorder);
}

/// A graceful stop: timed from the signal to the process's exit, then
/// classified. Returns how long it took, the probe's reading after it,
/// and whether the socket file was left.
async fn a_graceful_stop_is_classified(
    server: &mut Fail2ban,
    version: &str,
    label: &str,
) -> (Duration, OfflineReason, bool) {
    let graceful = server.signal_and_wait_timed(Signal::SIGTERM);
    let after_term = offline_reason(server).await;
    let socket_left = server.socket.exists();
    if version.starts_with("1.1.") {
        // 1.1 may be caught between shutting its listening socket down and
        // unlinking it; either reading is right then.
        assert!(
            matches!(
                after_term,
                OfflineReason::SocketMissing | OfflineReason::ConnectionRefused
            ),
            "{label}: {after_term}"
        );
    } else {
        assert_eq!(after_term, OfflineReason::SocketMissing, "{label}");
        assert!(!socket_left, "{label} left its socket after SIGTERM");
    }
    (graceful, after_term, socket_left)
}

/// A SIGKILL leaves the socket file behind, with nobody listening.
/// Returns the probe's reading after it.
async fn a_sigkill_leaves_a_refusing_socket(server: &mut Fail2ban, label: &str) -> OfflineReason {
    server.spawn();
    fail2ban::probe_once(&config(&server.socket)).await.unwrap();
    server.signal_and_wait(Signal::SIGKILL);
    assert!(
        server.socket.exists(),
        "{label}: a killed server leaves its socket"
    );
    let after_kill = offline_reason(server).await;
    assert_eq!(after_kill, OfflineReason::ConnectionRefused, "{label}");
    after_kill
}

/// Everything this file checks, against one release.
async fn check(release: Release) {
    let mut server = Fail2ban::start_release(release);
    let version = server.version();
    let label = format!("fail2ban {version} ({})", release.label());
    if let Some(expected) = release.expected_version() {
        assert_eq!(version, expected);
    }

    let status = failures_and_a_ban_are_counted(&server, &version, &label).await;
    stats_is_known_from_1_1(&server, &version, &label, &status);
    the_probe_sends_stats_or_falls_back(&server, &version, &label, &status).await;
    let (graceful, after_term, socket_left) =
        a_graceful_stop_is_classified(&mut server, &version, &label).await;
    let after_kill = a_sigkill_leaves_a_refusing_socket(&mut server, &label).await;

    println!(
        "{label}: graceful stop took {:.2} s; after it the probe says {after_term} \
         (socket file {}); after SIGKILL {after_kill}; stats {}",
        graceful.as_secs_f64(),
        if socket_left { "left" } else { "removed" },
        if has_stats(&version) {
            "answered (fast path)"
        } else {
            "unknown (per-jail fallback)"
        }
    );
}

/// How long a graceful stop takes with one jail and with four. On 1.1 it
/// grows with the jails: each jail's filter and actions threads are told
/// to stop and waited for one after the other, and each first finishes the
/// sleep it is in (up to about 2 s). Printed, not asserted: the phase of
/// those sleeps makes it vary.
fn graceful_stop_by_jails(release: Release) {
    let mut figures = Vec::new();
    let mut version = String::new();
    for count in [1, 4] {
        let names: Vec<String> = (1..=count).map(|i| format!("j{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut server = Fail2ban::start_release_with(release, &names);
        version = server.version();
        let took = server.signal_and_wait_timed(Signal::SIGTERM);
        assert!(
            !server.socket.exists(),
            "fail2ban {version} left its socket"
        );
        figures.push(format!("{count} jail(s) {:.2} s", took.as_secs_f64()));
    }
    println!(
        "fail2ban {version} ({}): graceful stop with {}",
        release.label(),
        figures.join(", with ")
    );
}

#[tokio::test]
async fn installed_package() {
    check(Release::Installed).await;
}

#[tokio::test]
async fn release_1_1_1_from_source() {
    check(Release::V1_1_1).await;
}

#[tokio::test]
async fn upstream_head_from_source() {
    check(Release::Head).await;
}

#[test]
fn graceful_stop_of_the_installed_package_by_jails() {
    graceful_stop_by_jails(Release::Installed);
}

#[test]
fn graceful_stop_of_1_1_1_by_jails() {
    graceful_stop_by_jails(Release::V1_1_1);
}

#[test]
fn graceful_stop_of_head_by_jails() {
    graceful_stop_by_jails(Release::Head);
}
