//! `make install` honours DESTDIR and PREFIX, rewrites the unit's path and
//! never overwrites an administrator's configuration; the Debian package's
//! maintainer scripts remove the daemon's rollback drop-in on purge, and
//! only that.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

fn make_install(dest: &std::path::Path, prefix: &str) -> std::process::Output {
    let make = common::require_program("make", "make");
    let mut cmd = Command::new(make);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("install")
        .arg(format!("DESTDIR={}", dest.display()))
        .arg(format!("PREFIX={prefix}"))
        // The binaries this test run built, so no release build is needed.
        .arg(format!("BIN={}", env!("CARGO_BIN_EXE_fail2ban-healthd")));
    #[cfg(feature = "tray")]
    cmd.arg(format!(
        "TRAY_BIN={}",
        env!("CARGO_BIN_EXE_fail2ban-healthd-tray")
    ));
    #[cfg(not(feature = "tray"))]
    cmd.arg("TRAY=no");
    cmd.output().unwrap()
}

/// The applet's files, installed unless `TRAY=no`.
/// The manual pages and shell completions, under PREFIX=/usr/local (zsh's
/// site-functions: vendor-completions is Debian's, for PREFIX=/usr).
const MANUALS_AND_COMPLETIONS: [&str; 5] = [
    "usr/local/share/man/man8/fail2ban-healthd.8",
    "usr/local/share/man/man5/fail2ban-healthd.toml.5",
    "usr/local/share/bash-completion/completions/fail2ban-healthd",
    "usr/local/share/zsh/site-functions/_fail2ban-healthd",
    "usr/local/share/fish/vendor_completions.d/fail2ban-healthd.fish",
];

const TRAY_FILES: [&str; 8] = [
    "usr/local/bin/fail2ban-healthd-tray",
    "usr/local/share/man/man1/fail2ban-healthd-tray.1",
    "usr/local/share/applications/fail2ban-healthd-tray.desktop",
    "etc/xdg/autostart/fail2ban-healthd-tray.desktop",
    "usr/local/share/icons/hicolor/scalable/status/fail2ban-healthd-ok.svg",
    "usr/local/share/icons/hicolor/scalable/status/fail2ban-healthd-warning.svg",
    "usr/local/share/icons/hicolor/scalable/status/fail2ban-healthd-error.svg",
    "usr/local/share/icons/hicolor/scalable/status/fail2ban-healthd-unknown.svg",
];

#[test]
fn make_install_places_every_file() {
    let dest = tempfile::tempdir().unwrap();
    let out = make_install(dest.path(), "/usr/local");
    assert!(out.status.success(), "{out:?}");
    let d = dest.path();
    for file in [
        "usr/local/bin/fail2ban-healthd",
        "usr/local/lib/systemd/system/fail2ban-healthd.service",
        "usr/local/share/dbus-1/system.d/org.fail2ban_healthd.Health1.conf",
        "usr/local/share/dbus-1/system-services/org.fail2ban_healthd.Health1.service",
        "usr/local/share/dbus-1/interfaces/org.fail2ban_healthd.Health1.xml",
        "usr/local/share/polkit-1/actions/org.fail2ban_healthd.policy",
        "etc/fail2ban-healthd/config.toml",
    ]
    .into_iter()
    .chain(MANUALS_AND_COMPLETIONS)
    {
        assert!(d.join(file).is_file(), "{file} missing");
    }
    for file in TRAY_FILES {
        assert_eq!(d.join(file).is_file(), cfg!(feature = "tray"), "{file}");
    }
    let unit =
        std::fs::read_to_string(d.join("usr/local/lib/systemd/system/fail2ban-healthd.service"))
            .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/fail2ban-healthd run"),
        "{unit}"
    );
    // The one executable path follows the binary.
    assert!(
        unit.lines()
            .any(|l| l.starts_with("ExecPaths=/usr/local/bin/fail2ban-healthd ")),
        "{unit}"
    );

    // A second install keeps the administrator's configuration.
    let config = d.join("etc/fail2ban-healthd/config.toml");
    std::fs::write(&config, "probe_interval = \"10s\"\n").unwrap();
    assert!(make_install(dest.path(), "/usr/local").status.success());
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "probe_interval = \"10s\"\n"
    );

    let make = common::require_program("make", "make");
    let out = Command::new(make)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "uninstall",
            &format!("DESTDIR={}", d.display()),
            "PREFIX=/usr/local",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!d.join("usr/local/bin/fail2ban-healthd").exists());
    for file in TRAY_FILES.into_iter().chain(MANUALS_AND_COMPLETIONS) {
        assert!(!d.join(file).exists(), "{file} left behind");
    }
    assert!(config.exists(), "uninstall keeps the configuration");
}

