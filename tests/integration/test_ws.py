"""WebSocket (RFC 6455) through the demo app, with two kinds of client: Python's `websockets`
(a real, independent implementation) and a raw-socket client for the frames a correct client
never sends (unmasked, bad UTF-8, oversized, fragmented control frames). /ws echoes, /chat
broadcasts, anything else is refused by the app (close code 4004). Run in process and base modes."""
import asyncio
import base64
import hashlib
import os
import resource
import socket
import struct
import time

import websockets

from srvtest import SLOW, Server, SockClient, run, running, wait_for

CHAT_TABLE = ('[[table]]\nname = "chat"\nsize = 4096\n'
              'columns = [{name = "joined", type = "int"}]\n')
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SIZES = [0, 125, 126, 65535, 65536, 1 << 20]


def ws_server(mode="process", name="ws", listener=None, server=None, extra=""):
    l = {"name": "http", "type": "http", "websocket": True}
    l.update(listener or {})
    opts = {"mode": mode}
    opts.update(server or {})
    return Server(listeners=[l], server=opts, name=f"{name}-{mode}", extra=CHAT_TABLE + extra)


def url(s, path="/ws"):
    return f"ws://127.0.0.1:{s.port()}{path}"


def connect(s, path="/ws", **kw):
    kw.setdefault("max_size", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("compression", None)
    kw.setdefault("open_timeout", 10 * SLOW)
    kw.setdefault("close_timeout", 10 * SLOW)
    return websockets.connect(url(s, path), **kw)


def arun(coro, timeout=60):
    """Run one asyncio scenario with a hard deadline."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout * SLOW)
    return asyncio.run(bounded())


def pattern(n, seed=0):
    """n deterministic bytes that are not all alike (catches reordering and off-by-one)."""
    block = bytes((i * 7 + seed) & 0xFF for i in range(4096))
    return (block * (n // 4096 + 1))[:n]


def text_pattern(n):
    return ("abcdefghijklmnopqrstuvwxyz0123456789" * (n // 36 + 1))[:n]


# ---------------------------------------------------------------- raw client


class Closed(Exception):
    pass


class RawWS(SockClient):
    """A minimal client over a plain socket: the handshake, then any frame we like."""

    def __init__(self, port, path="/ws", timeout=10, rcvbuf=None, handshake=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout * SLOW)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.status = None
        if handshake:
            key = base64.b64encode(os.urandom(16))
            self.sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
                              b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                              b"Sec-WebSocket-Key: " + key + b"\r\n"
                              b"Sec-WebSocket-Version: 13\r\n\r\n")
            head = self._read_until(b"\r\n\r\n")
            self.status = int(head.split(b" ", 2)[1])
            assert self.status == 101, head
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            assert b"sec-websocket-accept: " + accept.lower() in head.lower(), head

    def _fill(self):
        try:
            b = self.sock.recv(65536)
        except ConnectionResetError:
            b = b""
        if not b:
            raise Closed()
        self.buf += b

    def _read_until(self, sep):
        while sep not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(sep, 1)
        return head

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    @staticmethod
    def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
        n = len(payload) if length is None else length
        h = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
        m = 0x80 if mask else 0
        if n < 126:
            h += bytes([m | n])
        elif n < 65536:
            h += bytes([m | 126]) + struct.pack(">H", n)
        else:
            h += bytes([m | 127]) + struct.pack(">Q", n)
        if mask:
            key = os.urandom(4)
            h += key
            payload = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
        return h + payload

    def send(self, opcode, payload=b"", **kw):
        self.sock.sendall(self.frame(opcode, payload, **kw))

    def recv_frame(self):
        """(fin, opcode, payload) of the next frame from the server; Closed at EOF."""
        b0, b1 = self._take(2)
        assert b1 & 0x80 == 0, "server frames must not be masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._take(8))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self._take(n)

    def recv_message(self):
        """Next data message (opcode, payload), answering nothing; control frames skipped."""
        parts, op = [], None
        while True:
            fin, opcode, payload = self.recv_frame()
            if opcode >= 8:
                if opcode == 8:
                    raise AssertionError(f"close frame instead of a message: {payload!r}")
                continue
            if op is None:
                op = opcode
            parts.append(payload)
            if fin:
                return op, b"".join(parts)

    def expect_close(self, code, what=""):
        """The server's next close frame carries code; then the server closes the TCP stream."""
        while True:
            try:
                fin, opcode, payload = self.recv_frame()
            except Closed:
                raise AssertionError(f"{what}: TCP closed without a close frame (want {code})")
            if opcode == 8:
                break
        got = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
        assert got == code, f"{what}: close code {got} (reason {payload[2:]!r}), want {code}"
        self.expect_eof(what)
        return payload[2:]

    def expect_eof(self, what="", timeout=10):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            try:
                self._fill()
                self.buf = b""
            except Closed:
                return
            except socket.timeout:
                break
        raise AssertionError(f"{what}: server did not close the connection")



def http_raw(port, req, timeout=10):
    """One raw HTTP exchange; returns (status, head, body-so-far)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    try:
        s.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data:
            b = s.recv(65536)
            if not b:
                break
            data += b
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), head.decode("latin-1"), body
    finally:
        s.close()


# ---------------------------------------------------------------- echo and framing


def check_echo(s):
    async def go():
        async with connect(s) as ws:
            for n in SIZES:
                t = text_pattern(n)
                await ws.send(t)
                got = await ws.recv()
                assert isinstance(got, str) and got == t, f"text {n}: got {len(got)} chars"
                b = pattern(n, n)
                await ws.send(b)
                got = await ws.recv()
                assert isinstance(got, bytes) and got == b, f"binary {n}: got {len(got)} bytes"
            # non-ASCII text round-trips as text
            await ws.send("héllo wörld ✓ 😀")
            assert await ws.recv() == "héllo wörld ✓ 😀"
    arun(go())


def test_echo_sizes_process():
    with running(ws_server("process", "echo")) as s:
        check_echo(s)


def test_echo_sizes_base():
    with running(ws_server("base", "echo")) as s:
        check_echo(s)


def test_fragmentation():
    with running(ws_server("process", "frag")) as s:
        async def go():
            async with connect(s) as ws:
                # the client sends one message as many fragments; the app sees it whole
                parts = [text_pattern(1000)[i:i + 100] for i in range(0, 1000, 100)]
                await ws.send(iter(parts))
                assert await ws.recv() == "".join(parts)
                bparts = [pattern(70000, 3)[i:i + 7000] for i in range(0, 70000, 7000)]
                await ws.send(iter(bparts))
                assert await ws.recv() == b"".join(bparts)
        arun(go())
        with RawWS(s.port()) as c:
            # fragments with a ping between them: the pong comes first, then the whole message
            c.send(1, b"hello ", fin=False)
            c.send(0, b"big ", fin=False)
            c.send(9, b"mid-ping")
            c.send(0, b"world", fin=True)
            fin, op, payload = c.recv_frame()
            assert (fin, op, payload) == (True, 10, b"mid-ping"), (fin, op, payload)
            assert c.recv_message() == (1, b"hello big world")
            # a UTF-8 character split between two fragments is valid
            e = "é✓".encode()
            c.send(1, e[:1], fin=False)
            c.send(0, e[1:3], fin=False)
            c.send(0, e[3:], fin=True)
            assert c.recv_message() == (1, e)
            # empty fragments are fine too
            c.send(2, b"", fin=False)
            c.send(0, b"x", fin=False)
            c.send(0, b"", fin=True)
            assert c.recv_message() == (2, b"x")


def test_ping_pong():
    with running(ws_server("process", "ping")) as s:
        async def go():
            async with connect(s) as ws:
                for payload in (b"", b"abc", pattern(125)):
                    waiter = await ws.ping(payload)
                    await asyncio.wait_for(waiter, 10 * SLOW)
                await ws.send("still there")
                assert await ws.recv() == "still there"
        arun(go())
        with RawWS(s.port()) as c:
            c.send(9, b"raw ping")
            assert c.recv_frame() == (True, 10, b"raw ping")
            c.send(10, b"unsolicited pong")  # must be ignored
            c.send(1, b"after")
            assert c.recv_message() == (1, b"after")


# ---------------------------------------------------------------- close paths


def test_client_close_code_reason():
    with running(ws_server("process", "close")) as s:
        async def go():
            ws = await connect(s)
            await ws.send("x")
            assert await ws.recv() == "x"
            await ws.close(4321, "bye now")
            assert ws.close_code == 4321, ws.close_code
        arun(go())
        with RawWS(s.port()) as c:
            c.send(8, struct.pack(">H", 1000) + b"done")
            c.expect_close(1000, "raw client close")
        with RawWS(s.port()) as c:
            c.send(8, b"")  # close without a code: answered with no code or 1000
            fin, op, payload = c.recv_frame()
            assert op == 8 and payload in (b"", struct.pack(">H", 1000)), (op, payload)
            c.expect_eof("empty close")
        # a close code that may not be sent on the wire is a protocol error
        for bad in (1005, 1006, 999, 5000):
            with RawWS(s.port()) as c:
                c.send(8, struct.pack(">H", bad))
                c.expect_close(1002, f"close code {bad}")
        # close reason that is not UTF-8 → 1007
        with RawWS(s.port()) as c:
            c.send(8, struct.pack(">H", 1000) + b"\xff\xfe")
            fin, op, payload = c.recv_frame()
            assert op == 8 and struct.unpack(">H", payload[:2])[0] in (1007, 1002), payload
        assert s.get("/")[0] == 200


def test_client_close_reason_echoed():
    """The server's answer to a client's close carries the client's code and reason back."""
    with running(ws_server("process", "reason")) as s:
        async def go():
            ws = await connect(s)
            await ws.close(4321, "bye now")
            assert (ws.close_code, ws.close_reason) == (4321, "bye now"), \
                (ws.close_code, ws.close_reason)
        arun(go())
        with RawWS(s.port()) as c:
            c.send(8, struct.pack(">H", 1001) + b"leaving")
            reason = c.expect_close(1001, "raw client close with a reason")
            assert reason == b"leaving", reason


def test_server_close_on_stop():
    """Stopping the server closes every WebSocket with 1001 going away."""
    with running(ws_server("process", "stop")) as s:
        async def go():
            ws = await connect(s)
            await ws.send("x")
            assert await ws.recv() == "x"
            r = await asyncio.get_running_loop().run_in_executor(None, s.stop)
            assert r.returncode == 0, r.stderr
            await asyncio.wait_for(ws.wait_closed(), 10 * SLOW)
            assert ws.close_code == 1001, (ws.close_code, ws.close_reason)
        arun(go())


def protocol_error(s, frames, code, what):
    with RawWS(s.port()) as c:
        for f in frames:
            c.sock.sendall(f)
        c.expect_close(code, what)


def check_protocol_errors(s):
    F = RawWS.frame
    protocol_error(s, [F(1, b"hello", mask=False)], 1002, "unmasked text frame")
    protocol_error(s, [F(2, b"", mask=False)], 1002, "unmasked empty binary frame")
    protocol_error(s, [F(1, b"ab\xff\xfecd")], 1007, "invalid UTF-8 text")
    protocol_error(s, [F(1, b"\xc0\xaf")], 1007, "overlong UTF-8")
    protocol_error(s, [F(1, b"\xed\xa0\x80")], 1007, "UTF-16 surrogate in UTF-8")
    protocol_error(s, [F(1, b"ok\xe2\x82", fin=False), F(0, b"x")], 1007,
                   "truncated character across fragments")
    protocol_error(s, [F(1, b"abc\xe2\x82", fin=True)], 1007, "truncated character at the end")
    protocol_error(s, [F(9, b"p" * 126)], 1002, "ping over 125 bytes")
    protocol_error(s, [F(8, struct.pack(">H", 1000) + b"r" * 124)], 1002,
                   "close over 125 bytes")
    protocol_error(s, [F(9, b"ab", fin=False)], 1002, "fragmented ping")
    protocol_error(s, [F(8, struct.pack(">H", 1000), fin=False)], 1002, "fragmented close")
    protocol_error(s, [F(0, b"orphan")], 1002, "continuation without a start")
    protocol_error(s, [F(1, b"a", fin=False), F(1, b"b")], 1002, "new message inside another")
    protocol_error(s, [F(3, b"x")], 1002, "reserved opcode 3")
    protocol_error(s, [F(0xB, b"x")], 1002, "reserved control opcode 0xB")
    protocol_error(s, [F(1, b"x", rsv=4)], 1002, "RSV1 without an extension")
    protocol_error(s, [F(1, b"x", rsv=1)], 1002, "RSV3")
    protocol_error(s, [F(2, b"y" * 2000)], 1009, "message over websocket_max_message_size")
    protocol_error(s, [F(2, b"y" * 600, fin=False), F(0, b"y" * 600)], 1009,
                   "fragments over websocket_max_message_size")
    # an announced length over the limit is refused at its first payload byte, long before
    # the rest could arrive
    protocol_error(s, [F(2, b"y", length=1 << 30)], 1009, "announced 1 GiB")
    # exactly the limit passes, and the server still serves others after all this
    with RawWS(s.port()) as c:
        c.send(2, b"z" * 1024)
        assert c.recv_message() == (2, b"z" * 1024)
    assert s.get("/")[0] == 200


def test_protocol_errors_process():
    with running(ws_server("process", "proto", {"websocket_max_message_size": 1024})) as s:
        check_protocol_errors(s)


def test_protocol_errors_base():
    with running(ws_server("base", "proto", {"websocket_max_message_size": 1024})) as s:
        check_protocol_errors(s)


# ---------------------------------------------------------------- handshake


def test_handshake():
    with running(ws_server("process", "hs")) as s:
        p = s.port()
        base = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
        key = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        ver = b"Sec-WebSocket-Version: 13\r\n"
        st, head, _ = http_raw(p, base + ver + b"\r\n")
        assert st == 400, ("missing key", head)
        st, head, _ = http_raw(p, base + key + b"Sec-WebSocket-Version: 8\r\n\r\n")
        assert st in (400, 426), ("wrong version", head)
        if st == 426:
            assert "sec-websocket-version: 13" in head.lower(), head
        st, head, _ = http_raw(p, base + key + b"\r\n")
        assert st in (400, 426), ("missing version", head)
        st, head, _ = http_raw(p, base + b"Sec-WebSocket-Key: short\r\n" + ver + b"\r\n")
        assert st == 400, ("bad key", head)
        st, head, _ = http_raw(p, base.replace(b"GET", b"POST") + key + ver +
                               b"Content-Length: 0\r\n\r\n")
        assert st in (400, 405), ("POST upgrade", head)
        # the RFC's sample key gives the RFC's sample accept value
        st, head, _ = http_raw(p, base + key + ver + b"\r\n")
        assert st == 101, head
        assert "s3pplmbitxaq9kygzzhzrbk+xoo=" in head.lower(), head
        # plain HTTP on the same listener still reaches the app
        st, _, body = s.get("/")
        assert (st, body) == (200, b"Hello, World!")
        st, _, body = s.get("/echo", method="POST", body=b"abc")
        assert (st, body) == (200, b"abc")
        # a path the app refuses (on_ws_open returns 4004): upgraded, then at once closed with
        # the app's code; frames the client sends meanwhile are not answered
        with RawWS(p, "/nope") as c:
            c.send(1, b"anyone there?")
            assert c.expect_close(4004, "refused path") == b"refused"

        async def go():
            async with connect(s, "/nope") as ws:
                try:
                    await asyncio.wait_for(ws.recv(), 10 * SLOW)
                    raise AssertionError("refused connection delivered a message")
                except websockets.exceptions.ConnectionClosed:
                    assert (ws.close_code, ws.close_reason) == (4004, "refused"), \
                        (ws.close_code, ws.close_reason)
        arun(go())
        assert s.get("/")[0] == 200


def test_refused_base():
    """Base mode: the worker owns the socket and refuses in the same call."""
    with running(ws_server("base", "refused-base")) as s:
        for _ in range(3):
            with RawWS(s.port(), "/nope") as c:
                c.send(2, b"x" * 300)
                assert c.expect_close(4004, "refused path") == b"refused"
        with RawWS(s.port()) as c:
            c.send(1, b"still serving")
            assert c.recv_message() == (1, b"still serving")


def test_no_websocket_listener():
    """Without websocket = true an upgrade is not accepted (plain HTTP answer, never 101)."""
    srv = Server(listeners=[{"name": "http", "type": "http"}], name="nows")
    with running(srv) as s:
        st, head, _ = http_raw(s.port(), b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                               b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        assert st != 101, head


# ---------------------------------------------------------------- compression


def test_permessage_deflate():
    with running(ws_server("process", "deflate", {"websocket_compression": True})) as s:
        async def go():
            async with connect(s, compression="deflate") as ws:
                ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
                assert "permessage-deflate" in ext, ws.response_headers
                for n in (0, 1, 125, 5000, 70000, 1 << 20):
                    t = text_pattern(n)
                    await ws.send(t)
                    assert await ws.recv() == t, n
                    b = os.urandom(n)  # incompressible
                    await ws.send(b)
                    assert await ws.recv() == b, n
                await ws.send("héllo ✓")
                assert await ws.recv() == "héllo ✓"
            # a client that does not offer it gets plain frames
            async with connect(s, compression=None) as ws:
                assert "Sec-WebSocket-Extensions" not in ws.response_headers
                await ws.send("plain")
                assert await ws.recv() == "plain"
        arun(go())
    # compression off on the listener: the offer is declined, messages still work
    with running(ws_server("process", "nodeflate")) as s:
        async def go2():
            async with connect(s, compression="deflate") as ws:
                assert "permessage-deflate" not in ws.response_headers.get(
                    "Sec-WebSocket-Extensions", ""), ws.response_headers
                await ws.send("x" * 1000)
                assert await ws.recv() == "x" * 1000
        arun(go2())


# ---------------------------------------------------------------- broadcast


def check_broadcast(s, n=1000):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))

    async def go():
        sem = asyncio.Semaphore(100)

        async def one():
            async with sem:
                return await connect(s, "/chat")
        clients = await asyncio.gather(*[one() for _ in range(n)])
        try:
            msg = f"hello all {os.getpid()}"
            t0 = time.monotonic()
            await clients[0].send(msg)

            async def got(ws):
                m = await asyncio.wait_for(ws.recv(), 30 * SLOW)
                assert m.startswith("#") and m.endswith(": " + msg), m
                return m
            msgs = await asyncio.gather(*[got(ws) for ws in clients])
            elapsed = time.monotonic() - t0
            assert len(set(msgs)) == 1, set(msgs)  # every copy names the same sender
            assert elapsed < 20 * SLOW, elapsed
        finally:
            await asyncio.gather(*[ws.close() for ws in clients], return_exceptions=True)
    arun(go(), timeout=120)


