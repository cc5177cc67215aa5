"""Misbehaving HTTP servers on loopback: a proxy in front of the real Prometheus that fails
requests, and a server that answers every query with a chosen odd answer (a bad body, a
trickle of one byte a second, silence, a redirect)."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self

from guardian.testing.prometheus import free_port
from tests.traffic import ratio_slo


class _Served:
    """A loopback HTTP server on its own thread while the ``with`` block runs."""

    port: int
    _server: ThreadingHTTPServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
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


def odd_config(
    directory: Path, url: str, timeout: str = "5s", extra: str = "", name: str = "x"
) -> Path:
    """A config of one ratio SLO ``name`` read from ``url`` with that query ``timeout``;
    ``extra`` adds top-level sections (``daemon: {interval: 2s}\n``)."""
    path = directory / "guardian.yaml"
    slo = ratio_slo(name, f'job="{name}"', 99.9, "google-30d")
    path.write_text(
        f"version: guardian/v1\nprometheus: {{url: '{url}', timeout: {timeout}}}\n{extra}"
        f"slos:{slo}\n",
        encoding="utf-8",
    )
    return path


class FailingProxy(_Served):
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


@dataclass(frozen=True)
class Answer:
    """What ``OddPrometheus`` sends back to one request."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    trickle: float = 0.0
    """Seconds between body bytes (after the headers); 0 sends the body at once."""
    hang: bool = False
    """Read the request, then never answer."""
    repeat: int = 1
    """Send the body this many times."""
    declare_length: bool = True
    """Send Content-Length; without it the body ends when the connection closes."""


class OddPrometheus(_Served):
    """A real HTTP server on 127.0.0.1 that answers each query with ``answer(promql)``."""

    def __init__(self, answer: Answer | Callable[[str], Answer]) -> None:
        self.answer = answer if callable(answer) else (lambda _: answer)
        self.queries: list[str] = []
        self.port = free_port()
        self._stop = threading.Event()
        odd = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                query = urllib.parse.urlsplit(self.path).query
                form = urllib.parse.parse_qs(query + "&" + raw.decode("utf-8", "replace"))
                promql = form.get("query", [""])[0]
                odd.queries.append(promql)
                self._send(odd.answer(promql))

            def do_GET(self) -> None:
                self.do_POST()

            def _send(self, answer: Answer) -> None:
                if answer.hang:
                    odd._stop.wait()
                    return
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                for name, value in answer.headers:
                    self.send_header(name, value)
                if answer.declare_length:
                    self.send_header("Content-Length", str(len(answer.body) * answer.repeat))
                self.end_headers()
                try:
                    for _ in range(answer.repeat):
                        self._write(answer)
                except OSError:
                    return  # the client hung up, as it should when it gives up

            def _write(self, answer: Answer) -> None:
                if not answer.trickle:
                    self.wfile.write(answer.body)
                    return
                for index in range(len(answer.body)):
                    if odd._stop.wait(answer.trickle):
                        return
                    self.wfile.write(answer.body[index : index + 1])
                    self.wfile.flush()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        super().__exit__(exc_type, exc, tb)


def elapsed(since: float) -> float:
    """Seconds on the monotonic clock since ``since``."""
    return time.monotonic() - since
