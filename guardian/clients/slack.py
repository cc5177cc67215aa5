"""Slack, through slack_sdk and slack_bolt: messages out, button clicks and commands in.

Input: ``SlackSettings`` (tokens and the signing secret come from the environment or files,
never from the config file) and two callbacks: one for a button press (Approve, Deny, Undo:
``guardian.approval.buttons``), one for a
``/guardian`` command. Output: ``SlackClient`` (post, update, thread replies, ephemeral
answers, file uploads, user-group members) and ``SlackApp``, which listens by Socket Mode
(default: nothing to expose from inside a cluster) or serves ``POST /slack/events`` (HTTP
mode). In HTTP mode every request passes ``SlackEndpoint`` (``guardian.clients.slack_http``:
size cap, signature, timestamp and body shape) before bolt sees it. A quick answer
to a command (help, usage) goes back in the acknowledgement itself; other work is
acknowledged first and answered through ``response_url`` when done, so Slack's 3-second
limit holds whatever the work costs. ``SlackClient`` is built by ``guardian.app.wiring`` (for
the notifier and ``ChatOps``, in ``guardian.app.chatops``); ``SlackApp`` by
``guardian.app.daemon.run``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from slack_bolt import Ack, App, Respond
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from guardian.approval.buttons import APPROVE, DENY, UNDO
from guardian.clients.slack_http import SlackEndpoint, serve_wsgi
from guardian.config.files import read_secret
from guardian.config.model import SlackSettings
from guardian.errors import ConfigError, DataUnavailable

log = logging.getLogger("guardian.clients.slack")


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

        clicked = _clicked(on_click)
        self.app.action(APPROVE)(clicked)
        self.app.action(DENY)(clicked)
        self.app.action(UNDO)(clicked)
        self.app.command("/guardian")(_commanded(on_command))

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
        self._http = serve_wsgi(host, int(port), self.wsgi())
        self.port = self._http.server_port

    def stop(self) -> None:
        """Disconnect or stop serving."""
        if self._socket is not None:
            self._socket.close()  # type: ignore[no-untyped-call]
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()


def _text(part: Any, key: str) -> str:
    """``part[key]`` when ``part`` is an object and the value a string, else ""."""
    value = part.get(key) if isinstance(part, dict) else None
    return value if isinstance(value, str) else ""


def _clicked(on_click: OnClick) -> Callable[..., None]:
    """The bolt listener for guardian's buttons: acknowledge, then ``on_click``."""

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

    return clicked


def _commanded(on_command: OnCommand) -> Callable[..., None]:
    """The bolt listener for ``/guardian``: a quick answer in the acknowledgement, else the
    acknowledgement first and the work's answer through ``response_url``."""

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

    return commanded
