"""Store URLs: parsed with SQLAlchemy's URL object, and shown only with the password masked.

Input: a store URL as given (a raw ``@``, ``/`` or ``:`` in the password is taken as part of
it). Output: a ``URL``; ``masked(url)``, the only form in which a store URL is printed or
logged (password as ``***``, password query parameters left out, passwords embedded in query
values masked); ``scrubber(url)``, which takes every spelling of those passwords out of a
driver's message. Called by ``guardian.clients.database`` (opening the store) and
``guardian.app.daemon.run`` (the store named, masked, in its start log line).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote, quote_plus, unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from guardian.errors import StoreUnavailable

URL_FORM = "sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DATABASE"
"""How a store URL is written, for messages."""


def parse_url(text: str, source: str = "the URL") -> URL:
    """``text`` as a SQLAlchemy URL. A raw ``@`` in the password is taken as part of it:
    with more than one ``@``, the credentials end at the last. ``StoreUnavailable`` when
    it is no URL, without echoing ``text``, which may hold a password."""
    url: URL | None
    try:
        url = _resplit(text) if text.count("@") > 1 else make_url(text)
    except (ArgumentError, ValueError):
        url = None
    if url is None:
        raise StoreUnavailable(
            f"store: {source} is not a SQLAlchemy URL (not shown: it may hold a password); "
            f"write it as {URL_FORM}"
        )
    return url


def _resplit(text: str) -> URL | None:
    """Credentials end at the last ``@`` before the query (a query value may hold a URI with
    an ``@`` of its own), or at the last ``@`` when none comes before the query."""
    found = re.fullmatch(r"([\w+]+)://(.*)", text, re.DOTALL)
    if found is None:
        return None
    scheme, after = found.groups()
    head = after.split("?", 1)[0]
    cut = head.rfind("@") if "@" in head else after.rfind("@")
    if cut < 0:
        return None
    credentials, rest = after[:cut], after[cut + 1 :]
    user, colon, password = credentials.partition(":")
    try:
        url = make_url(f"{scheme}://{rest}")
    except (ArgumentError, ValueError):
        return None
    return url.set(username=unquote(user), password=unquote(password) if colon else None)


def masked(url: URL) -> str:
    """``url`` as text with its password shown as ``***`` and query parameters that hold
    one left out: the only form in which a store URL is ever printed or logged."""
    query = {
        k: tuple(_masked_value(x) for x in v) if isinstance(v, tuple) else _masked_value(v)
        for k, v in url.query.items()
        if not _secret_key(k)
    }
    return url.set(query=query).render_as_string(hide_password=True)


_EMBEDDED = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@?#\s]*:)(?P<secret>[^@\s]*)@", re.I)
"""A URI inside a query value (``?dbname=postgresql://u:PASS@host/db``): its password."""


def _masked_value(value: str) -> str:
    """A query value with any password it embeds (a URI's, or libpq's ``password=...``)
    shown as ``***``."""
    value = _EMBEDDED.sub(lambda m: m["head"] + "***@", value)
    return _LIBPQ_PASSWORD.sub(lambda m: m[0][: m.start(1) - m.start(0)] + "***", value)


_LIBPQ_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)", re.I)
"""libpq's ``password=...`` inside a value (``?options=...``, a conninfo string)."""


def _embedded_secrets(value: str) -> list[str]:
    """The passwords a query value embeds (for the scrubber)."""
    found = [m["secret"] for m in _EMBEDDED.finditer(value) if m["secret"]]
    found += [m.strip("'") for m in _LIBPQ_PASSWORD.findall(value) if m.strip("'")]
    return found + [unquote(f) for f in found if unquote(f) != f]


def _secret_key(key: str) -> bool:
    """A query parameter that holds a password (``password``, ``sslpassword``, ...)."""
    return "password" in key.lower() or key.lower() in ("passwd", "pwd")


def scrubber(url: URL) -> Callable[[str], str]:
    """A function that makes a driver's message safe to show: ``url``'s password (as
    given, decoded or percent-encoded) and any ``password=...`` become ``***``, and the
    message becomes one line."""
    found: list[str] = [url.password] if isinstance(url.password, str) else []
    for key, value in url.query.items():
        values = [value] if isinstance(value, str) else list(value)
        if _secret_key(key):
            found += values
        for one in values:
            found += _embedded_secrets(one)
    hidden = {form for s in found if s for form in (s, quote(s, safe=""), quote_plus(s))}
    ordered = sorted(hidden, key=len, reverse=True)

    def scrub(text: str) -> str:
        for secret in ordered:
            text = text.replace(secret, "***")
        text = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", text, flags=re.I)
        return " ".join(text.split())

    return scrub
