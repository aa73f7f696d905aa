//! `fail2ban::check` against REAL fail2ban configurations and clients of
//! each release a test can run: the installed package (Debian 12: 1.0.2),
//! and 1.1.1 and upstream head (1.1.2.dev1) from their source trees.
//!
//! The configuration is a running private server's: the check must leave
//! its directory byte for byte as it was, never create the drop-in there,
//! and leave the server with the same jails, process and counters. For
//! each release:
//! - a good disabled jail passes, its regexes compiled by that release's
//!   own code (the message names the version the server reports);
//! - a missing log file fails, naming the log file;
//! - a missing filter fails, naming it under the real directory;
//! - an invalid failregex or ignoreregex fails, although
//!   `fail2ban-client -t` alone says OK (asserted: it is the point);
//! - a jail not in the configuration fails;
//! - the release's own sshd filter (about 20 failregex and a prefregex)
//!   compiles.
//!
//! And, the client being what it is: a missing client, a client that is
//! not fail2ban-client, and a client that hangs are errors, the hanging
//! one within the time limit, killed (a wrapper's grandchild too). No
//! private directory is left behind.
//! Durations are printed per release: run with `--nocapture` to see them.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Fail2ban, Release, client_argv, release_filter_dir, wait_until};
use fail2ban_healthd::fail2ban::check::{CheckError, CheckReport, CheckSettings, check};

/// The daemon's drop-in, relative to the configuration directory.
const DROPIN: &str = "jail.d/zz-fail2ban-healthd-rollback.local";

/// Generous: a loaded 2-core machine starts Python late.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Checks run one at a time in this process, so that a private directory
/// left behind is seen by the check that left it.
static CHECKS: Mutex<()> = Mutex::new(());

/// The private directories of this process that exist now.
fn private_dirs() -> Vec<PathBuf> {
    let prefix = format!("fail2ban-healthd-check-{}-", std::process::id());
    fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.file_name()
                .to_string_lossy()
                .starts_with(&prefix)
                .then(|| e.path())
        })
        .collect()
}

/// Runs one check on a fresh runtime; returns its result and duration,
/// and asserts its private directory is gone.
fn run_check(
    settings: &CheckSettings,
    jail: &str,
    dropin_text: &str,
) -> (Result<CheckReport, CheckError>, Duration) {
    let _one = CHECKS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let result = rt.block_on(check(settings, jail, dropin_text));
    let took = start.elapsed();
    // A check cut short by its time limit removes its directory when the
    // copy it was waiting for ends.
    wait_until(Duration::from_secs(30), "the private copy removed", || {
        private_dirs().is_empty()
    });
    (result, took)
}

fn dropin_text(jail: &str) -> String {
    format!("# Written by fail2ban-healthd\n[{jail}]\nenabled = true\n")
}

/// A running server of `release` with the jail `alpha`, and candidate
/// jails, disabled, in `jail.d/candidates.local`.
struct Bed {
    server: Fail2ban,
    settings: CheckSettings,
    release: Release,
}

impl Bed {
    fn new(release: Release) -> Self {
        let server = Fail2ban::start_release_with(release, &["alpha"]);
        let b = server.dir().to_path_buf();
        let conf = b.join("conf");
        let filters = release_filter_dir(release);
        for name in ["sshd.conf", "common.conf"] {
            fs::copy(filters.join(name), conf.join("filter.d").join(name))
                .unwrap_or_else(|e| panic!("{}: {e}", filters.join(name).display()));
        }
        fs::write(
            conf.join("filter.d/bad.conf"),
            "[Definition]\nfailregex = ^(unclosed <HOST>\ndatepattern = {NONE}\n",
        )
        .unwrap();
        fs::write(
            conf.join("filter.d/badignore.conf"),
            "[Definition]\nfailregex = ^FAIL from <HOST>$\nignoreregex = ^ok [a-\n\
             datepattern = {NONE}\n",
        )
        .unwrap();
        let log = b.join("log/alpha.log");
        let log = log.display();
        let missing = b.join("log/missing.log");
        server.write_jail_d(
            "candidates",
            &format!(
                "[good]\nenabled = false\nfilter = t\naction = t\nlogpath = {log}\n\n\
                 [nolog]\nenabled = false\nfilter = t\naction = t\nlogpath = {}\n\n\
                 [nofilter]\nenabled = false\nfilter = no-such-filter\naction = t\nlogpath = {log}\n\n\
                 [badregex]\nenabled = false\nfilter = bad\naction = t\nlogpath = {log}\n\n\
                 [badignore]\nenabled = false\nfilter = badignore\naction = t\nlogpath = {log}\n\n\
                 [realsshd]\nenabled = false\nfilter = sshd\naction = t\nlogpath = {log}\n",
                missing.display()
            ),
        );
        let settings = CheckSettings {
            config_dir: conf.clone(),
            dropin: conf.join(DROPIN),
            client_command: client_argv(release),
            timeout: TIMEOUT,
        };
        Self {
            server,
            settings,
            release,
        }
    }

