"""Smoke: the demo answers in both modes and stops cleanly."""
from srvtest import Server, run, running


def test_process_mode_hello():
    with running(Server(name="smoke")) as s:
        status, headers, body = s.get("/")
        assert status == 200 and body == b"Hello, World!", (status, body)
        assert headers["content-type"] == "text/plain"
        s.stop()


def test_base_mode_hello():
    with running(Server(name="smoke-base", server={"mode": "base"})) as s:
        status, _, body = s.get("/")
        assert status == 200 and body == b"Hello, World!", (status, body)
        s.stop()


if __name__ == "__main__":
    run([test_process_mode_hello, test_base_mode_hello])
