"""Issue 11, black-box: the pid file is never written through a link planted at its path (and
is refused in a folder anyone can swap it in; a planted locked one makes stop/reload signal
nobody); out of descriptors the master neither spins nor
leaves `srv info` unanswered; the control socket survives idle connections, takes a command
split over several writes, and `srv reload` / `srv info` cope with a socket that is gone."""
import fcntl
import json
import os
import resource
import select
import socket
import stat
import subprocess
import time

from srvtest import SLOW, SRV, Server, run, running, wait_for

PRECIOUS = "root-owned data that must survive\n"


def ctl_connect(s):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(10 * SLOW)
    c.connect(s.pid_file + ".sock")
    return c


def read_all(c):
    out = b""
    while True:
        try:
            b = c.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        out += b
    return out


def closed_by_server(c, timeout):
    """True once the server closed c (EOF or reset), within timeout seconds."""
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        r, _, _ = select.select([c], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        try:
            if not c.recv(4096):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- 1. the pid file ---------------------------------------------------------------------------

def test_pidfile_symlink_is_refused():
    """Issue 11: root starting srv with pid_file = a symlink a local user planted must not
    truncate or write the link's target, with or without -d, nor create a dangling one's."""
    s = Server(name="ops-symlink")
    try:
        target = os.path.join(s.dir, "precious")
        with open(target, "w") as f:
            f.write(PRECIOUS)
        os.symlink(target, s.pid_file)
        for args in (("start", "-d"), ("start",)):
            r = s.cmd(*args, timeout=30)
            assert r.returncode == 3, (args, r.returncode, r.stderr, s.log())
            assert "symbolic link" in r.stderr and s.pid_file in r.stderr, r.stderr
            with open(target) as f:
                assert f.read() == PRECIOUS, "the symlink's target was written"
            assert os.path.islink(s.pid_file)
            assert not os.path.exists(s.pid_file + ".sock")
        os.unlink(s.pid_file)
        absent = os.path.join(s.dir, "absent")
        os.symlink(absent, s.pid_file)
        r = s.cmd("start", timeout=30)
        assert r.returncode == 3, (r.returncode, r.stderr)
        assert not os.path.exists(absent), "a dangling symlink's target was created"
        # stop/info do not follow it either: nothing runs behind it.
        r = s.cmd("info")
        assert r.returncode == 5, (r.returncode, r.stderr)
        # A FIFO there is refused at once (no hang opening it).
        os.unlink(s.pid_file)
        os.mkfifo(s.pid_file)
        r = s.cmd("start", timeout=30)
        assert r.returncode == 3 and "regular file" in r.stderr, (r.returncode, r.stderr)
    finally:
        # cleanup reads the pid file: a FIFO there would block it.
        if os.path.lexists(s.pid_file) and not os.path.isfile(s.pid_file):
            os.unlink(s.pid_file)
        s.cleanup()


def test_pidfile_hardlink_target_untouched():
    """A hard link at the pid file's path: the server runs, but its pid goes into a new file;
    the linked file keeps its bytes. The lock (already running, stop, info) is on the file
    that ends up at the path."""
    s = Server(name="ops-hardlink")
    try:
        target = os.path.join(s.dir, "precious")
        with open(target, "w") as f:
            f.write(PRECIOUS)
        os.link(target, s.pid_file)
        s.start()
        info = s.info()
        with open(target) as f:
            assert f.read() == PRECIOUS, "the hard-linked file was overwritten"
        assert os.stat(target).st_ino != os.stat(s.pid_file).st_ino
        assert s.master_pid() == info["pid"]
        st = os.lstat(s.pid_file)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644, oct(st.st_mode)
        r = s.cmd("start", timeout=30)
        assert r.returncode == 5 and "already running" in r.stderr, (r.returncode, r.stderr)
        # No temporary file left beside it.
        assert sorted(os.listdir(s.dir)) == sorted(
            ["precious", "srv.pid", "srv.pid.sock", "srv.toml", "srv.log", "stdout"]), \
            os.listdir(s.dir)
        s.stop()
        assert not os.path.exists(s.pid_file)
        with open(target) as f:
            assert f.read() == PRECIOUS
    finally:
        s.cleanup()


def test_pidfile_world_writable_folder_refused():
    """A folder anyone may write without the sticky bit: anyone could swap the pid file (and
    make `srv stop` signal another process). With the sticky bit (like /tmp) it is fine."""
    s = Server(name="ops-wwdir")
    try:
        run_dir = os.path.join(s.dir, "run")
        os.mkdir(run_dir)
        os.chmod(run_dir, 0o777)
        s.pid_file = os.path.join(run_dir, "srv.pid")
        s.server["pid_file"] = s.pid_file
        s.write_config()
        r = s.cmd("start", "-d", timeout=30)
        assert r.returncode == 3, (r.returncode, r.stderr)
        assert "writable by everyone" in r.stderr and s.pid_file in r.stderr, r.stderr
        assert os.listdir(run_dir) == [], os.listdir(run_dir)
        os.chmod(run_dir, 0o1777)
        s.start()
        assert s.master_pid() == s.info()["pid"]
        s.stop()
        assert os.listdir(run_dir) == [], os.listdir(run_dir)
    finally:
        s.cleanup()


def test_pidfile_stale_is_replaced():
    """A stale pid file (no live lock) with junk in it: start replaces it; stop finds the
    server through the new one."""
    s = Server(name="ops-stale")
    try:
        with open(s.pid_file, "w") as f:
            f.write("999999\n")
        with running(s):
            assert s.master_pid() == s.info()["pid"]
            s.stop()
    finally:
        s.cleanup()


def test_planted_pid_file_signals_nobody():
    """A local user can also plant a plain pid file in a sticky folder, hold its lock, and name
    a root process in it: `srv stop` / `srv reload` run by root must not signal that process
    (a file not owned by root only ever names a process of its owner)."""
    if os.geteuid() != 0:
        print("skip: needs root to give the file to another user")
        return
    s = Server(name="ops-planted")
    victim = subprocess.Popen(["sleep", "600"])
    fd = -1
    try:
        with open(s.pid_file, "w") as f:
            f.write(f"{victim.pid}\n")
        os.chown(s.pid_file, 65534, 65534)
        fd = os.open(s.pid_file, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for args in (("stop",), ("reload",), ("info",)):
            r = s.cmd(*args, timeout=60)
            assert r.returncode == 5, (args, r.returncode, r.stderr)
            assert victim.poll() is None, f"srv {args[0]} signalled pid {victim.pid}"
    finally:
        if fd >= 0:
            os.close(fd)
        victim.kill()
        victim.wait()
        s.cleanup()


# -- 2. out of descriptors ---------------------------------------------------------------------

NOFILE = 96


def test_out_of_descriptors_info_answers_master_idle():
    """Issue 11: under RLIMIT_NOFILE 96 with more client connections than descriptors, accept
    on the control socket fails with EMFILE; the master must not spin on it and `srv info`
    must still answer."""
    s = Server(name="ops-emfile", server={"http_keepalive_timeout": 600000})
    s.out = open(os.path.join(s.dir, "stdout"), "w")

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))

    s.proc = subprocess.Popen([SRV, "start", "-c", s.config], stdout=s.out,
                              stderr=subprocess.STDOUT, preexec_fn=low_limit)
    clients = []
    ctl = []
    try:
        info = s.wait_ready()
        master = info["pid"]

        def nfds():
            return len(os.listdir(f"/proc/{master}/fd"))

        for _ in range(NOFILE + 40):
            c = socket.create_connection(("127.0.0.1", s.port()), timeout=10 * SLOW)
            clients.append(c)
        # Every descriptor of the master is taken (the rest wait in the listen backlog).
        wait_for(lambda: nfds() >= NOFILE, 10, f"master at its {NOFILE} descriptors")
        # Control connections it cannot accept without a descriptor: one may take the
        # reserve, the other stays in the backlog.
        for _ in range(2):
            ctl.append(ctl_connect(s))
        # The master must not spin on the readable control socket.
        window = 1.0
        c0, t0 = cpu_seconds(master), time.monotonic()
        deadline = t0 + window
        while time.monotonic() < deadline:
            select.select([], [], [], deadline - time.monotonic())  # the measuring window
        used = (cpu_seconds(master) - c0) / (time.monotonic() - t0)
        assert used < 0.3, f"master used {used:.0%} CPU while out of descriptors"
        # And `srv info` answers, within a few seconds.
        t0 = time.monotonic()
        r = s.cmd("info", "--json", timeout=30)
        took = time.monotonic() - t0
        assert r.returncode == 0, (r.returncode, r.stderr, s.log()[-2000:])
        j = json.loads(r.stdout)
        assert j["pid"] == master
        assert j["connections"] >= NOFILE // 2, j["connections"]
        assert took < 3 * SLOW, f"srv info took {took:.1f}s out of descriptors"
        assert any("control socket" in l and "out of descriptors" in l
                   for l in s.log().splitlines()), s.log()[-2000:]
        for c in clients:
            c.close()
        clients = []
        # Descriptors back: everything answers as before.
        wait_for(lambda: s.info()["connections"] == 0, 20, "client connections closed")
        assert s.get("/")[0] == 200
        s.stop()
    finally:
        for c in clients + ctl:
            c.close()
        s.cleanup()


