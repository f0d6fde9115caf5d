"""Plain TCP listeners beside HTTP: the demo's "lines" handler (echoes each frame; "quit" makes
the app call srv_close) and "frames" handler (echoes each length-prefixed frame), on IPv4, IPv6
and unix stream sockets; framing none / EOF split / length; package_max_length; heartbeat
(server-wide and per listener); dispatch modes keep a connection's frames in order. Clients are
Python sockets and netcat (nc -N)."""
import os
import socket
import stat
import struct
import subprocess
import threading
import time

from srvtest import UNIX, SLOW, SockClient, listener, run, running, typed_server, wait_for

EOF_LINES = {"handler": "lines", "open_eof_check": True, "open_eof_split": True,
             "package_eof": "\r\n"}
LENGTH = {"handler": "frames", "open_length_check": True, "package_length_type": "N",
          "package_length_offset": 0, "package_body_offset": 4}
def tcp_server(mode, name, listeners, server=None):
    return typed_server("tcp", mode, name, listeners, server)


class Client(SockClient):
    def __init__(self, s, name, timeout=10):
        l = listener(s, name)
        if "path" in l:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            addr = l["path"]
        elif ":" in l.get("host", ""):
            self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            addr = (l["host"], l["port"])
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            addr = (l.get("host", "127.0.0.1"), l["port"])
        self.sock.settimeout(timeout * SLOW)
        self.sock.connect(addr)

    def send(self, b):
        self.sock.sendall(b)

    def recv_exact(self, n):
        out = b""
        while len(out) < n:
            b = self.sock.recv(n - len(out))
            if not b:
                raise AssertionError(f"EOF after {len(out)} of {n} bytes: {out[-200:]!r}")
            out += b
        return out

    def expect(self, want):
        got = self.recv_exact(len(want))
        assert got == want, f"got {got[:200]!r}... want {want[:200]!r}..."

    def expect_eof(self, what="", timeout=10):
        """The server closes: EOF (or a reset) within the timeout, no more data."""
        self.sock.settimeout(timeout * SLOW)
        try:
            while True:
                b = self.sock.recv(65536)
                if not b:
                    return
                raise AssertionError(f"{what}: unexpected data {b[:100]!r}")
        except ConnectionResetError:
            return
        except socket.timeout:
            raise AssertionError(f"{what}: connection still open after {timeout * SLOW}s")


def frame(body):
    return struct.pack(">I", len(body)) + body


def body(i, n=None):
    n = (i * 37) % 300 if n is None else n
    return bytes((i + j) & 0xFF for j in range(n))


def trickle(c, data, pause=0.002):
    """Send byte by byte: every frame arrives split over many reads."""
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) if c.sock.family != \
        socket.AF_UNIX else None
    for i in range(len(data)):
        c.send(data[i:i + 1])
        time.sleep(pause)


# ---------------------------------------------------------------- framing


def check_lines(s, name):
    with Client(s, name) as c:
        c.send(b"hello\r\n")
        c.expect(b"hello\r\n")
        # many lines in one write come back one by one, in order
        lines = b"".join(b"line %d\r\n" % i for i in range(1000))
        c.send(lines)
        c.expect(lines)
        # a line split over many reads, the EOF marker itself split
        trickle(c, b"abc\r\nd\r\n")
        c.expect(b"abc\r\nd\r\n")
        c.send(b"part one, ")
        c.send(b"part two\r")
        c.send(b"\n")
        c.expect(b"part one, part two\r\n")
        # an empty line is a frame too, and a lone \n is not the EOF marker
        c.send(b"\r\nx\ny\r\n")
        c.expect(b"\r\nx\ny\r\n")
        # the app closes with srv_close after its answer
        c.send(b"quit\r\n")
        c.expect(b"bye\r\n")
        c.expect_eof("after quit")


def test_lines_ipv4_process():
    with running(tcp_server("process", "lines", [("lines", EOF_LINES)])) as s:
        check_lines(s, "lines")
        assert s.get("/")[0] == 200  # HTTP beside it


def test_lines_ipv4_base():
    with running(tcp_server("base", "lines", [("lines", EOF_LINES)])) as s:
        check_lines(s, "lines")


def test_lines_ipv6_and_unix():
    ls = [("v6", dict(EOF_LINES, host="::1")), ("unix", dict(EOF_LINES, path=UNIX))]
    for mode in ("process", "base"):
        with running(tcp_server(mode, "v6unix", ls)) as s:
            check_lines(s, "v6")
            check_lines(s, "unix")
            assert stat.S_ISSOCK(os.stat(listener(s, "unix")["path"]).st_mode)


def test_no_framing():
    """No framing options: every read goes up as it came; the lines handler echoes it."""
    for mode in ("process", "base"):
        with running(tcp_server(mode, "raw", [("raw", {"handler": "lines"})])) as s:
            with Client(s, "raw") as c:
                c.send(b"no newline here")
                c.expect(b"no newline here")
                data = bytes(range(256)) * 400  # 100 KiB, any read boundaries
                c.send(data)
                c.expect(data)
                c.send(b"x")
                c.expect(b"x")


