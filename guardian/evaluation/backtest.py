"""Backtest: evaluations over a range → alert episodes (when each window pair fired).

Input: a ``Replay`` from ``guardian.evaluation.replay``. Output: ``Episode`` values, one per
contiguous run of firing steps of one (SLO, window pair). Pure; called by the CLI
(``guardian.app.commands.evaluate``: ``guardian backtest``, the demo), ``guardian.app.report``
and ``guardian.app.plot``, and by the tests that compare detection times with the SRE
Workbook's formula.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from guardian.config.model import Severity
from guardian.evaluation.results import Evaluation, WindowResult


@dataclass(frozen=True)
class Episode:
    """A window pair firing without a break from ``start`` until ``end``."""

    slo: str
    severity: Severity
    long: int
    short: int
    start: datetime
    end: datetime | None
    """First step the pair no longer fired; ``None`` when still firing at the range's end."""
    peak_burn: float
    """Highest long-window burn rate seen during the episode."""


def episodes(steps: tuple[Evaluation, ...]) -> list[Episode]:
    """Every firing episode in ``steps``, ordered by start time then SLO."""
    open_: dict[tuple[str, int], tuple[datetime, float]] = {}
    found: list[Episode] = []
    for step in steps:
        for slo in step.slos:
            for index, pair in enumerate(slo.windows):
                key = (slo.name, index)
                burn = pair.long_burn or 0.0
                if pair.firing:
                    start, peak = open_.get(key, (step.at, burn))
                    open_[key] = (start, max(peak, burn))
                elif key in open_:
                    start, peak = open_.pop(key)
                    found.append(_episode(slo.name, pair, start, step.at, peak))
    if steps:
        last = steps[-1]
        for slo in last.slos:
            for index, pair in enumerate(slo.windows):
                if (slo.name, index) in open_:
                    start, peak = open_.pop((slo.name, index))
                    found.append(_episode(slo.name, pair, start, None, peak))
    return sorted(found, key=lambda e: (e.start, e.slo, e.long))


def _episode(
    slo: str, pair: WindowResult, start: datetime, end: datetime | None, peak: float
) -> Episode:
    return Episode(slo, pair.severity, pair.long, pair.short, start, end, peak)


def first_page(found: list[Episode], slo: str | None = None) -> datetime | None:
    """When the first page-severity episode (of ``slo``, or of any SLO) started."""
    starts = [e.start for e in found if e.severity == "page" and (slo is None or e.slo == slo)]
    return min(starts, default=None)
