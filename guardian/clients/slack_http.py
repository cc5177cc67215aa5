"""The HTTP endpoint in front of bolt: WSGI requests in, refusals or bolt's answers out.

Input: WSGI requests to ``POST /slack/events`` (Slack's slash commands and button presses, in
HTTP mode) and the signing secret. Output: a one-line refusal, or the request handed on to
bolt. A body over ``MAX_BODY`` is refused unread (413), a missing or malformed signature or
timestamp, a bad signature or a timestamp more than ``MAX_SKEW`` (5 minutes) off gets 401, and
a body that is neither a slash command nor a button payload gets 400; each refusal is one log
line. ``serve_wsgi`` runs such an endpoint on a threaded WSGI server. Called by
``guardian.clients.slack`` (``SlackApp.wsgi`` and ``SlackApp.start``); ``serve_wsgi`` also by
``guardian.app.daemon.run`` (the HTTP port: health, metrics, and Slack in HTTP mode).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

log = logging.getLogger("guardian.clients.slack_http")

MAX_BODY = 64 * 1024
"""Bytes of a request body guardian reads; Slack's commands and button payloads are far
smaller."""
MAX_SKEW = 5 * 60
"""Seconds a request's timestamp may be from now (Slack's replay window)."""

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class SlackEndpoint:
    """``POST /slack/events`` in front of bolt: size, signature, timestamp and shape checked
    first, each refusal one log line and a one-line answer; what passes goes to bolt."""

    def __init__(
        self,
        bolt: Callable[..., Iterable[bytes]],
        signing_secret: str,
        path: str = "/slack/events",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bolt = bolt
        self.secret = signing_secret.encode()
        self.path = path
        self.clock = clock

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry point."""
        body = b""
        problem = self._route(environ)
        if problem is None:
            problem, body = self._read(environ)
        if problem is None:
            problem = self._verify(environ, body) or _shape(environ, body)
        if problem is not None:
            status, reason = problem
            log.warning("slack: refused a request to %s: %s", self.path, reason)
            data = (reason + "\n").encode()
            start_response(
                status,
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))],
            )
            return [data]
        environ["wsgi.input"] = _Body(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self.bolt(environ, start_response)

    def _route(self, environ: dict[str, Any]) -> tuple[str, str] | None:
        if environ.get("PATH_INFO") != self.path:
            return "404 Not Found", f"no such path; Slack posts to {self.path}"
        if environ.get("REQUEST_METHOD") != "POST":
            return "405 Method Not Allowed", f"{self.path} takes POST only"
        return None

    def _read(self, environ: dict[str, Any]) -> tuple[tuple[str, str] | None, bytes]:
        given = str(environ.get("CONTENT_LENGTH") or "")
        if not (given.isascii() and given.isdigit() and len(given) <= 12):
            return ("411 Length Required", "a request without a decimal Content-Length"), b""
        length = int(given)
        if length > MAX_BODY:
            return (
                "413 Content Too Large",
                f"request body of {length} bytes; at most {MAX_BODY}",
            ), b""
        body = environ["wsgi.input"].read(length) if length else b""
        if len(body) != length:
            return ("400 Bad Request", "the request body ended before Content-Length"), b""
        return None, body

    def _verify(self, environ: dict[str, Any], body: bytes) -> tuple[str, str] | None:
        stamp = str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP") or "")
        signature = str(environ.get("HTTP_X_SLACK_SIGNATURE") or "")
        if not stamp or not signature:
            return "401 Unauthorized", "no X-Slack-Signature or X-Slack-Request-Timestamp header"
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            return "401 Unauthorized", "X-Slack-Request-Timestamp is not a Unix time in seconds"
        if abs(self.clock() - int(stamp)) > MAX_SKEW:
            return "401 Unauthorized", "X-Slack-Request-Timestamp is more than 5 minutes off"
        digest = hmac.new(self.secret, b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
        expected = ("v0=" + digest.hexdigest()).encode()
        if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
            return "401 Unauthorized", "X-Slack-Signature does not match the body"
        return None


def _shape(environ: dict[str, Any], body: bytes) -> tuple[str, str] | None:
    """Why a signed body is not a slash command or a button payload (None if it is one)."""
    kind = str(environ.get("CONTENT_TYPE") or "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        return (
            "400 Bad Request",
            f"Content-Type {kind[:60] or 'missing'}; guardian takes slash commands and "
            "button presses (application/x-www-form-urlencoded)",
        )
    try:
        form = urllib.parse.parse_qs(body.decode("utf-8"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return "400 Bad Request", "the body is not a UTF-8 form"
    if "payload" in form:
        return _payload_problem(form["payload"][0])
    if "command" in form:
        missing = [k for k in ("user_id", "channel_id") if not form.get(k)]
        if missing:
            return "400 Bad Request", f"a slash command without {', '.join(missing)}"
        return None
    return "400 Bad Request", "neither a slash command (command=) nor a payload (payload=)"


def _payload_problem(text: str) -> tuple[str, str] | None:
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        return "400 Bad Request", "payload is not JSON (or nests too deep)"
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return "400 Bad Request", "payload is not a block_actions payload"
    actions = payload.get("actions")
    user = payload.get("user")
    if (
        not isinstance(actions, list)
        or not actions
        or not isinstance(actions[0], dict)
        or not isinstance(actions[0].get("action_id"), str)
        or not isinstance(actions[0].get("value", ""), str)
        or not isinstance(user, dict)
        or not isinstance(user.get("id"), str)
    ):
        return "400 Bad Request", "payload names no button (actions[0]) or no user (user.id)"
    return None


class _Body:
    """The body already read, for bolt to read again."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        data, self.data = (self.data, b"") if size < 0 else (self.data[:size], self.data[size:])
        return data


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


def serve_wsgi(
    host: str, port: int, app: Callable[..., Any], name: str = "slack-http"
) -> WSGIServer:
    """Serve ``app`` on ``host:port`` (0: any free port) from a daemon thread named
    ``name``, one thread per request, access lines at DEBUG; returns the running server
    (``server_port``, ``shutdown()``, ``server_close()``). Used by the Slack app and by the
    daemon's health port."""
    server = make_server(host, port, app, server_class=_ThreadingWSGIServer, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server
