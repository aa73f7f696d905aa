//! The command-line client (`status`, `watch`, `activate`, `dismiss`) and
//! the example subscriber, against the daemon on a private bus probing a
//! real fail2ban-server.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::Fail2ban;
use common::bus::{Daemon, PrivateBus};
use nix::sys::signal::Signal;

fn cli(bus: &PrivateBus, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fail2ban-healthd"))
        .args(args)
        .args(["--bus-address", &bus.address])
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A child whose standard output and error arrive line by line.
struct Lines {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
}

impl Lines {
    fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pump = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let out = pump(Box::new(child.stdout.take().unwrap()));
        let err = pump(Box::new(child.stderr.take().unwrap()));
        Self { child, out, err }
    }

    /// The first line of `rx` that satisfies `cond`, within 15 s.
    fn wait(rx: &mpsc::Receiver<String>, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if cond(&line) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no {what}; saw {seen:#?}"),
            }
        }
    }

    fn line(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        Self::wait(&self.out, what, cond)
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn status_activate_and_dismiss() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    let _d = Daemon::start(
        &bus,
        &server.socket,
        &["--jail-start-grace", "500ms", "--watch-interval", "200ms"],
        &[],
    )
    .await;

    let out = cli(&bus, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("online, version "), "{text}");
    assert!(text.contains("pending recovery: none"), "{text}");
    let alpha = text.lines().find(|l| l.starts_with("alpha ")).unwrap();
    let beta = text.lines().find(|l| l.starts_with("beta ")).unwrap();
    assert_eq!(alpha.len(), beta.len(), "aligned rows:\n{text}");

    let out = cli(&bus, &["activate", "gamma"]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).starts_with("registered the activation of gamma at "));

    // gamma never runs: a cause-2 record; status says so and exits 1.
    common::wait_until(Duration::from_secs(10), "the record", || {
        cli(&bus, &["status"]).status.code() == Some(1)
    });
    let out = cli(&bus, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["online"], true);
    assert_eq!(v["offline_reason"], serde_json::Value::Null);
    assert_eq!(v["jails"].as_array().unwrap().len(), 2);
    assert_eq!(v["jails"][0]["name"], "alpha");
    assert_eq!(v["last_activation"]["jail"], "gamma");
    assert_eq!(v["pending_recovery"]["jail"], "gamma");
    assert_eq!(v["pending_recovery"]["cause"], 2);
    assert_eq!(v["pending_recovery"]["cause_name"], "jail_not_running");
    assert_eq!(v["pending_recovery"]["recovered"], false);
    assert_eq!(v["pending_recovery"]["rolled_back"], false);
    assert_eq!(v["socket"], server.socket.display().to_string().as_str());
    assert!(v["last_probe_usec"].as_u64().unwrap() > 0);
    let text = stdout(&cli(&bus, &["status"]));
    assert!(
        text.contains("gamma: the jail is not running") && text.contains("NOT recovered"),
        "{text}"
    );

    let out = cli(&bus, &["dismiss"]);
    assert!(out.status.success(), "{out:?}");
    let out = cli(&bus, &["dismiss"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("fail2ban-healthd: NoPendingRecovery: "));
    assert_eq!(cli(&bus, &["status"]).status.code(), Some(0));

    // Bad input: one line, status 1, nothing recorded.
    let out = cli(&bus, &["activate", "-bad name"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("InvalidJailName"));
    assert_eq!(stderr(&out).lines().count(), 1);
    let v: serde_json::Value =
        serde_json::from_slice(&cli(&bus, &["status", "--json"]).stdout).unwrap();
    assert_eq!(v["last_activation"]["jail"], "gamma");
}

#[tokio::test]
async fn without_a_daemon_the_client_says_so_in_one_line() {
    let bus = PrivateBus::start();
    for args in [
        &["status"][..],
        &["activate", "x"],
        &["dismiss"],
        &["rollback"],
    ] {
        let out = cli(&bus, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = stderr(&out);
        assert!(err.contains("cannot reach fail2ban-healthd"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let out = cli(&bus, &["status", "--bus", "tcp"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn watch_prints_each_signal_as_it_comes() {
    let mut server = Fail2ban::start();
    let bus = PrivateBus::start();
    let _d = Daemon::start(&bus, &server.socket, &[], &[]).await;
    let json = Lines::spawn(Command::new(env!("CARGO_BIN_EXE_fail2ban-healthd")).args([
        "watch",
        "--json",
        "--bus-address",
        &bus.address,
    ]));
    let text = Lines::spawn(Command::new(env!("CARGO_BIN_EXE_fail2ban-healthd")).args([
        "watch",
        "--bus-address",
        &bus.address,
    ]));
    for w in [&json, &text] {
        Lines::wait(&w.err, "the watching notice", |l| l.starts_with("watching"));
    }
    server.signal_and_wait(Signal::SIGKILL);
    // One PropertiesChanged, then the signals, as the daemon publishes.
    let line = json.line("PropertiesChanged", |l| l.contains("PropertiesChanged"));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["args"]["changed"]["Online"], false, "{line}");
    assert_eq!(v["args"]["changed"]["OfflineReason"], 3, "{line}");
    let line = json.line("WentOffline", |l| l.contains("\"WentOffline\""));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["args"]["reason"], 3);
    assert!(v["time_usec"].as_u64().unwrap() > 0);
    let line = text.line("WentOffline", |l| l.contains("WentOffline"));
    assert!(line.contains("reason=3"), "{line}");

    server.spawn();
    let line = json.line("CameOnline", |l| l.contains("\"CameOnline\""));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(!v["args"]["version"].as_str().unwrap().is_empty());
    text.line("CameOnline", |l| l.contains("CameOnline"));
}

/// The example in `examples/subscriber.rs` works as its comment says.
#[tokio::test]
async fn the_example_subscriber_prints_changes() {
    let mut server = Fail2ban::start();
    let bus = PrivateBus::start();
    let _d = Daemon::start(&bus, &server.socket, &[], &[]).await;
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_fail2ban-healthd"))
        .parent()
        .unwrap()
        .join("examples/subscriber");
    assert!(exe.exists(), "cargo test builds the examples: {exe:?}");
    let sub = Lines::spawn(Command::new(exe).arg(&bus.address));
    sub.line("the first state", |l| {
        l == "fail2ban is online with 2 jails"
    });
    server.signal_and_wait(Signal::SIGTERM);
    sub.line("the change", |l| l == "fail2ban is now offline");
}
