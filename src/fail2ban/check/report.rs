//! The check's answer: one line of ours per step, and fail2ban's own
//! words (its ERROR and NOTICE records, its refusals of a regex) with the
//! private copy's path replaced by the real one, each cleaned of control
//! characters and bounded, at most about 20 lines.

use std::path::Path;

use super::compile::Compiled;
use super::{CheckReport, DumpOutcome, TestOutcome};
use crate::text::clean;

/// One message, in bytes.
pub(super) const MESSAGE_BYTES: usize = 400;
/// fail2ban's lines shown for the configuration test, and lines shown for
/// the compile; with ours, at most 20 messages.
const TEST_LINES: usize = 6;
const COMPILE_LINES: usize = 9;

/// The private copy's path and the real one, for fail2ban's words.
pub(super) struct PathMap {
    pub(super) private: String,
    pub(super) real: String,
}

impl PathMap {
    fn show(&self, line: &str) -> String {
        let line = line.replace(&self.private, &self.real);
        clean(&line, MESSAGE_BYTES).into_owned()
    }
}

/// Messages: ours always; fail2ban's up to a number per step, then one
/// line saying how many more there were.
#[derive(Default)]
struct Messages(Vec<String>);

impl Messages {
    fn ours(&mut self, line: String) {
        self.0.push(clean(&line, MESSAGE_BYTES).into_owned());
    }

    fn theirs<'a>(
        &mut self,
        lines: impl IntoIterator<Item = &'a str>,
        max: usize,
        paths: &PathMap,
    ) {
        let lines: Vec<&str> = lines.into_iter().collect();
        for line in lines.iter().take(max) {
            self.0.push(paths.show(line));
        }
        if lines.len() > max {
            self.0
                .push(format!("({} more lines not shown)", lines.len() - max));
        }
    }
}

pub(super) fn assemble(
    jail: &str,
    dropin: &Path,
    test: &TestOutcome,
    dump: &DumpOutcome,
    compiled: &Compiled,
    paths: &PathMap,
) -> CheckReport {
    let mut m = Messages::default();
    let mut ok = test.passed;
    if test.passed {
        m.ours("configuration test passed".into());
    } else {
        m.ours(format!("configuration test failed (exit {})", test.code));
        m.theirs(test.lines.iter().map(String::as_str), TEST_LINES, paths);
    }
    if let Some(error) = &compiled.read_error {
        ok = false;
        m.ours(format!(
            "fail2ban could not read its jail configuration: {error}"
        ));
    } else if compiled.defined == Some(false) {
        ok = false;
        m.ours(format!(
            "jail {jail} is not in fail2ban's configuration (no [{jail}] section outside {})",
            dropin.display()
        ));
    }
    ok &= compile_messages(jail, test, dump, compiled, paths, &mut m);
    CheckReport { ok, messages: m.0 }
}

/// The compile's lines; whether it passed.
fn compile_messages(
    jail: &str,
    test: &TestOutcome,
    dump: &DumpOutcome,
    compiled: &Compiled,
    paths: &PathMap,
    m: &mut Messages,
) -> bool {
    let version = compiled.version.as_deref().unwrap_or("?");
    if dump.code != 0 {
        m.ours(format!(
            "regexes of jail {jail} not compiled: fail2ban-client -d failed (exit {})",
            dump.code
        ));
        if test.passed {
            m.theirs(dump.lines.iter().map(String::as_str), TEST_LINES, paths);
        }
        return false;
    }
    if compiled.defined == Some(false) {
        // Said already; a jail of the drop-in's making has nothing to
        // compile.
        return false;
    }
    if !compiled.in_dump {
        if test.passed {
            m.ours(format!(
                "fail2ban would not start jail {jail}: its dump has no commands for it"
            ));
            let mine = compiled
                .config_errors
                .iter()
                .filter(|e| e.contains(&format!("'{jail}'")));
            m.theirs(mine.map(String::as_str), TEST_LINES, paths);
        } else {
            m.ours(format!(
                "regexes of jail {jail} not compiled: fail2ban skips the jail"
            ));
        }
        return false;
    }
    if compiled.errors.is_empty() {
        let pref = if compiled.prefregex > 0 {
            " (with its prefregex)"
        } else {
            ""
        };
        m.ours(format!(
            "{} failregex and {} ignoreregex of jail {jail} compiled{pref} by fail2ban {version}",
            compiled.failregex, compiled.ignoreregex
        ));
        return true;
    }
    m.ours(format!(
        "fail2ban {version} refuses {} of the regexes of jail {jail}: a reload would stop every jail",
        compiled.errors.len()
    ));
    let mut lines = Vec::new();
    for e in &compiled.errors {
        let option = e.option.strip_prefix("add").unwrap_or(&e.option);
        lines.push(format!(
            "{option} of jail {jail} does not compile: {}",
            e.value
        ));
        lines.extend(e.error.lines().map(str::to_owned));
    }
    m.theirs(lines.iter().map(String::as_str), COMPILE_LINES, paths);
    false
}

