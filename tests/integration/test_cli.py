"""The srv command line: check, version, help, usage errors and every documented exit code
(0 ok, 2 usage, 3 bad config, 4 cannot listen, 5 already/not running, 6 app failed to load),
and that stop/reload/info find the server through ./srv.toml when -c is left out."""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile

from srvtest import DEMO, SLOW, SRV, Server, free_port, pid_alive, run, running, wait_for


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    def __repr__(self):
        return f"Result({self.returncode}, {self.stdout!r}, {self.stderr!r})"


def srv(*args, cwd=None, timeout=30):
    """Run srv with stdout/stderr in files, not pipes: a daemon's processes must not keep the
    caller's pipes open, but when they do (a bug of its own, see test_lifecycle) the other
    tests should not hang on it."""
    d = tempfile.mkdtemp(prefix="srvtest-cli-out-")
    try:
        with open(os.path.join(d, "o"), "w+") as o, open(os.path.join(d, "e"), "w+") as e:
            rc = subprocess.run([SRV, *args], stdout=o, stderr=e, cwd=cwd,
                                timeout=timeout * SLOW).returncode
            o.seek(0)
            e.seek(0)
            return Result(rc, o.read(), e.read())
    finally:
        shutil.rmtree(d, ignore_errors=True)


def scmd(s, *args, timeout=30):
    return srv(*args, "-c", s.config, timeout=timeout)


def start_daemon(s):
    r = scmd(s, "start", "-d")
    assert r.returncode == 0, (r, s.log())
    return s.wait_ready()


class TempDir:
    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="srvtest-cli-")
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)
        return False


def write(folder, name, text):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def toml_conf(port, server_lines="", listen_lines=""):
    return (f'[server]\napp = "{DEMO}"\n{server_lines}'
            f'\n[[listen]]\ntype = "http"\nhost = "127.0.0.1"\nport = {port}\n{listen_lines}')


def ini_conf(port, server_lines="", listen_lines=""):
    return (f'[server]\napp = {DEMO}\n{server_lines}'
            f'\n[listen.http]\ntype = http\nhost = 127.0.0.1\nport = {port}\n{listen_lines}')


def line_of(text, needle, nth=1):
    """1-based line number of the nth line of text that starts with needle."""
    seen = 0
    for i, l in enumerate(text.split("\n"), 1):
        if l.startswith(needle):
            seen += 1
            if seen == nth:
                return i
    raise AssertionError(f"{needle!r} not in config")


def expect_check_error(path, line, key, what):
    r = srv("check", "-c", path)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    m = re.search(re.escape(path) + r":(\d+): ([A-Za-z_.]+): (.+)", r.stderr)
    assert m, f"no 'file:line: key: what' on stderr: {r.stderr!r}"
    assert int(m.group(1)) == line, (line, r.stderr)
    assert m.group(2) == key, (key, r.stderr)
    assert re.search(what, m.group(3), re.I), (what, r.stderr)


def test_version_and_help():
    r = srv("version")
    assert r.returncode == 0, r
    assert re.match(r"srv \d+\.\d+\.\d+", r.stdout), r.stdout
    r = srv("help")
    assert r.returncode == 0, r
    for cmd in ("start", "stop", "reload", "restart", "info", "check", "version", "help"):
        assert cmd in r.stdout, (cmd, r.stdout)
    # Every exit code is documented in `srv help` and in the README.
    for code in ("0 ok", "1 runtime failure", "2 usage error", "3 invalid configuration",
                 "4 cannot listen", "5 already running", "6 app"):
        assert code in r.stdout, (code, r.stdout)
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../README.md")) as f:
        readme = f.read()
    for code in range(7):
        assert re.search(rf"^\| {code} \|", readme, re.M), f"exit code {code} not in README"


def test_usage_errors_exit_2():
    with TempDir() as d:
        path = write(d, "srv.toml", toml_conf(free_port()))
        for args in (["bogus"], ["start", "--bogus", "-c", path], ["info", "--nope", "-c", path],
                     ["stop", "extra-arg", "-c", path], ["check", "-c"], []):
            r = srv(*args)
            assert r.returncode == 2, (args, r.returncode, r.stderr)
            assert "usage" in (r.stderr + r.stdout).lower(), (args, r.stderr)


def test_check_valid_toml_and_ini():
    with TempDir() as d:
        for name, text in (("ok.toml", toml_conf(free_port())), ("ok.ini", ini_conf(free_port()))):
            path = write(d, name, text)
            r = srv("check", "-c", path)
            assert r.returncode == 0, (name, r.returncode, r.stderr)
            assert r.stderr == "" or "ok" in r.stderr, r.stderr


