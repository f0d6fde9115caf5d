"""Black-box tests of `global_lock = true` in [[cron]]: two srv instances share a real
redis-server, and each beat of the job runs on one of them (SET NX claims in Redis); with Redis
gone the beats are skipped (never run twice), counted and logged, and they resume when it is
back."""
import os
import shutil
import subprocess
import tempfile
import time

from srvtest import SLOW, Server, free_port, run, running, wait_for
from test_cron import cron_job, jobs, runs

INTERVAL = 0.1  # seconds


class Redis:
    """A redis-server of our own on a free loopback port, without persistence."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="srvtest-redis-")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ping, 10, "redis-server answering")
        return self

    def cli(self, *args):
        """redis-cli's raw output for one command."""
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "--raw",
                            *map(str, args)], capture_output=True, text=True, timeout=10 * SLOW)
        return r.stdout.strip() if r.returncode == 0 else None

    def ping(self):
        return self.cli("PING") == "PONG"

    def keys(self, pattern):
        out = self.cli("KEYS", pattern)
        return [k for k in (out or "").split("\n") if k]

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def locked_server(name, redis_port):
    return Server(name=name, server={"redis": f"127.0.0.1:{redis_port}"},
                  extra=cron_job("tick", interval_ms=int(INTERVAL * 1000), global_lock=True))


def locks(s):
    return jobs(s) and s.info()["cron"].get("locks", {}).get("tick")


def test_two_instances_share_the_beats():
    r = Redis().start()
    try:
        with running(locked_server("lock-a", r.port)) as a, \
                running(locked_server("lock-b", r.port)) as b:
            wait_for(lambda: runs(a) + runs(b) >= 5, 10, "the first beats")
            wait_for(lambda: (locks(a) or {}).get("lost", 0) + (locks(b) or {}).get("lost", 0)
                     >= 5, 10, "beats taken by the other instance")
            ra0, rb0, t0 = runs(a), runs(b), time.monotonic()
            time.sleep(2.0)  # a measurement window, not synchronisation
            ra1, rb1, t1 = runs(a), runs(b), time.monotonic()
            window = t1 - t0
            ran = (ra1 - ra0) + (rb1 - rb0)
            # One run per beat across both instances: about window / interval, never twice that.
            assert ran <= window / INTERVAL + 3, (ran, window)
            assert ran >= window / INTERVAL * 0.5, (ran, window)
            # Every run was a claim it won (srv info publishes the counters every 0.5 s or so,
            # so wait for them to catch up with the runs counted so far).
            wait_for(lambda: locks(a)["won"] + locks(b)["won"] >= ra1 + rb1, 5,
                     "claims won to account for every run")
            la, lb = locks(a), locks(b)
            assert la["errors"] == 0 and lb["errors"] == 0, (la, lb)
            assert la["lost"] + lb["lost"] >= 5, (la, lb)
            keys = r.keys("srv:cron:tick:*")
            assert keys, "no claim keys in Redis"
            ttl = int(r.cli("PTTL", keys[0]))
            assert 0 < ttl <= 10000, ttl
    finally:
        r.cleanup()


def test_redis_down_skips_and_recovers():
    r = Redis().start()
    try:
        with running(locked_server("lock-down", r.port)) as s:
            wait_for(lambda: runs(s) >= 3, 10, "beats while Redis is up")
            r.stop()
            wait_for(lambda: (locks(s) or {}).get("errors", 0) >= 3, 10,
                     "beats skipped while Redis is down")
            # Nothing runs without the lock.
            c0 = runs(s)
            e0 = locks(s)["errors"]
            wait_for(lambda: locks(s)["errors"] >= e0 + 3, 10, "more skipped beats")
            assert runs(s) <= c0 + 1, (c0, runs(s))  # at most a run already past its claim
            assert "global_lock" in s.log() and "skipped" in s.log(), s.log()[-2000:]
            # Redis back on the same port: the beats run again.
            r2 = Redis(port=r.port).start()
            try:
                c1 = runs(s)
                wait_for(lambda: runs(s) >= c1 + 3, 10, "beats after Redis came back")
            finally:
                r2.cleanup()
    finally:
        r.cleanup()


def test_without_redis_config_rejected():
    s = Server(name="lock-cfg", extra=cron_job("tick", interval_ms=100, global_lock=True))
    try:
        out = s.cmd("check")
        assert out.returncode == 3, (out.returncode, out.stderr)
        assert "global_lock: needs redis set in [server]" in out.stderr, out.stderr
    finally:
        shutil.rmtree(s.dir, ignore_errors=True)


if __name__ == "__main__":
    run([test_two_instances_share_the_beats, test_redis_down_skips_and_recovers,
         test_without_redis_config_rejected])
