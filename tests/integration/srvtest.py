"""Black-box test harness: runs the real srv binary on loopback ports of its own (free_port) with
its own pid file and temp folder, talks to it with real clients, and checks that every process it started is gone
at the end. Every wait polls a condition with a deadline; nothing sleeps as synchronisation."""
import errno
import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

SRV = os.path.abspath(os.environ.get("SRV_BIN", os.path.join(os.path.dirname(__file__),
                                                             "../../build/srv")))
DEMO = os.path.abspath(os.environ.get("SRV_DEMO", os.path.join(os.path.dirname(__file__),
                                                               "../../build/examples/demo.so")))
SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
# Sanitized builds are slower to start and to answer: scale every deadline.
SLOW = float(os.environ.get("SRV_TEST_SLOW", "3" if os.environ.get("SRV_ASAN") else "1"))


# -- ports --
# Tests run side by side (ctest -j2, other checkouts on the same machine). A port found by binding
# port 0 and closing is free only until someone else binds it: another test picking the same way,
# or any outgoing connection, which the kernel numbers from that same ephemeral range. So test
# ports come from outside the ephemeral range (the kernel never hands those out by itself), and
# each one is claimed with an flock on PORT_DIR/<port>.lock held until this process exits (the
# kernel drops it even when the test is killed). Every test picks through free_port(), so two
# running tests never get the same number; a probe bind skips numbers held by anything else.
PORT_DIR = "/tmp/srv-test-ports"
PORT_SPAN = 8192  # numbers to use, next to the ephemeral range
_held = {}  # port -> fd of its lock file, open for this process's life
_cursor = None  # the next number to try (starts at a pid-derived place in port_range())