def check_length(s, name):
    with Client(s, name) as c:
        c.send(frame(b"hello"))
        c.expect(frame(b"hello"))
        c.send(frame(b""))
        c.expect(frame(b""))
        # many frames in one write
        many = b"".join(frame(body(i)) for i in range(500))
        c.send(many)
        c.expect(many)
        # frames split over many reads: byte by byte, header split too
        few = b"".join(frame(body(i, 20)) for i in range(3))
        trickle(c, few)
        c.expect(few)
        # a big frame, and a frame whose header ends one write and body starts the next
        big = frame(body(7, 1 << 20))
        c.send(big)
        c.expect(big)
        c.send(frame(b"abc") + frame(b"defgh")[:6])
        c.send(frame(b"defgh")[6:])
        c.expect(frame(b"abc") + frame(b"defgh"))


def test_length_framing():
    ls = [("frames", LENGTH), ("frames6", dict(LENGTH, host="::1")),
          ("framesu", dict(LENGTH, path=UNIX))]
    for mode in ("process", "base"):
        with running(tcp_server(mode, "length", ls)) as s:
            for name in ("frames", "frames6", "framesu"):
                check_length(s, name)


def test_package_max_length():
    ls = [("frames", dict(LENGTH, package_max_length=1024)),
          ("lines", dict(EOF_LINES, package_max_length=1024))]
    for mode in ("process", "base"):
        with running(tcp_server(mode, "maxlen", ls)) as s:
            with Client(s, "frames") as ok, Client(s, "frames") as bad:
                ok.send(frame(b"a" * 1000))
                ok.expect(frame(b"a" * 1000))
                # announced over the limit: closed at once, before any body arrives
                bad.send(frame(b"b" * 2000)[:8])
                bad.expect_eof("oversized length frame")
                ok.send(frame(b"still"))
                ok.expect(frame(b"still"))
            with Client(s, "frames") as bad:
                bad.send(struct.pack(">I", 0xFFFFFFF0))
                bad.expect_eof("4 GiB length frame")
            with Client(s, "lines") as ok, Client(s, "lines") as bad:
                ok.send(b"short\r\n")
                ok.expect(b"short\r\n")
                bad.send(b"z" * 3000)  # no EOF marker within package_max_length
                bad.expect_eof("endless line")
                ok.send(b"again\r\n")
                ok.expect(b"again\r\n")
            with Client(s, "frames") as c:  # new connections are still served
                c.send(frame(b"new"))
                c.expect(frame(b"new"))
            wait_for(lambda: "package_max_length" in s.log(), 10,
                     "a log line naming package_max_length")


# ---------------------------------------------------------------- netcat


def nc(args, data, timeout=20):
    r = subprocess.run(["nc", "-N", "-w", str(int(10 * SLOW)), *args], input=data,
                       capture_output=True, timeout=timeout * SLOW)
    return r.returncode, r.stdout


def check_netcat(mode):
    ls = [("lines", EOF_LINES), ("v6", dict(EOF_LINES, host="::1")),
          ("unix", dict(EOF_LINES, path=UNIX)), ("frames", LENGTH)]
    with running(tcp_server(mode, "nc", ls)) as s:
        script = b"hello\r\nworld\r\nquit\r\n"
        want = b"hello\r\nworld\r\nbye\r\n"
        rc, out = nc(["127.0.0.1", str(listener(s, "lines")["port"])], script)
        assert out == want, (rc, out)
        rc, out = nc(["::1", str(listener(s, "v6")["port"])], script)
        assert out == want, (rc, out)
        rc, out = nc(["-U", listener(s, "unix")["path"]], script)
        assert out == want, (rc, out)
        # without quit: nc half-closes (-N) after its input; the echo still comes back whole
        rc, out = nc(["127.0.0.1", str(listener(s, "lines")["port"])], b"a\r\nb\r\n")
        assert out == b"a\r\nb\r\n", (rc, out)
        frames = b"".join(frame(body(i)) for i in range(50))
        rc, out = nc(["127.0.0.1", str(listener(s, "frames")["port"])], frames)
        assert out == frames, (rc, len(out))


def test_netcat_process():
    check_netcat("process")


def test_netcat_base():
    check_netcat("base")


def test_nothing_answered_after_srv_close():
    """Lines that arrive in the same read as "quit" come after the app's srv_close: the client
    gets "bye" and then the end of the stream, never an answer to what followed."""
    for mode in ("process", "base"):
        with running(tcp_server(mode, "afterquit", [("lines", EOF_LINES)])) as s:
            with Client(s, "lines") as c:
                c.send(b"a\r\nquit\r\nnever\r\nmore\r\n")
                c.expect(b"a\r\nbye\r\n")
                c.expect_eof(f"after quit ({mode})")


# ---------------------------------------------------------------- heartbeat


