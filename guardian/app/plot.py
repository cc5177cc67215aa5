"""Plot: a replay → a PNG of burn rates per window pair against their factors.

Input: evaluations at each step and the episodes found in them. Output: a PNG file, one panel
per SLO, log-scaled burn rates (long window solid, short window dotted), each pair's factor
dashed, firing episodes shaded (pages red, tickets amber). Called by ``guardian backtest
--plot`` (``guardian.app.commands.evaluate``) and the burn chart of Slack announcements
(``guardian.app.charts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from guardian.durations import format_duration
from guardian.evaluation.backtest import Episode
from guardian.evaluation.results import Evaluation

_SHADE = {"page": "#d62728", "ticket": "#ff9f1c"}


def plot_replay(
    steps: Sequence[Evaluation], found: Sequence[Episode], path: Path, title: str = ""
) -> None:
    """Write the burn-rate chart of ``steps`` to ``path``."""
    names = [s.name for s in steps[0].slos] if steps else []
    fig, axes = plt.subplots(
        len(names) or 1, 1, figsize=(12, 3.2 * max(1, len(names))), sharex=True, squeeze=False
    )
    times = [_x(step.at) for step in steps]
    for row, name in enumerate(names):
        _panel(axes[row][0], name, steps, times, [e for e in found if e.slo == name])
    if title:
        fig.suptitle(title)
    axes[-1][0].xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))  # type: ignore[no-untyped-call]
    axes[-1][0].set_xlabel("time (UTC)")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _panel(
    ax: Axes,
    name: str,
    steps: Sequence[Evaluation],
    times: list[float],
    found: list[Episode],
) -> None:
    first = next(s for s in steps[0].slos if s.name == name)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, pair in enumerate(first.windows):
        color = colors[index % len(colors)]
        label = f"{pair.severity} {format_duration(pair.long)}/{format_duration(pair.short)}"
        longs = [_burn(step, name, index, "long") for step in steps]
        shorts = [_burn(step, name, index, "short") for step in steps]
        ax.plot(times, longs, color=color, lw=1.4, label=f"{label} long")
        ax.plot(times, shorts, color=color, lw=0.8, ls=":", alpha=0.8)
        ax.axhline(pair.factor, color=color, ls="--", lw=0.8)
    for episode in found:
        start = _x(episode.start)
        end = _x(episode.end) if episode.end else times[-1]
        ax.axvspan(start, end, color=_SHADE[episode.severity], alpha=0.12)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.01)
    ax.set_ylabel("burn rate")
    ax.set_title(f"{name} ({first.objective:g}%)", loc="left", fontsize=10)
    ax.legend(loc="upper left", fontsize=7, ncol=2)
    ax.grid(True, which="major", alpha=0.3)


def _burn(step: Evaluation, name: str, index: int, which: str) -> float:
    for slo in step.slos:
        if slo.name == name:
            pair = slo.windows[index]
            value = pair.long_burn if which == "long" else pair.short_burn
            return float("nan") if value is None else max(value, 1e-3)
    return float("nan")


def _x(moment: datetime) -> float:
    return float(mdates.date2num(moment))  # type: ignore[no-untyped-call]
