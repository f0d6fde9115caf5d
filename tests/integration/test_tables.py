"""Shared tables ([[table]]), black-box through the demo's /table/* endpoints: a row written by one
worker is read by the others, concurrent increments are exact, srv info reports rows, capacity,
bytes and full_failures, and a full table refuses a new key with 507."""
import json
import threading
from urllib.parse import quote

from srvtest import SLOW, Server, run, running

KV = ('[[table]]\nname = "kv"\nsize = 64\ncolumns = [{name = "value", type = "string", '
      'size = 256}, {name = "hits", type = "int"}]')


def kv_server(name, **server):
    conf = {"worker_num": 4, "dispatch_mode": 1}
    conf.update(server)
    return Server(name=name, server=conf, extra=KV)


def kv_table(info):
    tables = [t for t in info.get("tables", []) if t["name"] == "kv"]
    assert len(tables) == 1, info.get("tables")
    return tables[0]


def test_value_visible_across_workers():
    with running(kv_server("tables-share")) as s:
        seen_workers = set()
        for i in range(4):
            value = f"v{i}-" + "x" * (50 * i)
            status, _, body = s.get(f"/table/set?key=k{i}&value={quote(value)}")
            assert (status, body) == (200, b"ok\n"), (status, body)
            # Read it back on new connections: with round robin they land on other workers.
            for _ in range(8):
                status, headers, body = s.get(f"/table/get?key=k{i}")
                assert status == 200, (status, body)
                j = json.loads(body)
                assert j["key"] == f"k{i}" and j["value"] == value and j["hits"] == 0, j
                seen_workers.add(j["worker"])
        assert len(seen_workers) >= 2, f"all reads served by worker(s) {seen_workers}"
        # Overwrite through some worker; every worker sees the new value.
        assert s.get("/table/set?key=k0&value=changed")[0] == 200
        for _ in range(8):
            j = json.loads(s.get("/table/get?key=k0")[2])
            assert j["value"] == "changed", j
        status, _, body = s.get("/table/get?key=nope")
        assert status == 404, (status, body)
        assert s.get("/table/set?value=x")[0] == 400
        s.stop()


def test_concurrent_incr_is_exact():
    clients, per_client = 8, 40
    with running(kv_server("tables-incr")) as s:
        results, errors = [], []
        lock = threading.Lock()

        def client(n):
            # Half the clients on keep-alive connections, half on a new connection per request.
            c = s.conn() if n % 2 else None
            for _ in range(per_client):
                try:
                    if c is not None:
                        c.request("GET", "/table/incr?key=counter")
                        r = c.getresponse()
                        status, body = r.status, r.read()
                    else:
                        status, _, body = s.get("/table/incr?key=counter")
                    with lock:
                        if status == 200:
                            results.append(int(body))
                        else:
                            errors.append((status, body))
                except Exception as e:
                    with lock:
                        errors.append(repr(e))
            if c is not None:
                c.close()

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60 * SLOW)
        assert not errors, errors[:5]
        total = clients * per_client
        # Every increment returned a distinct new value: 1..total, each once.
        assert sorted(results) == list(range(1, total + 1)), \
            f"{len(results)} results, {len(set(results))} distinct, max {max(results)}"
        j = json.loads(s.get("/table/get?key=counter")[2])
        assert j["hits"] == total, j
        # More than one worker did the counting.
        workers = s.info()["workers"]
        assert sum(1 for w in workers if w["type"] == "worker" and w["total_requests"] > 0) >= 2
        s.stop()


def test_info_reports_tables_and_full_table_refuses():
    with running(kv_server("tables-full", worker_num=2)) as s:
        t = kv_table(s.info())
        assert t["rows"] == 0 and t["capacity"] == 64, t
        assert t["bytes"] >= 64 * (256 + 8), t
        assert t["full_failures"] == 0, t
        stored = 0
        for i in range(64):
            status, _, body = s.get(f"/table/set?key=row{i}&value={i}")
            assert (status, body) == (200, b"ok\n"), (i, status, body)
            stored += 1
        t = kv_table(s.info())
        assert t["rows"] == 64 and t["capacity"] == 64, t
        # The next new key does not fit: 507, and counted.
        status, _, body = s.get("/table/set?key=one-too-many&value=x")
        assert status == 507, (status, body)
        status, _, body = s.get("/table/incr?key=another-new-key")
        assert status == 507, (status, body)
        t = kv_table(s.info())
        assert t["full_failures"] >= 2, t
        assert t["rows"] == 64, t
        # Existing rows still take updates, and keep their values.
        assert s.get("/table/set?key=row3&value=updated")[0] == 200
        assert s.get("/table/incr?key=row5")[0] == 200
        j = json.loads(s.get("/table/get?key=row3")[2])
        assert j["value"] == "updated", j
        j = json.loads(s.get("/table/get?key=row63")[2])
        assert j["value"] == "63", j
        assert s.get("/table/get?key=one-too-many")[0] == 404
        s.stop()


def test_no_table_configured():
    with running(Server(name="tables-none")) as s:
        status, _, body = s.get("/table/get?key=a")
        assert status == 404 and b"no table kv" in body, (status, body)
        assert s.info().get("tables", []) == []
        s.stop()


if __name__ == "__main__":
    run([test_value_visible_across_workers, test_concurrent_incr_is_exact,
         test_info_reports_tables_and_full_table_refuses, test_no_table_configured])
