"""Issue 11, configuration defects: `user` naming no user is refused (it was accepted and never
applied; issue 16 applies it);
`srv check` finds what start would refuse or could not serve (length framing that makes every
frame malformed, a table larger than the machine, hosts that are neither an address nor a
resolvable name, listeners that bind one address twice), with file:line and exit 3; INI takes
lines as long as the schema's values (TOML always did); unix listeners get socket_mode."""
import os
import re
import socket
import stat

from srvtest import DEMO, SLOW, Server, free_port, run, running, wait_for
from test_cli import TempDir, line_of, srv, write


def expect_error(path, line, key, what, cmd="check"):
    r = srv(cmd, "-c", path)
    assert r.returncode == 3, (cmd, r.returncode, r.stdout, r.stderr)
    m = re.search(re.escape(path) + r":(\d+): ([A-Za-z_.]+): (.+)", r.stderr)
    assert m, f"no 'file:line: key: what' on stderr: {r.stderr!r}"
    assert (int(m.group(1)), m.group(2)) == (line, key), ((line, key), r.stderr)
    assert re.search(what, m.group(3), re.I), (what, r.stderr)


def expect_ok(path):
    r = srv("check", "-c", path)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert r.stdout.strip().endswith(": ok"), r.stdout


def toml(listeners, server=""):
    """[server] with the demo app, then each listener's TOML lines under [[listen]]."""
    text = f'[server]\napp = "{DEMO}"\n{server}'
    for body in listeners:
        text += f"\n[[listen]]\n{body}"
    return text


def ini(listeners, server=""):
    text = f"[server]\napp = {DEMO}\n{server}"
    for name, body in listeners:
        text += f"\n[listen.{name}]\n{body}"
    return text


def test_user_refused():
    """It was accepted and the processes kept running as root. Since issue 16 it is applied
    (test_privdrop.py); a user or group that does not exist is refused by check and start."""
    with TempDir() as d:
        port = free_port()
        text = toml([f"port = {port}\n"], 'user = "no-such-user-srv"\n')
        path = write(d, "user.toml", text)
        for cmd in ("check", "start"):
            expect_error(path, line_of(text, "user"), "user", "no such user", cmd)
        text = ini([("http", f"port = {port}\n")], "group = no-such-group-srv\n")
        path = write(d, "user.ini", text)
        expect_error(path, line_of(text, "group"), "group", "no such group")


def test_check_length_framing():
    """package_body_offset 1000 with package_max_length 64 made every frame malformed: start
    served and closed each connection. The framer's own check now runs on load, per listener."""
    port, other = free_port(), free_port()
    good = f'type = "tcp"\nport = {other}\nopen_length_check = true\npackage_body_offset = 4\n'
    bad = (f'type = "tcp"\nport = {port}\nopen_length_check = true\n'
           "package_body_offset = 1000\npackage_max_length = 64\n")
    with TempDir() as d:
        text = toml([good, bad])
        path = write(d, "frame.toml", text)
        for cmd in ("check", "start"):
            expect_error(path, line_of(text, "package_max_length"), "package_max_length",
                         r"shorter than the frame header \(1000 bytes", cmd)
        ini_bad = bad.replace('"tcp"', "tcp")
        text = ini([("good", good.replace('"tcp"', "tcp")), ("bad", ini_bad)])
        path = write(d, "frame.ini", text)
        expect_error(path, line_of(text, "package_max_length"), "package_max_length",
                     "shorter than the frame header")
        # Inherited from [server]: the listener's header key is blamed.
        text = toml([f'type = "tcp"\nport = {port}\nopen_length_check = true\n'
                     'package_length_type = "n"\npackage_length_offset = 100\n'],
                    "package_max_length = 64\n")
        path = write(d, "inherit.toml", text)
        expect_error(path, line_of(text, "package_length_offset"), "package_length_offset",
                     r"from \[server\]")
        # EOF framing is checked per listener too (here: a delimiter is required).
        text = toml([good, f'type = "tcp"\nport = {port}\nopen_eof_split = true\n'])
        path = write(d, "eof.toml", text)
        expect_error(path, line_of(text, "open_eof_split"), "package_eof", "required")
        # The largest header that fits is fine.
        text = toml([f'type = "tcp"\nport = {port}\nopen_length_check = true\n'
                     "package_body_offset = 64\npackage_max_length = 64\n"])
        expect_ok(write(d, "fits.toml", text))


