"""srvtest's port allocator (free_port): ports from outside the kernel's ephemeral range, each
held by one test process for its whole life, so tests running side by side never share one.
Stress: several processes allocate at once from the same starting number."""
import fcntl
import os
import socket
import subprocess
import sys

import srvtest
from srvtest import PORT_DIR, SLOW, free_port, port_range, run

HERE = os.path.dirname(os.path.abspath(__file__))
# A child: allocate n ports starting at the given number, print them, hold them until stdin closes.
CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import srvtest
srvtest._cursor = int(sys.argv[2])
print(" ".join(str(srvtest.free_port()) for _ in range(int(sys.argv[3]))), flush=True)
sys.stdin.read()
"""


def spawn(start, n):
    return subprocess.Popen([sys.executable, "-c", CHILD, HERE, str(start), str(n)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def ephemeral():
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        lo, hi = map(int, f.read().split())
    return lo, hi


def test_range_outside_ephemeral():
    first, end = port_range()
    lo, hi = ephemeral()
    assert end - first >= 1024, (first, end)
    assert end <= lo or first > hi, ((first, end), (lo, hi))
    assert first >= 1024 and end <= 65536, (first, end)


def test_concurrent_processes_never_share():
    """8 processes x 40 ports, all starting at one number, plus this process: all distinct, all
    in range, each bindable by TCP and UDP while its holder lives."""
    first, end = port_range()
    start = first + (end - first) // 2
    kids = [spawn(start, 40) for _ in range(8)]
    try:
        srvtest._cursor = start
        mine = [free_port() for _ in range(40)]
        got = [mine]
        for k in kids:
            line = k.stdout.readline()
            assert line, f"child {k.pid} printed nothing (exit {k.poll()})"
            got.append([int(p) for p in line.split()])
        every = [p for ports in got for p in ports]
        assert len(every) == 9 * 40, len(every)
        dup = sorted({p for p in every if every.count(p) > 1})
        assert not dup, f"ports handed out twice: {dup}"
        assert all(first <= p < end for p in every), (first, end, every)
        for p in every[::7]:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                s = socket.socket(socket.AF_INET, kind)
                try:
                    s.bind(("127.0.0.1", p))
                finally:
                    s.close()
    finally:
        for k in kids:
            k.stdin.close()
            k.wait(timeout=30 * SLOW)
            k.stdout.close()
    assert all(k.returncode == 0 for k in kids), [k.returncode for k in kids]


def lock(port):
    """Take port's lock (an fd to close), or None when someone holds it."""
    fd = os.open(os.path.join(PORT_DIR, f"{port}.lock"), os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None


def lock_free(port):
    """True when nobody holds port's lock (takes and drops it)."""
    fd = lock(port)
    if fd is not None:
        os.close(fd)
    return fd is not None


def test_held_for_the_holders_life():
    """The lock lives as long as the process that took it and goes with it, however it ends."""
    first, end = port_range()
    k = spawn(first + (end - first) // 3, 1)
    try:
        port = int(k.stdout.readline())
        assert not lock_free(port), port
        k.kill()
        k.wait(timeout=30 * SLOW)
        assert lock_free(port), port
    finally:
        k.stdin.close()
        k.stdout.close()
        if k.poll() is None:
            k.kill()
            k.wait()


def test_skips_a_port_bound_elsewhere():
    """A socket bound by someone who takes no lock (any other program) is skipped. The port is
    locked while it is bound here, so no other test gets it in between."""
    first, end = port_range()
    for p in range(first + (end - first) // 4, end):
        fd = None if p in srvtest._held else lock(p)
        if fd is None:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            s.listen(1)
        except OSError:
            s.close()
            os.close(fd)
            continue
        try:
            os.close(fd)  # the socket alone now says taken
            srvtest._cursor = p
            got = free_port()
            assert got != p, p
        finally:
            s.close()
        return
    raise AssertionError("found no port to bind")


if __name__ == "__main__":
    run([test_range_outside_ephemeral, test_concurrent_processes_never_share,
         test_held_for_the_holders_life, test_skips_a_port_bound_elsewhere])
