"""Answers to results: the series of one answer (or of one step of a replay) per SLO.

Input: the series Prometheus returned for each window query, and which queries failed.
Output: one ``SLOResult`` per SLO (``result``). A second series for one part of one SLO is a
bad answer, never a choice: that window has no data, with the reason; a failed period query
only loses the budget. Called by ``guardian.evaluation.instant`` and
``guardian.evaluation.replay``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping

from guardian.config.model import SLO
from guardian.evaluation.queries import (
    Source,
    expects_age,
    freshest,
    part_value,
    split,
    window_data,
    windows_of,
)
from guardian.evaluation.results import SLOResult, evaluate_slo

# slo name → window → part → value
Parts = dict[str, dict[int, dict[str, float]]]


class Found:
    """The parts of every SLO in one answer (or at one step of a replay), and which parts
    came more than once: a second series for one part is a bad answer, never a choice."""

    def __init__(self) -> None:
        self.parts: Parts = defaultdict(lambda: defaultdict(dict))
        self.repeated: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))

    def store(self, window: int, labels: Mapping[str, str], value: float, at: float) -> None:
        found = split(labels, window, at)
        if found is None:
            return
        slo, part, offset = found
        if part in self.parts[slo][window]:
            self.repeated[slo][window].add(part)
        self.parts[slo][window][part] = part_value(value, offset)


def result(
    slo: SLO,
    found: Found,
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
