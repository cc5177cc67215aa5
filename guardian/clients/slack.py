"""Slack, through slack_sdk and slack_bolt: messages out, button clicks and commands in.

Input: ``SlackSettings`` (tokens and the signing secret come from the environment or files,
never from the config file) and two callbacks: one for a button press, one for a
``/guardian`` command. Output: ``SlackClient`` (post, update, thread replies, ephemeral
answers, file uploads, user-group members) and ``SlackApp``, which listens by Socket Mode
(default: nothing to expose from inside a cluster) or serves ``POST /slack/events`` (HTTP
mode). In HTTP mode every request passes ``SlackEndpoint`` before bolt sees it: a body over
``MAX_BODY`` is refused unread (413), a missing or malformed signature or timestamp, a bad
signature or a timestamp more than 5 minutes off gets 401, and a body that is neither a
slash command nor a button payload gets 400; each refusal is one log line. A quick answer
to a command (help, usage) goes back in the acknowledgement itself; other work is
acknowledged first and answered through ``response_url`` when done, so Slack's 3-second
limit holds whatever the work costs. Called by ``guardian.chat`` and the daemon.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import Ack, App, Respond
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from guardian.config.model import SlackSettings
from guardian.config.read import read_secret
from guardian.errors import ConfigError, DataUnavailable

log = logging.getLogger("guardian.slack")

APPROVE = "guardian_approve"
DENY = "guardian_deny"


def secret(env: str | None, file: str | None, what: str) -> str:
    """A token or secret from a file (a mounted Secret) or else an environment variable;
    never from the config. A file given wins over the environment variable's default."""
    if file:
        value = read_secret(file, f"slack: {what}_file")
        if not value:
            raise ConfigError(f"slack: {what}_file: {file} is empty; write the {what} into it")
        return value
    if env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigError(
                f"slack: {what}_env: environment variable {env} is not set "
                f"(set it, or give {what}_file)"
            )
        return value
    raise ConfigError(f"slack: {what}: give {what}_env or {what}_file")


class SlackClient:
    """The Web API calls guardian makes."""

    def __init__(self, web: WebClient) -> None:
        self.web = web

    @classmethod
    def from_settings(cls, settings: SlackSettings) -> SlackClient:
        """A client with the bot token the settings point at."""
        token = secret(settings.bot_token_env, settings.bot_token_file, "bot_token")
        return cls(WebClient(token=token, base_url=settings.api_url, timeout=10))

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[Any] | None = None,
        thread_ts: str | None = None,
    ) -> str:
        """Post a message (in a thread when ``thread_ts``); returns its ``ts``."""
        answer = self._call(
            self.web.chat_postMessage,
            channel=channel,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
        )
        return str(answer["ts"])

    def update(self, channel: str, ts: str, text: str, blocks: list[Any]) -> None:
        """Replace a message's text and blocks."""
        self._call(self.web.chat_update, channel=channel, ts=ts, text=text, blocks=blocks)

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        """A message only ``user`` sees."""
        self._call(self.web.chat_postEphemeral, channel=channel, user=user, text=text)

    def upload(
        self, channel: str, thread_ts: str, content: bytes, filename: str, title: str
    ) -> None:
        """Attach a file (the burn-rate chart) to a thread."""
        self._call(
            self.web.files_upload_v2,
            channel=channel,
            thread_ts=thread_ts,
            content=content,
            filename=filename,
            title=title,
        )

    def members(self, group: str) -> list[str]:
        """User IDs in a user group."""
        answer = self._call(self.web.usergroups_users_list, usergroup=group)
        return [str(u) for u in answer.get("users") or []]

    def _call(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except SlackApiError as exc:
            raise DataUnavailable(f"Slack {exc.response.get('error', 'error')}") from None
        except (SlackClientError, OSError) as exc:
            raise DataUnavailable(f"Slack unreachable: {type(exc).__name__}") from None


@dataclass(frozen=True)
class Click:
    """A button press."""

    action: str
    value: str
    user: str
    channel: str
    message_ts: str


@dataclass(frozen=True)
class Command:
    """A ``/guardian ...`` command."""

    text: str
    user: str
    channel: str


OnClick = Callable[[Click], str | None]
"""Returns a text only the clicking user sees, or None."""
OnCommand = Callable[[Command], str | Callable[[], str]]
"""Returns the answer to the command (shown to the user who typed it) when it is quick, or
the work to do, whose answer follows through ``response_url``."""


class SlackApp:
    """The bolt app with guardian's two listeners, in Socket Mode or HTTP mode."""

    def __init__(
        self, settings: SlackSettings, client: SlackClient, on_click: OnClick, on_command: OnCommand
    ) -> None:
        self.settings = settings
        signing = (
            secret(settings.signing_secret_env, settings.signing_secret_file, "signing_secret")
            if settings.mode == "http"
            else None
        )
        self.app = App(
            client=client.web,
            signing_secret=signing,
            request_verification_enabled=settings.mode == "http",
            token_verification_enabled=False,
            logger=log,
        )
        self._signing = signing
        self._socket: SocketModeHandler | None = None
        self._http: WSGIServer | None = None
        self.port = 0

        def clicked(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
            ack()
            action = body["actions"][0]
            click = Click(
                str(action["action_id"]),
                _text(action, "value"),
                str(body["user"]["id"]),
                _text(body.get("channel"), "id"),
                _text(body.get("container"), "message_ts"),
            )
            answer = on_click(click)
            if answer:
                respond(text=answer, response_type="ephemeral", replace_original=False)

        def commanded(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
            answer = on_command(
                Command(
                    str(command.get("text") or ""),
                    str(command.get("user_id") or ""),
                    str(command.get("channel_id") or ""),
                )
            )
            if isinstance(answer, str):
                ack(text=answer, response_type="ephemeral")
                return
            ack()
            respond(text=answer(), response_type="ephemeral")

        self.app.action(APPROVE)(clicked)
        self.app.action(DENY)(clicked)
        self.app.command("/guardian")(commanded)

    def wsgi(self) -> Callable[..., Any]:
        """The WSGI app answering ``POST /slack/events`` (signatures checked), to mount."""
        return SlackEndpoint(SlackRequestHandler(self.app), self._signing or "")

    def start(self, serve: bool = True) -> None:
        """Connect (Socket Mode) or start serving ``POST /slack/events`` (HTTP mode; with
        ``serve=False`` the caller mounts ``wsgi()`` on its own server)."""
        if self.settings.mode == "socket":
            token = secret(self.settings.app_token_env, self.settings.app_token_file, "app_token")
            self._socket = SocketModeHandler(self.app, token, logger=log)
            self._socket.connect()  # type: ignore[no-untyped-call]
            return
        if not serve:
            return
        host, _, port = self.settings.listen.rpartition(":")
        handler = self.wsgi()
        self._http = make_server(
            host, int(port), handler, server_class=_ThreadingWSGIServer, handler_class=_Quiet
        )
        self.port = self._http.server_port
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Disconnect or stop serving."""
        if self._socket is not None:
            self._socket.close()  # type: ignore[no-untyped-call]
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()


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


def _text(part: Any, key: str) -> str:
    """``part[key]`` when ``part`` is an object and the value a string, else ""."""
    value = part.get(key) if isinstance(part, dict) else None
    return value if isinstance(value, str) else ""


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
