"""What a blamed change touched: the nodes (DaemonSet) or pods (others) its pods run on.

Input: the API server and a change as a trigger context holds it (``kind``, ``namespace``,
``name``). Output: the names, sorted, at most ``LIMIT`` of them, and how many there are in
all. Read once, when a run is proposed for the change (one GET of the workload and one LIST
of its pods by its selector, in its namespace), never in steady state: the change log itself
watches only the workloads. Called by ``guardian.pipeline`` (``Cycle._propose``, for a run
proposed on an SLO whose change alarm blamed a change);
tests: tests/test_rollout_guard.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from guardian.actions.base import KubeAPI
from guardian.errors import GuardianError
from guardian.planning.named import PATHS

LIMIT = 1000
"""Names kept in the context (the count is always the whole)."""


def touched(kube: KubeAPI, change: Mapping[str, Any]) -> tuple[list[str], int]:
    """Node names (a DaemonSet) or pod names (the other kinds) of the change's pods, and
    their number; ``([], 0)`` when the workload or its pods cannot be read."""
    kind, namespace, name = change["kind"], change["namespace"], change["name"]
    try:
        workload = kube.get(PATHS[kind].format(ns=namespace, name=name))
        labels = (workload.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
        if not labels:
            return [], 0
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        pods = kube.list(f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": selector})
        daemons = kind == "DaemonSet"
        found = {_node(p) if daemons else str(p["metadata"]["name"]) for p in pods}
        names = sorted(found - {""})
    except GuardianError:
        return [], 0
    return names[:LIMIT], len(names)


def _node(pod: Mapping[str, Any]) -> str:
    return str(pod.get("spec", {}).get("nodeName") or "")
