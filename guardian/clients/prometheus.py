"""Prometheus client: PromQL in, checked samples out, over HTTP with one deadline per query.

Input: ``PrometheusSettings`` and PromQL strings. Output: ``InstantSample`` / ``RangeSeries``
lists (it implements ``guardian.evaluation.source.QuerySource``). Built by the composition
root, ``guardian.app.wiring``, the console commands (``guardian.app.commands``) and the
burn chart (``guardian.app.charts``).

Each query has one deadline, ``prometheus.timeout``, for the whole exchange: connecting, the
headers, and every byte of the body (read in chunks against a monotonic clock, so a server
that trickles one byte a second is cut at the deadline, not after each quiet read). Inside
``guardian.evaluation.source.evaluation_deadline`` (the budget of a whole evaluation) a query
ends by that deadline too, if it comes first. Transient failures (connection errors, 429,
5xx) are retried once, inside the deadline, with tenacity; nothing else retries. Answers
are capped at ``MAX_ANSWER_BYTES`` and checked field by field by
``guardian.clients.prometheus_answers``: anything that is not the Prometheus answer asked
for is a ``PrometheusUnavailable`` naming what is wrong; so is a redirect, never followed.
A query Prometheus refuses as invalid (400) is a ``QueryRefused``, never retried:
``guardian.evaluation.instant`` makes the SLOs of that query ``no_data`` and names the one
whose selector is refused. Every
text taken from Prometheus (error messages, a redirect's Location, a Content-Type) reaches
messages on one line with control characters escaped (``\x1b``); header values are never
shown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import requests
import tenacity
import urllib3

from guardian.clients.prometheus_answers import (
    BadAnswer,
    InstantSample,
    RangeSeries,
    answer_data,
    error_text,
    instant_samples,
    printable,
    range_series,
)
from guardian.clients.prometheus_auth import basic_auth, request_headers, tls_verify
from guardian.config.model import PrometheusSettings
from guardian.errors import PrometheusUnavailable
from guardian.evaluation.source import Deadline, current_deadline

__all__ = ["MAX_ANSWER_BYTES", "InstantSample", "PrometheusClient", "QueryRefused", "RangeSeries"]

MAX_ANSWER_BYTES = 50 * 1024 * 1024
"""Largest answer read; a bigger one is a bad answer, not a reason to run out of memory."""

_CHUNK = 64 * 1024
T = TypeVar("T")


class QueryRefused(PrometheusUnavailable):
    """Prometheus refused the query as invalid (HTTP 400); ``detail`` is its error, one line."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Prometheus refused the query (400: {detail})")
        self.detail = detail


class _OutOfTime(Exception):
    """The deadline passed; the message is the deadline's."""


class _Transient(Exception):
    """Worth one more try, if the deadline leaves time for it."""


