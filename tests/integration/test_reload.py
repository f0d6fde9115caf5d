"""Rolling reload, black-box: under client load (keep-alive and new connections) `srv reload`
drops nothing in process and base mode; a broken app on disk stops the reload with exit 6 and
leaves the old workers serving; SIGUSR1 reloads too; `reload --tasks` touches task workers only."""
import os
import shutil
import signal
import threading
import time

from srvtest import DEMO, LoadThreads, SLOW, Server, pid_alive, run, running, wait_for


def workers(info, kind="worker"):
    return sorted((w for w in info["workers"] if w["type"] == kind), key=lambda w: w["id"])


class Load(LoadThreads):
    """Clients looping GET / until stopped: one on a keep-alive connection, one opening a new
    connection per request. Every failure (exception, non-200, wrong body) is recorded."""

    def __init__(self, s):
        super().__init__(self.keepalive, self.fresh)
        self.s = s
        self.errors = []
        self.ok = 0
        self.lock = threading.Lock()

    def record(self, what, status=None, body=None):
        with self.lock:
            if status == 200 and body == b"Hello, World!":
                self.ok += 1
            else:
                self.errors.append((time.monotonic(), what, status, body))

    def keepalive(self):
        c = self.s.conn()
        while not self.stop.is_set():
            try:
                c.request("GET", "/")
                r = c.getresponse()
                body = r.read()
                self.record("keep-alive", r.status, body)
                # A server may end a keep-alive connection, but only by saying so.
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
            except Exception as e:
                self.record(f"keep-alive: {e!r}")
                c.close()
        c.close()

    def fresh(self):
        while not self.stop.is_set():
            try:
                status, _, body = self.s.get("/")
                self.record("new connection", status, body)
            except Exception as e:
                self.record(f"new connection: {e!r}")

    def started(self):
        wait_for(lambda: self.ok >= 20, 10, "load running")


def reload_under_load(mode, worker_num):
    with running(Server(name=f"reload-{mode}", server={"mode": mode,
                                                        "worker_num": worker_num})) as s:
        before = s.info()
        old = workers(before)
        with Load(s) as load:
            r = s.cmd("reload", timeout=60)
            assert r.returncode == 0, (r.returncode, r.stdout, r.stderr, s.log()[-3000:])
            after_reload = load.ok
            wait_for(lambda: load.ok >= after_reload + 50, 10, "requests after the reload")
        assert not load.errors, f"{len(load.errors)} failed of {load.ok + len(load.errors)}: " \
                                f"{load.errors[:5]}"
        after = s.info()
        new = workers(after)
        assert len(new) == worker_num
        assert after["reloads"] == before["reloads"] + 1, (before["reloads"], after["reloads"])
        for o, n in zip(old, new):
            assert n["pid"] != o["pid"], f"worker #{o['id']} was not replaced"
            assert n["generation"] > o["generation"], (o, n)
            assert not pid_alive(o["pid"]), f"old worker {o['pid']} still alive"
        assert after["errors_503"] == 0, after
        assert after["pid"] == before["pid"] and after["manager_pid"] == before["manager_pid"]
        wait_for(lambda: all(w["state"] == "ready" for w in workers(s.info())), 5,
                 "replaced workers shown ready in srv info")
        s.stop()


def test_reload_no_drop_process_mode():
    reload_under_load("process", 3)


def test_reload_no_drop_process_mode_2_workers():
    reload_under_load("process", 2)


def test_reload_no_drop_base_mode():
    reload_under_load("base", 3)


def replace_file(dst, data=None, src=None):
    """Write a new file next to dst and rename it over dst: running workers keep their mapping
    of the old inode, as with a real deploy."""
    tmp = dst + ".new"
    if src:
        shutil.copyfile(src, tmp)
    else:
        with open(tmp, "wb") as f:
            f.write(data)
    os.rename(tmp, dst)


