"""One cycle of guardian's main job: evaluate → decide → propose, with the audit it needs.

Input: the config, the playbooks, the store, a ``Runner``, the API server and Prometheus.
Output: the policy's decisions for this evaluation; proposed executions moved as far as they
go without a human; an ``evaluation`` audit row for every SLO whose status changed and a
``decision`` row for every decision that changed. The daemon calls ``tick`` on its
interval; ``guardian slack`` and the tests call it too. ``trigger_context`` builds what
playbook templates see (also for runs asked for by hand).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from guardian.actions.base import KubeAPI
from guardian.config import Config
from guardian.errors import DataUnavailable, UsageError
from guardian.evaluation import Evaluation
from guardian.pipeline import QuerySource, evaluate, evaluation_budget, slo_context
from guardian.playbooks import Playbook
from guardian.policy import Decision, Run, decide
from guardian.runner import Runner
from guardian.store import OPEN_STATES, Store
from guardian.suspects import find_suspects


def trigger_context(
    config: Config,
    book: Playbook,
    kube: KubeAPI,
    params: dict[str, str],
    prometheus: QuerySource,
    slo_name: str | None = None,
    since: int = 1800,
) -> tuple[dict[str, Any], str]:
    """Suspects, their offender, the SLO's burn rates and ``--set`` params; and the SLO name.

    The SLO's evaluation is bounded by ``evaluation_budget``, as ``Cycle.evaluate`` is."""
    from guardian.suspects import find_suspects

    context: dict[str, Any] = {"params": params}
    if {"suspects", "offender"} & set(book.needs) or book.guards.require_suspect:
        now = datetime.now(UTC)
        suspects = find_suspects(kube, now, timedelta(seconds=since))  # type: ignore[arg-type]
        context["suspects"] = [s.to_json() for s in suspects]
        if suspects and suspects[0].service_account:
            top = suspects[0]
            context["offender"] = {"namespace": top.namespace, "name": top.service_account}
    slo_name = slo_name or (book.trigger.slos[0] if book.trigger.slos else "")
    if not slo_name:
        labels = dict(book.trigger.labels)
        matching = [
            s for s in config.slos if all(dict(s.labels).get(k) == v for k, v in labels.items())
        ]
        slo_name = matching[0].name if matching else ""
    if slo_name:
        try:
            slo = config.slo(slo_name)
        except KeyError:
            raise UsageError(f"SLO {slo_name}: no such SLO in {', '.join(config.files)}") from None
        settings = config.prometheus
        try:
            evaluation, _ = evaluate(
                [slo],
                prometheus,
                None,
                settings.source,
                settings.parallel_queries,
                evaluation_budget(settings.timeout, config.daemon.interval),
            )
            context["slo"] = slo_context(evaluation.slos[0])
        except DataUnavailable:
            context["slo"] = {"name": slo_name, "status": "no_data", "short_burn": None}
    return context, slo_name


@dataclass
class Cycle:
    """Everything one evaluation cycle needs."""

    config: Config
    playbooks: dict[str, Playbook]
    store: Store
    runner: Runner
    kube: KubeAPI
    prometheus: QuerySource
    suspect_window: int = 1800

    def tick(self, now: datetime | None = None) -> list[Decision]:
        """Evaluate every SLO, decide, propose; returns the decisions."""
        return self.act(self.evaluate(), now)

    def evaluate(self) -> Evaluation:
        """Every SLO now (what a follower does too, for its metrics); writes nothing.

        Bounded by ``evaluation_budget``, so the daemon's interval holds.
        """
        config = self.config
        evaluation, _ = evaluate(
            config.slos,
            self.prometheus,
            None,
            config.prometheus.source,
            config.prometheus.parallel_queries,
            evaluation_budget(config.prometheus.timeout, config.daemon.interval),
        )
        return evaluation

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
        burning = any(r.status in ("page", "ticket") for r in evaluation.slos)
        has_suspect = burning and bool(
            find_suspects(self.kube, at, timedelta(seconds=self.suspect_window))  # type: ignore[arg-type]
        )
        decisions = decide(
            evaluation,
            config.slos,
            self.playbooks,
            recent,
            at,
            paused=self.store.setting("paused", "false") == "true",
            has_suspect=has_suspect,
            notify_from=config.policy.notify,
        )
        for decision in decisions:
            self._record(decision, at)
            if decision.kind == "propose" and decision.playbook:
                self._propose(self.playbooks[decision.playbook], decision.slo)
        return decisions

    def _propose(self, book: Playbook, slo_name: str) -> None:
        """Propose ``book`` for the SLO and move the run as far as it goes without a human."""
        context, slo = trigger_context(
            self.config, book, self.kube, {}, self.prometheus, slo_name, self.suspect_window
        )
        execution = self.runner.propose(
            book.name, context, "guardian", "policy", slo, target_of(context)
        )
        self.runner.advance(execution.id)

    def _audit_status(self, evaluation: Evaluation, at: datetime) -> None:
        """An ``evaluation`` audit row for every SLO whose status changed since the last."""
        for result in evaluation.slos:
            key = f"status:{result.name}"
            if self.store.setting(key) != result.status:
                self.store.set_setting(key, result.status, at)
                self.store.record(
                    "evaluation",
                    at,
                    None,
                    "guardian",
                    "policy",
                    slo=result.name,
                    status=result.status,
                    reason=result.reason,
                )

    def _record(self, decision: Decision, at: datetime) -> None:
        announced = f"announced:{decision.slo}"
        if self.store.setting(announced) != decision.kind:
            self.store.set_setting(announced, decision.kind, at)
            if decision.kind == "notify":  # once per episode, not on every new reason
                self.runner.notifier.announce(decision.slo, decision.reason)
        key = f"decision:{decision.slo}"
        text = f"{decision.kind}:{decision.playbook or ''}:{decision.reason}"
        if self.store.setting(key) != text:
            self.store.set_setting(key, text, at)
            self.store.record(
                "decision",
                at,
                None,
                "guardian",
                "policy",
                slo=decision.slo,
                decision=decision.kind,
                playbook=decision.playbook,
                reason=decision.reason,
            )


def target_of(context: dict[str, Any]) -> str:
    suspects = context.get("suspects") or []
    if suspects:
        top = suspects[0]
        return f"{top['kind']} {top['namespace']}/{top['name']}"
    return ""
