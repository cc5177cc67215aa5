"""One evaluation: every SLO at one instant, from Prometheus' instant queries.

Input: SLOs, a ``QuerySource``, the instant, the source mode (``raw`` or ``rules``), the
parallelism and a budget in seconds. Output: an ``Evaluation`` and an error (empty when every
query succeeded). Called through ``guardian.evaluation.run`` by ``guardian.pipeline``
(``Cycle.evaluate``) and ``guardian eval`` (``guardian.app.commands.evaluate``), and
directly by ``guardian.planning.trigger`` and ``guardian.evaluation.signals``.

Prometheus failures never escape as "healthy": every SLO touched by a failed query is
``no_data`` with the reason, and the returned error says what failed. A query Prometheus
refuses (400) is asked again for each of its SLOs alone, so only the SLO whose selector is
refused is ``no_data``, named with the window. Two series for one part of one SLO (or two
samples at one instant) are a bad answer: that window has no data, with the reason. A failed
or impossible period window loses only the budget, and ``budget_note`` says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from guardian.config.model import SLO
from guardian.durations import format_duration
from guardian.errors import DataUnavailable
from guardian.evaluation.answers import Found, result
from guardian.evaluation.budget import deadline_in, run_all
from guardian.evaluation.queries import Source, WindowQuery, build_queries, windows_of
from guardian.evaluation.results import Evaluation
from guardian.evaluation.source import QuerySource, Refusal, Sample, refused

Asked = list[tuple[WindowQuery, tuple[SLO, ...]]]


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
    deadline = deadline_in(budget)
    queries = build_queries(slos, mode)

    def ask(query: WindowQuery) -> Sequence[Sample]:
        return source.instant(query.promql, when)

    asked: Asked = [(query, _members(slos, query.window)) for query in queries]
    answers = run_all(queries, ask, parallel, deadline)
    alone = _alone(asked, answers, mode)
    if alone:  # which SLO's selector Prometheus refuses: each SLO of the query, alone
        asked += alone
        answers += run_all([query for query, _ in alone], ask, parallel, deadline)
    found = Found()
    failed: dict[tuple[str, int], str] = {}
    for (query, members), answer in zip(asked, answers, strict=True):
        if refused(answer) and len(members) > 1:
            continue  # asked again, SLO by SLO
        if isinstance(answer, DataUnavailable):
            failed.update({(m.name, query.window): _reason(answer, m, query) for m in members})
            continue
        for sample in answer:
            found.store(query.window, sample.labels, sample.value, when.timestamp())
    results = tuple(result(slo, found, failed, mode, with_period=True) for slo in slos)
    error = next(iter(failed.values()), "")
    return Evaluation(at=when, slos=results, queries=len(asked)), error


def _members(slos: Sequence[SLO], window: int) -> tuple[SLO, ...]:
    return tuple(slo for slo in slos if window in windows_of(slo))


def _alone(asked: Asked, answers: Sequence[object], mode: Source) -> Asked:
    """For each refused query of several SLOs, the same window's query of each SLO alone."""
    return [
        (next(q for q in build_queries([slo], mode) if q.window == query.window), (slo,))
        for (query, members), answer in zip(asked, answers, strict=True)
        if refused(answer) and len(members) > 1
        for slo in members
    ]


def _reason(failure: DataUnavailable, slo: SLO, query: WindowQuery) -> str:
    if isinstance(failure, Refusal):
        return (
            f"Prometheus refused the {format_duration(query.window)} query of SLO {slo.name} "
            f"(400: {failure.detail}); check the SLO's selector"
        )
    return failure.message
