"""Mutual TLS: ssl_verify_peer with ssl_client_cert_file. A client certificate from that CA gets
through and /tls shows its subject; no certificate, or one from another CA, fails the handshake
(curl errors out) while connections made before, during and after keep working;
ssl_verify_optional asks but accepts a client without one (client_subject ""), and still
refuses a certificate that does not verify. Process and base mode."""
import json
import ssl

from srvtest import run, running
from test_http import each_mode
from tlscerts import (HTTPSConn, certs, client_ctx, curl_https, tls_info, tls_server,
                      tls_socket)


def mtls_server(mode, name, c, optional=False):
    keys = {"ssl_verify_peer": True, "ssl_client_cert_file": c.client_ca}
    if optional:
        keys["ssl_verify_optional"] = True
    return tls_server(mode, name, c, **keys)


def with_client(c):
    return ["--cert", c.client, "--key", c.client_key]


def check_subject(info):
    assert info["tls"] is True, info
    assert "CN=test client" in info["client_subject"], info
    assert "O=srv-test-client" in info["client_subject"], info


def handshake_fails(port, ctx):
    """The handshake (or the first read after it, in TLS 1.3) fails; returns the error."""
    try:
        with tls_socket(port, ctx) as t:
            t.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            got = t.recv(65536)
            if got:  # b"": closed (an EOF without an alert), not served
                raise AssertionError(f"served without a valid client certificate: {got[:100]!r}")
    except (ssl.SSLError, ConnectionError) as e:
        return e


@each_mode
def test_verify_peer_required(mode):
    c = certs()
    with running(mtls_server(mode, "mtls", c)) as s:
        port = s.port()
        # a keep-alive connection with a client certificate, open across the failures below
        good = HTTPSConn(port, client_ctx(c, cert=c.client, key=c.client_key))
        good.request("GET", "/tls")
        r = good.getresponse()
        check_subject(json.loads(r.read()))

        r = curl_https(port, "/tls", c, *with_client(c))
        assert r.returncode == 0, r.stderr
        check_subject(json.loads(r.stdout))
        for v in (["--tlsv1.2", "--tls-max", "1.2"], []):
            r = curl_https(port, "/", c, *v)
            assert r.returncode != 0 and b"Hello" not in r.stdout, (v, r)
        handshake_fails(port, client_ctx(c))
        handshake_fails(port, client_ctx(c, cert=c.stranger, key=c.stranger_key))
        r = curl_https(port, "/", c, "--cert", c.stranger, "--key", c.stranger_key)
        assert r.returncode != 0 and b"Hello" not in r.stdout, r

        # nothing else was disturbed
        for _ in range(3):
            good.request("GET", "/")
            r = good.getresponse()
            assert r.status == 200 and r.read() == b"Hello, World!"
        good.close()
        check_subject(tls_info(port, client_ctx(c, cert=c.client, key=c.client_key)))
        # TLS 1.2 with a client certificate too
        r = curl_https(port, "/tls", c, "--tlsv1.2", "--tls-max", "1.2", *with_client(c))
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        check_subject(info)
        assert info["version"] == "TLSv1.2", info


@each_mode
def test_verify_optional(mode):
    c = certs("rsa")
    with running(mtls_server(mode, "mtls-opt", c, optional=True)) as s:
        port = s.port()
        info = tls_info(port, client_ctx(c))
        assert info["tls"] is True and info["client_subject"] == "", info
        r = curl_https(port, "/tls", c)
        assert r.returncode == 0 and json.loads(r.stdout)["client_subject"] == "", r
        r = curl_https(port, "/tls", c, *with_client(c))
        assert r.returncode == 0, r.stderr
        check_subject(json.loads(r.stdout))
        check_subject(tls_info(port, client_ctx(c, cert=c.client, key=c.client_key)))
        # optional is not "anything goes": a certificate that does not verify is refused
        handshake_fails(port, client_ctx(c, cert=c.stranger, key=c.stranger_key))
        assert tls_info(port, client_ctx(c))["tls"] is True


def test_no_verify_ignores_client_cert():
    """Without ssl_verify_peer a client certificate is not asked for: client_subject is ""."""
    c = certs()
    with running(tls_server("process", "mtls-off", c)) as s:
        info = tls_info(s.port(), client_ctx(c, cert=c.client, key=c.client_key))
        assert info["tls"] is True and info["client_subject"] == "", info


if __name__ == "__main__":
    run([test_verify_peer_required, test_verify_optional, test_no_verify_ignores_client_cert])
