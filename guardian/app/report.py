"""Reports: evaluations and backtests → JSON documents and terminal tables.

Input: ``Evaluation`` / ``Episode`` values and the backtest's decisions (``Entry``). Output:
plain dicts (JSON contract of the CLI) or rich tables (reasons, which quote Prometheus, shown
literally, never as markup). Called by
``guardian.app.commands.evaluate`` (``eval``, ``backtest``) and ``guardian.app.commands.cluster``
(``rfc3339``). Durations are written as Prometheus durations (``1h``), instants as RFC 3339 in UTC,
ratios as plain floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table

from guardian.app.decisions import Entry
from guardian.durations import format_duration
from guardian.evaluation.backtest import Episode
from guardian.evaluation.results import Evaluation, SLOResult, WindowResult

_STYLE = {"ok": "green", "ticket": "yellow", "page": "bold red", "no_data": "bold magenta"}


def rfc3339(moment: datetime) -> str:
    """``2024-12-11T23:20:00Z``; milliseconds only when there are some."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def evaluation_json(evaluation: Evaluation, error: str = "") -> dict[str, Any]:
    """The ``guardian eval -o json`` document."""
    doc: dict[str, Any] = {
        "at": rfc3339(evaluation.at),
        "slos": [_slo_json(s) for s in evaluation.slos],
        "queries": evaluation.queries,
    }
    if error:
        doc["error"] = error
    return doc


def _slo_json(result: SLOResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "objective": result.objective,
        "status": result.status,
        "budget_remaining": result.budget_remaining,
        "reason": result.reason,
        "budget_note": result.budget_note,
        "windows": [_window_json(w) for w in result.windows],
    }


def _window_json(w: WindowResult) -> dict[str, Any]:
    return {
        "severity": w.severity,
        "long": format_duration(w.long),
        "short": format_duration(w.short),
        "factor": w.factor,
        "long_error_ratio": w.long_error_ratio,
        "short_error_ratio": w.short_error_ratio,
        "long_burn": w.long_burn,
        "short_burn": w.short_burn,
        "long_events": w.long_events,
        "low_traffic": w.low_traffic,
        "firing": w.firing,
    }


def evaluation_table(evaluation: Evaluation) -> Table:
    """One row per SLO and window pair."""
    table = Table(title=f"guardian eval at {rfc3339(evaluation.at)}")
    for column in ("SLO", "status", "budget left", "pair", "factor", "long burn", "short burn"):
        table.add_column(column, justify="left" if column in ("SLO", "status", "pair") else "right")
    table.add_column("firing")
    for slo in evaluation.slos:
        status = f"[{_STYLE[slo.status]}]{slo.status}[/]"
        budget = _pct(slo.budget_remaining)
        for index, w in enumerate(slo.windows):
            first = index == 0
            table.add_row(
                f"{slo.name} ({slo.objective:g}%)" if first else "",
                status if first else "",
                budget if first else "",
                f"{w.severity} {format_duration(w.long)}/{format_duration(w.short)}",
                f"{w.factor:.3g}",
                _num(w.long_burn),
                _num(w.short_burn),
                "[bold red]yes[/]" if w.firing else ("low traffic" if w.low_traffic else ""),
            )
        if slo.reason:
            table.add_row("", f"[magenta]{escape(slo.reason)}[/]", "", "", "", "", "", "")
        if slo.budget_note:
            note = escape(f"budget unknown: {slo.budget_note}")
            table.add_row("", f"[magenta]{note}[/]", "", "", "", "", "", "")
    return table


def backtest_json(
    start: datetime,
    end: datetime,
    step: int,
    found: Sequence[Episode],
    queries: int,
    decisions: Sequence[Entry] = (),
) -> dict[str, Any]:
    """The ``guardian backtest -o json`` document."""
    return {
        "from": rfc3339(start),
        "to": rfc3339(end),
        "step": format_duration(step),
        "queries": queries,
        "episodes": [
            {
                "slo": e.slo,
                "severity": e.severity,
                "long": format_duration(e.long),
                "short": format_duration(e.short),
                "start": rfc3339(e.start),
                "end": rfc3339(e.end) if e.end else None,
                "peak_burn": e.peak_burn,
            }
            for e in found
        ],
        "decisions": [entry_json(entry) for entry in decisions],
    }


def entry_json(entry: Entry) -> dict[str, Any]:
    """One ``decisions`` item: when, which SLO, propose or notify, the playbook, why, and
    the change blamed (``null`` when none)."""
    d, change = entry.decision, entry.decision.change
    return {
        "at": rfc3339(entry.at),
        "slo": d.slo,
        "kind": d.kind,
        "playbook": d.playbook,
        "reason": d.reason,
        "change": None
        if change is None
        else {
            "kind": change.kind,
            "namespace": change.namespace,
            "name": change.name,
            "started": rfc3339(change.started),
            "cluster": change.cluster,
        },
    }


def backtest_table(found: Sequence[Episode], decisions: Sequence[Entry] = ()) -> Table | Group:
    """One row per episode; with decisions, a second table of them below."""
    table = Table(title="guardian backtest: firing episodes")
    for column in ("SLO", "severity", "pair", "start", "end", "minutes", "peak burn"):
        table.add_column(column)
    for e in found:
        minutes = f"{(e.end - e.start).total_seconds() / 60:.0f}" if e.end else "open"
        table.add_row(
            e.slo,
            e.severity,
            f"{format_duration(e.long)}/{format_duration(e.short)}",
            rfc3339(e.start),
            rfc3339(e.end) if e.end else "(still firing)",
            minutes,
            f"{e.peak_burn:.1f}",
        )
    if not decisions:
        return table
    chosen = Table(title="guardian backtest: decisions (each change of one)")
    for column in ("at", "SLO", "decision", "playbook", "change", "reason"):
        chosen.add_column(column)
    for entry in decisions:
        d = entry.decision
        chosen.add_row(
            rfc3339(entry.at),
            d.slo,
            d.kind,
            d.playbook or "",
            escape(d.change.target) if d.change else "",
            escape(d.reason),
        )
    return Group(table, chosen)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"
