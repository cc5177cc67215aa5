"""The action catalogue: name → parameters model, ``plan`` and ``verify``.

Input: an action's name. Output: its ``Action`` (parameters model, ``plan``, ``verify``,
summary); ``execute`` and ``undo`` (``guardian.actions.base``) apply or reverse a ``Plan``.
``plan(kube, params, guardrails)`` takes the configured ``Guardrails`` (protected subjects,
blast radius) as an optional third argument; without it the built-in limits still hold.
Called by the executor (``guardian.executor``: shell, verify, undo, machine, moves), planning
(``guardian.planning.plans``, ``dry_run``), ``guardian.app.commands.cluster`` (``guardian
act``), ``guardian.app.wiring`` (the parameter models, to load playbooks) and ``bench/shed.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from guardian.actions import (
    halt_change,
    pause_rollout,
    scale_apiserver,
    shed_nodes,
    throttle_client,
)
from guardian.actions.base import (
    BUILT_IN,
    Guardrails,
    KubeAPI,
    Outcome,
    Plan,
    Refused,
    execute,
    undo,
)


class Planner(Protocol):
    """An action's ``plan``: parameters (and the configured guardrails) → a ``Plan``."""

    def __call__(self, kube: KubeAPI, params: Any, guardrails: Guardrails = ..., /) -> Plan: ...


def _unguarded(plan: Callable[[KubeAPI, Any], Plan]) -> Planner:
    """A ``plan`` that has no configurable guardrail of its own."""

    def planner(kube: KubeAPI, params: Any, guardrails: Guardrails = BUILT_IN, /) -> Plan:
        del guardrails
        return plan(kube, params)

    return planner


@dataclass(frozen=True)
class Action:
    """One entry of the catalogue."""

    name: str
    params: type[BaseModel]
    plan: Planner
    verify: Callable[[KubeAPI, Plan], list[str]]
    summary: str


CATALOGUE: dict[str, Action] = {
    "halt-change": Action(
        "halt-change",
        halt_change.HaltChangeParams,
        _unguarded(halt_change.plan),
        halt_change.verify,
        "halt the change a burn is blamed on: quarantine, OnDelete, pause, partition, abort",
    ),
    "pause-rollout": Action(
        "pause-rollout",
        pause_rollout.PauseRolloutParams,
        _unguarded(pause_rollout.plan),
        pause_rollout.verify,
        "pause a Deployment/StatefulSet/DaemonSet/Rollout (rollback, quarantine)",
    ),
    "scale-apiserver": Action(
        "scale-apiserver",
        scale_apiserver.ScaleApiserverParams,
        _unguarded(scale_apiserver.plan),
        scale_apiserver.verify,
        "add API-server replicas to a hosted control plane, never above a maximum",
    ),
    "shed-nodes": Action(
        "shed-nodes",
        shed_nodes.ShedNodesParams,
        _unguarded(shed_nodes.plan),
        shed_nodes.verify,
        "cordon, drain or delete nodes in batches above a floor, or scale a MachineDeployment",
    ),
    "throttle-client": Action(
        "throttle-client",
        throttle_client.ThrottleClientParams,
        throttle_client.plan,
        throttle_client.verify,
        "put a service account, user or group into a small APF priority level",
    ),
}

__all__ = [
    "CATALOGUE",
    "Action",
    "Guardrails",
    "Outcome",
    "Plan",
    "Planner",
    "Refused",
    "execute",
    "undo",
]
