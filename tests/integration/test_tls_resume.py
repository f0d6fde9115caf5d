"""Session resumption across processes: in base mode with 4 workers (each its own process and
its own listening socket), `openssl s_client -sess_out` gets a ticket from one worker, then new
connections with `-sess_in` land on the other workers and every one of them says "Reused" (TLS
1.3 and TLS 1.2), proven by /worker's pid in the same connection; a ticket from before
`srv reload` resumes on the new workers. In process mode (2 reactor threads) every connection
resumes too. With ssl_session_tickets = false no connection resumes on a worker other than the
one that made the session. Python's ssl resumes as well (SSLSocket.session)."""
import os
import re
import socket

from srvtest import SLOW, run, running, wait_for
from tlscerts import certs, client_ctx, s_client, tls_server, tls_socket

GET_WORKER = b"GET /worker HTTP/1.0\r\nHost: localhost\r\n\r\n"
WORKER = re.compile(r'\{"id":(\d+),"pid":(\d+)\}')


def visit(port, *args):
    """One s_client connection asking /worker: (resumed?, version, worker pid)."""
    rc, out = s_client(port, "-ign_eof", *args, input=GET_WORKER)
    m = re.search(r"^(New|Reused), (TLSv1\.[23])", out, re.M)
    w = WORKER.search(out)
    assert m and w, f"s_client {args} exited {rc}:\n{out[-3000:]}"
    return m.group(1) == "Reused", m.group(2), int(w.group(2))


def first_session(s, sess, *args):
    resumed, version, pid = visit(s.port(), "-sess_out", sess, *args)
    assert not resumed
    assert os.path.getsize(sess) > 0
    return version, pid


def resume_on_others(s, sess, version, first_pid, *args, want_others=2, tries=60):
    """Connect with the session until want_others other pids were seen; every one resumes."""
    others = set()
    for _ in range(tries):
        resumed, v, pid = visit(s.port(), "-sess_in", sess, *args)
        assert resumed, f"not resumed (worker {pid}, first {first_pid})"
        assert v == version, (v, version)
        if pid != first_pid:
            others.add(pid)
            if len(others) >= want_others:
                return others
    raise AssertionError(f"{tries} connections reached only {others} besides {first_pid}")


def test_resume_across_workers_base_mode():
    c = certs()
    with running(tls_server("base", "resume", c, server={"worker_num": 4})) as s:
        for args in ([], ["-tls1_2"]):
            sess = os.path.join(s.dir, f"sess{len(args)}.pem")
            version, pid = first_session(s, sess, *args)
            assert version == ("TLSv1.2" if args else "TLSv1.3"), version
            resume_on_others(s, sess, version, pid, *args)
        # a ticket from the old workers resumes on the new ones
        sess = os.path.join(s.dir, "before-reload.pem")
        version, pid = first_session(s, sess)
        old = {w["pid"] for w in s.info()["workers"]}
        r = s.cmd("reload", timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr)
        wait_for(lambda: all(w["state"] == "ready" and w["pid"] not in old
                             for w in s.info()["workers"]), 20, "new workers")
        others = resume_on_others(s, sess, version, pid, want_others=1)
        assert not others & old, (others, old)


def test_resume_process_mode():
    c = certs()
    with running(tls_server("process", "resume-p", c, server={"reactor_num": 2})) as s:
        for args in ([], ["-tls1_2"]):
            sess = os.path.join(s.dir, f"sess{len(args)}.pem")
            version, _ = first_session(s, sess, *args)
            for _ in range(10):
                resumed, v, _ = visit(s.port(), "-sess_in", sess, *args)
                assert resumed and v == version, (resumed, v)


def test_no_tickets():
    """ssl_session_tickets = false: no ticket, so no resumption on another process (a
    per-process session cache may still resume on the same worker)."""
    c = certs()
    with running(tls_server("base", "notickets", c, server={"worker_num": 4},
                            ssl_session_tickets=False)) as s:
        for args in ([], ["-tls1_2"]):
            sess = os.path.join(s.dir, f"sess{len(args)}.pem")
            rc, out = s_client(s.port(), "-ign_eof", "-sess_out", sess, *args, input=GET_WORKER)
            first = int(WORKER.search(out).group(2))
            others = 0
            for _ in range(40):
                if not os.path.exists(sess) or os.path.getsize(sess) == 0:
                    break  # nothing to resume with at all
                resumed, v, pid = visit(s.port(), "-sess_in", sess, *args)
                if pid != first:
                    others += 1
                    assert not resumed, f"resumed on worker {pid} without tickets ({args})"
                if others >= 3:
                    break


def read_all(t):
    out = b""
    while True:
        b = t.recv(65536)
        if not b:
            return out
        out += b


def test_python_resumes():
    c = certs()
    with running(tls_server("base", "pyresume", c, server={"worker_num": 4})) as s:
        ctx = client_ctx(c)
        with tls_socket(s.port(), ctx) as t:
            t.sendall(GET_WORKER)
            read_all(t)  # the TLS 1.3 ticket comes after the handshake
            session = t.session
            assert not t.session_reused
        assert session is not None and session.has_ticket, session
        pids = set()
        for _ in range(30):
            sock = socket.create_connection(("127.0.0.1", s.port()), timeout=10 * SLOW)
            with ctx.wrap_socket(sock, server_hostname="localhost", session=session) as t:
                t.sendall(GET_WORKER)
                out = read_all(t).decode()
                assert t.session_reused, "Python's session not reused"
                pids.add(int(WORKER.search(out).group(2)))
            if len(pids) >= 2:
                break
        assert len(pids) >= 2, pids


if __name__ == "__main__":
    run([test_resume_across_workers_base_mode, test_resume_process_mode, test_no_tickets,
         test_python_resumes])
