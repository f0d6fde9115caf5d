"""Black-box tests of the admin endpoint (admin_server in [server]): /metrics scraped after a known
load and parsed by prometheus_client's own parser (counters checked exactly against what the
clients did, in process and base mode), /info equal to `srv info --json`, /health through start,
normal run and stop, and admin_token guarding /info and /metrics."""
import asyncio
import json
import os
import re
import signal
import subprocess
import threading
import time

import websockets

from srvtest import (SLOW, SRV, Server, admin_get, free_port, run, running, scrape,
                     wait_for)
from test_http import RawConn
from test_tasks import sleeping

EXTRA = ('[[table]]\nname = "kv"\nsize = 64\n'
         'columns = [{name = "value", type = "string", size = 32}]\n'
         '\n[[cron]]\nname = "tick"\nhandler = "demo_cron_tick"\ninterval_ms = 1000\n')
CODES = ("1xx", "2xx", "3xx", "4xx", "5xx")
BUCKETS = ("0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
           "2.5", "5", "10", "+Inf")
N_OK, N_404, N_BAD, N_413, N_WS, N_TASKS, N_SECOND = 20, 5, 3, 2, 7, 4, 6


def metrics_server(mode="process", name="metrics", server=None):
    """Two HTTP listeners (the first with WebSocket), a table, a cron job, one task worker."""
    opts = {"mode": mode, "worker_num": 2, "task_worker_num": 1,
            "admin_server": f"127.0.0.1:{free_port()}", "package_max_length": 4096}
    opts.update(server or {})
    ls = [{"name": "http", "type": "http", "websocket": True}, {"name": "second", "type": "http"}]
    return Server(listeners=ls, server=opts, name=f"{name}-{mode}", extra=EXTRA)


def admin_port(s):
    return int(s.server["admin_server"].rsplit(":", 1)[1])


class CountingConn(RawConn):
    """RawConn that counts the bytes it sent and received."""

    def __init__(self, port):
        super().__init__(port)
        self.sent = self.received = 0

    def send(self, data):
        self.sent += len(data)
        super().send(data)

    def _fill(self):
        before = len(self.buf)
        super()._fill()
        self.received += len(self.buf) - before


def ws_echo(port, n):
    """One WebSocket connection to the demo's /ws: n text messages, each echoed back."""
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", ping_interval=None,
                                      compression=None, open_timeout=10 * SLOW) as ws:
            for i in range(n):
                await ws.send(f"message {i}")
                got = await asyncio.wait_for(ws.recv(), 10 * SLOW)
                assert got == f"message {i}", got
    asyncio.run(asyncio.wait_for(go(), 30 * SLOW))


def load(s):
    """The known load. Returns (bytes sent, bytes received) per listener by the raw clients."""
    sent = {"http": 0, "second": 0}
    received = {"http": 0, "second": 0}
    with CountingConn(s.port(0)) as c:  # connection 1 on http: 200s, 404s, tasks
        for _ in range(N_OK):
            r = c.request("GET", "/")
            assert r.status == 200 and r.body == b"Hello, World!", r
        for i in range(N_404):
            r = c.request("GET", f"/no/such/path/{i}")
            assert r.status == 404, r
        for _ in range(N_TASKS):
            r = c.request("GET", "/task?ms=1")
            assert r.status == 200 and r.body.startswith(b"task "), r
        sent["http"] += c.sent
        received["http"] += c.received
    for _ in range(N_BAD):  # then on http: malformed, srv answers 400 and closes
        with CountingConn(s.port(0)) as c:
            c.send(b"GARBAGE\r\n\r\n")
            r = c.read_response()
            assert r.status == 400, r
            assert c.closed_by_peer(5)
            sent["http"] += c.sent
            received["http"] += c.received
    for _ in range(N_413):  # body announced over package_max_length: 413 from srv, close
        with CountingConn(s.port(0)) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n")
            r = c.read_response()
            assert r.status == 413, r
            assert c.closed_by_peer(5)
            sent["http"] += c.sent
            received["http"] += c.received
    ws_echo(s.port(0), N_WS)  # the last connection on http: 101 and N_WS messages each way
    with CountingConn(s.port(1)) as c:  # connection 1 on second
        for _ in range(N_SECOND):
            assert c.request("GET", "/").status == 200
        sent["second"] += c.sent
        received["second"] += c.received
    return sent, received