class PrometheusClient:
    """A small, synchronous PromQL client: one deadline per query, one retry inside it.

    Safe to share between threads (the pipeline runs window queries in parallel).
    """

    def __init__(
        self,
        settings: PrometheusSettings,
        sleep: Callable[[float], None] = tenacity.nap.sleep,
        retry_wait: float = 0.5,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.settings = settings
        self.queries = 0
        self.max_answer_bytes = max_answer_bytes
        self._count_lock = threading.Lock()
        self._headers = request_headers(settings)
        self._auth = basic_auth(settings)
        self._sleep = sleep
        self._retry_wait = retry_wait
        session = requests.Session()
        session.verify = tls_verify(settings)
        self._session = session

    def instant(self, promql: str, at: datetime | None = None) -> list[InstantSample]:
        """Evaluate ``promql`` at ``at`` (now when ``None``)."""
        params = {} if at is None else {"time": f"{at.timestamp():.3f}"}
        data = self._call("query", promql, params)
        return self._checked(lambda: instant_samples(data))

    def range(self, promql: str, start: datetime, end: datetime, step: int) -> list[RangeSeries]:
        """Evaluate ``promql`` at every ``step`` seconds from ``start`` to ``end``."""
        params = {
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": str(step),
        }
        data = self._call("query_range", promql, params)
        return self._checked(lambda: range_series(data))

    def ping(self) -> None:
        """Raise ``PrometheusUnavailable`` unless Prometheus answers a trivial query."""
        self.instant("vector(1)")

    def close(self) -> None:
        """Release the HTTP connections."""
        self._session.close()

    def _checked(self, read: Callable[[], T]) -> T:
        try:
            return read()
        except BadAnswer as exc:
            raise PrometheusUnavailable(self._bad(str(exc))) from None

    def _bad(self, detail: str) -> str:
        return f"bad answer from Prometheus at {self.settings.url}: {detail}"

    def _call(self, endpoint: str, promql: str, params: dict[str, str]) -> dict[str, Any]:
        deadline = self._deadline()
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(2)
            | tenacity.stop_before_delay(deadline.at - time.monotonic()),
            wait=tenacity.wait_fixed(self._retry_wait),
            retry=tenacity.retry_if_exception_type(_Transient),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            data: dict[str, Any] = retrying(self._once, endpoint, promql, params, deadline)
        except _Transient as exc:
            raise PrometheusUnavailable(
                f"cannot query Prometheus at {self.settings.url}: {exc}"
            ) from None
        except BadAnswer as exc:
            raise PrometheusUnavailable(self._bad(str(exc))) from None
        except _OutOfTime as exc:
            raise PrometheusUnavailable(str(exc)) from None
        return data

    def _deadline(self) -> Deadline:
        """This query's own deadline, or the evaluation's when that comes first."""
        timeout = self.settings.timeout
        own = Deadline(
            time.monotonic() + timeout,
            f"cannot query Prometheus at {self.settings.url}: no complete answer within {timeout}s",
        )
        shared = current_deadline()
        return shared if shared is not None and shared.at < own.at else own

    def _once(
        self, endpoint: str, promql: str, params: dict[str, str], deadline: Deadline
    ) -> dict[str, Any]:
        with self._count_lock:
            self.queries += 1
        remaining = self._remaining(deadline)
        try:
            response = self._session.post(
                f"{self.settings.url}/api/v1/{endpoint}",
                data={"query": promql, **params},
                headers=self._headers,
                auth=self._auth,
                timeout=(remaining, remaining),
                # explicit: requests prefers $REQUESTS_CA_BUNDLE over session.verify
                verify=self._session.verify,
                stream=True,
                allow_redirects=False,
            )
        except requests.Timeout:
            raise _OutOfTime(deadline.message) from None
        except requests.ConnectionError as exc:
            raise _Transient(_connection_reason(exc)) from None
        except (requests.exceptions.InvalidHeader, UnicodeEncodeError) as exc:
            # its text may quote the header's value, which may be a secret: never shown
            raise PrometheusUnavailable(
                f"cannot query Prometheus at {self.settings.url}: {type(exc).__name__}: a "
                "value in prometheus.headers or the bearer token cannot be sent in an HTTP "
                "header (a line break, or a character beyond Latin-1?); the value is not shown"
            ) from None
        except requests.RequestException as exc:
            # the text of a requests error may quote a header; only its type is shown
            raise _Transient(type(exc).__name__) from None
        with response:
            if response.is_redirect:
                raise BadAnswer(_redirect(response))
            body = self._body(response, deadline)
        return _document(response, body)

    @staticmethod
    def _remaining(deadline: Deadline) -> float:
        remaining = deadline.at - time.monotonic()
        if remaining <= 0:
            raise _OutOfTime(deadline.message)
        return remaining

    def _body(self, response: requests.Response, deadline: Deadline) -> bytes:
        """The whole body, read chunk by chunk until ``deadline``, at most the size cap."""
        cap = self.max_answer_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise BadAnswer(_too_large(cap))
        chunks: list[bytes] = []
        size = 0
        while True:
            _read_timeout(response, self._remaining(deadline))
            try:
                chunk = response.raw.read1(_CHUNK, decode_content=True)
            except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
                raise _OutOfTime(deadline.message) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise _Transient(f"the answer broke off: {type(exc).__name__}") from None
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > cap:
                raise BadAnswer(_too_large(cap))
            chunks.append(chunk)


def _read_timeout(response: requests.Response, seconds: float) -> None:
    """Let no single socket read outlive the deadline."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def _too_large(cap: int) -> str:
    return f"the answer is larger than {cap / 1024 / 1024:g} MB"


def _redirect(response: requests.Response) -> str:
    target = urlsplit(response.headers.get("Location", ""))
    where = f"{target.scheme}://{target.netloc.rpartition('@')[2]}{target.path}"
    if not target.netloc:
        where = target.path or "(no Location)"
    return (
        f"HTTP {response.status_code}, a redirect to {printable(where[:200])}; guardian follows no "
        "redirects: set prometheus.url to the address that answers"
    )


def _document(response: requests.Response, body: bytes) -> dict[str, Any]:
    """The ``data`` object of a successful answer; raises for anything else."""
    status = response.status_code
    if status != 200:
        _raise_status(status, error_text(body))
    return answer_data(body, response.headers.get("Content-Type", "none"))


def _raise_status(status: int, detail: str) -> NoReturn:
    if status == 400:
        raise QueryRefused(detail)
    if status == 429 or status >= 500:
        raise _Transient(f"HTTP {status}: {detail}")
    raise PrometheusUnavailable(f"Prometheus answered HTTP {status}: {detail}")


def _connection_reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    for known in ("Connection refused", "Name or service not known", "No route to host"):
        if known in text:
            return known.lower()
    return "connection failed"
