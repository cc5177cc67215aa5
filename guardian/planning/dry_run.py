"""A dry run of a playbook: every step planned and sent with ``dryRun=All``; nothing changes.

Input: a playbook, a trigger context, a way to reach the API server (``KubeFor``) and the
guardrails. Output: one ``StepCheck`` per step (its plan, why it was skipped, or the problem
found, why it could not be checked: a target the context does not have, such as no change
on a quiet staging cluster, or a warning that a run now would refuse it for APF's traffic).
Called by ``Runner.dry_run`` (``guardian.executor.shell``), which ``guardian playbook run
--dry-run`` (``guardian.app.commands.playbooks``) and ``/guardian run ... --dry-run``
(``guardian.app.chatops``) use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from guardian.actions import Plan, execute
from guardian.actions.base import Guardrails
from guardian.actions.throttle_talkers import TalkerRefused
from guardian.planning.plans import (
    PLANNING_ERRORS,
    KubeFor,
    error_text,
    plan_on,
    present,
)
from guardian.playbooks import template
from guardian.playbooks.model import Playbook, Step


@dataclass(frozen=True)
class StepCheck:
    """What a dry run found for one step."""

    step: str
    action: str
    approval: str
    plan: Plan | None
    skipped: str = ""
    problems: tuple[str, ...] = ()
    unchecked: str = ""
    """Why the step could not be checked (its target is not in the context); not a failure:
    name the target with ``--set`` to check it."""
    warning: str = ""
    """Accepted by the API server, but a run now would be refused for what APF's traffic
    shows (the subject is not among the top talkers, or none are known)."""


def dry_run(
    book: Playbook, context: Mapping[str, Any], kube_for: KubeFor, guardrails: Guardrails
) -> list[StepCheck]:
    """Plan every step of ``book`` and check each change with ``dryRun=All``."""
    checks = []
    for step in book.steps:
        if step.when is not None and not present(step.when, context):
            skipped = f"{step.when} is not given"
            checks.append(StepCheck(step.name, step.action, step.approval, None, skipped=skipped))
            continue
        try:
            plan, kube = plan_on(kube_for, step, context, guardrails)
            guardrails.check(plan)
            execute(kube, plan, dry_run=True)
        except template.Unresolved as exc:
            why = f"{exc}; name it with --set (e.g. change=Kind/ns/name, offender=ns/name)"
            checks.append(StepCheck(step.name, step.action, step.approval, None, unchecked=why))
            continue
        except TalkerRefused as exc:
            checks.append(_without_traffic(step, context, kube_for, guardrails, exc.message))
            continue
        except PLANNING_ERRORS as exc:
            problems = (error_text(exc),)
            checks.append(StepCheck(step.name, step.action, step.approval, None, problems=problems))
            continue
        checks.append(StepCheck(step.name, step.action, step.approval, plan))
    return checks


def _without_traffic(
    step: Step, context: Mapping[str, Any], kube_for: KubeFor, guardrails: Guardrails, why: str
) -> StepCheck:
    """The step checked without its top-talker condition, with why a run now would refuse."""
    warning = f"a run now would refuse: {why}"
    try:
        plan, kube = plan_on(kube_for, step, context, guardrails, traffic_checks=False)
        guardrails.check(plan)
        execute(kube, plan, dry_run=True)
    except PLANNING_ERRORS as exc:
        return StepCheck(step.name, step.action, step.approval, None, problems=(error_text(exc),))
    return StepCheck(step.name, step.action, step.approval, plan, warning=warning)
