"""HTTP/2 protections, black box, part 2: the floods -- CONTINUATION (a header block that never
ends: big frames, or empty ones), the HPACK bomb (a 4000-byte header put in the dynamic table,
then named by its index until the decoded list is over 4 x http2_max_header_list_size; just
over the limit is a 431 on that stream only), and SETTINGS, PING, WINDOW_UPDATE and empty DATA
frames faster than their per-second limits. Each must end the connection with GOAWAY
ENHANCE_YOUR_CALM and a [warn] log line while another connection, opened before, is served
during and after, and the server's memory (sum of VmRSS) grows by at most 64 MiB.
Process and base mode."""
from h2raw import ENHANCE_YOUR_CALM, Raw, attacked, expect_no_sanitizer_report, h2_server
from srvtest import run, running
from test_http import each_mode
from tlscerts import client_ctx, tls_server

FRAME = 16384  # the server's SETTINGS_MAX_FRAME_SIZE by default


def hpack_int(n, prefix_bits, first=0):
    """An HPACK integer with an N-bit prefix (RFC 7541 5.1); first holds the bits above it."""
    top = (1 << prefix_bits) - 1
    if n < top:
        return bytes([first | n])
    out = [first | top]
    n -= top
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    out.append(n)
    return bytes(out)


def literal(name, value):
    """A literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    return (b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value)


def continuation_flood(size=FRAME, frames=1000):
    """HEADERS without END_HEADERS, then CONTINUATIONs of size bytes of valid HPACK (or empty
    ones), never END_HEADERS."""
    def attack(r, good):
        sid = r.new_stream()
        out = [r.headers_frame(sid, r.block("/"), end_stream=True, end_headers=False)]
        # pieces cut mid-field: the block stays valid HPACK as a whole, it only never ends
        field = literal(b"x-filler", b"v" * 1000)
        block = field * (size * frames // len(field) + 1)
        for i in range(frames):
            out.append(r.continuation_frame(sid, block[i * size:(i + 1) * size]))
        r.flood(out, chunk=4 * FRAME if size else 4096, during=good.check)
    return attack


@each_mode
def test_continuation_flood(mode):
    with running(h2_server(mode, "cont")) as s:
        for size, frames in ((FRAME, 200), (0, 2000), (100, 500)):
            attacked(s, continuation_flood(size, frames), ENHANCE_YOUR_CALM,
                     "CONTINUATION flood")


BIG = b"b" * 4000  # with its name and 32, fits the 4096-byte dynamic table


def bomb(copies):
    return [("x-bomb", BIG)] * copies


@each_mode
def test_hpack_bomb(mode):
    with running(h2_server(mode, "bomb")) as s:
        def attack(r, good):
            block = r.block("/", extra=bomb(400))  # 1 literal, then 399 one-byte indexes
            assert len(block) < 4000, len(block)
            good.check()
            r.send(r.headers_frame(r.new_stream(), block))
        attacked(s, attack, ENHANCE_YOUR_CALM, "HPACK bomb")


@each_mode
def test_header_list_just_over_limit_is_431(mode):
    with running(h2_server(mode, "over431")) as s:
        with Raw(s.port()) as r:
            status, _ = r.response(r.request("/", extra=bomb(9)))  # ~36 KiB decoded
            assert status == 431, f"expected 431, got {status} ({r.goaway_text()})"
            for _ in range(3):
                status, body = r.response(r.request("/"))
                assert status == 200 and body == b"Hello, World!", (status, body[:100])
            assert r.goaway is None and not r.closed, r.goaway_text()
        expect_no_sanitizer_report(s)


def frames_flood(make, n, chunk=4096):
    def attack(r, good):
        r.flood([make(r, i) for i in range(n)], chunk=chunk, during=good.check)
    return attack


@each_mode
def test_settings_flood(mode):
    with running(h2_server(mode, "settings")) as s:
        attacked(s, frames_flood(lambda r, i: r.settings_frame({4: 65535 + i % 2}), 200),
                 ENHANCE_YOUR_CALM, "SETTINGS flood")


@each_mode
def test_ping_flood(mode):
    with running(h2_server(mode, "ping")) as s:
        attacked(s, frames_flood(lambda r, i: r.ping_frame(i.to_bytes(8, "big")), 2000),
                 ENHANCE_YOUR_CALM, "PING flood")


@each_mode
def test_ping_flood_tls(mode):
    ctx = client_ctx(alpn=["h2"])
    with running(tls_server(mode, "h2a-pingtls", open_http2_protocol=True)) as s:
        attacked(s, frames_flood(lambda r, i: r.ping_frame(i.to_bytes(8, "big")), 2000),
                 ENHANCE_YOUR_CALM, "PING flood", raw=lambda: Raw(s.port(), ctx), good_ctx=ctx)


@each_mode
def test_window_update_flood(mode):
    with running(h2_server(mode, "winupd")) as s:
        attacked(s, frames_flood(lambda r, i: r.window_frame(0, 1), 2000),
                 ENHANCE_YOUR_CALM, "WINDOW_UPDATE flood")


@each_mode
def test_empty_data_flood(mode):
    with running(h2_server(mode, "emptydata")) as s:
        def attack(r, good):
            sid = r.new_stream()
            r.send(r.headers_frame(sid, r.block("/echo", "POST"), end_stream=False))
            frames_flood(lambda r, i: r.data_frame(sid, b""), 2000)(r, good)
        attacked(s, attack, ENHANCE_YOUR_CALM, "empty DATA flood")


def at_limit(r, kind):
    """Frames of kind up to (not over) their limit, in one burst."""
    if kind == "settings":
        return [r.settings_frame({4: 65535}) for _ in range(9)]  # + the one after the preface
    if kind == "ping":
        return [r.ping_frame(i.to_bytes(8, "big")) for i in range(100)]
    if kind == "window":
        return [r.window_frame(0, 1) for _ in range(100)]
    if kind == "empty":
        sid = r.new_stream()
        return ([r.headers_frame(sid, r.block("/echo", "POST"), end_stream=False)] +
                [r.data_frame(sid, b"") for _ in range(100)] +
                [r.data_frame(sid, b"hello", end_stream=True)])
    sid = r.new_stream()  # a header block in 64 CONTINUATIONs, within http_header_max (8 KiB)
    block = r.block("/", extra=[(f"x-h{i}", "v" * 80) for i in range(64)])
    step = len(block) // 65 + 1
    pieces = [block[i:i + step] for i in range(0, len(block), step)]
    assert len(pieces) == 65, len(pieces)
    return ([r.headers_frame(sid, pieces[0], end_headers=False)] +
            [r.continuation_frame(sid, p, end_headers=i == 63) for i, p in enumerate(pieces[1:])])


@each_mode
def test_at_limits_not_cut(mode):
    with running(h2_server(mode, "atlimit")) as s:
        for kind in ("settings", "ping", "window", "empty", "continuation"):
            with Raw(s.port()) as r:
                r.send(b"".join(at_limit(r, kind)))
                if kind in ("empty", "continuation"):
                    status, body = r.response(r.max_id)
                    assert status == 200, f"{kind}: {status} {r.goaway_text()}"
                    assert kind != "empty" or body == b"hello", body[:100]
                try:
                    status, body = r.response(r.request("/"))
                except AssertionError as e:
                    raise AssertionError(f"{kind}: {e}") from e
                assert status == 200 and body == b"Hello, World!", (kind, status, body[:100])
                assert r.goaway is None and not r.closed, f"{kind}: {r.goaway_text()}"
        with Raw(s.port()) as r:  # two WINDOW_UPDATEs per DATA frame, as clients do: earned
            status, body = r.response(r.request("/big?bytes=4194304"), timeout=30)
            assert status == 200 and len(body) == 4194304, (status, len(body))
            assert r.goaway is None and not r.closed, r.goaway_text()
        expect_no_sanitizer_report(s)


if __name__ == "__main__":
    run([test_continuation_flood, test_hpack_bomb, test_header_list_just_over_limit_is_431,
         test_settings_flood, test_ping_flood, test_ping_flood_tls, test_window_update_flood,
         test_empty_data_flood, test_at_limits_not_cut])
