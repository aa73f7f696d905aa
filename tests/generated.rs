//! Files generated from the command line's and the settings' definitions
//! and committed to the repository: each shipped copy must equal what the
//! code generates now. `F2BH_BLESS=1 cargo test --test generated` rewrites
//! them (review the diff before committing).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use clap_complete::Shell;
use fail2ban_healthd::cli::Cli;
use fail2ban_healthd::config::{DEFAULT_PATH, SETTINGS, docs};

const BIN: &str = "fail2ban-healthd";
const BLESS: &str = "F2BH_BLESS";
const TABLE_BEGIN: &str = "<!-- settings-table:begin (generated from src/config; do not edit) -->";
const TABLE_END: &str = "<!-- settings-table:end -->";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn blessing() -> bool {
    std::env::var_os(BLESS).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Fails, naming the first differing line, unless `shipped` is `generated`.
fn assert_same(path: &str, shipped: &str, generated: &str) {
    if shipped == generated {
        return;
    }
    let line = shipped
        .lines()
        .zip(generated.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| shipped.lines().count().min(generated.lines().count()));
    panic!(
        "{path} is not what the code generates (first difference at line {}):\n  \
         shipped:   {:?}\n  generated: {:?}\nRewrite it with `{BLESS}=1 cargo test --test \
         generated` and review the diff.",
        line + 1,
        shipped.lines().nth(line).unwrap_or("<end>"),
        generated.lines().nth(line).unwrap_or("<end>"),
    );
}

/// Compares the file at `path` with `generated`, or rewrites it.
fn check(path: &str, generated: &str) {
    let file = root().join(path);
    if blessing() {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&file, generated).unwrap();
        return;
    }
    let shipped = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!("{path}: {e}; create it with `{BLESS}=1 cargo test --test generated`")
    });
    assert_same(path, &shipped, generated);
}

/// The command with its binary's name, built (subcommands know their
/// full names).
fn command() -> clap::Command {
    let mut cmd = Cli::command().bin_name(BIN);
    cmd.build();
    cmd
}

/// One clap_mangen section, without its `.SH` line when `heading` is false.
fn section(
    man: &clap_mangen::Man,
    render: fn(&clap_mangen::Man, &mut dyn std::io::Write) -> std::io::Result<()>,
    heading: bool,
) -> String {
    let mut buf = Vec::new();
    render(man, &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    // Each render repeats the definition of the apostrophe string; the
    // page defines it once, at its top.
    let text: String = text
        .lines()
        .filter(|l| !l.ends_with(".ds Aq \\(aq") && *l != ".el .ds Aq '")
        .map(|l| format!("{l}\n"))
        .collect();
    if heading {
        text
    } else {
        text.split_once('\n')
            .map_or(String::new(), |(_, rest)| rest.to_owned())
    }
}

/// The definition of the apostrophe string clap_mangen's text uses.
const APOSTROPHE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// The command's man page, section 8: clap_mangen's sections of the main
/// command, then one subsection per subcommand, then files and references.
fn command_man_page() -> String {
    let cmd = command();
    let man = |c: &clap::Command| clap_mangen::Man::new(c.clone()).section("8");
    let main = man(&cmd);
    // clap_mangen would drop an empty date and shift the title's fields.
    let mut out = format!(
        "{APOSTROPHE}.TH FAIL2BAN\\-HEALTHD 8 \"\" \"fail2ban\\-healthd {}\" \"System Administration\"\n",
        env!("CARGO_PKG_VERSION")
    );
    out += &section(&main, clap_mangen::Man::render_name_section, true);
    out += &section(&main, clap_mangen::Man::render_synopsis_section, true);
    out += &section(&main, clap_mangen::Man::render_description_section, true);
    out += ".PP\nThe daemon's settings, their flags and defaults are also described in \
            \\fBfail2ban\\-healthd.toml\\fR(5).\n";
    out += &section(&main, clap_mangen::Man::render_options_section, true);
    out += ".SH COMMANDS\n";
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let page = man(sub);
        out += &format!(".SS \"{} {}\"\n", BIN.replace('-', "\\-"), sub.get_name());
        out += &section(&page, clap_mangen::Man::render_synopsis_section, false);
        out += ".PP\n";
        out += &section(&page, clap_mangen::Man::render_description_section, false);
        out += &section(&page, clap_mangen::Man::render_options_section, false);
    }
    // The paths are the defined defaults (state_file's without systemd).
    let path = |key: &str| {
        let s = SETTINGS.iter().find(|s| s.key == key).unwrap();
        s.default.toml().as_str().unwrap().replace('-', "\\-")
    };
    out += &format!(
        ".SH FILES\n\
         .TP\n{}\n\
         The daemon's configuration, read by \\fBrun\\fR when it exists; see \
         \\fBfail2ban\\-healthd.toml\\fR(5).\n\
         .TP\n{}\n\
         Activations and the recovery record, kept across restarts \
         (\\fBstate_file\\fR; under systemd, in \\fB$STATE_DIRECTORY\\fR).\n\
         .TP\n{}\n\
         The drop-in a rollback writes (\\fBrollback_dropin\\fR).\n",
        DEFAULT_PATH.replace('-', "\\-"),
        path("state_file"),
        path("rollback_dropin"),
    );
    out += ".SH \"SEE ALSO\"\n\\fBfail2ban\\-healthd.toml\\fR(5), \\fBfail2ban\\-client\\fR(1), \
            \\fBfail2ban\\-server\\fR(1), \\fBbusctl\\fR(1), \\fBsystemd.service\\fR(5)\n";
    out
}

