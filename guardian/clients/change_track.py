"""Workload objects as the API server sends them → the change log's ``WorkloadChange`` entries.

Input: every Deployment, DaemonSet, StatefulSet and Argo Rollout of a complete LIST
(``listed``) and of each watch event (``observe``), with the time guardian saw it. Output:
``changes(since, until)``, the previous pod template of a workload (``previous_template``,
what an undo restores) and whether a change's start is only a LIST's time (``approximate``).
No I/O; thread-safe. Fed by ``guardian.clients.watch_loop``, read through
``guardian.clients.change_watch.WatchChangeLog``. Tests: ``tests/test_change_track.py``.

What counts as a change:

- a **creation**: an object first seen by a watch event, or first seen by a LIST with
  ``metadata.generation == 1``; it started at its ``creationTimestamp``;
- a **new template**: ``metadata.generation`` grew AND ``spec.template`` differs from the
  one last seen (a scale bumps the generation but is not a change); it started when guardian
  saw it; ``previous_revision`` is the generation it replaced;
- an object a LIST shows for the first time with a generation above 1 that is still rolling
  (``status.observedGeneration`` behind ``metadata.generation``, or updated < desired): a
  change that started at or before that LIST, recorded with the LIST's time as ``started``
  and ``approximate`` (so is a new template first seen by a re-LIST after ``410 Gone``).
  Finding the real start would take one more LIST per resource (ReplicaSets,
  ControllerRevisions), which is what the watch exists to avoid.

Progress is ``status.updatedNumberScheduled`` / ``status.desiredNumberScheduled`` for a
DaemonSet, ``status.updatedReplicas`` / ``spec.replicas`` for the others; while the controller
has not observed the new generation, nothing runs the new template yet (updated 0). A change
superseded by a newer one, or whose workload is deleted, is frozen as no longer in flight
(desired = updated). ``changes`` returns each change at its latest state, whatever ``until``
says: the watch knows only the present. ``touched`` is left empty (it would need a watch of
every pod in the cluster). Changes that started more than ``retention`` (24 h) before the
latest LIST or event are dropped, at most once a minute.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from guardian.evaluation.changes import ChangeKind, WorkloadChange

JSON = dict[str, Any]
Key = tuple[str, str, str]


@dataclass
class _Seen:
    generation: int
    template: JSON
    change: int | None = None
    previous_template: JSON | None = None


class ChangeTracker:
    """What guardian knows of every workload, and the changes it saw them go through."""

    def __init__(self, cluster: str = "", retention: timedelta = timedelta(hours=24)) -> None:
        self.cluster = cluster
        self.retention = retention
        self._seen: dict[Key, _Seen] = {}
        self._changes: dict[int, WorkloadChange] = {}
        self._approximate: set[int] = set()
        self._next = 0
        self._pruned = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    def listed(self, kind: ChangeKind, items: list[JSON], at: datetime) -> None:
        """A complete LIST of ``kind`` at ``at``: objects missing from it were deleted."""
        with self._lock:
            present = set()
            for obj in items:
                present.add(_key(kind, obj))
                self._observe(kind, obj, at, listed=True)
            for key in [k for k in self._seen if k[0] == kind and k not in present]:
                self._forget(key)
            self._prune(at)

    def observe(self, kind: ChangeKind, event_type: str, obj: JSON, at: datetime) -> None:
        """One watch event (``ADDED``, ``MODIFIED`` or ``DELETED``) seen at ``at``."""
        with self._lock:
            if event_type == "DELETED":
                self._forget(_key(kind, obj))
            elif event_type in ("ADDED", "MODIFIED"):
                self._observe(kind, obj, at, listed=False)
            if at - self._pruned >= timedelta(minutes=1):
                self._prune(at)

    def changes(self, since: datetime, until: datetime) -> list[WorkloadChange]:
        """Changes that started in ``[since, until]``, oldest first, each at its latest state."""
        with self._lock:
            found = [c for c in self._changes.values() if since <= c.started <= until]
        return sorted(found, key=lambda c: (c.started, c.target))

    def previous_template(self, kind: ChangeKind, namespace: str, name: str) -> JSON | None:
        """The pod template the workload's latest change replaced (``None`` when unknown)."""
        with self._lock:
            seen = self._seen.get((kind, namespace, name))
            return None if seen is None else seen.previous_template

    def approximate(self, change: WorkloadChange) -> bool:
        """True when ``change.started`` is the time of the LIST that found it rolling."""
        with self._lock:
            return any(self._changes.get(i) == change for i in self._approximate)

    def _observe(self, kind: ChangeKind, obj: JSON, at: datetime, listed: bool) -> None:
        key = _key(kind, obj)
        generation = int(obj.get("metadata", {}).get("generation") or 1)
        template = dict(obj.get("spec", {}).get("template") or {})
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = _Seen(generation, template)
            self._first(kind, obj, at, listed, seen)
        elif generation > seen.generation and template != seen.template:
            self._supersede(seen)
            seen.change = self._add(_change(kind, obj, at, False, str(seen.generation)), listed)
            seen.previous_template = seen.template
        elif seen.change is not None and seen.change in self._changes:
            desired, updated = progress(kind, obj)
            current = self._changes[seen.change]
            self._changes[seen.change] = replace(current, desired=desired, updated=updated)
        seen.generation, seen.template = max(generation, seen.generation), template

    def _first(self, kind: ChangeKind, obj: JSON, at: datetime, listed: bool, seen: _Seen) -> None:
        created = _created(obj)
        if not listed or seen.generation == 1:
            if created is not None and created >= at - self.retention:
                seen.change = self._add(_change(kind, obj, created, True, ""), False)
        elif rolling(kind, obj):
            seen.change = self._add(_change(kind, obj, at, False, ""), True)

    def _add(self, change: WorkloadChange, approximate: bool) -> int:
        number = self._next
        self._next += 1
        self._changes[number] = replace(change, cluster=self.cluster)
        if approximate:
            self._approximate.add(number)
        return number

    def _supersede(self, seen: _Seen) -> None:
        old = self._changes.get(seen.change) if seen.change is not None else None
        if old is not None and seen.change is not None:
            self._changes[seen.change] = replace(old, desired=old.updated)

    def _forget(self, key: Key) -> None:
        seen = self._seen.pop(key, None)
        if seen is not None:
            self._supersede(seen)

    def _prune(self, now: datetime) -> None:
        self._pruned = now
        cutoff = now - self.retention
        for number in [n for n, c in self._changes.items() if c.started < cutoff]:
            del self._changes[number]
            self._approximate.discard(number)


