"""A loopback HTTP proxy in front of the real Prometheus that fails the first requests."""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from guardian.testing.prometheus import free_port


class FailingProxy:
    """Answers ``status`` to the first ``failures`` requests, then forwards to ``upstream``.

    With ``matching``, only requests whose decoded body or path contain that text fail (all
    of them, ``failures`` is ignored); ``payload`` is what a failed request gets back.
    """

    def __init__(
        self,
        upstream: str,
        failures: int,
        status: int = 503,
        matching: str | None = None,
        payload: bytes = b'{"status":"error","error":"injected"}',
    ) -> None:
        self.upstream = upstream
        self.failures = failures
        self.status = status
        self.matching = matching
        self.payload = payload
        self.requests = 0
        self.port = free_port()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._handle(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def do_GET(self) -> None:
                self._handle(None)

            def _handle(self, body: bytes | None) -> None:
                proxy.requests += 1
                if proxy.fails(self.path, body):
                    self._answer(proxy.status, proxy.payload)
                    return
                request = urllib.request.Request(
                    proxy.upstream + self.path, data=body, method=self.command
                )
                if self.headers.get("Content-Type"):
                    request.add_header("Content-Type", self.headers["Content-Type"])
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        self._answer(answer.status, answer.read())
                except urllib.error.HTTPError as exc:
                    self._answer(exc.code, exc.read())

            def _answer(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def fails(self, path: str, body: bytes | None) -> bool:
        """Whether this request gets the injected failure."""
        if self.matching is None:
            return self.requests <= self.failures
        text = urllib.parse.unquote_plus(path + "?" + (body or b"").decode("utf-8", "replace"))
        return self.matching in text

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FailingProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
