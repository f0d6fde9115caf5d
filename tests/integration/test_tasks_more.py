"""Task and timer calls the other task tests cannot reach: a task delivering a task, several
tasks waited for together, a message to one worker, and srv_timer_tick + srv_timer_clear. Every
request goes on its own connection with dispatch_mode 1 so it is clear which worker answers."""
import json
import re

from srvtest import Server, run, running, wait_for

TASKS = {"worker_num": 2, "task_worker_num": 2, "dispatch_mode": 1}


def test_task_delivers_a_task():
    with running(Server(name="chain", server=TASKS)) as s:
        status, _, body = s.get("/task/chain")
        assert status == 200, (status, body)
        assert re.fullmatch(rb"chain -> task \d+ done by task worker [01] \(attempt 1\)", body), \
            body
        s.stop()


def test_wait_many():
    with running(Server(name="many", server=TASKS)) as s:
        status, _, body = s.get("/task/many?n=5")
        assert status == 200 and body == b"5 of 5 done 0 0 0 0 0\n", (status, body)
        info = s.info()
        assert info["tasks"]["done"] == 5 and info["tasks"]["queued"] == 0, info["tasks"]
        s.stop()


def test_message_to_one_worker():
    with running(Server(name="msg1", server={"worker_num": 3, "dispatch_mode": 1})) as s:
        sent = 0
        for _ in range(6):  # round robin: the sender is never worker 2 on every try
            status, _, body = s.get("/message?to=2&msg=hello")
            if status == 200:
                assert body == b"0\n"
                sent += 1
            else:
                assert (status, body) == (400, b"-22\n"), (status, body)  # sent to itself
        assert sent >= 4, sent
        wait_for(lambda: s.get("/messages")[2] == b"%d\n" % sent, 10, "messages counted")
        # the log names the receiver: worker 2 only
        assert "worker 2 got a message" in s.log()
        assert "worker 0 got a message" not in s.log() and "worker 1 got a message" not in s.log()
        s.stop()


def test_timer_tick_and_clear():
    with running(Server(name="tick")) as s:
        status, _, body = s.get("/tick?n=7")
        assert (status, body) == (200, b"7 beats, clear 0\n"), (status, body)
        s.stop()


if __name__ == "__main__":
    run([test_task_delivers_a_task, test_wait_many, test_message_to_one_worker,
         test_timer_tick_and_clear])
