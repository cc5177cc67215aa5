"""``halt-change``: stop the change a burn is blamed on, where it stands, reversibly.

Input: ``HaltChangeParams`` (the workload, its guard window, ``rollback``, ``batch``) and the
API server. Output: a ``Plan`` and, from ``verify``, what does not hold yet. Per kind:

- DaemonSet created less than ``guard_window`` seconds ago (its ``creationTimestamp``
  against guardian's clock): quarantined, a nodeSelector no node matches, so the controller
  removes every agent (``pause_rollout.quarantine_change``; undo restores the nodeSelector).
- an older DaemonSet (an update): ``updateStrategy: OnDelete``, so no further node is
  updated. With ``rollback``: batch 0 also restores the previous ControllerRevision's
  template (OnDelete first, so the controller replaces nothing by itself), then batch 1, 2,
  ... each delete ``batch`` of the pods that run the current revision (planned from the pods
  at plan time, sorted by node); the controller recreates each from the restored template,
  the previous revision. The DaemonSet is annotated ``guardian.io/rolled-back-from`` with the
  current revision, so that a later roll-back does not take it for the previous one and roll
  forward to it. Undo restores the template, the annotation and the update strategy (the
  deleted pods are not undone: the restored strategy rolls them forward again).
- Deployment: ``spec.paused: true``; with ``rollback`` the previous ReplicaSet's template
  instead (``pause_rollout.rollback_change``).
- StatefulSet: ``updateStrategy.rollingUpdate.partition`` = replicas − updated replicas
  (pods with an ordinal >= partition run the update revision: those already updated stay,
  no other is updated); with no update in flight, partition = replicas.
- Argo Rollout: aborted as ``kubectl argo rollouts abort`` does, a merge patch
  ``{"status": {"abort": true}}`` of the status subresource (of the object when the CRD has
  none); undo sets it back as ``kubectl argo rollouts retry`` does.

``rollback`` on a new DaemonSet, or without a previous revision, halts without it (a note
says so). ``verify`` checks the fields, that the controller observed the halted generation,
that a quarantined DaemonSet schedules nothing and that each rolled-back node runs the
previous revision. Tests: ``tests/test_halt_change.py``. Reached through
``guardian.actions.CATALOGUE``.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from guardian.actions import pause_rollout as pr
from guardian.actions.base import JSON, Change, KubeAPI, Plan, dig
from guardian.actions.patches import replace_patch, undoable
from guardian.errors import PermanentKubernetesError

HASH = "controller-revision-hash"
ROLLED_BACK = "guardian.io/rolled-back-from"
ARGO = "/apis/argoproj.io/v1alpha1"


class HaltChangeParams(BaseModel):
    """Which change to halt, and how."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["DaemonSet", "Deployment", "StatefulSet", "Rollout"]
    namespace: str
    name: str
    guard_window: int = Field(1800, ge=0)
    """Seconds: a DaemonSet created more recently is new and quarantined (0: never)."""
    rollback: bool = False
    batch: int | None = Field(None, ge=1)
    """Nodes per roll-back batch of a DaemonSet; default a tenth of its nodes, at least 1."""

    @model_validator(mode="after")
    def _options(self) -> HaltChangeParams:
        if self.rollback and self.kind in ("StatefulSet", "Rollout"):
            raise ValueError(
                "rollback: only for a DaemonSet or a Deployment (an abort already returns a "
                "Rollout to its stable ReplicaSet; a StatefulSet keeps its updated pods)"
            )
        if self.batch is not None and not (self.rollback and self.kind == "DaemonSet"):
            raise ValueError("batch: only for a DaemonSet's roll-back (kind DaemonSet, rollback)")
        return self


def plan(kube: KubeAPI, params: HaltChangeParams, now: datetime | None = None) -> Plan:
    """Read the workload and return the changes that halt it (``now``: default the clock)."""
    if params.kind == "Rollout":
        return _abort(kube, params)
    paused = pr.PauseRolloutParams(kind=params.kind, namespace=params.namespace, name=params.name)
    path = pr.object_path(paused)
    obj = kube.get(path)
    target = f"{params.kind} {params.namespace}/{params.name}"
    if params.kind == "DaemonSet":
        changes, notes = _daemonset(kube, params, path, obj, now or datetime.now(UTC))
    elif params.kind == "StatefulSet":
        changes, notes = [_partition(path, obj)], []
    elif params.rollback:
        try:
            changes = [pr.rollback_change(kube, paused, path, obj)]
            notes = ["rollback replaces the pause: the previous revision rolls out"]
        except PermanentKubernetesError as exc:
            changes, notes = [pr.pause_change(paused, path, obj)], [f"{exc.message}: paused"]
    else:
        changes, notes = [pr.pause_change(paused, path, obj)], []
    return Plan("halt-change", target, tuple(changes), tuple(notes))