#[test]
fn the_unit_names_the_bus_name_and_binary_of_the_contract() {
    let unit = include_str!("../systemd/fail2ban-healthd.service");
    for line in [
        "Type=notify",
        "BusName=org.fail2ban_healthd.Health1",
        "ExecStart=/usr/bin/fail2ban-healthd run",
        "Restart=on-failure",
        "StateDirectory=fail2ban-healthd",
        "ConfigurationDirectory=fail2ban-healthd",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
    assert!(unit.lines().any(|l| l.starts_with("WatchdogSec=")));
    // Ordered after fail2ban, never pulling it in.
    assert!(
        unit.lines()
            .any(|l| l.starts_with("After=") && l.contains("fail2ban.service"))
    );
    assert!(!unit.lines().any(|l| (l.starts_with("Requires=")
        || l.starts_with("Wants=")
        || l.starts_with("BindsTo="))
        && l.contains("fail2ban")));
    // No capabilities; the sandbox of the README's exposure figure.
    for line in [
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "NoNewPrivileges=yes",
        "PrivateUsers=yes",
        "PrivateMounts=yes",
        "NoExecPaths=/",
        "ProtectSystem=strict",
        "RestrictAddressFamilies=AF_UNIX",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
    let activation = include_str!("../dbus/org.fail2ban_healthd.Health1.service");
    assert!(activation.contains("Name=org.fail2ban_healthd.Health1"));
    assert!(activation.contains("SystemdService=fail2ban-healthd.service"));
    let polkit = include_str!("../dbus/org.fail2ban_healthd.policy");
    // Each action with its own defaults: administrators authenticate in an
    // active session, nobody else is allowed; a rollback is never kept.
    let action = |id: &str| -> String {
        let start = polkit
            .find(&format!("<action id=\"{id}\">"))
            .unwrap_or_else(|| panic!("no action {id}"));
        let len = polkit[start..].find("</action>").expect("</action>");
        polkit[start..start + len].to_owned()
    };
    let manage = action("org.fail2ban_healthd.manage");
    assert!(manage.contains("<allow_active>auth_admin_keep</allow_active>"));
    let rollback = action("org.fail2ban_healthd.rollback");
    assert!(rollback.contains("<allow_active>auth_admin</allow_active>"));
    for a in [&manage, &rollback] {
        assert!(
            a.contains("<allow_any>no</allow_any>")
                && a.contains("<allow_inactive>no</allow_inactive>"),
            "{a}"
        );
    }
}

#[test]
fn the_readme_states_the_exposure_the_end_to_end_test_asserts() {
    let inside = include_str!("systemd/inside.sh");
    let readme = include_str!("../README.md")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let figures: Vec<(&str, &str)> = inside
        .lines()
        .filter_map(|l| l.strip_prefix("EXPOSURE_"))
        .filter_map(|l| l.split_once('='))
        .collect();
    assert!(figures.len() >= 2, "{figures:?}");
    for (systemd, score) in figures {
        let stated = format!("{score} on systemd {systemd}");
        assert!(
            readme.contains(&stated),
            "the README does not say {stated:?}"
        );
    }
}

const MARKER: &str = fail2ban_healthd::rollback::MARKER;
const DEFAULT_DROPIN: &str = "etc/fail2ban/jail.d/zz-fail2ban-healthd-rollback.local";

/// Runs a maintainer script of debian/ with `args` against the root `root`
/// (dpkg's DPKG_ROOT); returns its standard error.
fn maintainer_script(root: &Path, script: &str, args: &[&str]) -> String {
    let out = Command::new("sh")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("debian")
                .join(script),
        )
        .args(args)
        .env("DPKG_ROOT", root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{script} {args:?}: {out:?}");
    String::from_utf8(out.stderr).unwrap()
}

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A drop-in as the daemon writes it, disabling `jails`.
fn dropin(jails: &[&str]) -> String {
    let first = fail2ban_healthd::rollback::dropin_text(None, jails[0], Path::new("/x")).unwrap();
    jails[1..].iter().fold(first, |text, j| {
        fail2ban_healthd::rollback::dropin_text(Some(&text), j, Path::new("/x")).unwrap()
    })
}

#[test]
fn purge_removes_the_configured_dropin_and_names_its_jails() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    write(
        r,
        "etc/fail2ban-healthd/config.toml",
        "probe_interval = \"10s\"\nrollback_dropin = \"/srv/f2b/jail.d/rolled-back.local\"  # ours\n",
    );
    write(
        r,
        "srv/f2b/jail.d/rolled-back.local",
        &dropin(&["nginx-bad", "sshd-x"]),
    );
    write(
        r,
        "srv/f2b/jail.d/rolled-back.local.tmp-4242",
        &dropin(&["nginx-bad"]),
    );
    write(r, "var/lib/fail2ban-healthd/state.json", "{}");
    // Someone else's file at the default path.
    write(r, DEFAULT_DROPIN, "[sshd]\nenabled = false\n");

    // apt purge: prerm remove, then dpkg removes the conffiles, then
    // postrm remove and postrm purge.
    assert_eq!(maintainer_script(r, "prerm", &["remove"]), "");
    std::fs::remove_file(r.join("etc/fail2ban-healthd/config.toml")).unwrap();
    assert_eq!(maintainer_script(r, "postrm", &["remove"]), "");
    assert!(
        r.join("srv/f2b/jail.d/rolled-back.local").exists(),
        "remove keeps the drop-in"
    );
    let said = maintainer_script(r, "postrm", &["purge"]);

    assert!(
        !r.join("srv/f2b/jail.d/rolled-back.local").exists(),
        "{said}"
    );
    assert!(!r.join("srv/f2b/jail.d/rolled-back.local.tmp-4242").exists());
    assert!(!r.join("var/lib/fail2ban-healthd").exists());
    assert_eq!(
        std::fs::read_to_string(r.join(DEFAULT_DROPIN)).unwrap(),
        "[sshd]\nenabled = false\n",
        "a file without the marker is kept"
    );
    assert!(
        said.contains("/srv/f2b/jail.d/rolled-back.local")
            && said.contains(": nginx-bad sshd-x.")
            && said.contains("fail2ban was not reloaded")
            && said.contains("fail2ban-client reload"),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "{DEFAULT_DROPIN} was not written by fail2ban-healthd"
        )) && said.contains("kept"),
        "{said}"
    );
}