def expected_counters():
    """Sample -> exact value after load()."""
    want = {}
    http = {"1xx": 1, "2xx": N_OK + N_TASKS, "3xx": 0, "4xx": N_404 + N_BAD + N_413, "5xx": 0}
    second = {"1xx": 0, "2xx": N_SECOND, "3xx": 0, "4xx": 0, "5xx": 0}
    for name, codes in (("http", http), ("second", second)):
        for code, n in codes.items():
            want[("srv_http_requests_total", (("code", code), ("listener", name)))] = n
        want[("srv_http_request_duration_seconds_count", (("listener", name),))] = \
            sum(codes.values())
        want[("srv_connections_refused_total", (("listener", name),))] = 0
        want[("srv_websocket_sessions", (("listener", name),))] = 0
        for proto in ("http", "h2", "websocket"):  # (tcp: for tcp listeners)
            want[("srv_connections", (("listener", name), ("protocol", proto)))] = 0
    want[("srv_connections_accepted_total", (("listener", "http"),))] = 1 + N_BAD + N_413 + 1
    want[("srv_connections_accepted_total", (("listener", "second"),))] = 1
    want[("srv_websocket_messages_received_total", (("listener", "http"),))] = N_WS
    want[("srv_websocket_messages_sent_total", (("listener", "http"),))] = N_WS
    want[("srv_websocket_messages_received_total", (("listener", "second"),))] = 0
    want[("srv_websocket_messages_sent_total", (("listener", "second"),))] = 0
    want[("srv_tasks_delivered_total", ())] = N_TASKS
    want[("srv_tasks_finished_total", ())] = N_TASKS
    want[("srv_tasks_failed_total", ())] = 0
    want[("srv_tasks_retried_total", ())] = 0
    want[("srv_task_queue_depth", ())] = 0
    want[("srv_workers", (("kind", "worker"), ("state", "ready")))] = 2
    want[("srv_workers", (("kind", "task"), ("state", "ready")))] = 1
    want[("srv_table_rows", (("table", "kv"),))] = 0
    return want


def diff(m, want):
    """The samples of scrape m that differ from want: {sample: (got, wanted)}."""
    return {k: (m.samples.get(k), v) for k, v in want.items() if m.samples.get(k) != v}


def check_format(m):
    """Every family has HELP and TYPE lines (in the raw text too), names are srv_*."""
    helps = set(re.findall(r"^# HELP (\S+) \S", m.text, re.M))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", m.text, re.M))
    assert helps and set(helps) == set(types), (helps ^ set(types))
    for f in m.families:
        assert f.name.startswith("srv_"), f.name
        assert f.type in ("counter", "gauge", "histogram"), (f.name, f.type)
        assert f.documentation, f"{f.name}: no HELP"
    for line in m.text.splitlines():
        if line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in types or base in types, f"sample without TYPE: {line}"
            assert name in helps or base in helps, f"sample without HELP: {line}"


def check_histogram(m, name):
    """Buckets as the contract lists them, cumulative, +Inf equal to _count."""
    h = "srv_http_request_duration_seconds"
    got = {d["le"]: v for d, v in m.select(h + "_bucket", listener=name)}
    assert set(got) == set(BUCKETS), sorted(got)
    vals = [got[le] for le in BUCKETS]
    assert vals == sorted(vals), vals
    assert got["+Inf"] == m.get(h + "_count", listener=name), (got, name)
    assert m.get(h + "_sum", listener=name) >= 0