def idle_closed_within(c, lo, hi, what):
    t0 = time.monotonic()
    c.expect_eof(what, timeout=hi)
    dt = time.monotonic() - t0
    assert dt >= lo, f"{what}: closed after {dt:.2f}s, before the idle time"
    return dt


def test_heartbeat_server_wide():
    srv = tcp_server("process", "hb", [("lines", EOF_LINES)],
                     server={"heartbeat_check_interval": 1, "heartbeat_idle_time": 2})
    with running(srv) as s:
        with Client(s, "lines") as idle, Client(s, "lines") as busy:
            idle.send(b"hi\r\n")
            idle.expect(b"hi\r\n")
            stop = threading.Event()
            errors = []

            def chatter():
                try:
                    i = 0
                    while not stop.is_set():
                        busy.send(b"%d\r\n" % i)
                        busy.expect(b"%d\r\n" % i)
                        i += 1
                        stop.wait(0.3)
                except Exception as e:  # reported below
                    errors.append(e)
            t = threading.Thread(target=chatter)
            t.start()
            try:
                # idle for 2 s, checked every 1 s: closed after ~2-3 s
                idle_closed_within(idle, 1.5, 12, "idle connection")
            finally:
                stop.set()
                t.join()
            assert not errors, errors
            busy.send(b"alive\r\n")
            busy.expect(b"alive\r\n")


def test_heartbeat_per_listener():
    ls = [("fast", dict(EOF_LINES, heartbeat_idle_time=2)),  # overrides the server's 60 s
          ("slow", EOF_LINES),                                # inherits 60 s
          ("never", dict(EOF_LINES, heartbeat_idle_time=0, heartbeat_check_interval=0))]
    srv = tcp_server("process", "hbl", ls,
                     server={"heartbeat_check_interval": 1, "heartbeat_idle_time": 60})
    with running(srv) as s:
        with Client(s, "fast") as f, Client(s, "slow") as sl, Client(s, "never") as nv:
            for c in (f, sl, nv):
                c.send(b"x\r\n")
                c.expect(b"x\r\n")
            idle_closed_within(f, 1.5, 12, "idle connection on the 2 s listener")
            for c in (sl, nv):  # idle just as long, still open
                c.send(b"y\r\n")
                c.expect(b"y\r\n")
    # only the listener sets it: the server-wide default is off
    ls = [("fast", dict(EOF_LINES, heartbeat_idle_time=2, heartbeat_check_interval=1)),
          ("off", EOF_LINES)]
    with running(tcp_server("base", "hbl2", ls)) as s:
        with Client(s, "fast") as f, Client(s, "off") as off:
            idle_closed_within(f, 1.5, 12, "idle connection (listener-only heartbeat)")
            off.send(b"z\r\n")
            off.expect(b"z\r\n")


# ---------------------------------------------------------------- dispatch


def test_dispatch_modes_keep_order():
    for mode in (1, 2, 3, 4, 5):
        srv = tcp_server("process", f"dm{mode}", [("frames", LENGTH), ("lines", EOF_LINES)],
                         server={"dispatch_mode": mode, "worker_num": 3})
        with running(srv) as s:
            clients = [Client(s, "frames") for _ in range(4)]
            try:
                for rnd in range(3):
                    # each client writes 200 frames at once; all clients at the same time
                    batches = [b"".join(frame(b"%d:%d:%d:" % (k, rnd, i) + body(i))
                                        for i in range(200)) for k in range(len(clients))]
                    for c, b in zip(clients, batches):
                        c.send(b)
                    for c, b in zip(clients, batches):
                        c.expect(b)
            finally:
                for c in clients:
                    c.close()
            with Client(s, "lines") as c:
                lines = b"".join(b"%d\r\n" % i for i in range(300))
                trickle(c, lines[:60], pause=0.001)
                c.send(lines[60:])
                c.expect(lines)
                c.send(b"quit\r\n")
                c.expect(b"bye\r\n")
                c.expect_eof(f"quit in dispatch_mode {mode}")


def test_many_connections():
    """50 concurrent clients, each with its own stream of frames, none mixed up."""
    with running(tcp_server("process", "many", [("frames", LENGTH)])) as s:
        errors = []

        def one(k):
            try:
                with Client(s, "frames") as c:
                    for r in range(5):
                        data = b"".join(frame(b"%d-%d-%d" % (k, r, i)) for i in range(40))
                        c.send(data)
                        c.expect(data)
            except Exception as e:
                errors.append((k, e))
        ts = [threading.Thread(target=one, args=(k,)) for k in range(50)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60 * SLOW)
        assert not any(t.is_alive() for t in ts), "clients still running"
        assert not errors, errors[:3]


if __name__ == "__main__":
    run([test_lines_ipv4_process, test_lines_ipv4_base, test_lines_ipv6_and_unix,
         test_no_framing, test_length_framing, test_package_max_length, test_netcat_process,
         test_netcat_base, test_nothing_answered_after_srv_close,
         test_heartbeat_server_wide, test_heartbeat_per_listener,
         test_dispatch_modes_keep_order, test_many_connections])
