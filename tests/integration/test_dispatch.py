"""dispatch_mode: how the reactor picks a worker for a request, seen through GET /worker.
1 round-robin (alternates even on one keep-alive connection), 2 fixed by connection (the
default), 3 to an idle worker (a busy one is skipped), 4 by client IP hash. Base mode has no
dispatch (each worker owns its connections): a connection stays on one worker there."""
import json
import socket
import time

from srvtest import SLOW, run, running, wait_for
from test_http import RawConn, server


def worker_of(c):
    r = c.request("GET", "/worker")
    assert r.status == 200, r
    return json.loads(r.body)["id"]


def test_mode1_round_robin():
    with running(server("process", "rr", server={"dispatch_mode": 1, "worker_num": 3})) as s:
        with RawConn(s.port()) as c:
            ids = [worker_of(c) for _ in range(9)]
        # consecutive requests on one connection go to the next worker each time
        for a, b in zip(ids, ids[1:]):
            assert b == (a + 1) % 3, ids
        # and round-robin is global: a second connection continues the rotation
        with RawConn(s.port()) as c1, RawConn(s.port()) as c2:
            seq = [worker_of(c1 if i % 2 else c2) for i in range(6)]
        assert sorted(seq) == [0, 0, 1, 1, 2, 2], seq


def check_fixed(s):
    for _ in range(3):
        with RawConn(s.port()) as c:
            ids = {worker_of(c) for _ in range(8)}
            assert len(ids) == 1, ids
    # different connections spread over the workers
    conns = [RawConn(s.port()) for _ in range(8)]
    try:
        ids = [worker_of(c) for c in conns]
        again = [worker_of(c) for c in conns]
    finally:
        for c in conns:
            c.close()
    assert ids == again, (ids, again)
    assert len(set(ids)) == 2, ids


def test_mode2_fixed_by_connection():
    with running(server("process", "fixed", server={"dispatch_mode": 2})) as s:
        check_fixed(s)


def test_mode2_is_default():
    with running(server("process", "default")) as s:
        check_fixed(s)


def test_mode3_idle_worker():
    with running(server("process", "idle", server={"dispatch_mode": 3})) as s:
        with RawConn(s.port()) as a, RawConn(s.port()) as b:
            base = {w["id"]: w["requests"] for w in s.info()["workers"]}
            a.send(b"GET /sleep?ms=4000 HTTP/1.1\r\nHost: x\r\n\r\n")
            t0 = time.monotonic()

            def busy_worker():
                now = {w["id"]: w["requests"] for w in s.info()["workers"]}
                moved = [i for i in now if now[i] != base[i]]
                return moved[0] + 1 if moved else None
            busy = wait_for(busy_worker, 2, "the sleep request to reach a worker") - 1
            ids = [worker_of(b) for _ in range(6)]
            took = time.monotonic() - t0
            assert all(i != busy for i in ids), (busy, ids)
            assert took < 3.5, f"requests waited for the busy worker ({took:.2f}s)"
            r = a.read_response()
            assert r.status == 200 and r.body == b"slept 4000 ms\n", r
            # with everyone idle again both workers can be chosen; the connection still works
            assert worker_of(a) in (0, 1)


def test_mode4_ip_hash():
    with running(server("process", "iphash", server={"dispatch_mode": 4, "worker_num": 3})) as s:
        conns = [RawConn(s.port()) for _ in range(8)]
        try:
            ids = {worker_of(c) for c in conns for _ in range(2)}
        finally:
            for c in conns:
                c.close()
        assert len(ids) == 1, ids
        # other loopback source addresses: each address sticks to its own worker
        seen = {}
        for last in range(2, 12):
            src = f"127.0.0.{last}"
            for _ in range(2):
                sk = socket.socket()
                sk.bind((src, 0))
                sk.connect(("127.0.0.1", s.port()))
                with RawConn(sock=sk) as c:
                    wid = worker_of(c)
                    peer = c.request("GET", "/peer").body
                    assert peer.startswith(src.encode() + b" "), (src, peer)
                assert seen.setdefault(src, wid) == wid, (src, seen, wid)
        assert len(set(seen.values())) >= 2, f"10 addresses all hashed to one worker: {seen}"


def test_base_mode_connection_stays_on_worker():
    for dm in (1, 3):
        with running(server("base", f"basedisp{dm}", server={"dispatch_mode": dm})) as s:
            with RawConn(s.port()) as c:
                ids = {worker_of(c) for _ in range(6)}
                assert len(ids) == 1, ids
                r = c.request("GET", "/")
                assert r.status == 200


if __name__ == "__main__":
    run([test_mode1_round_robin, test_mode2_fixed_by_connection, test_mode2_is_default,
         test_mode3_idle_worker, test_mode4_ip_hash, test_base_mode_connection_stays_on_worker])