def _daemonset(
    kube: KubeAPI, params: HaltChangeParams, path: str, obj: JSON, now: datetime
) -> tuple[list[Change], list[str]]:
    created = datetime.fromisoformat(obj["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    age = int((now - created).total_seconds())
    if age < params.guard_window:
        note = f"created {age}s ago (guard window {params.guard_window}s): quarantined"
        skipped = ["; rollback does not apply to a new DaemonSet"] if params.rollback else []
        return [pr.quarantine_change(path, obj)], [note + "".join(skipped)]
    paused = pr.PauseRolloutParams(kind="DaemonSet", namespace=params.namespace, name=params.name)
    freeze = pr.pause_change(paused, path, obj)
    if not params.rollback:
        return [freeze], [f"created {age}s ago: an update, frozen"]
    owned = pr.revisions(kube, "DaemonSet", params.namespace, obj)
    if len(owned) < 2:
        return [freeze], ["no previous revision to roll back to: frozen only"]
    current, previous = (dig(r, "metadata", "labels", HASH) or "" for r in owned[:2])
    if dig(obj, "metadata", "annotations", ROLLED_BACK) == previous:
        return [freeze], [f"guardian rolled it back from {previous} already: frozen only"]
    earlier = pr.template_of("DaemonSet", owned[1])
    change = pr.template_change(path, obj["spec"]["template"], earlier, owned[1]["revision"])
    template = _marked(change, current)
    desired = int(dig(obj, "status", "desiredNumberScheduled") or 0)
    size = params.batch or max(1, desired // 10)
    pods = _updated_pods(kube, params.namespace, obj, current)
    deletes = [
        _recreate(params.namespace, pod, (current, previous), 1 + index // size)
        for index, pod in enumerate(pods)
    ]
    note = f"roll back {len(pods)} updated pods ({current} → {previous}), {size} nodes per batch"
    return [freeze, template, *deletes], [note]


def _marked(change: Change, current: str) -> Change:
    """``change`` that also annotates the DaemonSet with the revision it rolls back from (a
    later roll-back must not take that revision for the previous one and roll forward to it);
    its undo removes the annotation."""
    assert change.undo is not None
    back = {**change.undo.body, "metadata": {"annotations": {ROLLED_BACK: None}}}
    body = {**change.body, "metadata": {"annotations": {ROLLED_BACK: current}}}
    return replace(change, body=body, undo=replace(change.undo, body=back))


def _updated_pods(kube: KubeAPI, namespace: str, obj: JSON, current: str) -> list[JSON]:
    """The DaemonSet's pods (not terminating) at revision ``current``, by node."""
    query = pr.selector_query(obj, {HASH: current})
    items = kube.list(f"/api/v1/namespaces/{namespace}/pods", query)
    pods = [p for p in pr.owned_by(items, obj) if not dig(p, "metadata", "deletionTimestamp")]
    return sorted(pods, key=lambda p: (dig(p, "spec", "nodeName") or "", p["metadata"]["name"]))


def _recreate(namespace: str, pod: JSON, hashes: tuple[str, str], batch: int) -> Change:
    name, node = pod["metadata"]["name"], dig(pod, "spec", "nodeName") or ""
    return Change(
        "delete",
        f"/api/v1/namespaces/{namespace}/pods/{name}",
        None,
        f"roll back node {node}: delete pod {name} ({hashes[0]}), recreated at {hashes[1]}",
        before={"pod": name, "node": node, HASH: hashes[0]},
        after={"node": node, HASH: hashes[1]},
        batch=batch,
    )


def _partition(path: str, obj: JSON) -> Change:
    replicas = int(dig(obj, "spec", "replicas") or 1)
    status = obj.get("status") or {}
    strategy = copy.deepcopy(dig(obj, "spec", "updateStrategy"))
    rolling = dict((strategy or {}).get("rollingUpdate") or {})
    in_flight = status.get("updateRevision") != status.get("currentRevision")
    updated = int(status.get("updatedReplicas") or 0) if in_flight else 0
    partition = max(replicas - updated, int(rolling.get("partition") or 0))
    after: JSON = {"type": "RollingUpdate", "rollingUpdate": {**rolling, "partition": partition}}
    text = f"halt: updateStrategy.rollingUpdate.partition = {partition} ({updated} updated)"
    return undoable(
        path,
        (replace_patch("/spec/updateStrategy", after), text),
        (
            replace_patch("/spec/updateStrategy", strategy or {"type": "RollingUpdate"}),
            "restore the update strategy",
        ),
        "json",
        before={"updateStrategy": strategy},
        after={"updateStrategy": after},
    )


def _abort(kube: KubeAPI, params: HaltChangeParams) -> Plan:
    if not kube.exists(ARGO):
        raise PermanentKubernetesError("Argo Rollouts is not installed: no argoproj.io/v1alpha1")
    path = f"{ARGO}/namespaces/{params.namespace}/rollouts/{params.name}"
    obj = kube.get(path)
    resources = {r.get("name") for r in kube.get(ARGO).get("resources", [])}
    target = path + "/status" if "rollouts/status" in resources else path
    before = bool(dig(obj, "status", "abort"))
    change = undoable(
        target,
        ({"status": {"abort": True}}, "abort: status.abort = true"),
        ({"status": {"abort": before}}, f"retry: status.abort = {str(before).lower()}"),
        before={"abort": before},
        after={"abort": True},
    )
    notes = () if target.endswith("/status") else ("the CRD has no status subresource",)
    return Plan("halt-change", f"Rollout {params.namespace}/{params.name}", (change,), notes)


def verify(kube: KubeAPI, plan_: Plan) -> list[str]:
    """What does not hold yet: the halted fields, the controller having observed them, no
    agent left on a quarantined DaemonSet, each rolled-back node at the previous revision."""
    kind, _, ref = plan_.target.partition(" ")
    namespace, _, name = ref.partition("/")
    path = pr.COLLECTIONS[kind].format(ns=namespace) + f"/{name}"
    obj = kube.get(path)
    problems: list[str] = []
    on_object = [c for c in plan_.changes if c.op == "patch"]
    for change in on_object:
        for key, want in (change.after or {}).items():
            have = _field(obj, key)
            if have != want:
                problems.append(f"{key}: want {want!r}, have {have!r}")
    if on_object and kind != "Rollout":
        quarantined = any("nodeSelector" in (c.after or {}) for c in on_object)
        problems.extend(_observed(obj, quarantined))
    deletes = [c for c in plan_.changes if c.op == "delete"]
    if deletes:
        problems.extend(_rolled_back(kube, namespace, obj, deletes))
    return problems


def _field(obj: JSON, key: str) -> object:
    if key == "abort":
        return bool(dig(obj, "status", "abort"))
    return pr.field_of(obj, key)


def _observed(obj: JSON, quarantined: bool) -> list[str]:
    """The controller has seen the halted generation, and it holds."""
    generation = int(dig(obj, "metadata", "generation") or 0)
    observed = int(dig(obj, "status", "observedGeneration") or 0)
    if observed < generation:
        return [f"the controller has not observed generation {generation} yet ({observed})"]
    status = obj.get("status") or {}
    if quarantined:
        keys = ("desiredNumberScheduled", "currentNumberScheduled")
        left = [f"{key} {status[key]}" for key in keys if status.get(key)]
        return [f"quarantined, yet {', '.join(left)}"] if left else []
    partition = dig(obj, "spec", "updateStrategy", "rollingUpdate", "partition")
    if obj.get("kind") != "StatefulSet" or partition is None:
        return []
    above = int(dig(obj, "spec", "replicas") or 1) - int(partition)
    updated = int(status.get("updatedReplicas") or 0)
    in_flight = status.get("updateRevision") != status.get("currentRevision")
    if in_flight and updated > above:
        return [f"{updated} replicas updated, more than the {above} at or above the partition"]
    return []


def _rolled_back(kube: KubeAPI, namespace: str, obj: JSON, deletes: list[Change]) -> list[str]:
    items = kube.list(f"/api/v1/namespaces/{namespace}/pods", pr.selector_query(obj))
    pods = [p for p in pr.owned_by(items, obj) if not dig(p, "metadata", "deletionTimestamp")]
    names = {p["metadata"]["name"] for p in pods}
    at = {(dig(p, "spec", "nodeName"), dig(p, "metadata", "labels", HASH)) for p in pods}
    problems = []
    for change in deletes:
        node, want = change.after["node"], change.after[HASH]
        if change.before["pod"] in names:
            problems.append(f"node {node}: pod {change.before['pod']} still runs")
        elif (node, want) not in at:
            problems.append(f"node {node}: no pod at revision {want} yet")
    return problems
