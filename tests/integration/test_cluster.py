"""Two srv instances sharing a redis-server of the test's own with cluster = true, black-box:
srv_ws_broadcast in a worker of one instance reaches the WebSocket clients of both, and
srv_broadcast_message reaches every worker of both (on_pipe_message from -1 on the other);
srv info and /metrics count what was published and received; with Redis stopped both go on
serving HTTP and their own WebSocket clients, the broadcasts they could not publish are counted,
and delivery across instances resumes within 5 s of Redis coming back. Process and base mode."""
import asyncio
import threading

import websockets

from srvtest import SLOW, Server, free_port, run, running, scrape, wait_for
from test_cron_lock import Redis
from test_nginx import Nginx
from test_ws import CHAT_TABLE


class WsClient:
    """A WebSocket client on its own event-loop thread that keeps every message it receives."""

    def __init__(self, port, path="/ws"):
        self.got, self.loop = [], asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def connect():
            return await websockets.connect(f"ws://127.0.0.1:{port}{path}", ping_interval=None)
        self.ws = self.call(connect())
        self.reader = asyncio.run_coroutine_threadsafe(self.read(), self.loop)

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(20 * SLOW)

    async def read(self):
        try:
            async for m in self.ws:
                self.got.append(m)
        except websockets.exceptions.ConnectionClosed:
            pass

    def close(self):
        self.call(self.ws.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10 * SLOW)


def instance(name, mode, redis_port, workers=2):
    return Server(name=f"cluster-{name}-{mode}", listeners=[
        {"name": "web", "type": "http", "websocket": True}],
        server={"mode": mode, "worker_num": workers, "redis": f"127.0.0.1:{redis_port}",
                "cluster": True, "instance_id": f"inst-{name}",
                "admin_server": f"127.0.0.1:{free_port()}"}, extra=CHAT_TABLE)


def messages(s):
    st, _, body = s.get("/messages")
    assert st == 200, (st, body)
    return int(body)


def broadcast_until(s, clients, text, timeout=10):
    """Broadcast text from s until every client has it (the other instance's subscription is
    asynchronous): the number of broadcasts it took."""
    sent = 0

    def arrived():
        nonlocal sent
        if all(text in c.got for c in clients):
            return True
        st, _, body = s.get(f"/ws/broadcast?msg={text}")
        assert st == 200 and body == b"ok\n", (st, body)
        sent += 1
        return False
    try:
        wait_for(arrived, timeout, f"{text!r} on every client", 0.2)
    except AssertionError:
        raise AssertionError(f"{text!r} not on every client: {[c.got[-5:] for c in clients]}")
    return sent


def across(mode):
    r = Redis().start()
    a, b = instance("a", mode, r.port), instance("b", mode, r.port, workers=3)
    try:
        with running(a), running(b):
            ca, cb = WsClient(a.port()), WsClient(b.port())
            try:
                broadcast_until(a, [ca, cb], "hello-from-a")
                broadcast_until(b, [ca, cb], "hello-from-b")
                # Worker messages: every worker of b (3), and a's other worker (1).
                ma, mb = messages(a), messages(b)
                st, _, body = a.get("/broadcast?msg=m1")
                assert st == 200 and body == b"1\n", (st, body)  # local workers reached
                wait_for(lambda: messages(b) == mb + 3 and messages(a) == ma + 1, 10,
                         "the message on every worker of both instances")
                assert "got a message from worker -1: m1" in b.log(), b.log()[-2000:]
                ia, ib = a.info()["cluster"], b.info()["cluster"]
                assert ia["instance_id"] == "inst-a" and ib["instance_id"] == "inst-b"
                assert ia["published"] >= 2 and ib["received"] >= 2, (ia, ib)
                assert ia["unsent"] == 0, ia
                m = scrape(int(b.server["admin_server"].rsplit(":", 1)[1]))
                assert m.get("srv_cluster_broadcasts_total", direction="received") >= 2
                assert "cluster instance inst-b" in b.cmd("info", check=True).stdout

                # Redis away: both serve, their own clients still get their broadcasts, what
                # could not be published is counted.
                r.stop()
                wait_for(lambda: a.get("/ws/broadcast?msg=local-a") and "local-a" in ca.got, 10,
                         "a local broadcast without Redis")
                assert a.get("/")[0] == 200 and b.get("/")[0] == 200
                wait_for(lambda: a.get("/ws/broadcast?msg=x")
                         and a.info()["cluster"]["unsent"] > 0, 10, "broadcasts counted unsent")
                # Redis back on the same port: across again within 5 s (+ the test's polling).
                r2 = Redis(port=r.port).start()
                try:
                    broadcast_until(a, [cb], "after-redis", timeout=5 + 5 * SLOW)
                finally:
                    r2.cleanup()
            finally:
                ca.close()
                cb.close()
    finally:
        r.cleanup()


def test_across_instances_process_mode():
    across("process")


def test_across_instances_base_mode():
    across("base")


def session_of(c):
    """The session id of a /chat client, from its own message (the demo prefixes "#<hex>: ")."""
    c.call(c.ws.send("who"))
    wait_for(lambda: any(m.endswith(": who") for m in c.got), 10, "the client's own message")
    return next(m for m in c.got if m.endswith(": who"))[1:].split(":")[0]


