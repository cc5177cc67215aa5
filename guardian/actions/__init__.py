"""The action catalogue: name → parameters model, ``plan`` and ``verify``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from guardian.actions import pause_rollout, scale_apiserver, shed_nodes, throttle_client
from guardian.actions.base import KubeAPI, Outcome, Plan, execute, undo


@dataclass(frozen=True)
class Action:
    """One entry of the catalogue."""

    name: str
    params: type[BaseModel]
    plan: Callable[[KubeAPI, Any], Plan]
    verify: Callable[[KubeAPI, Plan], list[str]]
    summary: str


CATALOGUE: dict[str, Action] = {
    "pause-rollout": Action(
        "pause-rollout",
        pause_rollout.PauseRolloutParams,
        pause_rollout.plan,
        pause_rollout.verify,
        "pause a Deployment/StatefulSet/DaemonSet/Rollout (rollback, quarantine)",
    ),
    "scale-apiserver": Action(
        "scale-apiserver",
        scale_apiserver.ScaleApiserverParams,
        scale_apiserver.plan,
        scale_apiserver.verify,
        "add API-server replicas to a hosted control plane, never above a maximum",
    ),
    "shed-nodes": Action(
        "shed-nodes",
        shed_nodes.ShedNodesParams,
        shed_nodes.plan,
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

__all__ = ["CATALOGUE", "Action", "Outcome", "Plan", "execute", "undo"]
