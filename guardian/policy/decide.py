"""Policy: an evaluation becomes decisions — ignore, notify, or propose a playbook run.

Input: an ``Evaluation``, the SLOs, the playbooks, what is already running or ran recently
(``Run`` values), the kill switch, whether a suspect rollout exists, the target a run would
touch, the time and the change guard's alarms (``ChangeAlarm`` by SLO, from
``guardian.evaluation.change_guard``). Output: one ``Decision`` per SLO. Pure: no I/O, so
every guard is tested with plain values. Called by ``guardian.pipeline`` (``Cycle.act``),
which then proposes through ``guardian.executor``, and by ``guardian.app.decisions`` (the
backtest's decisions).

Rules, in order: a healthy SLO is ignored; an SLO without data (blind) notifies and never
acts; a burning SLO with an open execution is ignored (one open incident per SLO); the
guards of ``guardian.policy.guards`` (the kill switch, a maintenance window, an open run on
the same target, a cooldown, the hourly run limit, a missing suspect) turn a proposal into a
notification that says why; otherwise the most specific matching playbook (by SLO name
before by labels, then by name) is proposed.

The change guard comes first for an SLO with data: a firing alarm that blames a change
proposes the alarm's playbook (``halt-change``) with the change as its target, under the same
guards (the suspect guard is met: the change is the suspect); a firing alarm without a blamed
change (only changes that began after the burn started) notifies and never halts. When the
halt is not proposed (refused by a guard, no change blamed) and the workbook's windows burn,
the rules above decide, so a cooldown of the halt never holds back the page's playbook. No
alarm, or one that does not fire: exactly the rules above. Tests: tests/test_policy.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from guardian.config.model import SLO
from guardian.evaluation.change_guard import ChangeAlarm
from guardian.evaluation.changes import WorkloadChange
from guardian.evaluation.results import Evaluation, SLOResult
from guardian.playbooks.model import Playbook
from guardian.policy.guards import Facts, Run, refusal

__all__ = ["Decision", "Kind", "Run", "decide"]

Kind = Literal["ignore", "notify", "propose"]
RANK = {"ok": 0, "no_data": 0, "ticket": 1, "page": 2}


@dataclass(frozen=True)
class Decision:
    """What to do about one SLO."""

    slo: str
    kind: Kind
    status: str
    reason: str
    playbook: str | None = None
    change: WorkloadChange | None = None
    """The change the change guard blamed (its target), for the audit and the backtest."""


def decide(
    evaluation: Evaluation,
    slos: Sequence[SLO],
    playbooks: Mapping[str, Playbook],
    recent: Sequence[Run],
    now: datetime,
    paused: bool = False,
    has_suspect: bool = True,
    notify_from: Literal["page", "ticket", "none"] = "ticket",
    targets: Mapping[str, str] | None = None,
    alarms: Mapping[str, ChangeAlarm] | None = None,
) -> list[Decision]:
    """One decision per SLO of ``evaluation``; ``targets`` maps a playbook to what its run
    would touch (not given: not known; ``one_per_target`` then counts any open run of it);
    ``alarms`` are the change guard's, by SLO name (``None``: no change guard)."""
    by_name = {s.name: s for s in slos}
    facts = Facts(recent, now, paused, has_suspect, targets)
    found = alarms or {}
    decisions: list[Decision] = []
    for result in evaluation.slos:
        if result.name not in by_name:
            continue
        alarm = found.get(result.name)
        slo = by_name[result.name]
        decision = None
        if alarm is not None and alarm.firing and result.status != "no_data":
            decision = _guarded(result, slo, alarm, playbooks, facts)
        if decision is None or (decision.kind != "propose" and result.status != "ok"):
            decision = _decide(result, slo, playbooks, facts, notify_from)
        decisions.append(decision)
        if decision.kind == "propose" and decision.playbook:
            facts = _proposed(facts, decision)
    return decisions


def _proposed(facts: Facts, decision: Decision) -> Facts:
    """``facts`` with the run ``decision`` proposes counted as open, so that two SLOs burning
    in one evaluation never propose two runs of a playbook on the same target."""
    assert decision.playbook is not None
    target = decision.change.target if decision.change else None
    if target is None:
        target = (facts.targets or {}).get(decision.playbook, "")
    run = Run(decision.playbook, decision.slo, target, facts.now, True)
    return replace(facts, recent=[*facts.recent, run])


def _guarded(
    result: SLOResult,
    slo: SLO,
    alarm: ChangeAlarm,
    playbooks: Mapping[str, Playbook],
    facts: Facts,
) -> Decision:
    """The decision on a firing change alarm: halt the blamed change, or say why not."""
    status, why = result.status, f"change guard: {alarm.reason}"
    open_runs = [r for r in facts.recent if r.open and r.slo == slo.name]
    if open_runs:
        return Decision(
            slo.name, "ignore", status, f"execution of {open_runs[0].playbook} already open"
        )
    change = alarm.change
    if change is None:
        return Decision(slo.name, "notify", status, f"{why}; not halting anything")
    book = playbooks.get(alarm.playbook)
    if book is None:
        missing = f"{why}; playbook {alarm.playbook} is not loaded: add it to policy.playbooks"
        return Decision(slo.name, "notify", status, missing, alarm.playbook, change)
    targets = {**(facts.targets or {}), book.name: change.target}
    why_not = refusal(book, slo, replace(facts, has_suspect=True, targets=targets))
    if why_not:
        return Decision(slo.name, "notify", status, f"{why}; {why_not}", book.name, change)
    return Decision(slo.name, "propose", status, f"{why}: run {book.name}", book.name, change)


def _decide(
    result: SLOResult,
    slo: SLO,
    playbooks: Mapping[str, Playbook],
    facts: Facts,
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
    open_runs = [r for r in facts.recent if r.open and r.slo == slo.name]
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
    why_not = refusal(book, slo, facts)
    if why_not:
        return Decision(slo.name, "notify", status, why_not, book.name)
    return Decision(slo.name, "propose", status, f"{status}: run {book.name}", book.name)