def test_broadcast_1000_process():
    with running(ws_server("process", "bcast")) as s:
        check_broadcast(s)


def test_broadcast_1000_base():
    with running(ws_server("base", "bcast", server={"worker_num": 1})) as s:
        check_broadcast(s)


def test_chat_leaves():
    """A closed /chat client no longer receives; the others do."""
    with running(ws_server("process", "chat")) as s:
        async def go():
            a = await connect(s, "/chat")
            b = await connect(s, "/chat")
            c = await connect(s, "/chat")
            await c.close()
            await a.send("one")
            for ws in (a, b):
                assert (await asyncio.wait_for(ws.recv(), 10 * SLOW)).endswith(": one")
            await b.send(b"binary is ignored by chat")
            await b.send("two")
            for ws in (a, b):
                assert (await asyncio.wait_for(ws.recv(), 10 * SLOW)).endswith(": two")
            await a.close()
            await b.close()
        arun(go())


# ---------------------------------------------------------------- liveness


def check_ping_interval(mode):
    """websocket_ping_interval: a client that never answers pings is closed; one that does
    stays connected."""
    with running(ws_server(mode, "pingiv", {"websocket_ping_interval": 300})) as s:
        async def good():
            async with connect(s) as ws:  # websockets answers pings by itself
                await asyncio.sleep(3)  # ten intervals, while the deaf client is dropped
                await ws.send("alive")
                assert await ws.recv() == "alive"
                assert ws.close_code is None

        deaf = RawWS(s.port())
        try:
            t0 = time.monotonic()
            arun(good())
            pings = 0
            while True:
                try:
                    fin, op, _ = deaf.recv_frame()
                except (Closed, socket.timeout):
                    break
                pings += op == 9
            elapsed = time.monotonic() - t0
            assert pings >= 1, "the server never pinged"
            assert elapsed < 15 * SLOW, f"deaf client still open after {elapsed:.1f}s"
        finally:
            deaf.close()


