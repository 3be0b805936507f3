"""Fixtures for the data tests: an isolated home/cache and a local HTTP server.

Every test here runs with HOME and XDG_CACHE_HOME in a temporary directory,
TINYNET_DATA unset and TINYNET_OFFLINE set, so nothing reads the real cache
or reaches the network unless a test asks for the local server explicitly.
"""

import functools
import http.server
import threading

import pytest


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("TINYNET_DATA", raising=False)
    monkeypatch.setenv("TINYNET_OFFLINE", "1")
    return home


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def local_server():
    """``start(handler) -> base URL``: HTTP servers on 127.0.0.1, stopped after the test."""
    running = []

    def start(handler):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def http_dir(tmp_path, local_server):
    """(directory served, base URL) of a static file server for this test."""
    served = tmp_path / "served"
    served.mkdir()
    return served, local_server(functools.partial(_QuietHandler, directory=str(served)))
