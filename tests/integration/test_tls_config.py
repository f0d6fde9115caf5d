"""TLS configuration errors and warnings, through `srv check` and `srv start`: a missing
certificate file, an unreadable key, a key that does not match its certificate, malformed PEM
(certificate and key), ssl on a udp listener, ssl_verify_optional without ssl_verify_peer,
ssl_verify_peer without ssl_client_cert_file, ssl_* keys without ssl = true, an unknown
ssl_protocols name, and each in INI too: exit code 3 and `file:line: key: problem` on stderr, the
same from `srv start` (foreground and -d). An expired certificate and one that expires in 7 days
pass the check with a warning naming the certificate file, and srv starts with them, logging
the same warning; valid TOML list and string forms of ssl_protocols pass."""
import os
import re
import shutil

from srvtest import DEMO, free_port, run, running, wait_for
from test_cli import TempDir, line_of, srv, write
from tlscerts import certs, client_ctx, tls_info, tls_server


LISTEN = "the listener's header"
LISTEN_LINE = {"toml": "[[listen]]", "ini": "[listen.l]"}


def toml(port, listen, kind="http", server=""):
    return (f'[server]\napp = "{DEMO}"\n{server}\n[[listen]]\nname = "l"\ntype = "{kind}"\n'
            f'host = "127.0.0.1"\nport = {port}\n{listen}')


def ini(port, listen, kind="http"):
    return (f"[server]\napp = {DEMO}\n\n[listen.l]\ntype = {kind}\nhost = 127.0.0.1\n"
            f"port = {port}\n{listen}")


def keys(cert, key, fmt="toml", **more):
    d = {"ssl": True, "ssl_cert_file": cert, "ssl_key_file": key}
    d.update(more)
    out = ""
    for k, v in d.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = ("true" if v else "false")
        elif fmt == "toml" and isinstance(v, str):
            v = f'"{v}"'
        elif fmt == "toml" and isinstance(v, list):
            v = "[" + ", ".join(f'"{x}"' for x in v) + "]"
        out += f"{k} = {v}\n"
    return out


def expect_error(path, text, key, what, near=(), cmd=("check",)):
    """cmd fails with 3 and `path:line: key: what`; line is the reported key's own line, or,
    for a key the file does not have (a required one), the line of one of the near keys."""
    r = srv(*cmd, "-c", path)
    assert r.returncode == 3, (cmd, r.returncode, r.stdout, r.stderr)
    m = re.search(re.escape(path) + r":(\d+): ([A-Za-z_.]+): (.+)", r.stderr)
    assert m, f"no 'file:line: key: what' on stderr: {r.stderr!r}"
    assert re.fullmatch(key, m.group(2)), (key, r.stderr)
    lines = set()
    for needle in (m.group(2) + " =", *near):
        try:
            lines.add(line_of(text, needle))
        except AssertionError:
            pass  # not in this file
    assert int(m.group(1)) in lines, (lines, r.stderr)
    assert re.search(what, m.group(3), re.I), (what, r.stderr)
    return r