def port_range():
    """[first, end) of the test ports: the larger room below or above the ephemeral range."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = map(int, f.read().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999
    below = (max(1024, lo - PORT_SPAN), lo)
    above = (hi + 1, min(65536, hi + 1 + PORT_SPAN))
    return max(below, above, key=lambda r: r[1] - r[0])


def _lock_port(port):
    """Take port's lock file without waiting; True when this process now holds it."""
    try:
        fd = os.open(os.path.join(PORT_DIR, f"{port}.lock"), os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:  # another user's file we cannot open: theirs
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held[port] = fd
    return True


def _bindable(port):
    """No socket of any kind holds port: TCP and UDP binds on both wildcards succeed (without
    SO_REUSEADDR, so a connection still in TIME_WAIT on it counts as taken too)."""
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            try:
                s = socket.socket(family, kind)
            except OSError:  # no IPv6 here
                continue
            try:
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((host, port))
            except OSError as e:
                if family == socket.AF_INET6 and e.errno == errno.EADDRNOTAVAIL:
                    continue
                return False
            finally:
                s.close()
    return True


def free_port():
    """A port number no other test holds and nothing is bound to, for TCP and UDP on any
    address. It stays this process's until the process exits."""
    global _cursor
    first, end = port_range()
    if _cursor is None:
        _cursor = first + (os.getpid() * 7919) % (end - first)
    os.makedirs(PORT_DIR, exist_ok=True)
    try:
        os.chmod(PORT_DIR, 0o1777)  # shared by every user's test runs
    except OSError:
        pass
    for _ in range(end - first):
        port = _cursor
        _cursor = first + (_cursor + 1 - first) % (end - first)
        if port in _held or not _lock_port(port):
            continue
        if _bindable(port):
            return port
        os.close(_held.pop(port))
    raise AssertionError(f"no free test port in [{first}, {end})")


class Fatal(AssertionError):
    """Raised by a wait_for condition that can never become true."""


def wait_for(cond, timeout=10.0, what="condition", interval=0.02):
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
            if last:
                return last
        except Fatal:
            raise
        except Exception as e:  # the condition may throw until it holds
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children_of(pids):
    """Every live process whose parent is in pids (transitively)."""
    found = set()
    frontier = set(pids)
    while frontier:
        nxt = set()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
            except OSError:
                continue
            fields = st.rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue
            if int(fields[1]) in frontier and int(d) not in found:
                found.add(int(d))
                nxt.add(int(d))
        frontier = nxt
    return found


class Server:
    """One srv instance. listeners: list of dicts of listener keys (port picked if absent)."""

    def __init__(self, listeners=None, server=None, app=None, name="srv", extra=""):
        self.dir = tempfile.mkdtemp(prefix=f"srvtest-{name}-")
        self.pid_file = os.path.join(self.dir, "srv.pid")
        self.log_file = os.path.join(self.dir, "srv.log")
        self.listeners = listeners if listeners is not None else [{"name": "http", "type": "http"}]
        for l in self.listeners:
            if "port" not in l and "path" not in l:
                l["port"] = free_port()
        self.server = {"app": app or DEMO, "worker_num": 2, "reactor_num": 1,
                       "pid_file": self.pid_file, "log_file": self.log_file,
                       "log_level": "info", "max_wait_time": 3}
        self.server.update(server or {})
        self.extra = extra
        self.proc = None
        self.known_pids = set()
        self.config = os.path.join(self.dir, "srv.toml")
        self.write_config()

    # -- configuration --
    @staticmethod
    def _val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        return json.dumps(v)

    def own_app(self):
        """A copy of the demo module in the server's folder, configured as its app (a test may
        then replace or touch it); returns its path."""
        app = os.path.join(self.dir, "app.so")
        shutil.copyfile(DEMO, app)
        self.server["app"] = app
        self.write_config()
        return app

    def write_config(self):
        lines = ["[server]"]
        lines += [f"{k} = {self._val(v)}" for k, v in self.server.items()]
        for l in self.listeners:
            lines.append("\n[[listen]]")
            lines += [f"{k} = {self._val(v)}" for k, v in l.items()]
        lines.append(self.extra)
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    # -- running --
    def ctl_line(self, command):
        """One command (bytes, newline included) straight to the control socket: the reply up
        to its first newline (or to the close)."""
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(10 * SLOW)
        try:
            c.connect(self.pid_file + ".sock")
            c.sendall(command)
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = c.recv(4096)
                if not chunk:
                    break
                reply += chunk
            return reply
        finally:
            c.close()

    def cmd(self, *args, timeout=60, check=False):
        r = subprocess.run([SRV, *args, "-c", self.config], capture_output=True, text=True,
                           timeout=timeout * SLOW)
        if check and r.returncode != 0:
            raise AssertionError(f"srv {' '.join(args)} exited {r.returncode}: {r.stderr}")
        return r

    def start(self, daemon=False, wait_ready=True):
        if daemon:
            r = self.cmd("start", "-d", timeout=30)
            if r.returncode != 0:
                raise AssertionError(f"srv start -d exited {r.returncode}: {r.stderr}\n{self.log()}")
        else:
            self.out = open(os.path.join(self.dir, "stdout"), "w")
            self.proc = subprocess.Popen([SRV, "start", "-c", self.config], stdout=self.out,
                                         stderr=subprocess.STDOUT)
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        def ready():
            if self.proc is not None and self.proc.poll() is not None:
                raise Fatal(f"srv exited {self.proc.returncode} during start:\n"
                                     f"{self.log()}")
            info = self.info()
            ok = all(w["state"] == "ready" for w in info["workers"])
            return info if ok else None
        info = wait_for(ready, timeout, "all workers ready")
        self.remember(info)
        return info

    def remember(self, info):
        self.known_pids.add(info["pid"])
        self.known_pids.add(info["manager_pid"])
        for w in info["workers"]:
            if w["pid"]:
                self.known_pids.add(w["pid"])

    def info(self):
        r = self.cmd("info", "--json", timeout=10)
        if r.returncode != 0:
            raise AssertionError(f"srv info exited {r.returncode}: {r.stderr}")
        info = json.loads(r.stdout)
        self.remember(info)
        return info

    def master_pid(self):
        with open(self.pid_file) as f:
            return int(f.read())

    def stop(self, check=True):
        r = self.cmd("stop", timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"srv stop exited {r.returncode}: {r.stderr}\n{self.log()}")
        if self.proc is not None:
            self.proc.wait(timeout=30 * SLOW)
        return r

    def log(self):
        try:
            with open(self.log_file) as f:
                text = f.read()
        except OSError:
            text = ""
        try:
            with open(os.path.join(self.dir, "stdout")) as f:
                text += f.read()
        except OSError:
            pass
        return text

    def cleanup(self):
        """Stop if running; fail if any process of the tree is left."""
        leftovers = set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        elif os.path.exists(self.pid_file):
            try:
                pid = self.master_pid()
                if pid_alive(pid):
                    os.kill(pid, signal.SIGTERM)
                    wait_for(lambda: not pid_alive(pid), 20, "master exit")
            except (ValueError, OSError, AssertionError):
                pass
        deadline = time.monotonic() + 10 * SLOW
        while time.monotonic() < deadline:
            leftovers = {p for p in self.known_pids if pid_alive(p)}
            if not leftovers:
                break
            time.sleep(0.02)
        for p in leftovers:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        if self.proc is not None and getattr(self, "out", None):
            self.out.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if leftovers:
            raise AssertionError(f"processes left behind: {sorted(leftovers)}")

    # -- clients --
    def port(self, i=0):
        return self.listeners[i]["port"]

    def conn(self, i=0, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port(i), timeout=timeout * SLOW)

    def get(self, path, i=0, method="GET", body=None, headers=None):
        c = self.conn(i)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            c.close()


UNIX = "@unix@"  # a listener path replaced by a socket path inside the server's temp folder


def typed_server(kind, mode, name, listeners, server=None):
    """An HTTP listener plus listeners of type kind ("tcp", "udp"): listeners is a list of
    (name, dict of keys); an entry with path UNIX gets <tmp>/<name>.sock."""
    ls = [{"name": "http", "type": "http"}]
    for lname, opts in listeners:
        l = {"name": lname, "type": kind}
        l.update(opts)
        ls.append(l)
    opts = {"mode": mode}
    opts.update(server or {})
    s = Server(listeners=ls, server=opts, name=f"{name}-{mode}")
    for l in s.listeners:
        if l.get("path") == UNIX:
            l["path"] = os.path.join(s.dir, l["name"] + ".sock")
    s.write_config()
    return s


def listener(s, name):
    return next(l for l in s.listeners if l["name"] == name)


class SockClient:
    """Base of the tests' socket clients: self.sock closed by close() and by a with block."""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def raw(port, data, host="127.0.0.1", timeout=10, until_close=True, family=socket.AF_INET):
    """Send bytes, read until the server closes (or the timeout). Returns the bytes read."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout * SLOW)
    s.connect((host, port))
    s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
            if not until_close:
                break
    except socket.timeout:
        pass
    finally:
        s.close()
    return out


def run(tests):
    """Run test functions; print a closing 'N passed, M failed' line; exit non-zero on failure."""
    only = sys.argv[1:]
    passed = failed = 0
    for t in tests:
        if only and t.__name__ not in only:
            continue
        t0 = time.monotonic()
        try:
            t()
            passed += 1
            print(f"ok   {t.__name__} ({time.monotonic() - t0:.2f}s)", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {t.__name__} ({time.monotonic() - t0:.2f}s)", flush=True)
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


class LoadThreads:
    """Client threads running until the with block ends: each of targets (functions) loops
    while self.stop is not set. Subclasses may wait for the load to run in started()."""

    def __init__(self, *targets):
        import threading
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=t, daemon=True) for t in targets]

    def started(self):
        pass

    def __enter__(self):
        for t in self.threads:
            t.start()
        self.started()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(10 * SLOW)
        return False


class running:
    """with running(Server(...)) as s: ... — starts, and always cleans up."""

    def __init__(self, server, **start):
        self.s = server
        self.start = start

    def __enter__(self):
        try:
            return self.s.start(**self.start)
        except Exception:
            print(self.s.log(), file=sys.stderr)
            self.s.cleanup()
            raise

    def __exit__(self, et, ev, tb):
        if et is not None:
            print("---- server log ----\n" + self.s.log()[-6000:], file=sys.stderr)
        self.s.cleanup()
        return False


# -- admin endpoint (admin_server in [server]) --
def admin_get(port, path, headers=None, method="GET", timeout=10):
    """One request to the admin endpoint on 127.0.0.1:port: (status, lowercase headers, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * SLOW)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


class Metrics:
    """One /metrics scrape parsed by prometheus_client's own text parser. Samples are keyed by
    their sample name (e.g. srv_http_requests_total, ..._bucket) and their labels."""

    def __init__(self, text):
        from prometheus_client.parser import text_string_to_metric_families
        self.text = text
        self.families = list(text_string_to_metric_families(text))
        self.samples = {}
        for f in self.families:
            for smp in f.samples:
                self.samples[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value

    def get(self, name, default=None, **labels):
        """The sample with exactly these labels, or default."""
        return self.samples.get((name, tuple(sorted(labels.items()))), default)

    def select(self, name, **labels):
        """[(labels dict, value)] of every sample of that name whose labels include these."""
        out = []
        for (n, ls), v in self.samples.items():
            d = dict(ls)
            if n == name and all(d.get(k) == str(x) for k, x in labels.items()):
                out.append((d, v))
        return out

    def total(self, name, **labels):
        return sum(v for _, v in self.select(name, **labels))


def scrape(port, headers=None):
    """GET /metrics from the admin endpoint, checked for 200 and parsed."""
    st, hs, body = admin_get(port, "/metrics", headers)
    assert st == 200, (st, body[:300])
    return Metrics(body.decode())
