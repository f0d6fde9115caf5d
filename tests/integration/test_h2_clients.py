"""HTTP/2 under many concurrent streams with independent clients: nghttp (-nv, and -m 100 streams
on one connection, also by Upgrade: h2c), h2load (-n 5000 -c 8 -m 10 over h2c and TLS: every
request succeeds; also against a small http2_max_concurrent_streams) and Node's built-in http2
module (h2_client.mjs: 50 concurrent streams and a 1 MiB POST, over TLS and h2c). Every load is
bounded in count and in time."""
import os
import re
import shutil
import subprocess

from srvtest import SLOW, run, running
from test_h2_http import MODES, H2Client, h2_server
from tlscerts import https_get

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "h2_client.mjs")


def url(s, tls, path="/"):
    return f"{'https' if tls else 'http'}://127.0.0.1:{s.port()}{path}"


def tool(*cmd, timeout=120):
    exe = shutil.which(cmd[0])
    assert exe, f"{cmd[0]} is not installed (apt-get install nghttp2-client nodejs)"
    r = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=timeout * SLOW)
    return r.returncode, r.stdout + r.stderr


def nghttp(*args, timeout=60):
    return tool("nghttp", "-t", str(int(timeout * SLOW)), *args, timeout=timeout + 10)


def settings_received(out):
    """The server's first SETTINGS frame as nghttp -v prints it."""
    return out.split("recv SETTINGS frame", 1)[-1].split("recv ", 1)[0]


def h2load(s, tls, n=5000, c=8, m=10, path="/"):
    """Runs h2load; returns its output after checking every request succeeded with a 2xx."""
    rc, out = tool("h2load", "-n", str(n), "-c", str(c), "-m", str(m), "-T", str(int(30 * SLOW)),
                   url(s, tls, path), timeout=180)
    want = (f"requests: {n} total, {n} started, {n} done, {n} succeeded, 0 failed, 0 errored, "
            "0 timeout")
    assert rc == 0 and want in out, out
    assert f"status codes: {n} 2xx" in out, out
    assert re.search(r"Application protocol: h2c?\b", out), out
    return out


def each(fn):
    def wrapper():
        for mode in MODES:
            for tls in (False, True):
                try:
                    fn(mode, tls)
                except Exception as e:
                    raise AssertionError(f"[mode={mode} tls={tls}] {e!r}") from e
    wrapper.__name__ = fn.__name__
    return wrapper


# ---------------------------------------------------------------- nghttp

@each
def test_nghttp(mode, tls):
    with running(h2_server(mode, "h2-nghttp", tls)) as s:
        rc, out = nghttp("-nv", url(s, tls))
        assert rc == 0 and ":status: 200" in out, out
        assert "[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):128]" in settings_received(out), out
        rc, out = nghttp("-n", "-s", "-m", "100", url(s, tls))
        assert rc == 0, out
        assert len(re.findall(r"\s200\s+13\s+/\s*$", out, re.M)) == 100, out
        rc, out = nghttp("-n", "-s", "-m", "100", url(s, tls, "/stream?chunks=200"))
        assert rc == 0, out
        assert len(re.findall(r"\s200\s+\S+\s+/stream\?chunks=200\s*$", out, re.M)) == 100, out
        if not tls:
            rc, out = nghttp("-uv", url(s, tls, "/proto"))
            assert rc == 0 and "HTTP Upgrade success" in out and ":status: 200" in out, out


# ---------------------------------------------------------------- h2load

@each
def test_h2load(mode, tls):
    with running(h2_server(mode, "h2-load", tls)) as s:
        h2load(s, tls)
        h2load(s, tls, n=400, c=4, m=10, path="/stream?chunks=50")
        # HTTP/1.1 on the same port
        status = (https_get(s.port(), "/")[0] if tls else s.get("/")[0])
        assert status == 200, status
        with H2Client(s.port(), tls) as c:
            assert c.get("/").status == 200


def test_h2load_small_max_concurrent_streams():
    """http2_max_concurrent_streams = 4 is advertised; clients within it are all served; h2load
    asking for 20 streams sends its first 20 before the server's SETTINGS arrive: only streams
    of that first burst beyond the limit may be refused (REFUSED_STREAM), every other request
    succeeds and no connection is lost."""
    for tls in (False, True):
        with running(h2_server("process", "h2-mcs", tls, http2_max_concurrent_streams=4)) as s:
            rc, out = nghttp("-nv", url(s, tls))
            assert "[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):4]" in settings_received(out), out
            h2load(s, tls, n=2000, c=4, m=4)
            rc, out = tool("h2load", "-n", "2000", "-c", "4", "-m", "20", "-T",
                           str(int(30 * SLOW)), url(s, tls), timeout=180)
            m = re.search(r"requests: 2000 total, 2000 started, 2000 done, (\d+) succeeded, "
                          r"(\d+) failed, (\d+) errored, 0 timeout", out)
            assert rc == 0 and m, out
            ok, failed, errored = map(int, m.groups())
            assert ok + failed == 2000 and failed == errored <= 4 * (20 - 4), out
            assert f"status codes: {ok} 2xx" in out, out


# ---------------------------------------------------------------- node

def node(s, tls, scenario="many", timeout=90):
    env = dict(os.environ, H2_CLIENT_TIMEOUT_MS=str(int(timeout * SLOW * 1000)))
    exe = shutil.which("node")
    assert exe, "node is not installed (apt-get install nodejs)"
    r = subprocess.run([exe, CLIENT, scenario, url(s, tls, "")], capture_output=True, text=True,
                       timeout=timeout * SLOW + 10, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "PASS" in r.stdout, \
        f"node {scenario} exited {r.returncode}:\n{out}"
    return out


@each
def test_node_http2(mode, tls):
    with running(h2_server(mode, "h2-node", tls)) as s:
        out = node(s, tls)
        assert "ok 50 concurrent streams" in out and "ok POST 1 MiB" in out, out


if __name__ == "__main__":
    run([test_nghttp, test_h2load, test_h2load_small_max_concurrent_streams, test_node_http2])
