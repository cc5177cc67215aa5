"""When a workbook page's burn began: the start suspects are ranked against.

Input: an SLO, its result now (a firing pair), a ``QuerySource`` and the time. Output: the
first step of the current run of steps at which the firing pair's short window crossed its
factor, a dip no longer than that window not ending the run
(``guardian.evaluation.change_guard.burn_start`` over a range query of that window, looking
back one long window), or ``None`` when it cannot be read. Called by
``guardian.pipeline`` when it proposes a playbook for a workbook page without a change
alarm (an alarm carries its own start), so a rollout that began after the burn started ranks
last (``guardian.evaluation.changes.rank``); tests: tests/test_burn_began.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from guardian.config.model import SLO
from guardian.evaluation.change_guard import BURN_STEP, burn_start, single_window, timing_pair
from guardian.evaluation.queries import Source
from guardian.evaluation.replay import replay
from guardian.evaluation.results import SLOResult
from guardian.evaluation.source import QuerySource


def burn_began(
    slo: SLO,
    result: SLOResult,
    source: QuerySource,
    now: datetime,
    mode: Source = "raw",
    budget: float | None = None,
) -> datetime | None:
    """When the burn that makes ``result`` fire began (``None``: no pair fires, or the range
    query failed)."""
    pair = timing_pair(result)
    if pair is None:
        return None
    since = now - timedelta(seconds=pair.long)
    found = replay([single_window(slo, pair.short)], source, since, now, BURN_STEP, mode, 1, budget)
    if found.error or not found.steps:
        return None
    points = [(step.at, step.slos[0].windows[0].long_burn) for step in found.steps]
    return burn_start(points, pair.factor, pair.short)
