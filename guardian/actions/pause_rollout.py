"""``pause-rollout``: stop a rollout where it stands (optionally roll back or quarantine).

Input: ``PauseRolloutParams`` and the API server. Output: a ``Plan``. Deployment and Argo
``Rollout``: ``spec.paused``; StatefulSet: ``updateStrategy.rollingUpdate.partition`` =
replicas; DaemonSet: ``updateStrategy`` → ``OnDelete`` (the old one remembered). Options:
``rollback`` (Deployment: the template of the previous ReplicaSet revision) and, for a
DaemonSet, ``quarantine`` (a nodeSelector no node matches: every agent leaves at once).
"""

from __future__ import annotations

import copy
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from guardian.actions.base import JSON, Change, KubeAPI, Plan, dig, remove_or_replace, replace_patch
from guardian.errors import PermanentKubernetesError

QUARANTINE_LABEL = "guardian.io/quarantine"
COLLECTIONS = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "DaemonSet": "/apis/apps/v1/namespaces/{ns}/daemonsets",
    "Rollout": "/apis/argoproj.io/v1alpha1/namespaces/{ns}/rollouts",
}


class PauseRolloutParams(BaseModel):
    """Which workload, and how hard to stop it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["Deployment", "StatefulSet", "DaemonSet", "Rollout"]
    namespace: str
    name: str
    rollback: bool = False
    quarantine: bool = False

    @model_validator(mode="after")
    def _options(self) -> PauseRolloutParams:
        if self.quarantine and self.kind != "DaemonSet":
            raise ValueError("quarantine: only a DaemonSet can be quarantined")
        if self.rollback and self.kind != "Deployment":
            raise ValueError("rollback: supported for a Deployment")
        return self


def object_path(params: PauseRolloutParams) -> str:
    """API path of the workload."""
    return COLLECTIONS[params.kind].format(ns=params.namespace) + f"/{params.name}"


def plan(kube: KubeAPI, params: PauseRolloutParams) -> Plan:
    """Read the workload and return the changes that stop its rollout."""
    if params.kind == "Rollout" and not kube.exists("/apis/argoproj.io/v1alpha1"):
        raise PermanentKubernetesError("Argo Rollouts is not installed: no argoproj.io/v1alpha1")
    path = object_path(params)
    obj = kube.get(path)
    changes = [_pause(params, path, obj)]
    if params.rollback:
        changes.append(_rollback(kube, params, path, obj))
    if params.quarantine:
        changes.append(_quarantine(path, obj))
    return Plan("pause-rollout", f"{params.kind} {params.namespace}/{params.name}", tuple(changes))


def _pause(params: PauseRolloutParams, path: str, obj: JSON) -> Change:
    if params.kind in ("Deployment", "Rollout"):
        before = bool(dig(obj, "spec", "paused"))
        return Change(
            "patch",
            path,
            {"spec": {"paused": True}},
            "pause: spec.paused = true",
            before={"paused": before},
            after={"paused": True},
            undo=Change(
                "patch",
                path,
                {"spec": {"paused": before}},
                f"resume: spec.paused = {str(before).lower()}",
            ),
        )
    strategy = copy.deepcopy(dig(obj, "spec", "updateStrategy"))
    if params.kind == "StatefulSet":
        replicas = int(dig(obj, "spec", "replicas") or 1)
        after: JSON = {"type": "RollingUpdate", "rollingUpdate": {"partition": replicas}}
        text = f"freeze: updateStrategy.rollingUpdate.partition = {replicas}"
    else:
        after = {"type": "OnDelete"}
        text = "freeze: updateStrategy = OnDelete"
    restore = strategy or {"type": "RollingUpdate"}
    return Change(
        "patch",
        path,
        replace_patch("/spec/updateStrategy", after),
        text,
        kind="json",
        before={"updateStrategy": strategy},
        after={"updateStrategy": after},
        undo=Change(
            "patch",
            path,
            replace_patch("/spec/updateStrategy", restore),
            "restore the update strategy",
            kind="json",
        ),
    )


def _rollback(kube: KubeAPI, params: PauseRolloutParams, path: str, obj: JSON) -> Change:
    labels = dig(obj, "spec", "selector", "matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    sets = kube.get(
        f"/apis/apps/v1/namespaces/{params.namespace}/replicasets", {"labelSelector": selector}
    ).get("items", [])
    owned = [
        rs
        for rs in sets
        if any(
            o.get("uid") == obj["metadata"]["uid"]
            for o in rs["metadata"].get("ownerReferences", [])
        )
    ]
    owned.sort(key=_revision, reverse=True)
    if len(owned) < 2:
        raise PermanentKubernetesError(f"{params.kind} {params.name}: no previous revision")
    previous = copy.deepcopy(owned[1]["spec"]["template"])
    previous.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    current = obj["spec"]["template"]
    return Change(
        "patch",
        path,
        replace_patch("/spec/template", previous),
        f"roll back to revision {_revision(owned[1])}",
        kind="json",
        before={"template": current},
        after={"template": previous},
        undo=Change(
            "patch",
            path,
            replace_patch("/spec/template", current),
            "restore the rolled-back template",
            kind="json",
        ),
    )


def _revision(rs: JSON) -> int:
    return int(dig(rs, "metadata", "annotations", "deployment.kubernetes.io/revision") or 0)


def _quarantine(path: str, obj: JSON) -> Change:
    before = copy.deepcopy(dig(obj, "spec", "template", "spec", "nodeSelector"))
    after = {**(before or {}), QUARANTINE_LABEL: "true"}
    selector = "/spec/template/spec/nodeSelector"
    return Change(
        "patch",
        path,
        replace_patch(selector, after),
        f"quarantine: nodeSelector {QUARANTINE_LABEL}=true matches no node",
        kind="json",
        before={"nodeSelector": before},
        after={"nodeSelector": after},
        undo=Change(
            "patch", path, remove_or_replace(selector, before), "lift the quarantine", kind="json"
        ),
    )


def verify(kube: KubeAPI, plan_: Plan) -> list[str]:
    """Problems found by reading the workload back (empty: the plan holds)."""
    problems = []
    path = plan_.changes[0].path
    obj = kube.get(path)
    for change in plan_.changes:
        for key, want in (change.after or {}).items():
            have = _field(obj, key)
            if have != want:
                problems.append(f"{key}: want {want!r}, have {have!r}")
    return problems


def _field(obj: JSON, key: str) -> object:
    if key == "nodeSelector":
        return dig(obj, "spec", "template", "spec", "nodeSelector")
    if key == "template":
        template = copy.deepcopy(dig(obj, "spec", "template"))
        return template
    return dig(obj, "spec", key)
