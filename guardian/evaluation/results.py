"""Evaluation: Prometheus numbers per SLO and window → burn rates, firing pairs, status.

Input: the model's ``SLO`` values and a ``WindowData`` per (SLO, window), plus the age of each
SLO's newest sample. Output: an immutable ``Evaluation``. Pure: no I/O. ``evaluate_slo`` is
called by ``guardian.evaluation.answers``, for one instant (``guardian.evaluation.instant``)
and for every step of a range (``guardian.evaluation.replay``); the values are read by
``guardian.policy``, ``guardian.pipeline``, ``guardian.evaluation.backtest`` and ``guardian.app``.

Status order: ``no_data`` (missing, stale, unreachable or impossible data such as a NaN ratio or
a negative age — never healthy) beats ``page``, which beats ``ticket``, which beats ``ok``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from guardian.config.model import SLO, Severity, WindowPair
from guardian.durations import format_duration
from guardian.evaluation.queries import WindowData, age_problem

Status = Literal["ok", "ticket", "page", "no_data"]


@dataclass(frozen=True)
class WindowResult:
    """One window pair of one SLO at one instant."""

    severity: Severity
    long: int
    short: int
    factor: float
    long_error_ratio: float | None
    short_error_ratio: float | None
    long_burn: float | None
    short_burn: float | None
    long_events: float | None
    """Events counted in the long window (rate × window)."""
    low_traffic: bool
    """True when the low-traffic guard held this pair back from paging."""
    firing: bool


@dataclass(frozen=True)
class SLOResult:
    """One SLO at one instant."""

    name: str
    objective: float
    status: Status
    budget_remaining: float | None
    """Share of the period's error budget left (1 = untouched, < 0 = overspent)."""
    windows: tuple[WindowResult, ...]
    reason: str = ""
    """Why the status is ``no_data``; empty otherwise."""
    budget_note: str = ""
    """Why ``budget_remaining`` is unknown (the period's query failed, its numbers cannot be,
    or it has no data); empty when the budget is known or the period was not asked for."""


@dataclass(frozen=True)
class Evaluation:
    """All SLOs at one instant."""

    at: datetime
    slos: tuple[SLOResult, ...]
    queries: int = 0

    @property
    def paging(self) -> bool:
        """True when any SLO pages."""
        return any(s.status == "page" for s in self.slos)


def burn(ratio: float | None, slo: SLO) -> float | None:
    """How many times faster than sustainable the budget burns: ``ratio / (1 - objective)``."""
    return None if ratio is None else ratio / slo.budget


def evaluate_slo(
    slo: SLO,
    data: Mapping[int, WindowData],
    age: float | None,
    reason: str = "",
    period_reason: str = "",
) -> SLOResult:
    """Evaluate one SLO from its per-window data (keyed by window seconds).

    ``age`` is the age of the newest sample in seconds: ``None`` when unknown (free-form
    ratios), infinite when the SLI's series stopped. ``reason`` is why the alert windows
    have no data (their query failed), ``period_reason`` why the period's has none.
    """
    missing = reason or _missing_reason(slo, data, age)
    pairs = tuple(_pair(slo, pair, data, trusted=not missing) for pair in slo.windows)
    period = data.get(slo.period, WindowData(None, None))
    period_burn = burn(period.error_ratio, slo)
    budget = None if period_burn is None else 1.0 - period_burn
    return SLOResult(
        name=slo.name,
        objective=slo.objective,
        status="no_data" if missing else _status(pairs),
        budget_remaining=budget,
        windows=pairs,
        reason=missing,
        budget_note="" if budget is not None else _budget_note(slo, data, period_reason),
    )


def _budget_note(slo: SLO, data: Mapping[int, WindowData], period_reason: str) -> str:
    if period_reason:
        return period_reason
    if slo.period not in data:  # not asked for (a replay)
        return ""
    return data[slo.period].problem or f"no data for window {format_duration(slo.period)}"


def _pair(
    slo: SLO, pair: WindowPair, data: Mapping[int, WindowData], trusted: bool
) -> WindowResult:
    """One pair; it never fires on untrusted (missing or stale) data."""
    long = data.get(pair.long, WindowData(None, None))
    short = data.get(pair.short, WindowData(None, None))
    factor = pair.factor(slo.period)
    long_burn, short_burn = burn(long.error_ratio, slo), burn(short.error_ratio, slo)
    events = None if long.events_per_second is None else long.events_per_second * pair.long
    burning = (
        trusted
        and long_burn is not None
        and short_burn is not None
        and long_burn > factor
        and short_burn > factor
    )
    low = pair.severity == "page" and slo.min_events > 0 and (events or 0.0) < slo.min_events
    return WindowResult(
        severity=pair.severity,
        long=pair.long,
        short=pair.short,
        factor=factor,
        long_error_ratio=long.error_ratio,
        short_error_ratio=short.error_ratio,
        long_burn=long_burn,
        short_burn=short_burn,
        long_events=events,
        low_traffic=burning and low,
        firing=burning and not low,
    )


def _missing_reason(slo: SLO, data: Mapping[int, WindowData], age: float | None) -> str:
    needed = sorted({w for p in slo.windows for w in (p.long, p.short)})
    problems = [data[w].problem for w in needed if w in data and data[w].problem]
    if problems or age_problem(age):
        return problems[0] if problems else age_problem(age)
    absent = [format_duration(w) for w in needed if _ratio(data, w) is None]
    if absent:
        return f"no data for window {', '.join(absent)}"
    if age is not None and math.isinf(age):
        return "stale data: no sample within Prometheus' lookback (the series stopped)"
    if age is not None and age > slo.max_staleness:
        return f"stale data: newest sample is {age:.0f}s old (limit {slo.max_staleness}s)"
    return ""


def _ratio(data: Mapping[int, WindowData], window: int) -> float | None:
    found = data.get(window)
    return None if found is None else found.error_ratio


def _status(pairs: tuple[WindowResult, ...]) -> Status:
    firing = {p.severity for p in pairs if p.firing}
    if "page" in firing:
        return "page"
    if "ticket" in firing:
        return "ticket"
    return "ok"