def check_scrape(s, m, sent, received, mode):
    check_format(m)
    build = m.select("srv_build_info")
    assert len(build) == 1 and build[0][1] == 1, build
    info = s.info()
    labels = build[0][0]
    assert labels["mode"] == mode and labels["backend"] == info["backend"], labels
    assert labels["version"] == info["version"], labels
    assert m.get("srv_start_time_seconds") > time.time() - 600
    assert m.get("srv_reloads_total") == 0
    for name in ("http", "second"):
        check_histogram(m, name)
        assert m.get("srv_received_bytes_total", listener=name) >= sent[name], name
        assert m.get("srv_sent_bytes_total", listener=name) >= received[name], name
    # Nothing but the raw client talked to the second listener: socket bytes match exactly.
    assert m.get("srv_received_bytes_total", listener="second") == sent["second"]
    assert m.get("srv_sent_bytes_total", listener="second") == received["second"]
    # Every process has its RSS and CPU time.
    pids = {info["pid"]} | {w["pid"] for w in info["workers"] if w["pid"]}
    if mode == "process":
        pids.add(info["manager_pid"])
    rss = {int(d["pid"]): v for d, v in m.select("srv_process_resident_memory_bytes")}
    cpu = {int(d["pid"]): v for d, v in m.select("srv_process_cpu_seconds_total")}
    assert pids <= set(rss) and pids <= set(cpu), (pids, rss, cpu)
    assert all(rss[p] > 0 for p in pids) and all(cpu[p] >= 0 for p in pids), rss
    # Tables and cron agree with srv info.
    kv = next(t for t in info["tables"] if t["name"] == "kv")
    assert m.get("srv_table_capacity", table="kv") == kv["capacity"]
    for kind in ("worker", "task"):
        assert m.get("srv_worker_respawns_total", kind=kind) == 0, kind
    for lname, n in (("srv_access_log_lines_total", 0), ("srv_access_log_errors_total", 0)):
        assert m.get(lname) == n, lname
    # /info per listener says the same as /metrics.
    by_name = {l["name"]: l for l in info["listeners"]}
    for name in ("http", "second"):
        l = by_name[name]
        for code in CODES:
            assert l["requests"][code] == m.get("srv_http_requests_total", listener=name,
                                                code=code), (name, code, l)
        assert l["accepted"] == m.get("srv_connections_accepted_total", listener=name)
        assert l["bytes_in"] == m.get("srv_received_bytes_total", listener=name)
        assert l["bytes_out"] == m.get("srv_sent_bytes_total", listener=name)
        assert l["ws_messages_in"] == m.get("srv_websocket_messages_received_total",
                                            listener=name)
    assert info["tasks"]["done"] == N_TASKS, info["tasks"]


def tick_runs(s):
    jobs = {j["name"]: j for j in s.info()["cron"]["jobs"]}
    return jobs["tick"]["runs"] if "tick" in jobs else -1


def check_cron(s, port):
    """Once the 1 s job has run: the cron runs of /metrics lie between two srv info reads."""
    wait_for(lambda: tick_runs(s) >= 1, 10, "a cron run")
    before = tick_runs(s)
    m = scrape(port)
    after = tick_runs(s)
    assert before <= m.get("srv_cron_runs_total", job="tick") <= after, (before, after, m.text)
    assert m.get("srv_cron_overruns_total", job="tick") == 0
    assert 0 <= m.get("srv_cron_max_lateness_seconds", job="tick") < 5 * SLOW


def metrics_after_load(mode):
    with running(metrics_server(mode)) as s:
        port = admin_port(s)
        m = scrape(port)
        assert m.get("srv_http_requests_total", listener="http", code="2xx") == 0
        sent, received = load(s)
        want = expected_counters()
        last = [None]

        def settled():
            last[0] = scrape(port)
            return not diff(last[0], want)
        try:
            wait_for(settled, 10, "counters of the known load")
        except AssertionError:
            raise AssertionError(f"counters differ (got, wanted): {diff(last[0], want)}")
        check_scrape(s, last[0], sent, received, mode)
        check_cron(s, port)
        # A scrape changes no listener counter; the numbers stay (nothing counted late).
        again = scrape(port)
        assert not diff(again, want), diff(again, want)
        s.stop()


def test_metrics_process_mode():
    metrics_after_load("process")


def test_metrics_base_mode():
    metrics_after_load("base")


