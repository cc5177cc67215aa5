"""Checks of single values in a ``guardian/v1`` file: durations, ports, selectors, URLs, names.

Input: one value as the YAML gave it. Output: the value (a selector trimmed, a URL without its
trailing slash), or ``ValueError`` whose text pydantic shows after the field's path. A value
that may be a secret (a header value, a password in a URL) never enters the message. The
``Annotated`` types (``Duration``, ``Selector``, ``Listen``, ``HttpURL``, ``Headers``,
``Bucket``, ``StoreURL``, ``SloName``, ``LabelNames``, ``Subjects``) carry a check to a field
without changing its JSON Schema.

``Spec`` is the base of every mapping of such a file: frozen, unknown keys forbidden.

Called by ``guardian.config.spec`` and ``guardian.config.slo_spec`` for their fields, and by
``guardian.playbooks.spec`` (``Spec``, ``at_most``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from guardian.config.read import shown
from guardian.durations import parse_duration

_MATCHER = r'\s*+[a-zA-Z_][a-zA-Z0-9_]*+\s*+(?:=~|!~|!=|=)\s*+"(?:[^"\\]|\\.)*+"\s*+'
_SELECTOR = re.compile(rf"^(?:{_MATCHER})(?:,{_MATCHER})*+,?\s*$")
"""Possessive quantifiers: linear time on any input (a run of spaces cannot backtrack)."""
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""An HTTP header name: an RFC 7230 token (no space, colon, line break or quote)."""
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Characters a header value must not hold (a tab is allowed, as RFC 7230 says)."""
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_PASSWORD = "holds a password; put the URL in an environment variable and name it in url_env"


class Spec(BaseModel):
    """A mapping of a ``guardian/v1`` file: frozen, and an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a duration like 30s, 5m, 1h or 30d (got {shown(value)})")
    parse_duration(value)
    return value


def at_most(limit: str) -> Callable[[object], str]:
    """A validator for a duration no longer than ``limit`` (e.g. ``"10m"``)."""
    seconds = parse_duration(limit)

    def check(value: object) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be a duration like 30s, 5m, 1h or 30d (got {shown(value)})")
        parse_duration(value, at_most=seconds)
        return value

    return check


def listen(value: str) -> str:
    """``host:port`` with a port from 1 to 65535."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or len(port) > 5:
        raise ValueError(f"must be host:port like 127.0.0.1:8080 (got {shown(value)})")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port: must be from 1 to 65535 (got {int(port)})")
    return value


def selector(value: object) -> str:
    """Prometheus label matchers (``cluster="prod", job="apiserver"``), trimmed."""
    if not isinstance(value, str) or (value.strip() and not _SELECTOR.match(value)):
        raise ValueError(
            f'must be label matchers like cluster="prod", job="apiserver" (got {shown(value)})'
        )
    return value.strip().rstrip(",")


def http_url(value: str) -> str:
    """An http:// or https:// URL without credentials in it, its trailing slash dropped."""
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"must be an http:// or https:// URL (got {shown(value)})")
    if "@" in value.split("/")[2]:
        raise ValueError("holds a user or password; use basic_auth with a password_file instead")
    return value.rstrip("/")


def headers(value: dict[str, str]) -> dict[str, str]:
    """Extra HTTP headers that can be sent and carry no credential; values never shown."""
    for name, text in value.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(
                f"{shown(name, 40)}: not a valid header name; use letters, digits and '-' "
                "only, like X-Scope-OrgID"
            )
        if name.lower() in ("authorization", "proxy-authorization", "cookie"):
            raise ValueError(
                f"{shown(name, 40)} holds a credential; use bearer_token_file, "
                "bearer_token_env or basic_auth instead"
            )
        label = name if len(name) <= 40 else name[:39] + "…"
        if _CONTROL.search(text):  # the value may be a secret: never echoed
            raise ValueError(
                f"{label}: the value holds a control character (a line break?); remove it"
            )
        if not text.isascii():
            raise ValueError(
                f"{label}: the value holds a character that is not ASCII; an HTTP header "
                "carries ASCII only"
            )
    return value


def bucket(value: object) -> str:
    """A histogram bucket boundary (``le``) that is a finite number, as text."""
    text = str(value)
    try:
        finite = math.isfinite(float(text))
    except ValueError:
        finite = False
    if not finite:  # +Inf counts every request as good: the SLO could never burn
        raise ValueError(f'must be a bucket boundary like "0.5" (got {shown(value)})')
    return text


def store_url(value: str) -> str:
    """A sqlite or postgresql SQLAlchemy URL holding no password (it is never shown)."""
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        url = None
    if url is not None and _holds_password(url.password, dict(url.query)):
        raise ValueError(_PASSWORD)
    if url is None or not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
        raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
    return value


def _holds_password(password: object, query: dict[str, object]) -> bool:
    """A password in the URL's user part or its query (``?password=``, any spelling)."""
    names = {"password", "passwd", "pwd", "sslpassword"}
    return password is not None or any(k.lower() in names for k in query)


def slo_name(value: str) -> str:
    """An SLO name: lower-case letters, digits and '-', at most 63 (a Kubernetes name)."""
    if not _NAME.match(value) or len(value) > 63:
        raise ValueError(
            f"must be lower-case letters, digits and '-', at most 63 (got {shown(value)})"
        )
    return value


def label_names(value: dict[str, str]) -> dict[str, str]:
    """Prometheus label names that guardian's own rules do not use."""
    for key in value:
        if not _LABEL.match(key) or key in ("slo", "window", "severity", "long", "short"):
            raise ValueError(
                f"{shown(key, 40)} is not a usable label name (reserved: slo, window, "
                "severity, long, short)"
            )
    return value


def subjects(value: list[str]) -> list[str]:
    """Entries ``user:NAME``, ``group:NAME`` or ``serviceaccount:NAMESPACE/NAME``."""
    for entry in value:
        if not re.fullmatch(r"(user|group):\S+|serviceaccount:[^/\s]+/\S+", entry):
            raise ValueError(
                "entries must be user:NAME, group:NAME or serviceaccount:NAMESPACE/NAME "
                f"(got {entry[:80]!r})"
            )
    return value


Duration = Annotated[str, BeforeValidator(_duration)]
Selector = Annotated[str, BeforeValidator(selector)]
Listen = Annotated[str, AfterValidator(listen)]
HttpURL = Annotated[str, AfterValidator(http_url)]
Headers = Annotated[dict[str, str], AfterValidator(headers)]
Bucket = Annotated[str, BeforeValidator(bucket)]
StoreURL = Annotated[str, AfterValidator(store_url)]
SloName = Annotated[str, AfterValidator(slo_name)]
LabelNames = Annotated[dict[str, str], AfterValidator(label_names)]
Subjects = Annotated[list[str], AfterValidator(subjects)]
