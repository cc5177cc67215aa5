"""One WATCH request as a stream of events: the open HTTP response → decoded JSON events.

Input: the kubernetes ``ApiClient`` of a ``guardian.clients.kube.Kube``, an API path and its
query. Output: a ``WatchStream`` yielding each event (``{"type": ..., "object": ...}``) as
the API server sends it, which another thread may ``close()`` at once (the socket is shut
down, so a blocked read returns). Opened by ``Kube.watch`` (which takes the token for the
request first); read by ``guardian.clients.watch_loop``. A ``410 Gone`` answer, as an HTTP
status or as an ``ERROR`` event with code 410, is ``Gone``: the resourceVersion is too old
and the caller must LIST again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from guardian.errors import KubernetesError, PermanentKubernetesError, TransientKubernetesError

JSON = dict[str, Any]


class Gone(PermanentKubernetesError):
    """410: the resourceVersion watched from is no longer in the API server's history."""


class WatchStream:
    """The events of one open WATCH response, line by line; closeable from any thread."""

    def __init__(self, path: str, response: Any) -> None:
        self.path = path
        self._response = response
        self.closed = False

    def __iter__(self) -> Iterator[JSON]:
        buffer = b""
        try:
            for chunk in self._response.stream(amt=None, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield event(self.path, json.loads(line))
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if not self.closed:
                raise TransientKubernetesError(
                    f"WATCH {self.path}: stream broken: {type(exc).__name__}"
                ) from None
        finally:
            self.close()

    def close(self) -> None:
        """Shut the connection down; a read blocked in another thread returns."""
        if self.closed:
            return
        self.closed = True
        # ValueError, RuntimeError: the connection is already closed or back in the pool
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            self._response.shutdown()
        self._response.release_conn()


def event(path: str, doc: JSON) -> JSON:
    """``doc``, checked: an ``ERROR`` event raises (``Gone`` for code 410)."""
    if doc.get("type") != "ERROR":
        return doc
    status = doc.get("object") or {}
    message = f"WATCH {path}: {status.get('code')} {status.get('message', '')}".rstrip()
    if status.get("code") == 410:
        raise Gone(message)
    raise TransientKubernetesError(message)


def open_watch(
    api_client: Any, path: str, query: dict[str, str], timeouts: tuple[float, float]
) -> WatchStream:
    """Send ``GET path?watch=true&...`` and return its stream (not yet read).

    ``timeouts`` are (connect, read) seconds: the read timeout must outlast the gap
    between two events or bookmarks. Errors: ``Gone`` for HTTP 410, transient for 429,
    5xx and connection failures, permanent for other refusals (403: no ``watch`` verb)."""
    params = {**query, "watch": "true"}
    try:
        verb, url, headers, payload, _post = api_client.param_serialize(
            "GET",
            path,
            query_params=list(params.items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = api_client.call_api(
            verb, url, header_params=headers, body=payload, _request_timeout=timeouts
        )
    except ApiException as exc:
        raise _refused(path, int(exc.status or 0), str(exc.reason)) from None
    except urllib3.exceptions.HTTPError as exc:
        raise TransientKubernetesError(f"WATCH {path}: {type(exc).__name__}") from None
    raw = response.response
    if not 200 <= raw.status < 300:
        text = raw.read().decode("utf-8", "replace")
        raw.release_conn()
        raise _refused(path, raw.status, _message(text))
    return WatchStream(path, raw)


def _refused(path: str, status: int, message: str) -> KubernetesError:
    text = f"WATCH {path}: HTTP {status} {message}".rstrip()
    if status == 410:
        return Gone(text)
    if status == 429 or status >= 500 or status == 0:
        return TransientKubernetesError(text)
    return PermanentKubernetesError(text)


def _message(text: str) -> str:
    try:
        return str(json.loads(text or "{}").get("message", ""))
    except (ValueError, AttributeError):
        return ""
