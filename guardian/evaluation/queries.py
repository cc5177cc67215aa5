"""Batching: every SLO's numbers for one window in one PromQL query.

Input: SLOs and the source (``raw`` metrics or ``rules`` exported by ``guardian rules``).
Output: ``WindowQuery`` values, one per distinct window, whose result series ``split``
assigns back to an SLO and a part. ``build_queries`` is called by
``guardian.evaluation.instant`` and ``guardian.evaluation.replay``, ``split`` and
``window_data`` by ``guardian.evaluation.answers``. The number of queries an evaluation makes
is the number of distinct windows (long, short and period), whatever the SLO count.

Raw source: each SLO contributes series tagged ``guardian="<slo>:<part>"`` (``errors`` and
``total`` in events per second; ``age``, seconds since the newest sample, in the query of the
SLO's shortest window), joined by ``or`` as a balanced tree: a chain of thousands of ``or``
makes Prometheus' work grow with the square of its length.

Rules source: one selector per window reads the recorded ``slo:sli_error:ratio_rate<w>`` and
``slo:sli_total:rate<w>`` of every SLO at once, plus ``timestamp()`` of the shortest window.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from guardian.config.model import SLO
from guardian.durations import format_duration
from guardian.evaluation import sli as sli_promql

TAG = "guardian"
Source = Literal["raw", "rules"]


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
    problem: str = ""
    """Why the numbers read cannot be trusted (NaN, infinite, out of range); empty if they can."""


def windows_of(slo: SLO, with_period: bool = True) -> list[int]:
    """Every window an evaluation of ``slo`` needs, the period included unless told not to."""
    found = {slo.period} if with_period else set()
    for pair in slo.windows:
        found.update((pair.long, pair.short))
    return sorted(found)


def build_queries(
    slos: Iterable[SLO], source: Source, with_period: bool = True
) -> list[WindowQuery]:
    """One query per distinct window over all ``slos``."""
    by_window: dict[int, list[SLO]] = {}
    shortest: dict[int, list[SLO]] = {}
    for slo in slos:
        windows = windows_of(slo, with_period)
        shortest.setdefault(windows[0], []).append(slo)
        for window in windows:
            by_window.setdefault(window, []).append(slo)
    build = _rules_query if source == "rules" else _raw_query
    return [
        WindowQuery(w, build(w, members, shortest.get(w, [])))
        for w, members in sorted(by_window.items())
    ]


def _raw_query(window: int, slos: Sequence[SLO], freshest: Sequence[SLO]) -> str:
    parts: list[str] = []
    for slo in slos:
        errors = sli_promql.errors_rate(slo.sli, window, sparse=True)
        parts.append(_tag(errors, slo.name, "errors"))
        parts.append(_tag(sli_promql.total_rate(slo.sli, window), slo.name, "total"))
    for slo in freshest:
        fresh = sli_promql.freshness_selector(slo.sli)
        if fresh is not None:
            parts.append(_tag(f"time() - max(timestamp({fresh}))", slo.name, "age"))
    return _balanced_or(parts)


def _rules_query(window: int, slos: Sequence[SLO], freshest: Sequence[SLO]) -> str:
    w = format_duration(window)
    names = f'__name__=~"slo:sli_error:ratio_rate{w}|slo:sli_total:rate{w}"'
    query = f'{{{names},slo=~"{_alternatives(slos)}"}}'
    if freshest:
        # Tagged: `or` matches label sets without the metric name, so a bare timestamp()
        # series would be dropped next to the ratio it was taken from.
        stamp = f'timestamp(slo:sli_error:ratio_rate{w}{{slo=~"{_alternatives(freshest)}"}})'
        query += f' or label_replace({stamp}, "{TAG}", "stamp", "", "")'
    return query


def _alternatives(slos: Sequence[SLO]) -> str:
    return "|".join(sorted({slo.name for slo in slos}))


def _tag(expr: str, slo: str, part: str) -> str:
    return f'label_replace({expr}, "{TAG}", "{slo}:{part}", "", "")'


def _balanced_or(parts: Sequence[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    middle = len(parts) // 2
    return f"({_balanced_or(parts[:middle])} or {_balanced_or(parts[middle:])})"


def expects_age(slo: SLO, source: Source) -> bool:
    """True when the queries carry the age of the SLO's newest sample."""
    return source == "rules" or sli_promql.freshness_selector(slo.sli) is not None


