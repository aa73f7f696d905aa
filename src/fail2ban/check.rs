//! `Check(JAIL)`: fail2ban's own checks for a jail as if it were enabled,
//! run in a private copy of its configuration directory.
//!
//! Steps:
//! 1. the configuration directory is copied into a private directory
//!    (mode 0700, bounded, symbolic links followed, sockets, FIFOs and
//!    devices skipped) and the drop-in text is put at the drop-in's place;
//! 2. `fail2ban-client -c COPY -v -t`, fail2ban's configuration test (a
//!    missing log file or filter), and `fail2ban-client -c COPY -d`, the
//!    commands a server would be sent, run at the same time;
//! 3. one Python process, with the interpreter and the modules the client
//!    itself uses, asks fail2ban's `JailsReader` whether the jail is
//!    defined outside the daemon's drop-in, and compiles the jail's
//!    `prefregex`, `failregex` and `ignoreregex` from the dump with
//!    fail2ban's `Filter`, as the server would. The configuration test
//!    does not compile them: a regex only the server refuses stops every
//!    jail at the next reload.
//!
//! The check writes nowhere but its private directory and never talks to
//! the server: the client is given a socket and a pid file inside the
//! private directory. Every child runs without a shell, with standard input
//! closed (the Python helper's request aside), its output read up to a
//! bound, and is killed when the check is dropped or runs over its time.
//!
//! Layout: this file runs the steps and the client; `copy` makes the
//! private copy, `child` runs a child, `compile` the Python helper
//! (`helper.py`), `report` turns what they said into messages.

mod child;
mod compile;
mod copy;
mod report;

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use child::{ChildRun, run_child};
use copy::PrivateCopy;
use report::{PathMap, assemble, fail2ban_lines, last_line};

/// How the checks are run.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// fail2ban's configuration directory (e.g. /etc/fail2ban).
    pub config_dir: PathBuf,
    /// The daemon's drop-in, inside config_dir (e.g. /etc/fail2ban/jail.d/zz-fail2ban-healthd-rollback.local).
    pub dropin: PathBuf,
    /// argv prefix of fail2ban-client, e.g. ["fail2ban-client"] or
    /// ["env", "PYTHONPATH=/src/fail2ban-1.1.1", "/usr/bin/python3", "/src/fail2ban-1.1.1/bin/fail2ban-client"].
    /// The check appends `-c DIR -t` etc. itself.
    pub client_command: Vec<String>,
    /// Upper bound for the whole check.
    pub timeout: Duration,
}

/// The answer: `{Ok: b, Messages: as}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Every check passed.
    pub ok: bool,
    /// What passed, or fail2ban's own words on what failed and one line of
    /// ours per failed step; printable, each bounded, at most about 20.
    pub messages: Vec<String>,
}

/// Why a check could not be run at all. A jail that fails a check is not
/// an error: it is a [`CheckReport`] with `ok` false.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The settings cannot describe a check (the drop-in outside the
    /// configuration directory, an empty client command).
    #[error("invalid check settings: {0}")]
    Settings(String),
    /// Copying the configuration directory failed.
    #[error("cannot copy {} for the check: {error}", path.display())]
    Copy {
        /// The file or directory that could not be copied.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// The configuration directory is over the check's bounds.
    #[error("{} is too large to copy for a check: {what}", dir.display())]
    TooLarge {
        /// The configuration directory.
        dir: PathBuf,
        /// Which bound it passed.
        what: String,
    },
    /// A program could not be started, or its output not read.
    #[error("cannot run {program}: {error}")]
    Run {
        /// The program, as given.
        program: String,
        /// What the system said.
        error: io::Error,
    },
    /// fail2ban-client ran but did not behave as fail2ban-client does
    /// (an exit code fail2ban never uses, such as `env`'s 127 for a
    /// missing program, or no verdict).
    #[error("{command} did not run as fail2ban-client: {detail}")]
    Client {
        /// The command line.
        command: String,
        /// Its exit and last words.
        detail: String,
    },
    /// The Python interpreter that runs fail2ban-client is unknown.
    #[error("cannot tell which Python runs {program}: {reason}")]
    Interpreter {
        /// The client program.
        program: String,
        /// Why.
        reason: String,
    },
    /// The regex compile with fail2ban's modules could not be run.
    #[error("fail2ban's regex compile could not run: {0}")]
    Helper(String),
    /// A child printed more than the check reads.
    #[error("{what} printed more than {limit} bytes")]
    Output {
        /// Which child.
        what: String,
        /// The bound.
        limit: usize,
    },
    /// The check ran over its time limit; every child was killed.
    #[error("the check did not finish within {} ms", .0.as_millis())]
    TimedOut(Duration),
}

