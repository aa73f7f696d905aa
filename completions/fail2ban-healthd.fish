# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_fail2ban_healthd_global_optspecs
    string join \n h/help V/version
end

function __fish_fail2ban_healthd_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_fail2ban_healthd_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_fail2ban_healthd_using_subcommand
    set -l cmd (__fish_fail2ban_healthd_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_needs_command" -s h -l help -d 'Print help'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_needs_command" -s V -l version -d 'Print version'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_needs_command" -f -a "probe" -d 'Probe fail2ban once over its control socket and print what it reports'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_needs_command" -f -a "run" -d 'Run the daemon: probe fail2ban, attribute crashes to activations, publish on D-Bus. Flags override the configuration file'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_needs_command" -f -a "status" -d 'Show what the running daemon knows: fail2ban\'s state, its jails, the last activation and the pending recovery'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_needs_command" -f -a "watch" -d 'Print one line per signal of the daemon until interrupted'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_needs_command" -f -a "activate" -d 'Tell the daemon that JAIL was just activated (managers only)'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_needs_command" -f -a "dismiss" -d 'Clear the recovery record (managers only)'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_needs_command" -f -a "rollback" -d 'Disable the pending recovery\'s jail and restart fail2ban (managers only)'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_needs_command" -f -a "check" -d 'Run fail2ban\'s own checks for JAIL as if it were enabled (the configuration test and a compile of its regexes), without enabling anything or touching the server (managers only)'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_needs_command" -f -a "try" -d 'Enable JAIL on trial: checked, enabled, fail2ban reloaded, and rolled back by the daemon itself if a failure is attributed to it before the timeout (rollback managers only). Shows progress until the verdict; Ctrl-C stops watching and leaves the trial running'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_needs_command" -f -a "confirm" -d 'End the running trial now, keeping its jail (rollback managers only)'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_needs_command" -f -a "abort" -d 'End the running trial now, rolling its jail back, and wait for the rollback (rollback managers only)'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand probe" -l socket -d 'fail2ban\'s control socket' -r -F
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand probe" -l timeout -d 'Deadline for the whole probe, in seconds (fractions allowed)' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand probe" -l unit -d 'fail2ban\'s systemd unit, asked first: under socket activation a stopped service is reported without connecting, since a connection would start fail2ban (empty: do not ask systemd)' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand probe" -l json -d 'Print one JSON object instead of a table'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand probe" -l connect -d 'Connect even when a connection would start a socket-activated fail2ban'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand probe" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand probe" -s V -l version -d 'Print version'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l config -d 'The configuration file (default /etc/fail2ban-healthd/config.toml, when it exists)' -r -F
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l socket -d 'fail2ban\'s control socket: an absolute path of at most 107 bytes.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l probe-timeout -d 'Deadline of one whole probe (connecting and every request), 10ms to 5m.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l fail2ban-unit -d 'fail2ban\'s systemd unit, followed to tell a restart from a crash and to learn how fail2ban ended.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l instant-detection -d 'Whether a crash or a return is detected at once, or only at the probe intervals.' -r -f -a "true\t''
false\t''"
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l probe-interval -d 'Time between the end of one probe and the start of the next, 100ms to 1 day.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l crash-window -d 'How long after an activation a failure is attributed to it, 100ms to 1 day.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l jail-start-grace -d 'How long a newly activated jail may take to appear, 0 to 1 day and shorter than crash_window.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l watch-interval -d 'Time between probes while an activation\'s window is open, 100ms to 1 day.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l restart-grace -d 'After a clean stop of fail2ban (a restart), how long it may take to come back healthy before the stop counts as a failure, 0 to 1h.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l manage-group -d 'Members of this group may register activations and dismiss records, besides root.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l rollback-group -d 'Members of this group may call Rollback and run trials, besides root.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l rollback-dropin -d 'The one file a rollback writes: a [JAIL] section with enabled = false for each rolled-back jail.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l fail2ban-reload-command -d 'Run by a rollback while fail2ban is up and not a systemd unit (a unit is restarted through systemd).' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l fail2ban-start-command -d 'Run by a rollback while fail2ban is down and not a systemd unit.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l rollback-timeout -d 'How long a rollback waits for fail2ban to answer again, 1s to 10m; also the limit of a trial\'s reload.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l fail2ban-client-command -d 'fail2ban-client as a program and arguments, for the checks of Check and Try.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l trial-checks -d 'Whether Try runs fail2ban\'s checks before it reloads fail2ban.' -r -f -a "true\t''
false\t''"
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l state-file -d 'Where activations and the record are kept across restarts: an absolute path.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l metrics-file -d 'A Prometheus text file written after every probe, for node_exporter\'s textfile collector.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l bus -d 'The bus to serve on: system (honours DBUS_SYSTEM_BUS_ADDRESS) or session.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l bus-address -d 'An explicit bus address such as unix:path=/run/x; overrides bus.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l log -d 'Where logs go: auto (the journal when journald listens, else standard error), journal or stderr.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -l log-level -d 'The most detailed level logged: error, warn, info, debug or trace.' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand run" -s V -l version -d 'Print version'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand status" -l bus -d 'The bus: system (honours DBUS_SYSTEM_BUS_ADDRESS) or session' -r -f -a "system\t''
session\t''"
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand status" -l bus-address -d 'An explicit bus address, e.g. unix:path=/run/test-bus; overrides --bus' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand status" -l json -d 'Print one JSON object instead of text'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand status" -s V -l version -d 'Print version'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand watch" -l bus -d 'The bus: system (honours DBUS_SYSTEM_BUS_ADDRESS) or session' -r -f -a "system\t''
session\t''"
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand watch" -l bus-address -d 'An explicit bus address, e.g. unix:path=/run/test-bus; overrides --bus' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand watch" -l json -d 'Print one JSON object per line instead of text'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand watch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand watch" -s V -l version -d 'Print version'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand activate" -l bus -d 'The bus: system (honours DBUS_SYSTEM_BUS_ADDRESS) or session' -r -f -a "system\t''
session\t''"
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand activate" -l bus-address -d 'An explicit bus address, e.g. unix:path=/run/test-bus; overrides --bus' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand activate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand activate" -s V -l version -d 'Print version'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand dismiss" -l bus -d 'The bus: system (honours DBUS_SYSTEM_BUS_ADDRESS) or session' -r -f -a "system\t''
session\t''"
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand dismiss" -l bus-address -d 'An explicit bus address, e.g. unix:path=/run/test-bus; overrides --bus' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand dismiss" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand dismiss" -s V -l version -d 'Print version'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand rollback" -l bus -d 'The bus: system (honours DBUS_SYSTEM_BUS_ADDRESS) or session' -r -f -a "system\t''
session\t''"
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand rollback" -l bus-address -d 'An explicit bus address, e.g. unix:path=/run/test-bus; overrides --bus' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand rollback" -l json -d 'Print one JSON object instead of text'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand rollback" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand rollback" -s V -l version -d 'Print version'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand check" -l bus -d 'The bus: system (honours DBUS_SYSTEM_BUS_ADDRESS) or session' -r -f -a "system\t''
session\t''"
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand check" -l bus-address -d 'An explicit bus address, e.g. unix:path=/run/test-bus; overrides --bus' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand check" -l json -d 'Print one JSON object instead of text'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand check" -s V -l version -d 'Print version'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand try" -l timeout -d 'How long the trial runs, e.g. 60s or 5m (default: the daemon\'s crash window)' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand try" -l bus -d 'The bus: system (honours DBUS_SYSTEM_BUS_ADDRESS) or session' -r -f -a "system\t''
session\t''"
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand try" -l bus-address -d 'An explicit bus address, e.g. unix:path=/run/test-bus; overrides --bus' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand try" -l json -d 'Print one JSON object with the verdict instead of text'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand try" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand try" -s V -l version -d 'Print version'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand confirm" -l bus -d 'The bus: system (honours DBUS_SYSTEM_BUS_ADDRESS) or session' -r -f -a "system\t''
session\t''"
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand confirm" -l bus-address -d 'An explicit bus address, e.g. unix:path=/run/test-bus; overrides --bus' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand confirm" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand confirm" -s V -l version -d 'Print version'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand abort" -l bus -d 'The bus: system (honours DBUS_SYSTEM_BUS_ADDRESS) or session' -r -f -a "system\t''
session\t''"
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand abort" -l bus-address -d 'An explicit bus address, e.g. unix:path=/run/test-bus; overrides --bus' -r
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand abort" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand abort" -s V -l version -d 'Print version'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand help; and not __fish_seen_subcommand_from probe run status watch activate dismiss rollback check try confirm abort help" -f -a "probe" -d 'Probe fail2ban once over its control socket and print what it reports'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand help; and not __fish_seen_subcommand_from probe run status watch activate dismiss rollback check try confirm abort help" -f -a "run" -d 'Run the daemon: probe fail2ban, attribute crashes to activations, publish on D-Bus. Flags override the configuration file'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand help; and not __fish_seen_subcommand_from probe run status watch activate dismiss rollback check try confirm abort help" -f -a "status" -d 'Show what the running daemon knows: fail2ban\'s state, its jails, the last activation and the pending recovery'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand help; and not __fish_seen_subcommand_from probe run status watch activate dismiss rollback check try confirm abort help" -f -a "watch" -d 'Print one line per signal of the daemon until interrupted'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand help; and not __fish_seen_subcommand_from probe run status watch activate dismiss rollback check try confirm abort help" -f -a "activate" -d 'Tell the daemon that JAIL was just activated (managers only)'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand help; and not __fish_seen_subcommand_from probe run status watch activate dismiss rollback check try confirm abort help" -f -a "dismiss" -d 'Clear the recovery record (managers only)'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand help; and not __fish_seen_subcommand_from probe run status watch activate dismiss rollback check try confirm abort help" -f -a "rollback" -d 'Disable the pending recovery\'s jail and restart fail2ban (managers only)'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand help; and not __fish_seen_subcommand_from probe run status watch activate dismiss rollback check try confirm abort help" -f -a "check" -d 'Run fail2ban\'s own checks for JAIL as if it were enabled (the configuration test and a compile of its regexes), without enabling anything or touching the server (managers only)'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand help; and not __fish_seen_subcommand_from probe run status watch activate dismiss rollback check try confirm abort help" -f -a "try" -d 'Enable JAIL on trial: checked, enabled, fail2ban reloaded, and rolled back by the daemon itself if a failure is attributed to it before the timeout (rollback managers only). Shows progress until the verdict; Ctrl-C stops watching and leaves the trial running'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand help; and not __fish_seen_subcommand_from probe run status watch activate dismiss rollback check try confirm abort help" -f -a "confirm" -d 'End the running trial now, keeping its jail (rollback managers only)'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand help; and not __fish_seen_subcommand_from probe run status watch activate dismiss rollback check try confirm abort help" -f -a "abort" -d 'End the running trial now, rolling its jail back, and wait for the rollback (rollback managers only)'
complete -c fail2ban-healthd -n "__fish_fail2ban_healthd_using_subcommand help; and not __fish_seen_subcommand_from probe run status watch activate dismiss rollback check try confirm abort help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
