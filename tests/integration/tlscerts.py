"""TLS fixtures for the test_tls_*.py scripts: certificates made at test time with the `openssl`
command in a temp folder (nothing secret is committed), a Server whose config can carry SNI
tables after a listener, and small clients (Python ssl, curl, openssl s_client) that all talk
to 127.0.0.1 / unix sockets only.

Certs(kind) makes, for kind "ec" (ECDSA P-256) or "rsa" (RSA 2048):
  ca                      the CA that signs every server certificate
  server / server_key     CN=localhost, SAN localhost, 127.0.0.1, ::1           (O=srv-test-A)
  alt / alt_key           the same names, another key and subject               (O=srv-test-B)
  second / second_key     CN=second.test, SAN second.test only (not localhost)
  wild / wild_key         CN=*.wild.test, SAN *.wild.test
  expired / expired_key   localhost, valid 2020-01-01 .. 2021-01-01
  soon / soon_key         localhost, expires in 7 days
  client_ca               a second CA, for client certificates only
  client / client_key     CN=test client, O=srv-test-client, signed by client_ca
  stranger / stranger_key a client certificate from a CA srv does not trust
"""
import atexit
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile

from srvtest import SLOW, Server

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
CA_CNF = """[ca]
default_ca = c
[c]
database = {db}/index.txt
new_certs_dir = {db}
serial = {db}/serial
default_md = sha256
policy = p
copy_extensions = copy
unique_subject = no
[p]
commonName = supplied
organizationName = optional
"""


def openssl(*args, cwd=None, input=None):
    r = subprocess.run([OPENSSL, *args], capture_output=True, text=True, cwd=cwd, input=input,
                       timeout=60 * SLOW)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} exited {r.returncode}: {r.stderr}")
    return r.stdout


class Certs:
    def __init__(self, kind="ec"):
        assert kind in ("ec", "rsa"), kind
        self.kind = kind
        self.dir = tempfile.mkdtemp(prefix=f"srvtest-certs-{kind}-")
        os.chmod(self.dir, 0o755)
        self.ca = self._ca("ca", "/O=srv-test/CN=srv test CA")
        self.client_ca = self._ca("client_ca", "/O=srv-test/CN=srv test client CA")
        self._ca("stranger_ca", "/O=srv-test/CN=a CA nobody trusts")
        local = "DNS:localhost,IP:127.0.0.1,IP:::1"
        self.server, self.server_key = self._leaf("server", "/O=srv-test-A/CN=localhost", local)
        self.alt, self.alt_key = self._leaf("alt", "/O=srv-test-B/CN=localhost", local)
        self.second, self.second_key = self._leaf("second", "/O=srv-test/CN=second.test",
                                                  "DNS:second.test")
        self.wild, self.wild_key = self._leaf("wild", "/O=srv-test/CN=*.wild.test",
                                              "DNS:*.wild.test")
        self.soon, self.soon_key = self._leaf("soon", "/O=srv-test/CN=soon.test",
                                              local, days=7)
        self.expired, self.expired_key = self._leaf(
            "expired", "/O=srv-test/CN=expired.test", local,
            dates=("20200101000000Z", "20210101000000Z"))
        self.client, self.client_key = self._leaf(
            "client", "/O=srv-test-client/CN=test client", None, ca="client_ca",
            usage="clientAuth")
        self.stranger, self.stranger_key = self._leaf(
            "stranger", "/O=srv-test/CN=stranger", None, ca="stranger_ca", usage="clientAuth")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _newkey(self, name):
        key = self.path(name + ".key")
        if self.kind == "ec":
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", key)
        else:
            openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", key)
        return key

    def _ca(self, name, subj):
        key = self._newkey(name)
        pem = self.path(name + ".pem")
        openssl("req", "-x509", "-new", "-key", key, "-out", pem, "-days", "30", "-subj", subj,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        db = self.path(name + ".db")
        os.makedirs(db)
        open(os.path.join(db, "index.txt"), "w").close()
        with open(os.path.join(db, "serial"), "w") as f:
            f.write("1000\n")
        with open(self.path(name + ".cnf"), "w") as f:
            f.write(CA_CNF.format(db=db))
        return pem

    def _leaf(self, name, subj, san, ca="ca", days=30, dates=None, usage="serverAuth"):
        key = self._newkey(name)
        csr = self.path(name + ".csr")
        ext = ["-addext", f"extendedKeyUsage={usage}"]
        if san:
            ext += ["-addext", f"subjectAltName={san}"]
        openssl("req", "-new", "-key", key, "-out", csr, "-subj", subj, *ext)
        pem = self.path(name + ".pem")
        when = (["-startdate", dates[0], "-enddate", dates[1]] if dates
                else ["-days", str(days)])
        openssl("ca", "-batch", "-notext", "-config", self.path(ca + ".cnf"), "-cert",
                self.path(ca + ".pem"), "-keyfile", self.path(ca + ".key"), "-in", csr,
                "-out", pem, *when)
        return pem, key

    def copy(self, folder, names):
        """Copy certificate/key files into folder; returns their new paths (same order)."""
        out = []
        for p in names:
            dst = os.path.join(folder, os.path.basename(p))
            shutil.copyfile(p, dst)
            out.append(dst)
        return out

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


_made = {}


def certs(kind="ec"):
    """One Certs per kind per test process, removed at exit."""
    if kind not in _made:
        _made[kind] = Certs(kind)
        atexit.register(_made[kind].cleanup)
    return _made[kind]


def subject_of(pem):
    return openssl("x509", "-in", pem, "-noout", "-subject", "-nameopt", "RFC2253").strip()


# ---------------------------------------------------------------- servers

def tls_keys(c, cert=None, key=None, **more):
    """The listener keys of a TLS listener with c's default server certificate."""
    d = {"ssl": True, "ssl_cert_file": cert or c.server, "ssl_key_file": key or c.server_key}
    d.update(more)
    return d


class TlsServer(Server):
    """A Server whose listeners may carry "sni": [(host, cert, key), ...], written as
    [[listen.sni]] tables right after their listener."""

    def write_config(self):
        lines = ["[server]"]
        lines += [f"{k} = {self._val(v)}" for k, v in self.server.items()]
        for l in self.listeners:
            lines.append("\n[[listen]]")
            lines += [f"{k} = {self._val(v)}" for k, v in l.items() if k != "sni"]
            for host, cert, key in l.get("sni", []):
                lines += ["[[listen.sni]]", f"host = {json.dumps(host)}",
                          f"ssl_cert_file = {json.dumps(cert)}",
                          f"ssl_key_file = {json.dumps(key)}"]
        lines.append(self.extra)
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")


def tls_server(mode, name, c=None, listeners=None, server=None, extra="", **keys):
    """One TLS HTTP listener (keys added to it) unless listeners are given."""
    c = c or certs()
    if listeners is None:
        listeners = [dict({"name": "https", "type": "http"}, **tls_keys(c, **keys))]
    opts = {"mode": mode}
    opts.update(server or {})
    s = TlsServer(listeners=listeners, server=opts, name=f"{name}-{mode}", extra=extra)
    for l in s.listeners:
        if l.get("path") == "@unix@":
            l["path"] = os.path.join(s.dir, l["name"] + ".sock")
    s.write_config()
    return s


# ---------------------------------------------------------------- clients

def client_ctx(c=None, cafile=None, cert=None, key=None, alpn=None, check_hostname=True,
               min_version=None, max_version=None):
    """A verifying client context trusting c's CA."""
    c = c or certs()
    ctx = ssl.create_default_context(cafile=cafile or c.ca)
    ctx.check_hostname = check_hostname
    if cert:
        ctx.load_cert_chain(cert, key)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def tls_socket(port=None, ctx=None, server_hostname="localhost", path=None, timeout=10):
    """A connected, handshaken ssl socket to 127.0.0.1:port (or a unix socket path)."""
    ctx = ctx or client_ctx()
    if path:
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.settimeout(timeout * SLOW)
        raw.connect(path)
    else:
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_hostname)
    except Exception:
        raw.close()
        raise