/// What is kept of the configuration test's output, per stream.
const TEST_OUTPUT_LIMIT: usize = 1 << 20;
/// The dump of a large configuration is a few hundred KiB.
const DUMP_LIMIT: usize = 16 << 20;

/// Runs both checks for `jail` with `dropin_text` as the drop-in's content
/// (the text Try would write, containing `[jail]\nenabled = true`), in a
/// private copy of config_dir; the real config dir and the server are
/// never touched.
///
/// # Errors
/// [`CheckError`] when the check could not be run: the client or its
/// Python missing, the copy failed or was over its bounds, the time limit
/// passed.
pub async fn check(
    settings: &CheckSettings,
    jail: &str,
    dropin_text: &str,
) -> Result<CheckReport, CheckError> {
    match tokio::time::timeout(settings.timeout, run(settings, jail, dropin_text)).await {
        Ok(result) => result,
        Err(_) => Err(CheckError::TimedOut(settings.timeout)),
    }
}

async fn run(
    settings: &CheckSettings,
    jail: &str,
    dropin_text: &str,
) -> Result<CheckReport, CheckError> {
    if settings.client_command.is_empty() {
        return Err(CheckError::Settings(
            "the fail2ban-client command is empty".into(),
        ));
    }
    let dropin = dropin_relative(&settings.config_dir, &settings.dropin)?;
    let copy = PrivateCopy::make(
        settings.config_dir.clone(),
        dropin.clone(),
        dropin_text.to_owned(),
    )
    .await?;
    let (test, dump) = tokio::try_join!(
        config_test(&settings.client_command, &copy),
        dump(&settings.client_command, &copy, jail)
    )?;
    // Whether the jail is defined is asked of the configuration without
    // the drop-in: the drop-in's own `[jail]` line defines a jail of that
    // name to fail2ban, one that has no filter and no log.
    copy.remove_dropin(dropin).await?;
    let answer = compile::compile(&settings.client_command, &copy, jail, &dump.filtered).await?;
    let paths = PathMap {
        private: copy.conf.to_string_lossy().into_owned(),
        real: settings.config_dir.to_string_lossy().into_owned(),
    };
    let report = assemble(jail, &settings.dropin, &test, &dump, &answer, &paths);
    copy.dispose().await;
    Ok(report)
}

/// The drop-in's path relative to the configuration directory.
fn dropin_relative(config_dir: &Path, dropin: &Path) -> Result<PathBuf, CheckError> {
    let outside = || {
        CheckError::Settings(format!(
            "the drop-in {} is not inside the configuration directory {}",
            dropin.display(),
            config_dir.display()
        ))
    };
    let relative = dropin.strip_prefix(config_dir).map_err(|_| outside())?;
    let plain = relative.components().count() > 0
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if plain {
        Ok(relative.to_path_buf())
    } else {
        Err(outside())
    }
}

/// `CLIENT -c COPY -s SOCK -p PID WORDS...`: the socket and the pid file
/// are private, so no version of the client can reach the real server.
fn client_argv(client: &[String], copy: &PrivateCopy, words: &[&str]) -> Vec<OsString> {
    let mut argv: Vec<OsString> = client.iter().map(OsString::from).collect();
    argv.push("-c".into());
    argv.push(copy.conf.clone().into());
    argv.push("-s".into());
    argv.push(copy.root.join("check.sock").into());
    argv.push("-p".into());
    argv.push(copy.root.join("check.pid").into());
    argv.extend(words.iter().map(OsString::from));
    argv
}

/// The configuration test's verdict and fail2ban's words.
#[derive(Debug)]
struct TestOutcome {
    passed: bool,
    code: i32,
    lines: Vec<String>,
}

