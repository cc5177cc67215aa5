"""Write counter series as OpenMetrics text that ``promtool`` backfills.

Input: series (name, labels, cumulative values) sampled at shared timestamps. Output: a file.
Used by tests and benchmarks to build exact, known histories.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Series:
    """One counter series: ``name`` without ``_total``; values cumulative, one per timestamp."""

    name: str
    labels: dict[str, str]
    values: Sequence[float]


def write_counters(path: Path, timestamps: Sequence[float], series: Iterable[Series]) -> None:
    """Write ``series`` (grouped by name) at ``timestamps`` (unix seconds) to ``path``."""
    families: dict[str, list[Series]] = {}
    for item in series:
        families.setdefault(item.name, []).append(item)
    with path.open("w", encoding="utf-8") as out:
        for name, members in families.items():
            out.write(f"# TYPE {name} counter\n")
            for member in members:
                if len(member.values) != len(timestamps):
                    raise ValueError(
                        f"{name}: {len(member.values)} values, {len(timestamps)} times"
                    )
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(member.labels.items()))
                out.write(
                    "".join(
                        f"{name}_total{{{labels}}} {v:.17g} {t:.3f}\n"
                        for t, v in zip(timestamps, member.values, strict=True)
                    )
                )
        out.write("# EOF\n")
