"""The change guard over the steps of a replay: what it would have said at each step.

Input: the SLOs, the ``ChangeGuardSettings``, the steps of ``guardian.evaluation.replay`` run
on the guarded SLOs (``change_guard.guarded``: the change pairs), the changes at an instant
(a callable, e.g. over ``ChangeLog.changes``) and the baseline burn before a change (a
callable, e.g. over ``change_guard.baseline_burn``). Output: for each step, the
``ChangeAlarm`` of every SLO a change arms there and whose change pairs fire (at the other
steps the guard is quiet, and the policy decides as it would without it). The burn's start
is read on the replay's own steps (the timing pair's short window, within the guard window).
Pure but for the two callables, each asked only at steps where a change pair fires. Called
by ``guardian.app.decisions`` (``guardian backtest``); tests: tests/test_change_guard.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from guardian.config.model import SLO, ChangeGuardSettings
from guardian.evaluation.change_guard import (
    ChangeAlarm,
    arming,
    burn_start,
    judge,
    timing_pair,
)
from guardian.evaluation.changes import WorkloadChange, blame
from guardian.evaluation.results import Evaluation

ChangesAt = Callable[[datetime], Sequence[WorkloadChange]]
Baseline = Callable[[SLO, WorkloadChange], float | None]


def replay_alarms(
    slos: Sequence[SLO],
    guard: ChangeGuardSettings,
    steps: Sequence[Evaluation],
    changes_at: ChangesAt,
    baseline: Baseline,
) -> list[dict[str, ChangeAlarm]]:
    """One mapping (SLO name → alarm) per step of ``steps``."""
    chosen = {s.name: s for s in slos if guard.selects(s)}
    window = timedelta(seconds=guard.guard_window)
    seen: dict[datetime, Sequence[WorkloadChange]] = {}
    bases: dict[tuple[str, str, datetime], float | None] = {}
    found: list[dict[str, ChangeAlarm]] = []
    for index, step in enumerate(steps):
        alarms: dict[str, ChangeAlarm] = {}
        for position, result in enumerate(step.slos):
            slo = chosen.get(result.name)
            pair = timing_pair(result)
            if slo is None or pair is None or result.status == "no_data":
                continue
            if step.at not in seen:
                seen[step.at] = changes_at(step.at)
            armed = arming(slo, guard, seen[step.at], step.at)
            if not armed:
                continue
            which = result.windows.index(pair)
            points = [
                (s.at, s.slos[position].windows[which].short_burn)
                for s in steps[: index + 1]
                if s.at >= step.at - window
            ]
            start = burn_start(points, pair.factor, pair.short) or step.at
            blamed = blame(armed, start)
            base = None
            if blamed is not None:
                key = (slo.name, blamed.target, blamed.started)
                if key not in bases:
                    bases[key] = baseline(slo, blamed)
                base = bases[key]
            alarms[slo.name] = judge(slo, guard, result, armed, start, base)
        found.append(alarms)
    return found