/// fail2ban's ERROR, CRITICAL and NOTICE log records in `text` (each with
/// its continuation lines), and its bare `ERROR: ...` lines; tracebacks
/// and the rest are dropped.
pub(super) fn fail2ban_lines(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // Whether the lines that follow continue a record that was kept.
    let mut continuing = false;
    let mut traceback = false;
    for line in text.lines() {
        if traceback {
            // A traceback ends with its first unindented line, the
            // exception.
            traceback = line.starts_with(' ') || line.is_empty();
            continue;
        }
        if line.starts_with("Traceback ") {
            traceback = true;
            continuing = false;
            continue;
        }
        if let Some((level, message)) = log_record(line) {
            continuing = matches!(level, "ERROR" | "CRITICAL" | "NOTICE");
            if continuing {
                out.push(if message.starts_with(level) {
                    message.to_owned()
                } else {
                    format!("{level}: {message}")
                });
            }
            continue;
        }
        let trimmed = line.trim();
        if trimmed.starts_with("ERROR") || trimmed.starts_with("CRITICAL") {
            out.push(trimmed.to_owned());
            continuing = false;
        } else if continuing
            && !trimmed.is_empty()
            && let Some(last) = out.last_mut()
        {
            last.push(' ');
            last.push_str(trimmed);
        }
    }
    out
}

/// `2024-01-01 00:00:00,000 fail2ban.jailreader [123]: NOTICE  message`:
/// the level and the message.
fn log_record(line: &str) -> Option<(&str, &str)> {
    let starts_with_date = line.get(..10).is_some_and(|d| {
        d.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
    });
    if !starts_with_date {
        return None;
    }
    let (_, rest) = line.split_once("]: ")?;
    let rest = rest.trim_start();
    let (level, message) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((level, message.trim()))
}

pub(super) fn last_line(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| clean(l, MESSAGE_BYTES).into_owned())
}

