"""The backtest's decisions: the policy replayed over a replay's steps, change guard included.

Input: the config, the playbooks, the workbook replay's steps, a ``QuerySource``
(Prometheus, for the change pairs' replay and the baseline burns) and a ``ChangeLog``
(kube-state-metrics in Prometheus: ``guardian.evaluation.change_log.PrometheusChangeLog``).
Output: ``Entry`` values, one each time the decision for an SLO changes to a ``propose`` or a
``notify`` (its kind, playbook or blamed change; the reason's numbers alone do not count);
``guardian.app.report`` writes them as JSON and as a table. The policy sees no open or
recent run (nothing executes in a replay) and the kill switch off; a suspect exists when a
change is in flight at that step (the change log is read only where that can matter).
Called by ``guardian.app.commands.evaluate`` (``guardian backtest``). Tests:
tests/test_incident.py (the bundled incident) and tests/test_change_guard.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from guardian.config.model import SLO, Config
from guardian.evaluation.change_guard import ChangeAlarm, baseline_burn, guarded
from guardian.evaluation.change_replay import ChangesAt, replay_alarms
from guardian.evaluation.changes import ChangeLog, WorkloadChange
from guardian.evaluation.replay import replay
from guardian.evaluation.results import Evaluation
from guardian.evaluation.source import QuerySource
from guardian.playbooks.model import Playbook
from guardian.policy.decide import Decision, decide

LOOKBACK = 6 * 3600
"""Seconds before a step within which a change must have begun to be seen at that step."""


@dataclass(frozen=True)
class Entry:
    """A decision of the replayed policy, at the step where it became the decision."""

    at: datetime
    decision: Decision


def replay_decisions(
    config: Config,
    playbooks: Mapping[str, Playbook],
    steps: Sequence[Evaluation],
    source: QuerySource,
    log: ChangeLog,
) -> tuple[list[Entry], str]:
    """The decisions over ``steps`` and an error (empty when every query succeeded)."""
    if not steps:
        return [], ""
    cache: dict[datetime, list[WorkloadChange]] = {}

    def changes_at(at: datetime) -> list[WorkloadChange]:
        if at not in cache:
            cache[at] = log.changes(at - timedelta(seconds=LOOKBACK), at)
        return cache[at]

    found, error = _alarms(config, steps, source, changes_at)
    if error:
        return [], error
    entries: list[Entry] = []
    last: dict[str, tuple[str, str | None, str | None]] = {}
    for step, alarms in zip(steps, found, strict=True):
        suspect = bool(alarms) or (
            _asks_suspect(config.slos, playbooks, step)
            and any(c.in_flight for c in changes_at(step.at))
        )
        for decision in decide(
            step, config.slos, playbooks, (), step.at, has_suspect=suspect,
            notify_from=config.policy.notify, alarms=alarms,
        ):  # fmt: skip
            target = decision.change.target if decision.change else None
            key = (decision.kind, decision.playbook, target)
            if last.get(decision.slo) != key and decision.kind != "ignore":
                entries.append(Entry(step.at, decision))
            last[decision.slo] = key
    return entries, ""


def _asks_suspect(slos: Sequence[SLO], playbooks: Mapping[str, Playbook], step: Evaluation) -> bool:
    """True when a playbook that needs a suspect matches an SLO burning at ``step`` (only
    then is the change log read for the suspect guard)."""
    by_name = {s.name: s for s in slos}
    return any(
        book.guards.require_suspect and book.trigger.matches(by_name[r.name], r.status)
        for r in step.slos
        if r.status in ("page", "ticket") and r.name in by_name
        for book in playbooks.values()
    )


def _alarms(
    config: Config,
    steps: Sequence[Evaluation],
    source: QuerySource,
    changes_at: ChangesAt,
) -> tuple[list[dict[str, ChangeAlarm]], str]:
    """The change guard's alarms at each step (none anywhere without a ``change_guard``)."""
    guard = config.change_guard
    if guard is None:
        return [{} for _ in steps], ""
    chosen = [guarded(s, guard) for s in config.slos if guard.selects(s)]
    settings = config.prometheus
    seconds = int((steps[1].at - steps[0].at).total_seconds()) if len(steps) > 1 else 60
    change_steps = replay(
        chosen, source, steps[0].at, steps[-1].at, seconds, settings.source,
        settings.parallel_queries,
    )  # fmt: skip
    if change_steps.error:
        return [], change_steps.error

    def base(slo: SLO, change: WorkloadChange) -> float | None:
        return baseline_burn(slo, guard, source, change, settings.source)

    return replay_alarms(config.slos, guard, change_steps.steps, changes_at, base), ""
