"""HTTP/2 through the demo app with Python's h2 library (Debian python3-h2) as the client: every
endpoint over h2c (prior knowledge) and h2 over TLS (ALPN), HEAD, Expect: 100-continue, request
trailers, Upgrade: h2c with a request body, 413 + RST_STREAM(NO_ERROR) with the connection still
usable, 431, the http2_* settings as advertised, 16 MiB bodies both ways through small windows,
GOAWAY on stop and (base mode) reload with the stream in flight finished, http2_idle_timeout, and
the HTTP/2 counters of `srv info`. Process and base mode. The other test_h2_*.py import
H2Client and h2_server from here."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
from h2.connection import ConnectionState
from h2.errors import ErrorCodes

from srvtest import SLOW, SRV, run, running, wait_for
from tlscerts import certs, tls_server

MODES = ("process", "base")
FILES = "/tmp/srv-demo-files"


def h2_server(mode, name, tls=False, server=None, listeners=None, **keys):
    """One http listener with open_http2_protocol (plus keys), TLS with ssl; extra listeners
    (list of dicts) after it."""
    first = {"name": "h2", "type": "http", "open_http2_protocol": True}
    if tls:
        c = certs()
        first.update({"ssl": True, "ssl_cert_file": c.server, "ssl_key_file": c.server_key})
    first.update(keys)
    return tls_server(mode, name, listeners=[first] + list(listeners or []), server=server)


class Stream:
    def __init__(self):
        self.status = None
        self.headers = {}
        self.info = []  # informational statuses (100)
        self.data = bytearray()
        self.trailers = None
        self.ended = False
        self.reset = None  # the RST_STREAM error code, when the server reset it

    @property
    def done(self):
        return self.ended or self.reset is not None


class _Conn(h2.connection.H2Connection):
    """h2 closes its state machine on GOAWAY and then refuses the frames of the streams the
    GOAWAY lets finish (RFC 9113 6.8: streams up to last_stream_id are still answered); this
    client keeps reading them."""

    def _receive_goaway_frame(self, frame):
        frames, events = super()._receive_goaway_frame(frame)
        self.state_machine.state = ConnectionState.CLIENT_OPEN
        return frames, events


class H2Client:
    """One HTTP/2 connection to 127.0.0.1:port: h2c by prior knowledge, or TLS with ALPN h2.
    settings: the client's own SETTINGS (h2.settings.SettingCodes -> value). Data received is
    acknowledged (WINDOW_UPDATE) as it is read. Every wait has a deadline."""

    def __init__(self, port, tls=False, settings=None, timeout=20, upgrade=None):
        self.port, self.tls, self.timeout = port, tls, timeout * SLOW
        raw = socket.create_connection(("127.0.0.1", port), timeout=self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            ctx = ssl.create_default_context(cafile=certs().ca)
            ctx.set_alpn_protocols(["h2"])
            try:
                raw = ctx.wrap_socket(raw, server_hostname="localhost")
            except Exception:
                raw.close()
                raise
            assert raw.selected_alpn_protocol() == "h2", raw.selected_alpn_protocol()
        self.sock = raw
        self.conn = _Conn(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.streams = {}
        self.goaways = []  # ConnectionTerminated events
        self.eof = False
        if upgrade:
            self._upgrade(*upgrade)
        else:
            self.conn.initiate_connection()
            self.flush()

    def _upgrade(self, method, path, body=b""):
        """h2c by Upgrade: the HTTP/1.1 request (with its body) becomes stream 1."""
        token = self.conn.initiate_upgrade_connection().decode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                f"HTTP2-Settings: {token}\r\nContent-Length: {len(body)}\r\n\r\n")
        self.sock.sendall(head.encode() + body)
        got = b""
        while b"\r\n\r\n" not in got:
            more = self.sock.recv(65536)
            assert more, f"closed before the 101: {got!r}"
            got += more
        head, _, rest = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        self.streams[1] = Stream()
        self.flush()  # the preface, now
        for ev in self.conn.receive_data(rest):
            self._event(ev)
        self.flush()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def _event(self, ev):
        st = self.streams.get(getattr(ev, "stream_id", None))
        if isinstance(ev, h2.events.ResponseReceived):
            st.headers = dict(ev.headers)
            st.status = int(st.headers[":status"])
        elif isinstance(ev, h2.events.InformationalResponseReceived):
            st.info.append(int(dict(ev.headers)[":status"]))
        elif isinstance(ev, h2.events.DataReceived):
            st.data += ev.data
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.TrailersReceived):
            st.trailers = dict(ev.headers)
        elif isinstance(ev, h2.events.StreamEnded):
            st.ended = True
        elif isinstance(ev, h2.events.StreamReset):
            if st is not None:
                st.reset = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaways.append(ev)

    def read_once(self, deadline):
        """Read what arrives (up to deadline); False at EOF."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("HTTP/2 client: deadline passed")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return True
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            self.eof = True
            return False
        for ev in self.conn.receive_data(data):
            self._event(ev)
        self.flush()
        return True

    def pump(self, cond, timeout=None, what="condition"):
        deadline = time.monotonic() + (timeout * SLOW if timeout else self.timeout)
        while not cond():
            if time.monotonic() >= deadline:
                raise AssertionError(f"HTTP/2 client: timed out waiting for {what}")
            if not self.read_once(deadline) and not cond():
                raise AssertionError(f"HTTP/2 client: connection closed waiting for {what}")

    def request(self, method, path, headers=(), body=None, trailers=None, end=True):
        """Open a stream; returns its id. body goes within the server's windows."""
        sid = self.conn.get_next_available_stream_id()
        self.streams[sid] = Stream()
        hdrs = [(":method", method), (":path", path),
                (":scheme", "https" if self.tls else "http"),
                (":authority", f"127.0.0.1:{self.port}")] + list(headers)
        only_headers = body is None and trailers is None
        self.conn.send_headers(sid, hdrs, end_stream=only_headers and end)
        self.flush()
        if body is not None:
            self.send_body(sid, body, end=trailers is None and end)
        if trailers is not None:
            self.conn.send_headers(sid, list(trailers), end_stream=True)
            self.flush()
        return sid

    def send_body(self, sid, body, end=True):
        """Send body on sid as the windows allow; stops early (False) when the server answered
        and reset the stream."""
        view, at = memoryview(body), 0
        deadline = time.monotonic() + self.timeout * 4
        while at < len(body):
            st = self.streams[sid]
            if st.reset is not None:
                return False
            n = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size,
                    len(body) - at)
            if n <= 0:
                if not self.read_once(deadline):
                    raise AssertionError("connection closed while sending a body")
                continue
            self.conn.send_data(sid, bytes(view[at:at + n]))
            self.flush()
            at += n
        if end:
            self.conn.end_stream(sid)
            self.flush()
        return True

    def response(self, sid, timeout=None):
        st = self.streams[sid]
        self.pump(lambda: st.done, timeout, f"stream {sid}")
        return st

    def get(self, path, method="GET", headers=(), body=None, timeout=None):
        return self.response(self.request(method, path, headers, body), timeout)


