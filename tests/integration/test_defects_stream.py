"""Issue 11, remote clients: slow readers stall nobody (back-pressure reaches the app, a client
that reads nothing within send_timeout is closed), an abandoned stream stops its app, bodies up
to package_max_length reach the app whatever their size, per-listener package_max_length wins
(HTTP bodies and UDP datagrams), unix datagrams over 64 KiB arrive whole, and a listener's
heartbeat closes idle keep-alive HTTP connections. Process and base modes."""
import os
import socket
import tempfile
import time

from srvtest import SLOW, Server, run, running, wait_for
from test_http import RawConn, build, chunked, each_mode, server

GIB = 1 << 30


def slow_client(port):
    """A client that asks for a GiB and never reads, with a tiny receive buffer."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(build("GET", f"/big?bytes={GIB}"))
    return s


def big_stats(s):
    st, _, body = s.get("/big/stats")
    assert st == 200, st
    f = body.split()
    return int(f[1]), int(f[3])  # active, aborted


def closed_soon(sock, timeout):
    """True once the peer closed sock (EOF or reset), reading and discarding what it sent."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        try:
            if sock.recv(1 << 20) == b"":
                return True
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


@each_mode
def test_slow_readers_stall_nobody(mode):
    srv = server(mode, "slowread", server={"send_timeout": 1500, "dispatch_mode": 1})
    with running(srv) as s:
        slow = [slow_client(s.port()) for _ in range(2)]
        try:
            # both streams are under way and blocked on their clients
            wait_for(lambda: big_stats(s)[0] == 2, 10, "two /big streams running")
            t0 = time.monotonic()
            for i in range(20):
                with RawConn(s.port(), timeout=3) as c:
                    r = c.request("GET", "/")
                    assert r.status == 200 and r.body == b"Hello, World!", (i, r)
            took = time.monotonic() - t0
            assert took < 3 * SLOW, f"20 requests took {took:.1f}s beside two slow readers"
            # neither slow client reads: each is closed after send_timeout, and its app stops
            wait_for(lambda: big_stats(s) == (0, 2), 10, "both streams stopped as aborted")
            assert s.log().count("send timeout (1500 ms)") == 2, s.log()
            for c in slow:  # what is left in the socket buffers, then the end
                assert closed_soon(c, 10), "a client that never reads was not closed"
        finally:
            for c in slow:
                c.close()


@each_mode
def test_abandoned_stream_stops_the_app(mode):
    with running(server(mode, "abandon")) as s:
        c = socket.create_connection(("127.0.0.1", s.port()))
        c.sendall(build("GET", f"/big?bytes={GIB}"))
        got = 0
        while got < 1 << 20:
            got += len(c.recv(65536))
        # reset, as a browser tab that is closed
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        wait_for(lambda: big_stats(s) == (0, 1), 10, "the stream stopped after the reset")
        t0 = time.monotonic()
        assert s.get("/")[0] == 200
        assert time.monotonic() - t0 < 2 * SLOW


@each_mode
def test_pipelined_responses_larger_than_the_buffer(mode):
    """A response kept in the worker beyond buffer_output_size, then a pipelined stream on the
    same connection (same session): the second must not inherit the first's state."""
    with running(server(mode, "pipeflow", server={"buffer_output_size": 262144})) as s:
        body = os.urandom(400000)
        with RawConn(s.port(), timeout=20) as c:
            c.send(build("POST", "/echo", {}, body) + build("GET", "/big?bytes=500000") +
                   build("GET", "/"))
            assert c.read_response("POST").body == body
            assert len(c.read_response().body) == 500000
            assert c.read_response().body == b"Hello, World!"


def post(port, n, chunked_body=False, expect=False, timeout=30):
    body = os.urandom(n)
    with RawConn(port, timeout=timeout) as c:
        h = {"Content-Type": "application/octet-stream"}
        if expect:
            h["Expect"] = "100-continue"
        if chunked_body:
            h["Transfer-Encoding"] = "chunked"
            c.send(build("POST", "/echo", h, chunked(body, 65536)))
        else:
            c.send(build("POST", "/echo", h, body))
        r = c.read_response("POST")
        if expect:
            assert r.status == 100, r
            r = c.read_response("POST")
        return r.status, r.body == body, len(r.body)


