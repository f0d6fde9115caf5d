"""Bad input on TLS ports, none of which may disturb other connections: a plaintext HTTP request
gets an HTTP 400 in plain text saying it needs TLS, and is closed; garbage bytes are closed (and
logged at info); half a ClientHello then a close, or a stall, changes nothing; 200 connections
that never finish a handshake are closed after ssl_handshake_timeout while a normal HTTPS client
is served meanwhile; client-initiated renegotiation is refused (openssl s_client "R") and the
server keeps serving; a missing client certificate where one is required fails the handshake.
Process and base mode."""
import os
import re
import select
import socket
import ssl
import time

from srvtest import SLOW, run, running, wait_for
from test_http import each_mode
from tlscerts import (HTTPSConn, certs, client_ctx, curl_https, s_client, tls_info, tls_server,
                      tls_socket)


def read_to_close(sock, timeout=10):
    """Everything the server sends until it closes; fails if it stays open past the timeout."""
    sock.settimeout(timeout * SLOW)
    out = b""
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                return out
            out += b
    except ConnectionResetError:
        return out
    except socket.timeout:
        raise AssertionError(f"still open after {timeout * SLOW}s; got {out[:200]!r}")


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)


def client_hello():
    """A real ClientHello from Python's ssl, as bytes."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    assert hello[:1] == b"\x16" and len(hello) > 100, hello[:20]
    return hello


def keepalive(port):
    """An established HTTPS keep-alive connection that answered once."""
    c = HTTPSConn(port)
    c.request("GET", "/")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"Hello, World!"
    return c


def still_fine(c, port):
    """c (from keepalive) and new connections are served."""
    for _ in range(3):
        c.request("GET", "/")
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"Hello, World!", r.status
    assert tls_info(port)["tls"] is True


@each_mode
def test_plain_http_to_tls_port(mode):
    with running(tls_server(mode, "plain2tls")) as s:
        c = keepalive(s.port())
        for req in (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
                    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
                    b"GET / HTTP/1.0\r\n\r\n"):
            with connect(s.port()) as sock:
                sock.sendall(req)
                out = read_to_close(sock)
            assert re.match(rb"HTTP/1\.[01] 400 ", out), out[:300]
            assert re.search(rb"TLS|HTTPS|SSL", out, re.I), out[:300]
            assert not out.startswith(b"\x15") and b"Hello" not in out, out[:300]
        still_fine(c, s.port())
        c.close()


@each_mode
def test_garbage_closed_and_logged(mode):
    with running(tls_server(mode, "garbage")) as s:
        c = keepalive(s.port())
        before = len(s.log())
        for junk in (b"\x00\x01\x02\x03" + os.urandom(2000), b"\x16\x03\x01\x00\x05hello!!",
                     b"\x16\x03\x03\xff\xff" + b"A" * 3000, b"\x80\x00" + b"\x01" * 100):
            with connect(s.port()) as sock:
                try:
                    sock.sendall(junk)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                out = read_to_close(sock)
                assert b"Hello" not in out, out[:200]
        still_fine(c, s.port())
        c.close()
        wait_for(lambda: re.search(r"tls|ssl|handshake", s.log()[before:], re.I), 10,
                 "an info line about the bad handshakes")


@each_mode
def test_truncated_handshake(mode):
    hello = client_hello()
    # The timeout also bounds the good clients' handshakes: it scales with the machine's pace.
    with running(tls_server(mode, "trunc", ssl_handshake_timeout=round(2 * SLOW))) as s:
        c = keepalive(s.port())
        before = len(s.log())
        for cut in (1, 5, len(hello) // 2, len(hello) - 1):
            with connect(s.port()) as sock:
                sock.sendall(hello[:cut])
        # and one that stays open, stalled: the handshake timeout ends it
        with connect(s.port()) as stalled:
            stalled.sendall(hello[:len(hello) // 2])
            t0 = time.monotonic()
            read_to_close(stalled, timeout=10)
            assert time.monotonic() - t0 < 6 * SLOW
        still_fine(c, s.port())
        c.close()
        wait_for(lambda: re.search(r"tls|ssl|handshake", s.log()[before:], re.I), 10,
                 "an info line about the truncated handshakes")


def open_count(socks):
    """How many of socks the server has not closed yet (EOF or reset counts as closed)."""
    n = 0
    for sock in socks:
        if sock.fileno() < 0:
            continue
        r, _, _ = select.select([sock], [], [], 0)
        if not r:
            n += 1
            continue
        try:
            if sock.recv(65536) != b"":
                n += 1  # an alert is not a close; the close comes next
                continue
        except OSError:
            pass
        sock.close()
    return n


@each_mode
def test_slow_handshake_flood(mode):
    hello = client_hello()
    hs = round(SLOW)  # also bounds the good clients' handshakes: scaled with the machine's pace
    with running(tls_server(mode, "slowflood", ssl_handshake_timeout=hs,
                            server={"max_conn": 1024})) as s:
        port = s.port()
        c = keepalive(port)
        socks = []
        try:
            for i in range(200):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
                if i % 4 == 0:
                    sock.sendall(hello[:40])  # a started, never finished handshake
                socks.append(sock)
            t0 = time.monotonic()
            # the port is not down: new handshakes and the established connection are served
            still_fine(c, port)
            r = curl_https(port, "/")
            assert r.returncode == 0 and r.stdout == b"Hello, World!", r
            wait_for(lambda: open_count(socks) == 0, hs + 4 * SLOW, "every stalled handshake closed")
            took = time.monotonic() - t0
            assert took < hs + 4 * SLOW, took
            still_fine(c, port)
        finally:
            for sock in socks:
                sock.close()
            c.close()


@each_mode
def test_renegotiation_refused(mode):
    with running(tls_server(mode, "reneg")) as s:
        c = keepalive(s.port())
        rc, out = s_client(s.port(), "-tls1_2", input=b"R\nGET / HTTP/1.0\r\n\r\n")
        assert "TLSv1.2" in out, out
        assert "RENEGOTIATING" in out, out
        assert re.search(r"error|errno", out, re.I), f"the renegotiation went through:\n{out}"
        assert "Hello, World!" not in out, out
        still_fine(c, s.port())
        c.close()


@each_mode
def test_missing_client_cert(mode):
    cc = certs()
    with running(tls_server(mode, "nocert", cc, ssl_verify_peer=True,
                            ssl_client_cert_file=cc.client_ca)) as s:
        good = client_ctx(cc, cert=cc.client, key=cc.client_key)
        c = HTTPSConn(s.port(), good)
        c.request("GET", "/")
        assert c.getresponse().read() == b"Hello, World!"
        for _ in range(3):
            try:
                with tls_socket(s.port(), client_ctx(cc)) as t:
                    t.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    got = t.recv(65536)
                    if got:  # b"": closed (an EOF without an alert), not served
                        raise AssertionError(f"served without a client certificate: {got[:80]!r}")
            except (ssl.SSLError, ConnectionError):
                pass
            r = curl_https(s.port(), "/", cc)
            assert r.returncode != 0 and b"Hello" not in r.stdout, r
        c.request("GET", "/")
        assert c.getresponse().read() == b"Hello, World!"
        c.close()
        assert tls_info(s.port(), good)["client_subject"]


if __name__ == "__main__":
    run([test_plain_http_to_tls_port, test_garbage_closed_and_logged, test_truncated_handshake,
         test_slow_handshake_flood, test_renegotiation_refused, test_missing_client_cert])
