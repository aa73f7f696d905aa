//! `demo.sh` plays its whole story, and leaves nothing behind, also when
//! interrupted with Ctrl-C.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn demo() -> Command {
    common::require_program("fail2ban-server", "fail2ban");
    common::require_program("dbus-daemon", "dbus-daemon");
    let mut cmd = Command::new("bash");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("demo.sh"))
        .env("FAIL2BAN_HEALTHD", env!("CARGO_BIN_EXE_fail2ban-healthd"))
        .stdin(Stdio::null());
    cmd
}

/// Processes whose command line mentions `dir`.
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) {
                found.push(cmdline);
            }
        }
    }
    found
}

fn demo_dir(output: &str) -> PathBuf {
    let line = output
        .lines()
        .find_map(|l| l.strip_prefix("demo directory: "))
        .unwrap_or_else(|| panic!("no demo directory in {output}"));
    PathBuf::from(line.trim())
}

#[test]
fn the_demo_tells_the_whole_story_and_cleans_up() {
    let out = demo().env("DEMO_PACE", "0").output().expect("run demo.sh");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{err}");
    // The story, in order, with the live signals among it.
    let mut at = 0;
    for step in [
        "fail2ban:         online, version",
        "registered the activation of beta",
        "registered the activation of gamma",
        "fail2ban:         OFFLINE",
        "pending recovery: gamma: fail2ban went offline",
        "rolled back gamma: disabled in",
        "fail2ban restarted and online with 2 jails",
        "[gamma]",
        "enabled = false",
        "rolled back",
        "fail2ban_up 1",
        "dismissed the recovery record",
        "demo: removed",
    ] {
        let found = text[at..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing after byte {at}:\n{text}\n{err}"));
        at += found + step.len();
    }
    // The live signals, printed by the watch as they come (their place
    // among the story's lines depends on timing).
    for signal in [
        "CameOnline",
        "WentOffline",
        "ActivationCrashDetected",
        "RecoveryResolved",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("    [signal] ") && l.contains(signal)),
            "no {signal} signal:\n{text}"
        );
    }
    let dir = demo_dir(&text);
    assert!(!dir.exists(), "{} left behind", dir.display());
    let left = processes_using(&dir);
    assert!(left.is_empty(), "left running: {left:#?}");
}

#[test]
fn ctrl_c_stops_everything_the_demo_started() {
    // Slow pauses, so Ctrl-C lands in the middle of the story.
    let mut child = demo()
        .env("DEMO_PACE", "30")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut dir = None;
    let start = Instant::now();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(d) = line.strip_prefix("demo directory: ") {
            dir = Some(PathBuf::from(d.trim()));
        }
        // The first pause: everything is running.
        if line.starts_with("alpha ") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
    }
    let dir = dir.expect("the demo names its directory");
    assert!(!processes_using(&dir).is_empty(), "nothing running yet");
    // A terminal's Ctrl-C: SIGINT to the whole foreground process group.
    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::killpg(pgid, Signal::SIGINT).unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "demo still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "{rest:#?}");
    assert!(
        rest.iter().any(|l| l.starts_with("demo: removed")),
        "{rest:#?}"
    );
    assert!(!dir.exists());
    common::wait_until(Duration::from_secs(20), "no process left", || {
        processes_using(&dir).is_empty()
    });
    let _ = kill(pgid, None);
}