def progress(kind: str, obj: JSON) -> tuple[int, int]:
    """(desired, updated) of a workload; updated is 0 until the controller observes the
    object's generation (the status still describes the previous template)."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "DaemonSet":
        desired = int(status.get("desiredNumberScheduled") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
    else:
        desired = int(spec.get("replicas", 1) or 0)
        updated = int(status.get("updatedReplicas") or 0)
    return desired, (0 if _behind(obj) else updated)


def rolling(kind: str, obj: JSON) -> bool:
    """True while the controller has not observed the generation or updated < desired."""
    desired, updated = progress(kind, obj)
    return _behind(obj) or updated < desired


def service_account(obj: JSON) -> str:
    """The service account the workload's pods run as (``default`` when unset)."""
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return str(pod.get("serviceAccountName") or "default")


def _behind(obj: JSON) -> bool:
    generation = int(obj.get("metadata", {}).get("generation") or 1)
    observed = (obj.get("status") or {}).get("observedGeneration")
    try:
        return int(observed or 0) < generation
    except (TypeError, ValueError):
        return False  # Argo Rollouts once wrote a hash here: no way to compare


def _change(
    kind: ChangeKind, obj: JSON, started: datetime, created: bool, previous: str
) -> WorkloadChange:
    meta = obj.get("metadata") or {}
    desired, updated = progress(kind, obj)
    return WorkloadChange(
        kind=kind,
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        started=started,
        created=created,
        generation=int(meta.get("generation") or 1),
        desired=desired,
        updated=updated,
        service_account=service_account(obj),
        previous_revision=previous,
    )


def _key(kind: str, obj: JSON) -> Key:
    meta = obj.get("metadata") or {}
    return (kind, str(meta.get("namespace", "")), str(meta.get("name", "")))


def _created(obj: JSON) -> datetime | None:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    try:
        return datetime.fromisoformat(str(stamp)) if stamp else None
    except ValueError:
        return None
