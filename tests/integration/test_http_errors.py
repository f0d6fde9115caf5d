"""Bad input gets a clear answer and nothing else breaks: malformed requests (400 + close),
oversized headers (431), bodies over package_max_length (413), unsupported Transfer-Encoding
(501), header/body/keep-alive timeouts (408 / close) and max_conn. After each, other connections
keep working. Runs in process and base mode."""
import socket
import time

from srvtest import SLOW, run, running
from test_http import RawConn, build, each_mode, server

TIMEOUTS = {"http_header_timeout": 1000, "http_body_timeout": 1000,
            "http_keepalive_timeout": 1000}


def still_works(s):
    with RawConn(s.port()) as c:
        r = c.request("GET", "/")
        assert r.status == 200 and r.body == b"Hello, World!", r


def answer_and_close(s, data, status, what):
    """Send data on a fresh connection: expect exactly one response `status` (an int or a tuple
    of acceptable ones), then close."""
    with RawConn(s.port()) as c:
        c.send(data)
        r = c.read_response()
        assert r.status in (status if isinstance(status, tuple) else (status,)), (what, r)
        assert r.h("connection", "").lower() == "close", (what, r)
        assert c.closed_by_peer(5), f"{what}: connection not closed after {status}"
        assert c.buf == b"", (what, c.buf[:200])
        return r


