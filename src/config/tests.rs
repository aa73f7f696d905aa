use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args as _;

use super::*;

fn parse(text: &str) -> Result<Config, Error> {
    let raw = Settings::from_toml(text, Path::new("test.toml"))?;
    Config::from_raw(&raw, |n| (n == "adm").then_some(4))
}

fn setting(key: &str) -> &'static Setting {
    SETTINGS
        .iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("no setting {key}"))
}

#[test]
fn an_empty_file_gives_the_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.probe.socket, PathBuf::from("/run/fail2ban/fail2ban.sock"));
    assert_eq!(c.probe.timeout, Duration::from_secs(5));
    assert_eq!(c.timing, Timing::default());
    assert_eq!(c.bus, Bus::System);
    assert_eq!(c.log, LogTarget::Auto);
    assert_eq!(c.log_level, tracing::Level::INFO);
    assert_eq!(c.manage_group, None);
    assert_eq!(c.rollback_group, None);
    assert_eq!(
        c.rollback.dropin,
        PathBuf::from("/etc/fail2ban/jail.d/zz-fail2ban-healthd-rollback.local")
    );
    assert_eq!(c.rollback.reload_command, ["fail2ban-client", "reload"]);
    assert_eq!(c.rollback.start_command, ["fail2ban-client", "start"]);
    assert_eq!(c.rollback.client_command, ["fail2ban-client"]);
    assert!(c.rollback.trial_checks);
    assert!(c.instant_detection);
    assert_eq!(c.fail2ban_unit, "fail2ban.service");
    assert_eq!(c.rollback.timeout, Duration::from_secs(15));
    assert_eq!(c.metrics_file, None);
    assert_eq!(c.state_file, crate::state::default_path());
}

/// The defaults other modules keep for themselves (the monitor's timing,
/// the probe's socket and deadline) are the ones defined here.
#[test]
fn the_defined_defaults_agree_with_the_modules_own() {
    let c = parse("").unwrap();
    let probe = crate::fail2ban::ProbeConfig::default();
    assert_eq!(c.probe.socket, probe.socket);
    assert_eq!(c.probe.timeout, probe.timeout);
    assert_eq!(c.timing, Timing::default());
}

