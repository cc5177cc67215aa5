"""Suspects: recent rollouts → candidates for ``pause-rollout``, ranked.

Input: the API server (``SuspectSource``), the start of the burn and a look-back window.
Output: ``Suspect`` values, nearest to the burn first, then the widest (most pods or nodes
touched). A rollout's start is its newest revision: the newest ReplicaSet of a Deployment,
the newest ControllerRevision of a DaemonSet or StatefulSet, the newest Helm release Secret
(read as metadata only). Six paginated LISTs in all, whatever the cluster's size. Called by
``guardian.planning.trigger`` (what playbook templates see as ``suspects``), by
``guardian.pipeline`` (whether a suspect exists) and by ``guardian.app`` (``guardian suspects``,
the suspects ChatOps shows).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from guardian.errors import PermanentKubernetesError

JSON = dict[str, Any]


class SuspectSource(Protocol):
    """What ranking suspects needs from the API server."""

    def list(
        self, path: str, query: dict[str, str] | None = None, *, metadata_only: bool = False
    ) -> Iterator[JSON]:
        """Every item of the collection at ``path`` (only metadata when told), all pages."""
        ...


@dataclass(frozen=True)
class Suspect:
    """A workload whose rollout started near the burn."""

    kind: str
    namespace: str
    name: str
    revision: str
    started: datetime
    touches: int
    """Pods (Deployment, StatefulSet) or nodes (DaemonSet) it runs on; 0 when unknown."""
    service_account: str = ""
    """The service account its pods run as (the client to throttle); empty for Helm."""

    def to_json(self) -> dict[str, object]:
        """The suspect as a JSON document (what playbook templates see as ``suspects[i]``)."""
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "revision": self.revision,
            "started": self.started.isoformat(),
            "touches": self.touches,
            "service_account": self.service_account,
        }

    def minutes_before(self, burn: datetime) -> float:
        """Minutes from the rollout's start to the burn (negative: after it)."""
        return (burn - self.started).total_seconds() / 60


def find_suspects(source: SuspectSource, burn: datetime, since: timedelta) -> list[Suspect]:
    """Rollouts that started within ``since`` before ``burn`` (or after it), ranked."""
    found = [*_apps(source), *_helm(source)]
    recent = [s for s in found if s.started >= burn - since]
    return sorted(recent, key=lambda s: (abs(s.minutes_before(burn)), -s.touches, s.name))


def _apps(source: SuspectSource) -> list[Suspect]:
    newest_rs = _newest_by_owner(source.list("/apis/apps/v1/replicasets", metadata_only=True))
    newest_cr = _newest_by_owner(
        source.list("/apis/apps/v1/controllerrevisions", metadata_only=True)
    )
    suspects = []
    for kind, plural, revisions in (
        ("Deployment", "deployments", newest_rs),
        ("DaemonSet", "daemonsets", newest_cr),
        ("StatefulSet", "statefulsets", newest_cr),
    ):
        for obj in source.list(f"/apis/apps/v1/{plural}"):
            meta = obj["metadata"]
            revision = revisions.get(meta["uid"])
            if revision is None:
                continue
            status = obj.get("status", {})
            touches = (
                status.get("desiredNumberScheduled")
                if kind == "DaemonSet"
                else status.get("replicas")
            )
            suspects.append(
                Suspect(
                    kind,
                    meta["namespace"],
                    meta["name"],
                    revision[1],
                    revision[0],
                    int(touches or 0),
                    obj.get("spec", {})
                    .get("template", {})
                    .get("spec", {})
                    .get("serviceAccountName")
                    or "default",
                )
            )
    return suspects


def _newest_by_owner(items: Iterator[JSON]) -> dict[str, tuple[datetime, str]]:
    """Owner uid → (creation time, revision) of its newest revision object."""
    newest: dict[str, tuple[datetime, str]] = {}
    for item in items:
        meta = item["metadata"]
        created = _time(meta["creationTimestamp"])
        annotations = meta.get("annotations") or {}
        revision = (
            str(annotations.get("deployment.kubernetes.io/revision") or item.get("revision") or "")
            or meta["name"]
        )
        for owner in meta.get("ownerReferences") or []:
            uid = owner["uid"]
            if owner.get("controller") and (uid not in newest or created > newest[uid][0]):
                newest[uid] = (created, revision)
    return newest


def _helm(source: SuspectSource) -> list[Suspect]:
    try:
        return _helm_releases(source)
    except PermanentKubernetesError as exc:
        if "HTTP 403" in exc.message:
            return []  # not granted (deploy/rbac: guardian-helm-suspects is optional)
        raise


def _helm_releases(source: SuspectSource) -> list[Suspect]:
    releases: dict[tuple[str, str], Suspect] = {}
    for secret in source.list(
        "/api/v1/secrets", {"labelSelector": "owner=helm"}, metadata_only=True
    ):
        meta = secret["metadata"]
        labels = meta.get("labels") or {}
        key = (meta["namespace"], labels.get("name", meta["name"]))
        suspect = Suspect(
            "HelmRelease",
            key[0],
            key[1],
            labels.get("version", "?"),
            _time(meta["creationTimestamp"]),
            0,
        )
        if key not in releases or suspect.started > releases[key].started:
            releases[key] = suspect
    return list(releases.values())


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