@each_mode
def test_malformed_400(mode):
    with running(server(mode, "bad")) as s:
        # a keep-alive connection open across the bad requests must be unaffected
        with RawConn(s.port()) as bystander:
            assert bystander.request("GET", "/").status == 200
            cases = [b"GARBAGE\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
                     b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                     b"Content-Length: 2\r\n\r\nab",
                     b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                     b"GET / HTTP/1.1\r\nHo\x00st: x\r\n\r\n",
                     # both framings at once: a request-smuggling vector, refused
                     b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"]
            for data in cases:
                answer_and_close(s, data, 505 if b"HTTP/9.9" in data else 400, data)
            # a malformed request after a good one on the same connection: 200, then 400, close
            with RawConn(s.port()) as c:
                c.send(build("GET", "/") + b"NOT HTTP AT ALL\r\n\r\n")
                assert c.read_response().status == 200
                r = c.read_response()
                assert r.status == 400, r
                assert c.closed_by_peer(5)
            assert bystander.request("GET", "/").status == 200
        still_works(s)


@each_mode
def test_headers_too_large_431(mode):
    with running(server(mode, "hdr", server={"http_header_max": 4096})) as s:
        answer_and_close(s, build("GET", "/", {"X-Big": "a" * 8000}), 431, "one big header")
        many = {f"X-H{i}": "v" * 40 for i in range(200)}
        answer_and_close(s, build("GET", "/", many), 431, "many headers")
        # a long request line counts too: 414, the status for a long target
        with RawConn(s.port()) as c:
            c.send(build("GET", "/" + "p" * 8000))
            r = c.read_response()
            assert r.status == 414, r
            assert c.closed_by_peer(5)
        # just under the limit is fine
        with RawConn(s.port()) as c:
            r = c.request("GET", "/headers", {"X-Ok": "b" * 3000})
            assert r.status == 200 and b"X-Ok: " in r.body, r
        still_works(s)


@each_mode
def test_body_too_large_413(mode):
    with running(server(mode, "body", server={"package_max_length": 1024})) as s:
        answer_and_close(s, build("POST", "/echo", body=b"z" * 2048), 413, "content-length")
        # announced but not sent: must be answered without waiting for the body
        with RawConn(s.port()) as c:
            t0 = time.monotonic()
            c.send(build("POST", "/echo", {"Content-Length": str(10 << 20)}))
            r = c.read_response()
            assert r.status == 413 and time.monotonic() - t0 < 3 * SLOW, r
        # Expect: 100-continue with a too-large body: 413 instead of 100
        with RawConn(s.port()) as c:
            c.send(build("POST", "/echo", {"Content-Length": "5000", "Expect": "100-continue"}))
            r = c.read_response()
            assert r.status == 413, r
        # chunked bodies are counted as they arrive
        body = b"5dc\r\n" + b"c" * 1500 + b"\r\n0\r\n\r\n"
        answer_and_close(s, build("POST", "/echo", {"Transfer-Encoding": "chunked"}, body), 413,
                         "chunked")
        # exactly at the limit passes
        with RawConn(s.port()) as c:
            r = c.request("POST", "/echo", body=b"k" * 1024)
            assert r.status == 200 and r.body == b"k" * 1024, r
        still_works(s)


@each_mode
def test_unsupported_transfer_encoding_501(mode):
    with running(server(mode, "te")) as s:
        for te in ["gzip", "x-custom"]:
            answer_and_close(s, build("POST", "/echo", {"Transfer-Encoding": te}, b"abc"), 501, te)
        still_works(s)


def trickle(c, data, interval, deadline):
    """Send data one byte at a time every `interval` s until the server answers or closes."""
    c.s.settimeout(interval)
    for b in data:
        if time.monotonic() > deadline:
            break
        try:
            c.s.sendall(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            return
        try:
            got = c.s.recv(65536)
            if not got:
                return
            c.buf += got
            return
        except socket.timeout:
            pass


@each_mode
def test_slowloris_header_timeout_408(mode):
    with running(server(mode, "slowloris", server=dict(TIMEOUTS))) as s:
        with RawConn(s.port()) as c:
            t0 = time.monotonic()
            data = build("GET", "/", {"X-Slow": "s" * 200})
            trickle(c, data, 0.2, t0 + 10 * SLOW)
            c.s.settimeout(10 * SLOW)
            r = c.read_response()
            took = time.monotonic() - t0
            assert r.status == 408, r
            assert c.closed_by_peer(5), "not closed after 408"
            # header timeout is 1 s for the whole head (not reset by every byte)
            assert 0.8 < took < 4 * SLOW, took
        # a second request that stops half-way through its head on a keep-alive connection
        with RawConn(s.port()) as c:
            assert c.request("GET", "/").status == 200
            t0 = time.monotonic()
            c.send(b"GET /worker HTTP/1.1\r\nHo")
            r = c.read_response()
            assert r.status == 408, r
            assert time.monotonic() - t0 < 4 * SLOW
            assert c.closed_by_peer(5)
        # a client that connects and sends nothing at all is also closed (408 or silently)
        with RawConn(s.port()) as c:
            t0 = time.monotonic()
            assert c.closed_by_peer(6), "silent connection never closed"
            assert time.monotonic() - t0 < 4 * SLOW
            assert c.buf == b"" or c.buf.startswith(b"HTTP/1.1 408"), c.buf
        still_works(s)


@each_mode
def test_body_timeout_408(mode):
    with running(server(mode, "bodyto", server=dict(TIMEOUTS))) as s:
        with RawConn(s.port()) as c:
            t0 = time.monotonic()
            c.send(build("POST", "/echo", {"Content-Length": "100"}) + b"only part")
            r = c.read_response()
            assert r.status == 408, r
            assert 0.8 < time.monotonic() - t0 < 4 * SLOW
            assert c.closed_by_peer(5)
        still_works(s)


@each_mode
def test_keepalive_idle_timeout(mode):
    with running(server(mode, "kato", server=dict(TIMEOUTS))) as s:
        with RawConn(s.port()) as c:
            assert c.request("GET", "/").status == 200
            t0 = time.monotonic()
            assert c.closed_by_peer(6), "idle keep-alive connection not closed"
            took = time.monotonic() - t0
            assert 0.8 < took < 4 * SLOW, took
            # no 408 for an idle keep-alive connection: just closed
            assert c.buf == b"", c.buf
        # a connection that keeps talking within the timeout survives longer than it
        with RawConn(s.port()) as c:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 2.5:
                assert c.request("GET", "/").status == 200
                time.sleep(0.4)
        # a slow request is not cut by the keep-alive/header timeouts (the app takes its time)
        with RawConn(s.port()) as c:
            r = c.request("GET", "/sleep?ms=1800")
            assert r.status == 200, r
        still_works(s)


@each_mode
def test_max_conn(mode):
    with running(server(mode, "maxconn", server={"max_conn": 5})) as s:
        conns = [RawConn(s.port()) for _ in range(5)]
        try:
            for c in conns:
                assert c.request("GET", "/").status == 200
            extra = RawConn(s.port())
            try:
                try:
                    extra.send(build("GET", "/"))
                except (BrokenPipeError, ConnectionResetError):
                    pass
                assert extra.closed_by_peer(5), "6th connection was not refused"
                # closed without a 200 (a 503 is an acceptable courtesy)
                assert extra.buf == b"" or b" 503 " in extra.buf.split(b"\r\n")[0], extra.buf
            finally:
                extra.close()
            for c in conns:
                r = c.request("GET", "/worker")
                assert r.status == 200, r
        finally:
            for c in conns:
                c.close()
        # once they are gone, new connections are accepted again
        def ok():
            with RawConn(s.port()) as c:
                return c.request("GET", "/").status == 200
        from srvtest import wait_for
        wait_for(ok, 5, "new connection accepted after the others closed")


if __name__ == "__main__":
    run([test_malformed_400, test_headers_too_large_431, test_body_too_large_413,
         test_unsupported_transfer_encoding_501, test_slowloris_header_timeout_408,
         test_body_timeout_408, test_keepalive_idle_timeout, test_max_conn])
