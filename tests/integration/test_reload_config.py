"""`srv reload` re-reads the configuration, black-box: the running server validates it itself
(a broken file leaves everything as it is, with file:line and the config exit code, also when
the reload comes by SIGUSR1 or straight from the control socket); worker_num and
task_worker_num grow and shrink under load with no failed request (process and base mode);
what needs a restart (a listener's port) is named and not applied while the rest is; a new app
path is served; an app whose workers refuse to start stops the reload (old workers serve,
non-zero exit); cron jobs and custom processes come and go; `srv info` shows the file's mtime
and digest."""
import os
import signal
import threading
import time

from srvtest import LoadThreads, SLOW, Server, pid_alive, run, running, wait_for

APPS = os.environ.get("SRV_TEST_APPS", "")


def workers(info, kind="worker"):
    return sorted((w for w in info["workers"] if w["type"] == kind), key=lambda w: w["id"])


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


class Load(LoadThreads):
    """Two clients looping GET / (one keep-alive connection, one new connection per request)
    until stopped; every failure is kept."""

    def __init__(self, s):
        super().__init__(lambda: self.loop(True), lambda: self.loop(False))
        self.s, self.errors, self.ok = s, [], 0
        self.lock = threading.Lock()

    def loop(self, keep):
        c = self.s.conn() if keep else None
        while not self.stop.is_set():
            try:
                if keep:
                    c.request("GET", "/")
                    r = c.getresponse()
                    status, body = r.status, r.read()
                    if r.getheader("Connection", "").lower() == "close":
                        c.close()
                else:
                    status, _, body = self.s.get("/")
                with self.lock:
                    if status == 200 and body == b"Hello, World!":
                        self.ok += 1
                    else:
                        self.errors.append((status, body[:80]))
            except Exception as e:
                with self.lock:
                    self.errors.append(repr(e))
                if keep:
                    c.close()

    def started(self):
        wait_for(lambda: self.ok >= 20, 10, "load running")

    def more(self, n=50):
        base = self.ok
        wait_for(lambda: self.ok >= base + n, 10, f"{n} more requests answered")


def ready_count(s, kind, n):
    def ok():
        ws = workers(s.info(), kind)
        return len(ws) == n and all(w["state"] == "ready" and w["pid"] > 0 for w in ws)
    wait_for(ok, 20, f"{n} {kind} processes ready")


def resize_under_load(mode):
    s = Server(name=f"reload-resize-{mode}", server={"mode": mode, "worker_num": 2})
    with running(s):
        with Load(s) as load:
            for n in (4, 1, 3):
                s.server["worker_num"] = n
                s.write_config()
                r = s.cmd("reload", timeout=60)
                assert r.returncode == 0, (n, r.returncode, r.stdout, r.stderr, s.log()[-3000:])
                assert "needs restart" not in r.stdout, r.stdout
                ready_count(s, "worker", n)
                load.more()
        assert not load.errors, f"{len(load.errors)} failed of {load.ok}: {load.errors[:5]}"
        ids = [w["id"] for w in workers(s.info())]
        assert ids == [0, 1, 2], ids
        # Each worker of the last size serves (its own pid in /worker).
        seen = set()
        wait_for(lambda: seen.add(s.get("/worker")[2]) or len(seen) >= 2, 10,
                 "requests reach more than one worker")
        assert "retiring" in s.log(), s.log()[-2000:]
        s.stop()


def test_worker_num_up_and_down_process_mode():
    resize_under_load("process")


def test_worker_num_up_and_down_base_mode():
    resize_under_load("base")


