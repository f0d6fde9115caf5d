"""deploy/srv.service and deploy/supervisord.conf, checked offline: `systemd-analyze verify` on a
copy of the unit with its srv paths pointing at the built binary (skipped when systemd-analyze
is missing; scripts/deps.sh --test installs it), a loose `systemd-analyze security` bound, the
settings srv relies on, and the unit's own command lines run the way systemd would run them
(NOTIFY_SOCKET set: READY=1 with MAINPID, ExecReload exits 0, KillSignal to MAINPID is a
graceful stop within TimeoutStopSec)."""
import configparser
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

from srvtest import SLOW, SOURCE_DIR, SRV, Server, pid_alive, run, wait_for

UNIT = os.path.join(SOURCE_DIR, "deploy/srv.service")
SUPERVISOR_CONF = os.path.join(SOURCE_DIR, "deploy/supervisord.conf")
ANALYZE = shutil.which("systemd-analyze")


def unit_settings(text):
    """{section: {key: [values]}} of a unit file."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = out.setdefault(line.strip("[]"), {})
            continue
        k, v = line.split("=", 1)
        section.setdefault(k.strip(), []).append(v.strip())
    return out


def service():
    with open(UNIT) as f:
        return unit_settings(f.read())["Service"]


def rewritten(config=None):
    """The unit's text with the built srv (and config) in place of the installed paths."""
    with open(UNIT) as f:
        text = f.read()
    text = text.replace("/usr/local/bin/srv", SRV)
    if config:
        text = text.replace("/etc/srv/srv.toml", config)
    return text


def test_settings():
    svc = service()
    one = {k: v[-1] for k, v in svc.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert one["KillMode"] == "mixed" and one.get("KillSignal", "SIGTERM") == "SIGTERM"
    start = shlex.split(one["ExecStart"])
    assert start[1] == "start" and "-d" not in start and "--daemonize" not in start, start
    reload = shlex.split(one["ExecReload"].lstrip("+-@:!"))
    assert reload[1] == "reload" and reload[2:] == start[2:], reload
    assert one["LimitNOFILE"] == "1048576" and one["Restart"] == "on-failure"
    assert int(one["TimeoutStopSec"].rstrip("s")) >= 2 * 3 + 10
    assert one["NoNewPrivileges"] == "yes" and one["ProtectSystem"] == "strict"
    caps = one["CapabilityBoundingSet"].split()
    assert {"CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"} <= set(caps), caps


def test_supervisord_settings():
    cp = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    cp.read(SUPERVISOR_CONF)
    prog = cp["program:srv"]
    cmd = shlex.split(prog["command"])
    assert cmd[1] == "start" and "-d" not in cmd, cmd
    assert prog["stopsignal"] == "TERM" and prog.getboolean("stopasgroup") is False
    assert prog.getboolean("killasgroup") is True and int(prog["stopwaitsecs"]) >= 16


def test_systemd_analyze():
    if ANALYZE is None:
        print("systemd-analyze not installed (scripts/deps.sh --test installs systemd): skipped")
        return
    d = tempfile.mkdtemp(prefix="srvtest-unit-")
    try:
        path = os.path.join(d, "srv.service")
        with open(path, "w") as f:
            f.write(rewritten())
        r = subprocess.run([ANALYZE, "verify", path], capture_output=True, text=True,
                           timeout=60 * SLOW)
        ours = [l for l in r.stderr.splitlines() if "srv.service" in l or d in l]
        assert r.returncode == 0 and not ours, (r.returncode, r.stdout, r.stderr)
        # A typo is caught: the check is not vacuous.
        with open(path, "w") as f:
            f.write(rewritten().replace("KillMode=mixed", "KillMode=mixd"))
        r = subprocess.run([ANALYZE, "verify", path], capture_output=True, text=True,
                           timeout=60 * SLOW)
        assert "mixd" in r.stderr, r.stderr
        with open(path, "w") as f:
            f.write(rewritten())
        r = subprocess.run([ANALYZE, "security", "--offline=yes", path], capture_output=True,
                           text=True, timeout=60 * SLOW)
        m = re.search(r"exposure level for srv\.service: ([0-9.]+)", r.stdout + r.stderr)
        if m:  # older systemd-analyze: no --offline
            assert float(m.group(1)) <= 5.0, r.stdout[-3000:]
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_unit_command_lines():
    """ExecStart/ExecReload/KillSignal as systemd uses them, against a test configuration."""
    s = Server(name="unit")
    svc = unit_settings(rewritten(s.config))["Service"]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    addr = os.path.join(s.dir, "notify.sock")
    sock.bind(addr)
    sock.settimeout(30 * SLOW)
    env = dict(os.environ, NOTIFY_SOCKET=addr)
    proc = None
    try:
        for pre in svc.get("ExecStartPre", []):
            r = subprocess.run(shlex.split(pre.lstrip("+-@:!")), capture_output=True, text=True,
                               timeout=60 * SLOW)
            assert r.returncode == 0, (pre, r.stdout, r.stderr)
        s.out = open(os.path.join(s.dir, "stdout"), "w")
        proc = subprocess.Popen(shlex.split(svc["ExecStart"][-1]), env=env, stdout=s.out,
                                stderr=subprocess.STDOUT)
        s.proc = proc
        fields = {}
        while fields.get("READY") != "1":
            fields = dict(l.split("=", 1) for l in sock.recv(4096).decode().splitlines())
        assert int(fields["MAINPID"]) == proc.pid == s.master_pid(), fields
        s.wait_ready()
        r = subprocess.run(shlex.split(svc["ExecReload"][-1].lstrip("+-@:!")), capture_output=True,
                           text=True, timeout=60 * SLOW)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert s.get("/")[0] == 200
        sig = getattr(signal, svc.get("KillSignal", ["SIGTERM"])[-1])
        os.kill(proc.pid, sig)
        limit = int(svc["TimeoutStopSec"][-1].rstrip("s"))
        assert proc.wait(timeout=limit) == 0
        wait_for(lambda: not any(pid_alive(p) for p in s.known_pids), 10, "the tree gone")
    finally:
        sock.close()
        s.cleanup()


if __name__ == "__main__":
    run([test_settings, test_supervisord_settings, test_systemd_analyze, test_unit_command_lines])
