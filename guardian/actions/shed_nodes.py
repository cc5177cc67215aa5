"""``shed-nodes``: take nodes out of service in batches, never below a floor.

Input: ``ShedNodesParams``. Output: a ``Plan`` whose changes are grouped in batches: cordon
(``spec.unschedulable``), optionally drain through the Eviction API (PodDisruptionBudgets are
the API server's to enforce: a refused eviction stops the drain) or delete the Node objects
(undo re-creates them from the plan's snapshot). Or the Cluster API way: scale a
``MachineDeployment`` down. Nodes are read with one paginated LIST (two with a selector: the
cluster's nodes and the candidates); pods, for a drain or ``fewest-pods``, with one more.

Limits that hold whatever the parameters say (``choose`` applies them and the plan's notes
say which one held): control-plane nodes (label or taint ``node-role.kubernetes.io/
control-plane`` or ``.../master``) are never candidates; ``min_nodes`` candidates stay in
service; one run sheds at most ``max_share_per_run`` (default 10%, at most 50%) of the
cluster's schedulable worker nodes, rounded down, so half the workers always stay.
Reached, in guardian, only through ``guardian.actions.CATALOGUE`` (params, ``plan``, ``verify``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from guardian.actions.base import JSON, Change, KubeAPI, Plan, dig
from guardian.actions.patches import set_spec
from guardian.errors import PermanentKubernetesError

NODES = "/api/v1/nodes"
CAPI = "/apis/cluster.x-k8s.io/v1beta1"
CONTROL_PLANE = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
MAX_SHARE_PER_RUN = 0.5


class ShedNodesParams(BaseModel):
    """Which nodes, how many, how fast, and how far at most."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    selector: str = Field("", description="Label selector of the candidate nodes")
    count: int | None = Field(None, ge=1, description="Nodes to shed")
    percent: float | None = Field(None, gt=0, le=100, description="Or a share of candidates")
    min_nodes: int = Field(1, ge=0, description="Floor: candidates left in service at least")
    max_share_per_step: float = Field(0.1, gt=0, le=1, description="Batch size / candidates")
    max_share_per_run: float = Field(
        0.1,
        description="At most this share of the cluster's schedulable workers per run (≤ 0.5)",
    )
    order: Literal["fewest-pods", "newest", "name"] = "fewest-pods"
    mode: Literal["cordon", "drain", "delete"] = "cordon"
    machine_deployment: str | None = Field(
        None, description="namespace/name of a Cluster API MachineDeployment to scale instead"
    )

    @field_validator("max_share_per_run")
    @classmethod
    def _share(cls, value: float) -> float:
        if not 0 < value <= MAX_SHARE_PER_RUN:
            raise ValueError(
                f"must be above 0 and at most {MAX_SHARE_PER_RUN}: one run never sheds more "
                f"than half of the worker nodes (got {value})"
            )
        return value

    @model_validator(mode="after")
    def _how_many(self) -> ShedNodesParams:
        if (self.count is None) == (self.percent is None):
            raise ValueError("give exactly one of count and percent")
        return self


@dataclass(frozen=True)
class Choice:
    """The nodes one run sheds, and why it sheds fewer than asked."""

    nodes: tuple[JSON, ...]
    notes: tuple[str, ...]


def plan(kube: KubeAPI, params: ShedNodesParams) -> Plan:
    """Choose the nodes (or replicas) to shed and the batches to shed them in."""
    if params.machine_deployment:
        return _machine_deployment(kube, params)
    cluster = list(kube.list(NODES))
    candidates = (
        list(kube.list(NODES, {"labelSelector": params.selector})) if params.selector else cluster
    )
    pods = _pods_by_node(kube) if params.order == "fewest-pods" or params.mode == "drain" else {}
    return plan_nodes(cluster, candidates, pods, params)


def plan_nodes(
    cluster: list[JSON],
    candidates: list[JSON],
    pods: dict[str, list[JSON]],
    params: ShedNodesParams,
) -> Plan:
    """The plan for listed nodes: every node of the cluster, the selector's, and their pods."""
    chosen = choose(cluster, candidates, pods, params)
    batch_size = max(1, math.floor(len(_eligible(candidates)) * params.max_share_per_step))
    changes: list[Change] = []
    for index, node in enumerate(chosen.nodes):
        changes.extend(_node_changes(node, pods, params, index // batch_size))
    notes = (f"{chosen.notes[0]} in batches of {batch_size}", *chosen.notes[1:])
    return Plan("shed-nodes", params.selector or "all nodes", tuple(changes), notes)


def choose(
    cluster: list[JSON],
    candidates: list[JSON],
    pods: dict[str, list[JSON]],
    params: ShedNodesParams,
) -> Choice:
    """The nodes to shed within every limit, and a note for each limit that held."""
    workers = _eligible(cluster)
    eligible = _eligible(candidates)
    count, notes = _limit(_wanted(params, len(eligible)), len(eligible), len(workers), params)
    kept = sorted(n["metadata"]["name"] for n in candidates if _control_plane(n))
    if kept:
        shown = ", ".join(kept[:5]) + (f" and {len(kept) - 5} more" if len(kept) > 5 else "")
        notes.append(f"control plane is never shed: left out {len(kept)} node(s): {shown}")
    return Choice(tuple(_ordered(eligible, pods, params.order)[:count]), tuple(notes))


def _limit(
    wanted: int, candidates: int, workers: int, params: ShedNodesParams
) -> tuple[int, list[str]]:
    """How many of ``wanted`` the floor and the share per run allow, and which of them held."""
    above_floor = max(0, candidates - params.min_nodes)
    share_cap = math.floor(workers * params.max_share_per_run)
    count = min(wanted, above_floor, share_cap)
    notes = [
        f"{candidates} schedulable candidates; shedding {count} "
        f"(asked {wanted}, floor {params.min_nodes}, at most {share_cap} per run)"
    ]
    if above_floor < wanted:
        notes.append(f"floor holds: {wanted - above_floor} fewer than asked")
    if share_cap < min(wanted, above_floor):
        notes.append(
            f"share per run holds: one run sheds at most {params.max_share_per_run * 100:g}% "
            f"of {workers} schedulable worker nodes ({share_cap}; max_share_per_run "
            f"{params.max_share_per_run:g}); {min(wanted, above_floor) - share_cap} fewer "
            "than asked"
        )
    return count, notes


def _eligible(nodes: list[JSON]) -> list[JSON]:
    """Schedulable nodes that are not control plane."""
    return [n for n in nodes if not dig(n, "spec", "unschedulable") and not _control_plane(n)]


def _control_plane(node: JSON) -> bool:
    labels = dig(node, "metadata", "labels") or {}
    taints = dig(node, "spec", "taints") or []
    return any(key in labels for key in CONTROL_PLANE) or any(
        t.get("key") in CONTROL_PLANE for t in taints
    )


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
        set_spec(
            path,
            "unschedulable",
            (False, True),
            (f"batch {batch + 1}: cordon {name}", f"uncordon {name}"),
            restore=None,
            batch=batch,
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
    count, notes = _limit(_wanted(params, current), current, current, params)
    target = current - count
    texts = (
        f"scale MachineDeployment {namespace}/{name} {current} → {target}",
        f"scale MachineDeployment back to {current}",
    )
    change = set_spec(path, "replicas", (current, target), texts)
    changes = (change,) if target != current else ()
    summary = f"{notes[0].replace('schedulable candidates', 'replicas')}"
    return Plan(
        "shed-nodes", f"MachineDeployment {namespace}/{name}", changes, (summary, *notes[1:])
    )


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
