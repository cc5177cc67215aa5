"""``shed-nodes``: take nodes out of service in batches, never below a floor.

Input: ``ShedNodesParams``. Output: a ``Plan`` whose changes are grouped in batches: cordon
(``spec.unschedulable``), optionally drain through the Eviction API (PodDisruptionBudgets are
the API server's to enforce: a refused eviction stops the drain) or delete the Node objects
(undo re-creates them from the plan's snapshot). Or the Cluster API way: scale a
``MachineDeployment`` down. Nodes are read with one paginated LIST; pods, for a drain, with one
more.
"""

from __future__ import annotations

import copy
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from guardian.actions.base import JSON, Change, KubeAPI, Plan, dig
from guardian.errors import PermanentKubernetesError

NODES = "/api/v1/nodes"
CAPI = "/apis/cluster.x-k8s.io/v1beta1"


class ShedNodesParams(BaseModel):
    """Which nodes, how many, how fast, and how far at most."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    selector: str = Field("", description="Label selector of the candidate nodes")
    count: int | None = Field(None, ge=1, description="Nodes to shed")
    percent: float | None = Field(None, gt=0, le=100, description="Or a share of candidates")
    min_nodes: int = Field(1, ge=0, description="Floor: candidates left in service at least")
    max_share_per_step: float = Field(0.1, gt=0, le=1, description="Batch size / candidates")
    order: Literal["fewest-pods", "newest", "name"] = "fewest-pods"
    mode: Literal["cordon", "drain", "delete"] = "cordon"
    machine_deployment: str | None = Field(
        None, description="namespace/name of a Cluster API MachineDeployment to scale instead"
    )

    @model_validator(mode="after")
    def _how_many(self) -> ShedNodesParams:
        if (self.count is None) == (self.percent is None):
            raise ValueError("give exactly one of count and percent")
        return self


def plan(kube: KubeAPI, params: ShedNodesParams) -> Plan:
    """Choose the nodes (or replicas) to shed and the batches to shed them in."""
    if params.machine_deployment:
        return _machine_deployment(kube, params)
    query = {"labelSelector": params.selector} if params.selector else {}
    nodes = [n for n in kube.list(NODES, query) if not dig(n, "spec", "unschedulable")]
    pods = _pods_by_node(kube) if params.order == "fewest-pods" or params.mode == "drain" else {}
    wanted = _wanted(params, len(nodes))
    allowed = max(0, len(nodes) - params.min_nodes)
    chosen = _ordered(nodes, pods, params.order)[: min(wanted, allowed)]
    batch_size = max(1, math.floor(len(nodes) * params.max_share_per_step))
    notes = [
        f"{len(nodes)} schedulable candidates; shedding {len(chosen)} "
        f"(asked {wanted}, floor {params.min_nodes}) in batches of {batch_size}"
    ]
    if wanted > allowed:
        notes.append(f"floor holds: {wanted - allowed} fewer than asked")
    changes: list[Change] = []
    for index, node in enumerate(chosen):
        changes.extend(_node_changes(node, pods, params, index // batch_size))
    return Plan("shed-nodes", params.selector or "all nodes", tuple(changes), tuple(notes))


def _wanted(params: ShedNodesParams, total: int) -> int:
    if params.count is not None:
        return params.count
    assert params.percent is not None
    return math.ceil(total * params.percent / 100)


def _pods_by_node(kube: KubeAPI) -> dict[str, list[JSON]]:
    found: dict[str, list[JSON]] = {}
    for pod in kube.list("/api/v1/pods", {"fieldSelector": "status.phase!=Succeeded"}):
        node = dig(pod, "spec", "nodeName")
        if node:
            found.setdefault(node, []).append(pod)
    return found


def _ordered(nodes: list[JSON], pods: dict[str, list[JSON]], order: str) -> list[JSON]:
    def name(node: JSON) -> str:
        return str(node["metadata"]["name"])

    if order == "name":
        return sorted(nodes, key=name)
    if order == "newest":
        return sorted(
            nodes, key=lambda n: (n["metadata"]["creationTimestamp"], name(n)), reverse=True
        )
    return sorted(nodes, key=lambda n: (len(pods.get(name(n), [])), name(n)))


def _node_changes(
    node: JSON, pods: dict[str, list[JSON]], params: ShedNodesParams, batch: int
) -> list[Change]:
    name = node["metadata"]["name"]
    path = f"{NODES}/{name}"
    if params.mode == "delete":
        snapshot = _recreatable(node)
        return [
            Change(
                "delete",
                path,
                None,
                f"batch {batch + 1}: delete node {name}",
                before={"node": name},
                batch=batch,
                undo=Change("create", NODES, snapshot, f"re-create node {name}"),
            )
        ]
    changes = [
        Change(
            "patch",
            path,
            {"spec": {"unschedulable": True}},
            f"batch {batch + 1}: cordon {name}",
            before={"unschedulable": False},
            after={"unschedulable": True},
            batch=batch,
            undo=Change("patch", path, {"spec": {"unschedulable": None}}, f"uncordon {name}"),
        )
    ]
    if params.mode == "drain":
        for pod in pods.get(name, []):
            if _evictable(pod):
                ns, pod_name = pod["metadata"]["namespace"], pod["metadata"]["name"]
                changes.append(
                    Change(
                        "post",
                        f"/api/v1/namespaces/{ns}/pods/{pod_name}/eviction",
                        {
                            "apiVersion": "policy/v1",
                            "kind": "Eviction",
                            "metadata": {"name": pod_name, "namespace": ns},
                        },
                        f"batch {batch + 1}: evict {ns}/{pod_name} from {name}",
                        batch=batch,
                    )
                )
    return changes


def _evictable(pod: JSON) -> bool:
    owners = pod["metadata"].get("ownerReferences", [])
    mirror = "kubernetes.io/config.mirror" in (pod["metadata"].get("annotations") or {})
    return not mirror and not any(o.get("kind") == "DaemonSet" for o in owners)


def _recreatable(node: JSON) -> JSON:
    copy_ = copy.deepcopy(node)
    meta = copy_["metadata"]
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        meta.pop(key, None)
    copy_.pop("status", None)
    return {"apiVersion": "v1", "kind": "Node", **copy_}


def _machine_deployment(kube: KubeAPI, params: ShedNodesParams) -> Plan:
    if not kube.exists(CAPI):
        raise PermanentKubernetesError("Cluster API is not installed: no cluster.x-k8s.io/v1beta1")
    namespace, _, name = (params.machine_deployment or "").partition("/")
    path = f"{CAPI}/namespaces/{namespace}/machinedeployments/{name}"
    current = int(dig(kube.get(path), "spec", "replicas") or 0)
    target = max(params.min_nodes, current - _wanted(params, current))
    change = Change(
        "patch",
        path,
        {"spec": {"replicas": target}},
        f"scale MachineDeployment {namespace}/{name} {current} → {target}",
        before={"replicas": current},
        after={"replicas": target},
        undo=Change(
            "patch",
            path,
            {"spec": {"replicas": current}},
            f"scale MachineDeployment back to {current}",
        ),
    )
    return Plan("shed-nodes", f"MachineDeployment {namespace}/{name}", (change,))


def verify(kube: KubeAPI, plan_: Plan) -> list[str]:
    """Every cordoned node is unschedulable, every deleted node is gone."""
    problems = []
    for change in plan_.changes:
        if change.op == "patch" and change.path.startswith(NODES):
            if not dig(kube.get(change.path), "spec", "unschedulable"):
                problems.append(f"{change.path} is still schedulable")
        elif change.op == "delete" and kube.exists(change.path):
            problems.append(f"{change.path} still exists")
    return problems
