//! `metrics_file`: the Prometheus text file after real probes of a real
//! fail2ban-server, read back with a Prometheus text parser.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use common::Fail2ban;
use common::bus::{Daemon, PrivateBus, proxy};
use nix::sys::signal::Signal;
use prometheus_parse::{Scrape, Value};

/// The file parsed, after checking that every sample line follows the text
/// format and that the parser kept every one of them.
fn scrape(path: &Path) -> Scrape {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "{text}");
    let sample = regex_lite(&text);
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    assert_eq!(parsed.samples.len(), sample, "{text}");
    // Every metric is documented and typed before its samples.
    let mut seen_type = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["gauge", "counter"].contains(&kind), "{line}");
            assert!(parsed.docs.contains_key(name), "{name} has no HELP: {text}");
            assert!(seen_type.insert(name.to_owned()), "{name} typed twice");
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(seen_type.contains(name), "{name} sampled before TYPE");
        }
    }
    parsed
}

/// Checks each sample line by hand against the text format's grammar and
/// returns how many there are.
fn regex_lite(text: &str) -> usize {
    let name_ok = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut count = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        count += 1;
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').unwrap()),
            None => (series, ""),
        };
        assert!(name_ok(name), "{line}");
        if !labels.is_empty() {
            for pair in labels.split("\",") {
                let (k, v) = pair.split_once("=\"").unwrap();
                assert!(name_ok(k), "{line}");
                assert!(!v.trim_end_matches('"').contains('"'), "{line}");
            }
        }
    }
    count
}

/// The sample's value, if the file has it.
fn try_value(s: &Scrape, metric: &str, jail: Option<&str>) -> Option<f64> {
    let found = s
        .samples
        .iter()
        .find(|x| x.metric == metric && x.labels.get("jail") == jail)?;
    match found.value {
        Value::Gauge(v) | Value::Counter(v) | Value::Untyped(v) => Some(v),
        _ => None,
    }
}

fn value(s: &Scrape, metric: &str, jail: Option<&str>) -> f64 {
    try_value(s, metric, jail).unwrap_or_else(|| panic!("no {metric} {jail:?}"))
}

/// Whether the file exists and has `metric` (for `jail`) at `v`.
fn file_has(file: &Path, metric: &str, jail: Option<&str>, v: f64) -> bool {
    file.exists() && try_value(&scrape(file), metric, jail) == Some(v)
}

fn kind(s: &Scrape, metric: &str) -> &'static str {
    match s.samples.iter().find(|x| x.metric == metric).unwrap().value {
        Value::Gauge(_) => "gauge",
        Value::Counter(_) => "counter",
        _ => "other",
    }
}

#[tokio::test]
async fn metrics_follow_fail2ban_and_the_record() {
    let mut server = Fail2ban::start();
    let bus = PrivateBus::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fail2ban.prom");
    let d = Daemon::start(
        &bus,
        &server.socket,
        &[
            "--metrics-file",
            file.to_str().unwrap(),
            "--probe-interval",
            "200ms",
            "--crash-window",
            "30s",
            "--instant-detection",
            "false",
        ],
        &[],
    )
    .await;
    let (_c, p) = proxy(&bus).await;
    for _ in 0..3 {
        server.log_line("alpha", "FAIL login from 192.0.2.7");
    }
    common::wait_until(Duration::from_secs(15), "a ban in the metrics", || {
        file_has(&file, "fail2ban_jail_banned_total", Some("alpha"), 1.0)
    });
    let s = scrape(&file);
    assert_eq!(value(&s, "fail2ban_up", None), 1.0);
    assert_eq!(value(&s, "fail2ban_jails", None), 2.0);
    assert_eq!(
        value(&s, "fail2ban_jail_banned_current", Some("alpha")),
        1.0
    );
    assert_eq!(value(&s, "fail2ban_jail_failed_total", Some("alpha")), 3.0);
    assert_eq!(value(&s, "fail2ban_jail_banned_total", Some("beta")), 0.0);
    assert_eq!(
        value(&s, "fail2ban_healthd_pending_recovery", Some("")),
        0.0
    );
    assert_eq!(kind(&s, "fail2ban_jail_banned_total"), "counter");
    assert_eq!(kind(&s, "fail2ban_up"), "gauge");
    let took = value(&s, "fail2ban_healthd_probe_duration_seconds", None);
    assert!(took > 0.0 && took < 5.0, "{took}");
    let at = value(&s, "fail2ban_healthd_last_probe_timestamp_seconds", None);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - at).abs() < 30.0, "{at} vs {now}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);

    // A crash after an activation: down, and a pending recovery labelled
    // with the jail.
    p.register_activation("gamma").await.unwrap();
    server.signal_and_wait(Signal::SIGKILL);
    common::wait_until(Duration::from_secs(15), "the crash in the metrics", || {
        file_has(&file, "fail2ban_up", None, 0.0)
            && file_has(
                &file,
                "fail2ban_healthd_pending_recovery",
                Some("gamma"),
                1.0,
            )
    });
    let s = scrape(&file);
    assert_eq!(value(&s, "fail2ban_jails", None), 0.0);
    assert_eq!(value(&s, "fail2ban_healthd_offline_reason", None), 3.0);
    // Only the one file is there: the temporary one was renamed.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // A daemon that stops leaves no numbers that look current.
    let mut d = d;
    nix::sys::signal::kill(d.pid(), Signal::SIGTERM).unwrap();
    assert!(d.wait_exit(Duration::from_secs(20)).success());
    assert!(!file.exists());
}

#[tokio::test]
async fn an_unwritable_metrics_file_is_logged_and_the_daemon_goes_on() {
    let server = Fail2ban::start();
    let bus = PrivateBus::start();
    let d = Daemon::start(
        &bus,
        &server.socket,
        &["--metrics-file", "/nonexistent-dir/fail2ban.prom"],
        &[],
    )
    .await;
    let (_c, p) = proxy(&bus).await;
    assert!(p.probe().await.unwrap());
    common::wait_until(Duration::from_secs(10), "the warning", || {
        d.log_text().contains("metrics_not_written")
    });
    assert!(p.probe().await.unwrap());
    assert_eq!(d.log_text().matches("metrics_not_written").count(), 1);
}
