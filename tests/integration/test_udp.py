"""UDP listeners beside HTTP: the demo echoes every datagram to its sender (on_packet +
srv_sendto), on IPv4, IPv6 and unix datagram sockets, in process and base modes. Loopback does
not drop datagrams that fit the socket buffers, so every one must come back, whole."""
import os
import socket
import subprocess
import tempfile

from srvtest import UNIX, SLOW, SockClient, free_port, listener, run, running, typed_server

def udp_server(mode, name, listeners, server=None):
    return typed_server("udp", mode, name, listeners, server)


class Client(SockClient):
    def __init__(self, s, name):
        l = listener(s, name)
        self.tmp = None
        if "path" in l:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            # a unix datagram client needs an address of its own to get an answer
            self.tmp = tempfile.mkdtemp(prefix="srvtest-udpc-")
            self.sock.bind(os.path.join(self.tmp, "c.sock"))
            self.addr = l["path"]
        elif ":" in l.get("host", ""):
            self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            self.addr = (l["host"], l["port"])
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addr = (l.get("host", "127.0.0.1"), l["port"])
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.settimeout(10 * SLOW)

    def send(self, data):
        self.sock.sendto(data, self.addr)

    def recv(self):
        data, peer = self.sock.recvfrom(70000)
        return data, peer

    def close(self):
        self.sock.close()
        if self.tmp:
            for f in os.listdir(self.tmp):
                os.unlink(os.path.join(self.tmp, f))
            os.rmdir(self.tmp)


def payload(i, n):
    return bytes((i * 13 + j) & 0xFF for j in range(n))


def check_echo(s, name, max_size):
    with Client(s, name) as c:
        for i, n in enumerate([1, 2, 100, 1400, 1500, 9000, max_size]):
            d = payload(i, n)
            c.send(d)
            got, peer = c.recv()
            assert got == d, f"{name}: {n}-byte datagram came back as {len(got)} bytes"
            if isinstance(c.addr, tuple):
                assert peer[:2] == c.addr[:2], (peer, c.addr)  # from the listener's address
            else:
                assert peer == c.addr, (peer, c.addr)
        # bursts: every datagram back, each whole (order is not promised for UDP). A unix
        # datagram client's queue holds net.unix.max_dgram_qlen (10) datagrams: past that the
        # server's reply would find it full, so bursts there stay under it.
        window = 8 if isinstance(c.addr, str) else 100
        for start in range(0, 100, window):
            sent = {payload(1000 + i, 200 + i) for i in range(start, min(100, start + window))}
            for d in sent:
                c.send(d)
            got = set()
            try:
                for _ in range(len(sent)):
                    got.add(c.recv()[0])
            except socket.timeout:
                pass
            assert got == sent, f"{name}: {len(sent - got)} of {len(sent)} datagrams lost"
    # two clients at once each get their own answers
    with Client(s, name) as a, Client(s, name) as b:
        a.send(b"from a")
        b.send(b"from b")
        assert a.recv()[0] == b"from a"
        assert b.recv()[0] == b"from b"


LISTENERS = [("udp4", {}), ("udp6", {"host": "::1"}), ("udpu", {"path": UNIX})]


def check_all(mode):
    with running(udp_server(mode, "udp", LISTENERS)) as s:
        check_echo(s, "udp4", 65507)
        check_echo(s, "udp6", 65527)
        check_echo(s, "udpu", 65000)
        assert s.get("/")[0] == 200


def test_udp_process():
    check_all("process")


def test_udp_base():
    check_all("base")


def test_udp_empty_datagram():
    """A zero-length datagram is a datagram: it is echoed (as zero bytes) and nothing breaks."""
    with running(udp_server("process", "udp0", [("udp4", {})])) as s:
        with Client(s, "udp4") as c:
            c.send(b"")
            got, _ = c.recv()
            assert got == b"", got
            c.send(b"after")
            assert c.recv()[0] == b"after"


def test_udp_beside_tcp():
    """UDP and TCP listeners on the same port number are different sockets."""
    port = free_port()  # free for TCP and UDP alike
    srv = udp_server("process", "udptcp", [("udp4", {"port": port})])
    srv.listeners.append({"name": "lines", "type": "tcp", "handler": "lines", "port": port,
                          "host": "127.0.0.1", "open_eof_check": True, "open_eof_split": True,
                          "package_eof": "\r\n"})
    srv.write_config()
    with running(srv) as s:
        with Client(s, "udp4") as c:
            c.send(b"dgram")
            assert c.recv()[0] == b"dgram"
        t = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
        try:
            t.sendall(b"stream\r\n")
            got = b""
            while len(got) < 8:
                b = t.recv(100)
                assert b, got
                got += b
            assert got == b"stream\r\n", got
        finally:
            t.close()


def test_netcat_udp():
    """netcat as a UDP client: one datagram out, the same one back (nc exits once idle for 2 s)."""
    with running(udp_server("process", "udpnc", LISTENERS[:2])) as s:
        for name, host in (("udp4", "127.0.0.1"), ("udp6", "::1")):
            port = str(listener(s, name)["port"])
            r = subprocess.run(["nc", "-u", "-w", str(int(2 * SLOW)), host, port],
                               input=b"ping over udp\n", capture_output=True,
                               timeout=20 * SLOW)
            assert r.stdout == b"ping over udp\n", (name, r.returncode, r.stdout, r.stderr)


if __name__ == "__main__":
    run([test_udp_process, test_udp_base, test_udp_empty_datagram, test_udp_beside_tcp,
         test_netcat_udp])