def mem_bytes():
    total = 0
    with open("/proc/meminfo") as f:
        for l in f:
            if l.startswith(("MemTotal:", "SwapTotal:")):
                total += int(l.split()[1]) * 1024
    return total


def test_check_huge_table():
    """A 1 TiB table passed check; start then failed with ENOMEM mapping the shared region."""
    if mem_bytes() >= 16777216 * 65624:
        print("skip: this machine could map a 1 TiB table")
        return
    with TempDir() as d:
        table = ('\n[[table]]\nname = "big"\nsize = 16777216\n'
                 'columns = [{name = "s", type = "string", size = 65535}]\n')
        text = toml([f"port = {free_port()}\n"]) + table
        path = write(d, "table.toml", text)
        for cmd in ("check", "start"):
            expect_error(path, line_of(text, "size"), "size", r"1\.0 TiB .*RAM and swap", cmd)
        text = ini([("http", f"port = {free_port()}\n")]) + (
            "\n[table.big]\nsize = 16777216\ncolumn.s = string:65535\n")
        path = write(d, "table.ini", text)
        expect_error(path, line_of(text, "size"), "size", "RAM and swap")


def test_check_bad_hosts():
    """300.1.1.1 passed check and failed at start (exit 4); so did names that do not resolve."""
    with TempDir() as d:
        for host, what in (("300.1.1.1", "not a valid IPv4 address"),
                           ("127.1", "not a valid IPv4 address"),
                           ("::zz", "not a valid IPv6 address"),
                           ("bad_name.example", "IP address or a host name"),
                           ("nonexistent.invalid", "cannot resolve")):
            text = toml([f'host = "{host}"\nport = {free_port()}\n'])
            path = write(d, "host.toml", text)
            expect_error(path, line_of(text, "host"), "host", what)
            text = ini([("http", f"host = {host}\nport = {free_port()}\n")])
            path = write(d, "host.ini", text)
            expect_error(path, line_of(text, "host"), "host", what)
        text = toml([f'host = "localhost"\nport = {free_port()}\n'])
        expect_ok(write(d, "name.toml", text))


def test_check_same_address():
    """localhost and 127.0.0.1 on one port passed check; start then failed with EADDRINUSE.
    Likewise a wildcard over an address of its family, and one socket file spelled twice."""
    port = free_port()
    with TempDir() as d:
        os.mkdir(os.path.join(d, "sub"))
        cases = [
            ('host = "localhost"', 'host = "127.0.0.1"', "port", "already used"),
            ('host = "127.0.0.1"', 'host = "localhost"', "port", "one address"),
            ('host = "0.0.0.0"', 'host = "localhost"', "port", "0.0.0.0 covers"),
            ('host = "0.0.0.0"', 'host = "127.0.0.1"', "port", "already used"),
            ('host = "::"', 'host = "::1"', "port", "already used"),
            ('type = "tcp"\npath = "a.sock"', 'type = "tcp"\npath = "a.sock"', "path",
             "already used"),
            ('type = "tcp"\npath = "a.sock"', 'type = "udp"\npath = "sub/../a.sock"', "path",
             "socket file of listener"),
        ]
        for i, (first, second, key, what) in enumerate(cases):
            p = "" if "path" in first else f"\nport = {port}"
            q = "" if "path" in second else f"\nport = {port}"
            text = toml([f'name = "one"\n{first}{p}\n', f'name = "two"\n{second}{q}\n'])
            path = write(d, f"same{i}.toml", text)
            expect_error(path, line_of(text, key, 2), key, what)
        text = ini([("one", f"host = localhost\nport = {port}\n"),
                    ("two", f"host = 127.0.0.1\nport = {port}\n")])
        path = write(d, "same.ini", text)
        expect_error(path, line_of(text, "port", 2), "port", "already used")
        # start refuses it the same way (exit 3, file:line), not later at bind (exit 4)
        r = srv("start", "-c", path)
        assert r.returncode == 3, (r.returncode, r.stderr)
        assert f"{path}:{line_of(text, 'port', 2)}: port:" in r.stderr, r.stderr
        # Not conflicts: tcp and udp on one port, v4 and v6 wildcards.
        text = toml([f'host = "localhost"\nport = {port}\n',
                     f'name = "u"\ntype = "udp"\nhost = "127.0.0.1"\nport = {port}\n',
                     f'name = "w4"\nhost = "0.0.0.0"\nport = {free_port()}\n'])
        expect_ok(write(d, "fine.toml", text))