def test_metrics_live_gauges():
    """While a WebSocket is open: one session, one websocket connection on its listener."""
    with running(metrics_server(name="gauges")) as s:
        port = admin_port(s)

        async def go():
            async with websockets.connect(f"ws://127.0.0.1:{s.port()}/ws", ping_interval=None,
                                          compression=None) as ws:
                await ws.send("x")
                assert await ws.recv() == "x"

                def open_now():
                    m = scrape(port)
                    return (m.get("srv_websocket_sessions", listener="http") == 1 and
                            m.get("srv_connections", listener="http", protocol="websocket") == 1)
                await asyncio.get_running_loop().run_in_executor(
                    None, lambda: wait_for(open_now, 10, "websocket session counted"))
        asyncio.run(asyncio.wait_for(go(), 30 * SLOW))
        wait_for(lambda: scrape(port).get("srv_websocket_sessions", listener="http") == 0, 10,
                 "websocket session gone")


VOLATILE = re.compile(r"uptime|cpu|rss|memory")


def stable(doc):
    """doc without the fields that change by themselves (uptime, process CPU and memory)."""
    if isinstance(doc, dict):
        return {k: stable(v) for k, v in doc.items() if not VOLATILE.search(k)}
    if isinstance(doc, list):
        return [stable(v) for v in doc]
    return doc


def test_info_equals_cli():
    """/info is the JSON of srv info --json: equal (but for uptime, CPU, RSS) whenever nothing
    changes between the reads; a cron tick may, so take a window where two CLI reads agree."""
    with running(metrics_server(name="info")) as s:
        port = admin_port(s)
        load(s)
        tries = []
        for _ in range(20):
            before = stable(s.info())
            st, hs, body = admin_get(port, "/info")
            after = stable(s.info())
            assert st == 200 and hs["content-type"].startswith("application/json"), (st, hs)
            web = json.loads(body)
            if before == after:
                assert stable(web) == before, (stable(web), before)
                assert web["health"] == "ok", web
                assert all("timers" in w for w in web["workers"]), web["workers"]
                assert {l["name"] for l in web["listeners"]} == {"http", "second"}
                break
            tries.append((before, after))
        else:
            raise AssertionError(f"srv info never stable across two reads: {tries[-1]}")
        # HEAD, other methods and other paths
        assert admin_get(port, "/info", method="HEAD")[0] == 200
        assert admin_get(port, "/metrics", method="POST")[0] == 405
        assert admin_get(port, "/nothing-here")[0] == 404
        s.stop()


class HealthPoller:
    """Polls /health in a thread; .seen is the list of (status, body) in order ('down' while
    nothing answers)."""

    def __init__(self, port):
        self.port, self.seen, self.done = port, [], False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.done:
            try:
                st, _, body = admin_get(self.port, "/health", timeout=2)
                item = (st, body)
            except Exception:  # refused, reset: not answering (yet, or any more)
                item = "down"
            if not self.seen or self.seen[-1] != item:
                self.seen.append(item)
            time.sleep(0.005)

    def stop(self):
        self.done = True
        self.t.join(10)