#[test]
fn purge_without_a_remembered_path_removes_the_default_dropin() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    write(r, DEFAULT_DROPIN, &dropin(&["gamma"]));
    // A package left in the config-files state before prerm remembered
    // anything: the default path is still looked at.
    let said = maintainer_script(r, "postrm", &["purge"]);
    assert!(!r.join(DEFAULT_DROPIN).exists(), "{said}");
    assert!(said.contains(": gamma."), "{said}");
    assert_eq!(
        said.matches("fail2ban-healthd: removed").count(),
        1,
        "{said}"
    );

    // Nothing to remove: nothing said.
    assert_eq!(maintainer_script(r, "postrm", &["purge"]), "");
    // A marker that is not on the first line does not make a file ours.
    write(
        r,
        DEFAULT_DROPIN,
        &format!("[x]\nenabled = false\n{MARKER}\n"),
    );
    let said = maintainer_script(r, "postrm", &["purge"]);
    assert!(r.join(DEFAULT_DROPIN).exists(), "{said}");
}

/// Jails that kept trials enabled in the drop-in are not switched off by
/// a purge: they move to a file of the administrator's, which a second
/// purge leaves alone.
#[test]
fn purge_keeps_the_jails_that_trials_enabled() {
    use fail2ban_healthd::rollback::dropin_with;
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let x = Path::new("/x");
    let text = dropin_with(None, "bad", false, x).unwrap();
    let text = dropin_with(Some(&text), "nginx", true, x).unwrap();
    let text = dropin_with(Some(&text), "postfix", true, x).unwrap();
    write(r, DEFAULT_DROPIN, &text);
    let said = maintainer_script(r, "postrm", &["purge"]);
    assert!(!r.join(DEFAULT_DROPIN).exists(), "{said}");
    let kept_path = r
        .join(DEFAULT_DROPIN)
        .with_file_name("fail2ban-healthd-kept-trials.local");
    let kept = std::fs::read_to_string(&kept_path).unwrap();
    assert!(!kept.starts_with(MARKER), "{kept}");
    assert!(
        kept.ends_with("\n[nginx]\nenabled = true\n\n[postfix]\nenabled = true\n"),
        "{kept}"
    );
    assert!(!kept.contains("[bad]"), "{kept}");
    assert!(
        said.contains(": nginx postfix.") && said.contains(": bad."),
        "{said}"
    );

    // Again, with that file there: the drop-in stays, nothing is lost.
    write(r, DEFAULT_DROPIN, &text);
    let said = maintainer_script(r, "postrm", &["purge"]);
    assert_eq!(
        std::fs::read_to_string(r.join(DEFAULT_DROPIN)).unwrap(),
        text,
        "{said}"
    );
    assert_eq!(std::fs::read_to_string(&kept_path).unwrap(), kept);
}

/// The applet's `.desktop` file passes freedesktop's validator and starts
/// the applet's binary; its icon is one the package installs.
#[test]
fn the_applet_desktop_file_is_valid() {
    let validate = common::require_program("desktop-file-validate", "desktop-file-utils");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("desktop/fail2ban-healthd-tray.desktop");
    let out = Command::new(validate).arg(&file).output().unwrap();
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.lines().any(|l| l == "Exec=fail2ban-healthd-tray"),
        "{text}"
    );
    let icon = text.lines().find_map(|l| l.strip_prefix("Icon=")).unwrap();
    let svg = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("desktop/icons/{icon}.svg"));
    assert!(svg.is_file(), "{icon} is not shipped");
}
