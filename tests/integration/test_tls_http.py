"""HTTPS on an http listener with ssl = true, with curl (--cacert, keep-alive, bodies over 1 MiB
both ways, --tlsv1.2 --tls-max 1.2) and Python's http.client over ssl: the demo's /tls JSON
(version, cipher, SNI; false and empty strings on a plain listener beside it), ssl_protocols
refusing a client below it (string and TOML list forms), ssl_ciphers / ssl_ciphersuites
choosing the cipher, ALPN http/1.1, and a 20 MiB static
file from document_root arriving intact. Process and base mode; ECDSA and RSA certificates."""
import hashlib
import json
import os
import shutil
import ssl
import tempfile

from srvtest import run, running
from test_http import each_mode
from tlscerts import (HTTPSConn, certs, client_ctx, curl, curl_https, https_get, s_client,
                      tls_info, tls_keys, tls_server, tls_socket)

BIG = {"package_max_length": 8 << 20}


def https_and_plain(mode, name, c=None, **keys):
    c = c or certs()
    return tls_server(mode, name, c, server=BIG, listeners=[
        dict({"name": "https", "type": "http"}, **tls_keys(c, **keys)),
        {"name": "plain", "type": "http"}])


def check_curl(s, c):
    port = s.port()
    r = curl_https(port, "/", c)
    assert r.returncode == 0 and r.stdout == b"Hello, World!", (r.returncode, r.stderr)
    # several requests on one connection: curl reports 1 new connection, then 0s
    urls = [f"https://localhost:{port}/worker"] * 5
    r = curl("--cacert", c.ca, "--resolve", f"localhost:{port}:127.0.0.1",
             "-w", "\nconnects=%{num_connects}\n", *urls)
    assert r.returncode == 0, r.stderr
    connects = [l for l in r.stdout.decode().splitlines() if l.startswith("connects=")]
    assert connects == ["connects=1"] + ["connects=0"] * 4, r.stdout
    # bodies over 1 MiB, both ways
    tmp = tempfile.mkdtemp(prefix="srvtest-tlsbody-")
    try:
        body = os.urandom(3 << 20)
        p = os.path.join(tmp, "body")
        with open(p, "wb") as f:
            f.write(body)
        r = curl_https(port, "/echo", c, "--data-binary", f"@{p}", "-H",
                       "Content-Type: application/octet-stream", timeout=60)
        assert r.returncode == 0 and r.stdout == body, (r.returncode, len(r.stdout), r.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    r = curl_https(port, f"/big?bytes={5 << 20}", c, timeout=60)
    assert r.returncode == 0 and r.stdout == b"x" * (5 << 20), (r.returncode, len(r.stdout))
    # plain HTTP still works on the plain listener beside it
    r = curl(f"http://127.0.0.1:{s.port(1)}/")
    assert r.returncode == 0 and r.stdout == b"Hello, World!", r


@each_mode
def test_curl_https(mode):
    for kind in ("ec", "rsa"):
        c = certs(kind)
        with running(https_and_plain(mode, f"curl-{kind}", c)) as s:
            check_curl(s, c)


@each_mode
def test_tls_json_and_versions(mode):
    c = certs()
    with running(https_and_plain(mode, "json", c)) as s:
        info = tls_info(s.port())
        assert info["tls"] is True, info
        assert info["version"] == "TLSv1.3", info
        assert info["cipher"].startswith("TLS_"), info
        assert info["sni"] == "localhost", info
        assert info["client_subject"] == "", info
        # TLS 1.2 when the client caps it there; its cipher is a TLS 1.2 name
        r = curl_https(s.port(), "/tls", c, "--tlsv1.2", "--tls-max", "1.2")
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert info["version"] == "TLSv1.2" and info["tls"] is True, info
        assert info["cipher"] and not info["cipher"].startswith("TLS_"), info
        # the plain listener says so
        status, _, body = s.get("/tls", i=1)
        assert status == 200, status
        assert json.loads(body) == {"tls": False, "version": "", "cipher": "", "sni": "",
                                    "client_subject": ""}, body


def test_protocols_refuse_older_clients():
    c = certs()
    for protocols in ("TLSv1.3", ["TLSv1.3"]):
        with running(https_and_plain("process", "v13", c, ssl_protocols=protocols)) as s:
            r = curl_https(s.port(), "/", c, "--tlsv1.2", "--tls-max", "1.2")
            assert r.returncode != 0, f"a TLS 1.2 client got through {protocols!r}: {r.stdout!r}"
            r = curl_https(s.port(), "/tls", c)
            assert r.returncode == 0 and b'"TLSv1.3"' in r.stdout, r
    with running(https_and_plain("process", "v12", c, ssl_protocols="TLSv1.2")) as s:
        ctx = client_ctx(c, min_version=ssl.TLSVersion.TLSv1_3)
        try:
            tls_socket(s.port(), ctx).close()
            raise AssertionError("a TLS 1.3-only client got through ssl_protocols TLSv1.2")
        except ssl.SSLError:
            pass
        assert tls_info(s.port())["version"] == "TLSv1.2"
    # TLS 1.0 and 1.1 are off by default: the server refuses a client that offers only them
    # (s_client at SECLEVEL 0 can speak them: the alert comes from srv, not from the client)
    with running(https_and_plain("process", "v10", c)) as s:
        for v in ("-tls1", "-tls1_1"):
            rc, out = s_client(s.port(), v, "-cipher", "DEFAULT@SECLEVEL=0", input=b"")
            assert rc != 0 and "New, (NONE)" in out, out[-2000:]
        assert tls_info(s.port())["tls"] is True


def test_ciphers_and_ciphersuites():
    c = certs()
    with running(https_and_plain("process", "ciphers", c,
                                 ssl_ciphers="ECDHE-ECDSA-AES128-GCM-SHA256",
                                 ssl_ciphersuites="TLS_CHACHA20_POLY1305_SHA256")) as s:
        info = tls_info(s.port(), client_ctx(c))
        assert info["cipher"] == "TLS_CHACHA20_POLY1305_SHA256", info
        r = curl_https(s.port(), "/tls", c, "--tlsv1.2", "--tls-max", "1.2")
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert info["cipher"] == "ECDHE-ECDSA-AES128-GCM-SHA256", info
        # a client that offers none of them is refused
        r = curl_https(s.port(), "/", c, "--tlsv1.2", "--tls-max", "1.2", "--ciphers",
                       "ECDHE-ECDSA-AES256-GCM-SHA384")
        assert r.returncode != 0, r
        rc, out = s_client(s.port(), "-ciphersuites", "TLS_AES_256_GCM_SHA384", c=c, input=b"")
        assert rc != 0 and "New, (NONE)" in out, out[-2000:]


@each_mode
def test_python_http_client(mode):
    c = certs("rsa")
    with running(https_and_plain(mode, "pyclient", c)) as s:
        conn = HTTPSConn(s.port(), client_ctx(c))
        try:
            for i in range(10):
                conn.request("GET", "/")
                r = conn.getresponse()
                assert r.status == 200 and r.read() == b"Hello, World!", r.status
            body = os.urandom(2 << 20)
            conn.request("POST", "/echo", body=body, headers={"Content-Type": "x/y"})
            r = conn.getresponse()
            assert r.status == 200 and r.read() == body
            assert r.getheader("Content-Type") == "x/y"
            conn.request("GET", "/stream?chunks=1000")
            r = conn.getresponse()
            assert r.read() == b"".join(b"chunk %d\n" % i for i in range(1000))
            conn.request("GET", "/nope")
            r = conn.getresponse()
            assert r.status == 404 and r.read() == b"not found\n"
            conn.request("HEAD", "/")
            r = conn.getresponse()
            assert r.status == 200 and r.read() == b""
            conn.request("GET", "/tls")
            r = conn.getresponse()
            assert b'"tls":true' in r.read()
        finally:
            conn.close()


def test_alpn_http11():
    c = certs()
    with running(https_and_plain("process", "alpn", c)) as s:
        with tls_socket(s.port(), client_ctx(c, alpn=["h2", "http/1.1"])) as t:
            assert t.selected_alpn_protocol() == "http/1.1", t.selected_alpn_protocol()
            t.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            out = b""
            while True:
                b = t.recv(65536)
                if not b:
                    break
                out += b
            assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"Hello, World!"), out
        # a client without ALPN is fine too
        with tls_socket(s.port(), client_ctx(c)) as t:
            assert t.selected_alpn_protocol() is None
        # a client offering only h2 gets no ALPN (or a refusal), never h2
        try:
            with tls_socket(s.port(), client_ctx(c, alpn=["h2"])) as t:
                assert t.selected_alpn_protocol() != "h2"
        except ssl.SSLError:
            pass