def test_invalid_file_keeps_running_config():
    s = Server(name="reload-invalid", server={"worker_num": 2})
    with running(s):
        before = s.info()
        good = open(s.config).read()
        with open(s.config, "w") as f:
            f.write(good.replace("[server]\n", "[server]\nhttp_header_max = \"big\"\n", 1))
        # The command reads it first: file:line: key: problem, the config exit code.
        r = s.cmd("reload", timeout=30)
        assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
        assert f"{s.config}:2: http_header_max:" in r.stderr, r.stderr
        # The server judges it itself too: straight from the control socket...
        reply = s.ctl_line(b"reload\n")
        where = f"{s.config}:2: http_header_max:".encode()
        assert reply.startswith(b"error 3 ") and where in reply, reply
        # ...and by SIGUSR1, which logs why.
        os.kill(before["pid"], signal.SIGUSR1)
        wait_for(lambda: s.log().count("reload refused, configuration kept") >= 2, 10,
                 "the refused SIGUSR1 reload logged")
        with open(s.config, "w") as f:  # srv info reads the file too
            f.write(good)
        after = s.info()
        assert [w["pid"] for w in workers(after)] == [w["pid"] for w in workers(before)]
        assert after["reloads"] == before["reloads"]
        assert after["config"]["digest"] == before["config"]["digest"]
        assert s.get("/")[0] == 200
        s.stop()


def test_listener_change_named_rest_applied():
    s = Server(name="reload-listener", server={"worker_num": 2})
    with running(s):
        port = s.port()
        before = s.info()
        assert before["config"]["digest"] == fnv1a64(open(s.config, "rb").read())
        # A header of 3000 bytes passes at the default http_header_max...
        big = {"X-Big": "a" * 3000}
        assert s.get("/", headers=big)[0] == 200
        moved = s.listeners[0]["port"] + 1
        s.listeners[0]["port"] = moved
        s.server["http_header_max"] = 2048
        s.write_config()
        r = s.cmd("reload", timeout=60)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr, s.log()[-3000:])
        assert "needs restart: listen.http.port" in r.stdout, r.stdout
        assert "needs restart: listen.http.port" in s.log()
        s.listeners[0]["port"] = port  # the socket stays where it was
        # ...and the limit that could change did: 431 now.
        assert s.get("/", headers=big)[0] == 431
        assert s.get("/")[0] == 200
        after = s.info()
        assert after["config"]["digest"] == fnv1a64(open(s.config, "rb").read())
        assert after["config"]["digest"] != before["config"]["digest"]
        assert abs(after["config"]["mtime_ms"] / 1000 - os.stat(s.config).st_mtime) < 2
        assert after["listeners"][0]["port"] == port, after["listeners"]
        s.stop()


def test_new_app_and_failing_start_hook():
    assert APPS, "SRV_TEST_APPS is not set"
    s = Server(name="reload-app", server={"worker_num": 2})
    with running(s):
        before = s.info()
        old = [w["pid"] for w in workers(before)]
        s.server["app"] = os.path.join(APPS, "failstart.so")
        s.write_config()
        r = s.cmd("reload", timeout=60)
        assert r.returncode == 6, (r.returncode, r.stdout, r.stderr)
        assert "reload failed" in r.stderr and "worker" in r.stderr, r.stderr
        # Worker 0 had been replaced with the new app: it was put back on the old one. Every
        # worker serves the old app again.
        assert "putting 1 process(es) back on the previous configuration" in s.log()
        now = s.info()
        assert workers(now)[1]["pid"] == old[1], (old, now["workers"])
        for _ in range(10):
            status, _, body = s.get("/")
            assert status == 200 and body == b"Hello, World!", (status, body)
        assert now["config"]["digest"] == before["config"]["digest"]
        # A working new app: served after the reload.
        s.server["app"] = os.path.join(APPS, "v2.so")
        s.write_config()
        r = s.cmd("reload", timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr, s.log()[-3000:])
        status, _, body = s.get("/")
        assert status == 200 and body.startswith(b"v2 "), (status, body)
        s.stop()


