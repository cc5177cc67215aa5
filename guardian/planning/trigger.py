"""Trigger context: what playbook templates see when a playbook starts.

Input: the config, a playbook, the API server, Prometheus, ``--set`` params, the SLO that
burns, and optionally the change log, the burn's start and APF's debug data. Output: a
context with the suspects (ranked against the burn's start:
``guardian.evaluation.changes.rank``), the change the burn is blamed on (``change``: never
one that began after the burn started), the client to throttle (``offender``), APF's top
talkers (``talkers``) and the SLO's burn rates; and a target label for the execution
(``target_of``; ``suspect_target`` gives the same label from the suspects alone, for the
policy's ``one_per_target`` guard). ``--set change=Kind/ns/name`` and ``--set
offender=ns/name`` name the target by hand (a staging dry run on a quiet cluster:
``tests/test_staging_dry_run.py``). Called by ``guardian.pipeline`` (``Cycle`` proposals),
by ``guardian.app.commands.playbooks`` (``guardian playbook run``) and by
``guardian.app.wiring`` (``/guardian run``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from guardian.actions.base import KubeAPI
from guardian.config import Config
from guardian.errors import DataUnavailable, UsageError
from guardian.evaluation.budget import evaluation_budget
from guardian.evaluation.changes import ChangeLog, WorkloadChange, blame, rank
from guardian.evaluation.instant import evaluate
from guardian.evaluation.signals import slo_context
from guardian.evaluation.source import QuerySource
from guardian.planning.named import named_change, named_offender
from guardian.planning.suspects import Suspect, find_suspects
from guardian.planning.talkers import ApfReader, talkers_context
from guardian.playbooks import Playbook

Candidate = Suspect | WorkloadChange


def trigger_context(
    config: Config,
    book: Playbook,
    kube: KubeAPI,
    params: dict[str, str],
    prometheus: QuerySource,
    slo_name: str | None = None,
    since: int = 1800,
    changes: ChangeLog | None = None,
    burn_start: datetime | None = None,
    apf: ApfReader | None = None,
) -> tuple[dict[str, Any], str]:
    """Suspects, the blamed change, the offender, the SLO's burn rates and ``--set`` params;
    and the SLO name. Suspects come from ``changes`` when given (else from LISTs of the API
    server) and rank against ``burn_start`` (default: now). ``talkers`` (APF's top talkers,
    ``guardian.planning.talkers``) is read from ``apf`` only when the playbook names it, and
    is ``None`` when it could not be read.

    The SLO's evaluation is bounded by ``evaluation_budget``, as ``Cycle.evaluate`` is."""
    context: dict[str, Any] = {"params": params}
    if _uses_suspects(book):
        context.update(_suspects(kube, params, since, changes, burn_start))
    if "talkers" in book.needs:
        extra = config.policy.protected_subjects
        context["talkers"] = None if apf is None else talkers_context(apf, kube, extra)
    slo_name = slo_name or _slo_of(config, book)
    if slo_name:
        context["slo"] = _slo(config, slo_name, prometheus)
    return context, slo_name


def _suspects(
    kube: KubeAPI,
    params: dict[str, str],
    since: int,
    changes: ChangeLog | None,
    burn_start: datetime | None,
) -> dict[str, Any]:
    """``suspects``, ``change`` and ``offender``: named by ``--set`` first, else found."""
    found: dict[str, Any] = {}
    if params.get("change"):
        change = named_change(kube, params["change"])
        found["change"] = change
        found["suspects"] = [change]
    else:
        burn = burn_start or datetime.now(UTC)
        ranked = _ranked(kube, since, changes, burn)
        found["suspects"] = [c.to_json() for c in ranked]
        blamed = blame([c for c in ranked if isinstance(c, WorkloadChange)], burn)
        if blamed is not None:
            found["change"] = blamed.to_json()
    top = found["suspects"][0] if found["suspects"] else None
    if params.get("offender"):
        found["offender"] = named_offender(params["offender"])
    elif top is not None and top.get("service_account"):
        found["offender"] = {"namespace": top["namespace"], "name": top["service_account"]}
    return found


def _ranked(
    kube: KubeAPI, since: int, changes: ChangeLog | None, burn: datetime
) -> Sequence[Candidate]:
    window = timedelta(seconds=since)
    if changes is not None:
        return rank(changes.changes(burn - window, datetime.now(UTC)), burn)
    return find_suspects(kube, burn, window)  # type: ignore[arg-type]


def _slo_of(config: Config, book: Playbook) -> str:
    if book.trigger.slos:
        return book.trigger.slos[0]
    labels = dict(book.trigger.labels)
    matching = [
        s for s in config.slos if all(dict(s.labels).get(k) == v for k, v in labels.items())
    ]
    return matching[0].name if matching else ""


def _slo(config: Config, slo_name: str, prometheus: QuerySource) -> dict[str, Any]:
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
        return slo_context(evaluation.slos[0])
    except DataUnavailable:
        return {"name": slo_name, "status": "no_data", "short_burn": None}


def target_of(context: dict[str, Any]) -> str:
    """What a run started with ``context`` touches: the blamed change, else its top suspect
    ("Kind ns/name", with " in CLUSTER" when it names one: ``WorkloadChange.target``)."""
    top = context.get("change") or (context.get("suspects") or [None])[0]
    if top:
        where = f" in {top['cluster']}" if top.get("cluster") else ""
        return f"{top['kind']} {top['namespace']}/{top['name']}{where}"
    return ""


def suspect_target(book: Playbook, suspects: Sequence[Candidate]) -> str:
    """What a run of ``book`` proposed now would touch (``target_of`` its trigger context),
    for ``guardian.policy.decide``'s ``targets``: the top suspect when the playbook reads
    suspects, else empty."""
    top = suspects[:1] if _uses_suspects(book) else []
    return target_of({"suspects": [s.to_json() for s in top]})


def _uses_suspects(book: Playbook) -> bool:
    return bool({"suspects", "offender", "change"} & set(book.needs)) or (
        book.guards.require_suspect
    )
