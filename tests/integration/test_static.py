"""Static files from a listener's document_root: bodies (sendfile, large files), Content-Type,
Last-Modified / If-Modified-Since, Range, HEAD, index.html for directories, 403 for escapes
(.., encoded dots, symlinks out of the root) and for directories without an index, and anything
that is not a file under the root goes to the app. Runs in process and base mode."""
import email.utils
import os
import shutil
import socket
import tempfile
import time

from srvtest import run, running
from test_http import RawConn, curl, each_mode, server

MTIME = 1577934245  # Thu, 02 Jan 2020 03:04:05 GMT
SECRET = b"TOP SECRET outside the root\n"


class Tree:
    def __init__(self):
        self.top = tempfile.mkdtemp(prefix="srvtest-static-")
        self.root = os.path.join(self.top, "www")
        os.makedirs(os.path.join(self.root, "sub"))
        os.makedirs(os.path.join(self.root, "empty"))
        os.makedirs(os.path.join(self.top, "outside"))
        self.files = {
            "index.html": b"<h1>root index</h1>\n",
            "hello.txt": b"hello, static world\n",
            "style.css": b"body { color: red }\n",
            "app.js": b"console.log(1);\n",
            "data.json": b'{"a": 1}\n',
            "img.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
            "sub/index.html": b"<p>sub index</p>\n",
            "sub/page.html": b"<p>page</p>\n",
            "big.bin": os.urandom(1 << 20),
            "huge.bin": os.urandom(5 << 20),
        }
        for name, data in self.files.items():
            p = os.path.join(self.root, name)
            with open(p, "wb") as f:
                f.write(data)
            os.utime(p, (MTIME, MTIME))
        for p in [os.path.join(self.top, "secret.txt"),
                  os.path.join(self.top, "outside", "secret.txt")]:
            with open(p, "wb") as f:
                f.write(SECRET)
        os.symlink("hello.txt", os.path.join(self.root, "link_in.txt"))
        os.symlink(os.path.join(self.top, "secret.txt"), os.path.join(self.root, "link_out.txt"))
        os.symlink("../secret.txt", os.path.join(self.root, "rel_out.txt"))
        os.symlink(os.path.join(self.top, "outside"), os.path.join(self.root, "dir_out"))

    def cleanup(self):
        shutil.rmtree(self.top, ignore_errors=True)


def static_server(mode, tree):
    return server(mode, "static", listeners=[{"name": "web", "type": "http",
                                              "document_root": tree.root}])


def with_tree(fn):
    def wrapper(mode):
        tree = Tree()
        try:
            with running(static_server(mode, tree)) as s:
                fn(s, tree)
        finally:
            tree.cleanup()
    wrapper.__name__ = fn.__name__
    return each_mode(wrapper)


@with_tree
def test_files_and_content_types(s, tree):
    types = {"hello.txt": "text/plain", "style.css": "text/css", "data.json": "application/json",
             "img.png": "image/png", "index.html": "text/html", "sub/page.html": "text/html",
             "big.bin": "application/octet-stream"}
    with RawConn(s.port()) as c:
        for name, ctype in types.items():
            r = c.request("GET", "/" + name)
            assert r.status == 200, (name, r)
            assert r.body == tree.files[name], name
            assert r.h("content-length") == str(len(tree.files[name])), (name, r)
            assert r.h("content-type", "").split(";")[0].strip() == ctype, (name, r)
        r = c.request("GET", "/app.js")
        assert r.status == 200 and r.body == tree.files["app.js"]
        assert r.h("content-type", "").split(";")[0] in ("application/javascript",
                                                         "text/javascript"), r
        # a query string does not change the file
        r = c.request("GET", "/hello.txt?v=3&x=y")
        assert r.status == 200 and r.body == tree.files["hello.txt"], r
        # percent-encoded names are decoded
        r = c.request("GET", "/hell%6F.txt")
        assert r.status == 200 and r.body == tree.files["hello.txt"], r
        # a symlink that stays inside the root is fine
        r = c.request("GET", "/link_in.txt")
        assert r.status in (200, 403), r
        if r.status == 200:
            assert r.body == tree.files["hello.txt"]
        # large files (sendfile) arrive whole, several on one keep-alive connection
        for _ in range(2):
            r = c.request("GET", "/big.bin")
            assert r.status == 200 and r.body == tree.files["big.bin"]
        r = c.request("GET", "/huge.bin")
        assert r.status == 200 and r.body == tree.files["huge.bin"], (r.status, len(r.body))
        r = c.request("GET", "/hello.txt")
        assert r.status == 200 and r.body == tree.files["hello.txt"]
        assert r.h("server") and r.h("date")
    r = curl(f"http://127.0.0.1:{s.port()}/huge.bin")
    assert r.returncode == 0 and r.stdout == tree.files["huge.bin"], r.stderr


