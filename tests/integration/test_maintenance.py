"""Maintenance mode, black-box: `srv maintenance on [--retry-after N] [--message T] | off` under
load (process and base mode). While on, every HTTP request (HTTP/1.1, HTTP/2, static files,
WebSocket upgrades) gets 503 with Retry-After and the message, access-logged with its request
id, except the maintenance_allow prefixes; open WebSocket sessions and TCP/UDP listeners go on
untouched; the state survives `srv reload`, shows in `srv info`, /metrics and `srv maintenance`;
a message changed while on is never seen torn; bad arguments are refused with exit 2."""
import asyncio
import http.client
import json
import os
import socket
import subprocess
import threading

import websockets

from srvtest import LoadThreads, SLOW, Server, free_port, run, running, scrape, wait_for

MSG = "down for an upgrade, back at 10:00"


class Load(LoadThreads):
    """Two clients looping GET / (keep-alive and one connection per request) until stopped.
    Every answer must be the app's 200 or, while maintenance is on, its 503; anything else is
    kept as an error."""

    def __init__(self, s, msg=MSG, retry="17"):
        super().__init__(lambda: self.loop(True), lambda: self.loop(False))
        self.s, self.msg, self.retry = s, msg, retry
        self.errors, self.counts = [], {200: 0, 503: 0}
        self.lock = threading.Lock()

    def check(self, r, body):
        if r.status == 200 and body == b"Hello, World!":
            return 200
        if (r.status == 503 and body == (self.msg + "\n").encode()
                and r.getheader("Retry-After") == self.retry and r.getheader("X-Request-Id")):
            return 503
        return None

    def loop(self, keep):
        c = None
        while not self.stop.is_set():
            try:
                if c is None:
                    c = self.s.conn()
                c.request("GET", "/")
                r = c.getresponse()
                body = r.read()
                kind = self.check(r, body)
                with self.lock:
                    if kind:
                        self.counts[kind] += 1
                    else:
                        self.errors.append((r.status, dict(r.getheaders()), body[:100]))
                if not keep or r.getheader("Connection", "").lower() == "close":
                    c.close()
                    c = None
            except Exception as e:
                with self.lock:
                    self.errors.append(repr(e))
                if c:
                    c.close()
                c = None
        if c:
            c.close()

    def seen(self, status, n=20):
        base = self.counts[status]
        wait_for(lambda: self.counts[status] >= base + n, 20, f"{n} more {status} answers")

    def started(self):
        self.seen(200)


def server(mode, name):
    docs = None
    s = Server(listeners=[
        {"name": "web", "type": "http", "websocket": True, "open_http2_protocol": True},
        {"name": "files", "type": "http"},
        {"name": "lines", "type": "tcp", "handler": "lines"},
        {"name": "dgram", "type": "udp"},
    ], server={"mode": mode, "maintenance_allow": ["/worker", "/health"],
               "admin_server": f"127.0.0.1:{free_port()}", "access_log_format": "json"},
        name=f"maint-{mode}-{name}")
    docs = os.path.join(s.dir, "docs")
    os.mkdir(docs)
    with open(os.path.join(docs, "page.html"), "w") as f:
        f.write("<p>static</p>\n")
    s.listeners[1]["document_root"] = docs
    s.server["access_log"] = os.path.join(s.dir, "access.log")
    s.write_config()
    return s


def get(s, path, headers=None, port=None):
    c = http.client.HTTPConnection("127.0.0.1", port or s.port(), timeout=10 * SLOW)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def h2_get(s, path):
    r = subprocess.run(["curl", "-s", "-i", "--http2-prior-knowledge", "--max-time",
                        str(int(10 * SLOW)), f"http://127.0.0.1:{s.port()}{path}"],
                       capture_output=True)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.decode().partition("\r\n\r\n")
    return head.splitlines()[0], head.lower(), body


def tcp_echo(s):
    with socket.create_connection(("127.0.0.1", s.port(2)), timeout=10 * SLOW) as c:
        c.sendall(b"ping\n")
        assert c.recv(100) == b"ping\n"


def udp_echo(s):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(10 * SLOW)
        u.sendto(b"dgram", ("127.0.0.1", s.port(3)))
        assert u.recvfrom(100)[0] == b"dgram"


class WsSession:
    """A WebSocket session held open on its own event loop thread across the test."""

    def __init__(self, s):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        async def connect():
            return await websockets.connect(f"ws://127.0.0.1:{s.port()}/ws", ping_interval=None)
        self.ws = self.call(connect())

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(20 * SLOW)

    def echo(self, text):
        self.call(self.ws.send(text))
        assert self.call(self.ws.recv()) == text

    def close(self):
        self.call(self.ws.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10 * SLOW)


def ws_refused(s):
    async def go():
        try:
            async with websockets.connect(f"ws://127.0.0.1:{s.port()}/ws", ping_interval=None):
                return None
        except websockets.exceptions.InvalidStatusCode as e:
            return e.status_code
        except websockets.exceptions.InvalidStatus as e:  # newer websockets
            return e.response.status_code
    return asyncio.run(asyncio.wait_for(go(), 20 * SLOW))


def admin_port(s):
    return int(s.server["admin_server"].rsplit(":", 1)[1])


