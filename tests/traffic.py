"""Known traffic for tests: steady request counters with error bursts of exact ratios."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from guardian.testing.openmetrics import Series


@dataclass(frozen=True)
class Burst:
    """Errors at ``ratio`` of all requests from ``start`` to ``end`` (seconds from t0)."""

    start: float
    end: float
    ratio: float


def timeline(t0: float, duration: float, interval: float) -> list[float]:
    """Sample timestamps from ``t0`` to ``t0 + duration`` inclusive."""
    return [t0 + i * interval for i in range(int(duration / interval) + 1)]


def steady(
    timestamps: Sequence[float],
    per_second: float,
    bursts: Sequence[Burst],
    labels: dict[str, str],
    prefix: str = "app",
) -> list[Series]:
    """``<prefix>_requests_total`` and ``<prefix>_errors_total`` for a steady request rate."""
    t0 = timestamps[0]
    total: list[float] = []
    errors: list[float] = []
    seen = bad = 0.0
    previous = t0
    for t in timestamps:
        count = per_second * (t - previous)
        seen += count
        bad += sum(count * b.ratio for b in bursts if t0 + b.start < t <= t0 + b.end)
        total.append(round(seen, 6))
        errors.append(round(bad, 6))
        previous = t
    return [
        Series(f"{prefix}_requests", labels, total),
        Series(f"{prefix}_errors", labels, errors),
    ]


def ratio_slo(name: str, selector: str, objective: float, windows: str, **extra: object) -> str:
    """A YAML list item for a ratio SLO over the ``steady`` counters."""
    more = "".join(f"\n    {k}: {v}" for k, v in extra.items())
    return f"""
  - name: {name}
    objective: {objective}
    windows: {windows}{more}
    sli:
      ratio:
        errors: sum(rate(app_errors_total{{{selector}}}[{{{{window}}}}]))
        total: sum(rate(app_requests_total{{{selector}}}[{{{{window}}}}]))"""
