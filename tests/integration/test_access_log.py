"""Black-box tests of the access log (access_log, access_log_format, per-listener access_log =
false), request ids (X-Request-Id kept when valid, generated otherwise, seen by the app, sent back
and logged), the slow log (request_slowlog_timeout), `srv reopen` under logrotate driven by
deploy/logrotate.conf itself, and a log path on a full or read-only filesystem."""
import asyncio
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time

import websockets

from srvtest import (SLOW, SOURCE_DIR, SRV, Server, free_port, run, running, scrape,
                     wait_for)
from test_http import RawConn

COMBINED = re.compile(r'^(\S+) - - \[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
                      r'"([^"]*)" (\d{3}) (\d+) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"$')
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
JSON_KEYS = {"time": str, "peer": str, "method": str, "uri": str, "protocol": str, "status": int,
             "bytes_sent": int, "duration_us": int, "listener": str, "worker": int,
             "request_id": str, "user_agent": str, "referer": str, "x_forwarded_for": str}
STATIC_BODY = b"hello, static world\n"


def log_server(fmt="json", mode="process", name="alog", server=None, listeners=None):
    """Listener "http" (HTTP/2 prior knowledge, WebSocket, a document_root with hello.txt) and
    listener "quiet" with access_log = false; the access log in the server's folder."""
    ls = listeners or [{"name": "http", "type": "http", "open_http2_protocol": True,
                        "websocket": True},
                       {"name": "quiet", "type": "http", "access_log": False}]
    opts = {"mode": mode, "access_log": "access.log", "access_log_format": fmt,
            "package_max_length": 65536}
    opts.update(server or {})
    s = Server(listeners=ls, server=opts, name=f"{name}-{fmt}-{mode}")
    s.root = os.path.join(s.dir, "www")  # removed with the server's folder
    os.mkdir(s.root)
    with open(os.path.join(s.root, "hello.txt"), "wb") as f:
        f.write(STATIC_BODY)
    if listeners is None:
        s.listeners[0]["document_root"] = s.root
        s.write_config()
    s.access = os.path.join(s.dir, "access.log")  # relative to the config file's folder
    return s