def test_tasks_cron_and_processes_come_and_go():
    s = Server(name="reload-kinds", server={"worker_num": 1, "task_worker_num": 0})
    with running(s):
        assert not workers(s.info(), "task")
        s.server["task_worker_num"] = 2
        s.extra = ('[[cron]]\nname = "tick"\nhandler = "demo_cron_tick"\ninterval_ms = 100\n'
                   '[[process]]\nname = "clock"\nhandler = "demo_clock"\n')
        s.write_config()
        r = s.cmd("reload", timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr, s.log()[-3000:])
        ready_count(s, "task", 2)
        ready_count(s, "timer", 1)
        ready_count(s, "process", 1)
        status, _, body = s.get("/task?ms=1")
        assert status == 200, (status, body)
        wait_for(lambda: int(s.get("/cron")[2] or b"0") >= 2, 10, "the new cron job runs")
        assert s.get("/clock")[0] == 200
        # And back: the task workers, the timer and the process retire.
        gone = {w["pid"] for w in s.info()["workers"] if w["type"] != "worker"}
        s.server["task_worker_num"] = 0
        s.extra = ""
        s.write_config()
        r = s.cmd("reload", timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr, s.log()[-3000:])
        wait_for(lambda: all(w["type"] == "worker" for w in s.info()["workers"]), 15,
                 "only workers left")
        wait_for(lambda: not any(pid_alive(p) for p in gone), 10, "retired processes exited")
        assert s.get("/")[0] == 200
        s.stop()


def test_inotify_reload_once_per_change():
    s = Server(name="reload-inotify", server={"worker_num": 2, "inotify_reload": True})
    app = s.own_app()
    with running(s):
        before = s.info()
        assert "inotify_reload: watching 2 path(s)" in s.log()
        # A burst of changes to the module (a deploy writes, then touches): one reload.
        for _ in range(3):
            os.utime(app)
        wait_for(lambda: s.info()["reloads"] == before["reloads"] + 1, 15,
                 "one reload after the module changed")
        # The config file: a second one, with what it changes applied.
        s.server["http_keepalive_timeout"] = 1234
        s.write_config()
        wait_for(lambda: s.info()["reloads"] == before["reloads"] + 2, 15,
                 "a reload after the config changed")
        assert s.log().count("changed; reloading") == 2, s.log()[-3000:]
        assert s.info()["config"]["digest"] == fnv1a64(open(s.config, "rb").read())
        assert s.get("/")[0] == 200
        s.stop()


def reload_applies_limits(mode):
    """max_worker_rss, then request_timeout, off at start, each take effect through a reload
    (one at a time: a 100 MB /grow on a loaded machine may take longer than the timeout)."""
    import http.client
    s = Server(name=f"reload-limits-{mode}", server={"mode": mode, "worker_num": 1})
    with running(s):
        st, _, body = s.get("/sleep?ms=1500")  # no request_timeout yet
        assert st == 200, (st, body)
        s.server.update({"max_worker_rss": "64M"})
        s.write_config()
        r = s.cmd("reload", check=True)
        assert r.stdout == "reloaded\n", r.stdout
        wait_for(lambda: workers(s.info())[0]["state"] == "ready", 10, "a new worker ready")
        pid = workers(s.info())[0]["pid"]
        st, _, body = s.get("/grow?mb=100")
        assert st == 200, (st, body)
        wait_for(lambda: workers(s.info())[0]["pid"] not in (0, pid), 10,
                 "the worker replaced for max_worker_rss")
        assert "above max_worker_rss (65536 KiB)" in s.log()

        s.server.update({"request_timeout": 1})
        s.write_config()
        r = s.cmd("reload", check=True)
        assert r.stdout == "reloaded\n", r.stdout
        c = http.client.HTTPConnection("127.0.0.1", s.port(), timeout=20 * SLOW)
        t0 = time.monotonic()
        c.request("GET", "/sleep?ms=20000")
        res = c.getresponse()
        took, body = time.monotonic() - t0, res.read()
        c.close()
        assert res.status == 504 and body == b"the request ran past request_timeout\n", \
            (res.status, body)
        assert 0.9 <= took < 1 + 3 * SLOW, took
        s.stop()


def test_reload_applies_limits_process_mode():
    reload_applies_limits("process")


def test_reload_applies_limits_base_mode():
    reload_applies_limits("base")


if __name__ == "__main__":
    run([test_invalid_file_keeps_running_config, test_listener_change_named_rest_applied,
         test_worker_num_up_and_down_process_mode, test_worker_num_up_and_down_base_mode,
         test_new_app_and_failing_start_hook, test_tasks_cron_and_processes_come_and_go,
         test_inotify_reload_once_per_change, test_reload_applies_limits_process_mode,
         test_reload_applies_limits_base_mode])