def test_ini_long_lines():
    """INI refused lines over 197 characters that TOML took. A server whose INI file holds a
    long log_file path (as a user's deep folder would) starts and serves; a line longer than
    any value could need is refused with its line number."""
    s = Server(name="defcfg-ini")
    try:
        deep = s.dir
        while len(deep) < 380:
            deep = os.path.join(deep, "d" * 40)
        os.makedirs(deep)
        log = os.path.join(deep, "srv.log")
        s.log_file = log
        port = s.port()
        text = (f"[server]\napp = {DEMO}\nworker_num = 1\nreactor_num = 1\n"
                f"pid_file = {s.pid_file}\nlog_file = \"{log}\" ; {'c' * 300}\n"
                f"log_level = info\n\n[listen.http]\nhost = 127.0.0.1\nport = {port}\n")
        assert max(len(l) for l in text.split("\n")) > 300
        s.config = write(s.dir, "srv.ini", text)
        expect_ok(s.config)
        too_long = text.replace("log_level = info", "log_level = info ; " + "x" * 1100)
        path = write(s.dir, "long.ini", too_long)
        r = srv("check", "-c", path)
        assert r.returncode == 3, (r.returncode, r.stderr)
        assert re.search(re.escape(path) + rf":{line_of(too_long, 'log_level')}: line too long",
                         r.stderr), r.stderr
        with running(s):
            assert s.get("/")[0] == 200
            wait_for(lambda: os.path.getsize(log) > 0, 10, "log written")
            s.stop()
    finally:
        s.cleanup()


def test_socket_mode():
    """Unix listeners were always chmod 0666; socket_mode sets it (default unchanged)."""
    listeners = [{"name": "http", "type": "http"},
                 {"name": "tight", "type": "tcp", "handler": "lines", "open_eof_check": True,
                  "package_eof": "\n", "path": "tight.sock", "socket_mode": "0600"},
                 {"name": "default", "type": "tcp", "handler": "lines", "open_eof_check": True,
                  "package_eof": "\n", "path": "default.sock"}]
    s = Server(name="defcfg-mode", listeners=listeners)
    try:
        for l in s.listeners[1:]:
            l["path"] = os.path.join(s.dir, l["path"])
        s.write_config()
        with running(s):
            modes = {l["name"]: stat.S_IMODE(os.stat(l["path"]).st_mode)
                     for l in s.listeners[1:]}
            assert modes == {"tight": 0o600, "default": 0o666}, {k: oct(v)
                                                                 for k, v in modes.items()}
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.settimeout(10 * SLOW)
            c.connect(s.listeners[1]["path"])
            c.sendall(b"hello\n")
            got = b""
            while not got.endswith(b"\n"):
                b = c.recv(100)
                assert b, got
                got += b
            assert got == b"hello\n", got
            c.close()
            s.stop()
        # Refused where it cannot apply, and when it is not permission bits.
        with TempDir() as d:
            text = toml([f'port = {free_port()}\nsocket_mode = "0660"\n'])
            path = write(d, "port.toml", text)
            expect_error(path, line_of(text, "socket_mode"), "socket_mode", "unix-socket")
            for bad in ('"0890"', '"4777"', "660"):
                text = toml([f'path = "x.sock"\nsocket_mode = {bad}\n'])
                path = write(d, "mode.toml", text)
                expect_error(path, line_of(text, "socket_mode"), "socket_mode", "octal string")
            text = ini([("u", "path = x.sock\nsocket_mode = 0640\n")])
            expect_ok(write(d, "mode.ini", text))
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_user_refused, test_check_length_framing, test_check_huge_table,
         test_check_bad_hosts, test_check_same_address, test_ini_long_lines, test_socket_mode])