def test_check_errors_toml():
    port = free_port()
    with TempDir() as d:
        cases = [
            (toml_conf(port, "bogus_key = 1\n"), "bogus_key", "bogus_key", "unknown"),
            (toml_conf(port, 'worker_num = "two"\n'), "worker_num = \"two\"", "worker_num",
             "integer"),
            (toml_conf(port, "max_conn = 0\n"), "max_conn", "max_conn", "between|range"),
            (toml_conf(port, "", "\n[[listen]]\nname = \"b\"\ntype = \"http\"\n"
                       f"host = \"127.0.0.1\"\nport = {port}\n"), None, "port", "already used"),
            (toml_conf(port, "", "bogus_listen_key = true\n"), "bogus_listen_key",
             "bogus_listen_key", "unknown"),
        ]
        for i, (text, needle, key, what) in enumerate(cases):
            path = write(d, f"bad{i}.toml", text)
            line = line_of(text, needle) if needle else line_of(text, "port", 2)
            expect_check_error(path, line, key, what)


def test_check_errors_ini():
    port = free_port()
    with TempDir() as d:
        cases = [
            (ini_conf(port, "bogus_key = 1\n"), "bogus_key", "bogus_key", "unknown"),
            (ini_conf(port, "worker_num = two\n"), "worker_num = two", "worker_num", "integer"),
            (ini_conf(port, "worker_num = 5000\n"), "worker_num = 5000", "worker_num",
             "between|range"),
            (ini_conf(port, "", f"\n[listen.b]\ntype = http\nhost = 127.0.0.1\nport = {port}\n"),
             None, "port", "already used"),
        ]
        for i, (text, needle, key, what) in enumerate(cases):
            path = write(d, f"bad{i}.ini", text)
            line = line_of(text, needle) if needle else line_of(text, "port", 2)
            expect_check_error(path, line, key, what)


def test_start_bad_config_exit_3():
    with TempDir() as d:
        path = write(d, "srv.toml", toml_conf(free_port(), "worker_num = -1\n"))
        r = srv("start", "-c", path)
        assert r.returncode == 3, (r.returncode, r.stderr)
        assert re.search(re.escape(path) + r":\d+: worker_num: ", r.stderr), r.stderr
        r = srv("start", "-d", "-c", path)
        assert r.returncode == 3, (r.returncode, r.stderr)
        r = srv("check", "-c", os.path.join(d, "missing.toml"))
        assert r.returncode == 3, (r.returncode, r.stderr)


def test_port_in_use_exit_4():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    s = Server(name="cli-busy", listeners=[{"name": "http", "type": "http", "port": port}])
    try:
        for args in (("start",), ("start", "-d")):
            r = scmd(s, *args)
            assert r.returncode == 4, (args, r.returncode, r.stderr, s.log())
            assert "127.0.0.1" in r.stderr + s.log(), (r.stderr, s.log())
            assert not os.path.exists(s.pid_file + ".sock"), "control socket left behind"
    finally:
        holder.close()
        s.cleanup()


def test_already_running_and_not_running_exit_5():
    s = Server(name="cli-five")
    for cmd in (("stop",), ("reload",), ("reload", "--tasks"), ("info",), ("info", "--json")):
        r = s.cmd(*cmd)
        assert r.returncode == 5, (cmd, r.returncode, r.stderr)
        assert "not running" in r.stderr, r.stderr
    try:
        start_daemon(s)
        master = s.master_pid()
        for args in (("start",), ("start", "-d")):
            r = scmd(s, *args)
            assert r.returncode == 5, (args, r.returncode, r.stderr)
            assert "already running" in r.stderr, r.stderr
        # The running server is untouched by the failed starts.
        assert s.master_pid() == master
        assert s.get("/")[0] == 200
        assert s.info()["pid"] == master
        s.stop()
        assert not os.path.exists(s.pid_file + ".sock")
        # A stale pid file (no live process behind it) is "not running", not an error of its own.
        with open(s.pid_file, "w") as f:
            f.write("999999\n")
        r = s.cmd("stop")
        assert r.returncode == 5, (r.returncode, r.stderr)
    finally:
        s.cleanup()


def test_app_load_failure_exit_6():
    for what in ("missing", "text", "empty"):
        s = Server(name=f"cli-app-{what}")
        try:
            bad = os.path.join(s.dir, "app.so")
            if what == "text":
                with open(bad, "w") as f:
                    f.write("this is not a shared object\n" * 10)
            elif what == "empty":
                open(bad, "w").close()
            s.server["app"] = bad
            s.write_config()
            for args in (("start",), ("start", "-d")):
                r = scmd(s, *args)
                assert r.returncode == 6, (what, args, r.returncode, r.stderr, s.log())
                assert "app.so" in r.stderr + s.log(), (r.stderr, s.log())
                wait_for(lambda: not os.path.exists(s.pid_file + ".sock"), 10,
                         "control socket removed")
                r = s.cmd("info")
                assert r.returncode == 5, (r.returncode, r.stderr)
        finally:
            s.cleanup()


