"""Privilege drop (issue 16), black-box, as root: with user = "nobody" and group = "nogroup" srv
binds a port below 1024, then the master and every process it starts run as 65534 with no
capability left; requests are served; `srv info/reload/reopen/stop` work as root and as nobody;
log reopen as the user works where it may write and says why where it may not; a user that
does not exist is a config error; a non-root start naming another user is refused; chroot puts
the manager and its children in a directory holding the app. Skipped (exit 77) unless root."""
import os
import pwd
import random
import re
import shutil
import socket
import subprocess
import sys

import srvtest
from srvtest import DEMO, SLOW, SRV, Server, pid_alive, run, running, wait_for

NOBODY = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else None


def low_port():
    """A free TCP port in 600..1023, claimed through srvtest's port locks."""
    ports = list(range(600, 1024))
    random.shuffle(ports)
    os.makedirs(srvtest.PORT_DIR, exist_ok=True)
    for p in ports:
        if srvtest._bindable(p) and srvtest._lock_port(p):
            return p
    raise AssertionError("no free port in 600..1023")


def as_nobody(*args, timeout=30):
    return subprocess.run(["runuser", "-u", "nobody", "--", *args], capture_output=True,
                          text=True, timeout=timeout * SLOW)


def status(pid):
    """Uid, Gid (the four values each), Groups and CapEff of pid from /proc."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups", "CapEff", "PPid"):
                out[k] = v.split()
    return out


def tree(master):
    """master and every process under it, by walking PPid in /proc."""
    parents = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                parents[int(d)] = int(status(int(d))["PPid"][0])
            except (OSError, KeyError):
                pass
    found, todo = {master}, [master]
    while todo:
        p = todo.pop()
        for c, pp in parents.items():
            if pp == p and c not in found:
                found.add(c)
                todo.append(c)
    return found


def dropped_server(name, mode="process", server=None):
    """A server in a folder nobody owns (logs, pid file and socket may come and go there), with
    its own copy of the demo app, on a port below 1024."""
    opts = {"mode": mode, "user": "nobody", "group": "nogroup", "task_worker_num": 1}
    opts.update(server or {})
    s = Server(listeners=[{"name": "http", "type": "http", "port": low_port()}], server=opts,
               name=name)
    s.access = os.path.join(s.dir, "access.log")
    s.server["access_log"] = s.access
    os.chown(s.dir, NOBODY, -1)
    os.chmod(s.dir, 0o755)
    s.own_app()
    return s


def check_all_dropped(s, info):
    """Every process of the tree (the info's pids and /proc's children) runs as 65534 only."""
    master = s.master_pid()
    pids = tree(master)
    pids |= {info["pid"], info["manager_pid"]} | {w["pid"] for w in info["workers"] if w["pid"]}
    assert len(pids) >= 2 + len(info["workers"]), (pids, info["workers"])
    for p in pids:
        st = status(p)
        assert st["Uid"] == ["65534"] * 4, (p, st)
        assert st["Gid"] == ["65534"] * 4, (p, st)
        assert st["Groups"] == ["65534"], (p, st)
        assert int(st["CapEff"][0], 16) == 0, (p, st)
    log = s.log()
    assert re.search(r"master\[\d+\] master: running as uid 65534 \(nobody\), gid 65534 "
                     r"\(nogroup\), groups 65534", log), log
    assert re.search(r"manager\[\d+\] manager: running as uid 65534", log), log


def owned_by_nobody(*paths):
    for p in paths:
        assert os.lstat(p).st_uid == NOBODY, (p, os.lstat(p))


def test_process_mode_drops_and_nobody_controls_it():
    s = dropped_server("priv-process")
    s.listeners.append({"name": "unix", "type": "http", "path": os.path.join(s.dir, "u.sock")})
    s.write_config()
    with running(s):
        info = s.wait_ready()
        check_all_dropped(s, info)
        status_, _, body = s.get("/")
        assert (status_, body) == (200, b"Hello, World!"), (status_, body)
        owned_by_nobody(s.pid_file, s.pid_file + ".sock", s.log_file, s.access,
                        os.path.join(s.dir, "u.sock"))
        # The user runs the commands: info, reload (reads the config and app as nobody), reopen.
        r = as_nobody(SRV, "info", "--json", "-c", s.config)
        assert r.returncode == 0 and str(info["pid"]) in r.stdout, r
        r = as_nobody(SRV, "reload", "-c", s.config)
        assert r.returncode == 0, (r, s.log()[-3000:])
        info = wait_for(lambda: (lambda i: i if i["reloads"] >= 1 and all(
            w["state"] == "ready" for w in i["workers"]) else None)(s.info()), 20,
            "reload done")
        check_all_dropped(s, info)
        assert s.get("/")[0] == 200
        # Log rotation as the user: the folder is nobody's, so a new file can be made.
        os.rename(s.log_file, s.log_file + ".1")
        r = as_nobody(SRV, "reopen", "-c", s.config)
        assert r.returncode == 0, r
        wait_for(lambda: os.path.exists(s.log_file), 10, "new log file")
        owned_by_nobody(s.log_file)
        r = as_nobody(SRV, "stop", "-c", s.config)
        assert r.returncode == 0, r
        s.proc.wait(timeout=30 * SLOW)


def test_base_mode_drops_and_root_controls_it():
    with running(dropped_server("priv-base", mode="base")) as s:
        info = s.wait_ready()
        check_all_dropped(s, info)
        for _ in range(4):
            status_, _, body = s.get("/")
            assert (status_, body) == (200, b"Hello, World!"), (status_, body)
        wait_for(lambda: os.path.getsize(s.access) > 0, 10, "access log lines (workers')")
        assert s.cmd("info").returncode == 0
        r = s.cmd("reload")
        assert r.returncode == 0, r
        wait_for(lambda: (lambda i: i["reloads"] >= 1 and all(
            w["state"] == "ready" for w in i["workers"]))(s.info()), 20, "reload done")
        check_all_dropped(s, s.info())
        s.stop()


def test_reopen_refused_is_logged():
    """The log folder is root's: after the drop the master cannot make a new log file there,
    says so in the one it still writes, and keeps writing it."""
    s = dropped_server("priv-reopen")
    os.chown(s.dir, 0, -1)
    with running(s):
        os.rename(s.log_file, s.log_file + ".1")
        assert s.cmd("reopen").returncode == 0
        old = s.log_file + ".1"
        wait_for(lambda: "cannot reopen log file" in open(old).read(), 10, "reopen error")
        assert "Permission denied" in open(old).read()
        assert not os.path.exists(s.log_file)
        assert s.get("/")[0] == 200
        s.stop()
        # The pid file stays (nobody cannot remove it from root's folder): a new start takes it.
        s.proc = None
        s.start()
        s.stop()


def test_unknown_user_is_a_config_error():
    s = Server(server={"user": "no-such-user-srv"}, name="priv-unknown")
    try:
        r = s.cmd("start", timeout=30)
        assert r.returncode == 3, r
        assert re.search(re.escape(s.config) + r":\d+: user: no such user \"no-such-user-srv\"",
                         r.stderr), r.stderr
    finally:
        s.cleanup()


def test_not_root_may_only_name_itself():
    """Started as nobody: user = "root" is refused (exit 3); user = "nobody" is what it is."""
    s = Server(server={"user": "root"}, name="priv-notroot")
    try:
        os.chown(s.dir, NOBODY, -1)
        s.own_app()
        os.chown(s.config, NOBODY, -1)
        r = as_nobody(SRV, "start", "-c", s.config)
        assert r.returncode == 3, r
        assert 'user = "root" needs srv started as root' in r.stderr, r.stderr
        s.server["user"] = "nobody"
        s.write_config()
        r = as_nobody(SRV, "start", "-d", "-c", s.config)
        assert r.returncode == 0, (r, s.log())
        info = s.wait_ready()
        assert status(info["pid"])["Uid"] == ["65534"] * 4
        r = as_nobody(SRV, "stop", "-c", s.config)
        assert r.returncode == 0, r
        wait_for(lambda: not pid_alive(info["pid"]), 20, "master exit")
    finally:
        s.cleanup()


def test_chroot():
    """The manager and its children live in the chroot (the app lies inside it, loaded from
    there); the master does not (it reads the config at reload)."""
    s = dropped_server("priv-chroot")
    jail = os.path.join(s.dir, "jail")
    os.makedirs(os.path.join(jail, "app"))
    shutil.copyfile(DEMO, os.path.join(jail, "app", "demo.so"))
    s.server["app"] = os.path.join(jail, "app", "demo.so")
    s.server["chroot"] = jail
    s.write_config()
    with running(s):
        info = s.wait_ready()
        check_all_dropped(s, info)
        assert os.readlink(f"/proc/{info['pid']}/root") == "/"
        for p in [info["manager_pid"]] + [w["pid"] for w in info["workers"] if w["pid"]]:
            assert os.readlink(f"/proc/{p}/root") == jail, p
        assert s.get("/")[0] == 200
        assert re.search(r"manager: running as uid 65534 .*, chroot " + re.escape(jail), s.log())
        r = s.cmd("reload")
        assert r.returncode == 0, (r, s.log()[-3000:])
        wait_for(lambda: (lambda i: i["reloads"] >= 1 and all(
            w["state"] == "ready" for w in i["workers"]))(s.info()), 20, "reload done")
        assert s.get("/")[0] == 200
        s.stop()


def tls_reload_as_user(mode):
    """The certificates are read again at reload as the user (in base mode by each new worker
    too): a key readable by the user's group works; one only root may read refuses the reload
    (process mode: the old certificate keeps serving)."""
    import tlscerts
    c = tlscerts.certs()
    s = dropped_server(f"priv-tls-{mode}", mode=mode)
    cert, key = os.path.join(s.dir, "cert.pem"), os.path.join(s.dir, "key.pem")
    shutil.copyfile(c.server, cert)
    shutil.copyfile(c.server_key, key)
    os.chown(key, 0, NOBODY)
    os.chmod(key, 0o640)
    s.listeners[0].update(tlscerts.tls_keys(c, cert=cert, key=key))
    s.write_config()
    org = lambda: tlscerts.served_cert(s.port(), "localhost")["organizationName"]
    with running(s):
        check_all_dropped(s, s.wait_ready())
        assert org() == "srv-test-A"
        for src, dst in ((c.alt, cert), (c.alt_key, key)):
            with open(src, "rb") as f, open(dst, "wb") as g:
                g.write(f.read())
        r = s.cmd("reload")
        assert r.returncode == 0, (r, s.log()[-3000:])
        wait_for(lambda: org() == "srv-test-B", 20, "the new certificate served")
        if mode == "process":
            os.chmod(key, 0o600)
            r = s.cmd("reload")
            assert r.returncode == 3 and "Permission denied" in r.stderr, r
            assert org() == "srv-test-B"
        s.stop()


def test_tls_reload_as_user_process_mode():
    tls_reload_as_user("process")


def test_tls_reload_as_user_base_mode():
    tls_reload_as_user("base")


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("skip: privilege drop needs the tests run as root")
        sys.exit(77)
    run([test_process_mode_drops_and_nobody_controls_it, test_base_mode_drops_and_root_controls_it,
         test_reopen_refused_is_logged, test_unknown_user_is_a_config_error,
         test_not_root_may_only_name_itself, test_chroot, test_tls_reload_as_user_process_mode,
         test_tls_reload_as_user_base_mode])
