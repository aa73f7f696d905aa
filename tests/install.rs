//! `make install` honours DESTDIR and PREFIX, rewrites the unit's path and
//! never overwrites an administrator's configuration.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

fn make_install(dest: &std::path::Path, prefix: &str) -> std::process::Output {
    let make = common::require_program("make", "make");
    Command::new(make)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("install")
        .arg(format!("DESTDIR={}", dest.display()))
        .arg(format!("PREFIX={prefix}"))
        // The binary this test run built, so no release build is needed.
        .arg(format!("BIN={}", env!("CARGO_BIN_EXE_fail2ban-healthd")))
        .output()
        .unwrap()
}

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
    ] {
        assert!(d.join(file).is_file(), "{file} missing");
    }
    let unit =
        std::fs::read_to_string(d.join("usr/local/lib/systemd/system/fail2ban-healthd.service"))
            .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/fail2ban-healthd run"),
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
