"""srv as an nginx upstream, with the example deploy/nginx.conf run by a real nginx (Debian's
/usr/sbin/nginx) in the foreground on a free port with its own temp folders: upstream over a unix
socket and over TCP, keep-alive reuse from nginx to srv (srv's "accepted" stays small while many
requests pass), X-Forwarded-For / X-Real-IP visible to the app, bodies both ways."""
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

from srvtest import SLOW, SOURCE_DIR, free_port, run, running, wait_for
from test_http import RawConn, server

NGINX = "/usr/sbin/nginx"
CONF = os.path.join(SOURCE_DIR, "deploy", "nginx.conf")


class Nginx:
    def __init__(self, upstream):
        self.dir = tempfile.mkdtemp(prefix="srvtest-nginx-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        temp = os.path.join(self.dir, "temp")
        os.makedirs(temp)
        with open(CONF) as f:
            text = f.read()
        for k in ("@LISTEN@", "@SRV_UPSTREAM@", "@TEMP@"):
            assert k in text, f"{k} missing from deploy/nginx.conf"
        text = (text.replace("@LISTEN@", f"127.0.0.1:{self.port}")
                .replace("@SRV_UPSTREAM@", upstream).replace("@TEMP@", temp))
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(text)
        self.log = os.path.join(self.dir, "nginx.log")
        self.proc = None

    def start(self):
        g = f"daemon off; pid {self.dir}/nginx.pid; error_log stderr;"
        if os.getuid() == 0:
            g += " user root;"  # workers must reach srv's socket in a 0700 temp folder
        self.out = open(self.log, "w")
        self.proc = subprocess.Popen([NGINX, "-p", self.dir, "-e", "stderr", "-c", self.conf,
                                      "-g", g], stdout=self.out, stderr=subprocess.STDOUT)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited {self.proc.returncode}: {self.text()}")
            with RawConn(self.port, timeout=2):
                return True
        wait_for(up, 10, "nginx listening")
        return self

    def text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(timeout=10 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10 * SLOW)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        if getattr(self, "out", None):
            self.out.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10 * SLOW)


def through_nginx(s, upstream):
    ng = Nginx(upstream).start()
    try:
        before = s.info()["accepted"]
        # many requests on a few client connections
        n = 0
        for _ in range(4):
            c = ng.conn()
            for _ in range(50):
                c.request("GET", "/")
                r = c.getresponse()
                body = r.read()
                assert r.status == 200 and body == b"Hello, World!", (r.status, body)
                n += 1
            c.close()
        # and many single-request client connections
        for _ in range(30):
            c = ng.conn()
            c.request("GET", "/worker")
            r = c.getresponse()
            assert r.status == 200 and r.read().startswith(b'{"id":')
            c.close()
            n += 1
        accepted = s.info()["accepted"] - before
        assert 1 <= accepted <= 8, f"{n} requests through nginx made {accepted} connections to srv"

        c = ng.conn()
        c.request("GET", "/headers", headers={"X-Forwarded-For": "203.0.113.7"})
        r = c.getresponse()
        hdrs = r.read().decode()
        assert r.status == 200, r.status
        assert "X-Real-IP: 127.0.0.1\n" in hdrs, hdrs
        assert "X-Forwarded-For: 203.0.113.7, 127.0.0.1\n" in hdrs, hdrs
        c.request("GET", "/headers")
        r = c.getresponse()
        hdrs = r.read().decode()
        assert "X-Forwarded-For: 127.0.0.1\n" in hdrs and "X-Real-IP: 127.0.0.1\n" in hdrs, hdrs
        lines = [l.lower() for l in hdrs.splitlines()]
        assert "connection: close" not in lines, hdrs

        body = os.urandom(1 << 20)
        c.request("POST", "/echo", body=body, headers={"Content-Type": "application/x-bin"})
        r = c.getresponse()
        assert r.status == 200 and r.read() == body
        assert r.getheader("Content-Type") == "application/x-bin"
        c.request("GET", "/stream?chunks=100")
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"".join(b"chunk %d\n" % i for i in range(100))
        c.request("GET", f"/big?bytes={1 << 20}")
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"x" * (1 << 20)
        c.request("GET", "/nope")
        r = c.getresponse()
        assert r.status == 404 and r.read() == b"not found\n"
        c.close()
        # still reusing after all that
        assert s.info()["accepted"] - before <= 10, s.info()

        # concurrent clients: every answer right, connections to srv bounded by the concurrency
        errors = []

        def client(k):
            try:
                cc = ng.conn()
                for i in range(25):
                    data = b"client %d request %d" % (k, i)
                    cc.request("POST", "/echo", body=data)
                    rr = cc.getresponse()
                    got = rr.read()
                    if rr.status != 200 or got != data:
                        errors.append((k, i, rr.status, got))
                        break
                cc.close()
            except Exception as e:
                errors.append((k, repr(e)))
        mid = s.info()["accepted"]
        threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60 * SLOW)
        assert not any(th.is_alive() for th in threads), "a client through nginx hung"
        assert not errors, errors
        assert s.info()["accepted"] - mid <= 12, s.info()

        if s.info()["mode"] == "process":
            # srv's own 503 for a crashed worker passes through nginx; nothing breaks after it
            c = ng.conn()
            c.request("GET", "/crash")
            r = c.getresponse()
            assert r.status == 503, r.status
            r.read()
            for _ in range(5):
                c.request("GET", "/")
                r = c.getresponse()
                assert r.status == 200 and r.read() == b"Hello, World!"
            c.close()
            wait_for(lambda: all(w["state"] == "ready" for w in s.info()["workers"]), 15,
                     "worker respawned")
        assert "[emerg]" not in ng.text() and "[crit]" not in ng.text(), ng.text()
    except Exception:
        print("---- nginx log ----\n" + ng.text()[-4000:], file=sys.stderr)
        raise
    finally:
        ng.stop()


def nginx_test(mode):
    tmp = tempfile.mkdtemp(prefix="srvtest-ngsock-")
    sock = os.path.join(tmp, "srv.sock")
    try:
        os.chmod(tmp, 0o755)
        with running(server(mode, "nginx", listeners=[
                {"name": "tcp", "type": "http"},
                {"name": "unix", "type": "http", "path": sock}])) as s:
            through_nginx(s, f"unix:{sock}")
            through_nginx(s, f"127.0.0.1:{s.port(0)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_nginx_upstream_process_mode():
    nginx_test("process")


def test_nginx_upstream_base_mode():
    nginx_test("base")


if __name__ == "__main__":
    if not os.path.exists(NGINX):
        print(f"{NGINX} not installed: skipped\n0 passed, 0 failed")
        sys.exit(0)
    run([test_nginx_upstream_process_mode, test_nginx_upstream_base_mode])
