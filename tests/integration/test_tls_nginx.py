"""srv's TLS as an nginx upstream: a real nginx (Debian's /usr/sbin/nginx, in the foreground on a
free port with its own temp folder) proxies to `https://127.0.0.1:PORT` with proxy_ssl_verify
on, the test CA as proxy_ssl_trusted_certificate and proxy_ssl_name localhost, keeping upstream
connections alive and reusing TLS sessions. Requests and bodies pass both ways; srv's /tls sees
TLS from nginx; an nginx trusting another CA refuses srv's certificate (502). Process and base
mode."""
import json
import os
import sys

from srvtest import run, running
from test_http import each_mode
from test_nginx import NGINX, Nginx
from tlscerts import certs, tls_server

CONF = """worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    client_max_body_size 8m;
    upstream srv {{
        server 127.0.0.1:{upstream};
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass https://srv;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {ca};
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
        }}
    }}
}}
"""


class TlsNginx(Nginx):
    """test_nginx's Nginx with this file's configuration."""

    def __init__(self, upstream_port, ca):
        super().__init__("127.0.0.1:1")  # placeholders filled; the file is rewritten below
        temp = os.path.join(self.dir, "temp")
        with open(self.conf, "w") as f:
            f.write(CONF.format(temp=temp, upstream=upstream_port, port=self.port, ca=ca))


def through(s, ca, ok=True):
    ng = TlsNginx(s.port(), ca).start()
    try:
        c = ng.conn()
        if not ok:
            c.request("GET", "/")
            r = c.getresponse()
            r.read()
            assert r.status == 502, r.status
            assert "certificate" in ng.text() or "SSL" in ng.text(), ng.text()
            return
        before = s.info()["accepted"]
        for _ in range(50):
            c.request("GET", "/")
            r = c.getresponse()
            assert r.status == 200 and r.read() == b"Hello, World!", r.status
        c.request("GET", "/tls")
        r = c.getresponse()
        info = json.loads(r.read())
        assert info["tls"] is True and info["sni"] == "localhost", info
        assert info["version"] in ("TLSv1.2", "TLSv1.3"), info
        body = os.urandom(3 << 20)
        c.request("POST", "/echo", body=body, headers={"Content-Type": "application/x-bin"})
        r = c.getresponse()
        assert r.status == 200 and r.read() == body
        c.request("GET", f"/big?bytes={4 << 20}")
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"x" * (4 << 20)
        c.request("GET", "/headers", headers={"X-Test": "through tls"})
        r = c.getresponse()
        assert "X-Test: through tls" in r.read().decode()
        c.close()
        # nginx keeps its TLS connections to srv alive
        assert s.info()["accepted"] - before <= 4, s.info()["accepted"] - before
        assert "[emerg]" not in ng.text() and "[crit]" not in ng.text(), ng.text()
    except Exception:
        print("---- nginx log ----\n" + ng.text()[-4000:], file=sys.stderr)
        raise
    finally:
        ng.stop()


@each_mode
def test_nginx_proxy_ssl_verify(mode):
    for kind in ("ec", "rsa"):
        c = certs(kind)
        with running(tls_server(mode, f"tlsnginx-{kind}", c,
                                server={"package_max_length": 8 << 20})) as s:
            through(s, c.ca)


def test_nginx_refuses_untrusted():
    c = certs()
    with running(tls_server("process", "tlsnginx-bad", c)) as s:
        through(s, c.client_ca, ok=False)  # a CA that did not sign srv's certificate


if __name__ == "__main__":
    if not os.path.exists(NGINX):
        print(f"{NGINX} not installed: skipped\n0 passed, 0 failed")
        sys.exit(0)
    run([test_nginx_proxy_ssl_verify, test_nginx_refuses_untrusted])
