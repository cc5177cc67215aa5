"""The pipeline: the one module that knows the order of the stages.

Today: queries (``guardian.evaluation.queries``) → Prometheus (a ``QuerySource``) → evaluation
(``guardian.evaluation.results``), for one instant (``evaluate``) or a range (``replay``). Called by
the CLI. Prometheus failures never escape as "healthy": every SLO touched by a failed query
is ``no_data`` with the reason, and the returned error says what failed. A query Prometheus
refuses (400) is asked again for each of its SLOs alone, so only the SLO whose selector is
refused is ``no_data``, named with the window. Two series for one part of one SLO (or two
samples at one instant) are a bad answer: that window has no data, with the reason. A failed
or impossible period window loses only the budget, and ``budget_note`` says why.

Window queries run on up to ``parallel`` threads: Prometheus evaluates one query on one core.
An evaluation (or a replay) may be given a budget (``evaluation_budget``): queries still
unanswered when it runs out, or not yet started, fail with the deadline as their reason (a
Prometheus query in flight is cut at it), so one evaluation never outlasts the daemon's
interval however slowly Prometheus answers. ``PrometheusSignals.of`` gives verification the
same budget.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from guardian.clients.prometheus import (
    Deadline,
    InstantSample,
    QueryRefused,
    RangeSeries,
    evaluation_deadline,
)
from guardian.config.model import SLO, Config
from guardian.durations import format_duration
from guardian.errors import DataUnavailable
from guardian.evaluation.queries import (
    Source,
    WindowQuery,
    build_queries,
    expects_age,
    freshest,
    part_value,
    split,
    window_data,
    windows_of,
)
from guardian.evaluation.results import Evaluation, SLOResult, evaluate_slo

MAX_POINTS = 10_000
"""Points per series per range query; Prometheus refuses more than 11,000."""

# slo name → window → part → value
Parts = dict[str, dict[int, dict[str, float]]]
Item = TypeVar("Item")
R = TypeVar("R")


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


def evaluation_budget(timeout: float, interval: float) -> float:
    """Seconds one evaluation may take: two query timeouts, at most 80% of the interval.

    ``timeout`` is ``prometheus.timeout`` (each query's own deadline), ``interval`` the
    daemon's evaluation interval, which must hold with time left to decide and act.
    """
    return min(2.0 * timeout, 0.8 * interval)


def evaluate(
    slos: Sequence[SLO],
    source: QuerySource,
    at: datetime | None = None,
    mode: Source = "raw",
    parallel: int = 1,
    budget: float | None = None,
) -> tuple[Evaluation, str]:
    """Evaluate every SLO at ``at`` (now when ``None``); returns the evaluation and an error.

    The error is empty when every query succeeded. With ``budget`` (seconds), the evaluation
    returns within it: what has no answer by then is ``no_data`` for the deadline.
    """
    when = at or datetime.now(UTC)
    deadline = _deadline(budget)
    queries = build_queries(slos, mode)

    def ask(query: WindowQuery) -> list[InstantSample]:
        return source.instant(query.promql, when)

    asked = [(query, _members(slos, query.window)) for query in queries]
    answers = _run(queries, ask, parallel, deadline)
    alone = _alone(asked, answers, mode)
    if alone:  # which SLO's selector Prometheus refuses: each SLO of the query, alone
        asked += alone
        answers += _run([query for query, _ in alone], ask, parallel, deadline)
    found = _Found()
    failed: dict[tuple[str, int], str] = {}
    for (query, members), answer in zip(asked, answers, strict=True):
        if isinstance(answer, QueryRefused) and len(members) > 1:
            continue  # asked again, SLO by SLO
        if isinstance(answer, DataUnavailable):
            failed.update({(m.name, query.window): _reason(answer, m, query) for m in members})
            continue
        for sample in answer:
            found.store(query.window, sample.labels, sample.value, when.timestamp())
    results = tuple(_result(slo, found, failed, mode, with_period=True) for slo in slos)
    error = next(iter(failed.values()), "")
    return Evaluation(at=when, slos=results, queries=len(asked)), error


def _members(slos: Sequence[SLO], window: int) -> tuple[SLO, ...]:
    return tuple(slo for slo in slos if window in windows_of(slo))


def _alone(
    asked: Sequence[tuple[WindowQuery, tuple[SLO, ...]]],
    answers: Sequence[object],
    mode: Source,
) -> list[tuple[WindowQuery, tuple[SLO, ...]]]:
    """For each refused query of several SLOs, the same window's query of each SLO alone."""
    return [
        (next(q for q in build_queries([slo], mode) if q.window == query.window), (slo,))
        for (query, members), answer in zip(asked, answers, strict=True)
        if isinstance(answer, QueryRefused) and len(members) > 1
        for slo in members
    ]


def _reason(failure: DataUnavailable, slo: SLO, query: WindowQuery) -> str:
    if isinstance(failure, QueryRefused):
        return (
            f"Prometheus refused the {format_duration(query.window)} query of SLO {slo.name} "
            f"(400: {failure.detail}); check the SLO's selector"
        )
    return failure.message


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
    failed: list[str] = []

    def ask(chunk: tuple[WindowQuery, tuple[datetime, datetime]]) -> list[RangeSeries]:
        if failed:  # one failure already voids the replay
            raise DataUnavailable(failed[0])
        try:
            return source.range(chunk[0].promql, chunk[1][0], chunk[1][1], step)
        except DataUnavailable as exc:
            failed.append(exc.message)
            raise

    answers = _run(chunks, ask, parallel, _deadline(budget))
    points: dict[float, _Found] = defaultdict(_Found)
    for (query, _), answer in zip(chunks, answers, strict=True):
        if isinstance(answer, DataUnavailable):
            return Replay((), len(chunks), answer.message)
        for series in answer:
            for ts, value in series.points:
                points[round(ts, 3)].store(query.window, series.labels, value, ts)
    steps = tuple(
        Evaluation(
            at=datetime.fromtimestamp(ts, UTC),
            slos=tuple(_result(slo, points[ts], {}, mode, with_period=False) for slo in slos),
        )
        for ts in _timestamps(start, end, step)
    )
    return Replay(steps, len(chunks))


def _deadline(budget: float | None) -> Deadline | None:
    """The deadline ``budget`` seconds from now; ``None``: no bound."""
    if budget is None:
        return None
    return Deadline(
        time.monotonic() + budget, f"no answer within the evaluation's deadline ({budget:g}s)"
    )


def _run(
    items: Sequence[Item],
    call: Callable[[Item], R],
    parallel: int,
    deadline: Deadline | None = None,
) -> list[R | DataUnavailable]:
    def guarded(item: Item) -> R | DataUnavailable:
        try:
            return call(item)
        except DataUnavailable as exc:
            return exc

    if deadline is None:
        if parallel <= 1 or len(items) <= 1:
            return [guarded(item) for item in items]
        with ThreadPoolExecutor(parallel, thread_name_prefix="guardian-query") as pool:
            return list(pool.map(guarded, items))
    return _within(items, guarded, parallel, deadline)


def _within(
    items: Sequence[Item],
    call: Callable[[Item], R | DataUnavailable],
    parallel: int,
    deadline: Deadline,
) -> list[R | DataUnavailable]:
    """``call`` on every item, all by ``deadline``; what is late fails with its message."""

    def bounded(item: Item) -> R | DataUnavailable:
        with evaluation_deadline(deadline):  # a query in flight ends at the deadline too
            return call(item)

    pool = ThreadPoolExecutor(max(parallel, 1), thread_name_prefix="guardian-query")
    futures = [pool.submit(bounded, item) for item in items]
    answers: list[R | DataUnavailable] = []
    for future in futures:
        try:
            answers.append(future.result(timeout=max(deadline.at - time.monotonic(), 0.0)))
        except FutureTimeout:
            answers.append(DataUnavailable(deadline.message))
    pool.shutdown(wait=False, cancel_futures=True)
    return answers


class _Found:
    """The parts of every SLO in one answer (or at one step of a replay), and which parts
    came more than once: a second series for one part is a bad answer, never a choice."""

    def __init__(self) -> None:
        self.parts: Parts = defaultdict(lambda: defaultdict(dict))
        self.repeated: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))

    def store(self, window: int, labels: dict[str, str], value: float, at: float) -> None:
        found = split(labels, window, at)
        if found is None:
            return
        slo, part, offset = found
        if part in self.parts[slo][window]:
            self.repeated[slo][window].add(part)
        self.parts[slo][window][part] = part_value(value, offset)


