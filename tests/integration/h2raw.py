"""HTTP/2 clients for the attack tests (test_h2_attack*.py), over plain sockets to 127.0.0.1:
Raw speaks h2c by prior knowledge (or h2 over TLS with ALPN) frame by frame with hyperframe and
hpack, so a test can send what no well-behaved client would (floods, resets, endless header
blocks, HPACK bombs) and read what comes back (SETTINGS, responses, the GOAWAY, the close);
Good is a well-behaved client on Python's h2 state machine that runs requests one at a time on
one connection, to check that other connections are still served. Also: the server's memory
(sum of VmRSS of its processes) and its log lines."""
import re
import select
import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

from srvtest import SLOW, Server, children_of, wait_for

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PROTOCOL_ERROR = 0x1
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB
CODE_NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
              6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM", 8: "CANCEL", 9: "COMPRESSION_ERROR",
              11: "ENHANCE_YOUR_CALM"}


def code_name(code):
    return CODE_NAMES.get(code, hex(code))


def connect(port, tls_ctx=None, timeout=10):
    """A socket to 127.0.0.1:port; with tls_ctx, TLS with ALPN h2 (the server must pick h2)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls_ctx is not None:
        sock = tls_ctx.wrap_socket(sock, server_hostname="localhost")
        got = sock.selected_alpn_protocol()
        assert got == "h2", f"ALPN: expected h2, got {got!r}"
    return sock


class Raw:
    """One HTTP/2 connection driven frame by frame. Frames from the server are read into
    self.frames; responses are gathered per stream (status, headers, body, ended, reset code);
    the first GOAWAY goes to self.goaway; self.closed once the server closed (EOF or reset)."""

    def __init__(self, port, tls_ctx=None, settings=None, preface=True, ack_settings=True,
                 auto_window=True):
        self.sock = connect(port, tls_ctx)
        self.tls = tls_ctx is not None
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_allowed_table_size = 1 << 20
        self.ack_settings, self.auto_window = ack_settings, auto_window
        self.inbuf = b""
        self.frames = []
        self.server_settings = {}
        self.settings_seen = 0
        self.goaway = None
        self.closed = False
        self.send_failed = False
        self.next_id = 1
        self.max_id = 0
        self.status, self.headers, self.body, self.ended, self.reset = {}, {}, {}, set(), {}
        self._block = None  # (stream, bytes) of a header block still in CONTINUATIONs
        if preface:
            self.send(PREFACE + self.settings_frame(settings or {}))

    # -- frames --
    @staticmethod
    def settings_frame(settings, ack=False):
        f = SettingsFrame(0, settings=dict(settings))
        if ack:
            f.flags.add("ACK")
        return f.serialize()

    def new_stream(self):
        sid = self.next_id
        self.next_id += 2
        self.max_id = max(self.max_id, sid)
        return sid

    def block(self, path="/", method="GET", extra=()):
        return self.enc.encode([(":method", method), (":scheme", "https" if self.tls else "http"),
                                (":path", path), (":authority", "localhost"), *extra])

    @staticmethod
    def headers_frame(sid, block, end_stream=True, end_headers=True):
        f = HeadersFrame(sid, data=block)
        if end_stream:
            f.flags.add("END_STREAM")
        if end_headers:
            f.flags.add("END_HEADERS")
        return f.serialize()

    @staticmethod
    def continuation_frame(sid, block, end_headers=False):
        f = ContinuationFrame(sid, data=block)
        if end_headers:
            f.flags.add("END_HEADERS")
        return f.serialize()

    @staticmethod
    def rst_frame(sid, code=CANCEL):
        return RstStreamFrame(sid, error_code=code).serialize()

    @staticmethod
    def data_frame(sid, data=b"", end_stream=False):
        f = DataFrame(sid, data=data)
        if end_stream:
            f.flags.add("END_STREAM")
        return f.serialize()

    @staticmethod
    def ping_frame(payload=b"12345678", ack=False):
        f = PingFrame(0, opaque_data=payload)
        if ack:
            f.flags.add("ACK")
        return f.serialize()

    @staticmethod
    def window_frame(sid, inc):
        return WindowUpdateFrame(sid, window_increment=inc).serialize()

    # -- requests --
    def request(self, path="/", method="GET", body=None, extra=()):
        """Sends one request (HEADERS, and DATA if body); returns its stream id."""
        sid = self.new_stream()
        out = self.headers_frame(sid, self.block(path, method, extra), end_stream=body is None)
        if body is not None:
            out += self.data_frame(sid, body, end_stream=True)
        self.send(out)
        return sid

    def response(self, sid, timeout=10):
        """(status, body) of stream sid once it ended; fails on reset, GOAWAY or close."""
        self.pump_until(lambda: sid in self.ended or sid in self.reset or self.closed,
                        timeout, f"the response on stream {sid}")
        assert sid in self.ended, (f"stream {sid}: no complete response (reset "
                                   f"{self.reset.get(sid)}, goaway {self.goaway_text()}, "
                                   f"closed {self.closed})")
        return self.status.get(sid), self.body.get(sid, b"")

    # -- sending --
    def send(self, data):
        """Sends data; a server that already closed is not an error here (self.send_failed)."""
        if self.send_failed or self.closed:
            return False
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.send_failed = True
            return False

    def flood(self, frames, chunk=16384, during=None):
        """Sends frames (a list of serialized frames) in pieces of about chunk bytes, cut only
        between frames (what pump() sends, like a SETTINGS ACK, goes between them), reading what
        came back between pieces, until all is sent or the server sent a GOAWAY or closed.
        during() runs once, after the first piece. Returns how many frames went out."""
        sent = 0
        while sent < len(frames) and self.goaway is None and not self.closed:
            end, size = sent, 0
            while end < len(frames) and (size == 0 or size + len(frames[end]) <= chunk):
                size += len(frames[end])
                end += 1
            if not self.send(b"".join(frames[sent:end])):
                break
            sent = end
            self.pump(0)
            if during is not None:
                during()
                during = None
        return sent

    # -- reading --
    def pump(self, timeout):
        """Reads what the server sent within timeout seconds (0: what is there now) and handles
        each whole frame. Returns False once the connection is closed."""
        if self.closed:
            return False
        pending = self.tls and self.sock.pending()
        if not pending:
            r, _, _ = select.select([self.sock], [], [], timeout)
            if not r:
                return True
        try:
            self.sock.setblocking(False)
            data = self.sock.recv(1 << 20)
        except (ssl.SSLWantReadError, BlockingIOError):
            return True
        except (ConnectionResetError, ssl.SSLError, OSError):
            data = b""
        finally:
            if self.sock.fileno() >= 0:
                self.sock.setblocking(True)
        if not data:
            self.closed = True
            return False
        self.inbuf += data
        self._frames()
        return True

    def pump_until(self, cond, timeout, what):
        deadline = time.monotonic() + timeout * SLOW
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; goaway {self.goaway_text()}"
                                     f", closed {self.closed}, frames {self.frame_summary()}")
            if not self.pump(min(left, 0.2)) and not cond():
                raise AssertionError(f"closed waiting for {what}; goaway {self.goaway_text()}"
                                     f", frames {self.frame_summary()}")

    def _frames(self):
        while len(self.inbuf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(self.inbuf[:9]))
            if len(self.inbuf) < 9 + length:
                return
            f.parse_body(memoryview(self.inbuf[9:9 + length]))
            self.inbuf = self.inbuf[9 + length:]
            self.frames.append(f)
            self._frame(f)

    def _frame(self, f):
        if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
            self.settings_seen += 1
            self.server_settings.update(f.settings)
            if self.ack_settings:
                self.send(self.settings_frame({}, ack=True))
        elif isinstance(f, GoAwayFrame):
            if self.goaway is None:
                self.goaway = f
        elif isinstance(f, (HeadersFrame, ContinuationFrame)):
            self._headers(f)
        elif isinstance(f, DataFrame):
            self.body[f.stream_id] = self.body.get(f.stream_id, b"") + f.data
            if "END_STREAM" in f.flags:
                self.ended.add(f.stream_id)
            if self.auto_window and f.flow_controlled_length:
                self.send(self.window_frame(0, f.flow_controlled_length) +
                          self.window_frame(f.stream_id, f.flow_controlled_length))
        elif isinstance(f, RstStreamFrame):
            self.reset[f.stream_id] = f.error_code

    def _headers(self, f):
        if isinstance(f, HeadersFrame):
            self._block = (f.stream_id, f.data, "END_STREAM" in f.flags)
        else:
            sid, data, end = self._block
            self._block = (sid, data + f.data, end)
        if "END_HEADERS" not in f.flags:
            return
        sid, data, end = self._block
        self._block = None
        fields = self.dec.decode(data)
        if sid not in self.status:
            self.headers[sid] = fields
            self.status[sid] = int(dict(fields).get(":status", "0"))
        if end:
            self.ended.add(sid)

    # -- the end --
    def goaway_text(self):
        g = self.goaway
        if g is None:
            return "none"
        return (f"GOAWAY {code_name(g.error_code)} last_stream_id {g.last_stream_id} "
                f"{g.additional_data[:200]!r}")

    def frame_summary(self):
        counts = {}
        for f in self.frames:
            counts[type(f).__name__] = counts.get(type(f).__name__, 0) + 1
        return counts

    def expect_goaway(self, code, timeout=10):
        """Reads until the GOAWAY (deadline), checks its code and last stream id, then that the
        server closes the connection. Returns the GOAWAY."""
        self.pump_until(lambda: self.goaway is not None, timeout, f"GOAWAY {code_name(code)}")
        g = self.goaway
        assert g.error_code == code, (f"expected GOAWAY {code_name(code)}, got "
                                      f"{self.goaway_text()}")
        last = g.last_stream_id
        assert last == 0 or (last % 2 == 1 and last <= self.max_id), (
            f"GOAWAY last_stream_id {last}: not 0 or a stream the client opened "
            f"(highest {self.max_id})")
        self.expect_closed()
        return g

    def expect_closed(self, timeout=10):
        deadline = time.monotonic() + timeout * SLOW
        while self.pump(max(0.0, min(0.2, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                raise AssertionError(f"the server did not close the connection within "
                                     f"{timeout * SLOW}s after {self.goaway_text()}")

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class Good:
    """A well-behaved HTTP/2 client (Python's h2) running requests one at a time on one
    connection."""

    def __init__(self, port, tls_ctx=None):
        self.sock = connect(port, tls_ctx)
        self.tls = tls_ctx is not None
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self.sock.sendall(self.h2.data_to_send())
        self.served = 0

    def get(self, path="/", timeout=10):
        """(status, body) of GET path."""
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, [(":method", "GET"), (":scheme", "https" if self.tls else "http"),
                                   (":path", path), (":authority", "localhost")], end_stream=True)
        self.sock.sendall(self.h2.data_to_send())
        status, body, done = None, b"", False
        deadline = time.monotonic() + timeout * SLOW
        while not done:
            left = deadline - time.monotonic()
            assert left > 0, f"good connection: no answer to {path} within {timeout * SLOW}s"
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            assert data, f"good connection closed by the server waiting for {path}"
            for ev in self.h2.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = int(dict(ev.headers)[b":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    if ev.stream_id == sid:
                        body += ev.data
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    done = True
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    raise AssertionError(f"good connection: {path} reset ({ev.error_code})")
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    raise AssertionError(f"good connection got GOAWAY {ev.error_code}")
            self.sock.sendall(self.h2.data_to_send())
        self.served += 1
        return status, body

    def check(self, n=1):
        """n more requests to / answer 200 Hello, World!"""
        for _ in range(n):
            status, body = self.get("/", timeout=30)
            assert status == 200 and body == b"Hello, World!", (status, body[:100])

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def rss_kib(s):
    """Sum of VmRSS (KiB) of the server's processes: its master and every descendant."""
    pids = {s.master_pid()}
    pids |= children_of(pids)
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
        except OSError:
            continue
        if m:
            total += int(m.group(1))
    return total


def expect_rss_bounded(s, before_kib, limit_mib=64):
    after = rss_kib(s)
    assert after - before_kib <= limit_mib * 1024, (
        f"server RSS grew from {before_kib} KiB to {after} KiB (over {limit_mib} MiB)")


def expect_log(s, reason, since=0, timeout=10):
    """A [warn] line in the server's log (after offset since) containing reason."""
    pat = re.compile(r"\[warn\].*" + re.escape(reason))
    wait_for(lambda: any(pat.search(l) for l in s.log()[since:].splitlines()), timeout,
             f"a [warn] log line with {reason!r}; log tail:\n{s.log()[since:][-1500:]}")


# ---------------------------------------------------------------- the attack harness

def h2_server(mode, name, server=None, **listen):
    """A server with one h2c-capable HTTP listener (extra listener keys in listen)."""
    opts = {"mode": mode}
    opts.update(server or {})
    l = {"name": "h2", "type": "http", "open_http2_protocol": True}
    l.update(listen)
    return Server(listeners=[l], server=opts, name=f"h2a-{name}-{mode}")


def attacked(s, attack, code, reason, memory=True, raw=None, good_ctx=None, timeout=10):
    """Runs attack(raw, good) on a Raw connection while a Good connection, opened before, is used
    before, during (attack calls good.check) and after it; then checks the GOAWAY code, the close,
    the [warn] log line, that the good connection and a new one are served, and (memory) that
    the server's RSS grew by at most 64 MiB. raw() makes the attacker's connection."""
    with Good(s.port(), good_ctx) as good:
        good.check()
        since = len(s.log())
        rss = rss_kib(s) if memory else None
        with (raw or (lambda: Raw(s.port())))() as r:
            attack(r, good)
            g = r.expect_goaway(code, timeout=timeout)
        expect_log(s, reason, since)
        good.check(3)
        assert good.served >= 5, "the good connection was not used during the attack"
        if memory:
            expect_rss_bounded(s, rss)
    with Good(s.port(), good_ctx) as fresh:
        fresh.check()
    expect_no_sanitizer_report(s)
    return g, r


def expect_no_sanitizer_report(s):
    """No ASan / UBSan report in what the server wrote (its log and its stdout/stderr)."""
    m = re.search(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:", s.log())
    assert m is None, f"sanitizer report from the server:\n{s.log()[m.start():][:3000]}"