def check_on(s):
    st, hs, body = get(s, "/")
    assert st == 503 and body == (MSG + "\n").encode(), (st, body)
    assert hs["retry-after"] == "17" and hs["content-type"].startswith("text/plain"), hs
    assert len(hs["x-request-id"]) >= 16, hs
    st, _, body = get(s, "/page.html", port=s.port(1))  # a static file: maintenance too
    assert st == 503, (st, body)
    st, _, body = get(s, "/worker?x=1")  # an allowed prefix reaches the app
    assert st == 200, (st, body)
    line, head, body = h2_get(s, "/")
    assert line.startswith("HTTP/2 503") and "retry-after: 17" in head and body == MSG + "\n", \
        (line, head, body)
    assert ws_refused(s) == 503
    tcp_echo(s)
    udp_echo(s)
    info = s.info()
    m = info["maintenance"]
    assert m["on"] and m["message"] == MSG and m["retry_after"] == 17 and m["answered"] > 0, m
    text = s.cmd("info", check=True).stdout
    assert "maintenance ON" in text and MSG in text, text
    metrics = scrape(admin_port(s))
    assert metrics.get("srv_maintenance") == 1, metrics.text[:500]
    assert metrics.get("srv_maintenance_responses_total") > 0
    return hs["x-request-id"]


def access_logged(s, rid):
    path = s.server["access_log"]

    def found():
        with open(path) as f:
            for line in f:
                e = json.loads(line)
                if e["request_id"] == rid:
                    return e
        return None
    e = wait_for(found, 10, f"the access log line of request {rid}")
    assert e["status"] == 503 and e["uri"] == "/" and e["worker"] == -1, e


def under_load(mode):
    s = server(mode, "load")
    with running(s), Load(s) as load:
        ws = WsSession(s)
        try:
            ws.echo("before")
            r = s.cmd("maintenance", check=True)
            assert r.stdout.startswith("maintenance off"), r.stdout
            r = s.cmd("maintenance", "on", "--retry-after", "17", "--message", MSG, check=True)
            assert r.stdout.startswith("maintenance ON") and MSG in r.stdout, r.stdout
            load.seen(503)
            ws.echo("during")  # the open session is untouched
            rid = check_on(s)
            access_logged(s, rid)
            assert "maintenance mode on" in s.log()

            # A reload keeps it on (the state is the server's, not the configuration's).
            r = s.cmd("reload", check=True)
            assert r.stdout.startswith("reloaded"), r.stdout
            load.seen(503)
            check_on(s)
            if mode == "process":
                ws.echo("after reload")  # (base mode: the reload replaced its worker)

            r = s.cmd("maintenance", "off", check=True)
            assert r.stdout.startswith("maintenance off"), r.stdout
            load.seen(200)
            assert get(s, "/page.html", port=s.port(1))[0] == 200
            assert scrape(admin_port(s)).get("srv_maintenance") == 0
            assert s.info()["maintenance"]["on"] is False
            if mode == "process":
                ws.echo("after")
            else:
                ws.close()
                ws = WsSession(s)
                ws.echo("a new session")
        finally:
            ws.close()
    assert not load.errors, load.errors[:5]
    assert load.counts[200] > 0 and load.counts[503] > 0, load.counts


def test_under_load_process():
    under_load("process")


def test_under_load_base():
    under_load("base")


def test_message_never_torn():
    """The message changes while readers answer with it: each answer has one whole message."""
    s = server("process", "torn")
    a, b = "A" * 1024, "B" * 1024
    with running(s):
        s.cmd("maintenance", "on", "--message", a, check=True)
        bad, seen, stop = [], set(), threading.Event()

        def read():
            c = s.conn()
            while not stop.is_set():
                c.request("GET", "/")
                r = c.getresponse()
                body = r.read().decode()
                if r.status != 503 or body not in (a + "\n", b + "\n"):
                    bad.append((r.status, body[:40], len(body)))
                seen.add(body[0])
            c.close()
        threads = [threading.Thread(target=read, daemon=True) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            for i in range(30):
                s.cmd("maintenance", "on", "--message", b if i % 2 == 0 else a, check=True)
            wait_for(lambda: seen == {"A", "B"}, 10, "both messages answered")
        finally:
            stop.set()
            for t in threads:
                t.join(10 * SLOW)
    assert not bad, bad[:3]


def test_arguments_refused():
    s = server("process", "args")
    r = s.cmd("maintenance")
    assert r.returncode == 5, (r.returncode, r.stderr)  # not running
    with running(s):
        for args, why in [(["off", "--message", "x"], "go with 'maintenance on'"),
                          (["on", "--retry-after", "-3"], "--retry-after"),
                          (["on", "--retry-after", "soon"], "--retry-after"),
                          (["on", "--message", "two\nlines"], "one line"),
                          (["sideways"], "unknown argument")]:
            r = s.cmd("maintenance", *args)
            assert r.returncode == 2 and why in r.stderr, (args, r.returncode, r.stderr)
        r = s.cmd("maintenance", "on", "--message", "x" * 1025)
        assert r.returncode == 2 and "at most 1024 bytes" in r.stderr, (r.returncode, r.stderr)
        assert s.info()["maintenance"]["on"] is False
        assert get(s, "/")[0] == 200


def test_allow_refused_in_config():
    s = server("process", "cfg")
    s.server["maintenance_allow"] = ["/health", "status"]
    s.write_config()
    r = s.cmd("check")
    assert r.returncode == 3 and "maintenance_allow" in r.stderr and \
        '"status" is not a path' in r.stderr and f"{s.config}:" in r.stderr, r.stderr


if __name__ == "__main__":
    run([test_under_load_process, test_under_load_base, test_message_never_torn,
         test_arguments_refused, test_allow_refused_in_config])
