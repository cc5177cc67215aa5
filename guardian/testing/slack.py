"""A Slack emulator on loopback: the Web API methods guardian calls, and Socket Mode.

Input: the tokens and signing secret it should accept, and who belongs to which user group.
Output: an HTTP server (``base_url`` for ``slack_sdk.WebClient``) and a websocket server
that ``apps.connections.open`` hands out. Tests drive it like Slack would: ``click`` and
``slash`` send Socket Mode envelopes and wait for the ack; ``signed_post`` sends an HTTP-mode
request with a real ``X-Slack-Signature``. Everything guardian sent is kept in ``calls``,
``messages`` (with updates applied) and ``responses`` (``response_url`` posts). ``down``
makes every call fail with HTTP 503, as an outage would. Used by tests only.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from guardian.testing.prometheus import free_port


@dataclass
class Message:
    """A message as Slack would show it now."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    updates: int = 0


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    answer: dict[str, Any] | None = None


class SlackEmulator:
    """Web API + Socket Mode on 127.0.0.1; use as a context manager."""

    def __init__(
        self,
        bot_token: str = "xoxb-test",
        app_token: str = "xapp-test",
        signing_secret: str = "test-signing-secret",
        groups: Mapping[str, list[str]] | None = None,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.groups = dict(groups or {})
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.messages: dict[str, Message] = {}
        self.responses: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}
        self.down = False
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._sockets: list[ServerConnection] = []
        self._connected = threading.Event()
        self.port = free_port()
        self.ws_port = free_port()
        self._http: ThreadingHTTPServer | None = None
        self._ws: Server | None = None

    @property
    def base_url(self) -> str:
        """Give this to ``WebClient(base_url=...)``."""
        return f"http://127.0.0.1:{self.port}/api/"

    # lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> SlackEmulator:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, answer = emulator._http_call(self.path, dict(self.headers), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        self._http = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self._ws = serve(self._socket, "127.0.0.1", self.ws_port)
        threading.Thread(target=self._ws.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._ws is not None:
            self._ws.shutdown()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    # the Web API --------------------------------------------------------------------------

    def _http_call(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        if self.down:
            return 503, {"ok": False, "error": "service_unavailable"}
        if path.startswith("/upload/"):
            self.files[path.rsplit("/", 1)[1]] = body
            return 200, {"ok": True}
        if path.startswith("/response/"):
            self.responses.append(json.loads(body))
            return 200, {"ok": True}
        method = path.removeprefix("/api/").split("?")[0]
        params = _params(headers, body)
        with self._lock:
            self.calls.append((method, params))
        wanted = self.app_token if method == "apps.connections.open" else self.bot_token
        if headers.get("Authorization") != f"Bearer {wanted}":
            return 200, {"ok": False, "error": "invalid_auth"}
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}
        answer: dict[str, Any] = handler(params)
        return 200, answer

    def _api_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user_id": "UGUARDIAN", "bot_id": "BGUARDIAN", "team_id": "T1"}

    def _api_apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.ws_port}/link"}

    def _api_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        problems = block_problems(_blocks(params.get("blocks")))
        if problems:
            return {"ok": False, "error": "invalid_blocks", "errors": problems}
        ts = f"{time.time():.0f}.{next(self._ts):06d}"
        message = Message(
            params["channel"],
            ts,
            params.get("text", ""),
            _blocks(params.get("blocks")),
            params.get("thread_ts"),
        )
        with self._lock:
            self.messages[ts] = message
        return {"ok": True, "channel": message.channel, "ts": ts}

    def _api_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        problems = block_problems(_blocks(params.get("blocks")))
        if problems:
            return {"ok": False, "error": "invalid_blocks", "errors": problems}
        with self._lock:
            message = self.messages.get(params["ts"])
            if message is None or message.channel != params["channel"]:
                return {"ok": False, "error": "message_not_found"}
            message.text = params.get("text", message.text)
            message.blocks = _blocks(params.get("blocks")) or message.blocks
            message.updates += 1
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _api_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {"ok": True, "message_ts": f"{time.time():.6f}"}

    def _api_usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "users": self.groups.get(params.get("usergroup", ""), [])}

    def _api_files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        file_id = f"F{next(self._ts)}"
        return {
            "ok": True,
            "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}",
            "file_id": file_id,
        }

    def _api_files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        files = params.get("files")
        listed = json.loads(files) if isinstance(files, str) else files or []
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in listed]}

    # Socket Mode ---------------------------------------------------------------------------

    def _socket(self, connection: ServerConnection) -> None:
        if self.down:
            connection.close()
            return
        with self._lock:
            self._sockets.append(connection)
        connection.send(json.dumps({"type": "hello", "num_connections": 1}))
        self._connected.set()
        try:
            for raw in connection:
                ack = json.loads(raw)
                pending = self._pending.get(ack.get("envelope_id", ""))
                if pending is not None:
                    pending.answer = ack
                    pending.done.set()
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                if connection in self._sockets:
                    self._sockets.remove(connection)

    def wait_connected(self, timeout: float = 15) -> None:
        """Wait until a Socket Mode client has connected."""
        if not self._connected.wait(timeout):
            raise TimeoutError("no Socket Mode client connected")

    def envelope(self, kind: str, payload: dict[str, Any], timeout: float = 3.0) -> dict[str, Any]:
        """Send an envelope and return the client's ack; TimeoutError after ``timeout``
        (Slack's limit is 3 seconds)."""
        envelope_id = f"env-{next(self._ts)}"
        pending = _Pending()
        self._pending[envelope_id] = pending
        with self._lock:
            sockets = list(self._sockets)
        if not sockets:
            raise ConnectionError("no Socket Mode client connected")
        sockets[-1].send(
            json.dumps(
                {
                    "envelope_id": envelope_id,
                    "type": kind,
                    "payload": payload,
                    "accepts_response_payload": kind != "events_api",
                }
            )
        )
        if not pending.done.wait(timeout):
            raise TimeoutError(f"no ack for {kind} within {timeout}s")
        assert pending.answer is not None
        return pending.answer

    def click_payload(
        self, action: str, value: str, user: str, channel: str, message_ts: str = ""
    ) -> dict[str, Any]:
        """A ``block_actions`` payload: ``user`` pressed the button ``action``."""
        return {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": "T1"},
            "api_app_id": "A1",
            "token": "legacy",
            "team": {"id": "T1", "domain": "example"},
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
            "channel": {"id": channel, "name": "sre"},
            "message": {"ts": message_ts, "text": ""},
            "trigger_id": f"trigger-{next(self._ts)}",
            "response_url": f"http://127.0.0.1:{self.port}/response/{next(self._ts)}",
            "actions": [
                {
                    "action_id": action,
                    "block_id": "decision",
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }

    def slash_payload(self, text: str, user: str, channel: str) -> dict[str, str]:
        """A slash command's fields: ``user`` typed ``/guardian text`` in ``channel``."""
        return {
            "token": "legacy",
            "team_id": "T1",
            "team_domain": "example",
            "channel_id": channel,
            "channel_name": "sre",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/guardian",
            "text": text,
            "api_app_id": "A1",
            "response_url": f"http://127.0.0.1:{self.port}/response/{next(self._ts)}",
            "trigger_id": f"trigger-{next(self._ts)}",
        }

    def click(
        self, action: str, value: str, user: str, channel: str, ts: str = ""
    ) -> dict[str, Any]:
        """Press a button through Socket Mode; returns the ack."""
        return self.envelope("interactive", self.click_payload(action, value, user, channel, ts))

    def slash(self, text: str, user: str, channel: str) -> dict[str, Any]:
        """Type ``/guardian text`` through Socket Mode; returns the ack."""
        return self.envelope("slash_commands", self.slash_payload(text, user, channel))

    # HTTP mode ----------------------------------------------------------------------------

    def signed_post(
        self,
        url: str,
        form: Mapping[str, str],
        secret: str | None = None,
        timestamp: int | None = None,
    ) -> tuple[int, str]:
        """POST ``form`` to guardian's ``/slack/events`` signed as Slack signs requests."""
        body = urllib.parse.urlencode(form).encode()
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        key = (self.signing_secret if secret is None else secret).encode()
        digest = hmac.new(key, b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": "v0=" + digest.hexdigest(),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_for(self, check: Any, timeout: float = 30.0, interval: float = 0.05) -> None:
        """Poll ``check()`` until true (guardian works after it acks)."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met in time")
            time.sleep(interval)


def _params(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    kind = headers.get("Content-Type", "")
    if not body:
        return {}
    if kind.startswith("application/json"):
        loaded: dict[str, Any] = json.loads(body)
        return loaded
    return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}


def _blocks(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        parsed: list[dict[str, Any]] = json.loads(value)
        return parsed
    return list(value or [])


LIMITS = {"blocks": 50, "section": 3000, "header": 150, "button": 75, "value": 2000, "id": 255}
"""Block Kit's documented limits that guardian's messages come near."""


def block_problems(blocks: list[dict[str, Any]]) -> list[str]:
    """What Slack would reject in ``blocks`` (``invalid_blocks``), one line each."""
    problems = []
    if len(blocks) > LIMITS["blocks"]:
        problems.append(f"{len(blocks)} blocks; at most {LIMITS['blocks']}")
    for index, block in enumerate(blocks):
        kind = block.get("type")
        text = (block.get("text") or {}).get("text", "")
        if (
            kind == "section"
            and not 1 <= len(text) <= LIMITS["section"]
            and not block.get("fields")
        ):
            problems.append(f"[{index}] section text of {len(text)} characters")
        if kind == "header" and not 1 <= len(text) <= LIMITS["header"]:
            problems.append(f"[{index}] header text of {len(text)} characters")
        if kind not in ("section", "header", "actions", "context", "divider", "image"):
            problems.append(f"[{index}] unknown block type {kind!r}")
        for element in block.get("elements") or []:
            if element.get("type") != "button":
                continue
            label = element.get("text", {}).get("text", "")
            if not 1 <= len(label) <= LIMITS["button"]:
                problems.append(f"[{index}] button text of {len(label)} characters")
            if len(element.get("value", "")) > LIMITS["value"]:
                problems.append(f"[{index}] button value too long")
            if not 1 <= len(element.get("action_id", "")) <= LIMITS["id"]:
                problems.append(f"[{index}] button action_id missing or too long")
    return problems
