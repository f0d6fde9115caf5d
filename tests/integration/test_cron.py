"""Black-box tests of [[cron]] jobs run by the timer process, through the demo's demo_cron_tick
(GET /cron counts its runs) and `srv info --json` ("cron" jobs): interval runs and their rate,
immediate, crontab schedules (next due time), bad definitions, and the timer process surviving a
kill -9 and a reload. The demo job is fast, so overrun skipping is not exercised here."""
import datetime
import os
import signal
import subprocess
import time

from srvtest import SLOW, SRV, Server, running, run, wait_for


def cron_job(name, handler="demo_cron_tick", **keys):
    lines = ["", "[[cron]]", f'name = "{name}"', f'handler = "{handler}"']
    for k, v in keys.items():
        lines.append(f"{k} = {Server._val(v)}")
    return "\n".join(lines) + "\n"


def runs(s):
    st, _, body = s.get("/cron")
    assert st == 200, (st, body)
    return int(body)


def jobs(s):
    """The cron jobs of srv info by name; waits for the timer process to publish them."""
    def get():
        c = s.info()["cron"]
        # Before the timer process's first publication this reads "[]" rather than
        # {"jobs": []} (reported); wait it out.
        return {j["name"]: j for j in c["jobs"]} if isinstance(c, dict) else None
    return wait_for(get, 5, "cron jobs in srv info")


def timer_pid(info):
    t = [w for w in info["workers"] if w["type"] == "timer"]
    assert len(t) == 1, info["workers"]
    return t[0]["pid"]


def test_interval_runs():
    """interval_ms = 250: runs at that rate (not faster, not much slower), no skips."""
    with running(Server(extra=cron_job("tick", interval_ms=250))) as s:
        wait_for(lambda: runs(s) >= 1, 5, "the first run")
        c0, t0 = runs(s), time.monotonic()
        wait_for(lambda: runs(s) >= c0 + 6, 6, "6 more runs")
        c1, t1 = runs(s), time.monotonic()
        # c1 - c0 runs happened in (t1 - t0) plus at most one interval of slack at each end.
        assert (c1 - c0 - 1) * 0.25 <= (t1 - t0) + 0.1, (c1 - c0, t1 - t0)
        # Over a fixed window the count stays near window / interval.
        c2, t2 = runs(s), time.monotonic()
        time.sleep(1.0)  # a measurement window, not synchronisation
        c3, t3 = runs(s), time.monotonic()
        assert c3 - c2 <= (t3 - t2) / 0.25 + 2, (c3 - c2, t3 - t2)
        assert c3 - c2 >= 2, (c3 - c2, t3 - t2)
        j = wait_for(lambda: (lambda js: js if js["tick"]["runs"] >= c3 else None)(jobs(s)), 5,
                     "srv info to count the runs")["tick"]
        assert j["kind"] == "interval" and j["interval_ms"] == 250, j
        assert j["skips"] == 0 and j["stopped"] is False, j
        assert abs(j["last_start_ms"] / 1000 - time.time()) < 5 * SLOW, j


def test_immediate():
    """immediate = true runs once at start; without it the first run waits a whole interval."""
    extra = (cron_job("now", interval_ms=60000, immediate=True) +
             cron_job("later", interval_ms=60000))
    with running(Server(extra=extra)) as s:
        wait_for(lambda: runs(s) == 1, 5, "the immediate run")
        j = wait_for(lambda: (lambda js: js if js["now"]["runs"] == 1 else None)(jobs(s)), 5,
                     "srv info to show the immediate run")
        assert j["later"]["runs"] == 0, j
        now_ms = time.time() * 1000
        assert 50000 < j["later"]["next_due_ms"] - now_ms <= 60000 + 1000, j["later"]
        assert 50000 < j["now"]["next_due_ms"] - now_ms <= 60000 + 1000, j["now"]
        time.sleep(0.5)  # a window in which nothing else may run
        assert runs(s) == 1