@with_tree
def test_static_http10_and_close(s, tree):
    with RawConn(s.port(), timeout=30) as c:
        r = c.request("GET", "/big.bin", version="HTTP/1.0")
        assert r.status == 200 and r.body == tree.files["big.bin"], (r.status, len(r.body))
        assert c.closed_by_peer(5)
    with RawConn(s.port(), timeout=30) as c:
        r = c.request("GET", "/hello.txt", {"Connection": "close"})
        assert r.status == 200 and r.body == tree.files["hello.txt"], r
        assert c.closed_by_peer(5) and c.buf == b""
    # pipelined static and dynamic requests keep their order
    with RawConn(s.port(), timeout=30) as c:
        names = ["/hello.txt", "/worker", "/big.bin", "/nope", "/style.css", "/sub/"]
        c.send(b"".join(f"GET {n} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for n in names))
        got = [c.read_response() for _ in names]
        assert got[0].body == tree.files["hello.txt"]
        assert got[1].body.startswith(b'{"id":')
        assert got[2].body == tree.files["big.bin"]
        assert got[3].status == 404
        assert got[4].body == tree.files["style.css"]
        assert got[5].body == tree.files["sub/index.html"]


@with_tree
def test_slow_reader_large_file(s, tree):
    # a file is not buffered in memory: a client that does not read for a while still gets it all
    with RawConn(s.port(), timeout=30) as c:
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        c.send(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(1.5)  # deliberately a slow reader, not synchronisation
        r = c.read_response()
        assert r.status == 200 and r.body == tree.files["huge.bin"], (r.status, len(r.body))
        r = c.read_response()
        assert r.status == 200 and r.body == tree.files["hello.txt"], r


@with_tree
def test_head_static(s, tree):
    with RawConn(s.port()) as c:
        r = c.request("HEAD", "/big.bin")
        assert r.status == 200 and r.h("content-length") == str(1 << 20), r
        r = c.request("GET", "/hello.txt")
        assert r.status == 200 and r.body == tree.files["hello.txt"], r


@with_tree
def test_last_modified(s, tree):
    lm_expected = email.utils.formatdate(MTIME, usegmt=True)
    with RawConn(s.port()) as c:
        r = c.request("GET", "/hello.txt")
        assert r.h("last-modified") == lm_expected, (r, lm_expected)
        later = email.utils.formatdate(MTIME + 3600, usegmt=True)
        earlier = email.utils.formatdate(MTIME - 3600, usegmt=True)
        for ims, status in [(lm_expected, 304), (later, 304), (earlier, 200)]:
            r = c.request("GET", "/hello.txt", {"If-Modified-Since": ims})
            assert r.status == status, (ims, r)
            if status == 304:
                assert r.body == b""
            else:
                assert r.body == tree.files["hello.txt"]
        # the connection is still in sync after a 304 (no stray body bytes)
        r = c.request("GET", "/sub/page.html")
        assert r.status == 200 and r.body == tree.files["sub/page.html"], r
        # a garbage date is ignored
        r = c.request("GET", "/hello.txt", {"If-Modified-Since": "not a date"})
        assert r.status == 200 and r.body == tree.files["hello.txt"], r
    # touching the file moves Last-Modified
    os.utime(os.path.join(tree.root, "hello.txt"), (MTIME + 86400, MTIME + 86400))
    with RawConn(s.port()) as c:
        r = c.request("GET", "/hello.txt", {"If-Modified-Since": lm_expected})
        assert r.status == 200 and r.body == tree.files["hello.txt"], r
        assert r.h("last-modified") == email.utils.formatdate(MTIME + 86400, usegmt=True)


@with_tree
def test_range(s, tree):
    data = tree.files["big.bin"]
    n = len(data)
    with RawConn(s.port()) as c:
        for rng, lo, hi in [("bytes=0-9", 0, 9), ("bytes=100-199", 100, 199),
                            ("bytes=-10", n - 10, n - 1), (f"bytes={n - 5}-", n - 5, n - 1),
                            (f"bytes=10-{n + 100}", 10, n - 1), ("bytes=0-0", 0, 0)]:
            r = c.request("GET", "/big.bin", {"Range": rng})
            assert r.status == 206, (rng, r)
            assert r.h("content-range") == f"bytes {lo}-{hi}/{n}", (rng, r)
            assert r.h("content-length") == str(hi - lo + 1), (rng, r)
            assert r.body == data[lo:hi + 1], rng
        r = c.request("GET", "/big.bin", {"Range": f"bytes={n}-"})
        assert r.status == 416, r
        assert r.h("content-range") == f"bytes */{n}", r
        # the connection is still in sync
        r = c.request("GET", "/hello.txt")
        assert r.status == 200 and r.body == tree.files["hello.txt"], r
        # a Range header that is not bytes= is ignored: whole file
        r = c.request("GET", "/hello.txt", {"Range": "lines=1-2"})
        assert r.status == 200 and r.body == tree.files["hello.txt"], r
    r = curl("--range", "1000-1999", f"http://127.0.0.1:{s.port()}/big.bin")
    assert r.returncode == 0 and r.stdout == data[1000:2000], r.stderr


@with_tree
def test_no_escape_from_root(s, tree):
    paths = ["/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt",
             "/%2E%2E/secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt", "/.%2e/secret.txt",
             "/..%2fsecret.txt", "/sub/..%2F..%2Fsecret.txt", "/link_out.txt", "/rel_out.txt",
             "/dir_out/secret.txt"]
    for p in paths:
        with RawConn(s.port()) as c:
            c.send(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            r = c.read_response()
            assert SECRET not in r.body, (p, r)
            assert r.status == 403, (p, r)
    # a NUL byte must not truncate the name (hello.txt served as .html)
    with RawConn(s.port()) as c:
        c.send(b"GET /hello.txt%00.html HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status in (400, 403, 404) and r.body != tree.files["hello.txt"], r
    r = curl("--path-as-is", f"http://127.0.0.1:{s.port()}/../../secret.txt")
    assert SECRET not in r.stdout, r.stdout


@with_tree
def test_directories(s, tree):
    with RawConn(s.port()) as c:
        r = c.request("GET", "/sub/")
        assert r.status == 200 and r.body == tree.files["sub/index.html"], r
        assert r.h("content-type", "").startswith("text/html"), r
        r = c.request("GET", "/sub")
        if r.status in (301, 302, 307, 308):
            assert r.h("location", "").endswith("/sub/"), r
        else:
            assert r.status == 200 and r.body == tree.files["sub/index.html"], r
        r = c.request("GET", "/empty/")
        assert r.status == 403, r
        r = c.request("GET", "/")
        assert r.status == 200 and r.body == tree.files["index.html"], r


@with_tree
def test_dynamic_falls_through_to_app(s, tree):
    with RawConn(s.port()) as c:
        r = c.request("GET", "/worker")
        assert r.status == 200 and r.body.startswith(b'{"id":'), r
        r = c.request("GET", "/no/such/file.txt")
        assert r.status == 404 and r.body == b"not found\n", r
        r = c.request("POST", "/echo", body=b"dyn")
        assert r.status == 200 and r.body == b"dyn", r
        r = c.request("GET", "/sub/missing.html")
        assert r.status == 404 and r.body == b"not found\n", r
        r = c.request("GET", "/hello.txt")
        assert r.status == 200 and r.body == tree.files["hello.txt"], r
    # a listener without document_root never serves files
    with running(server("process", "nostatic")) as s2:
        with RawConn(s2.port()) as c:
            r = c.request("GET", "/hello.txt")
            assert r.status == 404 and r.body == b"not found\n", r


if __name__ == "__main__":
    run([test_files_and_content_types, test_static_http10_and_close,
         test_slow_reader_large_file, test_head_static, test_last_modified, test_range,
         test_no_escape_from_root, test_directories, test_dynamic_falls_through_to_app])
