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

from guardian.actions.base import KubeAPI
from guardian.audit.records import OPEN_STATES
from guardian.clients.store import Store
from guardian.config import Config
from guardian.evaluation.results import Evaluation
from guardian.evaluation.run import QuerySource, evaluate, evaluation_budget
from guardian.executor.runner import Runner
from guardian.planning.suspects import find_suspects
from guardian.planning.trigger import target_of, trigger_context
from guardian.playbooks import Playbook
from guardian.policy.decide import Decision, Run, decide


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
