"""Policy: an evaluation becomes decisions — ignore, notify, or propose a playbook run.

Input: an ``Evaluation``, the SLOs, the playbooks, what is already running or ran recently
(``Recent``), the kill switch, whether a suspect rollout exists, and the time. Output: one
``Decision`` per SLO. Pure: no I/O, so every guard is tested with plain values. Called by
the daemon's evaluation job, which then proposes through ``guardian.executor.runner``.

Rules, in order: a healthy SLO is ignored; an SLO without data (blind) notifies and never
acts; a burning SLO with an open execution is ignored (one open incident per SLO); the kill
switch, a maintenance window, a cooldown, the hourly run limit, or a missing suspect turn
a proposal into a notification that says why; otherwise the most specific matching
playbook (by SLO name before by labels, then by name) is proposed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from guardian.config.model import SLO
from guardian.evaluation.results import Evaluation, SLOResult
from guardian.playbooks.model import Playbook

Kind = Literal["ignore", "notify", "propose"]
RANK = {"ok": 0, "no_data": 0, "ticket": 1, "page": 2}


@dataclass(frozen=True)
class Run:
    """An execution as the policy needs to see it."""

    playbook: str
    slo: str
    target: str
    created_at: datetime
    open: bool


@dataclass(frozen=True)
class Decision:
    """What to do about one SLO."""

    slo: str
    kind: Kind
    status: str
    reason: str
    playbook: str | None = None


def decide(
    evaluation: Evaluation,
    slos: Sequence[SLO],
    playbooks: Mapping[str, Playbook],
    recent: Sequence[Run],
    now: datetime,
    paused: bool = False,
    has_suspect: bool = True,
    notify_from: Literal["page", "ticket", "none"] = "ticket",
) -> list[Decision]:
    """One decision per SLO of ``evaluation``."""
    by_name = {s.name: s for s in slos}
    return [
        _decide(
            result, by_name[result.name], playbooks, recent, now, paused, has_suspect, notify_from
        )
        for result in evaluation.slos
        if result.name in by_name
    ]


def _decide(
    result: SLOResult,
    slo: SLO,
    playbooks: Mapping[str, Playbook],
    recent: Sequence[Run],
    now: datetime,
    paused: bool,
    has_suspect: bool,
    notify_from: str,
) -> Decision:
    status = result.status
    if status == "ok":
        return Decision(slo.name, "ignore", status, "within budget")
    if status == "no_data":
        return Decision(
            slo.name,
            "notify",
            status,
            f"blind: {result.reason or 'no data'}; guardian will not act",
        )
    open_runs = [r for r in recent if r.open and r.slo == slo.name]
    if open_runs:
        return Decision(
            slo.name, "ignore", status, f"execution of {open_runs[0].playbook} already open"
        )
    loud = notify_from != "none" and RANK[status] >= RANK.get(notify_from, 1)
    matching = sorted(
        (b for b in playbooks.values() if b.trigger.matches(slo, status)),
        key=lambda b: (slo.name not in b.trigger.slos, b.name),
    )
    if not matching:
        if loud:
            return Decision(slo.name, "notify", status, "burning; no playbook matches")
        return Decision(slo.name, "ignore", status, "burning below the notify level")
    book = matching[0]
    why_not = _guarded(book, slo, recent, now, paused, has_suspect)
    if why_not:
        return Decision(slo.name, "notify", status, why_not, book.name)
    return Decision(slo.name, "propose", status, f"{status}: run {book.name}", book.name)


def _guarded(
    book: Playbook,
    slo: SLO,
    recent: Sequence[Run],
    now: datetime,
    paused: bool,
    has_suspect: bool,
) -> str:
    """Why ``book`` must not run now (empty: it may)."""
    guards = book.guards
    if paused:
        return "paused (kill switch): not proposing " + book.name
    for window in guards.maintenance_windows:
        if window.covers(now):
            return f"maintenance window: not proposing {book.name}"
    mine = [r for r in recent if r.playbook == book.name]
    if guards.one_per_target and any(r.open for r in mine):
        return f"{book.name} already has an open execution"
    last = max((r.created_at for r in mine if r.slo == slo.name), default=None)
    if last is not None and now - last < timedelta(seconds=guards.cooldown):
        ago = int((now - last).total_seconds())
        return (
            f"cooldown: {book.name} ran for {slo.name} {ago}s ago ({guards.cooldown - ago}s left)"
        )
    hour = [r for r in mine if now - r.created_at < timedelta(hours=1)]
    if len(hour) >= guards.max_runs_per_hour:
        most = guards.max_runs_per_hour
        return f"{book.name} ran {len(hour)} times in the last hour (at most {most})"
    if guards.require_suspect and not has_suspect:
        return f"no suspect rollout: {book.name} needs one"
    return ""
