"""TLS over tcp listeners and unix sockets: the demo's "frames" handler with length framing
(open_length_check, package_length_type N) over TLS, frames whole, many per record, split byte
by byte over records, 1 MiB; the "lines" handler with EOF splitting, its "tls" command showing
the session's srv_conn_info().tls, and "quit" closing after the answer; IPv6 and unix stream
listeners with TLS; an http listener on a unix socket with TLS (Python ssl over AF_UNIX, and
curl --unix-socket); ALPN on tcp listeners: ssl_alpn = "myproto" selects it, none without.
Process and base mode."""
import json
import socket
import ssl

from srvtest import UNIX, SLOW, listener, run, running
from test_http import each_mode
from test_tcp import EOF_LINES, LENGTH, body, frame, trickle
from tlscerts import (certs, client_ctx, curl, https_get, tls_info, tls_keys, tls_server,
                      tls_socket)


class TlsClient:
    """test_tcp's Client, over TLS (SNI localhost, verifying against the test CA)."""

    def __init__(self, s, name, ctx=None, timeout=10):
        l = listener(s, name)
        ctx = ctx or client_ctx()
        if "path" in l:
            self.sock = tls_socket(ctx=ctx, path=l["path"], timeout=timeout)
        elif ":" in l.get("host", ""):
            raw = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            raw.settimeout(timeout * SLOW)
            raw.connect((l["host"], l["port"]))
            self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        else:
            self.sock = tls_socket(l["port"], ctx, timeout=timeout)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, b):
        self.sock.sendall(b)

    def recv_exact(self, n):
        out = b""
        while len(out) < n:
            b = self.sock.recv(n - len(out))
            if not b:
                raise AssertionError(f"EOF after {len(out)} of {n} bytes: {out[-200:]!r}")
            out += b
        return out

    def expect(self, want):
        got = self.recv_exact(len(want))
        assert got == want, f"got {got[:200]!r}... want {want[:200]!r}..."

    def line(self):
        out = b""
        while not out.endswith(b"\r\n"):
            b = self.sock.recv(1)
            if not b:
                raise AssertionError(f"EOF in a line: {out!r}")
            out += b
        return out

    def expect_eof(self, what="", timeout=10):
        self.sock.settimeout(timeout * SLOW)
        try:
            while True:
                b = self.sock.recv(65536)
                if not b:
                    return
                raise AssertionError(f"{what}: unexpected data {b[:100]!r}")
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return
        except socket.timeout:
            raise AssertionError(f"{what}: connection still open after {timeout * SLOW}s")


def check_length(s, name, cc):
    with TlsClient(s, name, client_ctx(cc)) as c:
        c.send(frame(b"hello"))
        c.expect(frame(b"hello"))
        c.send(frame(b""))
        c.expect(frame(b""))
        many = b"".join(frame(body(i)) for i in range(500))
        c.send(many)
        c.expect(many)
        few = b"".join(frame(body(i, 20)) for i in range(3))
        trickle(c, few)  # one TLS record per byte
        c.expect(few)
        big = frame(body(7, 1 << 20))
        c.send(big)
        c.expect(big)
        c.send(frame(b"abc") + frame(b"defgh")[:6])
        c.send(frame(b"defgh")[6:])
        c.expect(frame(b"abc") + frame(b"defgh"))


def check_lines(s, name, cc):
    with TlsClient(s, name, client_ctx(cc)) as c:
        c.send(b"hello\r\n")
        c.expect(b"hello\r\n")
        lines = b"".join(b"line %d\r\n" % i for i in range(1000))
        c.send(lines)
        c.expect(lines)
        c.send(b"tls\r\n")
        info = json.loads(c.line())
        assert info["tls"] is True and info["version"] == "TLSv1.3", info
        assert info["cipher"] and info["sni"] == "localhost", info
        c.send(b"quit\r\n")
        c.expect(b"bye\r\n")
        c.expect_eof("after quit")


