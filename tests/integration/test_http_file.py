"""srv_response_file from the app (demo GET /file?name=): the body is the file, with its length,
a Content-Type from the name, HEAD without a body, and a clean 404 when it does not exist; in
process mode (the reactor sends the file) and base mode."""
import os

from srvtest import Server, run, running
from test_http import each_mode

DIR = "/tmp/srv-demo-files"


@each_mode
def test_response_file(mode):
    os.makedirs(DIR, exist_ok=True)
    name = f"f-{os.getpid()}-{mode}.txt"
    data = bytes(range(256)) * 4096 + b"end"  # 1 MiB + 3: several sendfile rounds
    with open(os.path.join(DIR, name), "wb") as f:
        f.write(data)
    try:
        with running(Server(name="file", server={"mode": mode})) as s:
            status, headers, body = s.get(f"/file?name={name}")
            assert status == 200, (status, body[:100])
            assert body == data, (len(body), len(data))
            assert headers["content-length"] == str(len(data))
            assert headers["content-type"].startswith("text/plain"), headers
            status, headers, body = s.get(f"/file?name={name}", method="HEAD")
            assert status == 200 and body == b"" and headers["content-length"] == str(len(data))
            status, _, body = s.get("/file?name=missing-file")
            assert status == 404 and b"No such file" in body, (status, body)
            # the connection machinery is fine afterwards
            assert s.get("/")[0] == 200
            s.stop()
    finally:
        os.unlink(os.path.join(DIR, name))
        try:
            os.rmdir(DIR)
        except OSError:
            pass


if __name__ == "__main__":
    run([test_response_file])
