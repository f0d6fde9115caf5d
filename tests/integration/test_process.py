"""Black-box tests of [[process]] custom processes through the demo's demo_clock (GET /clock
calls it with srv_process_call): calls and round robin over instances, restart after a kill -9
honouring restart_interval, reload and stop while the process runs, and the failure cases."""
import os
import re
import signal
import subprocess
import threading
import time

from srvtest import SLOW, SRV, Server, pid_alive, running, run, wait_for

CLOCK = re.compile(rb"^clock (\d+): (\d+)\.(\d{3})$")


def clock_process(num=1, restart_interval=1, name="clock", handler="demo_clock"):
    return (f'\n[[process]]\nname = "{name}"\nhandler = "{handler}"\nnum = {num}\n'
            f"restart_interval = {restart_interval}\n")


def procs(info):
    return [w for w in info["workers"] if w["type"] == "process"]


def clock(s):
    st, _, body = s.get("/clock")
    m = CLOCK.match(body)
    assert st == 200 and m, (st, body)
    assert abs(int(m.group(2)) - time.time()) < 5, body
    return int(m.group(1))


def all_ready(s):
    i = s.info()
    return i if all(w["state"] == "ready" for w in i["workers"]) else None


def test_call():
    """srv_process_call reaches the process and returns its reply."""
    with running(Server(extra=clock_process())) as s:
        p = procs(s.info())
        assert len(p) == 1 and p[0]["pid"] > 0 and p[0]["state"] == "ready", p
        for _ in range(5):
            assert clock(s) == 0


def test_instances_round_robin():
    """num = 2: two processes; calls alternate between the instances."""
    with running(Server(extra=clock_process(num=2))) as s:
        p = procs(s.info())
        assert len(p) == 2 and len({x["pid"] for x in p}) == 2, p
        seen = [clock(s) for _ in range(6)]
        assert set(seen) == {0, 1}, seen


def test_no_such_process():
    """Calling a process name that is not configured: -ENOENT at once."""
    with running(Server()) as s:
        t0 = time.monotonic()
        st, _, body = s.get("/clock")
        assert (st, body) == (503, b"clock: No such file or directory\n"), (st, body)
        assert time.monotonic() - t0 < 2 * SLOW


def restart_after_kill(restart_interval):
    with running(Server(extra=clock_process(restart_interval=restart_interval))) as s:
        assert clock(s) == 0
        old = procs(s.info())[0]["pid"]
        t0 = time.monotonic()
        os.kill(old, signal.SIGKILL)
        info = wait_for(lambda: (lambda i: i if i and procs(i)[0]["pid"] not in (0, old)
                                 else None)(all_ready(s)),
                        restart_interval + 10, "the process restarted")
        took = time.monotonic() - t0
        p = procs(info)[0]
        assert p["respawns"] == 1, p
        assert clock(s) == 0
        assert "process clock #" in s.log() and "restarting in" in s.log(), s.log()[-2000:]
        return took


def test_restart_after_crash():
    """kill -9 of the process: restarted after restart_interval = 1, /clock answers again."""
    took = restart_after_kill(1)
    assert 0.8 <= took < 10 * SLOW, took


def test_restart_interval_honoured():
    """restart_interval = 3: the new process does not come before about 3 s."""
    took = restart_after_kill(3)
    assert 2.8 <= took < 13 * SLOW, took


def test_call_during_restart():
    """A call made while the process is down waits in its mailbox for the restarted one."""
    with running(Server(extra=clock_process(restart_interval=1))) as s:
        assert clock(s) == 0
        old = procs(s.info())[0]["pid"]
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: procs(s.info())[0]["pid"] != old, 5, "the slot to see the death")
        t0 = time.monotonic()
        st, _, body = s.get("/clock")
        took = time.monotonic() - t0
        # The demo waits 3 s; the restart takes about 1 s (more under ASan: 503 then).
        if not os.environ.get("SRV_ASAN"):
            assert st == 200 and CLOCK.match(body), (st, body, took)
        else:
            assert (st == 200 and CLOCK.match(body)) or \
                (st, body) == (503, b"clock: Connection timed out\n"), (st, body)
        wait_for(lambda: all_ready(s), 10, "the process restarted")
        assert clock(s) == 0


def test_reload_with_process():
    """srv reload while /clock is in use: the reload completes, the process is replaced, and
    every call is answered."""
    with running(Server(extra=clock_process())) as s:
        old = procs(s.info())[0]["pid"]
        stop = threading.Event()
        answers = []

        def caller():
            c = s.conn(timeout=10)
            while not stop.is_set():
                try:
                    c.request("GET", "/clock")
                    r = c.getresponse()
                    answers.append((r.status, r.read()))
                except Exception as e:
                    answers.append((0, repr(e).encode()))
                    c.close()
                    c = s.conn(timeout=10)
            c.close()

        t = threading.Thread(target=caller, daemon=True)
        t.start()
        wait_for(lambda: len(answers) >= 5, 5, "calls before the reload")
        t0 = time.monotonic()
        r = s.cmd("reload")
        took = time.monotonic() - t0
        n_reload = len(answers)
        wait_for(lambda: len(answers) >= n_reload + 5, 10, "calls after the reload")
        stop.set()
        t.join(15 * SLOW)
        assert not t.is_alive()
        assert r.returncode == 0 and r.stdout == "reloaded\n", (r.returncode, r.stderr)
        assert took < 15 * SLOW, took
        new = procs(s.info())[0]["pid"]
        assert new not in (0, old), (old, new)
        wait_for(lambda: not pid_alive(old), 10, "the old process to exit")
        bad = [a for a in answers if a[0] != 200 or not CLOCK.match(a[1])]
        assert not bad, (len(answers), bad[:5])
        assert clock(s) == 0


def test_stop_with_process():
    """srv stop ends the custom process (it polls srv_process_stopping) promptly."""
    s = Server(extra=clock_process(num=2))
    with running(s):
        pids = [p["pid"] for p in procs(s.info())]
        assert clock(s) in (0, 1)
        t0 = time.monotonic()
        s.stop()
        assert time.monotonic() - t0 < 6 * SLOW
        assert not any(pid_alive(p) for p in pids), pids


def test_unknown_handler():
    """A [[process]] handler the app does not export: the server does not start, and says so."""
    s = Server(extra=clock_process(handler="no_such_entry"))
    try:
        r = subprocess.run([SRV, "start", "-c", s.config], capture_output=True, text=True,
                           timeout=30 * SLOW)
        assert r.returncode != 0, (r.stdout, r.stderr)
        assert "no_such_entry" in r.stderr, r.stderr
    finally:
        s.cleanup()


def test_process_without_pipe():
    """A [[process]] declared with pipe = false runs, but workers cannot write to it."""
    extra = clock_process() + "pipe = false\n"
    with running(Server(extra=extra)) as s:
        assert len(procs(s.info())) == 1
        st, _, body = s.get("/clock")
        assert (st, body) == (503, b"clock: Operation not supported\n"), (st, body)
        s.stop()


if __name__ == "__main__":
    run([test_process_without_pipe, test_call, test_instances_round_robin, test_no_such_process, test_restart_after_crash,
         test_restart_interval_honoured, test_call_during_restart, test_reload_with_process,
         test_stop_with_process, test_unknown_handler])
