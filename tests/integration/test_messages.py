"""Black-box tests of messages between workers through the demo: GET /broadcast?msg= calls
srv_broadcast_message and answers how many workers it reached; every worker's on_pipe_message
counts in a shared atomic (GET /messages) and logs "worker <to> got a message from worker <from>:
<text>". The demo has no endpoint for srv_send_message to a single worker."""
import os
import re
import signal
import threading

from srvtest import Server, running, run, wait_for

GOT = re.compile(r"worker (\d+) got a message from worker (\d+): (\S*)")


def messages(s):
    st, _, body = s.get("/messages")
    assert st == 200, (st, body)
    return int(body)


def got(s, text):
    """(to, from) pairs of the log lines for message text."""
    return sorted((int(m.group(1)), int(m.group(2))) for m in GOT.finditer(s.log())
                  if m.group(3) == text)


def test_broadcast_reaches_every_other_worker():
    """worker_num = 3: a broadcast reaches the 2 others, each exactly once, with its bytes."""
    with running(Server(server={"worker_num": 3, "log_level": "debug"})) as s:
        st, _, body = s.get("/broadcast?msg=hello1")
        assert (st, body) == (200, b"2\n"), (st, body)
        wait_for(lambda: messages(s) == 2, 5, "2 messages received")
        pairs = wait_for(lambda: (lambda g: g if len(g) == 2 else None)(got(s, "hello1")), 5,
                         "both receivers to log the message")
        senders = {f for _, f in pairs}
        receivers = {t for t, _ in pairs}
        assert len(senders) == 1, pairs
        sender = senders.pop()
        assert receivers == {0, 1, 2} - {sender}, pairs
        # Nothing more arrives later (no duplicates).
        assert s.get("/after?ms=300")[0] == 200  # a pause served by the server itself
        assert messages(s) == 2


def test_broadcast_single_worker():
    """worker_num = 1: nobody else to reach."""
    with running(Server(server={"worker_num": 1})) as s:
        st, _, body = s.get("/broadcast?msg=alone")
        assert (st, body) == (200, b"0\n"), (st, body)
        assert s.get("/after?ms=200")[0] == 200
        assert messages(s) == 0


def test_many_broadcasts():
    """Broadcasts from several clients at once: every one arrives exactly once everywhere."""
    with running(Server(server={"worker_num": 3, "dispatch_mode": 1})) as s:
        results = []
        lock = threading.Lock()

        def client(k):
            for i in range(10):
                r = s.get(f"/broadcast?msg=m{k}_{i}")
                with lock:
                    results.append(r[:1] + r[2:])

        ts = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        assert len(results) == 40, len(results)
        assert all(r == (200, b"2\n") for r in results), results
        wait_for(lambda: messages(s) == 80, 10, "80 messages received")
        assert s.get("/after?ms=300")[0] == 200
        assert messages(s) == 80


def test_broadcast_with_task_workers():
    """A broadcast goes to the other event workers only (srv.h: "every other worker"), not to
    task workers or custom processes: with 2 workers it reaches 1."""
    extra = '\n[[process]]\nname = "clock"\nhandler = "demo_clock"\n'
    with running(Server(server={"worker_num": 2, "task_worker_num": 2}, extra=extra)) as s:
        st, _, body = s.get("/broadcast?msg=x")
        assert st == 200, (st, body)
        assert body == b"1\n", body
        wait_for(lambda: messages(s) == 1, 5, "1 message received")
        assert s.get("/after?ms=300")[0] == 200
        assert messages(s) == 1


def test_broadcast_after_worker_respawn():
    """A respawned worker receives broadcasts again (its mailbox works after the crash)."""
    with running(Server(server={"worker_num": 2, "log_level": "debug"})) as s:
        old = {w["id"]: w["pid"] for w in s.info()["workers"] if w["type"] == "worker"}
        os.kill(old[1], signal.SIGKILL)
        wait_for(lambda: (lambda i: i if all(w["state"] == "ready" and w["pid"] not in
                                             (0, old[1]) or w["id"] != 1
                                             for w in i["workers"]) else None)(s.info()),
                 10, "worker 1 respawned")
        total = 0
        for i in range(4):
            st, _, body = s.get(f"/broadcast?msg=after{i}")
            assert (st, body) == (200, b"1\n"), (st, body)
            total += 1
        wait_for(lambda: messages(s) == total, 5, "messages received")
        pairs = [p for i in range(4) for p in got(s, f"after{i}")]
        assert {t for t, _ in pairs} == {0, 1}, pairs


if __name__ == "__main__":
    run([test_broadcast_reaches_every_other_worker, test_broadcast_single_worker,
         test_many_broadcasts, test_broadcast_with_task_workers, test_broadcast_after_worker_respawn])