def test_schedule():
    """A crontab schedule: kind "cron", next due at the next matching minute."""
    extra = cron_job("every5", schedule="*/5 * * * *") + cron_job("daily", schedule="30 4 * * *")
    with running(Server(extra=extra)) as s:
        now = time.time()  # before the answer: a slot boundary may pass while it is made
        j = jobs(s)
        assert set(j) == {"every5", "daily"}, j
        for name, period in (("every5", 300), ("daily", 86400)):
            assert j[name]["kind"] == "cron", j[name]
            due = j[name]["next_due_ms"] / 1000
            # (a run due right now that the timer process has not started yet shows as due)
            assert now - 2 * SLOW < due <= now + period + 1, (name, due, now)
            t = datetime.datetime.fromtimestamp(due)  # local time, as crontab reads it
            assert t.second == 0 and t.microsecond == 0, (name, t)
            if name == "every5":
                assert t.minute % 5 == 0, t
            else:
                assert (t.hour, t.minute) == (4, 30), t
        assert j["daily"]["runs"] == 0


def test_bad_definitions():
    """srv check rejects bad cron entries with a message naming the key."""
    cases = [
        (cron_job("x", schedule="* * *"), "schedule"),
        (cron_job("x", interval_ms=100, schedule="* * * * *"), "exclusive"),
        (cron_job("x"), "interval_ms"),
        (cron_job("x", interval_ms=100) + cron_job("x", interval_ms=200), "duplicate"),
    ]
    for extra, word in cases:
        s = Server(extra=extra)
        try:
            r = s.cmd("check", timeout=20)
            assert r.returncode != 0, (extra, r.stdout, r.stderr)
            assert word in r.stderr, (extra, word, r.stderr)
        finally:
            s.cleanup()


def test_schedule_out_of_range():
    """A schedule with a value out of range: start fails saying which field; srv check should
    say so too (it only counts the fields today: reported)."""
    s = Server(extra=cron_job("x", schedule="61 * * * *"))
    try:
        r = subprocess.run([SRV, "start", "-c", s.config], capture_output=True, text=True,
                           timeout=30 * SLOW)
        assert r.returncode != 0, (r.stdout, r.stderr)
        assert "field 1 (minute): 61 is out of range 0-59" in r.stderr, r.stderr
        r = s.cmd("check", timeout=20)
        assert r.returncode != 0 and "61" in r.stderr, (r.returncode, r.stdout, r.stderr)
    finally:
        s.cleanup()


def test_unknown_handler():
    """A handler the app does not export: the server does not start (or says why)."""
    s = Server(extra=cron_job("x", handler="no_such_handler", interval_ms=100))
    try:
        r = s.cmd("start", "-d", timeout=30)
        assert r.returncode != 0, (r.stdout, r.stderr, s.log())
        assert "no_such_handler" in r.stderr + s.log(), (r.stderr, s.log())
    finally:
        s.cleanup()


def test_timer_process_killed():
    """kill -9 of the timer process: a new one starts and the job keeps running."""
    with running(Server(extra=cron_job("tick", interval_ms=100))) as s:
        wait_for(lambda: runs(s) >= 2, 5, "runs")
        old = timer_pid(s.info())
        os.kill(old, signal.SIGKILL)
        info = wait_for(lambda: (lambda i: i if timer_pid(i) not in (0, old) and
                                 all(w["state"] == "ready" for w in i["workers"]) else None)(
            s.info()), 10, "a new timer process")
        t = [w for w in info["workers"] if w["type"] == "timer"][0]
        assert t["respawns"] == 1, t
        c = runs(s)
        wait_for(lambda: runs(s) >= c + 3, 5, "runs after the respawn")


def test_reload_keeps_cron():
    """srv reload replaces the timer process; the job goes on, the count is kept."""
    with running(Server(extra=cron_job("tick", interval_ms=100))) as s:
        wait_for(lambda: runs(s) >= 2, 5, "runs")
        old = timer_pid(s.info())
        r = s.cmd("reload")
        assert r.returncode == 0 and r.stdout == "reloaded\n", (r.returncode, r.stderr)
        new = timer_pid(s.info())
        assert new not in (0, old), (old, new)
        c = runs(s)
        assert c >= 2
        wait_for(lambda: runs(s) >= c + 3, 5, "runs after the reload")


def test_stop_with_cron():
    """srv stop with a frequent job stops the whole tree promptly."""
    s = Server(extra=cron_job("tick", interval_ms=20, immediate=True))
    with running(s):
        wait_for(lambda: runs(s) >= 3, 5, "runs")
        t0 = time.monotonic()
        s.stop()
        assert time.monotonic() - t0 < 5 * SLOW


if __name__ == "__main__":
    run([test_interval_runs, test_immediate, test_schedule, test_bad_definitions,
         test_schedule_out_of_range,
         test_unknown_handler, test_timer_process_killed, test_reload_keeps_cron,
         test_stop_with_cron])
