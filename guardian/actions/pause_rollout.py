"""``pause-rollout``: stop a rollout where it stands (optionally roll back or quarantine).

Input: ``PauseRolloutParams`` and the API server. Output: a ``Plan``. Deployment and Argo
``Rollout``: ``spec.paused``; StatefulSet: ``updateStrategy.rollingUpdate.partition`` =
replicas; DaemonSet: ``updateStrategy`` → ``OnDelete`` (the old one remembered). Options:
``rollback`` instead of a pause (the template of the previous revision: a Deployment's previous
ReplicaSet, a StatefulSet's or DaemonSet's previous ControllerRevision, rolled out as
``kubectl rollout undo`` would) and, for a DaemonSet, ``quarantine`` (a nodeSelector no node
matches: every agent leaves at once).
Reached through ``guardian.actions.CATALOGUE`` (params, ``plan``, ``verify``); its changes
(``pause_change``, ``rollback_change``, ``quarantine_change``), the revisions it reads
(``revisions``, ``previous_template``) and ``field_of`` are reused by
``guardian.actions.halt_change``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
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
        return Plan("pause-rollout", target, (rollback_change(kube, params, path, obj),), (note,))
    changes = [pause_change(params, path, obj)]
    if params.quarantine:
        changes.append(quarantine_change(path, obj))
    return Plan("pause-rollout", target, tuple(changes))


def pause_change(params: PauseRolloutParams, path: str, obj: JSON) -> Change:
    """``spec.paused``, a StatefulSet's partition = replicas, or a DaemonSet's OnDelete."""
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


def rollback_change(kube: KubeAPI, params: PauseRolloutParams, path: str, obj: JSON) -> Change:
    """A strategic patch replacing the template with the previous revision's."""
    revision, previous = previous_template(kube, params, obj)
    return template_change(path, obj["spec"]["template"], previous, revision)


def template_change(path: str, current: JSON, previous: JSON, revision: int) -> Change:
    """A strategic patch replacing ``current`` by ``previous`` (of ``revision``), undone by
    the reverse replacement."""
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


def selector_query(obj: JSON, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A ``labelSelector`` query of the workload's ``matchLabels`` (and ``extra`` labels)."""
    labels = {**(dig(obj, "spec", "selector", "matchLabels") or {}), **(extra or {})}
    return {"labelSelector": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))}


def owned_by(items: Iterable[JSON], obj: JSON) -> list[JSON]:
    """The ``items`` whose owner references name ``obj`` (by uid)."""
    uid = obj["metadata"]["uid"]
    return [
        item
        for item in items
        if any(o.get("uid") == uid for o in dig(item, "metadata", "ownerReferences") or [])
    ]


def revisions(kube: KubeAPI, kind: str, namespace: str, obj: JSON) -> list[JSON]:
    """The workload's revisions, newest first: a Deployment's ReplicaSets, else its
    ControllerRevisions."""
    resource = "replicasets" if kind == "Deployment" else "controllerrevisions"
    items = kube.list(f"/apis/apps/v1/namespaces/{namespace}/{resource}", selector_query(obj))
    return sorted(owned_by(items, obj), key=_revision, reverse=True)


def previous_template(kube: KubeAPI, params: PauseRolloutParams, obj: JSON) -> tuple[int, JSON]:
    """The revision number and pod template the workload ran before its current one."""
    owned = revisions(kube, params.kind, params.namespace, obj)
    if len(owned) < 2:
        raise PermanentKubernetesError(
            f"{params.kind} {params.namespace}/{params.name}: no previous revision to roll back to"
        )
    return _revision(owned[1]), template_of(params.kind, owned[1])


def template_of(kind: str, revision: JSON) -> JSON:
    """The pod template a revision (ReplicaSet or ControllerRevision) holds."""
    if kind == "Deployment":
        template: JSON = copy.deepcopy(revision["spec"]["template"])
        template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
        return template
    # A ControllerRevision stores a patch: {"spec": {"template": {..., "$patch": "replace"}}}
    template = copy.deepcopy(dig(revision, "data", "spec", "template") or {})
    template.pop("$patch", None)
    return template


def _revision(item: JSON) -> int:
    if "revision" in item:  # ControllerRevision
        return int(item["revision"])
    return int(dig(item, "metadata", "annotations", "deployment.kubernetes.io/revision") or 0)


def quarantine_change(path: str, obj: JSON) -> Change:
    """A JSON patch adding the quarantine label to the template's nodeSelector."""
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
            have = field_of(obj, key)
            if have != want:
                problems.append(f"{key}: want {want!r}, have {have!r}")
    return problems


def field_of(obj: JSON, key: str) -> object:
    """The field of ``obj`` a change's ``after`` names (``nodeSelector``, ``template``, or a
    key of ``spec``)."""
    if key == "nodeSelector":
        return dig(obj, "spec", "template", "spec", "nodeSelector")
    if key == "template":
        template = copy.deepcopy(dig(obj, "spec", "template"))
        return template
    return dig(obj, "spec", key)
