"""WebSocket through the demo app with a second independent client: Node's `ws` package
(ws_client.mjs runs one scenario and prints "ok ..." lines then PASS). The package comes from
npm: `npm ci --prefix tests/integration`; without it every test here fails, on purpose."""
import os
import shutil
import subprocess

from srvtest import SLOW, run, running
from test_ws import ws_server

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "ws_client.mjs")
NODE = shutil.which("node")


def require_node():
    assert NODE, "node is not installed (apt-get install nodejs npm)"
    mod = os.path.join(HERE, "node_modules", "ws", "package.json")
    assert os.path.exists(mod), (f"{mod} is missing: run `npm ci --prefix tests/integration` "
                                 "(the Makefile's test-deps target does)")


def node(scenario, s, timeout=60):
    require_node()
    r = subprocess.run([NODE, CLIENT, scenario, f"ws://127.0.0.1:{s.port()}"],
                       capture_output=True, text=True, timeout=timeout * SLOW)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "PASS" in r.stdout, \
        f"node {scenario} exited {r.returncode}:\n{out}"
    return r.stdout


def test_echo():
    with running(ws_server("process", "node-echo")) as s:
        out = node("echo", s)
        assert out.count("ok plain echo") == 6, out


def test_echo_base():
    with running(ws_server("base", "node-echo")) as s:
        node("echo", s)


def test_fragments():
    with running(ws_server("process", "node-frag")) as s:
        node("fragments", s)


def test_ping():
    with running(ws_server("process", "node-ping")) as s:
        node("ping", s)


def test_close_code():
    with running(ws_server("process", "node-close")) as s:
        node("close", s)


def test_close_reason_echoed():
    with running(ws_server("process", "node-close")) as s:
        node("closereason", s)


def test_refused_and_plain_http():
    with running(ws_server("process", "node-refused")) as s:
        node("refused", s)


def test_deflate():
    with running(ws_server("process", "node-deflate", {"websocket_compression": True})) as s:
        node("deflate", s)
    with running(ws_server("process", "node-nodeflate")) as s:
        node("nodeflate", s)


def test_chat():
    with running(ws_server("process", "node-chat")) as s:
        node("chat", s)
    with running(ws_server("base", "node-chat", server={"worker_num": 1})) as s:
        node("chat", s)


def test_server_stop_going_away():
    require_node()
    with running(ws_server("process", "node-stop")) as s:
        p = subprocess.Popen([NODE, CLIENT, "stop", f"ws://127.0.0.1:{s.port()}"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            line = p.stdout.readline()
            assert line.strip() == "READY", line + p.stdout.read()
            r = s.stop()
            assert r.returncode == 0, r.stderr
            out, _ = p.communicate(timeout=20 * SLOW)
            assert p.returncode == 0 and "PASS" in out, out
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    run([test_echo, test_echo_base, test_fragments, test_ping, test_close_code,
         test_close_reason_echoed, test_refused_and_plain_http, test_deflate, test_chat,
         test_server_stop_going_away])
