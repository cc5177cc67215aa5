"""Write sample series as OpenMetrics text that ``promtool`` backfills.

Input: series (name, labels, values) sampled at shared timestamps. Output: a file. Used by
tests and benchmarks to build exact, known histories.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class Series:
    """One series; values cumulative for counters, one per timestamp.

    A ``counter`` is written as family ``name`` with samples ``name_total``; ``unknown`` writes
    the name as given (``x_bucket``, ``x_count`` of a histogram, gauges).
    """

    name: str
    labels: dict[str, str]
    values: Sequence[float]
    kind: Literal["counter", "unknown"] = "counter"


def write_counters(path: Path, timestamps: Sequence[float], series: Iterable[Series]) -> None:
    """Write ``series`` (grouped by family) at ``timestamps`` (unix seconds) to ``path``."""
    families: dict[tuple[str, str], list[Series]] = {}
    for item in series:
        families.setdefault((item.name, item.kind), []).append(item)
    with path.open("w", encoding="utf-8") as out:
        for (name, kind), members in families.items():
            out.write(f"# TYPE {name} {kind}\n")
            sample = f"{name}_total" if kind == "counter" else name
            for member in members:
                if len(member.values) != len(timestamps):
                    count = len(member.values)
                    raise ValueError(f"{name}: {count} values for {len(timestamps)} timestamps")
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(member.labels.items()))
                out.write(
                    "".join(
                        f"{sample}{{{labels}}} {v:.17g} {t:.3f}\n"
                        for t, v in zip(timestamps, member.values, strict=True)
                    )
                )
        out.write("# EOF\n")
