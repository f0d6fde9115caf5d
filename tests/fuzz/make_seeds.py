#!/usr/bin/python3
"""Writes the seed inputs of fuzz_ws, fuzz_toml, fuzz_cron, fuzz_ctl, fuzz_query, fuzz_static and
fuzz_tls into tests/fuzz/corpus/<name>/ (each a small, meaningful input; the first bytes are the
harness's option bytes, see each fuzz_<name>.c). Run from anywhere; rewrites those files only."""
import os
import ssl
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(name, seed, data):
    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, seed), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def ws_frame(op, payload, fin=True, rsv1=False, mask=b"\x37\xfa\x21\x3d"):
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | op
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def deflate(data):
    c = zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]  # RFC 7692: the 00 00 ff ff tail is dropped


def ws_seeds():
    # byte 0: bit 0 deflate, bits 1-2 size limit, bit 3 output limit; byte 1: cut mask length
    plain, defl = b"\x00\x00", b"\x01\x00"
    put("ws", "text", plain + ws_frame(1, b"hello"))
    put("ws", "binary_cut", b"\x00\x03" + ws_frame(2, bytes(range(200))) + b"\x01\x00\x01")
    put("ws", "fragments", plain + ws_frame(1, b"hel", fin=False) + ws_frame(9, b"p")
        + ws_frame(0, "lo \u00e9".encode(), fin=True))
    put("ws", "ping_close", plain + ws_frame(9, b"abc") + ws_frame(8, struct.pack("!H", 1000) + b"bye"))
    put("ws", "deflate", defl + ws_frame(1, deflate(b"hello hello hello"), rsv1=True))
    put("ws", "deflate_frag", defl + ws_frame(2, deflate(b"x" * 3000)[:5], fin=False, rsv1=True)
        + ws_frame(0, deflate(b"x" * 3000)[5:]))
    put("ws", "deflate_bomb", b"\x03\x00" + ws_frame(2, deflate(b"\0" * 100000), rsv1=True))
    put("ws", "bad_utf8", plain + ws_frame(1, b"\xc3\x28"))
    put("ws", "too_big", b"\x02\x00" + ws_frame(2, b"y" * 100))
    put("ws", "unmasked", plain + b"\x81\x05hello")
    put("ws", "outlimit", b"\x08\x00" + ws_frame(2, b"z" * 120) * 4)


def toml_seeds():
    put("toml", "server", '[server]\nworker_num = 4\nmode = "process"\nlog_level = "info"\n')
    put("toml", "listen", '[[listen]]\nhost = "127.0.0.1"\nport = 8080\nopen_http_protocol = true\n'
        '[[listen]]\nport = 8443\nssl_cert_file = "c.pem"\nssl_key_file = "k.pem"\n'
        '[[listen.sni]]\nhost = "a.example"\nssl_cert_file = "a.pem"\nssl_key_file = "a.key"\n')
    put("toml", "table", '[[table]]\nname = "users"\nsize = 1024\n'
        'columns = [{name = "id", type = "int"}, {name = "name", type = "string", size = 32}]\n')
    put("toml", "cron", '[[cron]]\nname = "tick"\nschedule = "*/5 * * * *"\nhandler = "tick"\n')
    put("toml", "process", '[[process]]\nname = "side"\nentry = "side_main"\n')
    put("toml", "syntax_error", '[server\nworker_num = = 4\n')
    put("toml", "types", '[server]\nworker_num = "four"\nmax_request = 1.5\n'
        'when = 1979-05-27T07:32:00Z\nlist = [1, "a", [2]]\n')


def cron_seeds():
    # byte 0: error buffer size (bit 7: Europe/Berlin); bytes 1-4: start time
    t = b"\x00\x10\x20\x30"
    for name, expr, b0 in [("every", "* * * * *", 64), ("steps", "*/15 9-17 * * 1-5", 64),
                           ("names", "0 12 1 jan,jul mon-fri", 200), ("hourly", "@hourly", 10),
                           ("feb30", "0 0 30 2 *", 64), ("leap", "0 0 29 2 *", 64),
                           ("dst", "30 2 * * *", 0x80 | 64), ("bad", "61 * * * *", 8),
                           ("sunday7", "0 0 * * 7", 64), ("list", "1,2,3-9/2 0 1-31/3 * *", 1)]:
        put("cron", name, bytes([b0]) + t + expr.encode())


def ctl_seeds():
    # byte 0: cut mask length, taken from the tail
    put("ctl", "info", b"\x00info\n")
    put("ctl", "info_json_crlf", b"\x00info json\r\n")
    put("ctl", "reload_cut", b"\x03reload tasks\n\x01\x00\x01")
    put("ctl", "stop_extra", b"\x00stop\nmore\n")
    put("ctl", "long", b"\x00" + b"a" * 300 + b"\n")
    put("ctl", "no_newline", b"\x00stop")


def query_seeds():
    # byte 0: small buffer size; the name up to NUL; the query
    put("query", "simple", b"\x10b\x00a=1&b=x+y&c")
    put("query", "escapes", b"\x08name\x00na%6De=%E2%82%AC%20ok&x=%zz")
    put("query", "flag", b"\x04c\x00a=1&c&c=2")
    put("query", "bad", b"\x20a\x00a=%4")
    put("query", "plus_name", b"\x20a b\x00a+b=1&a%20b=2")


def static_seeds():
    # byte 0: small buffer size; the URL path
    for name, p in [("index", "/index.html"), ("dots", "/a/./b/../c%20d/"), ("climb", "/../etc/passwd"),
                    ("climb_enc", "/a/%2e%2e/%2E%2E/x"), ("backslash", "/a\\..\\..\\b"),
                    ("slash_enc", "/a%2f..%5c..%2fb"), ("nul", "/a%00b"), ("bad", "/a%g1"),
                    ("trailing", "/a/b/.."), ("range", "bytes=0-99"), ("range_suffix", "bytes=-5"),
                    ("date", "Sun, 06 Nov 1994 08:49:37 GMT")]:
        put("static", name, b"\x0c" + p.encode())


def tls_seeds():
    # byte 0: piece size (0: all at once); a client's first flight
    for name, v in [("hello13", ssl.TLSVersion.TLSv1_3), ("hello12", ssl.TLSVersion.TLSv1_2)]:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ctx.maximum_version = v
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        s = ctx.wrap_bio(inc, out, server_hostname="localhost")
        try:
            s.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = out.read()
        put("tls", name, b"\x00" + hello)
        put("tls", name + "_cut", b"\x07" + hello)
    put("tls", "plain", b"\x00GET / HTTP/1.1\r\n\r\n")
    put("tls", "garbage", b"\x00\x16\x03\x01\x00\x05hello")
    put("tls", "alert", b"\x00\x15\x03\x03\x00\x02\x02\x28")


if __name__ == "__main__":
    ws_seeds()
    toml_seeds()
    cron_seeds()
    ctl_seeds()
    query_seeds()
    static_seeds()
    tls_seeds()
