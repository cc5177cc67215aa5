"""``POST /slack/events`` in HTTP mode against malformed, unsigned and oversized requests.

A real SlackApp serves on loopback, behind guardian's checks; the requests are written here
byte for byte (the emulator signs them as Slack does). Nothing reaches an API server: the
callbacks only record what they were given.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from slack_sdk import WebClient

from guardian.clients.slack import Click, Command, SlackApp, SlackClient
from guardian.config.model import SlackSettings
from guardian.testing.slack import SlackEmulator

SECRET = "endpoint-signing-secret"
CHANNEL = "C_SRE"


@dataclass
class Served:
    emulator: SlackEmulator
    port: int
    clicks: list[Click] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)

    def post(
        self,
        body: bytes,
        headers: dict[str, str] | None = None,
        sign: bool = True,
        stamp: str | None = None,
        content_type: str = "application/x-www-form-urlencoded",
        path: str = "/slack/events",
    ) -> tuple[int, str]:
        """POST ``body`` (signed as Slack signs, unless ``sign`` is False)."""
        sent = {"Content-Type": content_type}
        if sign:
            stamp = stamp or str(int(time.time()))
            digest = hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
            sent["X-Slack-Request-Timestamp"] = stamp
            sent["X-Slack-Signature"] = "v0=" + digest.hexdigest()
        sent.update(headers or {})
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("POST", path, body=body, headers=sent)
            answer = connection.getresponse()
            return answer.status, answer.read().decode()
        finally:
            connection.close()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    with SlackEmulator(signing_secret=SECRET) as emulator:
        settings = SlackSettings(
            channel=CHANNEL,
            allowed_channels=(CHANNEL,),
            mode="http",
            listen="127.0.0.1:0",
            api_url=emulator.base_url,
        )
        client = SlackClient(WebClient(token=emulator.bot_token, base_url=emulator.base_url))
        record = Served(emulator, 0)

        def on_click(click: Click) -> str | None:
            record.clicks.append(click)
            return None

        def on_command(command: Command) -> str | Callable[[], str]:
            record.commands.append(command)
            if command.text.startswith("help"):
                return "the help text"
            return lambda: "worked on it"

        app = SlackApp(settings, client, on_click, on_command)
        app.start()
        record.port = app.port
        try:
            yield record
        finally:
            app.stop()


def _form(**fields: str) -> bytes:
    return urllib.parse.urlencode(fields).encode()


COMMAND = _form(command="/guardian", text="help", user_id="U_BOB", channel_id=CHANNEL,
                response_url="http://127.0.0.1:9/response")  # fmt: skip
CLICK = {
    "type": "block_actions",
    "user": {"id": "U_BOB"},
    "channel": {"id": CHANNEL},
    "actions": [{"action_id": "guardian_approve", "value": "x:0:0:y"}],
    "response_url": "http://127.0.0.1:9/response",
}
STALE = str(int(time.time()) - 6 * 60)

CASES: list[tuple[str, dict[str, object], int, str]] = [
    ("no signature headers", {"body": COMMAND, "sign": False}, 401,
     "no X-Slack-Signature or X-Slack-Request-Timestamp header"),
    ("only a timestamp", {"body": COMMAND, "sign": False,
                          "headers": {"X-Slack-Request-Timestamp": "1"}}, 401,
     "no X-Slack-Signature or X-Slack-Request-Timestamp header"),
    ("timestamp abc", {"body": COMMAND, "stamp": "abc"}, 401,
     "X-Slack-Request-Timestamp is not a Unix time in seconds"),
    ("timestamp -1", {"body": COMMAND, "stamp": "-1"}, 401,
     "X-Slack-Request-Timestamp is not a Unix time in seconds"),
    ("a huge timestamp", {"body": COMMAND, "stamp": "9" * 40}, 401,
     "X-Slack-Request-Timestamp is not a Unix time in seconds"),
    ("a stale timestamp", {"body": COMMAND, "stamp": STALE}, 401,
     "X-Slack-Request-Timestamp is more than 5 minutes off"),
    ("a forged signature", {"body": COMMAND, "headers": {"X-Slack-Signature": "v0=00"}}, 401,
     "X-Slack-Signature does not match the body"),
    ("a non-ASCII signature", {"body": COMMAND, "headers": {"X-Slack-Signature": "v0=é"}},
     401, "X-Slack-Signature does not match the body"),
    ("a signed JSON body", {"body": json.dumps(CLICK).encode(),
                            "content_type": "application/json"}, 400,
     "Content-Type application/json; guardian takes slash commands and button presses "
     "(application/x-www-form-urlencoded)"),
    ("payload not JSON", {"body": _form(payload="{not json")}, 400,
     "payload is not JSON (or nests too deep)"),
    ("payload nested too deep", {"body": _form(payload="[" * 9000 + "]" * 9000)}, 400,
     "payload is not JSON (or nests too deep)"),
    ("payload a list", {"body": _form(payload="[1, 2]")}, 400,
     "payload is not a block_actions payload"),
    ("payload of another type", {"body": _form(payload='{"type": "view_submission"}')}, 400,
     "payload is not a block_actions payload"),
    ("payload without actions", {"body": _form(payload='{"type": "block_actions", '
                                                       '"user": {"id": "U"}}')}, 400,
     "payload names no button (actions[0]) or no user (user.id)"),
    ("payload without a user", {"body": _form(payload=json.dumps(
        {**CLICK, "user": "U_BOB"}))}, 400,
     "payload names no button (actions[0]) or no user (user.id)"),
    ("a command without user_id", {"body": _form(command="/guardian", text="help",
                                                 channel_id=CHANNEL)}, 400,
     "a slash command without user_id"),
    ("neither", {"body": _form(token="x")}, 400,
     "neither a slash command (command=) nor a payload (payload=)"),
    ("not UTF-8", {"body": b"command=%2Fguardian&text=\xff\xfe"}, 400,
     "the body is not a UTF-8 form"),
    ("not a form", {"body": b"\x00\x01garbage"}, 400, "the body is not a UTF-8 form"),
    ("another path", {"body": COMMAND, "path": "/slack/other"}, 404,
     "no such path; Slack posts to /slack/events"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "request_", "status", "message"), CASES, ids=[c[0] for c in CASES]
)
def test_a_malformed_request_gets_its_status_and_one_log_line(
    served: Served,
    caplog: pytest.LogCaptureFixture,
    case: str,
    request_: dict[str, object],
    status: int,
    message: str,
) -> None:
    caplog.set_level(logging.INFO)  # guardian's access log is DEBUG
    got = served.post(**request_)  # type: ignore[arg-type]
    assert got == (status, message + "\n"), case
    lines = [r for r in caplog.records if r.name.startswith(("guardian", "slack"))]
    assert [r.getMessage() for r in lines] == [
        f"slack: refused a request to /slack/events: {message}"
    ]
    assert all(r.exc_info is None for r in caplog.records), "no traceback"
    assert served.clicks == [] and served.commands == []


def test_an_oversized_body_is_refused_unread_and_at_once(served: Served) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    started = time.monotonic()
    connection.putrequest("POST", "/slack/events")
    connection.putheader("Content-Type", "application/x-www-form-urlencoded")
    connection.putheader("Content-Length", str(10 * 1024 * 1024))
    connection.putheader("X-Slack-Request-Timestamp", str(int(time.time())))
    connection.putheader("X-Slack-Signature", "v0=" + "0" * 64)
    connection.endheaders()  # the body would follow: guardian answers before reading it
    answer = connection.getresponse()
    body = answer.read().decode()
    elapsed = time.monotonic() - started
    connection.close()
    assert (answer.status, body) == (413, "request body of 10485760 bytes; at most 65536\n")
    assert elapsed < 5, f"refused in {elapsed:.2f}s"
    assert served.commands == []


@pytest.mark.parametrize("length", [b"\xb2", b"12abc", b"-5", b"9" * 40])
def test_a_content_length_that_is_no_decimal_number_gets_411_and_one_log_line(
    served: Served, caplog: pytest.LogCaptureFixture, length: bytes
) -> None:
    caplog.set_level(logging.INFO)
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as conn:
        conn.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: " + length + b"\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split(b" ", 2)[1] == b"411", answer[:200]
    assert rest.endswith(b"\r\n\r\na request without a decimal Content-Length\n")
    lines = [r.getMessage() for r in caplog.records if r.name.startswith(("guardian", "slack"))]
    assert lines == [
        "slack: refused a request to /slack/events: a request without a decimal Content-Length"
    ]
    assert all(r.exc_info is None for r in caplog.records), "no traceback"


def test_a_quick_answer_comes_in_the_http_response(served: Served) -> None:
    status, body = served.post(COMMAND)
    assert status == 200
    assert json.loads(body) == {"text": "the help text", "response_type": "ephemeral"}
    assert [c.text for c in served.commands] == ["help"]
    assert served.emulator.responses == []


def test_work_is_acknowledged_empty_and_answered_through_response_url(served: Served) -> None:
    url = f"http://127.0.0.1:{served.emulator.port}/response/1"
    body = _form(command="/guardian", text="status", user_id="U_BOB", channel_id=CHANNEL,
                 response_url=url)  # fmt: skip
    status, answer = served.post(body)
    assert (status, answer) == (200, "")
    served.emulator.wait_for(lambda: len(served.emulator.responses) == 1)
    assert served.emulator.responses[0]["text"] == "worked on it"


def test_a_signed_click_reaches_guardian(served: Served) -> None:
    status, _ = served.post(_form(payload=json.dumps(CLICK)))
    assert status == 200
    served.emulator.wait_for(lambda: len(served.clicks) == 1)
    assert served.clicks[0].value == "x:0:0:y" and served.clicks[0].user == "U_BOB"


def test_a_click_with_odd_optional_fields_reaches_guardian_without_a_traceback(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    odd = {**CLICK, "channel": "C_SRE", "container": [1]}
    odd["actions"] = [{"action_id": "guardian_deny", "value": 7}]
    status, _ = served.post(_form(payload=json.dumps(odd)))
    assert status == 400, "a value that is not a string is refused"
    del odd["actions"][0]["value"]
    status, _ = served.post(_form(payload=json.dumps(odd)))
    assert status == 200
    served.emulator.wait_for(lambda: len(served.clicks) == 1)
    click = served.clicks[0]
    assert (click.action, click.value, click.channel, click.message_ts) == (
        "guardian_deny",
        "",
        "",
        "",
    )
    assert all(r.exc_info is None for r in caplog.records)