def split(labels: Mapping[str, str], window: int, at: float) -> tuple[str, str, float] | None:
    """``(slo, part, factor)`` for a result series; ``None`` for series of no interest.

    ``factor`` is applied by ``part_value``; it turns a rules ``timestamp()`` into an age.
    """
    tag = labels.get(TAG)
    if tag is not None and ":" in tag:
        slo, part = tag.rsplit(":", 1)
        return slo, part, 0.0
    slo_name = labels.get("slo")
    if slo_name is None:
        return None
    if tag == "stamp":
        return slo_name, "age", at
    w = format_duration(window)
    name = labels.get("__name__")
    if name == f"slo:sli_error:ratio_rate{w}":
        return slo_name, "ratio", 0.0
    if name == f"slo:sli_total:rate{w}":
        return slo_name, "total", 0.0
    return None


def part_value(value: float, offset: float) -> float:
    """The value of a part: as read, or ``offset - value`` for timestamps turned into ages."""
    return offset - value if offset else value


def window_data(
    slo: SLO, parts: Mapping[str, float], window: int, repeated: Collection[str] = ()
) -> WindowData:
    """Turn the parts of one SLO in one window into its error ratio and event rate.

    A number that cannot be (NaN, an infinity, a negative rate, an error ratio above 1, more
    errors than events, errors with no events), or a part Prometheus answered more than once
    (``repeated``: which one is meant cannot be known), gives no ratio and a ``problem``
    naming it: such data is blind, never healthy. A total of at most 0 is no events.
    """
    w = format_duration(window)
    problem = _repeated(repeated, w) or next(
        filter(None, (_bad(parts, part, w) for part in _LABELS)), ""
    )
    if problem:
        return WindowData(None, None, problem)
    total = parts.get("total")
    if "ratio" in parts:
        return _recorded(parts["ratio"], total)
    errors = parts.get("errors")
    if errors is None and total is not None and sli_promql.absent_errors_mean_zero(slo.sli):
        errors = 0.0
    if total is None or errors is None:
        return WindowData(None, None if total is None else max(total, 0.0))
    beyond_rounding = errors > _SLACK * max(total, 1.0)
    if beyond_rounding and (total <= 0 or errors / total > 1 + _SLACK):
        return WindowData(
            None,
            None,
            f"Prometheus answered more errors than events for {w}: "
            f"{_number(errors)}/s of {_number(max(total, 0.0))}/s",
        )
    if total <= 0:  # at most rounding below 0 (_bad refused more): no events
        return WindowData(0.0, 0.0)
    return WindowData(min(max(errors, 0.0) / total, 1.0), total)


def _repeated(parts: Collection[str], w: str) -> str:
    if not parts:
        return ""
    names = ", ".join(f"the {w} {_REPEATED_LABELS.get(p, p)}" for p in sorted(parts))
    return f"Prometheus answered more than one series for {names}; guardian expects one"


def freshest(ages: Iterable[float]) -> float | None:
    """The age of the newest sample among ``ages``; NaN when any is NaN (never hidden by min)."""
    found = list(ages)
    if any(math.isnan(a) for a in found):
        return math.nan
    return min(found, default=None)


def age_problem(age: float | None) -> str:
    """Why ``age`` (seconds since the newest sample) cannot be trusted; empty when it can."""
    if age is None:
        return ""
    if math.isnan(age):
        return "Prometheus answered NaN for the age of the newest sample"
    if age < -_CLOCK_SLACK:
        return f"Prometheus answered {_number(age)}s for the age of the newest sample, below 0"
    return ""


_LABELS = {"ratio": "error ratio", "errors": "error rate", "total": "event rate"}
_REPEATED_LABELS = {**_LABELS, "age": "age of the newest sample"}
_SLACK = 1e-9
"""Rounding room: a latency SLI's errors are a difference of rates, exact only up to it."""
_CLOCK_SLACK = 1.0
"""An age may be this much below zero: query times are sent with millisecond precision."""


def _bad(parts: Mapping[str, float], part: str, w: str) -> str:
    value = parts.get(part)
    if value is None:
        return ""
    label = f"the {w} {_LABELS[part]}"
    if math.isnan(value):
        # a recorded ratio of no events at all is 0/0: no errors, not a bad number
        total = parts.get("total")
        quiet = part == "ratio" and total is not None and total <= 0
        return "" if quiet else f"Prometheus answered NaN for {label}"
    if math.isinf(value):
        return f"Prometheus answered {_number(value)} for {label}"
    scale = max(parts.get("total") or 0.0, 1.0) if part == "errors" else 1.0
    if value < -_SLACK * scale:
        return f"Prometheus answered {_number(value)} for {label}, below 0"
    if part == "ratio" and value > 1 + _SLACK:
        return f"Prometheus answered {_number(value)} for {label}, above 1"
    return ""


def _recorded(ratio: float, total: float | None) -> WindowData:
    events = None if total is None else max(total, 0.0)
    if math.isnan(ratio):  # 0/0: _bad let it through only with a total of 0
        return WindowData(0.0, events)
    return WindowData(min(max(ratio, 0.0), 1.0), events)


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:g}"