/// `fail2ban-client -v -t`: exit 0 and its OK line, or exit 255. `-v`
/// adds the NOTICE naming a missing log file.
async fn config_test(client: &[String], copy: &PrivateCopy) -> Result<TestOutcome, CheckError> {
    let run = run_child(
        client_argv(client, copy, &["-v", "-t"]),
        &copy.work,
        None,
        TEST_OUTPUT_LIMIT,
    )
    .await?;
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let code = fail2ban_exit(client, &run, "-t")?;
    if code == 0 && !stdout.contains("OK: configuration test is successful") {
        return Err(CheckError::Client {
            command: client.join(" "),
            detail: "exit 0 without fail2ban's \"OK: configuration test is successful\"".into(),
        });
    }
    let mut lines = fail2ban_lines(&stderr);
    lines.extend(fail2ban_lines(&stdout));
    // Ours says as much, with the exit code.
    lines.retain(|l| l != "ERROR: test configuration failed");
    report::dedup(&mut lines);
    if code != 0 && lines.is_empty() {
        lines.extend(last_line(&stderr).or_else(|| last_line(&stdout)));
    }
    Ok(TestOutcome {
        passed: code == 0,
        code,
        lines,
    })
}

/// The dump's lines that may concern the jail, and how `-d` ended.
#[derive(Debug)]
struct DumpOutcome {
    code: i32,
    filtered: String,
    lines: Vec<String>,
}

/// `fail2ban-client -d`: the commands a server would be sent, one Python
/// list per line. Only lines naming the jail somewhere, and
/// `config-error` lines, are kept for the compile.
async fn dump(
    client: &[String],
    copy: &PrivateCopy,
    jail: &str,
) -> Result<DumpOutcome, CheckError> {
    let run = run_child(
        client_argv(client, copy, &["-d"]),
        &copy.work,
        None,
        DUMP_LIMIT,
    )
    .await?;
    if run.stdout_cut {
        return Err(CheckError::Output {
            what: format!("{} -d", client.join(" ")),
            limit: DUMP_LIMIT,
        });
    }
    let code = fail2ban_exit(client, &run, "-d")?;
    let stdout = String::from_utf8_lossy(&run.stdout);
    let filtered: String = stdout
        .lines()
        .filter(|l| l.contains(jail) || l.starts_with("['config-error'"))
        .flat_map(|l| [l, "\n"])
        .collect();
    let mut lines = fail2ban_lines(&String::from_utf8_lossy(&run.stderr));
    report::dedup(&mut lines);
    Ok(DumpOutcome {
        code,
        filtered,
        lines,
    })
}

/// fail2ban-client exits 0 or 255 and nothing else: any other end means
/// the command did not run fail2ban-client (`env` exits 127 for a missing
/// program, Python 2 for a missing script, 1 for a missing module).
fn fail2ban_exit(client: &[String], run: &ChildRun, option: &str) -> Result<i32, CheckError> {
    match run.status.code() {
        Some(code @ (0 | 255)) => Ok(code),
        other => {
            let stderr = String::from_utf8_lossy(&run.stderr);
            let how = other.map_or_else(|| run.status.to_string(), |c| format!("exit {c}"));
            let words = last_line(&stderr).map_or_else(String::new, |l| format!(": {l}"));
            Err(CheckError::Client {
                command: format!("{} {option}", client.join(" ")),
                detail: format!("{how}{words}"),
            })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_dropin_must_be_a_plain_path_inside_the_configuration() {
        let c = Path::new("/etc/fail2ban");
        assert_eq!(
            dropin_relative(c, Path::new("/etc/fail2ban/jail.d/x.local")).unwrap(),
            PathBuf::from("jail.d/x.local")
        );
        assert_eq!(
            dropin_relative(
                Path::new("/etc/fail2ban/"),
                Path::new("/etc/fail2ban/jail.d/x.local")
            )
            .unwrap(),
            PathBuf::from("jail.d/x.local")
        );
        for bad in [
            "/etc/x.local",
            "/etc/fail2ban",
            "/etc/fail2ban/../x.local",
            "/etc/fail2banx/jail.d/x.local",
        ] {
            let e = dropin_relative(c, Path::new(bad)).unwrap_err();
            assert!(
                matches!(&e, CheckError::Settings(m) if m.contains(bad)),
                "{bad}: {e}"
            );
        }
    }
}
