"""Change-aware detection: an SLO's burn on the change windows, tied to the change behind it.

Input: an SLO, the ``ChangeGuardSettings``, the changes of the change log and either plain
numbers (``judge``: the SLO's result on the change windows, the burn's start, the baseline
burn) or a ``QuerySource`` (``check_now``: the same read from Prometheus, within a budget).
Output: a ``ChangeAlarm`` per SLO the guard selects while a change arms it (none otherwise:
without a change in flight nothing differs). Called by ``guardian.pipeline`` (``check_now``,
every evaluation), ``guardian.evaluation.change_replay`` (the backtest's form over replay
steps) and ``guardian.policy.decide`` (reads ``ChangeAlarm``); tests:
tests/test_change_guard.py.

The rules (each shown by a test there): the change pairs are the SLO's pairs replaced by the
guard's (``guarded``) with the guard's low-traffic floor; the burn's start is the first step of
the current run of steps at which the short window crossed the factor, a dip no longer than
the short window not ending a run (``burn_start``); the
change blamed is ``changes.blame(armed, burn_start)`` (never one that began after it); the
baseline test refuses when the burn now is below ``baseline_ratio`` times the SLO's burn over
``baseline_window`` before the change began (the SLO was already burning); a change of another
cluster never arms an SLO whose labels name a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from guardian.config.model import SLO, ChangeGuardSettings, WindowPair
from guardian.durations import format_duration
from guardian.evaluation.changes import WorkloadChange, active, blame, rank
from guardian.evaluation.instant import evaluate
from guardian.evaluation.queries import Source
from guardian.evaluation.replay import replay
from guardian.evaluation.results import SLOResult, WindowResult
from guardian.evaluation.source import QuerySource

BURN_STEP = 30
"""Seconds between the steps of the range query that finds a burn's start."""


@dataclass(frozen=True)
class ChangeAlarm:
    """The change guard's verdict on one SLO while a change arms it."""

    slo: str
    firing: bool
    burn_start: datetime | None
    change: WorkloadChange | None
    """The change blamed; ``None`` when none began at or before the burn's start."""
    ranked: tuple[WorkloadChange, ...]
    reason: str
    windows: tuple[WindowResult, ...] = ()
    baseline_burn: float | None = None
    playbook: str = "halt-change"
    """The guard's playbook, proposed for ``change`` by ``guardian.policy.decide``."""


def guarded(slo: SLO, guard: ChangeGuardSettings) -> SLO:
    """``slo`` with the guard's pairs (and low-traffic floor) instead of its window set.

    Its period is the longest change window, so an evaluation asks for no 30-day window
    (the budget of this derived SLO means nothing and is never read)."""
    events = slo.min_events if guard.min_events is None else guard.min_events
    longest = max(pair.long for pair in guard.windows)
    return replace(
        slo, windows=guard.windows, window_set="change_guard", min_events=events, period=longest
    )


def single_window(slo: SLO, window: int) -> SLO:
    """``slo`` reduced to one window (its burn over ``window`` is the pair's long burn)."""
    pair = WindowPair("page", window, window, fixed_factor=1.0)
    return replace(slo, windows=(pair,), window_set="change_guard", min_events=0, period=window)


def arming(
    slo: SLO, guard: ChangeGuardSettings, changes: Sequence[WorkloadChange], now: datetime
) -> list[WorkloadChange]:
    """The changes that arm the guard for ``slo`` at ``now`` (``changes.active``), without
    those of another cluster than the one the SLO's ``cluster`` label names."""
    cluster = dict(slo.labels).get("cluster", "")
    found = active(changes, now, guard.guard_window)
    return [c for c in found if not (cluster and c.cluster and c.cluster != cluster)]


def burn_start(
    points: Sequence[tuple[datetime, float | None]], factor: float, gap: float = 0.0
) -> datetime | None:
    """The first step of the last run of steps whose short-window burn exceeds ``factor``;
    ``None`` when no step crosses. A dip (steps at or under ``factor``, or without data)
    that lasts ``gap`` seconds or less does not end a run: a burn that flickers around the
    factor is one burn, and its start stays where it began (``tests/test_change_guard.py``).
    """
    start: datetime | None = None
    dip: datetime | None = None  # the first step of the dip since the last crossing step
    for at, value in points:
        if value is not None and value > factor:
            if start is None or (dip is not None and (at - dip).total_seconds() > gap):
                start = at
            dip = None
        elif start is not None and dip is None:
            dip = at
    return start


def timing_pair(result: SLOResult) -> WindowResult | None:
    """The firing pair with the shortest short window: the one a burn's start is read on."""
    firing = [w for w in result.windows if w.firing]
    return min(firing, key=lambda w: (w.short, w.long)) if firing else None