@each_mode
def test_bodies_up_to_the_limit_reach_the_app(mode):
    limit = 8388608
    with running(server(mode, "bodies", server={"package_max_length": limit})) as s:
        bad = []
        for n in [2097151, 2097152, 3000000, 4 << 20, 8000000, limit]:
            for ch in (False, True):
                st, same, got = post(s.port(), n, chunked_body=ch)
                if st != 200 or not same:
                    bad.append((n, "chunked" if ch else "length", st, got))
        assert not bad, f"bodies not delivered whole (size, framing, status, got): {bad}"
        assert post(s.port(), limit + 1)[0] == 413
        assert s.get("/")[0] == 200
    with running(server(mode, "bodies-default")) as s:
        # exactly the default limit, announced with Expect: 100-continue
        st, same, _ = post(s.port(), 2097152, expect=True)
        assert st == 200 and same, st
        assert post(s.port(), 2097153)[0] == 413


@each_mode
def test_listener_package_max_length_wins(mode):
    ls = [{"name": "small", "type": "http", "package_max_length": 65536},
          {"name": "large", "type": "http", "package_max_length": 4 << 20},
          {"name": "default", "type": "http"}]
    with running(Server(listeners=ls, server={"mode": mode, "package_max_length": 1 << 20},
                        name=f"perlisten-{mode}")) as s:
        for ch in (False, True):
            assert post(s.port(0), 65536, ch)[:2] == (200, True)
            assert post(s.port(0), 100000, ch)[0] == 413
            assert post(s.port(1), 3000000, ch)[:2] == (200, True)
            assert post(s.port(2), 1 << 20, ch)[:2] == (200, True)
            assert post(s.port(2), 3000000, ch)[0] == 413


def dgram_client(family, tmp):
    c = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_UNIX:
        c.bind(os.path.join(tmp, "c.sock"))
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        c.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
    c.settimeout(10 * SLOW)
    return c


@each_mode
def test_datagram_limits(mode):
    tmp = tempfile.mkdtemp(prefix="srvtest-dgram-")
    ls = [{"name": "http", "type": "http"},
          {"name": "udp", "type": "udp", "package_max_length": 100},
          {"name": "unix", "type": "udp", "path": os.path.join(tmp, "u.sock"),
           "package_max_length": 150000}]
    srv = Server(listeners=ls, server={"mode": mode}, name=f"dgram-{mode}")
    try:
        with running(srv) as s:
            with dgram_client(socket.AF_INET, tmp) as c:
                addr = ("127.0.0.1", s.port(1))
                c.sendto(b"a" * 200, addr)  # over this listener's limit: dropped
                c.sendto(b"b" * 100, addr)
                assert c.recvfrom(70000)[0] == b"b" * 100
            wait_for(lambda: "dropped a 200-byte datagram" in s.log(), 10, "the drop logged")
            with dgram_client(socket.AF_UNIX, tmp) as c:
                big = os.urandom(140000)  # over 64 KiB, under the limit: whole
                c.sendto(big, ls[2]["path"])
                assert c.recvfrom(1 << 20)[0] == big
                c.sendto(b"x" * 150001, ls[2]["path"])  # over the limit: dropped, not cut
                c.sendto(b"y" * 70000, ls[2]["path"])
                assert c.recvfrom(1 << 20)[0] == b"y" * 70000
            wait_for(lambda: "dropped a 150001-byte datagram" in s.log(), 10, "drop logged")
            dropped = sum(w["udp_dropped"] for w in s.info()["workers"])
            assert dropped == 2, s.info()["workers"]
    finally:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


@each_mode
def test_heartbeat_closes_idle_keepalive_http(mode):
    ls = [{"name": "http", "type": "http", "heartbeat_idle_time": 1}]
    with running(Server(listeners=ls, server={"mode": mode}, name=f"hbhttp-{mode}")) as s:
        with RawConn(s.port()) as c:
            assert c.request("GET", "/").status == 200
            t0 = time.monotonic()
            assert c.closed_by_peer(10), "idle keep-alive connection not closed by heartbeat"
            took = time.monotonic() - t0
            assert 0.5 < took < 3 * SLOW, f"closed after {took:.1f}s, heartbeat_idle_time 1 s"


if __name__ == "__main__":
    run([test_slow_readers_stall_nobody, test_abandoned_stream_stops_the_app,
         test_pipelined_responses_larger_than_the_buffer,
         test_bodies_up_to_the_limit_reach_the_app, test_listener_package_max_length_wins,
         test_datagram_limits, test_heartbeat_closes_idle_keepalive_http])
