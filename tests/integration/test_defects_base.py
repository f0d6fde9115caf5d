"""Issue 11, base mode (every worker accepts for itself on the listeners the master bound):
new connections are spread over the workers, not all taken by one, and a worker blocked in a
handler holds no connection an idle worker could serve. Run once per backend
(SRV_REACTOR_BACKEND=io_uring, =epoll)."""
import json
import re
import socket
import threading
import time
from collections import Counter

from srvtest import SLOW, Server, run, running, wait_for

WORKERS = 4


def base_server(name):
    return Server(name=name, server={"mode": "base", "worker_num": WORKERS})


def backend(s):
    m = re.search(r"loop: workers on (\S+)", s.log())
    assert m, s.log()
    return m.group(1)


def test_base_spreads_new_connections():
    """1,000 connections one after the other (Connection: close), each asking which worker
    answers. Before: every one went to the same worker (io_uring). epoll hands them to idle
    workers in turn; io_uring wakes every idle worker and the first one up takes it."""
    with running(base_server("base-spread")) as s:
        got = Counter()
        for i in range(1000):
            status, _, body = s.get("/worker", headers={"Connection": "close"})
            assert status == 200, (i, status, body)
            got[json.loads(body)["id"]] += 1
        be = backend(s)
        print(f"  {be}: connections per worker {dict(sorted(got.items()))}", flush=True)
        assert sorted(got) == list(range(WORKERS)), (be, got)
        fair = 1000 // WORKERS
        assert min(got.values()) >= fair // 10, (be, got)
        if be == "epoll":
            assert all(abs(n - fair) <= fair // 5 for n in got.values()), (be, got)
        s.stop()


class Sleeper(threading.Thread):
    """GET /sleep?ms=N on a connection of its own; connects and sends in the constructor."""

    def __init__(self, port, ms):
        super().__init__()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30 * SLOW)
        self.sock.sendall(f"GET /sleep?ms={ms} HTTP/1.1\r\nHost: t\r\n"
                          "Connection: close\r\n\r\n".encode())
        self.reply = b""
        self.error = None
        self.took = None
        self.t0 = time.monotonic()
        self.start()

    def run(self):
        try:
            while True:
                b = self.sock.recv(65536)
                if not b:
                    break
                self.reply += b
        except OSError as e:
            self.error = e
        finally:
            self.took = time.monotonic() - self.t0
            self.sock.close()


def busy_counts(s):
    return [w["requests"] for w in s.info()["workers"] if w["type"] == "worker"]


def test_base_busy_worker_holds_no_connection():
    """Eight 2 s sleeps on four workers take two rounds, about 4 s, whatever the arrival order.
    First round: one request at a time, each sent once the previous one is running, so it
    reaches the workers while some are blocked in a handler (before: io_uring left it to the
    blocked worker). Second round: four more while all four are blocked, so they wait in the
    listen queue; each worker coming back takes one (before: epoll's first worker back took
    all four, and they ran one after the other)."""
    ms = int(2000 * SLOW)
    with running(base_server("base-busy")) as s:
        assert busy_counts(s) == [0] * WORKERS
        first = []
        for k in range(1, WORKERS + 1):
            first.append(Sleeper(s.port(), ms))
            # k workers busy, one request each: none took a second one.
            wait_for(lambda: sorted(busy_counts(s)) == [0] * (WORKERS - k) + [1] * k, 10,
                     f"request {k} running on a worker of its own (per-worker requests)")
        second = [Sleeper(s.port(), ms) for _ in range(WORKERS)]
        assert not any(t.took for t in first), \
            "a first-round sleep ended before the second round was queued: too slow a machine"
        for t in first + second:
            t.join()
        be = backend(s)
        print(f"  {be}: replies after " + ", ".join(f"{t.took:.2f}" for t in first + second)
              + " s", flush=True)
        for t in first + second:
            assert t.error is None and t.reply.startswith(b"HTTP/1.1 200"), (be, t.error,
                                                                               t.reply[:100])
        # Two each: no request waited behind two others on one worker while another idled.
        assert busy_counts(s) == [2] * WORKERS, (be, busy_counts(s))
        s.stop()


if __name__ == "__main__":
    run([test_base_spreads_new_connections, test_base_busy_worker_holds_no_connection])