def judge(
    slo: SLO,
    guard: ChangeGuardSettings,
    result: SLOResult,
    armed: Sequence[WorkloadChange],
    start: datetime | None,
    baseline: float | None,
) -> ChangeAlarm:
    """The alarm from plain numbers: ``result`` is ``slo`` evaluated on the change pairs
    (``guarded``), ``start`` the burn's start, ``baseline`` the burn over the baseline window
    before the change (``None``: unknown, the test is skipped and the reason says so)."""
    ranked = tuple(rank(armed, start) if start else armed)
    pair = timing_pair(result)

    def alarm(firing: bool, change: WorkloadChange | None, why: str) -> ChangeAlarm:
        when = start if pair is not None else None
        return ChangeAlarm(
            slo.name, firing, when, change, ranked, why, result.windows, baseline, guard.playbook
        )

    if result.status == "no_data":
        return alarm(False, None, f"blind: {result.reason}")
    if pair is None or start is None:
        return alarm(False, None, _calm(result))
    blamed = blame(armed, start)
    now_burn = pair.long_burn or 0.0
    numbers = _numbers(pair)
    if baseline is not None and now_burn < guard.baseline_ratio * baseline:
        return alarm(
            False,
            None,
            f"already burning before the change: {numbers}, under {guard.baseline_ratio:g}× "
            f"the baseline burn {baseline:.2f} ({format_duration(guard.baseline_window)} "
            "before it began)",
        )
    base = "unknown" if baseline is None else f"{baseline:.2f}"
    at = _clock(start)
    if blamed is None:
        why = f"burning since {at} ({numbers}), but no change began before that"
    else:
        why = (
            f"{blamed.target} began {_clock(blamed.started)}, burn since {at}: "
            f"{numbers}, baseline burn {base}"
        )
    return alarm(True, blamed, why)


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%SZ")


def _numbers(pair: WindowResult) -> str:
    return (
        f"{format_duration(pair.long)}/{format_duration(pair.short)} burn "
        f"{pair.long_burn or 0.0:.2f}/{pair.short_burn or 0.0:.2f} > {pair.factor:g}"
    )


def _calm(result: SLOResult) -> str:
    held = [w for w in result.windows if w.low_traffic]
    if held:
        return f"low traffic: {held[0].long_events or 0:.0f} events in the long window"
    return "change windows within budget"


def check_now(
    slos: Sequence[SLO],
    guard: ChangeGuardSettings,
    changes: Sequence[WorkloadChange],
    source: QuerySource,
    now: datetime,
    mode: Source = "raw",
    parallel: int = 1,
    budget: float | None = None,
) -> dict[str, ChangeAlarm]:
    """An alarm for each SLO the guard selects and a change arms at ``now``, read through
    ``source``; every query ends within ``budget`` seconds in all (as ``evaluate``)."""
    began = time.monotonic()

    def left() -> float | None:
        return None if budget is None else max(0.1, budget - (time.monotonic() - began))

    armed = {s.name: arming(s, guard, changes, now) for s in slos if guard.selects(s)}
    chosen = [guarded(s, guard) for s in slos if armed.get(s.name)]
    if not chosen:
        return {}
    evaluation, _ = evaluate(chosen, source, now, mode, parallel, left())
    alarms: dict[str, ChangeAlarm] = {}
    for slo, result in zip(chosen, evaluation.slos, strict=True):
        pair = timing_pair(result)
        start = None
        if pair is not None and result.status != "no_data":
            since = now - timedelta(seconds=guard.guard_window)
            steps = replay([single_window(slo, pair.short)], source, since, now, BURN_STEP, mode)
            points = [(s.at, s.slos[0].windows[0].long_burn) for s in steps.steps]
            # without the range (a failed query) the burn is taken to start now
            start = now if steps.error else burn_start(points, pair.factor, pair.short) or now
        suspect = blame(armed[slo.name], start) if start else None
        base = baseline_burn(slo, guard, source, suspect, mode, left()) if suspect else None
        alarms[slo.name] = judge(slo, guard, result, armed[slo.name], start, base)
    return alarms


def baseline_burn(
    slo: SLO,
    guard: ChangeGuardSettings,
    source: QuerySource,
    change: WorkloadChange,
    mode: Source = "raw",
    budget: float | None = None,
) -> float | None:
    """The SLO's burn over ``baseline_window`` ending where ``change`` began; ``None`` when
    Prometheus has no trustworthy answer (no data, stale, a failed query)."""
    single = single_window(slo, guard.baseline_window)
    evaluation, error = evaluate([single], source, change.started, mode, 1, budget)
    result = evaluation.slos[0]
    if error or result.status == "no_data":
        return None
    return result.windows[0].long_burn
