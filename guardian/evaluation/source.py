"""What evaluation needs from Prometheus: the ports, declared by the consumer.

Input: nothing (types only). Output: ``QuerySource`` (instant and range queries), the shapes of
their answers (``Sample``, ``Series``), ``refused`` (is a failure a query Prometheus refused as
invalid?) and ``Deadline`` / ``evaluation_deadline`` / ``current_deadline``: the budget of one
whole evaluation, which a query source reads so that a query in flight ends by it too.
Used by ``guardian.evaluation.instant``, ``.replay``, ``.budget`` and ``.signals``;
``guardian.clients.prometheus.PrometheusClient`` implements ``QuerySource``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


class Sample(Protocol):
    """One series of an instant query."""

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def value(self) -> float: ...


class Series(Protocol):
    """One series of a range query: ``(unix_seconds, value)`` points."""

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def points(self) -> Sequence[tuple[float, float]]: ...


class QuerySource(Protocol):
    """What the pipeline needs from Prometheus."""

    def instant(self, promql: str, at: datetime | None = None) -> Sequence[Sample]: ...

    def range(self, promql: str, start: datetime, end: datetime, step: int) -> Sequence[Series]: ...


@runtime_checkable
class Refusal(Protocol):
    """A failure that is Prometheus refusing the query as invalid (HTTP 400): it has a
    ``detail``, Prometheus' error on one line (``clients.prometheus.QueryRefused``)."""

    detail: str


def refused(failure: object) -> bool:
    """True when ``failure`` is a refused query, not Prometheus being unavailable."""
    return isinstance(failure, Refusal)


@dataclass(frozen=True)
class Deadline:
    """A moment on the monotonic clock and what a query cut by it says."""

    at: float
    message: str


_SHARED: ContextVar[Deadline | None] = ContextVar("guardian_query_deadline", default=None)


@contextmanager
def evaluation_deadline(deadline: Deadline) -> Iterator[None]:
    """Queries made in this context (this thread) end by ``deadline`` at the latest."""
    token = _SHARED.set(deadline)
    try:
        yield
    finally:
        _SHARED.reset(token)


def current_deadline() -> Deadline | None:
    """The deadline of the evaluation this thread queries for; ``None``: none."""
    return _SHARED.get()
