"""Certificate reload: srv starts with certificate A at fixed paths; the files are replaced on
disk by certificate B and `srv reload` makes new handshakes get B (SNI certificates too), while
a connection made before keeps working in process mode (connections live in the reactors);
then a broken key (garbage), and a key that does not match the certificate: `srv reload` exits
non-zero printing the problem, the error is logged, and B keeps serving. Process and base
mode."""
import os
import re
import shutil

from srvtest import run, running, wait_for
from test_http import each_mode
from test_reload import replace_file
from tlscerts import HTTPSConn, certs, served_cert, tls_server


def org(port, name="localhost"):
    return served_cert(port, name)["organizationName"]


@each_mode
def test_reload_swaps_certificates(mode):
    c = certs()
    s = tls_server(mode, "tlsreload", c, server={"worker_num": 2})
    cert, key = os.path.join(s.dir, "cert.pem"), os.path.join(s.dir, "key.pem")
    shutil.copyfile(c.server, cert)
    shutil.copyfile(c.server_key, key)
    sni_cert, sni_key = os.path.join(s.dir, "sni.pem"), os.path.join(s.dir, "sni.key")
    shutil.copyfile(c.second, sni_cert)
    shutil.copyfile(c.second_key, sni_key)
    s.listeners[0].update(ssl_cert_file=cert, ssl_key_file=key,
                          sni=[("second.test", sni_cert, sni_key)])
    s.write_config()
    with running(s):
        port = s.port()
        assert org(port) == "srv-test-A"
        assert served_cert(port, "second.test")["commonName"] == "second.test"
        old = HTTPSConn(port)
        old.request("GET", "/")
        assert old.getresponse().read() == b"Hello, World!"

        # B on disk, same paths; the SNI name now gets the wildcard certificate's files
        replace_file(cert, src=c.alt)
        replace_file(key, src=c.alt_key)
        replace_file(sni_cert, src=c.wild)
        replace_file(sni_key, src=c.wild_key)
        assert org(port) == "srv-test-A", "certificates changed before the reload"
        r = s.cmd("reload", timeout=60)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr, s.log()[-3000:])
        # every worker / reactor hands out B from now on
        wait_for(lambda: all(org(port) == "srv-test-B" for _ in range(8)), 10,
                 "certificate B on new handshakes")
        assert served_cert(port, "second.test")["commonName"] == "*.wild.test"
        if mode == "process":  # base mode: the connection's worker was replaced
            old.request("GET", "/")
            r1 = old.getresponse()
            assert r1.status == 200 and r1.read() == b"Hello, World!"
        old.close()

        # a broken key: refused, B keeps serving
        with open(c.server_key) as f:
            good_key = f.read()
        for what, data in (("garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                       b"-----END PRIVATE KEY-----\n"),
                           ("a key of another certificate", good_key.encode())):
            log_before = len(s.log())
            replace_file(key, data)
            r = s.cmd("reload", timeout=60)
            assert r.returncode != 0, (what, r.returncode, r.stdout, r.stderr)
            out = r.stdout + r.stderr
            assert re.search(r"key\.pem|cert\.pem|ssl_key_file|ssl_cert_file", out), (what, out)
            for _ in range(8):
                assert org(port) == "srv-test-B", what
            status = HTTPSConn(port)
            status.request("GET", "/")
            assert status.getresponse().read() == b"Hello, World!"
            status.close()
            wait_for(lambda: re.search(r"key\.pem|cert\.pem", s.log()[log_before:]), 10,
                     f"{what}: logged")
        # fixed again: the next reload goes through
        replace_file(key, src=c.alt_key)
        r = s.cmd("reload", timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr, s.log()[-3000:])
        assert org(port) == "srv-test-B"


if __name__ == "__main__":
    run([test_reload_swaps_certificates])