def test_push_to_a_session_of_another_instance():
    """A worker of a pushes to, then closes, a WebSocket session of b by its session id; an id
    that is no connection anywhere is answered on b and harms nothing."""
    r = Redis().start()
    a, b = instance("push-a", "process", r.port), instance("push-b", "base", r.port)
    try:
        with running(a), running(b):
            na, nb = a.info()["cluster"]["number"], b.info()["cluster"]["number"]
            assert 1 <= na <= 2047 and 1 <= nb <= 2047 and na != nb, (na, nb)
            assert f"is number {nb} of the cluster" in b.log()
            cb = WsClient(b.port(), "/chat")
            try:
                sid = session_of(cb)
                assert int(sid, 16) >> 44 & 2047 == nb, (sid, nb)  # the instance is in the id

                def pushed():
                    if "direct" in cb.got:
                        return True
                    st, _, body = a.get(f"/ws/push?session={sid}&msg=direct")
                    assert st == 200 and body == b"ok\n", (st, body)
                    return False
                wait_for(pushed, 10, "a push from a to b's session", 0.2)
                st, _, body = a.get(f"/ws/push?session={int(sid, 16) + (1 << 20):x}&msg=x")
                assert st == 200, (st, body)  # published: b finds no such session, nothing else
                st, _, body = a.get(f"/ws/kick?session={sid}")
                assert st == 200, (st, body)
                wait_for(lambda: cb.ws.close_code == 4000, 10, "b's session closed from a")
                assert "x" not in cb.got, cb.got
            finally:
                cb.close()
    finally:
        r.cleanup()


def test_instance_number_collision_refused():
    """Two instance ids with the same number: the second is refused at start, with why."""
    r = Redis().start()
    try:
        a = instance("num-a", "process", r.port)
        number = None
        with running(a):
            number = a.info()["cluster"]["number"]
        # Any other id with that number: claim the number for a ghost in Redis instead.
        r.cli("HSET", "srv:cluster:instances", number, "ghost")
        a2 = instance("num-a", "process", r.port)
        res = a2.cmd("start")
        assert res.returncode == 3 and '"ghost"' in res.stderr and "instance number" in \
            res.stderr, (res.returncode, res.stderr)
    finally:
        r.cleanup()


def ws_open(s):
    return s.info()["listeners"][0]["connections"]["websocket"]


def test_chat_through_nginx():
    """nginx round-robin in front of two instances: /chat clients land on both, and a message
    from any of them reaches every one, once."""
    r = Redis().start()
    a, b = instance("chat-a", "process", r.port), instance("chat-b", "base", r.port)
    try:
        with running(a), running(b):
            ng = Nginx(f"127.0.0.1:{a.port()}; server 127.0.0.1:{b.port()}").start()
            clients = []
            try:
                while len(clients) < 20 and (len(clients) < 4 or not (ws_open(a) and ws_open(b))):
                    clients.append(WsClient(ng.port, "/chat"))
                wait_for(lambda: ws_open(a) + ws_open(b) == len(clients), 10, "every client in")
                assert ws_open(a) and ws_open(b), (ws_open(a), ws_open(b))
                # The subscriptions are asynchronous: send until a message is across.
                def hello_everywhere():
                    if all(any(m.endswith(": hello") for m in c.got) for c in clients):
                        return True
                    clients[0].call(clients[0].ws.send("hello"))
                    return False
                wait_for(hello_everywhere, 10, "a chat message on every client", 0.2)
                clients[-1].call(clients[-1].ws.send("bye"))
                wait_for(lambda: all(any(m.endswith(": bye") for m in c.got) for c in clients),
                         10, "the last message on every client")
                for c in clients:  # once each: no copy from a second path
                    assert sum(m.endswith(": bye") for m in c.got) == 1, c.got[-5:]
            finally:
                for c in clients:
                    c.close()
                ng.stop()
    finally:
        r.cleanup()


def test_ws_broadcast_once_without_cluster():
    """Every client gets a broadcast once (base mode: it once went round the workers for
    ever): a second broadcast arrives right after the first, with no copy in between."""
    for mode in ("base", "process"):
        s = Server(name=f"bcast-{mode}", listeners=[{"name": "web", "type": "http",
                                                     "websocket": True}],
                   server={"mode": mode, "worker_num": 3})
        with running(s):
            clients = [WsClient(s.port()) for _ in range(3)]
            try:
                for text in ("one", "two"):
                    st, _, body = s.get(f"/ws/broadcast?msg={text}")
                    assert st == 200 and body == b"ok\n", (st, body)
                wait_for(lambda: all("two" in c.got for c in clients), 10, "both broadcasts")
                assert all(c.got == ["one", "two"] for c in clients), [c.got for c in clients]
            finally:
                for c in clients:
                    c.close()


def test_config_refused():
    s = Server(name="cluster-cfg", server={"cluster": True})
    r = s.cmd("check")
    assert r.returncode == 3 and "cluster: has no effect: redis is not set" in r.stderr, r.stderr
    s = Server(name="cluster-cfg2", server={"redis": "127.0.0.1:1", "instance_id": "x"})
    r = s.cmd("check")
    assert r.returncode == 3 and "instance_id: has no effect: cluster is not true" in r.stderr, \
        r.stderr


if __name__ == "__main__":
    run([test_across_instances_process_mode, test_across_instances_base_mode,
         test_chat_through_nginx, test_push_to_a_session_of_another_instance,
         test_instance_number_collision_refused, test_ws_broadcast_once_without_cluster,
         test_config_refused])
