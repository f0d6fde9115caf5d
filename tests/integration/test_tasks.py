"""Black-box tests of task workers and worker timers through the demo app: synchronous and
asynchronous delivery, the wait timeout, the bounded queue, retries after a failing task or a
task worker killed mid-task, `srv reload --tasks`, the task counters of `srv info`, and /after."""
import os
import re
import signal
import threading
import time

from srvtest import SLOW, Server, running, run, wait_for

DONE = re.compile(rb"^task (\d+) done by task worker (\d+) \(attempt (\d+)\)$")


def task_pids(info):
    return [w["pid"] for w in info["workers"] if w["type"] == "task"]


def worker_pids(info):
    return [w["pid"] for w in info["workers"] if w["type"] == "worker"]


def tasks(s):
    """The task counters of srv info, but for "delivered" (checked by test_metrics.py)."""
    t = dict(s.info()["tasks"])
    t.pop("delivered", None)
    return t


def sleeping(pid):
    """True while the process is inside nanosleep: the demo's on_task sleeping in a task."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            nr = f.read().split()[0]
    except (OSError, IndexError):
        return False
    return nr in ("35", "230")  # x86_64 nanosleep, clock_nanosleep


class Background:
    """One GET in a thread; .result is (status, headers, body) or the exception."""

    def __init__(self, s, path):
        self.result = None
        self.t0 = time.monotonic()
        self.elapsed = None

        def go():
            try:
                self.result = s.get(path)
            except Exception as e:  # reported by join()
                self.result = e
            self.elapsed = time.monotonic() - self.t0

        self.t = threading.Thread(target=go, daemon=True)
        self.t.start()

    def join(self, timeout=30):
        self.t.join(timeout * SLOW)
        assert not self.t.is_alive(), "request did not finish"
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def test_sync_task():
    """A task delivered and waited for answers its result; ids grow; both task workers serve."""
    with running(Server(server={"task_worker_num": 2})) as s:
        st, _, body = s.get("/task?ms=20")
        assert st == 200, (st, body)
        m = DONE.match(body)
        assert m and m.group(3) == b"1", body
        first = int(m.group(1))
        assert first > 0
        st, _, body = s.get("/task?ms=0")
        m = DONE.match(body)
        assert st == 200 and m, body
        assert int(m.group(1)) > first, body
        # Four 600 ms tasks at once on two task workers: two rounds, not one, not four.
        t0 = time.monotonic()
        bg = [Background(s, "/task?ms=600") for _ in range(4)]
        bodies = [b.join() for b in bg]
        took = time.monotonic() - t0
        assert all(r[0] == 200 for r in bodies), bodies
        ids = {DONE.match(r[2]).group(1) for r in bodies}
        assert len(ids) == 4, bodies
        used = {DONE.match(r[2]).group(2) for r in bodies}
        assert used == {b"0", b"1"}, bodies
        assert 1.1 <= took < 6 * SLOW, took
        info = s.info()
        assert info["tasks"]["done"] == 6, info["tasks"]
        assert info["tasks"]["queued"] == 0 and info["tasks"]["failed"] == 0, info["tasks"]
        assert sum(w["requests"] for w in info["workers"] if w["type"] == "task") == 6, info


def test_idle_task_worker_takes_queued_task():
    """Two tasks delivered at once by two workers while both task workers are idle run in
    parallel, on different task workers: a task never waits while a task worker idles."""
    with running(Server(server={"task_worker_num": 2, "dispatch_mode": 3})) as s:
        tpids = task_pids(s.info())
        for i in range(10):
            bg = [Background(s, "/task?ms=400") for _ in range(2)]
            r = [b.join() for b in bg]
            assert all(x[0] == 200 for x in r), r
            used = sorted(DONE.match(x[2]).group(2) for x in r)
            assert used == [b"0", b"1"], (i, [x[2] for x in r])
            wait_for(lambda: not any(sleeping(p) for p in tpids), 5, "task workers idle")


def test_async_finish():
    """/task/async answers the id at once; on_finish runs for each (the finished counter)."""
    with running(Server(server={"task_worker_num": 2})) as s:
        ids = []
        for _ in range(6):
            st, _, body = s.get("/task/async")
            assert st == 200, (st, body)
            ids.append(int(body))
        assert all(i > 0 for i in ids) and len(set(ids)) == 6, ids
        wait_for(lambda: s.get("/task/finished")[2] == b"6\n", 10, "6 tasks finished")
        wait_for(lambda: tasks(s)["done"] == 6, 5, "6 tasks done in srv info")
        assert tasks(s)["failed"] == 0
        # No extra on_finish calls later.
        time.sleep(0.2)  # not synchronisation: a window in which nothing must change
        assert s.get("/task/finished")[2] == b"6\n"


def test_wait_timeout():
    """srv_task_wait gives up after its timeout (504); the task still runs to its end."""
    with running(Server(server={"task_worker_num": 1})) as s:
        t0 = time.monotonic()
        st, _, body = s.get("/task?ms=3000&timeout=200")
        took = time.monotonic() - t0
        assert st == 504, (st, body)
        assert re.match(rb"^task \d+: Connection timed out\n$", body), body
        assert 0.15 <= took < 2 * SLOW, took
        # The worker is free again: other requests are served while the task runs.
        assert s.get("/")[2] == b"Hello, World!"
        wait_for(lambda: tasks(s)["done"] == 1, 10, "the abandoned task to finish")
        st, _, body = s.get("/task?ms=10")
        assert st == 200 and DONE.match(body), (st, body)


def test_no_task_workers():
    """Without task workers delivery fails with -ENOTSUP."""
    with running(Server()) as s:
        st, _, body = s.get("/task?ms=10")
        assert st == 500, (st, body)
        assert body == b"deliver failed: Operation not supported\n", body


def test_queue_full():
    """task_max_queue = 2: with the only task worker busy, the third queued task is refused."""
    # dispatch_mode 3 (least busy): requests avoid the worker blocked in srv_task_wait.
    with running(Server(server={"task_worker_num": 1, "task_max_queue": 2,
                                "dispatch_mode": 3})) as s:
        tpid = task_pids(s.info())[0]
        busy = Background(s, "/task?ms=2000")
        wait_for(lambda: sleeping(tpid), 5, "the task worker to run the first task")
        assert tasks(s)["queued"] == 0
        for _ in range(2):
            st, _, body = s.get("/task/async")
            assert st == 200 and int(body) > 0, (st, body)
        assert tasks(s)["queued"] == 2
        st, _, body = s.get("/task?ms=10")
        assert st == 503, (st, body)
        assert body == b"deliver failed: Resource temporarily unavailable\n", body
        st, _, body = s.get("/task/async")
        assert st == 503 and body == b"-11\n", (st, body)
        st, _, body = busy.join()
        assert st == 200 and DONE.match(body), (st, body)
        wait_for(lambda: tasks(s)["queued"] == 0, 10, "the queue to drain")
        wait_for(lambda: s.get("/task/finished")[2] == b"2\n", 10, "both async tasks finished")
        st, _, body = s.get("/task?ms=10")
        assert st == 200 and DONE.match(body), (st, body)
        t = tasks(s)
        assert t["done"] == 4 and t["failed"] == 0, t


def test_queue_depth_in_info():
    """srv info shows the tasks waiting in the queue while the task worker is busy."""
    with running(Server(server={"task_worker_num": 1, "dispatch_mode": 3})) as s:
        tpid = task_pids(s.info())[0]
        busy = Background(s, "/task?ms=1500")
        wait_for(lambda: sleeping(tpid), 5, "the task worker to be busy")
        for _ in range(3):
            assert s.get("/task/async")[0] == 200
        assert tasks(s)["queued"] == 3, tasks(s)
        assert busy.join()[0] == 200
        wait_for(lambda: tasks(s) == {"queued": 0, "done": 4, "failed": 0, "retried": 0}, 10,
                 "the queue to drain")


def test_failing_task_retries():
    """A task that always fails runs `tries` times, then the waiter gets -EIO."""
    with running(Server(server={"task_worker_num": 2})) as s:
        st, _, body = s.get("/task/fail?tries=3")
        assert (st, body) == (200, b"-5\n"), (st, body)
        t = tasks(s)
        assert t == {"queued": 0, "done": 0, "failed": 1, "retried": 2}, t
        st, _, body = s.get("/task/fail?tries=1")
        assert (st, body) == (200, b"-5\n"), (st, body)
        t = tasks(s)
        assert t == {"queued": 0, "done": 0, "failed": 2, "retried": 2}, t


def kill_task_worker_mid_task(tries):
    s = Server(server={"task_worker_num": 1})
    with running(s):
        info = s.info()
        tpid = task_pids(info)[0]
        bg = Background(s, f"/task?ms=3000&tries={tries}")
        wait_for(lambda: sleeping(tpid), 5, "the task worker to run the task")
        os.kill(tpid, signal.SIGKILL)
        st, _, body = bg.join()
        info = wait_for(lambda: (lambda i: i if all(w["state"] == "ready" for w in i["workers"])
                                 else None)(s.info()), 10, "the task worker respawned")
        new = task_pids(info)[0]
        assert new != tpid and new > 0
        tw = [w for w in info["workers"] if w["type"] == "task"][0]
        assert tw["respawns"] == 1, tw
        return st, body, {k: v for k, v in info["tasks"].items() if k != "delivered"}, bg.elapsed


def test_killed_task_worker_retry():
    """kill -9 of the task worker mid-task: the task runs again on the respawned one."""
    st, body, t, took = kill_task_worker_mid_task(2)
    m = DONE.match(body)
    assert st == 200 and m, (st, body)
    assert m.group(3) == b"2", body
    assert t == {"queued": 0, "done": 1, "failed": 0, "retried": 1}, t
    assert took >= 3.0, took  # the second attempt slept its whole 3 s


def test_killed_task_worker_no_tries_left():
    """kill -9 of the task worker mid-task with tries = 1: the waiter gets -EIO."""
    st, body, t, took = kill_task_worker_mid_task(1)
    assert st == 500, (st, body)
    assert re.match(rb"^task \d+: Input/output error\n$", body), body
    assert t == {"queued": 0, "done": 0, "failed": 1, "retried": 0}, t
    assert took < 3.0 * SLOW, took  # answered when the worker died, not after the sleep


def test_reload_tasks():
    """srv reload --tasks replaces only the task workers, each after its current task."""
    with running(Server(server={"task_worker_num": 2})) as s:
        before = s.info()
        tpids = task_pids(before)
        # One busy task worker, one idle: both are replaced, the busy one after its task.
        busy = [Background(s, "/task?ms=1500")]
        wait_for(lambda: any(sleeping(p) for p in tpids), 5, "a task worker busy")
        t0 = time.monotonic()
        r = s.cmd("reload", "--tasks")
        took = time.monotonic() - t0
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert r.stdout == "reloaded\n", r.stdout
        for b in busy:
            st, _, body = b.join()
            m = DONE.match(body)
            assert st == 200 and m and m.group(3) == b"1", (st, body)
        assert took >= 1.0, took  # it waited for the running tasks
        after = s.info()
        assert after["reloads"] == 1
        assert worker_pids(after) == worker_pids(before)
        assert not set(task_pids(after)) & set(tpids), (task_pids(after), tpids)
        t = {k: v for k, v in after["tasks"].items() if k != "delivered"}
        assert t == {"queued": 0, "done": 1, "failed": 0, "retried": 0}, t
        st, _, body = s.get("/task?ms=10")
        assert st == 200 and DONE.match(body), (st, body)
        # The replacements are serving: srv info must say so.
        wait_for(lambda: all(w["state"] == "ready" for w in s.info()["workers"]), 2,
                 "every slot 'ready' in srv info after the reload")


def test_stop_during_task():
    """srv stop while a task runs: the tree is gone within max_wait_time plus a margin."""
    s = Server(server={"task_worker_num": 1, "max_wait_time": 2})
    with running(s):
        tpid = task_pids(s.info())[0]
        bg = Background(s, "/task?ms=20000&timeout=30000")
        wait_for(lambda: sleeping(tpid), 5, "the task worker to run the task")
        t0 = time.monotonic()
        s.stop()
        took = time.monotonic() - t0
        assert took < (2 + 5) * SLOW, took
        bg.t.join(10 * SLOW)
        assert not bg.t.is_alive()
        # The waiter gets no 200: its connection is closed or it answers an error.
        assert isinstance(bg.result, Exception) or bg.result[0] != 200, bg.result


def test_timer_after():
    """GET /after?ms=N answers from a one-shot timer N ms later (a detached response)."""
    with running(Server(server={"worker_num": 1})) as s:
        t0 = time.monotonic()
        st, _, body = s.get("/after?ms=300")
        took = time.monotonic() - t0
        assert (st, body) == (200, b"later\n"), (st, body)
        assert 0.29 <= took < 3 * SLOW, took
        st, _, body = s.get("/after?ms=0")
        assert (st, body) == (200, b"later\n"), (st, body)
        # Timers of one worker run concurrently and in deadline order.
        order = []
        lock = threading.Lock()

        def one(ms):
            r = s.get(f"/after?ms={ms}")
            with lock:
                order.append((ms, r[0], r[2]))

        t0 = time.monotonic()
        ts = [threading.Thread(target=one, args=(ms,)) for ms in (900, 300, 600)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10 * SLOW)
        took = time.monotonic() - t0
        assert [o[0] for o in order] == [300, 600, 900], order
        assert all(o[1:] == (200, b"later\n") for o in order), order
        assert 0.88 <= took < 2.5 * SLOW, took
        # The worker served something else while the timers were pending.
        assert s.get("/")[0] == 200


if __name__ == "__main__":
    run([test_sync_task, test_idle_task_worker_takes_queued_task, test_async_finish, test_wait_timeout, test_no_task_workers,
         test_queue_full, test_queue_depth_in_info, test_failing_task_retries,
         test_killed_task_worker_retry, test_killed_task_worker_no_tries_left, test_reload_tasks,
         test_stop_during_task, test_timer_after])
