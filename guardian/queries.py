"""Batching: every SLO's numbers for one window in one PromQL query.

Input: SLOs and the source (``raw`` metrics or ``rules`` exported by ``guardian rules``).
Output: ``WindowQuery`` values, one per distinct window, whose results are split back per SLO
by ``parse_samples``. Called by ``guardian.pipeline``. The number of queries an evaluation
makes is the number of distinct windows (long, short and period), whatever the SLO count.

Each SLO contributes series tagged ``guardian="<slo>:<part>"`` where part is ``errors`` and
``total`` (events per second), ``ratio`` (rules source) or ``age`` (seconds since the newest
sample, in the query of the SLO's shortest window).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from guardian import sli as sli_promql
from guardian.config.model import SLO
from guardian.durations import format_duration

TAG = "guardian"
Part = Literal["errors", "total", "ratio", "age"]


@dataclass(frozen=True)
class WindowQuery:
    """One PromQL query for all SLOs that use ``window`` (seconds)."""

    window: int
    promql: str


@dataclass(frozen=True)
class WindowData:
    """What Prometheus said about one SLO over one window; ``None`` means no data."""

    error_ratio: float | None
    events_per_second: float | None


def windows_of(slo: SLO, with_period: bool = True) -> list[int]:
    """Every window an evaluation of ``slo`` needs, the period included unless told not to."""
    found = {slo.period} if with_period else set()
    for pair in slo.windows:
        found.update((pair.long, pair.short))
    return sorted(found)


def build_queries(
    slos: Iterable[SLO], source: Literal["raw", "rules"], with_period: bool = True
) -> list[WindowQuery]:
    """One query per distinct window over all ``slos``."""
    by_window: dict[int, list[str]] = {}
    for slo in slos:
        windows = windows_of(slo, with_period)
        shortest = min(windows)
        for window in windows:
            parts = by_window.setdefault(window, [])
            parts.extend(_parts(slo, window, source, with_age=window == shortest))
    return [WindowQuery(w, " or ".join(parts)) for w, parts in sorted(by_window.items())]


def _parts(slo: SLO, window: int, source: str, with_age: bool) -> list[str]:
    if source == "rules":
        return _rule_parts(slo, window, with_age)
    parts = [
        _tag(sli_promql.errors_rate(slo.sli, window), slo.name, "errors"),
        _tag(sli_promql.total_rate(slo.sli, window), slo.name, "total"),
    ]
    fresh = sli_promql.freshness_selector(slo.sli)
    if with_age and fresh is not None:
        parts.append(_tag(f"(time() - max(timestamp({fresh})))", slo.name, "age"))
    return parts


def _rule_parts(slo: SLO, window: int, with_age: bool) -> list[str]:
    w = format_duration(window)
    sel = f'{{slo="{slo.name}"}}'
    parts = [
        _tag(f"max(slo:sli_error:ratio_rate{w}{sel})", slo.name, "ratio"),
        _tag(f"max(slo:sli_total:rate{w}{sel})", slo.name, "total"),
    ]
    if with_age:
        age = f"(time() - max(timestamp(slo:sli_error:ratio_rate{w}{sel})))"
        parts.append(_tag(age, slo.name, "age"))
    return parts


def _tag(expr: str, slo: str, part: Part) -> str:
    return f'label_replace({expr}, "{TAG}", "{slo}:{part}", "", "")'


def split_tag(labels: Mapping[str, str]) -> tuple[str, str] | None:
    """``(slo, part)`` from a result series' labels, ``None`` for foreign series."""
    tag = labels.get(TAG)
    if tag is None or ":" not in tag:
        return None
    slo, part = tag.rsplit(":", 1)
    return slo, part


def window_data(parts: Mapping[str, float]) -> WindowData:
    """Turn the parts of one SLO in one window into its error ratio and event rate."""
    total = parts.get("total")
    if "ratio" in parts:
        ratio = _finite(parts["ratio"])
        if ratio is None and total == 0:
            ratio = 0.0
        return WindowData(ratio, total)
    errors = parts.get("errors")
    if total is None or errors is None:
        return WindowData(None, total)
    if total == 0:
        return WindowData(0.0, 0.0)
    return WindowData(errors / total, total)


def _finite(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return value
