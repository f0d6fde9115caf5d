"""Process model, black-box: daemon start (pid file, lock, log), graceful stop with in-flight
work and its max_wait_time bound, SIGTERM/SIGINT, the control socket, worker respawn, max_request
recycling, no orphans after SIGKILL of the master, and log reopening on SIGRTMIN."""
import fcntl
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import threading
import time

from srvtest import (DEMO, SLOW, SRV, Fatal, Server, children_of, pid_alive, run, running,
                     wait_for)

LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \[(error|warn|notice|info|debug)\] "
                  r"([a-z]+)(?:#\d+)?\[(\d+)\] ")


def start_daemon(s):
    """srv start -d with its output in files (not pipes, see test_daemon_detaches_from_caller)."""
    out = os.path.join(s.dir, "start.out")
    with open(out, "w") as f:
        t0 = time.monotonic()
        rc = subprocess.run([SRV, "start", "-d", "-c", s.config], stdout=f, stderr=f,
                            timeout=30 * SLOW).returncode
        took = time.monotonic() - t0
    with open(out) as f:
        text = f.read()
    assert rc == 0, (rc, text, s.log())
    return took, text


def tree(info):
    return {info["pid"], info["manager_pid"]} | {w["pid"] for w in info["workers"] if w["pid"]}


def log_lines(s):
    return [l for l in s.log().splitlines() if l.strip()]


class Getter(threading.Thread):
    """One GET in the background; records status/body or the exception, and when it ended."""

    def __init__(self, s, path, timeout=30):
        super().__init__(daemon=True)
        self.s, self.path, self.timeout = s, path, timeout
        self.status = self.body = self.error = self.done_at = None

    def run(self):
        c = self.s.conn(timeout=self.timeout)
        try:
            c.request("GET", self.path)
            r = c.getresponse()
            self.status, self.body = r.status, r.read()
        except Exception as e:  # recorded for the test to judge
            self.error = e
        finally:
            self.done_at = time.monotonic()
            c.close()


def test_daemon_start_pidfile_lock_and_log():
    s = Server(name="life-daemon")
    try:
        took, out = start_daemon(s)
        # -d returns once the server is ready: it answers at once, no polling needed.
        assert s.get("/")[0] == 200
        info = s.wait_ready()
        assert s.master_pid() == info["pid"], (s.master_pid(), info["pid"])
        master = info["pid"]
        # Detached: not our child, its own session.
        with open(f"/proc/{master}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # After the ")": state, ppid, pgrp, session, ... (proc(5)). A daemon leads its own
        # session (setsid) and that session is not ours.
        assert int(fields[1]) != os.getpid()
        sid = int(fields[3])
        assert sid == master or sid == int(fields[2]), fields[:4]
        assert sid != os.getsid(0), "daemon still in the caller's session"
        # The pid file is locked by the running server (flock or fcntl lock, either will do).
        fd = os.open(s.pid_file, os.O_RDWR)
        locked = False
        try:
            for lock, unlock in ((fcntl.flock, fcntl.flock), (fcntl.lockf, fcntl.lockf)):
                try:
                    lock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    unlock(fd, fcntl.LOCK_UN)
                except OSError:
                    locked = True
        finally:
            os.close(fd)
        assert locked, "pid file is not locked while the server runs"
        # stdout/stderr of the master go to the log file.
        for n in (1, 2):
            assert os.readlink(f"/proc/{master}/fd/{n}") == s.log_file, n
        lines = log_lines(s)
        assert any("ready" in l for l in lines), lines
        for l in lines:
            m = LINE.match(l)
            assert m, f"log line without timestamp/level/role[pid]: {l!r}"
            role, pid = m.group(3), int(m.group(4))
            if role == "master":
                assert pid == master, l
            if role == "manager":
                assert pid == info["manager_pid"], l
        s.stop()
        assert not pid_alive(master)
        assert not os.path.exists(s.pid_file + ".sock")
    finally:
        s.cleanup()