#[test]
fn every_key_is_read() {
    let c = parse(
        "socket = \"/tmp/f.sock\"\nprobe_interval = \"1m\"\nprobe_timeout = \"2s 500ms\"\n\
         crash_window = \"2m\"\njail_start_grace = \"10s\"\nmanage_group = \"adm\"\n\
         watch_interval = \"500ms\"\nrestart_grace = \"3s\"\ninstant_detection = false\n\
         fail2ban_unit = \"\"\nstate_file = \"/tmp/s/state.json\"\n\
         bus = \"session\"\nlog = \"stderr\"\nlog_level = \"debug\"\n",
    )
    .unwrap();
    assert_eq!(c.probe.socket, PathBuf::from("/tmp/f.sock"));
    assert_eq!(c.timing.probe_interval, Duration::from_secs(60));
    assert_eq!(c.probe.timeout, Duration::from_millis(2500));
    assert_eq!(c.timing.crash_window, Duration::from_secs(120));
    assert_eq!(c.timing.jail_start_grace, Duration::from_secs(10));
    assert_eq!(c.timing.watch_interval, Duration::from_millis(500));
    assert_eq!(c.timing.restart_grace, Duration::from_secs(3));
    assert!(!c.instant_detection);
    assert_eq!(c.fail2ban_unit, "");
    assert_eq!(c.state_file, PathBuf::from("/tmp/s/state.json"));
    assert_eq!(
        c.manage_group,
        Some(ManageGroup {
            name: "adm".into(),
            gid: 4
        })
    );
    assert_eq!(c.rollback_group, None, "manage_group grants no rollback");
    assert_eq!(c.bus, Bus::Session);
    assert_eq!(c.log, LogTarget::Stderr);
    assert_eq!(c.log_level, tracing::Level::DEBUG);
    let c = parse(
        "rollback_dropin = \"/tmp/c/jail.d/r.local\"\n\
         fail2ban_reload_command = \"fail2ban-client -c /tmp/c  reload\"\n\
         fail2ban_start_command = \"/usr/bin/fail2ban-client -x start\"\n\
         fail2ban_client_command = \"/usr/bin/fail2ban-client -c /tmp/c\"\n\
         trial_checks = false\n\
         rollback_timeout = \"5s\"\nmetrics_file = \"/tmp/m/f.prom\"\n",
    )
    .unwrap();
    assert_eq!(c.rollback.dropin, PathBuf::from("/tmp/c/jail.d/r.local"));
    assert_eq!(
        c.rollback.reload_command,
        ["fail2ban-client", "-c", "/tmp/c", "reload"]
    );
    assert_eq!(
        c.rollback.start_command,
        ["/usr/bin/fail2ban-client", "-x", "start"]
    );
    assert_eq!(
        c.rollback.client_command,
        ["/usr/bin/fail2ban-client", "-c", "/tmp/c"]
    );
    assert!(!c.rollback.trial_checks);
    assert_eq!(c.rollback.timeout, Duration::from_secs(5));
    assert_eq!(c.metrics_file, Some(PathBuf::from("/tmp/m/f.prom")));
    let c = parse("rollback_group = \"adm\"\n").unwrap();
    assert_eq!(
        c.rollback_group,
        Some(ManageGroup {
            name: "adm".into(),
            gid: 4
        })
    );
    assert_eq!(c.manage_group, None);
    let c = parse("bus = \"session\"\nbus_address = \"unix:path=/tmp/b\"\n").unwrap();
    assert_eq!(c.bus, Bus::Address("unix:path=/tmp/b".into()));
}

