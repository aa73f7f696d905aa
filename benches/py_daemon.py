#!/usr/bin/python3
"""Python baseline for benches/footprint.rs: the same job as the daemon's
core, done the way the web UI's background job did it, as a D-Bus service.

It probes fail2ban over its control socket (the client of py_probe.py, on a
held connection), caches the result, and serves Online, ActiveJails and
Probe() on a bus with PyGObject (python3-gi), probing every --interval
seconds in a GLib main loop.

Usage: /usr/bin/python3 py_daemon.py --socket PATH --bus-address ADDRESS
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gi.repository import Gio, GLib  # noqa: E402

import py_probe  # noqa: E402

NAME = "org.fail2ban_healthd.PyBaseline"
PATH = "/org/fail2ban_healthd/PyBaseline"
XML = """
<node>
  <interface name="org.fail2ban_healthd.PyBaseline">
    <method name="Probe"><arg name="online" type="b" direction="out"/></method>
    <property name="Online" type="b" access="read"/>
    <property name="ActiveJails" type="u" access="read"/>
  </interface>
</node>
"""


class Service:
    def __init__(self, socket_path):
        self.path = socket_path
        self.client = None
        self.online = False
        self.jails = []

    def probe(self):
        try:
            if self.client is None:
                self.client = py_probe.Client(self.path)
            _version, self.jails = py_probe.probe(self.path, self.client)
            self.online = True
        except Exception:
            self.online = False
            self.jails = []
            if self.client is not None:
                try:
                    self.client.sock.close()
                except OSError:
                    pass
                self.client = None
        return self.online

    def on_call(self, conn, sender, path, iface, method, params, invocation):
        if method == "Probe":
            invocation.return_value(GLib.Variant("(b)", (self.probe(),)))
        else:
            invocation.return_dbus_error("org.freedesktop.DBus.Error.UnknownMethod", method)

    def on_get(self, conn, sender, path, iface, prop):
        if prop == "Online":
            return GLib.Variant("b", self.online)
        return GLib.Variant("u", len(self.jails))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--bus-address", required=True)
    ap.add_argument("--interval", type=float, default=30.0)
    args = ap.parse_args()
    service = Service(args.socket)
    service.probe()
    conn = Gio.DBusConnection.new_for_address_sync(
        args.bus_address,
        Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
        | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
        None, None)
    info = Gio.DBusNodeInfo.new_for_xml(XML).interfaces[0]
    conn.register_object(PATH, info, service.on_call, service.on_get, None)
    Gio.bus_own_name_on_connection(conn, NAME, Gio.BusNameOwnerFlags.NONE, None, None)
    GLib.timeout_add(int(args.interval * 1000), lambda: service.probe() or True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
