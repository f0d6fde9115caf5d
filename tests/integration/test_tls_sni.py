"""SNI: extra certificates per host name on one TLS listener, from TOML ([[listen.sni]] after the
listener) and INI ([listen.NAME.sni.HOST]). An exact name gets its certificate (curl --resolve
verifies it), a wildcard "*.wild.test" matches a.wild.test but not wild.test,
and an unknown name or no SNI at all gets the listener's default; /tls reports the name asked
for. Process and base mode."""
import json
import os

from srvtest import free_port, run, running
from test_http import each_mode
from tlscerts import (TlsServer, certs, client_ctx, curl_https, served_cert, tls_info, tls_keys,
                      tls_server)


def sni_server(mode, name, c):
    l = dict({"name": "https", "type": "http"}, **tls_keys(c))
    l["sni"] = [("second.test", c.second, c.second_key), ("*.wild.test", c.wild, c.wild_key)]
    return tls_server(mode, name, c, listeners=[l])


def check_sni(s, c):
    port = s.port()
    assert served_cert(port, "second.test", c)["commonName"] == "second.test"
    assert served_cert(port, "a.wild.test", c)["commonName"] == "*.wild.test"
    assert served_cert(port, "zz-9.wild.test", c)["commonName"] == "*.wild.test"
    for default in ("localhost", "unknown.test", "wild.test", None):
        subj = served_cert(port, default, c)
        assert subj["commonName"] == "localhost" and subj["organizationName"] == "srv-test-A", \
            (default, subj)
    # real clients verify the name against the certificate they got
    for host in ("second.test", "a.wild.test", "localhost"):
        r = curl_https(port, "/tls", c, host=host)
        assert r.returncode == 0, (host, r.stderr)
        info = json.loads(r.stdout)
        assert info["sni"] == host and info["tls"] is True, (host, info)
    # a name with no certificate of its own: the default one, which does not match it
    r = curl_https(port, "/", c, host="unknown.test")
    assert r.returncode != 0 and b"Hello" not in r.stdout, r
    r = curl_https(port, "/", c, "-k", host="unknown.test")
    assert r.returncode == 0 and r.stdout == b"Hello, World!", r
    # Python: SNI from server_hostname; none for an IP address
    assert tls_info(port, client_ctx(c), server_hostname="second.test")["sni"] == "second.test"
    info = tls_info(port, client_ctx(c, check_hostname=False), server_hostname=None)
    assert info["sni"] == "" and info["tls"] is True, info


@each_mode
def test_sni_toml(mode):
    c = certs()
    with running(sni_server(mode, "sni", c)) as s:
        check_sni(s, c)


def test_sni_rsa():
    c = certs("rsa")
    with running(sni_server("process", "sni-rsa", c)) as s:
        check_sni(s, c)


def test_sni_ini():
    c = certs()
    s = TlsServer(listeners=[], server={"mode": "base"}, name="sni-ini")
    port = free_port()
    ini = os.path.join(s.dir, "srv.ini")
    with open(ini, "w") as f:
        f.write("[server]\n" + "".join(f"{k} = {v}\n" for k, v in s.server.items()) +
                f"\n[listen.https]\ntype = http\nhost = 127.0.0.1\nport = {port}\nssl = true\n"
                f"ssl_cert_file = {c.server}\nssl_key_file = {c.server_key}\n"
                f"\n[listen.https.sni.second.test]\nssl_cert_file = {c.second}\n"
                f"ssl_key_file = {c.second_key}\n"
                f"\n[listen.https.sni.*.wild.test]\nssl_cert_file = {c.wild}\n"
                f"ssl_key_file = {c.wild_key}\n")
    s.config = ini
    s.listeners = [{"name": "https", "type": "http", "port": port}]
    r = s.cmd("check")
    assert r.returncode == 0, (r.returncode, r.stderr)
    with running(s) as s:
        check_sni(s, c)


def test_sni_entry_check():
    """An SNI entry with a missing file is refused like the listener's own keys."""
    c = certs()
    l = dict({"name": "https", "type": "http"}, **tls_keys(c))
    l["sni"] = [("second.test", c.second, c.path("missing.key"))]
    s = tls_server("process", "sni-bad", c, listeners=[l])
    try:
        r = s.cmd("check")
        assert r.returncode == 3, (r.returncode, r.stderr)
        assert "ssl_key_file" in r.stderr and "missing.key" in r.stderr, r.stderr
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_sni_toml, test_sni_rsa, test_sni_ini, test_sni_entry_check])