fn completion(shell: Shell) -> String {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut command(), BIN, &mut buf);
    String::from_utf8(buf).unwrap()
}

#[test]
fn the_default_config_file_is_generated() {
    check("systemd/config.toml", &docs::config_toml());
}

#[test]
fn the_configuration_man_page_is_generated() {
    check(
        "man/fail2ban-healthd.toml.5",
        &docs::man_page(env!("CARGO_PKG_VERSION")),
    );
}

#[test]
fn the_command_man_page_is_generated() {
    check("man/fail2ban-healthd.8", &command_man_page());
}

#[test]
fn the_shell_completions_are_generated() {
    check(
        "completions/fail2ban-healthd.bash",
        &completion(Shell::Bash),
    );
    check("completions/_fail2ban-healthd", &completion(Shell::Zsh));
    check(
        "completions/fail2ban-healthd.fish",
        &completion(Shell::Fish),
    );
}

/// The README's table between its two marker lines.
#[test]
fn the_readme_settings_table_is_generated() {
    let path = root().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (before, rest) = readme
        .split_once(&format!("{TABLE_BEGIN}\n"))
        .unwrap_or_else(|| panic!("README.md has no line {TABLE_BEGIN:?}"));
    let (shipped, after) = rest
        .split_once(&format!("{TABLE_END}\n"))
        .unwrap_or_else(|| panic!("README.md has no line {TABLE_END:?} after the first marker"));
    let generated = docs::markdown_table();
    if blessing() {
        let text = format!("{before}{TABLE_BEGIN}\n{generated}{TABLE_END}\n{after}");
        std::fs::write(&path, text).unwrap();
        return;
    }
    assert_same("README.md (settings table)", shipped, &generated);
}

/// Every setting appears, under its flag, in every generated document.
#[test]
fn every_setting_is_in_every_document() {
    let toml = docs::config_toml();
    let table = docs::markdown_table();
    let man5 = docs::man_page("0");
    let man8 = command_man_page();
    let bash = completion(Shell::Bash);
    let run = command().find_subcommand("run").cloned().unwrap();
    for s in SETTINGS {
        let flag = s.flag();
        assert!(
            toml.contains(&format!("\n#{} = ", s.key)),
            "config.toml: {}",
            s.key
        );
        assert!(
            table.contains(&format!("| `{}` | `{flag} ", s.key)),
            "README: {}",
            s.key
        );
        assert!(
            man5.contains(&format!("\\fB{}\\fR = ", s.key)),
            "toml.5: {}",
            s.key
        );
        assert!(man8.contains(&flag.replace('-', "\\-")), "man 8: {flag}");
        assert!(bash.contains(&flag), "bash: {flag}");
        assert!(
            run.get_arguments()
                .any(|a| a.get_long() == Some(&flag[2..])),
            "run has no {flag}"
        );
    }
}