def pattern(n, seed=0):
    return bytes((i * 7 + seed) & 0xFF for i in range(256)) * (n // 256) + \
        bytes((i * 7 + seed) & 0xFF for i in range(n % 256))


def demo_file(tag, data):
    """A file under /tmp/srv-demo-files/ with a name unique to this test process."""
    os.makedirs(FILES, exist_ok=True)
    name = f"h2-{tag}-{os.getpid()}.bin"
    with open(os.path.join(FILES, name), "wb") as f:
        f.write(data)
    return name


def each(fn):
    """fn(mode, tls) in process then base mode, h2c then TLS."""
    def wrapper():
        for mode in MODES:
            for tls in (False, True):
                try:
                    fn(mode, tls)
                except Exception as e:
                    raise AssertionError(f"[mode={mode} tls={tls}] {e!r}") from e
    wrapper.__name__ = fn.__name__
    return wrapper


# ---------------------------------------------------------------- endpoints

@each
def test_endpoints(mode, tls):
    data = os.urandom(300000)
    name = demo_file("ep", data)
    try:
        with running(h2_server(mode, "h2-ep", tls)) as s, H2Client(s.port(), tls) as c:
            st = c.get("/")
            assert (st.status, bytes(st.data)) == (200, b"Hello, World!"), (st.status, st.data)
            assert st.headers.get("content-type") == "text/plain", st.headers
            assert bytes(c.get("/proto").data) == b"HTTP/2\n"
            body = pattern(100000, 3)
            st = c.get("/echo", "POST", [("content-type", "application/x-test")], body)
            assert st.status == 200 and bytes(st.data) == body, (st.status, len(st.data))
            assert st.headers.get("content-type") == "application/x-test", st.headers
            st = c.get("/stream?chunks=1000")
            want = b"".join(b"chunk %d\n" % i for i in range(1000))
            assert st.status == 200 and bytes(st.data) == want, (st.status, len(st.data))
            st = c.get("/big?bytes=3000000")
            assert st.status == 200 and len(st.data) == 3000000, (st.status, len(st.data))
            assert st.data.count(b"x") == 3000000
            st = c.get(f"/file?name={name}")
            assert st.status == 200 and bytes(st.data) == data, (st.status, len(st.data))
            assert st.headers.get("content-length") == str(len(data)), st.headers
            st = c.get("/file?name=h2-no-such-file")
            assert st.status == 404, st.status
            st = c.get("/no/such/path")
            assert st.status == 404, st.status
    finally:
        os.unlink(os.path.join(FILES, name))


@each
def test_head_and_headers(mode, tls):
    with running(h2_server(mode, "h2-head", tls)) as s, H2Client(s.port(), tls) as c:
        st = c.get("/", "HEAD")
        assert st.status == 200 and st.ended and bytes(st.data) == b"", (st.status, st.data)
        assert st.headers.get("content-length") == "13", st.headers
        st = c.get("/headers", headers=[("x-h2-test", "yes"), ("accept", "*/*")])
        lines = bytes(st.data).decode().lower().splitlines()
        assert st.status == 200, st.status
        assert f"host: 127.0.0.1:{s.port()}" in lines, lines
        assert "x-h2-test: yes" in lines and "accept: */*" in lines, lines
        assert not any(l.startswith(":") for l in lines), lines


@each
def test_many_streams_one_connection(mode, tls):
    with running(h2_server(mode, "h2-many", tls)) as s, H2Client(s.port(), tls) as c:
        sids = {}
        for i in range(60):
            if i % 3 == 0:
                sids[c.request("GET", "/")] = b"Hello, World!"
            elif i % 3 == 1:
                body = pattern(5000 + i, i)
                sids[c.request("POST", "/echo", body=body)] = body
            else:
                sids[c.request("GET", f"/stream?chunks={i}")] = \
                    b"".join(b"chunk %d\n" % k for k in range(i))
        for sid, want in sids.items():
            st = c.response(sid)
            assert st.status == 200 and bytes(st.data) == want, (sid, st.status, len(st.data))


@each
def test_expect_100_continue(mode, tls):
    with running(h2_server(mode, "h2-100", tls)) as s, H2Client(s.port(), tls) as c:
        body = pattern(70000, 5)
        sid = c.request("POST", "/echo", [("expect", "100-continue"),
                                         ("content-length", str(len(body)))], end=False)
        st = c.streams[sid]
        c.pump(lambda: st.info or st.done, what="100 Continue")
        assert st.info == [100] and not st.done, (st.info, st.status)
        c.send_body(sid, body)
        c.response(sid)
        assert st.status == 200 and bytes(st.data) == body, (st.status, len(st.data))


@each
def test_request_trailers(mode, tls):
    with running(h2_server(mode, "h2-trail", tls)) as s, H2Client(s.port(), tls) as c:
        body = pattern(40000, 9)
        sid = c.request("POST", "/echo", [("te", "trailers")], body=body,
                        trailers=[("x-checksum", "abc"), ("x-more", "1")])
        st = c.response(sid)
        assert st.status == 200 and bytes(st.data) == body, (st.status, len(st.data))
        st = c.get("/proto")  # the connection goes on
        assert bytes(st.data) == b"HTTP/2\n"


def test_upgrade_h2c_with_body():
    """Upgrade: h2c from an HTTP/1.1 request with a body: the body is stream 1's, its answer
    comes as HTTP/2, and the connection goes on with more streams."""
    for mode in MODES:
        with running(h2_server(mode, "h2-upgrade")) as s:
            body = pattern(300000, 11)
            with H2Client(s.port(), upgrade=("POST", "/echo", body)) as c:
                st = c.response(1)
                assert st.status == 200 and bytes(st.data) == body, (st.status, len(st.data))
                assert bytes(c.get("/proto").data) == b"HTTP/2\n"
            with H2Client(s.port(), upgrade=("GET", "/proto")) as c:
                st = c.response(1)
                assert st.status == 200 and bytes(st.data) == b"HTTP/2\n", st.data
                st = c.get("/echo", "POST", body=body)
                assert st.status == 200 and bytes(st.data) == body, st.status


# ---------------------------------------------------------------- limits

@each
def test_413_then_rst_no_error(mode, tls):
    with running(h2_server(mode, "h2-413", tls, package_max_length=4096)) as s, \
            H2Client(s.port(), tls) as c:
        ok = pattern(4096)
        st = c.get("/echo", "POST", body=ok)
        assert st.status == 200 and bytes(st.data) == ok, st.status
        # The body runs over the limit (no content-length): 413, then RST_STREAM(NO_ERROR).
        sid = c.request("POST", "/echo", end=False)
        c.send_body(sid, pattern(20000), end=False)
        st = c.streams[sid]
        c.pump(lambda: st.reset is not None, what="413 and RST_STREAM")
        assert st.status == 413 and st.reset == ErrorCodes.NO_ERROR, (st.status, st.reset)
        # The connection stays usable.
        st = c.get("/echo", "POST", body=ok)
        assert st.status == 200 and bytes(st.data) == ok, st.status
        assert not c.goaways and not c.eof, c.goaways


@each
def test_413_declared_content_length(mode, tls):
    """A content-length over package_max_length is answered at once, as HTTP/1.1 does: no
    100 Continue, no waiting for a body that will not be read."""
    with running(h2_server(mode, "h2-413cl", tls, package_max_length=4096)) as s, \
            H2Client(s.port(), tls) as c:
        for expect in ([("expect", "100-continue")], []):
            sid = c.request("POST", "/echo", [("content-length", "100000")] + expect,
                            end=False)
            st = c.streams[sid]
            c.pump(lambda: st.reset is not None, timeout=10, what="413 and RST_STREAM")
            assert st.status == 413 and st.info == [], (expect, st.status, st.info)
            assert st.reset == ErrorCodes.NO_ERROR, (expect, st.reset)
        assert c.get("/").status == 200
        assert not c.goaways and not c.eof, c.goaways


def check_431(s, tls, big):
    with H2Client(s.port(), tls) as c:
        st = c.get("/headers", headers=[("x-big", "a" * big)])
        assert st.status == 431, st.status
        st = c.get("/headers", headers=[("x-small", "a" * 100)])
        assert st.status == 200, st.status
        assert not c.goaways, c.goaways


def test_431_header_list_size():
    for mode in MODES:
        with running(h2_server(mode, "h2-431", http2_max_header_list_size=4096)) as s:
            check_431(s, False, 6000)
        with running(h2_server(mode, "h2-431", True, server={"http_header_max": 4096})) as s:
            check_431(s, True, 6000)


def remote_settings(c):
    """The server's SETTINGS as the client applied them (after the first exchange)."""
    assert c.get("/").status == 200  # the server's SETTINGS come before any answer
    rs = c.conn.remote_settings
    return (rs.max_concurrent_streams, rs.initial_window_size, rs.max_frame_size,
            rs.max_header_list_size)


def test_settings_from_config():
    """http2_* on a listener, else from [server], else the defaults, in the server's SETTINGS;
    DATA frames up to the advertised http2_max_frame_size are taken."""
    own = {"http2_max_concurrent_streams": 7, "http2_initial_window_size": 100000,
           "http2_max_frame_size": 32768, "http2_max_header_list_size": 9000}
    inherited = {"http2_max_concurrent_streams": 9, "http2_initial_window_size": 50000,
                 "http2_max_frame_size": 20000, "http2_max_header_list_size": 10000}
    for mode in MODES:
        with running(h2_server(mode, "h2-set")) as s, H2Client(s.port()) as c:
            assert remote_settings(c) == (128, 65536, 16384, 32768), remote_settings(c)
        with running(h2_server(mode, "h2-set", server=inherited, listeners=[
                {"name": "inherits", "type": "http", "open_http2_protocol": True}], **own)) as s:
            with H2Client(s.port()) as c:
                assert remote_settings(c) == (7, 100000, 32768, 9000), remote_settings(c)
                body = pattern(200000, 4)
                sid = c.request("POST", "/echo", end=False)
                c.send_body(sid, body)  # frames of 32768 bytes within the windows
                st = c.response(sid)
                assert st.status == 200 and bytes(st.data) == body, st.status
            with H2Client(s.port(1)) as c:
                assert remote_settings(c) == (9, 50000, 20000, 10000), remote_settings(c)


# ---------------------------------------------------------------- large bodies, small windows

def test_upload_16mib_small_server_window():
    big = 16 << 20
    for tls in (False, True):
        with running(h2_server("process", "h2-up", tls, http2_initial_window_size=16384,
                               package_max_length=big + 1024)) as s, \
                H2Client(s.port(), tls, timeout=120) as c:
            c.pump(lambda: c.conn.remote_settings.initial_window_size == 16384,
                   what="the server's SETTINGS with INITIAL_WINDOW_SIZE 16384")
            body = os.urandom(big)
            st = c.get("/echo", "POST", body=body)
            assert st.status == 200, st.status
            assert len(st.data) == big and bytes(st.data) == body, len(st.data)


def test_download_16mib_small_client_window():
    """A client whose INITIAL_WINDOW_SIZE is 16 KiB, acknowledging as it reads: 16 MiB from
    /big (detached, back-pressured), a 6 MiB file by srv_response_file and the same file
    from document_root, every byte checked."""
    big = 16 << 20
    small = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16384}
    data = os.urandom(6 << 20)
    name = demo_file("down", data)
    root = tempfile.mkdtemp(prefix="srvtest-h2-down-")
    try:
        with open(os.path.join(root, "six.bin"), "wb") as f:
            f.write(data)
        for mode, tls in (("process", False), ("base", True)):
            with running(h2_server(mode, "h2-down", tls, document_root=root)) as s, \
                    H2Client(s.port(), tls, settings=small, timeout=120) as c:
                st = c.get(f"/big?bytes={big}")
                assert st.status == 200 and len(st.data) == big, (st.status, len(st.data))
                assert st.data.count(b"x") == big
                for path in (f"/file?name={name}", "/six.bin"):
                    st = c.get(path)
                    assert st.status == 200 and bytes(st.data) == data, \
                        (path, st.status, len(st.data))
                assert bytes(c.get("/proto").data) == b"HTTP/2\n"
    finally:
        os.unlink(os.path.join(FILES, name))
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- GOAWAY