# -- 3. the control socket ---------------------------------------------------------------------

def test_idle_control_connections_do_not_block():
    """Issue 11: 20 idle connections to the control socket: `srv info` and `srv reload` still
    get through, and the idle ones are closed after an idle timeout."""
    with running(Server(name="ops-idle")) as s:
        idle = [ctl_connect(s) for _ in range(20)]
        try:
            t0 = time.monotonic()
            r = s.cmd("info", "--json", timeout=30)
            assert r.returncode == 0, (r.returncode, r.stderr)
            assert json.loads(r.stdout)["pid"] == s.master_pid()
            assert time.monotonic() - t0 < 5 * SLOW
            r = s.cmd("reload", timeout=60)
            assert r.returncode == 0 and "reloaded" in r.stdout, (r.returncode, r.stdout,
                                                                  r.stderr)
            for c in idle:
                assert closed_by_server(c, 10), "an idle control connection was never closed"
        finally:
            for c in idle:
                c.close()
        s.stop()


def test_control_command_framing():
    """Issue 11: a command split over writes is one command; CRLF is fine; an overlong line
    and an unknown command get an error, not a hang."""
    with running(Server(name="ops-framing")) as s:
        c = ctl_connect(s)
        try:
            c.sendall(b"in")
            # No answer to half a command (the measuring window is the assertion).
            r, _, _ = select.select([c], [], [], 0.3)
            assert not r, f"answered half a command: {c.recv(200)!r}"
            c.sendall(b"fo js")
            c.sendall(b"on\n")
            j = json.loads(read_all(c))
            assert j["pid"] == s.master_pid(), j
        finally:
            c.close()
        c = ctl_connect(s)
        c.sendall(b"info\r\n")
        text = read_all(c).decode()
        c.close()
        assert str(s.master_pid()) in text and "error" not in text, text
        c = ctl_connect(s)
        try:
            c.sendall(b"x" * 4096)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = read_all(c)
        c.close()
        assert reply.startswith(b"error 2 command too long"), reply
        c = ctl_connect(s)
        c.sendall(b"bogus\n")
        reply = read_all(c)
        c.close()
        assert reply.startswith(b"error 2 unknown command"), reply
        # Half a command and then the end of input: an answer, not a hang.
        c = ctl_connect(s)
        c.sendall(b"inf")
        c.shutdown(socket.SHUT_WR)
        reply = read_all(c)
        c.close()
        assert reply.startswith(b"error 2 "), reply
        assert s.info()["pid"] == s.master_pid()
        s.stop()