def test_daemon_detaches_from_caller_pipes():
    """`srv start -d | cat` must finish: no process of the daemon keeps the caller's stdout or
    stderr open (they go to the log file)."""
    s = Server(name="life-pipes")
    p = subprocess.Popen([SRV, "start", "-d", "-c", s.config], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        try:
            p.communicate(timeout=15 * SLOW)
        except subprocess.TimeoutExpired:
            p.kill()
            info = s.wait_ready()
            holders = []
            for pid in sorted(tree(info)):
                for n in (1, 2):
                    try:
                        target = os.readlink(f"/proc/{pid}/fd/{n}")
                    except OSError:
                        continue
                    if target.startswith("pipe:"):
                        holders.append((pid, n, target))
            raise AssertionError(f"srv start -d never closed the caller's pipes; held by "
                                 f"(pid, fd, target): {holders}")
        assert p.returncode == 0, p.returncode
        info = s.wait_ready()
        for pid in tree(info):
            for n in (1, 2):
                target = os.readlink(f"/proc/{pid}/fd/{n}")
                assert target in (s.log_file, "/dev/null"), (pid, n, target)
        s.stop()
    finally:
        s.cleanup()


def test_stop_lets_inflight_request_finish():
    with running(Server(name="life-inflight", server={"max_wait_time": 3})) as s:
        before = s.info()
        g = Getter(s, "/sleep?ms=1500")
        t0 = time.monotonic()
        g.start()
        wait_for(lambda: s.info()["accepted"] > before["accepted"], 5, "request accepted")
        r = s.stop()
        stopped = time.monotonic()
        g.join(10 * SLOW)
        assert not g.is_alive()
        assert g.error is None, g.error
        assert g.status == 200 and g.body == b"slept 1500 ms\n", (g.status, g.body)
        assert g.done_at - t0 >= 1.4, "the request did not sleep"
        # stop was issued while the request was in flight and returned only after it.
        assert stopped >= g.done_at - 0.05, (stopped, g.done_at)
        assert r.returncode == 0
        for p in s.known_pids:
            assert not pid_alive(p), f"pid {p} alive after srv stop returned"


def test_stop_bounded_by_max_wait_time():
    with running(Server(name="life-maxwait", server={"max_wait_time": 1})) as s:
        g = Getter(s, "/sleep?ms=10000")
        g.start()
        wait_for(lambda: s.info()["accepted"] >= 1, 5, "request accepted")
        t0 = time.monotonic()
        r = s.cmd("stop", timeout=30)
        took = time.monotonic() - t0
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert took < 1 + 4 * SLOW, f"srv stop took {took:.1f}s with max_wait_time = 1"
        s.proc.wait(5 * SLOW)
        for p in s.known_pids:
            assert not pid_alive(p), f"pid {p} alive after srv stop returned"
        g.join(10 * SLOW)
        assert g.status != 200, "the 10 s request completed although it was killed"


def signal_stop(sig):
    with running(Server(name=f"life-sig{sig}")) as s:
        info = s.info()
        g = Getter(s, "/sleep?ms=800")
        g.start()
        wait_for(lambda: s.info()["accepted"] >= 1, 5, "request accepted")
        s.proc.send_signal(sig)
        rc = s.proc.wait(20 * SLOW)
        assert rc == 0, f"srv exited {rc} on signal {sig}"
        g.join(10 * SLOW)
        assert g.status == 200, (g.status, g.error)
        wait_for(lambda: not any(pid_alive(p) for p in tree(info)), 5, "tree gone")
        assert not os.path.exists(s.pid_file + ".sock")
        assert "stopping" in s.log() or "stopped" in s.log(), s.log()


def test_sigterm_graceful():
    signal_stop(signal.SIGTERM)


def test_sigint_graceful():
    signal_stop(signal.SIGINT)


def test_control_socket_mode_and_removal():
    with running(Server(name="life-ctl")) as s:
        sock = s.pid_file + ".sock"
        st = os.stat(sock)
        assert stat.S_ISSOCK(st.st_mode), oct(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        s.stop()
        assert not os.path.exists(sock), "control socket left after stop"
        assert not os.path.exists(s.pid_file), "pid file left after stop"


def test_worker_killed_is_respawned():
    with running(Server(name="life-respawn", server={"worker_num": 2})) as s:
        info = s.info()
        victim = next(w for w in info["workers"] if w["type"] == "worker" and w["id"] == 0)
        other = next(w for w in info["workers"] if w["type"] == "worker" and w["id"] == 1)
        os.kill(victim["pid"], signal.SIGKILL)

        def replaced():
            j = s.info()
            w = next(w for w in j["workers"] if w["type"] == "worker" and w["id"] == 0)
            return j if w["pid"] != victim["pid"] and w["pid"] and w["state"] == "ready" else None

        j = wait_for(replaced, 10, "worker #0 respawned")
        w0 = next(w for w in j["workers"] if w["type"] == "worker" and w["id"] == 0)
        w1 = next(w for w in j["workers"] if w["type"] == "worker" and w["id"] == 1)
        assert pid_alive(w0["pid"])
        assert w0["respawns"] == victim["respawns"] + 1, (victim, w0)
        assert w1["pid"] == other["pid"] and w1["respawns"] == 0, (other, w1)
        warn = [l for l in log_lines(s) if "[warn]" in l and "respawn" in l]
        assert warn, s.log()
        assert str(victim["pid"]) in warn[0], warn
        for _ in range(6):
            assert s.get("/")[0] == 200
        s.stop()


def test_worker_dying_at_startup_backs_off():
    """A worker that cannot start (the app on disk is broken) is respawned with a growing delay
    and a warn line each time; the other worker goes on serving; a good app brings it back."""
    s = Server(name="life-backoff", server={"worker_num": 2})
    app = os.path.join(s.dir, "app.so")
    shutil.copyfile(s.server["app"], app)
    s.server["app"] = app
    s.write_config()
    with running(s):
        info = s.info()
        victim = next(w for w in info["workers"] if w["type"] == "worker" and w["id"] == 0)
        with open(app + ".new", "wb") as f:
            f.write(b"not an ELF file at all\n" * 8)
        os.rename(app + ".new", app)
        os.kill(victim["pid"], signal.SIGKILL)
        delays = re.compile(r"\[warn\] manager\[\d+\] .*worker #0 .*before it was ready.*"
                            r"respawning in (\d+) ms")

        def backing_off():
            found = [int(m.group(1)) for m in map(delays.search, log_lines(s)) if m]
            return found if len(found) >= 3 else None

        found = wait_for(backing_off, 15, "three failed start-ups of worker #0 in the log")
        assert found[:3] == sorted(found[:3]) and found[2] > found[0], \
            f"respawn delays do not grow: {found}"
        w0 = next(w for w in s.info()["workers"] if w["type"] == "worker" and w["id"] == 0)
        assert w0["respawns"] >= 3, w0
        # The healthy worker keeps answering meanwhile.
        for _ in range(4):
            status, _, body = s.get("/")
            assert status == 200 and body == b"Hello, World!", (status, body)
        shutil.copyfile(DEMO, app + ".new")
        os.rename(app + ".new", app)

        def back():
            w = next(w for w in s.info()["workers"] if w["type"] == "worker" and w["id"] == 0)
            return w if w["state"] == "ready" and w["pid"] and pid_alive(w["pid"]) else None

        wait_for(back, 20, "worker #0 ready again with a good app")
        for _ in range(4):
            assert s.get("/")[0] == 200
        s.stop()


def test_max_request_recycles_workers():
    # A worker that reached max_request serves on until its replacement is ready (no gap in
    # capacity), so how many requests it takes past max_request is start-up time times request
    # rate: with back-to-back requests on epoll under ASan that was 30 more, and a fixed
    # budget of 100 requests then held fewer than three recycles. So: ask until three workers
    # were recycled (with 2 slots, one of them a replacement), and check what max_request
    # promises: nobody is retired early, the successor takes over for good, nothing fails.
    with running(Server(name="life-maxreq", server={"worker_num": 2, "max_request": 20,
                                                     "max_request_grace": 0})) as s:
        first = {w["pid"] for w in s.info()["workers"]}
        served = []  # (slot, pid) per answer, in order
        failures = []

        def three_recycles():
            if len(served) >= 2000:
                raise Fatal(f"2000 requests and still {s.info()['workers']}")
            for _ in range(10):
                try:
                    status, _, body = s.get("/worker")
                    if status != 200:
                        failures.append((len(served), status, body))
                        continue
                    w = json.loads(body)
                    served.append((w["id"], w["pid"]))
                except Exception as e:
                    failures.append((len(served), repr(e)))
            j = s.info()
            return j if sum(w["recycles"] for w in j["workers"]) >= 3 else None

        j = wait_for(three_recycles, 30, "three workers recycled")
        assert not failures, failures[:5]
        assert all(w["respawns"] == 0 for w in j["workers"]), j["workers"]
        # Per slot, in order of answers: a successor, once it answered, is the only one that
        # does (the reactor sends it every new request), and each one retired served at
        # least max_request requests.
        for slot in (0, 1):
            order = []
            for sl, pid in served:
                if sl != slot:
                    continue
                if pid in order and pid != order[-1]:
                    raise AssertionError(f"slot {slot}: pid {pid} answered after its successor "
                                         f"{order[-1]}")
                if pid not in order:
                    order.append(pid)
            for pid in order[:-1]:
                n = sum(1 for _, p in served if p == pid)
                assert n >= 20, f"slot {slot}: pid {pid} retired after {n} requests"
        now = {w["pid"] for w in j["workers"]}
        assert not (now & first), f"worker pids not recycled: before {first}, after {now}"
        retired = {p for _, p in served} - now
        wait_for(lambda: not any(pid_alive(p) for p in retired), 10, "retired workers exited")
        # The replacements are ready, and srv info says so.
        wait_for(lambda: all(w["state"] == "ready" for w in s.info()["workers"]), 5,
                 "recycled workers shown ready in srv info")
        assert all(s.get("/")[0] == 200 for _ in range(4))
        s.stop()


def test_max_request_reached_while_predecessor_drains():
    """Issue 11: a replacement that reached max_request while the process it replaced was still
    finishing a long request asked to be recycled in vain (the manager dropped the request while
    the slot's old process was alive) and then served forever. Process and base modes."""
    for mode in ("process", "base"):
        srv = Server(name=f"life-maxreq-drain-{mode}",
                     server={"mode": mode, "worker_num": 1, "max_request": 3,
                             "max_request_grace": 0, "max_wait_time": 30})
        with running(srv) as s:
            def slot0():
                return next(w for w in s.info()["workers"] if w["type"] == "worker")

            first = slot0()["pid"]
            for _ in range(2):
                assert s.get("/")[0] == 200
            # The third request reaches max_request and keeps the old worker busy meanwhile.
            slow = {}
            path = f"/sleep?ms={int(1500 * SLOW)}"
            t = threading.Thread(target=lambda: slow.update(r=s.get(path)))
            t.start()
            try:
                second = wait_for(lambda: (lambda w: w["pid"] if w["pid"] != first and
                                           w["state"] == "ready" else None)(slot0()),
                                  10, f"[{mode}] a replacement ready")
                for _ in range(3):
                    status, _, body = s.get("/worker")
                    assert status == 200 and json.loads(body)["pid"] == second, (mode, body)
                assert pid_alive(first), f"[{mode}] the old worker left too early for this test"
            finally:
                t.join()
            assert slow.get("r", (None,))[0] == 200, (mode, slow)
            third = wait_for(lambda: (lambda w: w if w["pid"] not in (first, second) and
                                      w["state"] == "ready" else None)(slot0()),
                             10, f"[{mode}] the replacement recycled in turn")
            assert third["recycles"] == 2 and third["respawns"] == 0, (mode, third)
            assert s.get("/")[0] == 200
            s.stop()


def test_master_sigkill_leaves_no_orphans():
    for mode in ("process", "base"):
        s = Server(name=f"life-kill9-{mode}", server={"mode": mode, "task_worker_num": 1})
        try:
            s.start()
            assert s.get("/")[0] == 200
            info = s.info()
            pids = tree(info) | children_of([info["pid"]])
            assert len(pids) >= 5, (mode, pids)  # master, manager, 2 workers, 1 task worker
            os.kill(info["pid"], signal.SIGKILL)
            s.proc.wait(5 * SLOW)
            wait_for(lambda: not any(pid_alive(p) for p in pids), 10,
                     f"{mode} mode: manager and workers gone after SIGKILL of the master "
                     f"({sorted(pids)})")
        finally:
            s.cleanup()


def test_log_reopen_on_sigrtmin():
    with running(Server(name="life-logrotate", server={"log_level": "debug"})) as s:
        info = s.info()
        rotated = s.log_file + ".1"
        os.rename(s.log_file, rotated)
        os.kill(info["pid"], signal.SIGRTMIN)
        wait_for(lambda: os.path.exists(s.log_file), 10, "new log file after SIGRTMIN")
        assert s.get("/")[0] == 200
        r = s.cmd("reload")
        assert r.returncode == 0, (r.returncode, r.stderr)

        def roles():
            with open(s.log_file) as f:
                found = {m.group(3) for m in map(LINE.match, f.read().splitlines()) if m}
            return found if {"manager", "worker"} <= found else None

        try:
            wait_for(roles, 10, "lines from manager and workers in the new log file")
        except AssertionError:
            with open(s.log_file) as f:
                raise AssertionError("new log file after SIGRTMIN + reload:\n" + f.read())
        s.stop()
        with open(s.log_file) as f:
            text = f.read()
        # The master's own lines (it logs the stop) land in the new file too.
        assert re.search(rf"master\[{info['pid']}\] .*stopped", text), text
        with open(rotated) as f:
            assert "stopped" not in f.read(), "the master kept writing to the rotated file"


def test_log_to_stderr_when_no_log_file():
    with running(Server(name="life-stderr", server={"log_file": ""})) as s:
        s.stop()
        with open(os.path.join(s.dir, "stdout")) as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
        assert lines, "nothing logged on stderr"
        ours = [l for l in lines if LINE.match(l)]
        assert any("ready" in l for l in ours), lines
        assert {LINE.match(l).group(3) for l in ours} >= {"master", "manager"}, lines


if __name__ == "__main__":
    run([test_daemon_start_pidfile_lock_and_log, test_daemon_detaches_from_caller_pipes,
         test_stop_lets_inflight_request_finish, test_stop_bounded_by_max_wait_time,
         test_sigterm_graceful, test_sigint_graceful, test_control_socket_mode_and_removal,
         test_worker_killed_is_respawned, test_worker_dying_at_startup_backs_off,
         test_max_request_recycles_workers, test_max_request_reached_while_predecessor_drains,
         test_master_sigkill_leaves_no_orphans, test_log_reopen_on_sigrtmin,
         test_log_to_stderr_when_no_log_file])