    /// Checks `jail` with the drop-in text enabling it; the check must
    /// have run.
    fn check(&self, jail: &str) -> (CheckReport, Duration) {
        let (result, took) = run_check(&self.settings, jail, &dropin_text(jail));
        let report = result.unwrap_or_else(|e| {
            panic!(
                "the check of {jail} on {} could not run: {e}",
                self.release.label()
            )
        });
        assert!(
            report.messages.len() <= 20,
            "{} messages: {:?}",
            report.messages.len(),
            report.messages
        );
        for m in &report.messages {
            assert!(
                fail2ban_healthd::text::printable(m) && m.len() <= 1000,
                "{m:?}"
            );
            // fail2ban's words name the real directory, never the copy.
            assert!(!m.contains("fail2ban-healthd-check-"), "{m}");
        }
        (report, took)
    }

    /// `fail2ban-client -c COPY -t` of this release, alone, in a copy of
    /// the configuration with `jail` enabled: its exit code and output.
    fn client_test_alone(&self, jail: &str) -> (Option<i32>, String) {
        let scratch = tempfile::tempdir().unwrap();
        let copy = scratch.path().join("conf");
        let cp = Command::new(common::require_program("cp", "coreutils"))
            .arg("-a")
            .arg(&self.settings.config_dir)
            .arg(&copy)
            .status()
            .unwrap();
        assert!(cp.success());
        fs::write(copy.join(DROPIN), dropin_text(jail)).unwrap();
        let argv = &self.settings.client_command;
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .arg("-c")
            .arg(&copy)
            .arg("-s")
            .arg(scratch.path().join("no.sock"))
            .arg("-t")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }
}

/// Every entry under `dir`: type, mode, size, modification time and
/// content (or a link's target).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, i64, i64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let m = fs::symlink_metadata(&path).unwrap();
            let content = if m.is_file() {
                fs::read(&path).unwrap()
            } else if m.is_symlink() {
                fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                todo.push(path.clone());
                Vec::new()
            };
            out.insert(
                path.strip_prefix(dir).unwrap().to_path_buf(),
                (m.mode(), m.mtime(), m.mtime_nsec(), content),
            );
        }
    }
    out
}

fn has(report: &CheckReport, needle: &str) -> bool {
    report.messages.iter().any(|m| m.contains(needle))
}