/// What lintian checks of a man page: `man --warnings` prints nothing and
/// lexgrog finds a whatis entry.
fn lint_man_page(path: &Path) {
    let out = Command::new("man")
        .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z"])
        .arg(path)
        .env("MANROFFSEQ", "")
        .env("MANWIDTH", "80")
        .output()
        .expect("man (man-db) must be installed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", path.display());
    assert!(stderr.trim().is_empty(), "{}: {stderr}", path.display());
    let out = Command::new("lexgrog")
        .arg(path)
        .output()
        .expect("lexgrog (man-db) must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(" - "),
        "{}: lexgrog: {stdout}",
        path.display()
    );
}

#[test]
fn the_man_pages_pass_mans_checks() {
    let cmd = root().join("man/fail2ban-healthd.8");
    let file = root().join("man/fail2ban-healthd.toml.5");
    lint_man_page(&cmd);
    lint_man_page(&file);
    for (page, sections) in [
        (
            &cmd,
            &[
                "NAME",
                "SYNOPSIS",
                "DESCRIPTION",
                "OPTIONS",
                "COMMANDS",
                "FILES",
                "SEE ALSO",
            ][..],
        ),
        (
            &file,
            &["NAME", "SYNOPSIS", "DESCRIPTION", "FILES", "SEE ALSO"][..],
        ),
    ] {
        let text = std::fs::read_to_string(page).unwrap();
        for name in sections {
            assert!(
                text.contains(&format!(".SH {name}\n"))
                    || text.contains(&format!(".SH \"{name}\"\n")),
                "{}: no section {name}",
                page.display()
            );
        }
    }
}

/// The flags of `run` keep the names that units, scripts and tests use,
/// and each fills its setting.
#[test]
fn the_run_flags_keep_their_names_and_fill_their_settings() {
    let run = command().find_subcommand("run").cloned().unwrap();
    let mut flags: Vec<&str> = run.get_arguments().filter_map(|a| a.get_long()).collect();
    flags.sort_unstable();
    let mut expected = vec![
        "config",
        "socket",
        "probe-interval",
        "probe-timeout",
        "crash-window",
        "jail-start-grace",
        "watch-interval",
        "restart-grace",
        "manage-group",
        "rollback-group",
        "state-file",
        "fail2ban-unit",
        "instant-detection",
        "bus",
        "bus-address",
        "log",
        "log-level",
        "rollback-dropin",
        "fail2ban-reload-command",
        "fail2ban-start-command",
        "rollback-timeout",
        "fail2ban-client-command",
        "trial-checks",
        "metrics-file",
        "help",
        "version",
    ];
    expected.sort_unstable();
    assert_eq!(flags, expected);

    let cli = <Cli as clap::Parser>::try_parse_from([
        BIN,
        "run",
        "--config",
        "/tmp/c.toml",
        "--instant-detection",
        "false",
        "--fail2ban-unit",
        "",
        "--probe-interval",
        "10s",
    ])
    .unwrap();
    let fail2ban_healthd::cli::Command::Run(run) = cli.command else {
        panic!("not run");
    };
    assert_eq!(run.config.as_deref(), Some(Path::new("/tmp/c.toml")));
    assert_eq!(run.settings.instant_detection, Some(false));
    assert_eq!(run.settings.fail2ban_unit.as_deref(), Some(""));
    assert_eq!(run.settings.probe_interval.as_deref(), Some("10s"));
    assert_eq!(run.settings.socket, None);
    let err = <Cli as clap::Parser>::try_parse_from([BIN, "run", "--instant-detection", "yes"])
        .unwrap_err();
    assert_eq!(err.exit_code(), 2);
}
