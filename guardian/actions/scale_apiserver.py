"""``scale-apiserver``: add API-server replicas to a hosted control plane, up to a maximum.

Input: ``ScaleApiserverParams``; the API server is the management cluster's (``guardian act
--context``). Output: a ``Plan`` that patches ``spec.replicas`` of the Deployment or
StatefulSet running kube-apiserver, or of a Cluster API ``KubeadmControlPlane``; ``verify``
checks that the new replicas are ready. Undo scales back to the recorded count.
Reached, in guardian, only through ``guardian.actions.CATALOGUE`` (params, ``plan``, ``verify``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from guardian.actions.base import KubeAPI, Plan, dig
from guardian.actions.patches import set_spec
from guardian.errors import PermanentKubernetesError

KCP = "/apis/controlplane.cluster.x-k8s.io/v1beta1"
COLLECTIONS = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "KubeadmControlPlane": KCP + "/namespaces/{ns}/kubeadmcontrolplanes",
}


class ScaleApiserverParams(BaseModel):
    """Which API-server workload, how many more, and the ceiling."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["Deployment", "StatefulSet", "KubeadmControlPlane"]
    namespace: str
    name: str
    add: int = Field(1, ge=1, le=10)
    max_replicas: int = Field(ge=1, le=15)


def path_of(params: ScaleApiserverParams) -> str:
    """API path of the workload."""
    return COLLECTIONS[params.kind].format(ns=params.namespace) + f"/{params.name}"


def plan(kube: KubeAPI, params: ScaleApiserverParams) -> Plan:
    """Read the current replicas and plan the new count (never above ``max_replicas``)."""
    if params.kind == "KubeadmControlPlane" and not kube.exists(KCP):
        raise PermanentKubernetesError(
            "Cluster API is not installed: no controlplane.cluster.x-k8s.io/v1beta1"
        )
    path = path_of(params)
    current = int(dig(kube.get(path), "spec", "replicas") or 0)
    target = min(current + params.add, params.max_replicas)
    target_text = f"{params.kind} {params.namespace}/{params.name}"
    if target <= current:
        note = f"already at {current} replicas, the maximum is {params.max_replicas}"
        return Plan("scale-apiserver", target_text, (), (note,))
    texts = (f"scale {current} → {target} replicas", f"scale back to {current}")
    change = set_spec(path, "replicas", (current, target), texts)
    return Plan("scale-apiserver", target_text, (change,))


def verify(kube: KubeAPI, plan_: Plan) -> list[str]:
    """The wanted replicas exist and are ready."""
    if not plan_.changes:
        return []
    change = plan_.changes[0]
    want = int(change.after["replicas"])
    obj = kube.get(change.path)
    ready = int(dig(obj, "status", "readyReplicas") or 0)
    problems = []
    if dig(obj, "spec", "replicas") != want:
        problems.append(f"spec.replicas is {dig(obj, 'spec', 'replicas')}, want {want}")
    if ready < want:
        problems.append(f"{ready} of {want} replicas ready")
    return problems