/// How long each check took, by name.
type Took = Vec<(&'static str, Duration)>;

/// A good disabled jail passes, compiled by this release's code.
fn a_good_jail_passes(bed: &Bed, compiled_by: &str, took: &mut Took) {
    let mut good = Vec::new();
    for _ in 0..5 {
        let (r, t) = bed.check("good");
        assert!(r.ok, "{r:?}");
        assert_eq!(
            r.messages,
            [
                "configuration test passed".to_string(),
                format!("1 failregex and 0 ignoreregex of jail good compiled {compiled_by}")
            ]
        );
        good.push(t);
    }
    good.sort();
    took.push(("good (median of 5)", good[2]));
}

/// A missing log file: the test fails, naming the file.
fn a_missing_log_fails(bed: &Bed, took: &mut Took) {
    let (r, t) = bed.check("nolog");
    took.push(("nolog", t));
    let missing = bed.server.dir().join("log/missing.log");
    assert!(!r.ok, "{r:?}");
    assert!(has(&r, "configuration test failed (exit 255)"), "{r:?}");
    assert!(has(&r, &missing.display().to_string()), "{r:?}");
}

/// A missing filter, named under the real directory `conf`.
fn a_missing_filter_fails(bed: &Bed, conf: &Path, took: &mut Took) {
    let (r, t) = bed.check("nofilter");
    took.push(("nofilter", t));
    assert!(!r.ok, "{r:?}");
    assert!(has(&r, "configuration test failed (exit 255)"), "{r:?}");
    assert!(
        r.messages
            .iter()
            .any(|m| m.contains("no-such-filter") && m.contains(&conf.display().to_string())),
        "{r:?}"
    );
    assert!(
        has(
            &r,
            "regexes of jail nofilter not compiled: fail2ban skips the jail"
        ),
        "{r:?}"
    );
}

/// An invalid failregex: fail2ban's configuration test alone says OK,
/// the check does not. An invalid ignoreregex fails too.
fn an_invalid_regex_fails(bed: &Bed, version: &str, took: &mut Took) {
    let (code, text) = bed.client_test_alone("badregex");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("OK: configuration test is successful"),
        "{text}"
    );
    let (r, t) = bed.check("badregex");
    took.push(("badregex", t));
    assert!(!r.ok, "{r:?}");
    assert!(has(&r, "configuration test passed"), "{r:?}");
    assert!(
        has(
            &r,
            "failregex of jail badregex does not compile: ^(unclosed <HOST>"
        ),
        "{r:?}"
    );
    assert!(has(&r, "missing ), unterminated subpattern"), "{r:?}");
    assert!(
        has(
            &r,
            &format!(
                "fail2ban {version} refuses 1 of the regexes of jail badregex: \
                 a reload would stop every jail"
            )
        ),
        "{r:?}"
    );
    let (r, _) = bed.check("badignore");
    assert!(!r.ok, "{r:?}");
    assert!(
        has(
            &r,
            "ignoreregex of jail badignore does not compile: ^ok [a-"
        ),
        "{r:?}"
    );
}

/// A jail not in the configuration: the drop-in's own line would
/// define it, with no filter and no log, and the client accepts that.
fn a_jail_not_in_the_configuration_fails(bed: &Bed, conf: &Path, took: &mut Took) {
    let (code, text) = bed.client_test_alone("nosuch");
    assert_eq!(code, Some(0), "{text}");
    let (r, t) = bed.check("nosuch");
    took.push(("nosuch", t));
    assert!(!r.ok, "{r:?}");
    assert!(
        has(
            &r,
            &format!(
                "jail nosuch is not in fail2ban's configuration (no [nosuch] section outside {})",
                conf.join(DROPIN).display()
            )
        ),
        "{r:?}"
    );
    assert_eq!(r.messages.len(), 2, "{r:?}");
}

/// The release's own sshd filter: a prefregex and about 20 failregex.
fn the_releases_sshd_filter_compiles(bed: &Bed, compiled_by: &str, took: &mut Took) {
    let (r, t) = bed.check("realsshd");
    took.push(("realsshd", t));
    assert!(r.ok, "{r:?}");
    let line = &r.messages[1];
    let n: u32 = line.split(' ').next().unwrap().parse().unwrap();
    assert!(n >= 15, "{line}");
    assert!(
        line.ends_with(&format!(
            "failregex and 0 ignoreregex of jail realsshd compiled (with its prefregex) {compiled_by}"
        )),
        "{line}"
    );
}