#[test]
fn each_bad_value_names_its_key_on_one_line() {
    for (text, key) in [
        ("probe_interval = \"soon\"", "probe_interval"),
        ("probe_interval = \"1ms\"", "probe_interval"),
        ("probe_timeout = \"0s\"", "probe_timeout"),
        ("crash_window = \"400d\"", "crash_window"),
        ("jail_start_grace = \"2m\"", "jail_start_grace"),
        ("watch_interval = \"1ms\"", "watch_interval"),
        ("restart_grace = \"2h\"", "restart_grace"),
        ("socket = \"relative.sock\"", "socket"),
        ("state_file = \"state.json\"", "state_file"),
        ("fail2ban_unit = \"fail2ban\"", "fail2ban_unit"),
        ("manage_group = \"nosuchgroup\"", "manage_group"),
        ("rollback_group = \"nosuchgroup\"", "rollback_group"),
        ("bus = \"tcp\"", "bus"),
        ("bus = \"tcp\"\nbus_address = \"unix:path=/b\"", "bus"),
        ("bus_address = \"nonsense\"", "bus_address"),
        ("log = \"syslog\"", "log"),
        ("log_level = \"loud\"", "log_level"),
        ("rollback_dropin = \"jail.d/x.local\"", "rollback_dropin"),
        (
            "rollback_dropin = \"/etc/fail2ban/jail.d/x.txt\"",
            "rollback_dropin",
        ),
        (
            "fail2ban_reload_command = \"  \"",
            "fail2ban_reload_command",
        ),
        ("fail2ban_start_command = \"\"", "fail2ban_start_command"),
        ("rollback_timeout = \"0s\"", "rollback_timeout"),
        ("rollback_timeout = \"2h\"", "rollback_timeout"),
        ("fail2ban_client_command = \" \"", "fail2ban_client_command"),
        ("metrics_file = \"metrics.prom\"", "metrics_file"),
        ("metrics_file = \"/tmp/metrics.txt\"", "metrics_file"),
    ] {
        let msg = parse(text).unwrap_err().to_string();
        assert!(msg.starts_with(&format!("{key}: ")), "{text}: {msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
    let long = format!("socket = \"/{}\"", "x".repeat(120));
    assert!(
        parse(&long)
            .unwrap_err()
            .to_string()
            .starts_with("socket: ")
    );
}

#[test]
fn unknown_keys_and_wrong_types_are_errors_with_a_line() {
    let msg = parse("socket = \"/a\"\nfrobnicate = 1\n")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("line 2") && msg.contains("frobnicate"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    let msg = parse("probe_interval = 30").unwrap_err().to_string();
    assert!(msg.contains("line 1"), "{msg}");
    let msg = parse("instant_detection = \"yes\"")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("line 1"), "{msg}");
    assert!(parse("[section]\nx = 1").is_err());
    assert!(parse("not toml at all").is_err());
}

/// The file as shipped sets nothing; each of its commented-out settings
/// (`#key = value`; the docs are `# text`), uncommented, sets its key to the defined default (or, for a setting
/// without one, to the example shown), and all of them together are valid.
#[test]
fn the_shipped_default_file_gives_exactly_the_defaults() {
    let text = include_str!("../../systemd/config.toml");
    assert_eq!(
        Settings::from_toml(text, Path::new("config.toml")).unwrap(),
        Settings::default()
    );
    assert_eq!(parse(text).unwrap(), parse("").unwrap());
    let uncommented: String = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix('#')
                .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let all = Settings::from_toml(&uncommented, Path::new("config.toml")).unwrap();
    let defaults = Settings::defaults();
    for ((key, value), (_, default)) in all.values().into_iter().zip(defaults.values()) {
        let expected = default.unwrap_or_else(|| setting(key).default.toml());
        assert_eq!(value, Some(expected), "{key}");
    }
    let c = parse(&uncommented).unwrap();
    assert_eq!(
        c.bus,
        Bus::Address("unix:path=/run/dbus/system_bus_socket".into())
    );
}

/// Every setting has a doc, a flag named after its key, a default of its
/// own type, and a file key that parses.
#[test]
fn every_setting_has_a_flag_a_key_a_default_and_docs() {
    let cmd = Settings::augment_args(clap::Command::new("run"));
    let values = Settings::defaults().values();
    assert_eq!(values.len(), SETTINGS.len());
    for (s, (key, default)) in SETTINGS.iter().zip(values) {
        assert_eq!(s.key, key);
        let summary = s.paragraphs().into_iter().next().unwrap_or_default();
        assert!(
            summary.len() > 20 && summary.ends_with('.'),
            "{key}: {summary:?}"
        );
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id() == key)
            .unwrap_or_else(|| panic!("{key} has no flag"));
        assert_eq!(Some(&s.flag()[2..]), arg.get_long(), "{key}");
        let help = arg
            .get_long_help()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(help.starts_with(&summary.replace('`', "")), "{key}: {help}");
        assert!(
            help.ends_with(&s.default.shown().replace('`', "")),
            "{key}: {help}"
        );
        match (s.default, default) {
            (DefaultValue::Unset { .. }, None) => {}
            (DefaultValue::Unset { .. }, Some(_)) => unreachable!(),
            (_, None) => panic!("{key}: the default is not of the setting's type"),
            (d, Some(v)) => assert_eq!(d.toml(), v, "{key}"),
        }
        let line = format!("{key} = {}\n", s.default.toml());
        Settings::from_toml(&line, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn flags_override_the_file_key_by_key() {
    let file = Settings {
        socket: Some("/file.sock".into()),
        probe_interval: Some("10s".into()),
        ..Settings::default()
    };
    let flags = Settings {
        probe_interval: Some("20s".into()),
        ..Settings::default()
    };
    let merged = file.overridden_by(flags);
    assert_eq!(merged.socket.as_deref(), Some("/file.sock"));
    assert_eq!(merged.probe_interval.as_deref(), Some("20s"));
}