def h2_info(s):
    info = s.info()
    assert "h2_connections" in info and "h2_streams" in info, info
    return info


def sleep_through(s, c, action):
    """A /sleep?ms=800 stream in flight on c while `srv action` runs (the client reads
    meanwhile); returns the stream once it is done."""
    assert c.get("/").status == 200
    before = h2_info(s)["h2_streams"]
    sid = c.request("GET", "/sleep?ms=800")
    # The server has the stream before the command runs (a PING would not tell: in base mode
    # its ACK waits for the handler).
    wait_for(lambda: h2_info(s)["h2_streams"] > before, 10, "the /sleep stream at the server")
    p = subprocess.Popen([SRV, action, "-c", s.config], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        st = c.response(sid, timeout=30)
        out, _ = p.communicate(timeout=60 * SLOW)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, (p.returncode, out)
    assert st.status == 200 and bytes(st.data) == b"slept 800 ms\n", (st.status, st.data)
    return sid


def check_goaway(c, sid):
    c.pump(lambda: c.goaways, what="GOAWAY")
    last = c.goaways[-1]
    assert last.error_code == ErrorCodes.NO_ERROR, last
    assert last.last_stream_id >= sid, (last.last_stream_id, sid)


@each
def test_stop_goaway(mode, tls):
    with running(h2_server(mode, "h2-stop", tls)) as s, H2Client(s.port(), tls) as c:
        check_goaway(c, sleep_through(s, c, "stop"))
        deadline = time.monotonic() + 20 * SLOW
        while c.read_once(deadline):
            pass
        if s.proc is not None:
            s.proc.wait(timeout=30 * SLOW)


def test_reload_base_goaway():
    """Base mode: the workers own the connections, so a reload ends them with GOAWAY after the
    streams in flight; a new connection goes to the new workers."""
    for tls in (False, True):
        with running(h2_server("base", "h2-reload", tls)) as s:
            with H2Client(s.port(), tls) as c:
                check_goaway(c, sleep_through(s, c, "reload"))
            with H2Client(s.port(), tls) as c2:
                assert bytes(c2.get("/proto").data) == b"HTTP/2\n"


def test_reload_process_keeps_connection():
    """Process mode: the reactors keep the connections through a reload (as for HTTP/1.1
    keep-alive); the stream in flight finishes and the next streams go to the new workers."""
    for tls in (False, True):
        with running(h2_server("process", "h2-reload", tls)) as s:
            old = {w["pid"] for w in s.info()["workers"]}
            with H2Client(s.port(), tls) as c:
                sleep_through(s, c, "reload")
                wait_for(lambda: old.isdisjoint(w["pid"] for w in s.wait_ready()["workers"]),
                         20, "new workers")
                for _ in range(4):
                    st = c.get("/worker")
                    assert st.status == 200, st.status
                    assert json.loads(bytes(st.data))["pid"] not in old, st.data
                assert all(g.error_code == ErrorCodes.NO_ERROR for g in c.goaways), c.goaways
            with H2Client(s.port(), tls) as c2:
                assert bytes(c2.get("/proto").data) == b"HTTP/2\n"


def idle_goaway(c, since):
    """Waits for the GOAWAY that ends c after http2_idle_timeout = 1 counted from the end of
    its last stream; then for the close."""
    t0 = time.monotonic()
    c.pump(lambda: c.goaways or c.eof, timeout=15, what=f"GOAWAY after idle ({since})")
    waited = time.monotonic() - t0
    assert c.goaways, f"closed without a GOAWAY ({since})"
    assert c.goaways[-1].error_code == ErrorCodes.NO_ERROR, c.goaways[-1]
    assert waited >= 0.5, f"GOAWAY {waited:.3f} s after {since}: before the idle timeout (1 s)"
    deadline = time.monotonic() + 10 * SLOW
    while not c.eof:
        c.read_once(deadline)


def test_idle_timeout_goaway():
    for mode in MODES:
        with running(h2_server(mode, "h2-idle", http2_idle_timeout=1)) as s:
            with H2Client(s.port()) as c:
                assert c.get("/").status == 200
                idle_goaway(c, f"GET / [mode={mode}]")
            # A stream that runs longer than the timeout: the connection is not idle meanwhile,
            # and the idle time starts when the stream ended.
            with H2Client(s.port()) as c:
                st = c.get("/sleep?ms=1500")
                assert st.status == 200, st.status
                idle_goaway(c, f"the end of a 1.5 s stream [mode={mode}]")


# ---------------------------------------------------------------- srv info

def test_info_counts():
    for mode in MODES:
        with running(h2_server(mode, "h2-info")) as s:
            base = h2_info(s)
            assert base["h2_connections"] == 0, base
            with H2Client(s.port()) as a, H2Client(s.port()) as b:
                for c in (a, b):
                    assert c.get("/").status == 200
                wait_for(lambda: h2_info(s)["h2_connections"] == 2, 10, "h2_connections 2")
                for _ in range(5):
                    assert a.get("/proto").status == 200
                assert s.get("/")[0] == 200  # HTTP/1.1: no stream
                info = wait_for(lambda: (lambda i: i if i["h2_streams"] >= base["h2_streams"] + 7
                                         else None)(h2_info(s)), 10, "h2_streams + 7")
                assert info["h2_streams"] == base["h2_streams"] + 7, (base, info)
                assert info["requests"] >= base["requests"] + 8, (base, info)
            wait_for(lambda: h2_info(s)["h2_connections"] == 0, 10, "h2_connections 0")
            text = s.cmd("info", check=True).stdout
            assert "h2" in text.lower() or "http/2" in text.lower(), text


if __name__ == "__main__":
    run([test_endpoints, test_head_and_headers, test_many_streams_one_connection,
         test_expect_100_continue, test_request_trailers, test_upgrade_h2c_with_body,
         test_413_then_rst_no_error, test_413_declared_content_length,
         test_431_header_list_size, test_settings_from_config,
         test_upload_16mib_small_server_window, test_download_16mib_small_client_window,
         test_stop_goaway, test_reload_base_goaway, test_reload_process_keeps_connection,
         test_idle_timeout_goaway, test_info_counts])
