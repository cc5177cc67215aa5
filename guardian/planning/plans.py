"""A playbook step made concrete: its plan on the API server, and the blast radius.

Input: a step of a playbook, the execution's trigger context, a way to reach the API server
per kubeconfig context (``KubeFor``) and the guardrails from configuration. Output: the
step's ``Plan`` (``make_plan``), the plan an approver is shown (``preview``: read-only, a plan
or the error), the refusal when a run would change more than ``max_changes`` objects
(``blast_radius``), whether a step's ``when`` holds (``present``) and an error as one line
(``error_text``). Called by the executor (``guardian.executor.shell``: plans and previews;
``guardian.executor.machine``: blast radius, ``when``; ``guardian.executor.undo``: the API
server of a step) and the dry run (``guardian.planning.dry_run``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from guardian.actions import CATALOGUE, Plan, Refused
from guardian.actions.base import Guardrails, KubeAPI
from guardian.audit.records import StepRecord
from guardian.errors import GuardianError
from guardian.playbooks import template
from guardian.playbooks.model import Step

KubeFor = Callable[[str | None], KubeAPI]
"""The API server for a kubeconfig context (``None``: the default one)."""

PLANNING_ERRORS = (GuardianError, template.TemplateError, ValidationError)
"""What planning a step may raise that ends the step (``error_text`` makes it one line)."""


def kube_of(kube_for: KubeFor, step: Step, context: Mapping[str, Any]) -> KubeAPI:
    """The API server ``step`` runs against (its ``context`` rendered from the trigger)."""
    where = template.render(step.context, context) if step.context else None
    return kube_for(where)


def make_plan(
    kube_for: KubeFor, step: Step, context: Mapping[str, Any], guardrails: Guardrails
) -> Plan:
    """The concrete changes ``step`` makes now, its parameters rendered from ``context``."""
    return plan_on(kube_for, step, context, guardrails)[0]


def plan_on(
    kube_for: KubeFor,
    step: Step,
    context: Mapping[str, Any],
    guardrails: Guardrails,
    traffic_checks: bool = True,
) -> tuple[Plan, KubeAPI]:
    """``make_plan``, and the API server it was made on (the parameters are checked first).
    Without ``traffic_checks`` the step's top-talker condition is left out (a dry run checks
    what the API server would accept, whoever floods it now)."""
    action = CATALOGUE[step.action]
    # a context made before guardian read APF's top talkers (or by hand) has none: unknown
    rendered = template.render(step.params, {"talkers": None, **context})
    if not traffic_checks and isinstance(rendered, dict):
        rendered = {k: v for k, v in rendered.items() if k not in ("talkers", "require_top_talker")}
    params = action.params.model_validate(rendered)
    kube = kube_of(kube_for, step, context)
    return action.plan(kube, params, guardrails), kube


def preview(
    kube_for: KubeFor, step: Step, context: Mapping[str, Any], guardrails: Guardrails
) -> dict[str, Any]:
    """The plan the approver will be asked about (read-only; re-made once approved): the
    plan's JSON, or ``{"error": ...}``. ``Refused`` (a protected target) is raised."""
    try:
        return make_plan(kube_for, step, context, guardrails).to_json()
    except Refused:
        raise
    except PLANNING_ERRORS as exc:
        return {"error": error_text(exc)}


def blast_radius(
    plan: Plan, step_index: int, records: Iterable[StepRecord], max_changes: int
) -> str:
    """Why ``plan`` may not run as step ``step_index`` (the changes of the steps planned
    before it and its own would exceed ``max_changes``); "" when it may."""
    already = sum(len(s.plan["changes"]) for s in records if s.plan and s.step < step_index)
    if already + len(plan.changes) > max_changes:
        return (
            f"blast radius: {already + len(plan.changes)} changes would exceed the "
            f"maximum of {max_changes}"
        )
    return ""


def present(path: str, context: Mapping[str, Any]) -> bool:
    """True when ``path`` (a step's ``when``) names a value in the trigger context."""
    try:
        return bool(template.lookup(path, context))
    except template.TemplateError:
        return False


def error_text(exc: Exception) -> str:
    """A planning error as one line (the first of a pydantic error, with where it is)."""
    if isinstance(exc, GuardianError):
        return exc.message
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        message = str((first.get("ctx") or {}).get("error", first["msg"]))
        return f"{where}: {message}" if where else message
    return str(exc)
