"""sd_notify, black-box: the test owns an AF_UNIX datagram socket (a path, or an abstract
"@name"), runs srv with NOTIFY_SOCKET pointing at it and checks what arrives: READY=1 with
MAINPID (the pid file's pid, also with -d) once every worker is ready, STATUS= lines (refreshed),
RELOADING=1 + MONOTONIC_USEC then READY=1 around a reload (valid or refused), STOPPING=1 on stop,
WATCHDOG=1 at half WATCHDOG_USEC (none when WATCHDOG_PID names another process), and no
process of the tree keeps NOTIFY_SOCKET in its environment."""
import contextlib
import os
import signal
import socket
import sys
import threading
import time

from srvtest import SLOW, Server, run, wait_for


class Notify:
    """The service manager's end: every datagram, as (monotonic time, {key: value})."""

    def __init__(self, where, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"srvtest-notify-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(where, "notify.sock")
            self.sock.bind(self.address)
        self.sock.settimeout(0.1)
        self.msgs = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.done.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self.lock:
                self.msgs.append((time.monotonic(), fields))

    def all(self):
        with self.lock:
            return list(self.msgs)

    def wait(self, key, value=None, after=0, what=None):
        """The first message from index after on with key (= value); returns (index, fields)."""
        def found():
            for i, (_, m) in enumerate(self.all()[after:], after):
                if key in m and (value is None or m[key] == value):
                    return i, m
            return None
        return wait_for(found, 20, what or f"{key}={value}")

    def close(self):
        self.done.set()
        self.thread.join()
        self.sock.close()


@contextlib.contextmanager
def environment(**env):
    """os.environ with env set (None: removed) for what srv inherits at start."""
    old = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def cleaned(s):
    """The server s is stopped and checked for leftovers whatever happens (the test starts it)."""
    try:
        yield s
    except BaseException:
        print("---- server log ----\n" + s.log()[-6000:], file=sys.stderr)
        raise
    finally:
        s.cleanup()


def environ_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return [e.decode(errors="replace") for e in f.read().split(b"\0") if e]


def no_notify_env(info):
    pids = [info["pid"], info["manager_pid"]] + [w["pid"] for w in info["workers"] if w["pid"]]
    for pid in pids:
        bad = [e for e in environ_of(pid) if e.startswith(("NOTIFY_SOCKET=", "WATCHDOG_"))]
        assert not bad, f"pid {pid} has {bad}"


def start_notified(s, n, daemon=False, **env):
    with environment(NOTIFY_SOCKET=n.address, **env):
        s.start(daemon=daemon, wait_ready=False)
    i, ready = n.wait("READY", "1", what="READY=1")
    # Sent once every worker was ready: they all are at that point, and a request succeeds.
    info = s.info()
    assert all(w["state"] == "ready" for w in info["workers"]), info["workers"]
    s.remember(info)
    assert s.get("/")[0] == 200
    return i, ready, info


def test_ready_reload_stop():
    s = Server(name="sdnotify", server={"task_worker_num": 1})
    n = Notify(s.dir)
    try:
        with cleaned(s):
            i, ready, info = start_notified(s, n)
            assert int(ready["MAINPID"]) == s.master_pid() == info["pid"], ready
            assert "2 workers, 1 task workers" in ready["STATUS"], ready
            assert not any("RELOADING" in m or "STOPPING" in m for _, m in n.all()[:i])
            no_notify_env(info)

            mark = len(n.all())
            before = time.monotonic() * 1e6
            r = s.cmd("reload")
            assert r.returncode == 0, r.stderr
            j, reloading = n.wait("RELOADING", "1", after=mark)
            usec = int(reloading["MONOTONIC_USEC"])
            assert before - 1e6 <= usec <= time.monotonic() * 1e6 + 1e6, (before, usec)
            k, again = n.wait("READY", "1", after=j + 1)
            assert "STATUS" in again, again
            no_notify_env(s.wait_ready())

            # A reload the server refuses (the file does not load) is over too: READY=1 again.
            # (The srv command would refuse it before asking: ask the control socket directly.)
            good = open(s.config).read()
            with open(s.config, "w") as f:
                f.write(good.replace("[server]\n", "[server]\nhttp_header_max = \"big\"\n", 1))
            mark = len(n.all())
            assert s.ctl_line(b"reload\n").startswith(b"error 3 ")
            j, _ = n.wait("RELOADING", "1", after=mark)
            n.wait("READY", "1", after=j + 1)
            mark = len(n.all())  # SIGUSR1 (refused the same way)
            os.kill(info["pid"], signal.SIGUSR1)
            j, _ = n.wait("RELOADING", "1", after=mark)
            n.wait("READY", "1", after=j + 1)
            with open(s.config, "w") as f:
                f.write(good)
            assert s.get("/")[0] == 200

            mark = len(n.all())
            s.stop()
            n.wait("STOPPING", "1", after=mark)
            assert not any(m.get("WATCHDOG") for _, m in n.all()), "no WATCHDOG_USEC, no pings"
    finally:
        n.close()


def test_watchdog_abstract_base():
    s = Server(name="sdnotify-wd", server={"mode": "base"})
    n = Notify(s.dir, abstract=True)
    try:
        with cleaned(s):
            _, ready, info = start_notified(s, n, WATCHDOG_USEC="200000")
            assert int(ready["MAINPID"]) == s.master_pid(), ready
            no_notify_env(info)
            # About one ping per 100 ms: at least 8 in the next 2 s (bounded), none too close.
            t0 = time.monotonic()
            wait_for(lambda: len([t for t, m in n.all() if "WATCHDOG" in m and t > t0]) >= 8,
                     5, "8 WATCHDOG=1 pings")
            pings = [t for t, m in n.all() if m.get("WATCHDOG") == "1"]
            gaps = [b - a for a, b in zip(pings, pings[1:])]
            assert min(gaps) > 0.03, gaps
            span = pings[-1] - pings[-8]
            assert span < 7 * 0.1 * 4 * SLOW, (span, gaps)
            # STATUS is refreshed every few seconds on its own.
            mark = len(n.all())
            n.wait("STATUS", after=mark, what="a STATUS refresh")
            s.stop()
    finally:
        n.close()


def test_daemon_mainpid():
    s = Server(name="sdnotify-d")
    n = Notify(s.dir)
    try:
        with cleaned(s):
            # WATCHDOG_PID names another process (this test): the watchdog is not ours.
            _, ready, info = start_notified(s, n, daemon=True, WATCHDOG_USEC="100000",
                                            WATCHDOG_PID=str(os.getpid()))
            assert int(ready["MAINPID"]) == s.master_pid() == info["pid"], ready
            no_notify_env(info)
            r = s.cmd("reload")
            assert r.returncode == 0, r.stderr
            mark = len(n.all())
            s.stop()
            n.wait("STOPPING", "1", after=mark)
            assert not any("WATCHDOG" in m for _, m in n.all()), "WATCHDOG_PID is not ours"
    finally:
        n.close()


if __name__ == "__main__":
    run([test_ready_reload_stop, test_watchdog_abstract_base, test_daemon_mainpid])
