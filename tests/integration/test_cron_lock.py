"""Black-box tests of `global_lock = true` in [[cron]]: two srv instances share a real
redis-server, and each beat of the job runs exactly once across them (a fenced claim in Redis:
the `last` beat, the `lock` held during a run, the `fence` token), also while one instance is
SIGSTOPped past the lock's TTL and after it resumes; a lock held by someone else makes beats
busy, never run; with Redis gone the beats are skipped (never run twice), counted and logged,
and they resume when it is back."""
import os
import shutil
import signal
import subprocess
import tempfile
import time

from srvtest import SLOW, Server, free_port, run, running, wait_for
from test_cron import cron_job, jobs, runs

INTERVAL = 0.1  # seconds


class Redis:
    """A redis-server of our own on a free loopback port, without persistence."""

    def __init__(self, port=None, password=None):
        self.port = port or free_port()
        self.password = password
        self.dir = tempfile.mkdtemp(prefix="srvtest-redis-")
        self.proc = None

    def start(self):
        auth = ["--requirepass", self.password] if self.password else []
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir, *auth],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ping, 10, "redis-server answering")
        return self

    def cli(self, *args, db=0):
        """redis-cli's raw output for one command."""
        env = dict(os.environ, REDISCLI_AUTH=self.password) if self.password else None
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "-n", str(db),
                            "--raw", *map(str, args)], capture_output=True, text=True,
                           timeout=10 * SLOW, env=env)
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


def beat_state(r):
    """(fence, last) read at one instant (MGET is atomic)."""
    out = r.cli("MGET", "srv:cron:{tick}:fence", "srv:cron:{tick}:last").split("\n")
    return int(out[0] or 0), int(out[1] or -1)


def all_runs_claimed(r, a, b):
    """Every run on either instance was a claim won, and every claim won ran: the runs counted
    by both apps equal the fencing token, read while no claim came in between (a beat claimed
    but not yet counted is a moment's window; poll for a quiet instant)."""
    def check():
        f0 = beat_state(r)[0]
        total = runs(a) + runs(b)
        if beat_state(r)[0] != f0:
            return None
        assert total <= f0, (total, f0)  # never a run without a claim
        return total == f0
    wait_for(check, 10, "the runs of both instances equal to the claims won")


def claims(s):
    """Beats this instance asked Redis for (won or lost)."""
    lk = locks(s) or {}
    return lk.get("won", 0) + lk.get("lost", 0)


def tree(s):
    info = s.info()
    return [info["pid"], info["manager_pid"]] + [w["pid"] for w in info["workers"] if w["pid"]]


def test_two_instances_share_the_beats():
    r = Redis().start()
    try:
        with running(locked_server("lock-a", r.port)) as a, \
                running(locked_server("lock-b", r.port)) as b:
            wait_for(lambda: runs(a) + runs(b) >= 5, 10, "the first beats")
            wait_for(lambda: (locks(a) or {}).get("lost", 0) + (locks(b) or {}).get("lost", 0)
                     >= 5, 10, "beats taken by the other instance")
            f0, l0 = beat_state(r)
            wait_for(lambda: beat_state(r)[1] >= l0 + 20, 10, "20 more beats")
            f1, l1 = beat_state(r)
            # Exactly once per beat: as many claims as beats, none skipped, none twice.
            assert f1 - f0 == l1 - l0, (f0, l0, f1, l1)
            all_runs_claimed(r, a, b)
            la, lb = locks(a), locks(b)
            assert la["errors"] == 0 and lb["errors"] == 0, (la, lb)
            assert la["won"] + lb["won"] >= 20 and la["lost"] + lb["lost"] >= 5, (la, lb)
            assert max(la["token"], lb["token"]) <= f1 + 100, (la, lb)
            assert r.cli("PTTL", "srv:cron:{tick}:lock") in ("-2", "-1") or \
                0 < int(r.cli("PTTL", "srv:cron:{tick}:lock")) <= 1000
    finally:
        r.cleanup()


def test_paused_instance_never_runs_a_beat_twice():
    """One instance SIGSTOPped for longer than the lock's TTL (1 s): the other runs every beat
    meanwhile; the paused one resumes without running any beat again."""
    r = Redis().start()
    try:
        with running(locked_server("lock-p", r.port)) as a, \
                running(locked_server("lock-q", r.port)) as b:
            # (Which instance wins a beat depends on their phases: one may win them all.)
            wait_for(lambda: claims(a) > 0 and claims(b) > 0, 10, "claims on both instances")
            pids = tree(a)
            f0, l0 = beat_state(r)
            for p in pids:
                os.kill(p, signal.SIGSTOP)
            try:
                rb = runs(b)
                wait_for(lambda: runs(b) >= rb + 15, 10, "b running the beats alone past the TTL")
                f1, l1 = beat_state(r)
                assert f1 - f0 == l1 - l0, (f0, l0, f1, l1)
            finally:
                for p in pids:
                    os.kill(p, signal.SIGCONT)
            ca = claims(a)
            wait_for(lambda: claims(a) >= ca + 3, 10, "a claiming beats again")
            f2, l2 = beat_state(r)
            assert f2 - f0 == l2 - l0, (f0, l0, f2, l2)
            all_runs_claimed(r, a, b)
    finally:
        r.cleanup()


def test_foreign_lock_makes_beats_busy():
    """While another holder's lock is in place, no beat runs here; once it is gone they do."""
    r = Redis().start()
    try:
        with running(locked_server("lock-f", r.port)) as s:
            wait_for(lambda: runs(s) >= 3, 10, "beats")
            assert r.cli("SET", "srv:cron:{tick}:lock", "elsewhere:1:999", "PX", "60000") == "OK"
            busy0 = wait_for(lambda: (locks(s) or {}).get("busy", 0) >= 3 and locks(s)["busy"],
                             10, "busy beats")
            c0 = runs(s)
            wait_for(lambda: locks(s)["busy"] >= busy0 + 3, 10, "more busy beats")
            assert runs(s) <= c0 + 1, (c0, runs(s))
            assert r.cli("GET", "srv:cron:{tick}:lock") == "elsewhere:1:999"  # never deleted
            r.cli("DEL", "srv:cron:{tick}:lock")
            c1 = runs(s)
            wait_for(lambda: runs(s) >= c1 + 3, 10, "beats after the lock went away")
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


def test_password_and_db():
    """redis_password and redis_db: the beats run, their keys are in that database; a wrong
    password skips every beat and says why."""
    r = Redis(password="pw-9").start()
    try:
        s = locked_server("lock-auth", r.port)
        s.server.update({"redis_password": "pw-9", "redis_db": 4})
        s.write_config()
        with running(s):
            wait_for(lambda: runs(s) >= 3, 10, "beats with AUTH and SELECT")
            assert int(r.cli("GET", "srv:cron:{tick}:fence", db=4)) >= 3
            assert r.cli("EXISTS", "srv:cron:{tick}:fence", db=0) == "0"
        s = locked_server("lock-auth-bad", r.port)
        s.server.update({"redis_password": "wrong", "redis_db": 4})
        s.write_config()
        with running(s):
            wait_for(lambda: (locks(s) or {}).get("errors", 0) >= 2, 10, "refused beats")
            assert runs(s) == 0
            wait_for(lambda: "AUTH refused" in s.log(), 5, "the reason in the log")
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
    run([test_two_instances_share_the_beats, test_paused_instance_never_runs_a_beat_twice,
         test_foreign_lock_makes_beats_busy, test_redis_down_skips_and_recovers,
         test_password_and_db,
         test_without_redis_config_rejected])