/// The whole story on one release; prints the durations.
fn checks_on(release: Release) {
    let bed = Bed::new(release);
    let conf = bed.settings.config_dir.clone();
    let version = bed.server.version();
    let server_pid = bed.server.pid();
    let jails_before = bed.server.jail_names().unwrap();
    let counts_before = bed.server.client_counts("alpha");
    let before = snapshot(&conf);
    let compiled_by = format!("by fail2ban {version}");
    let mut took = Vec::new();

    a_good_jail_passes(&bed, &compiled_by, &mut took);
    a_missing_log_fails(&bed, &mut took);
    a_missing_filter_fails(&bed, &conf, &mut took);
    an_invalid_regex_fails(&bed, &version, &mut took);
    a_jail_not_in_the_configuration_fails(&bed, &conf, &mut took);
    the_releases_sshd_filter_compiles(&bed, &compiled_by, &mut took);

    // The real directory is as it was, without the drop-in; the server
    // runs on, the same process with the same jails and counters.
    assert_eq!(snapshot(&conf), before, "the configuration changed");
    assert!(!conf.join(DROPIN).exists());
    assert_eq!(bed.server.pid(), server_pid);
    assert!(Path::new(&format!("/proc/{server_pid}")).exists());
    assert_eq!(bed.server.jail_names().unwrap(), jails_before);
    assert_eq!(bed.server.client_counts("alpha"), counts_before);

    let figures: Vec<String> = took
        .iter()
        .map(|(name, t)| format!("{name} {} ms", t.as_millis()))
        .collect();
    println!(
        "check durations, fail2ban {version} ({}): {}",
        release.label(),
        figures.join(", ")
    );
}

#[test]
fn checks_on_the_installed_package() {
    checks_on(Release::Installed);
}

#[test]
fn checks_on_1_1_1() {
    checks_on(Release::V1_1_1);
}

#[test]
fn checks_on_head() {
    checks_on(Release::Head);
}

/// A configuration of the test's own, without a server.
fn plain_settings(
    client_command: Vec<String>,
    timeout: Duration,
) -> (tempfile::TempDir, CheckSettings) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    fs::create_dir_all(conf.join("jail.d")).unwrap();
    fs::write(conf.join("jail.conf"), "[alpha]\nenabled = false\n").unwrap();
    let settings = CheckSettings {
        dropin: conf.join(DROPIN),
        config_dir: conf,
        client_command,
        timeout,
    };
    (dir, settings)
}