def _result(
    slo: SLO,
    found: _Found,
    failed: dict[tuple[str, int], str],
    mode: Source,
    with_period: bool,
) -> SLOResult:
    """One SLO's result; a failed period query only loses the budget, not the alerts."""
    reasons = [
        failed[slo.name, w] for w in windows_of(slo, with_period=False) if (slo.name, w) in failed
    ]
    parts, repeated = found.parts[slo.name], found.repeated[slo.name]
    data = {
        window: window_data(slo, parts.get(window, {}), window, repeated.get(window, ()))
        for window in sorted(set(parts) | set(windows_of(slo, with_period)))
    }
    age = freshest(p["age"] for p in parts.values() if "age" in p)
    if age is None and expects_age(slo, mode):
        age = math.inf
    return evaluate_slo(
        slo,
        data,
        age,
        reason=reasons[0] if reasons else "",
        period_reason=failed.get((slo.name, slo.period), ""),
    )


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


@dataclass
class PrometheusSignals:
    """What playbook steps verify against (``executor.runner.Signals``), from Prometheus."""

    slos: Sequence[SLO]
    source: QuerySource
    mode: Source = "raw"
    budget: float | None = None
    """Seconds one ``short_burn`` may take (``evaluate``'s budget); ``None``: no bound."""
    parallel: int = 1

    @classmethod
    def of(cls, config: Config, source: QuerySource) -> PrometheusSignals:
        """The signals for ``config``: its SLOs, source and parallelism, and each evaluation
        within ``evaluation_budget``, so a silent Prometheus cannot hold a step's verification
        for one query timeout per window."""
        settings = config.prometheus
        budget = evaluation_budget(settings.timeout, config.daemon.interval)
        return cls(config.slos, source, settings.source, budget, settings.parallel_queries)

    def short_burn(self, slo: str) -> float | None:
        """The SLO's burn rate over its shortest short window, now."""
        chosen = [s for s in self.slos if s.name == slo]
        if not chosen:
            return None
        evaluation, _ = evaluate(chosen, self.source, None, self.mode, self.parallel, self.budget)
        return shortest_burn(evaluation.slos[0])

    def holds(self, promql: str) -> bool:
        """True when ``promql`` returns a sample (Prometheus down: False, never "holds")."""
        try:
            return bool(self.source.instant(promql))
        except DataUnavailable:
            return False


def shortest_burn(result: SLOResult) -> float | None:
    """Burn rate of the shortest short window that has data."""
    windows = sorted((w for w in result.windows if w.short_burn is not None), key=lambda w: w.short)
    return windows[0].short_burn if windows else None


def slo_context(result: SLOResult) -> dict[str, object]:
    """What playbook templates and verification see as ``slo``."""
    return {
        "name": result.name,
        "status": result.status,
        "objective": result.objective,
        "short_burn": shortest_burn(result),
        "windows": [
            {
                "severity": w.severity,
                "long": w.long,
                "short": w.short,
                "factor": w.factor,
                "long_burn": w.long_burn,
                "short_burn": w.short_burn,
                "firing": w.firing,
            }
            for w in result.windows
        ],
    }
