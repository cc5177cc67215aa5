"""``pause-rollout``: stop a rollout where it stands (optionally roll back or quarantine).

Input: ``PauseRolloutParams`` and the API server. Output: a ``Plan``. Deployment and Argo
``Rollout``: ``spec.paused``; StatefulSet: ``updateStrategy.rollingUpdate.partition`` =
replicas; DaemonSet: ``updateStrategy`` → ``OnDelete`` (the old one remembered). Options:
``rollback`` instead of a pause (the template of the previous revision: a Deployment's previous
ReplicaSet, a StatefulSet's or DaemonSet's previous ControllerRevision, rolled out as
``kubectl rollout undo`` would) and, for a DaemonSet, ``quarantine`` (a nodeSelector no node
matches: every agent leaves at once).
Reached, in guardian, only through ``guardian.actions.CATALOGUE`` (params, ``plan``, ``verify``).
"""

from __future__ import annotations

import copy
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from guardian.actions.base import JSON, Change, KubeAPI, Plan, dig
from guardian.actions.patches import remove_or_replace, replace_patch, set_spec, undoable
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
        if self.rollback and self.kind == "Rollout":
            raise ValueError("rollback: use Argo Rollouts' own abort for a Rollout")
        if self.rollback and self.quarantine:
            raise ValueError("rollback: choose rollback or quarantine, not both")
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
    target = f"{params.kind} {params.namespace}/{params.name}"
    if params.rollback:
        # A paused or frozen workload would never roll the old template out: no pause here.
        note = "rollback replaces the pause: the previous revision rolls out"
        return Plan("pause-rollout", target, (_rollback(kube, params, path, obj),), (note,))
    changes = [_pause(params, path, obj)]
    if params.quarantine:
        changes.append(_quarantine(path, obj))
    return Plan("pause-rollout", target, tuple(changes))


def _pause(params: PauseRolloutParams, path: str, obj: JSON) -> Change:
    if params.kind in ("Deployment", "Rollout"):
        before = bool(dig(obj, "spec", "paused"))
        texts = ("pause: spec.paused = true", f"resume: spec.paused = {str(before).lower()}")
        return set_spec(path, "paused", (before, True), texts)
    strategy = copy.deepcopy(dig(obj, "spec", "updateStrategy"))
    if params.kind == "StatefulSet":
        replicas = int(dig(obj, "spec", "replicas") or 1)
        after: JSON = {"type": "RollingUpdate", "rollingUpdate": {"partition": replicas}}
        text = f"freeze: updateStrategy.rollingUpdate.partition = {replicas}"
    else:
        after = {"type": "OnDelete"}
        text = "freeze: updateStrategy = OnDelete"
    restore = strategy or {"type": "RollingUpdate"}
    return undoable(
        path,
        (replace_patch("/spec/updateStrategy", after), text),
        (replace_patch("/spec/updateStrategy", restore), "restore the update strategy"),
        "json",
        before={"updateStrategy": strategy},
        after={"updateStrategy": after},
    )


def _rollback(kube: KubeAPI, params: PauseRolloutParams, path: str, obj: JSON) -> Change:
    revision, previous = _previous_template(kube, params, obj)
    current = obj["spec"]["template"]
    forward = {"spec": {"template": {**previous, "$patch": "replace"}}}
    back = {"spec": {"template": {**current, "$patch": "replace"}}}
    return undoable(
        path,
        (forward, f"roll back to revision {revision}"),
        (back, "restore the rolled-back template"),
        "strategic",
        before={"template": current},
        after={"template": previous},
    )


def _previous_template(kube: KubeAPI, params: PauseRolloutParams, obj: JSON) -> tuple[int, JSON]:
    """The revision number and pod template the workload ran before its current one."""
    labels = dig(obj, "spec", "selector", "matchLabels") or {}
    query = {"labelSelector": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))}
    resource = "replicasets" if params.kind == "Deployment" else "controllerrevisions"
    items = kube.list(f"/apis/apps/v1/namespaces/{params.namespace}/{resource}", query)
    uid = obj["metadata"]["uid"]
    owned = [
        item
        for item in items
        if any(o.get("uid") == uid for o in dig(item, "metadata", "ownerReferences") or [])
    ]
    owned.sort(key=_revision, reverse=True)
    if len(owned) < 2:
        raise PermanentKubernetesError(
            f"{params.kind} {params.namespace}/{params.name}: no previous revision to roll back to"
        )
    if params.kind == "Deployment":
        template = copy.deepcopy(owned[1]["spec"]["template"])
        template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    else:
        # A ControllerRevision stores a patch: {"spec": {"template": {..., "$patch": "replace"}}}
        template = copy.deepcopy(dig(owned[1], "data", "spec", "template") or {})
        template.pop("$patch", None)
    return _revision(owned[1]), template


def _revision(item: JSON) -> int:
    if "revision" in item:  # ControllerRevision
        return int(item["revision"])
    return int(dig(item, "metadata", "annotations", "deployment.kubernetes.io/revision") or 0)


def _quarantine(path: str, obj: JSON) -> Change:
    before = copy.deepcopy(dig(obj, "spec", "template", "spec", "nodeSelector"))
    after = {**(before or {}), QUARANTINE_LABEL: "true"}
    selector = "/spec/template/spec/nodeSelector"
    return undoable(
        path,
        (
            replace_patch(selector, after),
            f"quarantine: nodeSelector {QUARANTINE_LABEL}=true matches no node",
        ),
        (remove_or_replace(selector, before), "lift the quarantine"),
        "json",
        before={"nodeSelector": before},
        after={"nodeSelector": after},
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
