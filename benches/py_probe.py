#!/usr/bin/env python3
"""Python baseline for benches/probe.rs.

An in-process, stdlib-only client for fail2ban's control socket that performs
the same "probe" as the Rust client (one connection: version, then stats, or
status plus per-jail "status J short" as a fallback), repeats it N times and
prints wall-clock and CPU time as one JSON line on stdout.

Usage: python3 py_probe.py --socket PATH --count N [--warmup W] [--keep]
"""

import argparse
import io
import json
import os
import pickle
import socket
import sys
import time

END = b"<F2B_END_COMMAND>"
CLOSE = b"<F2B_CLOSE_COMMAND>" + END


class Opaque:
    """Stand-in for fail2ban classes (IPAddr, exceptions) found in replies."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return "Opaque%r" % (self.args,)


class SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "builtins":
            return super().find_class(module, name)
        return Opaque


class Client:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)

    def call(self, *cmd):
        self.sock.sendall(pickle.dumps(list(cmd), protocol=4) + END)
        buf = b""
        while not buf.endswith(END):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by server")
            buf += chunk
        return SafeUnpickler(io.BytesIO(buf[: -len(END)])).load()

    def ok(self, *cmd):
        code, value = self.call(*cmd)
        if code != 0:
            raise RuntimeError("%s failed: %r" % (cmd, value))
        return value

    def close(self):
        try:
            self.sock.sendall(CLOSE)
        finally:
            self.sock.close()


def lookup(pairs, key):
    for k, v in pairs:
        if k == key:
            return v
    raise KeyError(key)


def probe(path, client=None):
    """One probe; on `client` if given (kept open), else on a new connection."""
    own = client is None
    if own:
        client = Client(path)
    try:
        version = client.ok("version")
        code, stats = client.call("stats")
        jails = []
        if code == 0:
            for name, (_backend, failed, banned) in stats.items():
                jails.append((name, failed[0], failed[1], banned[0], banned[1]))
        else:
            names = lookup(client.ok("status"), "Jail list")
            for name in filter(None, (n.strip() for n in names.split(","))):
                st = client.ok("status", name, "short")
                flt, act = lookup(st, "Filter"), lookup(st, "Actions")
                jails.append((
                    name,
                    lookup(flt, "Currently failed"), lookup(flt, "Total failed"),
                    lookup(act, "Currently banned"), lookup(act, "Total banned"),
                ))
    finally:
        if own:
            client.close()
    keys = ("name", "currently_failed", "total_failed",
            "currently_banned", "total_banned")
    return version, [dict(zip(keys, j)) for j in sorted(jails)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--keep", action="store_true",
                    help="keep one connection open across probes")
    args = ap.parse_args()
    if args.count < 1 or args.warmup < 0:
        ap.error("--count must be >= 1 and --warmup >= 0")
    try:
        held = Client(args.socket) if args.keep else None
        for _ in range(args.warmup):
            probe(args.socket, held)
        wall0, cpu0, t0 = time.perf_counter(), time.process_time(), os.times()
        for _ in range(args.count):
            version, jails = probe(args.socket, held)
        wall, cpu, t1 = time.perf_counter() - wall0, time.process_time() - cpu0, os.times()
    except Exception as e:
        print("py_probe: error: %s" % e, file=sys.stderr)
        return 1
    print(json.dumps({"client": "python", "count": args.count, "wall_s": wall,
                      "cpu_s": cpu, "user_s": t1.user - t0.user,
                      "sys_s": t1.system - t0.system, "version": version, "jails": jails}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