def test_default_config_in_cwd():
    """With no -c, every command reads ./srv.toml: start -d, info, reload, stop from the folder."""
    s = Server(name="cli-cwd")
    try:
        r = srv("start", "-d", cwd=s.dir)
        assert r.returncode == 0, (r.returncode, r.stderr, s.log())
        info = s.wait_ready()
        r = srv("info", "--json", cwd=s.dir)
        assert r.returncode == 0, r.stderr
        j = json.loads(r.stdout)
        assert j["pid"] == s.master_pid() == info["pid"]
        r = srv("reload", cwd=s.dir)
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert wait_for(lambda: s.info()["reloads"] >= 1, 10, "reload counted")
        r = srv("info", cwd=s.dir)
        assert r.returncode == 0 and str(j["pid"]) in r.stdout, r
        r = srv("stop", cwd=s.dir)
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert not pid_alive(j["pid"])
        r = srv("info", cwd=s.dir)
        assert r.returncode == 5, (r.returncode, r.stderr)
        # No srv.toml in the folder at all: an invalid-configuration error naming the file.
        empty = tempfile.mkdtemp(prefix="srvtest-cli-empty-")
        try:
            r = srv("info", cwd=empty)
            assert r.returncode == 3, (r.returncode, r.stderr)
            assert "srv.toml" in r.stderr, r.stderr
        finally:
            shutil.rmtree(empty, ignore_errors=True)
    finally:
        s.cleanup()


def test_info_human_and_json():
    with running(Server(name="cli-info", server={"worker_num": 3})) as s:
        for _ in range(5):
            assert s.get("/")[0] == 200
        c = s.conn()
        c.request("GET", "/")
        assert c.getresponse().read() == b"Hello, World!"
        j = s.info()
        assert j["pid"] == s.master_pid() == s.proc.pid
        assert j["mode"] == "process"
        assert isinstance(j["uptime"], (int, float)) and j["uptime"] >= 0
        assert j["connections"] >= 1, j  # c is still open
        assert j["requests"] >= 6, j
        workers = [w for w in j["workers"] if w["type"] == "worker"]
        assert len(workers) == 3, j
        assert sorted(w["id"] for w in workers) == [0, 1, 2]
        for w in workers:
            assert pid_alive(w["pid"]) and w["state"] == "ready", w
            for k in ("requests", "respawns"):
                assert isinstance(w[k], int) and w[k] >= 0, (k, w)
        assert sum(w["total_requests"] for w in workers) >= 6, j
        c.close()
        r = s.cmd("info")
        assert r.returncode == 0, r.stderr
        assert str(j["pid"]) in r.stdout and "process" in r.stdout, r.stdout
        for w in workers:
            assert str(w["pid"]) in r.stdout, (w, r.stdout)
        with_uptime = wait_for(lambda: s.info()["uptime"] > j["uptime"], 10, "uptime grows")
        assert with_uptime
        s.stop()


def test_daemon_stdio_follows_reopen():
    """Daemonized, stdout and stderr of every process are the log file: after logrotate's rename
    and `srv reopen` they point at the new file, so nothing keeps writing to the old one."""
    s = Server(name="cli-stdio")
    try:
        start_daemon(s)
        pids = [s.master_pid()] + [w["pid"] for w in s.info()["workers"]]
        os.rename(s.log_file, s.log_file + ".1")
        r = s.cmd("reopen")
        assert r.returncode == 0 and "reopened" in r.stdout, r

        def targets():
            return {os.readlink(f"/proc/{p}/fd/{n}") for p in pids for n in (1, 2)}
        wait_for(lambda: targets() == {s.log_file}, 10, "stdout and stderr on the new log")
        s.stop()
    finally:
        s.cleanup()


def test_restart():
    s = Server(name="cli-restart")
    try:
        # restart when nothing runs just starts.
        r = scmd(s, "restart", "-d", timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr, s.log())
        first = s.wait_ready()
        r = scmd(s, "restart", "-d", timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr, s.log())
        second = s.wait_ready()
        assert second["pid"] != first["pid"]
        assert not pid_alive(first["pid"])
        for w in first["workers"]:
            assert not pid_alive(w["pid"]), w
        assert s.get("/")[0] == 200
        s.stop()
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_version_and_help, test_usage_errors_exit_2, test_check_valid_toml_and_ini,
         test_check_errors_toml, test_check_errors_ini, test_start_bad_config_exit_3,
         test_port_in_use_exit_4, test_already_running_and_not_running_exit_5,
         test_app_load_failure_exit_6, test_default_config_in_cwd, test_info_human_and_json,
         test_daemon_stdio_follows_reopen,
         test_restart])
