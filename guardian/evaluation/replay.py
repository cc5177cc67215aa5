"""A replay: every SLO at each step of a time range, from Prometheus' range queries.

Input: SLOs, a ``QuerySource``, the range and its step, the source mode, the parallelism and a
budget in seconds. Output: a ``Replay`` (one ``Evaluation`` per step, the number of queries,
the error that ended it). Called through ``guardian.evaluation.run`` by ``guardian
backtest`` (``guardian.app.commands.evaluate``) and the burn chart (``guardian.app.charts``);
its steps feed ``guardian.evaluation.backtest``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from guardian.config.model import SLO
from guardian.errors import DataUnavailable
from guardian.evaluation.answers import Found, result
from guardian.evaluation.budget import deadline_in, run_all
from guardian.evaluation.queries import Source, WindowQuery, build_queries
from guardian.evaluation.results import Evaluation
from guardian.evaluation.source import QuerySource, Series

MAX_POINTS = 10_000
"""Points per series per range query; Prometheus refuses more than 11,000."""

Chunk = tuple[WindowQuery, tuple[datetime, datetime]]
_Ask = Callable[[Chunk], Sequence[Series]]


@dataclass(frozen=True)
class Replay:
    """Evaluations at every step of a range."""

    steps: tuple[Evaluation, ...]
    queries: int
    error: str = ""


def replay(
    slos: Sequence[SLO],
    source: QuerySource,
    start: datetime,
    end: datetime,
    step: int,
    mode: Source = "raw",
    parallel: int = 1,
    budget: float | None = None,
) -> Replay:
    """Evaluate every SLO at each ``step`` from ``start`` to ``end`` with range queries.

    ``start`` and ``end`` are floored to whole seconds, as Prometheus' answers are. The first
    query that fails ends the replay (the ones not yet sent are not sent); with ``budget``
    (seconds) the whole replay ends within it, as ``evaluate`` does.

    The period window (budget) is left out of the range: a 30-day rate at every step costs
    Prometheus far more than the answer is worth; ``evaluate`` at the end gives the budget.
    """
    start = datetime.fromtimestamp(math.floor(start.timestamp()), UTC)
    end = datetime.fromtimestamp(math.floor(end.timestamp()), UTC)
    chunks = [
        (query, chunk)
        for query in build_queries(slos, mode, with_period=False)
        for chunk in _chunks(start, end, step)
    ]
    answers = run_all(chunks, _asker(source, step), parallel, deadline_in(budget))
    points: dict[float, Found] = defaultdict(Found)
    for (query, _), answer in zip(chunks, answers, strict=True):
        if isinstance(answer, DataUnavailable):
            return Replay((), len(chunks), answer.message)
        for series in answer:
            for ts, value in series.points:
                points[round(ts, 3)].store(query.window, series.labels, value, ts)
    steps = tuple(
        Evaluation(
            at=datetime.fromtimestamp(ts, UTC),
            slos=tuple(result(slo, points[ts], {}, mode, with_period=False) for slo in slos),
        )
        for ts in _timestamps(start, end, step)
    )
    return Replay(steps, len(chunks))


def _asker(source: QuerySource, step: int) -> _Ask:
    """The range query of one chunk; after the first failure, no more queries are sent."""
    failed: list[str] = []

    def ask(chunk: Chunk) -> Sequence[Series]:
        if failed:  # one failure already voids the replay
            raise DataUnavailable(failed[0])
        try:
            return source.range(chunk[0].promql, chunk[1][0], chunk[1][1], step)
        except DataUnavailable as exc:
            failed.append(exc.message)
            raise

    return ask


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