def test_reload_and_info_when_control_socket_gone():
    """Issue 11: the server runs (it holds the pid file's lock) but its control socket is not
    there: `srv reload` falls back to SIGUSR1 and says so; `srv info` fails clearly (exit 1),
    promptly."""
    with running(Server(name="ops-nosock")) as s:
        sock = s.pid_file + ".sock"
        away = sock + ".away"
        os.rename(sock, away)
        try:
            r = s.cmd("reload", timeout=30)
            assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
            assert "SIGUSR1" in r.stderr and sock in r.stderr, r.stderr
            t0 = time.monotonic()
            r = s.cmd("info", timeout=30)
            assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
            assert "control socket" in r.stderr and sock in r.stderr, r.stderr
            assert time.monotonic() - t0 < 10 * SLOW
        finally:
            os.rename(away, sock)
        wait_for(lambda: s.info()["reloads"] >= 1, 30, "the signalled reload counted")
        wait_for(lambda: all(w["state"] == "ready" for w in s.info()["workers"]), 30,
                 "workers ready after the reload")
        s.stop()


if __name__ == "__main__":
    run([test_pidfile_symlink_is_refused, test_pidfile_hardlink_target_untouched,
         test_pidfile_world_writable_folder_refused, test_pidfile_stale_is_replaced,
         test_planted_pid_file_signals_nobody,
         test_out_of_descriptors_info_answers_master_idle,
         test_idle_control_connections_do_not_block, test_control_command_framing,
         test_reload_and_info_when_control_socket_gone])
