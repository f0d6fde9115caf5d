"""request_timeout and task_timeout (harakiri), black-box: a handler sleeping past its limit
gets the client a 504 (process mode) within a bound, the worker is killed and replaced (new pid
in srv info, a log line naming the URL, the worker, the pid and the duration), and a request on
another worker meanwhile is answered normally; a listener's own request_timeout overrides
[server]'s; a task past task_timeout counts as failed and follows its retry rule. Both modes."""
import http.client
import re
import threading
import time

from srvtest import SLOW, Server, run, running, wait_for


def workers(info, kind="worker"):
    return sorted((w for w in info["workers"] if w["type"] == kind), key=lambda w: w["id"])


def timed_get(s, path, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", s.port(), timeout=timeout * SLOW)
    t0 = time.monotonic()
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read(), time.monotonic() - t0
    except (ConnectionError, http.client.HTTPException) as e:
        return None, repr(e).encode(), time.monotonic() - t0
    finally:
        c.close()


def harakiri(mode, server_timeout, listener_timeout=None):
    listener = {"name": "http", "type": "http"}
    if listener_timeout is not None:
        listener["request_timeout"] = listener_timeout
    limit = listener_timeout if listener_timeout not in (None, -1) else server_timeout
    s = Server(name=f"harakiri-{mode}", listeners=[listener],
               server={"mode": mode, "worker_num": 2, "request_timeout": server_timeout,
                       "dispatch_mode": 3 if mode == "process" else 2})
    with running(s):
        before = {w["id"]: w["pid"] for w in workers(s.info())}
        slow = {}
        t = threading.Thread(target=lambda: slow.update(r=timed_get(s, "/sleep?ms=20000")))
        t.start()
        # The sleeping handler holds one worker; meanwhile the other answers at once.
        if mode == "process":  # dispatch_mode 3 sends these to the idle worker
            wait_for(lambda: any(w["requests"] for w in workers(s.info())), 5, "sleep running")
            for _ in range(5):
                st, body, took = timed_get(s, "/")
                assert st == 200 and body == b"Hello, World!", (st, body)
        t.join(30 * SLOW)
        assert not t.is_alive()
        st, body, took = slow["r"]
        assert took >= limit - 0.1, took
        assert took < limit + 3 * SLOW, took
        assert st == 504, (st, body)  # base mode too: plain HTTP/1.1
        assert body == b"the request ran past request_timeout\n", body
        log_re = re.compile(r"request_timeout: worker #(\d+) pid (\d+) killed after "
                            r"([0-9.]+) s running GET /sleep")
        m = wait_for(lambda: log_re.search(s.log()), 5, "the request_timeout log line")
        wid, pid, secs = int(m.group(1)), int(m.group(2)), float(m.group(3))
        assert before[wid] == pid and secs >= limit, (before, m.group(0))

        def replaced():
            info = s.info()
            w = workers(info)[wid]
            return info if w["pid"] not in (0, pid) and w["state"] == "ready" else None
        info = wait_for(replaced, 10 * SLOW, "a new worker in the killed one's slot")
        assert workers(info)[wid]["timeouts"] == 1, workers(info)
        other = 1 - wid
        assert workers(info)[other]["pid"] == before[other], "the other worker was disturbed"
        for _ in range(4):
            st, body, _ = timed_get(s, "/")
            assert st == 200 and body == b"Hello, World!", (st, body)
        s.stop()


def test_request_timeout_process_mode():
    harakiri("process", 1)


def test_request_timeout_base_mode():
    harakiri("base", 1)


def test_listener_request_timeout_overrides_server():
    harakiri("process", 0, listener_timeout=2)


def test_listener_request_timeout_zero_turns_it_off():
    s = Server(name="harakiri-off", listeners=[{"name": "http", "type": "http",
                                                 "request_timeout": 0}],
               server={"worker_num": 1, "request_timeout": 1})
    with running(s):
        st, body, took = timed_get(s, "/sleep?ms=1800")
        assert st == 200 and took >= 1.7, (st, body, took)
        assert "request_timeout:" not in s.log()
        s.stop()


def test_task_timeout_fails_and_retries():
    for mode in ("process", "base"):
        s = Server(name=f"tasktimeout-{mode}",
                   server={"mode": mode, "worker_num": 1, "task_worker_num": 1,
                           "task_timeout": 1})
        with running(s):
            tpid = workers(s.info(), "task")[0]["pid"]
            st, body, took = timed_get(s, "/task?ms=20000&tries=2&timeout=15000")
            assert st != 200, (st, body)
            assert took < 8 * SLOW, took
            t = wait_for(lambda: (lambda t: t if t["failed"] == 1 else None)(s.info()["tasks"]),
                         10, "the task counted failed")
            assert t["retried"] == 1 and t["done"] == 0, t
            assert len(re.findall(r"task_timeout: task worker #0 pid \d+ killed after",
                                  s.log())) == 2, s.log()[-3000:]
            info = wait_for(lambda: (lambda i: i if workers(i, "task")[0]["state"] == "ready"
                                     else None)(s.info()), 10, "task worker back")
            tw = workers(info, "task")[0]
            assert tw["pid"] != tpid and tw["timeouts"] == 2, tw
            st, body, _ = timed_get(s, "/task?ms=10")
            assert st == 200, (st, body)
            s.stop()


if __name__ == "__main__":
    run([test_request_timeout_process_mode, test_request_timeout_base_mode,
         test_listener_request_timeout_overrides_server,
         test_listener_request_timeout_zero_turns_it_off, test_task_timeout_fails_and_retries])
