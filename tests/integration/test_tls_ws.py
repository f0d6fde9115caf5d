"""WebSocket over TLS (wss://) on an http listener with ssl = true and websocket = true: Python's
`websockets` echoes text and binary messages of every size up to 1 MiB and the chat broadcast
reaches every client; Node's `ws` (ws_client.mjs with the test CA) runs its echo, fragments,
ping and chat scenarios, and refuses the certificate without the CA. /tls on the same port
still answers. Process and base mode."""
import asyncio
import os
import ssl
import subprocess

import websockets

from srvtest import SLOW, run, running
from test_http import each_mode
from test_ws import CHAT_TABLE, SIZES, arun, pattern, text_pattern
from test_ws_node import CLIENT, NODE, require_node
from tlscerts import certs, client_ctx, tls_info, tls_keys, tls_server


def wss_server(mode, name, c=None, server=None):
    c = c or certs()
    l = dict({"name": "https", "type": "http", "websocket": True}, **tls_keys(c))
    return tls_server(mode, name, c, listeners=[l], server=server, extra=CHAT_TABLE)


def wss(s, path="/ws", ctx=None, **kw):
    kw.setdefault("max_size", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("compression", None)
    kw.setdefault("open_timeout", 10 * SLOW)
    kw.setdefault("close_timeout", 10 * SLOW)
    return websockets.connect(f"wss://127.0.0.1:{s.port()}{path}", ssl=ctx or client_ctx(),
                              server_hostname="localhost", **kw)


async def echo_all(s):
    async with wss(s) as ws:
        for n in SIZES:
            t = text_pattern(n)
            await ws.send(t)
            assert await ws.recv() == t, f"text {n}"
            b = pattern(n, n & 0xFF)
            await ws.send(b)
            got = await ws.recv()
            assert got == b, f"binary {n}: {len(got)} bytes"
        # a burst of messages, answers in order
        for i in range(200):
            await ws.send(f"burst {i}")
        for i in range(200):
            assert await ws.recv() == f"burst {i}"
        big = os.urandom(1 << 20)
        await ws.send(big)
        assert await ws.recv() == big
        await ws.close(1000)
        assert ws.close_code == 1000, ws.close_code


async def chat(s, n):
    clients = [await wss(s, "/chat") for _ in range(n)]
    try:
        await clients[0].send("over tls")
        got = await asyncio.gather(*(ws.recv() for ws in clients))
        assert all(g.endswith(": over tls") for g in got), got[:3]
        assert len(set(got)) == 1, set(got)
    finally:
        for ws in clients:
            await ws.close()


@each_mode
def test_wss_python(mode):
    with running(wss_server(mode, "wss")) as s:
        arun(echo_all(s))
        arun(chat(s, 50))
        assert tls_info(s.port())["tls"] is True


def test_wss_rsa_and_untrusted():
    c = certs("rsa")
    with running(wss_server("process", "wss-rsa", c)) as s:
        arun(echo_all_ctx(s, client_ctx(c)))
        # the system trust store does not know the test CA
        async def untrusted():
            try:
                async with wss(s, ctx=ssl.create_default_context()):
                    raise AssertionError("connected with an untrusted certificate")
            except ssl.SSLCertVerificationError:
                pass
        arun(untrusted())


async def echo_all_ctx(s, ctx):
    async with wss(s, ctx=ctx) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"


def node(scenario, s, c, timeout=60):
    require_node()
    r = subprocess.run([NODE, CLIENT, scenario, f"wss://127.0.0.1:{s.port()}", c.ca],
                       capture_output=True, text=True, timeout=timeout * SLOW)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "PASS" in r.stdout, \
        f"node {scenario} exited {r.returncode}:\n{out}"
    return r.stdout


@each_mode
def test_wss_node(mode):
    c = certs()
    with running(wss_server(mode, "wss-node", c)) as s:
        out = node("echo", s, c)
        assert out.count("ok plain echo") == 6, out
        node("fragments", s, c)
        node("ping", s, c)
        node("chat", s, c)
        node("untrusted", s, c)


if __name__ == "__main__":
    run([test_wss_python, test_wss_rsa_and_untrusted, test_wss_node])
