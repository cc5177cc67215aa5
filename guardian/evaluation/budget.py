"""The budget of one evaluation, and the queries run on threads within it.

Input: a query timeout and the daemon's interval (``evaluation_budget``); items and a call
that queries Prometheus for one of them (``run_all``). Output: the seconds one evaluation may
take; each item's answer or its ``DataUnavailable``, all by the deadline: what is late, or not
yet started, fails with the deadline as its reason, and a query in flight is cut at it (the
query source reads ``evaluation_deadline``). Called by ``guardian.evaluation.instant`` and
``guardian.evaluation.replay``; ``evaluation_budget`` also by ``guardian.evaluation.signals``,
``guardian.planning.trigger``, ``guardian.pipeline`` and the CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from guardian.errors import DataUnavailable
from guardian.evaluation.source import Deadline, evaluation_deadline

Item = TypeVar("Item")
R = TypeVar("R")


def evaluation_budget(timeout: float, interval: float) -> float:
    """Seconds one evaluation may take: two query timeouts, at most 80% of the interval.

    ``timeout`` is ``prometheus.timeout`` (each query's own deadline), ``interval`` the
    daemon's evaluation interval, which must hold with time left to decide and act.
    """
    return min(2.0 * timeout, 0.8 * interval)


def deadline_in(budget: float | None) -> Deadline | None:
    """The deadline ``budget`` seconds from now; ``None``: no bound."""
    if budget is None:
        return None
    return Deadline(
        time.monotonic() + budget, f"no answer within the evaluation's deadline ({budget:g}s)"
    )


def run_all(
    items: Sequence[Item],
    call: Callable[[Item], R],
    parallel: int,
    deadline: Deadline | None = None,
) -> list[R | DataUnavailable]:
    """``call`` on every item, on up to ``parallel`` threads (Prometheus evaluates one query
    on one core); a ``DataUnavailable`` raised is that item's answer."""

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