def test_reload_with_broken_app_keeps_old_workers():
    s = Server(name="reload-broken", server={"worker_num": 3})
    app = s.own_app()
    with running(s):
        before = s.info()
        old = workers(before)
        replace_file(app, b"\x7fELF garbage, not a shared object\n" + os.urandom(512))
        r = s.cmd("reload", timeout=60)
        assert r.returncode == 6, (r.returncode, r.stdout, r.stderr, s.log()[-3000:])
        # The loader's error, naming the file.
        assert "app.so" in r.stderr and "load" in r.stderr, r.stderr
        # The old workers keep serving, unchanged and ready.
        for _ in range(6):
            status, _, body = s.get("/")
            assert status == 200 and body == b"Hello, World!", (status, body)
        j = s.info()
        now = workers(j)
        assert [w["pid"] for w in now] == [w["pid"] for w in old], (old, now)
        assert all(w["state"] == "ready" for w in now), now
        assert all(pid_alive(w["pid"]) for w in now)
        # A good build again: the reload goes through.
        replace_file(app, src=DEMO)
        r = s.cmd("reload", timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr, s.log()[-3000:])
        j = s.info()
        now = workers(j)
        assert all(n["pid"] != o["pid"] for o, n in zip(old, now)), (old, now)
        assert s.get("/")[0] == 200
        wait_for(lambda: all(w["state"] == "ready" for w in workers(s.info())), 5,
                 "workers ready after the good reload")
        s.stop()


def test_sigusr1_reloads():
    with running(Server(name="reload-usr1", server={"worker_num": 2})) as s:
        before = s.info()
        old = {w["pid"] for w in workers(before)}
        os.kill(before["pid"], signal.SIGUSR1)

        def replaced():
            j = s.info()
            pids = {w["pid"] for w in workers(j)}
            return j if pids and not (pids & old) and all(pids) else None

        j = wait_for(replaced, 15, "worker pids changed after SIGUSR1")
        assert all(w["generation"] > 1 for w in workers(j)), j["workers"]
        assert s.get("/")[0] == 200
        # The reload is counted once it has finished (shortly after the last pid changed).
        wait_for(lambda: s.info()["reloads"] == before["reloads"] + 1, 5,
                 "srv info reloads counts the SIGUSR1 reload")
        s.stop()


def test_reload_tasks_only():
    with running(Server(name="reload-tasks", server={"worker_num": 2,
                                                      "task_worker_num": 2})) as s:
        before = s.info()
        w0, t0 = workers(before), workers(before, "task")
        assert len(w0) == 2 and len(t0) == 2, before["workers"]
        r = s.cmd("reload", "--tasks", timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr)
        j = s.info()
        w1, t1 = workers(j), workers(j, "task")
        assert [w["pid"] for w in w1] == [w["pid"] for w in w0], (w0, w1)
        for o, n in zip(t0, t1):
            assert n["pid"] != o["pid"] and n["generation"] > o["generation"], (o, n)
        # SIGUSR2 is the same thing.
        os.kill(j["pid"], signal.SIGUSR2)
        old_tasks = {w["pid"] for w in t1}

        def replaced():
            k = s.info()
            pids = {w["pid"] for w in workers(k, "task")}
            return k if pids and all(pids) and not (pids & old_tasks) else None

        k = wait_for(replaced, 15, "task worker pids changed after SIGUSR2")
        assert [w["pid"] for w in workers(k)] == [w["pid"] for w in w0]
        wait_for(lambda: s.info()["reloads"] == before["reloads"] + 2, 5,
                 "the SIGUSR2 reload finished and counted")
        # A full reload replaces both kinds.
        r = s.cmd("reload", timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr)
        m = s.info()
        assert not ({w["pid"] for w in workers(m)} & {w["pid"] for w in w0})
        assert not ({w["pid"] for w in workers(m, "task")} & {w["pid"] for w in workers(k, "task")})
        assert s.get("/")[0] == 200
        s.stop()


if __name__ == "__main__":
    run([test_reload_no_drop_process_mode, test_reload_no_drop_process_mode_2_workers,
         test_reload_no_drop_base_mode, test_reload_with_broken_app_keeps_old_workers,
         test_sigusr1_reloads, test_reload_tasks_only])
