"""``Kube.watch`` and ``guardian.clients.kube_watch`` over real HTTP, against a loopback server.

The lab's API server answers a too-old resourceVersion with an ERROR event (see
``tests/test_change_watch.py``); the HTTP 410 status, a stream held open and closed from
another thread, and a stream cut mid-way are served here by a small chunked-HTTP server.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from guardian.clients.kube import Kube
from guardian.clients.kube_watch import Gone
from guardian.errors import TransientKubernetesError

ADDED: dict[str, Any] = {
    "type": "ADDED",
    "object": {"metadata": {"name": "a", "resourceVersion": "7"}},
}
EXPIRED: dict[str, Any] = {
    "type": "ERROR",
    "object": {"kind": "Status", "code": 410, "message": "too old"},
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    release = threading.Event()

    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query)
        assert query["watch"] == ["true"]
        version = query["resourceVersion"][0]
        if version == "compacted":
            body = json.dumps({"kind": "Status", "code": 410, "message": "gone"}).encode()
            self.send_response(410)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk(ADDED)
        if version == "expired":
            self._chunk(EXPIRED)
            self.wfile.write(b"0\r\n\r\n")
        elif version == "hold":
            self.release.wait(20)
        self.close_connection = True  # "cut": without the last chunk

    def _chunk(self, doc: dict[str, Any]) -> None:
        line = json.dumps(doc).encode() + b"\n"
        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def kube() -> Iterator[Kube]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Kube.from_token(f"http://127.0.0.1:{server.server_address[1]}", "token", "")
    Handler.release.set()
    server.shutdown()


def test_an_http_410_is_gone_and_each_watch_takes_a_token(kube: Kube) -> None:
    granted = kube.bucket.granted
    with pytest.raises(Gone, match="HTTP 410 gone"):
        kube.watch("/apis/apps/v1/daemonsets", {"resourceVersion": "compacted"})
    assert kube.bucket.granted == granted + 1


def test_an_error_event_410_is_gone_after_the_events_before_it(kube: Kube) -> None:
    stream = kube.watch("/apis/apps/v1/daemonsets", {"resourceVersion": "expired"})
    seen: list[dict[str, Any]] = []
    with pytest.raises(Gone, match="410 too old"):
        seen.extend(stream)
    assert seen == [ADDED] and stream.closed


def test_a_stream_cut_mid_way_is_a_transient_error(kube: Kube) -> None:
    stream = kube.watch("/apis/apps/v1/daemonsets", {"resourceVersion": "cut"})
    with pytest.raises(TransientKubernetesError, match="stream broken"):
        list(stream)


def test_close_from_another_thread_ends_a_blocked_read_at_once(kube: Kube) -> None:
    stream = kube.watch("/apis/apps/v1/daemonsets", {"resourceVersion": "hold"})
    seen: list[object] = []
    reader = threading.Thread(target=lambda: seen.extend(stream))
    reader.start()
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    began = time.monotonic()
    stream.close()
    reader.join(5)
    assert not reader.is_alive() and time.monotonic() - began < 2
    assert seen == [ADDED]
