# Build and install fail2ban-healthd the usual way:
#   make && sudo make install            (PREFIX=/usr by default)
#   make install DESTDIR=/tmp/stage PREFIX=/usr/local
#   sudo make uninstall
#   make install TRAY=no                 (the daemon only, without the desktop applet)
# `cargo deb` builds a Debian package from the same files (see Cargo.toml);
# `cargo deb --variant tray` the applet's package, fail2ban-healthd-tray.

PREFIX ?= /usr
DESTDIR ?=
SYSCONFDIR ?= /etc
BINDIR = $(PREFIX)/bin
DATADIR = $(PREFIX)/share
UNITDIR ?= $(PREFIX)/lib/systemd/system
MANDIR ?= $(DATADIR)/man
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
# zsh searches vendor-completions under /usr on Debian, site-functions elsewhere.
ZSHCOMPDIR ?= $(if $(filter /usr,$(PREFIX)),$(DATADIR)/zsh/vendor-completions,$(DATADIR)/zsh/site-functions)
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
CARGO ?= cargo
BIN = target/release/fail2ban-healthd
TRAY_BIN = target/release/fail2ban-healthd-tray
# The desktop applet (cargo feature `tray`) is built and installed unless TRAY=no.
TRAY ?= yes
AUTOSTARTDIR ?= $(SYSCONFDIR)/xdg/autostart
ICONDIR = $(DATADIR)/icons/hicolor/scalable/status
ICONS = ok warning error unknown
# The rollback drop-in at its default path (config key rollback_dropin).
DROPIN = $(DESTDIR)$(SYSCONFDIR)/fail2ban/jail.d/zz-fail2ban-healthd-rollback.local

.PHONY: all tray install install-tray uninstall check

all: $(BIN) $(if $(filter yes,$(TRAY)),$(TRAY_BIN))

tray: $(TRAY_BIN)

$(BIN):
	$(CARGO) build --release --locked --bin fail2ban-healthd

# Built on its own, so that the daemon's binary stays the one without ksni.
$(TRAY_BIN):
	$(CARGO) build --release --locked --features tray --bin fail2ban-healthd-tray

install: $(BIN) $(if $(filter yes,$(TRAY)),install-tray)
	install -D -m 755 $(BIN) $(DESTDIR)$(BINDIR)/fail2ban-healthd
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|/usr/bin/fail2ban-healthd|$(BINDIR)/fail2ban-healthd|' systemd/fail2ban-healthd.service \
		> $(DESTDIR)$(UNITDIR)/fail2ban-healthd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/fail2ban-healthd.service
	install -D -m 644 dbus/org.fail2ban_healthd.Health1.conf $(DESTDIR)$(DATADIR)/dbus-1/system.d/org.fail2ban_healthd.Health1.conf
	install -D -m 644 dbus/org.fail2ban_healthd.Health1.service $(DESTDIR)$(DATADIR)/dbus-1/system-services/org.fail2ban_healthd.Health1.service
	install -D -m 644 dbus/org.fail2ban_healthd.Health1.xml $(DESTDIR)$(DATADIR)/dbus-1/interfaces/org.fail2ban_healthd.Health1.xml
	install -D -m 644 dbus/org.fail2ban_healthd.policy $(DESTDIR)$(DATADIR)/polkit-1/actions/org.fail2ban_healthd.policy
	install -D -m 644 man/fail2ban-healthd.8 $(DESTDIR)$(MANDIR)/man8/fail2ban-healthd.8
	install -D -m 644 man/fail2ban-healthd.toml.5 $(DESTDIR)$(MANDIR)/man5/fail2ban-healthd.toml.5
	install -D -m 644 completions/fail2ban-healthd.bash $(DESTDIR)$(BASHCOMPDIR)/fail2ban-healthd
	install -D -m 644 completions/_fail2ban-healthd $(DESTDIR)$(ZSHCOMPDIR)/_fail2ban-healthd
	install -D -m 644 completions/fail2ban-healthd.fish $(DESTDIR)$(FISHCOMPDIR)/fail2ban-healthd.fish
	# An existing configuration is the administrator's: never overwritten.
	test -e $(DESTDIR)$(SYSCONFDIR)/fail2ban-healthd/config.toml || \
		install -D -m 644 systemd/config.toml $(DESTDIR)$(SYSCONFDIR)/fail2ban-healthd/config.toml

# The applet, started with every desktop session, and its icons.
install-tray: $(TRAY_BIN)
	install -D -m 755 $(TRAY_BIN) $(DESTDIR)$(BINDIR)/fail2ban-healthd-tray
	install -D -m 644 desktop/fail2ban-healthd-tray.desktop $(DESTDIR)$(DATADIR)/applications/fail2ban-healthd-tray.desktop
	install -D -m 644 desktop/fail2ban-healthd-tray.desktop $(DESTDIR)$(AUTOSTARTDIR)/fail2ban-healthd-tray.desktop
	install -D -m 644 debian/fail2ban-healthd-tray.1 $(DESTDIR)$(MANDIR)/man1/fail2ban-healthd-tray.1
	for i in $(ICONS); do \
		install -D -m 644 desktop/icons/fail2ban-healthd-$$i.svg $(DESTDIR)$(ICONDIR)/fail2ban-healthd-$$i.svg || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/fail2ban-healthd-tray \
		$(DESTDIR)$(DATADIR)/applications/fail2ban-healthd-tray.desktop \
		$(DESTDIR)$(AUTOSTARTDIR)/fail2ban-healthd-tray.desktop \
		$(DESTDIR)$(MANDIR)/man1/fail2ban-healthd-tray.1 \
		$(foreach i,$(ICONS),$(DESTDIR)$(ICONDIR)/fail2ban-healthd-$(i).svg)
	rm -f $(DESTDIR)$(BINDIR)/fail2ban-healthd \
		$(DESTDIR)$(UNITDIR)/fail2ban-healthd.service \
		$(DESTDIR)$(DATADIR)/dbus-1/system.d/org.fail2ban_healthd.Health1.conf \
		$(DESTDIR)$(DATADIR)/dbus-1/system-services/org.fail2ban_healthd.Health1.service \
		$(DESTDIR)$(DATADIR)/dbus-1/interfaces/org.fail2ban_healthd.Health1.xml \
		$(DESTDIR)$(DATADIR)/polkit-1/actions/org.fail2ban_healthd.policy \
		$(DESTDIR)$(MANDIR)/man8/fail2ban-healthd.8 \
		$(DESTDIR)$(MANDIR)/man5/fail2ban-healthd.toml.5 \
		$(DESTDIR)$(BASHCOMPDIR)/fail2ban-healthd \
		$(DESTDIR)$(ZSHCOMPDIR)/_fail2ban-healthd \
		$(DESTDIR)$(FISHCOMPDIR)/fail2ban-healthd.fish
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/fail2ban-healthd/config.toml; remove it by hand if unwanted"
	@# A rollback drop-in keeps jails disabled; only its owner should remove it.
	@if head -n 1 $(DROPIN) 2>/dev/null | grep -q '^# Written by fail2ban-healthd'; then \
		echo "kept $(DROPIN): it disables the jails listed in it (rolled back);"; \
		echo "  to enable them, check them, remove it and run fail2ban-client reload"; \
	fi