def read_lines(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    assert not data or data.endswith(b"\n"), f"partial last line in {path}: {data[-200:]!r}"
    return data.decode().splitlines()


def parse(line, fmt):
    """One access log line as a dict with the json format's keys (combined: the ones it has)."""
    if fmt == "json":
        d = json.loads(line)
        for k, t in JSON_KEYS.items():
            assert isinstance(d.get(k), t), (k, line)
        assert ISO_MS.match(d["time"]), line
        return d
    m = COMBINED.match(line)
    assert m, f"not a combined line: {line!r}"
    req = m.group(3).split(" ")
    assert len(req) == 3 or m.group(3) == "-", line
    method, uri, proto = (req + ["", "", ""])[:3] if m.group(3) != "-" else ("", "", "")
    return {"peer": m.group(1), "method": method, "uri": uri, "protocol": proto,
            "status": int(m.group(4)), "body_bytes": int(m.group(5)),
            "referer": m.group(6), "user_agent": m.group(7)}


def curl(s, path, *args, h2=False, i=0):
    """One request with curl: dict of status, headers (lowercase), body, sizes, protocol."""
    with tempfile.TemporaryDirectory() as d:
        hfile, bfile = os.path.join(d, "h"), os.path.join(d, "b")
        proto = ["--http2-prior-knowledge"] if h2 else ["--http1.1"]
        r = subprocess.run(["curl", "-sS", "--max-time", str(int(30 * SLOW)), *proto, "-D", hfile,
                            "-o", bfile, "-w", "%{json}", *args,
                            f"http://127.0.0.1:{s.port(i)}{path}"],
                           capture_output=True, timeout=60 * SLOW)
        assert r.returncode == 0, (path, r.stderr)
        w = json.loads(r.stdout)
        headers = {}
        with open(hfile, "rb") as f:
            for ln in f.read().decode("latin-1").splitlines()[1:]:
                if ":" in ln:
                    k, v = ln.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
        with open(bfile, "rb") as f:
            body = f.read()
    return {"status": w["http_code"], "headers": headers, "body": body,
            "size_header": w["size_header"], "size_download": w["size_download"],
            "protocol": "HTTP/2.0" if h2 else "HTTP/1.1"}


def expect(r, uri, method="GET", static=False, ua="", referer="", xff=""):
    return {"uri": uri, "method": method, "status": r["status"], "protocol": r["protocol"],
            "body_bytes": r["size_download"], "total": r["size_header"] + r["size_download"],
            "request_id": r["headers"].get("x-request-id"), "static": static, "ua": ua,
            "referer": referer, "xff": xff}


def raw_get(s, path, body_len):
    """GET path with Connection: close on a raw socket, counting the bytes on the wire: the
    expected line has the exact head + body (chunk framing included) bytes."""
    with RawConn(s.port()) as c:
        c.send(f"GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: raw\r\n"
               "Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            b = c.s.recv(1 << 20)
            if not b:
                break
            data += b
    head, _, body = data.partition(b"\r\n\r\n")
    resp = RawConn(sock=FakeSock(data)).read_response()
    assert resp.status == 200 and len(resp.body) == body_len, (path, resp)
    return {"uri": path, "method": "GET", "status": 200, "protocol": "HTTP/1.1",
            "body_bytes": len(body), "total": len(data), "request_id": resp.h("x-request-id"),
            "static": False, "ua": "raw", "referer": "", "xff": ""}


def too_large(s, path):
    """A body announced over package_max_length: srv answers 413 itself and closes."""
    with RawConn(s.port()) as c:
        c.send(f"POST {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: big\r\n"
               "Content-Length: 100000\r\n\r\n".encode())
        data = b""
        while True:
            b = c.s.recv(1 << 20)
            if not b:
                break
            data += b
    resp = RawConn(sock=FakeSock(data)).read_response()
    assert resp.status == 413, resp
    return {"uri": path, "method": "POST", "status": 413, "protocol": "HTTP/1.1",
            "body_bytes": len(resp.body), "total": len(data),
            "request_id": resp.h("x-request-id"), "static": True, "ua": "big", "referer": "",
            "xff": "", "early": True}


class FakeSock:
    """Bytes already read, for RawConn.read_response."""

    def __init__(self, data):
        self.data = data

    def settimeout(self, t):
        pass

    def recv(self, n):
        out, self.data = self.data[:n], self.data[n:]
        return out


def known_load(s, bad=2):
    """Requests of several statuses on both protocols, a static file, a WebSocket upgrade,
    malformed requests, and requests on the quiet listener. Returns (expected lines by uri,
    number of malformed requests)."""
    want = []
    for n in range(5):
        ua, ref = f"agent-{n}", f"http://referer.test/{n}"
        r = curl(s, f"/proto?n={n}", "-A", ua, "-e", ref)
        assert r["status"] == 200 and r["body"] == b"HTTP/1.1\n", r
        want.append(expect(r, f"/proto?n={n}", ua=ua, referer=ref))
    for n in range(3):
        r = curl(s, f"/nope?n={n}", "-A", "a", "-H", f"X-Forwarded-For: 10.0.0.{n}")
        assert r["status"] == 404, r
        want.append(expect(r, f"/nope?n={n}", ua="a", xff=f"10.0.0.{n}"))
    r = curl(s, "/echo?n=1", "-A", "a", "--data-binary", "hello body")
    assert r["status"] == 200 and r["body"] == b"hello body", r
    want.append(expect(r, "/echo?n=1", method="POST", ua="a"))
    want.append(raw_get(s, "/big?bytes=100000", 100000))  # chunked: measured on the wire
    want.append(raw_get(s, "/stream?chunks=3", len(b"chunk 0\nchunk 1\nchunk 2\n")))
    r = curl(s, "/hello.txt", "-A", "a")
    assert r["status"] == 200 and r["body"] == STATIC_BODY, r
    want.append(expect(r, "/hello.txt", static=True, ua="a"))
    r = curl(s, "/", "-A", "a")  # a folder: srv itself refuses the listing
    assert r["status"] == 403, r
    want.append(expect(r, "/", static=True, ua="a"))
    for n in range(3):
        r = curl(s, f"/proto?h2={n}", "-A", "a", h2=True)
        assert r["status"] == 200 and r["body"] == b"HTTP/2\n", r
        want.append(expect(r, f"/proto?h2={n}", ua="a"))
    r = curl(s, "/nope?h2=1", "-A", "a", h2=True)
    assert r["status"] == 404, r
    want.append(expect(r, "/nope?h2=1", ua="a"))
    r = curl(s, "/echo?h2=1", "-A", "a", "--data-binary", "h2 body", h2=True)
    assert r["status"] == 200 and r["body"] == b"h2 body", r
    want.append(expect(r, "/echo?h2=1", method="POST", ua="a"))
    want.append(ws_upgrade(s, "/ws?n=ws"))
    want.append(too_large(s, "/echo?too=big"))
    for _ in range(bad):
        with RawConn(s.port()) as c:
            c.send(b"GARBAGE\r\n\r\n")
            assert c.read_response().status == 400
    for n in range(3):
        assert curl(s, f"/?quiet={n}", i=1)["status"] == 200
    return want, bad


def ws_upgrade(s, path):
    """A WebSocket session with one echo: logged once, status 101."""
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{s.port()}{path}", ping_interval=None,
                                      compression=None, user_agent_header="ws-agent") as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            return ws.response_headers.get("X-Request-Id")
    rid = asyncio.run(asyncio.wait_for(go(), 30 * SLOW))
    return {"uri": path, "method": "GET", "status": 101, "protocol": "HTTP/1.1",
            "body_bytes": 0, "total": None, "request_id": rid, "static": False,
            "ua": "ws-agent", "referer": "", "xff": ""}


def wait_lines(path, fmt, count, what="access log lines"):
    """Polls (the writers flush at least every 100 ms) until path holds at least count lines."""
    return wait_for(lambda: (lambda ls: ls if len(ls) >= count else None)(
        [parse(x, fmt) for x in read_lines(path)]), 10, f"{count} {what}")


def check_line(got, w, fmt):
    assert got["status"] == w["status"] and got["method"] == w["method"], (got, w)
    assert got["protocol"] == w["protocol"] and got["peer"] == "127.0.0.1", (got, w)
    assert got["user_agent"] == (w["ua"] or ("" if fmt == "json" else "-")), (got, w)
    assert got["referer"] == (w["referer"] or ("" if fmt == "json" else "-")), (got, w)
    if fmt == "combined":
        if w["status"] != 101:  # (an upgrade has no body; what a tunnel counts is open)
            assert got["body_bytes"] == w["body_bytes"], (got, w)
        return
    assert got["listener"] == "http", got
    assert got["x_forwarded_for"] == w["xff"], (got, w)
    assert got["duration_us"] >= 0, got
    if w["request_id"] is not None:
        assert got["request_id"] == w["request_id"], (got, w)
    assert HEX32.match(got["request_id"]) or w["request_id"], got
    if w["static"]:
        assert got["worker"] == -1, got
    else:
        assert got["worker"] >= 0, got
    if w["protocol"] == "HTTP/1.1" and w["total"] is not None:
        assert got["bytes_sent"] == w["total"], (got, w)
    else:
        assert got["bytes_sent"] >= w["body_bytes"], (got, w)


def check_known_load(fmt, mode):
    with running(log_server(fmt, mode)) as s:
        want, bad = known_load(s)
        lines = wait_lines(s.access, fmt, len(want) + bad)
        by_uri = {}
        for got in lines:
            by_uri.setdefault(got["uri"], []).append(got)
        early = by_uri.pop("", []) + by_uri.pop("-", [])  # srv's answers with no request line
        for w in want:
            got = by_uri.pop(w["uri"], [])
            if not got and w.get("early"):  # (its request line may be left out)
                got = [x for x in early if x["status"] == w["status"]][:1]
                early = [x for x in early if x is not got[0]] if got else early
                w = dict(w, method=got[0]["method"] if got else "", protocol=got[0]["protocol"]
                         if got else "", ua="")
            assert len(got) == 1, (w["uri"], got)
            check_line(got[0], w, fmt)
        rest = early + [x for v in by_uri.values() for x in v]
        assert len(rest) == bad and all(x["status"] == 400 for x in rest), rest
        if fmt == "json":
            assert all(x["worker"] == -1 for x in rest), rest
        assert not any("quiet" in x["uri"] for x in lines), lines
        # Every response carried its X-Request-Id (srv's own answers too: static files, 403).
        missing = [w["uri"] for w in want if w["status"] != 101 and not w["request_id"]]
        assert not missing, f"responses without X-Request-Id: {missing}"
        # Nothing more shows up later (every request exactly once).
        assert curl(s, "/proto?fence=1")["status"] == 200
        lines = wait_lines(s.access, fmt, len(want) + bad + 1)
        assert len(lines) == len(want) + bad + 1, lines[len(want) + bad:]
        s.stop()


def test_combined_process_mode():
    check_known_load("combined", "process")


def test_json_process_mode():
    check_known_load("json", "process")


def test_json_base_mode():
    check_known_load("json", "base")


def raw_request_id(s, value):
    """GET /headers with a raw X-Request-Id value (bytes): (response id, ids the app saw)."""
    with RawConn(s.port()) as c:
        c.send(b"GET /headers?raw=1 HTTP/1.1\r\nHost: x\r\nX-Request-Id: " + value + b"\r\n\r\n")
        r = c.read_response()
    assert r.status == 200, r
    return r.h("x-request-id"), seen_ids(r.body)


def seen_ids(body):
    return [ln.split(":", 1)[1].strip() for ln in body.decode("latin-1").splitlines()
            if ln.lower().startswith("x-request-id:")]


def test_request_ids():
    """Valid ids kept (HTTP/1.1 and HTTP/2), invalid or absent ones replaced by 32 hex; the app
    sees exactly one X-Request-Id, the response carries it, the log records it."""
    valid = ["abc-123_XYZ.~!", "x" * 128, "!", "~" * 5]
    invalid = ["x" * 129, "a" * 200, "bad id"]
    with running(log_server("json", name="rid")) as s:
        sent = []
        for h2 in (False, True):
            for v in valid:
                r = curl(s, f"/headers?v={len(sent)}", "-H", f"X-Request-Id: {v}", h2=h2)
                assert r["headers"].get("x-request-id") == v, (v, r["headers"])
                assert seen_ids(r["body"]) == [v], (v, r["body"])
                sent.append((f"/headers?v={len(sent)}", v))
            for v in invalid:
                r = curl(s, f"/headers?v={len(sent)}", "-H", f"X-Request-Id: {v}", h2=h2)
                rid = r["headers"].get("x-request-id", "")
                assert HEX32.match(rid), (v, r["headers"])
                assert seen_ids(r["body"]) == [rid], (v, r["body"])
                sent.append((f"/headers?v={len(sent)}", rid))
            generated = set()
            for n in range(3):
                r = curl(s, f"/headers?v={len(sent)}", h2=h2)
                rid = r["headers"].get("x-request-id", "")
                assert HEX32.match(rid) and seen_ids(r["body"]) == [rid], r
                generated.add(rid)
                sent.append((f"/headers?v={len(sent)}", rid))
            assert len(generated) == 3, generated
        for value in (b"caf\xc3\xa9", b"tab\there", b""):  # not 0x21..0x7e, or empty
            rid, seen = raw_request_id(s, value)
            assert rid and HEX32.match(rid) and seen == [rid], (value, rid, seen)
        lines = wait_lines(s.access, "json", len(sent) + 3)
        by_uri = {x["uri"]: x for x in lines}
        for uri, rid in sent:
            assert by_uri[uri]["request_id"] == rid, (uri, rid, by_uri[uri])
        ids = [x["request_id"] for x in lines if x["uri"] == "/headers?raw=1"]
        assert len(ids) == 3 and all(HEX32.match(i) for i in ids), ids
        s.stop()


SLOWLOG = re.compile(r"slowlog: GET (\S+) on listener (\S+): (\d+(?:\.\d+)?) ms "
                     r"\(worker (\d+), (?:[^,()]+, )*request id ([0-9a-f]{32})\)")


def test_slowlog():
    """request_slowlog_timeout = 100: one warn line for /sleep?ms=300, none for fast requests."""
    with running(log_server("json", name="slow", server={"request_slowlog_timeout": 100})) as s:
        r = curl(s, "/sleep?ms=300")
        assert r["status"] == 200, r
        rid = r["headers"]["x-request-id"]
        lines = wait_for(lambda: [ln for ln in s.log().splitlines() if "slowlog:" in ln], 10,
                         "the slowlog line")
        assert len(lines) == 1, lines
        assert "[warn]" in lines[0], lines
        m = SLOWLOG.search(lines[0])
        assert m, lines[0]
        assert m.group(1) == "/sleep?ms=300" and m.group(2) == "http", lines[0]
        assert 300 <= float(m.group(3)) < 5000 * SLOW and m.group(5) == rid, lines[0]
        for n in range(10):
            assert curl(s, f"/proto?n={n}")["status"] == 200
        assert curl(s, "/sleep?ms=20")["status"] == 200
        wait_lines(s.access, "json", 12)
        assert len([ln for ln in s.log().splitlines() if "slowlog:" in ln]) == 1, s.log()
        s.stop()


class Sender:
    """Sends GET /proto?seq=N one after another on keep-alive connections until stopped; .done is
    the list of N answered 200."""

    def __init__(self, s):
        self.s, self.done, self.stopping, self.error = s, [], False, None
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        try:
            c = RawConn(self.s.port())
            while not self.stopping:
                n = len(self.done)
                r = c.request("GET", f"/proto?seq={n}")
                assert r.status == 200, r
                self.done.append(n)
                if n % 50 == 49:  # also new connections now and then
                    c.close()
                    c = RawConn(self.s.port())
            c.close()
        except Exception as e:  # reported by stop()
            self.error = e

    def wait_more(self, k):
        n = len(self.done)
        wait_for(lambda: self.error or len(self.done) >= n + k, 10, f"{k} more requests")
        assert self.error is None, self.error

    def stop(self):
        self.stopping = True
        self.t.join(30 * SLOW)
        assert not self.t.is_alive() and self.error is None, self.error
        return self.done


def rotate_config(s, logs):
    """deploy/logrotate.conf with the test's paths in place of /var/log/srv, /etc/srv/srv.toml,
    /run/srv.pid and the srv on PATH."""
    with open(os.path.join(SOURCE_DIR, "deploy/logrotate.conf")) as f:
        text = f.read()
    for old, new in (("/var/log/srv/*.log", f"{logs}/*.log"),
                     ("srv reopen -c /etc/srv/srv.toml", f"{SRV} reopen -c {s.config}"),
                     ("/run/srv.pid", s.pid_file)):
        assert old in text, f"deploy/logrotate.conf no longer has {old}"
        text = text.replace(old, new)
    path = os.path.join(s.dir, "logrotate.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def open_logs(pids):
    """Paths of the files under a logs/ folder the processes hold open."""
    out = set()
    for p in pids:
        try:
            fds = os.listdir(f"/proc/{p}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{p}/fd/{fd}")
            except OSError:
                continue
            if "/logs/" in target:
                out.add((p, target))
    return out


def test_logrotate_reopen():
    """logrotate -f with deploy/logrotate.conf while a client sends requests: the old file and
    the new one together hold every request exactly once, new lines go to the new file, no
    process keeps the old files open."""
    s = log_server("json", name="rotate")
    logs = os.path.join(s.dir, "logs")
    os.makedirs(logs)
    s.server["access_log"] = "logs/access.log"
    s.server["log_file"] = s.log_file = os.path.join(logs, "error.log")
    s.write_config()
    s.access = os.path.join(logs, "access.log")
    with running(s):
        conf = rotate_config(s, logs)
        info = s.info()
        pids = {info["pid"], info["manager_pid"]} | {w["pid"] for w in info["workers"]}
        sender = Sender(s)
        try:
            sender.wait_more(100)
            wait_for(lambda: read_lines(s.access), 5, "access log lines before rotation")
            r = subprocess.run(["logrotate", "-f", "-s", os.path.join(s.dir, "state"), conf],
                               capture_output=True, text=True, timeout=60 * SLOW)
            assert r.returncode == 0, r.stderr
            old = s.access + ".1"
            assert os.path.exists(old) and os.path.exists(s.log_file + ".1"), os.listdir(logs)
            assert oct(os.stat(s.access).st_mode & 0o777) == "0o640", os.stat(s.access)
            wait_for(lambda: read_lines(s.access), 10, "lines in the new access log")
            wait_for(lambda: not {t for _, t in open_logs(pids) if t.endswith(".1")}, 10,
                     "every process off the rotated files")
            sender.wait_more(100)
        finally:
            done = sender.stop()
        # Requests sent after every process reopened are in the new file.
        tail = [f"/proto?seq={n}" for n in done[-50:]]

        def complete():
            a = [parse(x, "json")["uri"] for x in read_lines(old)]
            b = [parse(x, "json")["uri"] for x in read_lines(s.access)]
            return (a, b) if len(a) + len(b) >= len(done) else None
        a, b = wait_for(complete, 10, "every request in the logs")
        assert a and b, (len(a), len(b))
        assert sorted(a + b) == sorted(f"/proto?seq={n}" for n in done), \
            (len(a), len(b), len(done), len(set(a + b)))
        assert set(tail) <= set(b), "requests after the reopen went to the old file"
        held = open_logs(pids)
        assert all(t in (s.access, s.log_file) for _, t in held), held
        s.stop()


def access_errors(s):
    """The error log lines about the access log failing, by the pid that wrote them."""
    by_pid = {}
    for ln in s.log().splitlines():
        if re.search(r"\[(error|warn)\]", ln) and "access" in ln.lower():
            pid = re.search(r"\[(\d+)\]", ln)
            by_pid.setdefault(pid.group(1) if pid else "?", []).append(ln)
    return by_pid


def serve_while_failing(s, seconds):
    """Sends requests for that many seconds; all must be 200."""
    t_end = time.monotonic() + seconds
    n = 0
    with RawConn(s.port()) as c:
        while time.monotonic() < t_end:
            r = c.request("GET", f"/proto?n={n}")
            assert r.status == 200 and r.body == b"HTTP/1.1\n", r
            n += 1
    return n


def test_full_disk():
    """access_log = /dev/full: srv serves, the error log reports the failure at most once a
    second (per process), srv_access_log_errors_total counts it."""
    admin = free_port()
    s = log_server("json", name="full", server={"access_log": "/dev/full",
                                                "admin_server": f"127.0.0.1:{admin}"})
    with running(s):
        t0 = time.monotonic()
        n = serve_while_failing(s, 2.2)
        took = time.monotonic() - t0
        assert n > 20, n
        wait_for(lambda: access_errors(s), 5, "an error line about the access log")
        wait_for(lambda: scrape(admin).get("srv_access_log_errors_total", 0) > 0, 5,
                 "srv_access_log_errors_total > 0")
        for pid, lines in access_errors(s).items():
            assert len(lines) <= took + 2, (pid, lines)
            stamps = [time.mktime(time.strptime(ln[:19], "%Y-%m-%d %H:%M:%S")) +
                      float(ln[19:23]) for ln in lines]
            gaps = [b - a for a, b in zip(stamps, stamps[1:])]
            assert all(g >= 0.9 for g in gaps), (pid, lines)  # at most one a second
        assert s.get("/proto")[0] == 200
        s.stop()


def test_read_only_log_dir():
    """The access log's folder is a read-only filesystem: srv starts, serves and reports."""
    ro = tempfile.mkdtemp(prefix="srvtest-alog-ro-")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", ro],
                             capture_output=True).returncode == 0
    path = os.path.join(ro, "access.log") if mounted else "/proc/srv-test-no-such/access.log"
    admin = free_port()
    try:
        s = log_server("combined", name="ro", server={"access_log": path,
                                                      "admin_server": f"127.0.0.1:{admin}"})
        with running(s):
            assert serve_while_failing(s, 0.5) > 5
            wait_for(lambda: access_errors(s), 5, "an error line about the access log")
            assert any(path in ln or "access" in ln for v in access_errors(s).values()
                       for ln in v)
            m = scrape(admin)
            assert m.get("srv_access_log_errors_total", 0) + \
                m.get("srv_access_log_dropped_total", 0) > 0, m.text
            assert not os.path.exists(path)
            s.stop()
    finally:
        if mounted:
            subprocess.run(["umount", ro], capture_output=True)
        os.rmdir(ro)


def test_reopen_command_and_signal():
    """After the logs are renamed, `srv reopen` (then SIGRTMIN to the master) moves every line
    written afterwards to new files of the old names."""
    with running(log_server("combined", name="reopen")) as s:
        for round_, how in enumerate(("command", "signal")):
            uri = f"/proto?before={round_}"
            assert curl(s, uri)["status"] == 200
            wait_for(lambda: any(uri in ln for ln in read_lines(s.access)), 10, "line written")
            moved = f"{s.access}.{how}"
            os.rename(s.access, moved)
            os.rename(s.log_file, f"{s.log_file}.{how}")
            if how == "command":
                s.cmd("reopen", check=True)
            else:
                os.kill(s.master_pid(), signal.SIGRTMIN)
            wait_for(lambda: os.path.exists(s.access) and os.path.exists(s.log_file), 10,
                     "new log files")
            after = f"/proto?after={round_}"
            assert curl(s, after)["status"] == 200
            wait_for(lambda: any(after in ln for ln in read_lines(s.access)), 10, "new line")
            assert not any(after in ln for ln in read_lines(moved)), moved
            assert sum(uri in ln for ln in read_lines(moved)) == 1, moved
        s.stop()


if __name__ == "__main__":
    run([test_combined_process_mode, test_json_process_mode, test_json_base_mode,
         test_request_ids, test_slowlog, test_logrotate_reopen, test_reopen_command_and_signal,
         test_full_disk, test_read_only_log_dir])