def bad_files(d, c):
    """Paths of broken files in d: garbage PEM, a truncated key, an unreadable key."""
    junk = write(d, "junk.pem", "-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n"
                 "-----END CERTIFICATE-----\n")
    with open(c.server_key) as f:
        k = f.read()
    half = write(d, "half.key", k[:len(k) // 2])
    unreadable = os.path.join(d, "unreadable.key")
    if os.getuid() == 0:  # root reads anything: a folder cannot be read as a file either
        os.mkdir(unreadable)
    else:
        shutil.copyfile(c.server_key, unreadable)
        os.chmod(unreadable, 0)
    return junk, half, unreadable


def cases(d, c, fmt):
    junk, half, unreadable = bad_files(d, c)
    missing = os.path.join(d, "missing.pem")
    k = lambda cert=c.server, key=c.server_key, **m: keys(cert, key, fmt, **m)  # noqa: E731
    return [
        # (listener lines, key regex, problem regex, other lines it may name, listener type)
        (k(cert=missing), "ssl_cert_file", "missing.pem|no such|not found|exist", (), "http"),
        (k(key=missing), "ssl_key_file", "missing.pem|no such|not found|exist", (), "http"),
        (k(key=unreadable), "ssl_key_file", ".", (), "http"),
        (k(key=c.alt_key), "ssl_key_file|ssl_cert_file", "match", (), "http"),
        (k(cert=junk), "ssl_cert_file", "pem|certificate|parse|malformed|invalid", (), "http"),
        (k(key=half), "ssl_key_file", "pem|key|parse|malformed|invalid", (), "http"),
        (k(cert=c.server_key), "ssl_cert_file", ".", (), "http"),
        (k(), "ssl|type", "udp|tcp|http|stream", (), "udp"),
        (k(ssl_verify_optional=True), "ssl_verify_optional", "ssl_verify_peer", (), "http"),
        (k(ssl_verify_peer=True), "ssl_verify_peer|ssl_client_cert_file",
         "ssl_client_cert_file|CA|required", ("ssl_verify_peer =", LISTEN), "http"),
        (k(ssl_verify_peer=True, ssl_client_cert_file=missing), "ssl_client_cert_file",
         "missing.pem|no such|not found|exist", (), "http"),
        (k(ssl=None), "ssl\\w*", "ssl", ("ssl_cert_file =", LISTEN), "http"),
        (k(ssl=None), "ssl\\w*", "ssl", ("ssl_cert_file =", LISTEN), "tcp"),
        (k(ssl_protocols="TLSv1.2 TLSv9"), "ssl_protocols", "TLSv9|unknown|protocol", (),
         "http"),
        (k(ssl_handshake_timeout=-1), "ssl_handshake_timeout", ".", (), "http"),
    ]


def check_all(fmt):
    c = certs()
    make = toml if fmt == "toml" else ini
    with TempDir() as d:
        for i, (lines, key, what, near, kind) in enumerate(cases(d, c, fmt)):
            text = make(free_port(), lines, kind)
            path = write(d, f"bad{i}.{fmt}", text)
            near = tuple(n if n != LISTEN else LISTEN_LINE[fmt] for n in near)
            try:
                expect_error(path, text, key, what, near)
            except AssertionError as e:
                raise AssertionError(f"case {i}: {lines!r}: {e}") from e


def test_check_errors_toml():
    check_all("toml")


def test_check_errors_ini():
    check_all("ini")


def test_start_refuses_the_same():
    c = certs()
    with TempDir() as d:
        junk, half, _ = bad_files(d, c)
        own = (f'pid_file = "{d}/srv.pid"\nlog_file = "{d}/srv.log"\nworker_num = 1\n'
               "max_wait_time = 3\n")
        for lines, key in ((keys(c.server, c.alt_key), "ssl_key_file|ssl_cert_file"),
                           (keys(junk, c.server_key), "ssl_cert_file"),
                           (keys(c.server, os.path.join(d, "nope.key")), "ssl_key_file")):
            text = toml(free_port(), lines, server=own)
            path = write(d, "start.toml", text)
            try:
                expect_error(path, text, key, ".", cmd=("start",))
                expect_error(path, text, key, ".", cmd=("start", "-d"))
            finally:
                if os.path.exists(f"{d}/srv.pid"):  # started after all: stop it
                    srv("stop", "-c", path, timeout=60)


def test_valid_and_warnings():
    c = certs()
    with TempDir() as d:
        for i, lines in enumerate([
                keys(c.server, c.server_key),
                keys(c.server, c.server_key, ssl_protocols="TLSv1.3"),
                keys(c.server, c.server_key, ssl_protocols=["TLSv1.2", "TLSv1.3"]),
                keys(c.server, c.server_key, ssl_verify_peer=True,
                     ssl_client_cert_file=c.client_ca, ssl_verify_optional=True,
                     ssl_session_tickets=False, ssl_handshake_timeout=3,
                     ssl_ciphers="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
                     ssl_ciphersuites="TLS_AES_128_GCM_SHA256")]):
            path = write(d, f"ok{i}.toml", toml(free_port(), lines))
            r = srv("check", "-c", path)
            assert r.returncode == 0, (lines, r.returncode, r.stderr)
            assert "expire" not in (r.stdout + r.stderr).lower(), (r.stdout, r.stderr)
        path = write(d, "tcp.toml", toml(free_port(), keys(c.server, c.server_key,
                                                           ssl_alpn="myproto"), "tcp"))
        r = srv("check", "-c", path)
        assert r.returncode == 0, (r.returncode, r.stderr)
        for cert, key in ((c.expired, c.expired_key), (c.soon, c.soon_key)):
            for fmt, make in (("toml", toml), ("ini", ini)):
                path = write(d, f"warn.{fmt}", make(free_port(), keys(cert, key, fmt)))
                r = srv("check", "-c", path)
                out = r.stdout + r.stderr
                assert r.returncode == 0, (cert, r.returncode, out)
                assert re.search(r"warn", out, re.I), (cert, out)
                assert cert in out, (cert, out)
                assert re.search(r"expire", out, re.I), (cert, out)


def test_start_warns_in_log():
    """srv starts with an expired or soon-expiring certificate, and logs a warning naming it."""
    c = certs()
    for cert, key in ((c.soon, c.soon_key), (c.expired, c.expired_key)):
        with running(tls_server("process", "warnlog", c, cert=cert, key=key)) as s:
            wait_for(lambda: cert in s.log() and re.search(r"expire", s.log(), re.I), 10,
                     "a warning naming the certificate in the log")
            if cert == c.soon:  # still valid: served
                assert tls_info(s.port(), client_ctx(c))["tls"] is True


if __name__ == "__main__":
    run([test_check_errors_toml, test_check_errors_ini, test_start_refuses_the_same,
         test_valid_and_warnings, test_start_warns_in_log])
