"""max_worker_rss, black-box: a worker growing its heap past the limit (the demo's /grow) is
replaced gracefully like a max_request recycle: the request that grew it is answered, a new pid
serves in its slot (srv info), the log names the worker, its RSS and the limit, and the
counters (srv info "rss_recycles", srv_worker_rss_recycles_total) count it. Both modes."""
import re

from srvtest import Server, run, running, wait_for


def workers(info):
    return sorted((w for w in info["workers"] if w["type"] == "worker"), key=lambda w: w["id"])


def recycled(mode):
    s = Server(name=f"rss-{mode}", server={"mode": mode, "worker_num": 1,
                                           "max_worker_rss": "64M"})
    with running(s):
        old = workers(s.info())[0]
        st, _, body = s.get("/grow?mb=8")
        assert st == 200 and body.startswith(b"grown 8 MiB"), (st, body)
        st, _, body = s.get("/grow?mb=100")
        assert st == 200 and body.startswith(b"grown 108 MiB"), (st, body)  # answered first

        def replaced():
            w = workers(s.info())[0]
            return w if w["pid"] not in (0, old["pid"]) and w["state"] == "ready" else None
        new = wait_for(replaced, 10, "the worker replaced")
        assert new["rss_recycles"] == 1 and new["respawns"] == 0, new
        m = re.search(r"worker #0 pid (\d+) uses (\d+) KiB, above max_worker_rss \(65536 KiB\)",
                      s.log())
        assert m and int(m.group(1)) == old["pid"] and int(m.group(2)) > 65536, s.log()[-2000:]
        # The new worker starts small and serves; it is not replaced again.
        st, _, body = s.get("/grow?mb=0")
        assert st == 200 and body.startswith(b"grown 0 MiB"), (st, body)
        assert workers(s.info())[0]["pid"] == new["pid"]
        s.stop()


def test_rss_recycle_process_mode():
    recycled("process")


def test_rss_recycle_base_mode():
    recycled("base")


def test_rss_metrics_family():
    from srvtest import free_port, scrape
    port = free_port()
    s = Server(name="rss-metrics", server={"worker_num": 1, "max_worker_rss": 64 << 20,
                                           "admin_server": f"127.0.0.1:{port}"})
    with running(s):
        pid = workers(s.info())[0]["pid"]
        assert scrape(port).get("srv_worker_rss_recycles_total", kind="worker") == 0
        s.get("/grow?mb=80")
        wait_for(lambda: workers(s.info())[0]["pid"] not in (0, pid), 10, "replaced")
        wait_for(lambda: scrape(port).get("srv_worker_rss_recycles_total", kind="worker") == 1,
                 5, "the counter")
        assert scrape(port).get("srv_worker_timeouts_total", kind="worker") == 0
        s.stop()


if __name__ == "__main__":
    run([test_rss_recycle_process_mode, test_rss_recycle_base_mode, test_rss_metrics_family])
