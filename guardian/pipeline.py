"""The pipeline: the one module that knows the order of the stages.

Today: queries (``guardian.queries``) → Prometheus (a ``QuerySource``) → evaluation
(``guardian.evaluation``), for one instant (``evaluate``) or a range (``replay``). Called by
the CLI. Prometheus failures never escape as "healthy": every SLO touched by a failed query
is ``no_data`` with the reason, and ``Evaluation.error`` says what failed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from guardian.clients.prometheus import InstantSample, RangeSeries
from guardian.config.model import SLO
from guardian.errors import DataUnavailable
from guardian.evaluation import Evaluation, SLOResult, evaluate_slo
from guardian.queries import build_queries, split_tag, window_data, windows_of

MAX_POINTS = 10_000
"""Points per series per range query; Prometheus refuses more than 11,000."""


class QuerySource(Protocol):
    """What the pipeline needs from Prometheus."""

    def instant(self, promql: str, at: datetime | None = None) -> list[InstantSample]: ...

    def range(
        self, promql: str, start: datetime, end: datetime, step: int
    ) -> list[RangeSeries]: ...


@dataclass(frozen=True)
class Replay:
    """Evaluations at every step of a range."""

    steps: tuple[Evaluation, ...]
    queries: int
    error: str = ""


def evaluate(
    slos: Sequence[SLO],
    source: QuerySource,
    at: datetime | None = None,
    mode: Literal["raw", "rules"] = "raw",
) -> tuple[Evaluation, str]:
    """Evaluate every SLO at ``at`` (now when ``None``); returns the evaluation and an error.

    The error is empty when every query succeeded.
    """
    when = at or datetime.now(UTC)
    parts: dict[str, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    failed: dict[int, str] = {}
    queries = build_queries(slos, mode)
    for query in queries:
        try:
            samples = source.instant(query.promql, when)
        except DataUnavailable as exc:
            failed[query.window] = exc.message
            continue
        for sample in samples:
            tag = split_tag(sample.labels)
            if tag is not None:
                parts[tag[0]][query.window][tag[1]] = sample.value
    results = tuple(_result(slo, parts[slo.name], failed) for slo in slos)
    error = next(iter(failed.values()), "")
    return Evaluation(at=when, slos=results, queries=len(queries)), error


def _result(slo: SLO, parts: dict[int, dict[str, float]], failed: dict[int, str]) -> SLOResult:
    reasons = [failed[w] for w in windows_of(slo) if w in failed]
    data = {window: window_data(found) for window, found in parts.items()}
    age = min((p["age"] for p in parts.values() if "age" in p), default=None)
    return evaluate_slo(slo, data, age, reason=reasons[0] if reasons else "")


def replay(
    slos: Sequence[SLO],
    source: QuerySource,
    start: datetime,
    end: datetime,
    step: int,
    mode: Literal["raw", "rules"] = "raw",
) -> Replay:
    """Evaluate every SLO at each ``step`` from ``start`` to ``end`` with range queries.

    The period window (budget) is left out of the range: a 30-day rate at every step costs
    Prometheus far more than the answer is worth; ``evaluate`` at the end gives the budget.
    """
    queries = build_queries(slos, mode, with_period=False)
    points: dict[float, dict[str, dict[int, dict[str, float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(dict))
    )
    count = 0
    for query in queries:
        for chunk_start, chunk_end in _chunks(start, end, step):
            count += 1
            try:
                series = source.range(query.promql, chunk_start, chunk_end, step)
            except DataUnavailable as exc:
                return Replay((), count, exc.message)
            _collect(points, query.window, series)
    steps = tuple(
        Evaluation(
            at=datetime.fromtimestamp(ts, UTC),
            slos=tuple(_result(slo, points[ts][slo.name], {}) for slo in slos),
        )
        for ts in _timestamps(start, end, step)
    )
    return Replay(steps, count)


def _collect(
    points: dict[float, dict[str, dict[int, dict[str, float]]]],
    window: int,
    series: list[RangeSeries],
) -> None:
    for item in series:
        tag = split_tag(item.labels)
        if tag is None:
            continue
        for ts, value in item.points:
            points[round(ts, 3)][tag[0]][window][tag[1]] = value


def _chunks(start: datetime, end: datetime, step: int) -> list[tuple[datetime, datetime]]:
    chunks: list[tuple[datetime, datetime]] = []
    span = timedelta(seconds=step * (MAX_POINTS - 1))
    cursor = start
    while cursor <= end:
        chunk_end = min(end, cursor + span)
        chunks.append((cursor, chunk_end))
        cursor = chunk_end + timedelta(seconds=step)
    return chunks


def _timestamps(start: datetime, end: datetime, step: int) -> list[float]:
    first = start.timestamp()
    count = int((end.timestamp() - first) // step) + 1
    return [round(first + i * step, 3) for i in range(count)]