class HTTPSConn(http.client.HTTPSConnection):
    """http.client over TLS to 127.0.0.1 (or a unix socket) with a chosen SNI name."""

    def __init__(self, port=None, ctx=None, server_hostname="localhost", path=None, timeout=10):
        super().__init__("127.0.0.1", port or 443, timeout=timeout * SLOW,
                         context=ctx or client_ctx())
        self._sni = server_hostname
        self._path = path

    def connect(self):
        self.sock = tls_socket(self.port, self._context, self._sni, self._path, self.timeout)


def https_get(port, path="/", ctx=None, server_hostname="localhost", method="GET", body=None,
              headers=None, unix=None):
    c = HTTPSConn(port, ctx, server_hostname, unix)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def tls_info(port, ctx=None, server_hostname="localhost", unix=None):
    """The demo's /tls JSON over a new TLS connection."""
    status, _, body = https_get(port, "/tls", ctx, server_hostname, unix=unix)
    assert status == 200, (status, body)
    return json.loads(body)


def served_cert(port, server_hostname=None, c=None):
    """(subject dict, the socket's ALPN) of the certificate srv presents for that SNI name
    (None: no SNI at all)."""
    ctx = client_ctx(c, check_hostname=False)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
    with ctx.wrap_socket(raw, server_hostname=server_hostname) as t:
        cert = t.getpeercert()
        return {k: v for rdn in cert["subject"] for k, v in rdn}


def curl(*args, timeout=30):
    r = subprocess.run(["curl", "-sS", "--max-time", str(int(timeout * SLOW)), *args],
                       capture_output=True, timeout=timeout * SLOW + 10)
    return r


def curl_https(port, path="/", c=None, *args, host="localhost", timeout=30):
    """curl https://host:port/path with host resolved to 127.0.0.1, trusting c's CA."""
    c = c or certs()
    return curl("--cacert", c.ca, "--resolve", f"{host}:{port}:127.0.0.1", *args,
                f"https://{host}:{port}{path}", timeout=timeout)


def s_client(port, *args, input=b"", servername="localhost", c=None, timeout=20):
    """openssl s_client to 127.0.0.1:port; returns (exit code, stdout+stderr text)."""
    c = c or certs()
    cmd = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", c.ca]
    if servername:
        cmd += ["-servername", servername]
    else:
        cmd += ["-noservername"]
    r = subprocess.run(cmd + list(args), input=input, capture_output=True,
                       timeout=timeout * SLOW)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")