/// Removes repeated lines, keeping the first of each.
pub(super) fn dedup(lines: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    lines.retain(|l| seen.insert(l.clone()));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fail2ban::check::compile::RegexRefused;

    /// 1.0.2's `-v -t` for a jail whose log file is missing, and for a
    /// drop-in without a section header.
    const T_1_0_2: &str = "\
2026-11-30 13:09:19,776 fail2ban.configreader   [28008]: INFO    Loading configs for fail2ban under /c \n\
2026-11-30 13:09:15,271 fail2ban.configreader   [27960]: WARNING 'syslogsocket' not defined in 'Definition'. Using default one: 'auto'\n\
2026-11-30 13:09:19,779 fail2ban.jailreader     [28008]: NOTICE  No file(s) found for glob /c/log/beta.log\n\
2026-11-30 13:09:19,779 fail2ban                [28008]: ERROR   Failed during configuration: Have not found any log file for beta jail\n\
2026-11-30 13:12:32,508 fail2ban                [30181]: ERROR   Failed during configuration: File contains no section headers.\n\
file: '/c/jail.d/zz.local', line: 1\n\
'[alpha\\n'\n\
2026-11-30 13:09:19,779 fail2ban                [28008]: ERROR   ERROR: test configuration failed\n\
Traceback (most recent call last):\n\
  File \"/usr/lib/python3/dist-packages/fail2ban/client/fail2banclient.py\", line 405, in start\n\
    ret = self.initCmdLine(argv)\n\
          ^^^^^^^^^^^^^^^^^^^^^^\n\
fail2ban.client.fail2bancmdline.ServerExecutionException: ERROR: test configuration failed\n\
\n";

    #[test]
    fn fail2bans_error_and_notice_records_are_kept_with_their_continuations() {
        assert_eq!(
            fail2ban_lines(T_1_0_2),
            [
                "NOTICE: No file(s) found for glob /c/log/beta.log",
                "ERROR: Failed during configuration: Have not found any log file for beta jail",
                "ERROR: Failed during configuration: File contains no section headers. \
                 file: '/c/jail.d/zz.local', line: 1 '[alpha\\n'",
                "ERROR: test configuration failed",
            ]
        );
        // 1.1.1 prints its verdict bare.
        let t_1_1_1 = "2026-11-30 13:09:50,754 fail2ban.jailsreader    [28400]: ERROR   Errors in jail 'delta'.\n\
                       ERROR: test configuration failed\n";
        assert_eq!(
            fail2ban_lines(t_1_1_1),
            [
                "ERROR: Errors in jail 'delta'.",
                "ERROR: test configuration failed"
            ]
        );
        assert!(fail2ban_lines("OK: configuration test is successful\n").is_empty());
    }

    fn paths() -> PathMap {
        PathMap {
            private: "/tmp/private/conf".into(),
            real: "/etc/fail2ban".into(),
        }
    }

    fn passed() -> TestOutcome {
        TestOutcome {
            passed: true,
            code: 0,
            lines: Vec::new(),
        }
    }

    fn dumped() -> DumpOutcome {
        DumpOutcome {
            code: 0,
            filtered: String::new(),
            lines: Vec::new(),
        }
    }

    fn compiled() -> Compiled {
        Compiled {
            version: Some("1.0.2".into()),
            defined: Some(true),
            in_dump: true,
            failregex: 2,
            ignoreregex: 1,
            ..Compiled::default()
        }
    }

    const DROPIN: &str = "/etc/fail2ban/jail.d/zz.local";

    #[test]
    fn a_jail_that_passes_says_what_passed() {
        let r = assemble(
            "alpha",
            Path::new(DROPIN),
            &passed(),
            &dumped(),
            &compiled(),
            &paths(),
        );
        assert_eq!(
            r,
            CheckReport {
                ok: true,
                messages: vec![
                    "configuration test passed".into(),
                    "2 failregex and 1 ignoreregex of jail alpha compiled by fail2ban 1.0.2".into()
                ]
            }
        );
    }

    #[test]
    fn failures_name_their_step_and_show_fail2bans_words_with_real_paths() {
        let test = TestOutcome {
            passed: false,
            code: 255,
            lines: vec![
                "NOTICE: No file(s) found for glob /tmp/private/conf/x.log\u{1b}[31m".into(),
            ],
        };
        let c = Compiled {
            errors: vec![RegexRefused {
                option: "addfailregex".into(),
                value: "^(unclosed <HOST>".into(),
                error: "Unable to compile regular expression '^(x':\nmissing ), unterminated subpattern at position 1".into(),
            }],
            ..compiled()
        };
        let r = assemble("alpha", Path::new(DROPIN), &test, &dumped(), &c, &paths());
        assert!(!r.ok);
        assert_eq!(
            r.messages,
            [
                "configuration test failed (exit 255)",
                "NOTICE: No file(s) found for glob /etc/fail2ban/x.log\\u{1b}[31m",
                "fail2ban 1.0.2 refuses 1 of the regexes of jail alpha: a reload would stop every jail",
                "failregex of jail alpha does not compile: ^(unclosed <HOST>",
                "Unable to compile regular expression '^(x':",
                "missing ), unterminated subpattern at position 1",
            ]
        );
    }

    #[test]
    fn a_jail_defined_only_by_the_dropin_is_not_in_the_configuration() {
        let c = Compiled {
            defined: Some(false),
            failregex: 0,
            ignoreregex: 0,
            ..compiled()
        };
        let r = assemble(
            "nosuch",
            Path::new(DROPIN),
            &passed(),
            &dumped(),
            &c,
            &paths(),
        );
        assert!(!r.ok);
        assert_eq!(
            r.messages,
            [
                "configuration test passed",
                "jail nosuch is not in fail2ban's configuration (no [nosuch] section outside /etc/fail2ban/jail.d/zz.local)"
            ]
        );
    }

    /// A jail the drop-in names but that fail2ban skips for an error in
    /// its configuration: it is not in the dump.
    fn skipped() -> Compiled {
        Compiled {
            in_dump: false,
            config_errors: vec!["Jail 'alpha' skipped, because of wrong configuration: x".into()],
            ..compiled()
        }
    }

    #[test]
    fn a_jail_missing_from_the_dump_would_not_start_and_says_why() {
        let r = assemble(
            "alpha",
            Path::new(DROPIN),
            &passed(),
            &dumped(),
            &skipped(),
            &paths(),
        );
        assert!(!r.ok);
        assert_eq!(
            r.messages[1..],
            [
                "fail2ban would not start jail alpha: its dump has no commands for it",
                "Jail 'alpha' skipped, because of wrong configuration: x"
            ]
        );
    }

    #[test]
    fn a_jail_skipped_for_a_reason_the_configuration_test_gave_is_not_compiled() {
        let test = TestOutcome {
            passed: false,
            code: 255,
            lines: vec!["ERROR: Unable to read the filter 'nofilter'".into()],
        };
        let r = assemble(
            "alpha",
            Path::new(DROPIN),
            &test,
            &dumped(),
            &skipped(),
            &paths(),
        );
        assert!(!r.ok);
        assert_eq!(
            r.messages,
            [
                "configuration test failed (exit 255)",
                "ERROR: Unable to read the filter 'nofilter'",
                "regexes of jail alpha not compiled: fail2ban skips the jail"
            ]
        );
    }

    #[test]
    fn a_failed_dump_leaves_the_regexes_not_compiled_with_its_words() {
        let dump = DumpOutcome {
            code: 255,
            filtered: String::new(),
            lines: vec!["ERROR: Failed during configuration: x".into()],
        };
        let r = assemble(
            "alpha",
            Path::new(DROPIN),
            &passed(),
            &dump,
            &compiled(),
            &paths(),
        );
        assert!(!r.ok);
        assert_eq!(
            r.messages[1..],
            [
                "regexes of jail alpha not compiled: fail2ban-client -d failed (exit 255)",
                "ERROR: Failed during configuration: x"
            ]
        );
    }

    #[test]
    fn messages_stay_few_and_bounded() {
        let test = TestOutcome {
            passed: false,
            code: 255,
            lines: (0..50)
                .map(|i| format!("ERROR: {i} {}", "x".repeat(2000)))
                .collect(),
        };
        let c = Compiled {
            errors: (0..50)
                .map(|i| RegexRefused {
                    option: "addignoreregex".into(),
                    value: format!("({i}"),
                    error: "a\nb\nc".into(),
                })
                .collect(),
            ..compiled()
        };
        let r = assemble("alpha", Path::new(DROPIN), &test, &dumped(), &c, &paths());
        assert!(!r.ok);
        assert!(r.messages.len() <= 20, "{}", r.messages.len());
        assert!(
            r.messages
                .iter()
                .all(|m| m.len() <= MESSAGE_BYTES + 3 && crate::text::printable(m))
        );
        assert!(
            r.messages
                .contains(&"(44 more lines not shown)".to_string()),
            "{:?}",
            r.messages
        );
        assert!(
            r.messages
                .contains(&"ignoreregex of jail alpha does not compile: (0".to_string())
        );
    }
}
