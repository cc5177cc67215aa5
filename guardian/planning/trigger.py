"""Trigger context: what playbook templates see when a playbook starts.

Input: the config, a playbook, the API server, Prometheus, ``--set`` params and the SLO that
burns. Output: a context with the suspects, their offender and the SLO's burn rates, and a
target label for the execution (``target_of``; ``suspect_target`` gives the same label from
the suspects alone, for the policy's ``one_per_target`` guard). Called by ``guardian.pipeline``
(``Cycle`` proposals), by ``guardian.app.commands.playbooks`` (``guardian playbook run``) and
by ``guardian.app.wiring`` (``/guardian run``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from guardian.actions.base import KubeAPI
from guardian.config import Config
from guardian.errors import DataUnavailable, UsageError
from guardian.evaluation.budget import evaluation_budget
from guardian.evaluation.instant import evaluate
from guardian.evaluation.signals import slo_context
from guardian.evaluation.source import QuerySource
from guardian.planning.suspects import Suspect, find_suspects
from guardian.playbooks import Playbook


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
    context: dict[str, Any] = {"params": params}
    if _uses_suspects(book):
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


def target_of(context: dict[str, Any]) -> str:
    """What a run started with ``context`` touches: its top suspect ("Kind ns/name")."""
    suspects = context.get("suspects") or []
    if suspects:
        top = suspects[0]
        return f"{top['kind']} {top['namespace']}/{top['name']}"
    return ""


def suspect_target(book: Playbook, suspects: Sequence[Suspect]) -> str:
    """What a run of ``book`` proposed now would touch (``target_of`` its trigger context),
    for ``guardian.policy.decide``'s ``targets``: the top suspect when the playbook reads
    suspects, else empty."""
    top = suspects[:1] if _uses_suspects(book) else []
    return target_of({"suspects": [s.to_json() for s in top]})


def _uses_suspects(book: Playbook) -> bool:
    return bool({"suspects", "offender"} & set(book.needs)) or book.guards.require_suspect
