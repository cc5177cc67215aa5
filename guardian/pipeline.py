"""guardian's pipeline: the one module that states the order of the stages.

    evaluation → policy → planning → approval → executor → audit

``Cycle.tick`` is one turn of it. ``evaluate`` asks Prometheus for every SLO
(``guardian.evaluation``: an ``Evaluation``, nothing written). ``act`` audits each SLO whose
status changed (an ``evaluation`` row); reads the change log (``changes``: the watch, or
kube-state-metrics; without one, LISTs of ``guardian.planning.suspects`` while an SLO burns)
and, while a change arms it, runs the change guard (``guardian.evaluation.change_guard``);
lets the policy decide (``guardian.policy``: a ``Decision`` per SLO, nothing proposed while
the kill switch is engaged); audits each decision that changed (a ``decision`` row) and
announces a ``notify`` once per episode; for a ``propose`` it plans the run
(``guardian.planning.trigger``: its context, suspects ranked against the burn's start, APF's
top talkers; and its target; then the alarm's blamed change, what it touched and its client
as the offender) and hands it to the
executor (``guardian.executor``), which moves it as far as it goes without a human (at once
with ``advance_now``; the daemon leaves that to its progress job): it asks for approval
(``guardian.approval``) and appends its own audit rows.

Input: the config, the playbooks, the store (through ``CycleStore``: the ports of
``guardian.audit.ports`` and the executions), a ``Runner``, the API server, Prometheus, the
change log and APF's debug data.
Output: the policy's decisions for this evaluation. Built once per loaded config by the
composition root (``guardian.app.wiring``); the daemon (``guardian.app.daemon``: ``guardian
run``, and ``guardian slack``, the same daemon in the foreground) evaluates on its interval
and calls ``act`` while it leads; the tests call ``tick``, ``act`` and ``evaluate``. It sits
below ``guardian.clients``: the store arrives through the Protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from guardian.actions.base import KubeAPI
from guardian.audit.kinds import AuditKind
from guardian.audit.ports import AuditWriter, PipelineMemory, Settings
from guardian.audit.records import OPEN_STATES, Execution
from guardian.audit.switch import KillSwitch
from guardian.config import Config
from guardian.errors import DataUnavailable
from guardian.evaluation.burn_began import burn_began
from guardian.evaluation.change_guard import ChangeAlarm, check_now
from guardian.evaluation.changes import ChangeLog, WorkloadChange, rank
from guardian.evaluation.results import Evaluation
from guardian.evaluation.run import QuerySource, evaluate, evaluation_budget
from guardian.executor.runner import Runner
from guardian.planning.named import named_change
from guardian.planning.suspects import Suspect, find_suspects
from guardian.planning.talkers import ApfReader
from guardian.planning.touched import touched
from guardian.planning.trigger import suspect_target, target_of, trigger_context
from guardian.playbooks import Playbook
from guardian.policy.decide import Decision, Run, decide

log = logging.getLogger(__name__)

IN_FLIGHT_REACH = 6 * 3600
"""Seconds back the change log is read: a change begun that long ago and still in flight
arms the change guard (a DaemonSet's rollout over thousands of nodes takes hours)."""


class CycleStore(AuditWriter, Settings, PipelineMemory, Protocol):
    """What a cycle needs of the store: the audit log, the settings (the kill switch), what
    it last wrote per SLO, and the recent executions (for the policy's guards)."""

    def executions(
        self, states: Sequence[str] = (), playbook: str | None = None, limit: int = 100
    ) -> list[Execution]: ...


@dataclass
class Cycle:
    """Everything one evaluation cycle needs."""

    config: Config
    playbooks: dict[str, Playbook]
    store: CycleStore
    runner: Runner
    kube: KubeAPI
    prometheus: QuerySource
    suspect_window: int = 1800
    changes: ChangeLog | None = None
    """The change log (the API server's watch, kube-state-metrics as its fallback); ``None``:
    suspects come from LISTs of the API server while an SLO burns, and no change guard."""
    apf: ApfReader | None = None
    """APF's debug data, for the top talkers of a proposal whose playbook names them."""
    advance_now: bool = True
    """Move a proposed run as far as it goes at once; the daemon leaves that to its progress
    job, so a step that verifies for minutes never holds up the next evaluation."""

    def tick(self, now: datetime | None = None) -> list[Decision]:
        """Evaluate every SLO, decide, propose; returns the decisions."""
        return self.act(self.evaluate(), now)

    def evaluate(self) -> Evaluation:
        """Every SLO now (what a follower does too, for its metrics); writes nothing."""
        return self.evaluate_all()[0]

    def evaluate_all(self) -> tuple[Evaluation, str]:
        """Every SLO now, and the error of the queries that failed ("" when none did);
        writes nothing. Bounded by ``evaluation_budget``, so the daemon's interval holds."""
        config = self.config
        return evaluate(
            config.slos,
            self.prometheus,
            None,
            config.prometheus.source,
            config.prometheus.parallel_queries,
            evaluation_budget(config.prometheus.timeout, config.daemon.interval),
        )

    def act(self, evaluation: Evaluation, now: datetime | None = None) -> list[Decision]:
        """Audit status changes, decide, propose and start runs (the leader's part)."""
        at = now or datetime.now(UTC)
        config = self.config
        self._audit_status(evaluation, at)
        recent = [
            Run(e.playbook, e.slo, e.target, e.created_at, e.state in OPEN_STATES)
            for e in self.store.executions(limit=200)
            if at - e.created_at < timedelta(hours=2) or e.state in OPEN_STATES
        ]
        log = self._changes(at)
        alarms = self._alarms(log, at)
        burning = any(r.status in ("page", "ticket") for r in evaluation.slos)
        window = timedelta(seconds=self.suspect_window)
        suspects: Sequence[Suspect | WorkloadChange] = []
        if self.changes is not None:
            suspects = rank([c for c in log if c.started >= at - window], at)
        elif burning:
            suspects = find_suspects(self.kube, at, window)  # type: ignore[arg-type]
        decisions = decide(
            evaluation,
            config.slos,
            self.playbooks,
            recent,
            at,
            paused=KillSwitch(self.store).engaged(),
            has_suspect=bool(suspects),
            notify_from=config.policy.notify,
            targets={name: suspect_target(book, suspects) for name, book in self.playbooks.items()},
            alarms=alarms or None,
        )
        for decision in decisions:
            self._record(decision, at)
            if decision.kind == "propose" and decision.playbook:
                alarm = alarms.get(decision.slo)
                began = alarm.burn_start if alarm else self._began(evaluation, decision.slo, at)
                self._propose(self.playbooks[decision.playbook], decision.slo, began, alarm)
        return decisions

    def _changes(self, at: datetime) -> list[WorkloadChange]:
        """The change log's entries that may matter now (none without a change log)."""
        if self.changes is None:
            return []
        guard = self.config.change_guard
        reach = max(self.suspect_window, guard.guard_window if guard else 0, IN_FLIGHT_REACH)
        try:
            return self.changes.changes(at - timedelta(seconds=reach), at)
        except DataUnavailable as exc:
            log.warning("change log: %s", exc.message)
            return []

    def _alarms(self, changes: list[WorkloadChange], at: datetime) -> dict[str, ChangeAlarm]:
        """The change guard's alarms (none without a guard, or while no change arms it)."""
        if not changes:
            return {}
        guard, settings = self.config.change_guard, self.config.prometheus
        if guard is None:
            return {}
        return check_now(
            self.config.slos,
            guard,
            changes,
            self.prometheus,
            at,
            settings.source,
            settings.parallel_queries,
            evaluation_budget(settings.timeout, self.config.daemon.interval),
        )

    def _began(self, evaluation: Evaluation, slo_name: str, at: datetime) -> datetime | None:
        """When the workbook burn of ``slo_name`` began (``None``: unknown, rank against now)."""
        result = next((r for r in evaluation.slos if r.name == slo_name), None)
        slo = next((s for s in self.config.slos if s.name == slo_name), None)
        if result is None or slo is None:
            return None
        settings = self.config.prometheus
        budget = evaluation_budget(settings.timeout, self.config.daemon.interval)
        return burn_began(slo, result, self.prometheus, at, settings.source, budget)

    def _propose(
        self,
        book: Playbook,
        slo_name: str,
        began: datetime | None = None,
        alarm: ChangeAlarm | None = None,
    ) -> None:
        """Propose ``book`` for the SLO and move the run as far as it goes without a human.
        Suspects rank against ``began`` (the burn's start; ``None``: now); with a change
        alarm, ``change`` is the change the alarm blamed."""
        context, slo = trigger_context(
            self.config,
            book,
            self.kube,
            {},
            self.prometheus,
            slo_name,
            self.suspect_window,
            self.changes,
            began,
            self.apf,
        )
        if alarm is not None and alarm.change is not None:
            change = context["change"] = alarm.change.to_json()
            names, count = touched(self.kube, change)
            change.update(touched=names, touched_count=count)
            if not change["service_account"]:  # kube-state-metrics does not say: ask
                spec = f"{change['kind']}/{change['namespace']}/{change['name']}"
                change["service_account"] = named_change(self.kube, spec).get("service_account", "")
            context.pop("offender", None)  # the blamed change's client, not another suspect's
            if change["service_account"]:
                context["offender"] = {
                    "namespace": change["namespace"],
                    "name": change["service_account"],
                }
        execution = self.runner.propose(
            book.name, context, "guardian", "policy", slo, target_of(context)
        )
        if self.advance_now:
            self.runner.advance(execution.id)

    def _audit_status(self, evaluation: Evaluation, at: datetime) -> None:
        """An ``evaluation`` audit row for every SLO whose status changed since the last."""
        memory = self.store
        for slo in evaluation.slos:
            if memory.last_status(slo.name) != slo.status:
                memory.remember_status(slo.name, slo.status, at)
                self._audit("evaluation", at, slo.name, status=slo.status, reason=slo.reason)

    def _record(self, decision: Decision, at: datetime) -> None:
        """Announce a ``notify`` once per episode (not on every new reason), and a
        ``decision`` audit row for every decision that changed since the last."""
        memory, slo = self.store, decision.slo
        if memory.last_announced(slo) != decision.kind:
            memory.remember_announced(slo, decision.kind, at)
            if decision.kind == "notify":
                self.runner.notifier.announce(slo, decision.reason)
        text = f"{decision.kind}:{decision.playbook or ''}:{decision.reason}"
        if memory.last_decision(slo) != text:
            memory.remember_decision(slo, text, at)
            self._audit(
                "decision",
                at,
                slo,
                decision=decision.kind,
                playbook=decision.playbook,
                reason=decision.reason,
            )

    def _audit(self, kind: AuditKind, at: datetime, slo: str, **detail: Any) -> None:
        """An audit row of the pipeline's own (actor ``guardian``, via ``policy``)."""
        self.store.record(kind, at, None, "guardian", "policy", slo=slo, **detail)