def test_health_start_serve_stop():
    """/health: 503 starting or 200 from the first answer on, 200 once ready and while serving,
    503 stopping while a stop waits for a request in flight."""
    s = metrics_server(name="health", server={"max_wait_time": 10})
    port = admin_port(s)
    poller = HealthPoller(port)
    try:
        with running(s):  # start() returns once srv info shows every worker ready
            wait_for(lambda: poller.seen[-1] == (200, b"ok\n"), 10, "health ok once ready")
            poller.stop()
            answered = [x for x in poller.seen if x != "down"]
            assert answered and answered[-1] == (200, b"ok\n"), poller.seen
            assert set(answered) <= {(503, b"starting\n"), (200, b"ok\n")}, poller.seen
            first_ok = answered.index((200, b"ok\n"))
            assert all(x == (200, b"ok\n") for x in answered[first_ok:]), poller.seen
            assert s.get("/")[0] == 200 and admin_get(port, "/health")[::2] == (200, b"ok\n")
            # A request that takes 2 s holds the stop; /health says stopping meanwhile.
            holder = RawConn(s.port(), timeout=30)
            holder.send(b"GET /sleep?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n")
            workers = [w["pid"] for w in s.info()["workers"] if w["type"] == "worker"]
            wait_for(lambda: any(sleeping(p) for p in workers), 5, "the sleep in a worker")
            poller = HealthPoller(port)
            stopper = subprocess.Popen([SRV, "stop", "-c", s.config], stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT)
            try:
                wait_for(lambda: (503, b"stopping\n") in poller.seen, 10, "health stopping")
                r = holder.read_response()
                assert r.status == 200 and r.body == b"slept 2000 ms\n", r
                holder.close()
                assert stopper.wait(60 * SLOW) == 0, stopper.stdout.read()
            finally:
                if stopper.poll() is None:
                    stopper.kill()
                    stopper.wait()
            poller.stop()
            answered = [x for x in poller.seen if x != "down"]
            assert (200, b"ok\n") not in answered[answered.index((503, b"stopping\n")):], \
                poller.seen
            if s.proc is not None:
                s.proc.wait(30 * SLOW)
    finally:
        poller.stop()


def test_admin_token():
    """With admin_token: /metrics and /info need the bearer token (401 otherwise); /health and
    the dashboard page (no data in it: it fetches /info and /metrics with the token) do not."""
    with running(metrics_server(name="token", server={"admin_token": "s3cret"})) as s:
        port = admin_port(s)
        good = {"Authorization": "Bearer s3cret"}
        for path in ("/metrics", "/info"):
            for hs in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
                       {"Authorization": "Basic czNjcmV0"}):
                st, h, body = admin_get(port, path, hs)
                assert st == 401 and body == b"unauthorized\n", (path, hs, st, body)
                assert h.get("www-authenticate", "").startswith("Bearer"), (path, h)
            st, h, body = admin_get(port, path, good)
            assert st == 200, (path, st, body[:200])
        st, h, body = admin_get(port, "/metrics", good)
        assert h["content-type"].startswith("text/plain; version=0.0.4"), h
        assert scrape(port, good).select("srv_build_info")
        assert admin_get(port, "/health")[::2] == (200, b"ok\n")
        st, h, body = admin_get(port, "/")
        assert st == 200 and h["content-type"].startswith("text/html") and b"<html" in body, st
        s.stop()


def test_admin_while_workers_busy_and_respawn():
    """Every worker asleep in a request: /health and /metrics still answer at once (the master
    serves them). A killed worker shows as a respawn."""
    with running(metrics_server(name="busy")) as s:
        port = admin_port(s)
        workers = [w["pid"] for w in s.info()["workers"] if w["type"] == "worker"]
        holders = []
        for _ in workers:
            c = RawConn(s.port(), timeout=30)
            c.send(b"GET /sleep?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
            holders.append(c)
        wait_for(lambda: all(sleeping(p) for p in workers), 5, "every worker asleep")
        t0 = time.monotonic()
        assert admin_get(port, "/health")[::2] == (200, b"ok\n")
        m = scrape(port)
        assert m.get("srv_workers", kind="worker", state="ready") == 2
        assert time.monotonic() - t0 < 1.0 * SLOW, time.monotonic() - t0
        for c in holders:
            assert c.read_response().status == 200
            c.close()
        os.kill(workers[0], signal.SIGKILL)
        wait_for(lambda: scrape(port).get("srv_worker_respawns_total", kind="worker") == 1, 10,
                 "the respawn counted")
        wait_for(lambda: scrape(port).get("srv_workers", kind="worker", state="ready") == 2, 10,
                 "two workers ready again")
        s.info()  # remember the new worker's pid for the cleanup
        s.stop()


if __name__ == "__main__":
    run([test_metrics_process_mode, test_metrics_base_mode, test_metrics_live_gauges,
         test_info_equals_cli, test_health_start_serve_stop, test_admin_token,
         test_admin_while_workers_busy_and_respawn])