def tcp_tls_server(mode, name, c, tcp):
    """An http listener (plain) and tcp listeners [(name, keys)] with TLS."""
    ls = [{"name": "http", "type": "http"}]
    for lname, keys in tcp:
        ls.append(dict({"name": lname, "type": "tcp"}, **keys, **tls_keys(c)))
    return tls_server(mode, name, c, listeners=ls)


@each_mode
def test_length_framing_over_tls(mode):
    c = certs()
    ls = [("frames", LENGTH), ("frames6", dict(LENGTH, host="::1")),
          ("framesu", dict(LENGTH, path=UNIX))]
    with running(tcp_tls_server(mode, "tlsframes", c, ls)) as s:
        for name in ("frames", "frames6", "framesu"):
            check_length(s, name, c)
        assert s.get("/")[0] == 200


@each_mode
def test_lines_over_tls(mode):
    c = certs("rsa")
    ls = [("lines", EOF_LINES), ("linesu", dict(EOF_LINES, path=UNIX))]
    with running(tcp_tls_server(mode, "tlslines", c, ls)) as s:
        check_lines(s, "lines", c)
        check_lines(s, "linesu", c)
        # many sessions at once, each its own TLS state
        clients = [TlsClient(s, "lines", client_ctx(c)) for _ in range(20)]
        try:
            for i, cl in enumerate(clients):
                cl.send(b"client %d\r\n" % i)
            for i, cl in enumerate(clients):
                cl.expect(b"client %d\r\n" % i)
        finally:
            for cl in clients:
                cl.close()


@each_mode
def test_https_on_unix_socket(mode):
    c = certs()
    l = dict({"name": "u", "type": "http", "path": UNIX}, **tls_keys(c))
    with running(tls_server(mode, "tlsunix", c, listeners=[l])) as s:
        path = listener(s, "u")["path"]
        status, _, b = https_get(None, "/", unix=path)
        assert status == 200 and b == b"Hello, World!", (status, b)
        info = tls_info(None, unix=path)
        assert info["tls"] is True and info["sni"] == "localhost", info
        data = bytes(range(256)) * 8192
        status, _, b = https_get(None, "/echo", method="POST", body=data, unix=path)
        assert status == 200 and b == data
        r = curl("--cacert", c.ca, "--unix-socket", path, "https://localhost/worker")
        assert r.returncode == 0 and r.stdout.startswith(b'{"id":'), r


def test_tcp_alpn():
    c = certs()
    ls = [("alpn", dict(EOF_LINES, ssl_alpn="myproto other/1")), ("noalpn", EOF_LINES)]
    with running(tcp_tls_server("process", "tlsalpn", c, ls)) as s:
        ctx = client_ctx(c, alpn=["other/1", "myproto"])
        with TlsClient(s, "alpn", ctx) as t:
            # the server's order of preference decides
            assert t.sock.selected_alpn_protocol() == "myproto", t.sock.selected_alpn_protocol()
            t.send(b"x\r\n")
            t.expect(b"x\r\n")
        with TlsClient(s, "alpn", client_ctx(c, alpn=["other/1"])) as t:
            assert t.sock.selected_alpn_protocol() == "other/1"
        with TlsClient(s, "alpn", client_ctx(c)) as t:  # a client without ALPN is served
            assert t.sock.selected_alpn_protocol() is None
            t.send(b"y\r\n")
            t.expect(b"y\r\n")
        with TlsClient(s, "noalpn", client_ctx(c, alpn=["myproto", "http/1.1", "h2"])) as t:
            assert t.sock.selected_alpn_protocol() is None, t.sock.selected_alpn_protocol()
            t.send(b"z\r\n")
            t.expect(b"z\r\n")


if __name__ == "__main__":
    run([test_length_framing_over_tls, test_lines_over_tls, test_https_on_unix_socket,
         test_tcp_alpn])
