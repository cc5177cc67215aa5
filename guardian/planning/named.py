"""Targets named by hand: ``--set change=Kind/ns/name`` and ``--set offender=ns/name``.

Input: the text of the ``--set`` value and the API server. Output: the ``change`` and
``offender`` a trigger context holds when guardian did not find them itself (a staging dry
run on a quiet cluster, ``tests/test_staging_dry_run.py``). The change is read from the API
server when it answers (its service account, creation time and progress); when the object
cannot be read, the context keeps what was named and the step that acts on it finds out.
Called by ``guardian.planning.trigger``.
"""

from __future__ import annotations

from typing import Any

from guardian.actions.base import KubeAPI
from guardian.errors import GuardianError, UsageError
from guardian.evaluation.changes import KINDS

PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets/{name}",
    "DaemonSet": "/apis/apps/v1/namespaces/{ns}/daemonsets/{name}",
    "Rollout": "/apis/argoproj.io/v1alpha1/namespaces/{ns}/rollouts/{name}",
}


def named_change(kube: KubeAPI, text: str) -> dict[str, Any]:
    """The change ``--set change=Kind/ns/name`` names, as ``WorkloadChange.to_json`` shapes
    it; ``UsageError`` (exit 2) when the text is not of that form."""
    parts = text.split("/")
    if len(parts) != 3 or parts[0] not in KINDS or not all(parts):
        raise UsageError(
            f"--set change={text}: expected KIND/NAMESPACE/NAME with KIND one of "
            f"{', '.join(KINDS)}, e.g. change=DaemonSet/observability/telemetry-agent"
        )
    kind, namespace, name = parts
    change: dict[str, Any] = {"kind": kind, "namespace": namespace, "name": name}
    try:
        obj = kube.get(PATHS[kind].format(ns=namespace, name=name))
    except GuardianError:
        return change
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    pod = spec.get("template", {}).get("spec", {})
    change["service_account"] = pod.get("serviceAccountName") or "default"
    change["started"] = meta.get("creationTimestamp", "")
    change["generation"] = int(meta.get("generation") or 0)
    if kind == "DaemonSet":
        change["desired"] = int(status.get("desiredNumberScheduled") or 0)
        change["updated"] = int(status.get("updatedNumberScheduled") or 0)
    else:
        change["desired"] = int(spec.get("replicas") or 0)
        change["updated"] = int(status.get("updatedReplicas") or 0)
    return change


def named_offender(text: str) -> dict[str, str]:
    """The service account ``--set offender=ns/name`` names; ``UsageError`` otherwise."""
    parts = text.split("/")
    if len(parts) != 2 or not all(parts):
        raise UsageError(
            f"--set offender={text}: expected NAMESPACE/SERVICEACCOUNT, "
            "e.g. offender=observability/telemetry-agent"
        )
    return {"namespace": parts[0], "name": parts[1]}
