"""HTTP/2 protections, black box, part 1: the attacks on streams and the connection's start --
an invalid preface over TLS with ALPN h2 (PROTOCOL_ERROR; on a plain port such bytes are
HTTP/1.1), rapid reset (CVE-2023-44487: HEADERS + RST_STREAM pairs, ENHANCE_YOUR_CALM) while a
client resetting a few streams is not cut, streams over http2_max_concurrent_streams
(PROTOCOL_ERROR), and a peer whose window stays shut (ENHANCE_YOUR_CALM after send_timeout).
Each checks the GOAWAY code and last stream id, the close, the [warn] log line and that another
connection, opened before, is served during and after. Process and base mode.
The floods are in test_h2_attack_flood.py."""
import re

from h2raw import (ENHANCE_YOUR_CALM, PROTOCOL_ERROR, Good, Raw, attacked,
                   expect_no_sanitizer_report, h2_server)
from srvtest import raw, run, running
from test_http import each_mode
from tlscerts import client_ctx, tls_server


@each_mode
def test_invalid_preface_tls(mode):
    ctx = client_ctx(alpn=["h2"])
    with running(tls_server(mode, "h2a-preface", open_http2_protocol=True)) as s:
        for junk in (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
                     b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\x00" * 40):
            def attack(r, good, junk=junk):
                r.send(junk)
                good.check()
            attacked(s, attack, PROTOCOL_ERROR, "invalid preface", memory=False,
                     raw=lambda: Raw(s.port(), ctx, preface=False), good_ctx=ctx)


@each_mode
def test_plain_port_non_preface_is_http1(mode):
    with running(h2_server(mode, "http1")) as s:
        out = raw(s.port(), b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert re.match(rb"HTTP/1\.1 200 ", out) and out.endswith(b"Hello, World!"), out[:300]
        with Good(s.port()) as g:
            g.check()
        expect_no_sanitizer_report(s)


def rapid_reset(path, pairs=2000):
    def attack(r, good):
        frames = []
        for _ in range(pairs):
            sid = r.new_stream()
            frames += [r.headers_frame(sid, r.block(path)), r.rst_frame(sid)]
        r.flood(frames, chunk=4096, during=good.check)
    return attack


@each_mode
def test_rapid_reset(mode):
    with running(h2_server(mode, "rapid", server={"worker_num": 4})) as s:
        for path in ("/", "/sleep?ms=50"):
            attacked(s, rapid_reset(path), ENHANCE_YOUR_CALM, "rapid reset", timeout=30)


@each_mode
def test_few_resets_not_cut(mode):
    with running(h2_server(mode, "fewresets")) as s:
        with Raw(s.port()) as r:
            for path in ("/sleep?ms=20", "/"):
                for _ in range(10):
                    sid = r.request(path)
                    r.send(r.rst_frame(sid))
            for _ in range(5):
                status, body = r.response(r.request("/"))
                assert status == 200 and body == b"Hello, World!", (status, body[:100])
            assert r.goaway is None and not r.closed, r.goaway_text()
        expect_no_sanitizer_report(s)


def open_streams(n, path):
    def attack(r, good):
        r.pump_until(lambda: r.settings_seen, 10, "the server's SETTINGS")
        got = r.server_settings.get(3)
        assert got == 4, f"SETTINGS_MAX_CONCURRENT_STREAMS: expected 4, got {got}"
        # The SETTINGS ACK went out on reading; n + 1 requests in one write, so that none of
        # the first n can be answered (and closed) before the server reads the last.
        frames = [r.headers_frame(r.new_stream(), r.block(path)) for _ in range(n + 1)]
        r.send(b"".join(frames))
        good.check()
    return attack


@each_mode
def test_streams_over_limit(mode):
    server = {"http2_max_concurrent_streams": 4, "worker_num": 6}
    with running(h2_server(mode, "maxstreams", server=server)) as s:
        # timeout: base mode runs the 4 handlers (8 s) before it reads the 5th HEADERS
        g, r = attacked(s, open_streams(4, "/sleep?ms=2000"), PROTOCOL_ERROR,
                        "streams over http2_max_concurrent_streams", memory=False, timeout=20)
        assert g.last_stream_id <= 7, r.goaway_text()


def stall(settings, path="/big?bytes=1048576"):
    def attack(r, good):
        r.request(path)
        good.check()
    return lambda s: Raw(s.port(), settings=settings, auto_window=False), attack


@each_mode
def test_stalled_window(mode):
    with running(h2_server(mode, "stalled", server={"send_timeout": 1000})) as s:
        for settings in ({4: 0}, {}):  # SETTINGS_INITIAL_WINDOW_SIZE 0; or 64 KiB never reopened
            make, attack = stall(settings)
            attacked(s, attack, ENHANCE_YOUR_CALM, "stalled window", memory=False,
                     raw=lambda: make(s), timeout=10)


if __name__ == "__main__":
    run([test_invalid_preface_tls, test_plain_port_non_preface_is_http1, test_rapid_reset,
         test_few_resets_not_cut, test_streams_over_limit, test_stalled_window])