@each_mode
def test_static_file_over_tls(mode):
    c = certs()
    top = tempfile.mkdtemp(prefix="srvtest-tlsstatic-")
    try:
        root = os.path.join(top, "www")
        os.makedirs(root)
        data = os.urandom(20 << 20)
        with open(os.path.join(root, "huge.bin"), "wb") as f:
            f.write(data)
        with open(os.path.join(root, "hello.txt"), "wb") as f:
            f.write(b"hello over tls\n")
        want = hashlib.sha256(data).hexdigest()
        s = tls_server(mode, "static", c, listeners=[dict(
            {"name": "https", "type": "http", "document_root": root}, **tls_keys(c))])
        with running(s):
            r = curl_https(s.port(), "/huge.bin", c, timeout=120)
            assert r.returncode == 0, r.stderr
            assert len(r.stdout) == len(data), len(r.stdout)
            assert hashlib.sha256(r.stdout).hexdigest() == want
            status, hdrs, body = https_get(s.port(), "/hello.txt", client_ctx(c))
            assert status == 200 and body == b"hello over tls\n", (status, body)
            assert hdrs["content-type"].startswith("text/plain"), hdrs
            # keep-alive after a big file: a second big file then a small one on one connection
            conn = HTTPSConn(s.port(), client_ctx(c), timeout=60)
            try:
                for path, want_body in (("/huge.bin", None), ("/hello.txt", b"hello over tls\n")):
                    conn.request("GET", path)
                    r = conn.getresponse()
                    got = r.read()
                    assert r.status == 200
                    if want_body is None:
                        assert hashlib.sha256(got).hexdigest() == want, len(got)
                    else:
                        assert got == want_body, got
                conn.request("GET", "/huge.bin", headers={"Range": "bytes=1000-1999"})
                r = conn.getresponse()
                assert r.status == 206 and r.read() == data[1000:2000]
            finally:
                conn.close()
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    run([test_curl_https, test_tls_json_and_versions, test_protocols_refuse_older_clients,
         test_ciphers_and_ciphersuites, test_python_http_client, test_alpn_http11,
         test_static_file_over_tls])