#[test]
fn a_missing_client_is_an_error_that_names_it() {
    let (_dir, settings) = plain_settings(vec!["/nonexistent/fail2ban-client".into()], TIMEOUT);
    let (result, _) = run_check(&settings, "alpha", &dropin_text("alpha"));
    let e = result.unwrap_err();
    assert!(matches!(e, CheckError::Run { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("cannot run /nonexistent/fail2ban-client: "),
        "{e}"
    );
    // Behind env, a missing program is env's exit 127.
    let env = common::require_program("env", "coreutils");
    let (_dir, settings) = plain_settings(
        vec![
            env.display().to_string(),
            "PYTHONPATH=/nonexistent".into(),
            "/nonexistent/python3".into(),
            "/nonexistent/fail2ban-client".into(),
        ],
        TIMEOUT,
    );
    let (result, _) = run_check(&settings, "alpha", &dropin_text("alpha"));
    let e = result.unwrap_err();
    assert!(matches!(e, CheckError::Client { .. }), "{e:?}");
    assert!(e.to_string().contains("exit 127"), "{e}");
    assert!(e.to_string().contains("/nonexistent/python3"), "{e}");
}

#[test]
fn a_client_that_is_not_fail2ban_client_is_an_error() {
    let t = common::require_program("true", "coreutils");
    let (_dir, settings) = plain_settings(vec![t.display().to_string()], TIMEOUT);
    let (result, _) = run_check(&settings, "alpha", &dropin_text("alpha"));
    let e = result.unwrap_err();
    assert!(matches!(e, CheckError::Client { .. }), "{e:?}");
    assert!(
        e.to_string().contains("configuration test is successful"),
        "{e}"
    );
}

#[test]
fn a_hanging_client_is_killed_at_the_time_limit() {
    // `sleep 100` refuses the options the check appends; Python ignores
    // them (they become its sys.argv). The marker finds the process.
    let marker = format!("import time; time.sleep(100.{})", std::process::id());
    let python = common::require_program("python3", "python3");
    let limit = Duration::from_secs(3);
    let (_dir, settings) = plain_settings(
        vec![python.display().to_string(), "-c".into(), marker.clone()],
        limit,
    );
    let (result, took) = run_check(&settings, "alpha", &dropin_text("alpha"));
    let e = result.unwrap_err();
    assert!(matches!(e, CheckError::TimedOut(d) if d == limit), "{e:?}");
    assert!(e.to_string().contains("3000 ms"), "{e}");
    assert!(
        took >= limit && took < limit + Duration::from_secs(20),
        "{took:?}"
    );
    wait_until(Duration::from_secs(20), "the hanging client killed", || {
        !running_with(&marker)
    });

    // Through a wrapper that does not exec: the hanging process is a
    // grandchild, killed with the wrapper's process group.
    let marker = format!("import time; time.sleep(200.{})", std::process::id());
    let sh = common::require_program("sh", "dash");
    let (_dir, settings) = plain_settings(
        vec![
            sh.display().to_string(),
            "-c".into(),
            format!("{} -c '{marker}'; true", python.display()),
        ],
        limit,
    );
    let (result, _) = run_check(&settings, "alpha", &dropin_text("alpha"));
    assert!(matches!(result, Err(CheckError::TimedOut(_))), "{result:?}");
    wait_until(Duration::from_secs(20), "the wrapped client killed", || {
        !running_with(&marker)
    });
}

/// Whether a process whose command line holds `marker` runs (a zombie
/// does not count).
fn running_with(marker: &str) -> bool {
    fs::read_dir("/proc").unwrap().any(|e| {
        let p = e.unwrap().path();
        let cmdline = fs::read(p.join("cmdline")).unwrap_or_default();
        let stat = fs::read_to_string(p.join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        !zombie && String::from_utf8_lossy(&cmdline).contains(marker)
    })
}

#[test]
fn bad_settings_and_a_missing_directory_are_errors() {
    let (_dir, mut settings) = plain_settings(client_argv(Release::Installed), TIMEOUT);
    let good_dropin = settings.dropin.clone();
    settings.dropin = PathBuf::from("/etc/elsewhere.local");
    let (result, _) = run_check(&settings, "alpha", &dropin_text("alpha"));
    let e = result.unwrap_err();
    assert!(matches!(e, CheckError::Settings(_)), "{e:?}");
    assert!(e.to_string().contains("/etc/elsewhere.local"), "{e}");

    settings.dropin = good_dropin;
    settings.client_command.clear();
    let (result, _) = run_check(&settings, "alpha", &dropin_text("alpha"));
    assert!(matches!(result, Err(CheckError::Settings(_))), "{result:?}");

    let (dir, mut settings) = plain_settings(client_argv(Release::Installed), TIMEOUT);
    let gone = dir.path().join("gone");
    settings.config_dir = gone.clone();
    settings.dropin = gone.join(DROPIN);
    let (result, _) = run_check(&settings, "alpha", &dropin_text("alpha"));
    let e = result.unwrap_err();
    assert!(matches!(e, CheckError::Copy { .. }), "{e:?}");
    assert!(e.to_string().contains(&gone.display().to_string()), "{e}");
}

#[test]
fn a_jail_with_nothing_to_compile_passes_and_the_directory_is_unchanged() {
    let (dir, settings) = plain_settings(client_argv(Release::Installed), TIMEOUT);
    let secret = settings.config_dir.join("jail.d/secret.local");
    fs::write(&secret, "[alpha]\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let before = snapshot(dir.path());
    let (result, _) = run_check(&settings, "alpha", &dropin_text("alpha"));
    let r = result.unwrap();
    // `alpha` has no filter and no log in this configuration: fail2ban
    // accepts it and there is nothing to compile.
    assert!(r.ok, "{r:?}");
    assert!(
        has(&r, "0 failregex and 0 ignoreregex of jail alpha compiled"),
        "{r:?}"
    );
    assert_eq!(snapshot(dir.path()), before);
}
