"""The admin dashboard (GET / of admin_server) in a real headless browser: Debian's chromium driven
by puppeteer-core (dashboard.mjs, from npm: `npm ci --prefix tests/integration`; without it every
test here fails, on purpose). In process and base mode the page must load without console or page
errors and fetch nothing but srv's own /info and /metrics, show the ready workers, a request rate
that rises while this test sends load (and counts exactly the requests sent), and a respawn after
a worker is killed."""
import http.client
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from srvtest import SLOW, Server, free_port, pid_alive, run, running, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(HERE, "dashboard.mjs")
NODE = shutil.which("node")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def require_browser():
    assert NODE, "node is not installed (apt-get install nodejs npm)"
    mod = os.path.join(HERE, "node_modules", "puppeteer-core", "package.json")
    assert os.path.exists(mod), (f"{mod} is missing: run `npm ci --prefix tests/integration` "
                                 "(the Makefile's test-deps target does)")
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing (apt-get install chromium)"


class Browser:
    """dashboard.mjs with its chromium: one JSON command line in, one JSON line out. close() ends
    both whatever happened (chromium runs in a process group of its own)."""

    def __init__(self, origin):
        require_browser()
        self.dir = tempfile.mkdtemp(prefix="srvtest-chromium-")
        self.stderr = open(os.path.join(self.dir, "driver.log"), "w")
        self.proc = subprocess.Popen([NODE, DRIVER, origin, os.path.join(self.dir, "profile")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True, start_new_session=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.chrome_pid = None
        self.chrome_pid = self._reply(60)["chromePid"]

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _reply(self, timeout):
        try:
            line = self.lines.get(timeout=timeout * SLOW)
        except queue.Empty:
            raise AssertionError(f"no answer from dashboard.mjs in {timeout * SLOW} s\n"
                                 f"{self.log()}")
        if line is None:
            raise AssertionError(f"dashboard.mjs exited {self.proc.wait()}:\n{self.log()}")
        reply = json.loads(line)
        if "error" in reply:
            raise AssertionError(f"dashboard.mjs: {reply['error']}\n{self.log()}")
        return reply

    def ask(self, command, timeout=60):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._reply(timeout)

    def open(self, url, doc_token=""):
        """Load url; with doc_token the page's own request carries it (not its fetches)."""
        return self.ask(f"open {url} {doc_token}".rstrip(), 90)

    def state(self):
        return self.ask("state", 30)

    def log(self):
        self.stderr.flush()
        with open(os.path.join(self.dir, "driver.log")) as f:
            return f.read()[-4000:]

    def close(self):
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=20 * SLOW)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            for pgid in (self.proc.pid, self.chrome_pid):
                try:
                    if pgid:
                        os.killpg(pgid, signal.SIGKILL)
                except OSError:  # already gone
                    pass
            self.proc.wait()
            self.stderr.close()
            shutil.rmtree(self.dir, ignore_errors=True)
        if self.chrome_pid:
            wait_for(lambda: not pid_alive(self.chrome_pid), 10, "chromium exit")

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class Load(threading.Thread):
    """GET / on one keep-alive connection until stop() or `limit` seconds; counts the answers."""

    def __init__(self, port, limit):
        super().__init__(daemon=True)
        self.port, self.limit = port, limit
        self.done = threading.Event()
        self.sent = 0
        self.error = None

    def run(self):
        end = time.monotonic() + self.limit
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10 * SLOW)
        try:
            while not self.done.is_set() and time.monotonic() < end:
                c.request("GET", "/")
                r = c.getresponse()
                r.read()
                assert r.status == 200, r.status
                self.sent += 1
        except Exception as e:  # reported by stop()
            self.error = e
        finally:
            c.close()

    def stop(self):
        self.done.set()
        self.join(30 * SLOW)
        assert not self.is_alive(), "load thread did not stop"
        assert self.error is None, f"load failed: {self.error!r}"
        return self.sent


def admin_server(name, server=None):
    opts = {"mode": "process", "worker_num": 2, "admin_server": f"127.0.0.1:{free_port()}"}
    opts.update(server or {})
    return Server(server=opts, name=name)


def origin(s):
    return "http://" + s.server["admin_server"]


def clean(st):
    assert not st["problems"], f"browser reported problems: {st['problems']}"
    assert not st["offsite"], f"the page fetched from elsewhere: {st['offsite']}"
    assert not st["pageErrors"], f"the page noted errors: {st['pageErrors']}"
    return st


def page_state(b, cond, what, timeout=30):
    """Poll the page until cond(state) holds; a problem the browser reports fails at once."""
    return wait_for(lambda: (lambda st: cond(st) and st)(clean(b.state())), timeout, what, 0.1)


def rate(st):
    return float(st["rps"])


def live(mode):
    with running(admin_server(f"dash-{mode}", {"mode": mode})) as s, Browser(origin(s)) as b:
        st = clean(b.open(origin(s) + "/") and b.state())
        assert st["title"] == "srv dashboard", st
        st = page_state(b, lambda st: st["workerCount"] == "2" and st["health"] == "ok"
                        and st["samples"] >= 2, "2 ready workers on the page")
        assert rate(st) == 0 and st["respawns"] == "0", st
        before = st["lastReq"]
        assert before is not None, st

        # Load until the page shows a rising rate (bounded), then the exact count of requests.
        load = Load(s.port(), 20 * SLOW)
        load.start()
        try:
            st = page_state(b, lambda st: rate(st) > 0, "a request rate on the page")
        finally:
            sent = load.stop()
        assert sent > 0 and st["maxRps"] > 0, (sent, st)
        page_state(b, lambda st: st["lastReq"] - before == sent,
                   f"the page counting the {sent} requests sent")

        # A killed worker: the page shows the respawn (and its mark) and 2 ready workers again.
        info = s.info()
        victim = next(w["pid"] for w in info["workers"] if w["type"] == "worker")
        os.kill(victim, signal.SIGKILL)
        st = page_state(b, lambda st: st["respawns"] == "1" and st["workerCount"] == "2"
                        and "respawn" in st["marks"], "the respawn on the page", 60)
        new = [w["pid"] for w in s.info()["workers"] if w["type"] == "worker"]
        assert victim not in new, (victim, new)

        # Maintenance mode shows as a badge while it is on, and goes away with it.
        assert not clean(b.state())["maintenance"]
        s.cmd("maintenance", "on", check=True)
        page_state(b, lambda st: st["maintenance"], "the maintenance badge")
        s.cmd("maintenance", "off", check=True)
        page_state(b, lambda st: not st["maintenance"], "the maintenance badge gone")
        clean(b.state())
    # closing order: the browser first (its polls would fail once srv is gone), then srv


def test_dashboard_live():
    live("process")


def test_dashboard_live_base():
    live("base")


def test_dashboard_token():
    with running(admin_server("dash-token", {"admin_token": "s3cret"})) as s, \
            Browser(origin(s)) as b:
        b.open(origin(s) + "/#token=s3cret")
        page_state(b, lambda st: st["workerCount"] == "2" and st["health"] == "ok",
                   "the page with a token")
        # Without it the page says so (the browser logs the 401 answers: not checked here).
        b.open(origin(s) + "/", "s3cret")
        wait_for(lambda: b.state()["health"] == "unauthorized", 30, "unauthorized on the page")


if __name__ == "__main__":
    run([test_dashboard_live, test_dashboard_live_base, test_dashboard_token])
