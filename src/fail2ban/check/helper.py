# Run by fail2ban-healthd's check with the interpreter and PYTHONPATH of
# fail2ban-client: reads {jail, config_dir, dump} as JSON on standard input,
# prints what fail2ban's own JailsReader and Filter made of it as JSON.
import sys
sys.path[:] = [p for p in sys.path if p not in ("", ".")]
import ast, json, logging
logging.disable(logging.CRITICAL)
req = json.load(sys.stdin)
jail = req["jail"]
out = {"version": None, "defined": None, "read_error": None, "in_dump": False,
       "failregex": 0, "ignoreregex": 0, "prefregex": 0, "errors": [], "config_errors": []}
try:
    from fail2ban.version import version
    from fail2ban.client.jailsreader import JailsReader
    from fail2ban.server.filter import Filter
except Exception as e:
    json.dump({"fatal": "cannot import fail2ban: %s: %s" % (type(e).__name__, e)}, sys.stdout)
    sys.exit(0)
out["version"] = version
try:
    reader = JailsReader(basedir=req["config_dir"])
    if reader.read():
        out["defined"] = jail in list(reader.sections())
    else:
        out["read_error"] = "no jail.conf in the configuration directory"
except Exception as e:
    out["read_error"] = "%s: %s" % (type(e).__name__, e)
flt = Filter(None)
for line in req["dump"].splitlines():
    try:
        cmd = ast.literal_eval(line.strip())
    except Exception:
        continue
    if not isinstance(cmd, list) or len(cmd) < 2:
        continue
    if cmd[0] == "config-error":
        out["config_errors"].append(str(cmd[1]))
        continue
    if cmd[1] != jail:
        continue
    if cmd[0] == "add":
        out["in_dump"] = True
    if cmd[0] not in ("set", "multi-set") or len(cmd) < 4:
        continue
    key, value = cmd[2], cmd[3]
    values = value if cmd[0] == "multi-set" and isinstance(value, list) else [value]
    for v in values:
        try:
            if key == "usedns":
                flt.setUseDns(v)
            elif key == "maxlines":
                flt.setMaxLines(v)
            elif key == "prefregex":
                flt.prefRegex = v
                out["prefregex"] += 1
            elif key == "addfailregex":
                flt.addFailRegex(v)
                out["failregex"] += 1
            elif key == "addignoreregex":
                flt.addIgnoreRegex(v)
                out["ignoreregex"] += 1
        except Exception as e:
            out["errors"].append({"option": key, "value": str(v), "error": str(e)})
json.dump(out, sys.stdout)
