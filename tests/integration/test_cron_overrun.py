"""A cron job slower than its interval (demo_cron_slow: 250 ms every 100 ms) is never started
twice at once: beats due while it runs are skipped and counted in srv info."""
from srvtest import Server, run, running, wait_for

CRON = '''
[[cron]]
name = "slow"
handler = "demo_cron_slow"
interval_ms = 100
'''


def test_overrunning_job_is_skipped_not_doubled():
    with running(Server(name="overrun", extra=CRON)) as s:
        def job():
            jobs = s.info()["cron"]["jobs"]
            return jobs[0] if jobs and jobs[0]["runs"] >= 4 else None

        j = wait_for(job, 20, "the slow job ran 4 times")
        assert j["name"] == "slow" and j["interval_ms"] == 100, j
        assert j["skips"] >= 4, j  # about 2 of every 3 beats fall inside a run
        atomics = {a["name"]: a["value"] for a in s.info()["atomics"]}
        assert atomics.get("demo_slow_runs", 0) >= 4, atomics
        assert atomics.get("demo_slow_overlaps", 0) == 0, atomics
        assert atomics.get("demo_slow_running", 0) in (0, 1), atomics
        s.stop()


if __name__ == "__main__":
    run([test_overrunning_job_is_skipped_not_doubled])
