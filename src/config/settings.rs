//! Every setting of the daemon, defined once.
//!
//! Each entry gives the doc (its first paragraph is the summary shown by
//! `-h`), the key (the file's key and, with dashes, the `run` flag), the
//! raw type, the default, the flag's value name and the group whose module
//! validates it. The flags, the file's keys, the defaults, the help, the
//! man pages, the commented default file and the README's table all come
//! from here (see [`super::define`]); tests/generated.rs checks that the
//! shipped copies match.

use super::define::DefaultValue::{Bool, Str, Unset};
use super::define::settings;

settings! {
    /// fail2ban's control socket: an absolute path of at most 107 bytes.
    socket: String = Str("/run/fail2ban/fail2ban.sock"), "PATH", Fail2ban;

    /// Deadline of one whole probe (connecting and every request), 10ms to 5m.
    probe_timeout: String = Str("5s"), "DURATION", Fail2ban;

    /// fail2ban's systemd unit, followed to tell a restart from a crash and
    /// to learn how fail2ban ended.
    ///
    /// Under socket activation its `.socket` unit tells when not to connect.
    /// It is followed also with `instant_detection = false`; an empty
    /// string disables it.
    fail2ban_unit: String = Str("fail2ban.service"), "UNIT", Fail2ban;

    /// Whether a crash or a return is detected at once, or only at the
    /// probe intervals.
    ///
    /// At once means a connection held open to fail2ban, a watch on its
    /// socket's directory and its systemd unit. `false` leaves only the
    /// intervals.
    instant_detection: bool = Bool(true), "BOOL", Fail2ban;

    /// Time between the end of one probe and the start of the next, 100ms
    /// to 1 day.
    probe_interval: String = Str("30s"), "DURATION", Timing;

    /// How long after an activation a failure is attributed to it, 100ms
    /// to 1 day.
    crash_window: String = Str("60s"), "DURATION", Timing;

    /// How long a newly activated jail may take to appear, 0 to 1 day and
    /// shorter than `crash_window`.
    jail_start_grace: String = Str("5s"), "DURATION", Timing;

    /// Time between probes while an activation's window is open, 100ms to
    /// 1 day.
    watch_interval: String = Str("1s"), "DURATION", Timing;

    /// After a clean stop of fail2ban (a restart), how long it may take to
    /// come back healthy before the stop counts as a failure, 0 to 1h.
    ///
    /// Healthy means online, with the activated jail running and no jail
    /// lost.
    restart_grace: String = Str("15s"), "DURATION", Timing;

    /// Members of this group may register activations and dismiss
    /// records, besides root.
    ///
    /// Others are asked through polkit (action
    /// `org.fail2ban_healthd.manage`). It does not grant `Rollback`. An
    /// empty string: no group.
    manage_group: String = Unset { shown: "none", example: "" }, "GROUP", Access;

    /// Members of this group may call `Rollback` and run trials, besides
    /// root.
    ///
    /// Others are asked through polkit (action
    /// `org.fail2ban_healthd.rollback`, administrator authentication by
    /// default); `manage_group` does not grant it. An empty string: no
    /// group.
    rollback_group: String = Unset { shown: "none", example: "" }, "GROUP", Access;

    /// The one file a rollback writes: a `[JAIL]` section with
    /// `enabled = false` for each rolled-back jail.
    ///
    /// An absolute path ending in `.local`, in a directory fail2ban reads:
    /// it reads `jail.d/*.local` last, so only there does
    /// `enabled = false` win. The daemon never touches a file it did not
    /// write.
    rollback_dropin: String = Str("/etc/fail2ban/jail.d/zz-fail2ban-healthd-rollback.local"), "PATH", Rollback;

    /// Run by a rollback while fail2ban is up and not a systemd unit (a
    /// unit is restarted through systemd).
    ///
    /// Split on whitespace, run without a shell.
    fail2ban_reload_command: String = Str("fail2ban-client reload"), "COMMAND", Rollback;

    /// Run by a rollback while fail2ban is down and not a systemd unit.
    ///
    /// Split on whitespace, run without a shell; add `-x` if a crashed
    /// server may leave its socket behind.
    fail2ban_start_command: String = Str("fail2ban-client start"), "COMMAND", Rollback;

    /// How long a rollback waits for fail2ban to answer again, 1s to 10m;
    /// also the limit of a trial's reload.
    rollback_timeout: String = Str("15s"), "DURATION", Rollback;

    /// `fail2ban-client` as a program and arguments, for the checks of
    /// `Check` and `Try`.
    ///
    /// The checks run on a private copy of fail2ban's configuration and
    /// add `-c COPY -t` and `-c COPY -d`. Split on whitespace, run without
    /// a shell.
    fail2ban_client_command: String = Str("fail2ban-client"), "COMMAND", Rollback;

    /// Whether `Try` runs fail2ban's checks before it reloads fail2ban.
    ///
    /// `false` leaves a failing jail to the rollback, to see that path at
    /// work.
    trial_checks: bool = Bool(true), "BOOL", Rollback;

    /// Where activations and the record are kept across restarts: an
    /// absolute path.
    state_file: String = Unset {
        shown: "`$STATE_DIRECTORY/state.json` under systemd, else `/var/lib/fail2ban-healthd/state.json`",
        example: "/var/lib/fail2ban-healthd/state.json",
    }, "PATH", Files;

    /// A Prometheus text file written after every probe, for
    /// node_exporter's textfile collector.
    ///
    /// An absolute path ending in `.prom`; an empty string: not written.
    metrics_file: String = Unset { shown: "none", example: "" }, "PATH", Files;

    /// The bus to serve on: `system` (honours `DBUS_SYSTEM_BUS_ADDRESS`)
    /// or `session`.
    bus: String = Str("system"), "BUS", Bus;

    /// An explicit bus address such as `unix:path=/run/x`; overrides
    /// `bus`.
    bus_address: String = Unset { shown: "none", example: "unix:path=/run/dbus/system_bus_socket" }, "ADDRESS", Bus;

    /// Where logs go: `auto` (the journal when journald listens, else
    /// standard error), `journal` or `stderr`.
    log: String = Str("auto"), "TARGET", Logging;

    /// The most detailed level logged: `error`, `warn`, `info`, `debug` or
    /// `trace`.
    log_level: String = Str("info"), "LEVEL", Logging;
}

/// Gives each `run` flag its help from its definition: the summary for
/// `-h`, and every paragraph and the default for `--help` and the man page.
fn with_help(arg: clap::Arg) -> clap::Arg {
    let Some(setting) = SETTINGS.iter().find(|s| arg.get_id() == s.key) else {
        return arg;
    };
    let summary = setting.paragraphs().into_iter().next().unwrap_or_default();
    let summary = summary.replace('`', "");
    arg.help(summary).long_help(setting.long_help())
}