def test_ping_interval_process():
    check_ping_interval("process")


def test_ping_interval_base():
    check_ping_interval("base")


def test_heartbeat_idle_time():
    srv = ws_server("process", "hbidle",
                    server={"heartbeat_check_interval": 1, "heartbeat_idle_time": 2})
    with running(srv) as s:
        async def active():
            async with connect(s) as ws:
                for i in range(10):  # 5 s of traffic every 0.5 s: never idle for 2 s
                    await ws.send(str(i))
                    assert await ws.recv() == str(i)
                    await asyncio.sleep(0.5)
        idle = RawWS(s.port())
        try:
            t0 = time.monotonic()
            arun(active())
            try:
                while True:
                    idle.recv_frame()
            except (Closed, socket.timeout):
                pass
            elapsed = time.monotonic() - t0
            assert elapsed < 10 * SLOW, f"idle connection open after {elapsed:.1f}s"
            idle.expect_eof("idle connection", timeout=1)
        finally:
            idle.close()


def check_slow_reader(mode):
    """A client that never reads while its echoes pile up is closed past buffer_output_size;
    the server keeps serving others."""
    with running(ws_server(mode, "slow", server={"buffer_output_size": 65536})) as s:
        slow = RawWS(s.port(), rcvbuf=4096, timeout=5)
        msg = RawWS.frame(2, pattern(32768))
        sent = 0
        closed = False
        deadline = time.monotonic() + 60 * SLOW
        try:
            while sent < (256 << 20) and time.monotonic() < deadline:
                try:
                    slow.sock.sendall(msg)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                except socket.timeout:
                    raise AssertionError(f"server stopped reading after {sent} bytes but kept "
                                         "the slow connection open")
                sent += len(msg)
            if not closed:
                raise AssertionError(f"slow reader not closed after {sent} bytes")
            # others are still served, over WebSocket and HTTP
            async def other():
                async with connect(s) as ws:  # under buffer_output_size: srv_ws_push
                    await ws.send(pattern(30000))  # refuses bigger messages (-EMSGSIZE)
                    assert await ws.recv() == pattern(30000)
            arun(other())
            assert s.get("/")[0] == 200
            wait_for(lambda: "buffer_output_size" in s.log(), 10, "a log line about the close")
        finally:
            slow.close()


def test_slow_reader_process():
    check_slow_reader("process")


def test_slow_reader_base():
    check_slow_reader("base")


if __name__ == "__main__":
    run([test_echo_sizes_process, test_echo_sizes_base, test_fragmentation, test_ping_pong,
         test_client_close_code_reason, test_client_close_reason_echoed,
         test_server_close_on_stop, test_protocol_errors_process,
         test_protocol_errors_base, test_handshake, test_refused_base,
         test_no_websocket_listener,
         test_permessage_deflate, test_broadcast_1000_process, test_broadcast_1000_base,
         test_chat_leaves, test_ping_interval_process, test_ping_interval_base,
         test_heartbeat_idle_time, test_slow_reader_process, test_slow_reader_base])
