"""The change log from the API server's watch: Kubernetes workloads → ``WorkloadChange`` values.

Input: a ``Kube`` (or any ``WatchSource``) for one cluster. Output: a ``ChangeLog``
(``guardian.evaluation.changes``): ``changes(since, until)`` of Deployments, DaemonSets,
StatefulSets and, when discovery of ``/apis/argoproj.io/v1alpha1`` lists ``rollouts``, Argo
Rollouts; plus ``previous_template`` (what an undo restores) and ``stats`` (LISTs, WATCHes,
410s per resource). One daemon thread per resource (``guardian.clients.watch_loop``: one
LIST, then WATCHes from the resourceVersion with bookmarks; a LIST again only after
``410 Gone``), every request through the client's token bucket; what counts as a change is
``guardian.clients.change_track``'s docstring. In steady state it costs the API server one
WATCH per resource every ~5 minutes, and one discovery GET every 10 minutes while Argo
Rollouts is not installed (``bench/requests.py``: no request at all within a minute, steady
or during a burn; ``tests/test_change_watch.py``: none in 15 s). Built and started by
``guardian.app.wiring`` (the daemon's ``Service``) on the cluster's shared ``Kube``, and read
through ``guardian.clients.change_sources.FallbackChangeLog`` once ``synced``; also built by
``bench/requests.py``. Tests: ``tests/test_change_watch.py`` (lab), ``tests/test_watch_loop.py``,
``tests/test_change_track.py``, ``tests/test_kube_watch.py``.

RBAC: ``list`` and ``watch`` of ``apps`` deployments, daemonsets, statefulsets and of
``argoproj.io`` rollouts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from guardian.clients.change_track import ChangeTracker
from guardian.clients.watch_loop import Resource, ResourceWatcher, WatchSource, WatchStats
from guardian.evaluation.changes import ChangeKind, WorkloadChange

RESOURCES: tuple[Resource, ...] = (
    Resource("Deployment", "/apis/apps/v1/deployments"),
    Resource("DaemonSet", "/apis/apps/v1/daemonsets"),
    Resource("StatefulSet", "/apis/apps/v1/statefulsets"),
    Resource(
        "Rollout", "/apis/argoproj.io/v1alpha1/rollouts", discovery="/apis/argoproj.io/v1alpha1"
    ),
)


class WatchChangeLog:
    """A ``ChangeLog`` kept current by watches of the API server."""

    def __init__(
        self,
        source: WatchSource,
        cluster: str = "",
        retention: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        watch_timeout: float = 300.0,
        resources: Sequence[Resource] = RESOURCES,
    ) -> None:
        self.tracker = ChangeTracker(cluster, retention)
        self.watchers = {
            r.kind: ResourceWatcher(source, r, self.tracker, clock, watch_timeout)
            for r in resources
        }

    def start(self) -> WatchChangeLog:
        """Start one watcher thread per resource; returns ``self``."""
        for watcher in self.watchers.values():
            watcher.start()
        return self

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop every watcher (open watches are closed at once); True when all threads
        ended within ``timeout`` seconds (they are daemon threads either way)."""
        for watcher in self.watchers.values():
            watcher.stop()
        deadline = datetime.now(UTC) + timedelta(seconds=timeout)
        ended = True
        for watcher in self.watchers.values():
            left = max((deadline - datetime.now(UTC)).total_seconds(), 0.0)
            ended = watcher.join(left) and ended
        return ended

    def changes(self, since: datetime, until: datetime) -> list[WorkloadChange]:
        """Changes that started in ``[since, until]``, oldest first, at their latest state."""
        return self.tracker.changes(since, until)

    def previous_template(
        self, kind: ChangeKind, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """The pod template the workload's latest change replaced; ``None`` when unknown."""
        return self.tracker.previous_template(kind, namespace, name)

    def approximate(self, change: WorkloadChange) -> bool:
        """True when ``change.started`` is only the time of the LIST that found it rolling."""
        return self.tracker.approximate(change)

    @property
    def stats(self) -> dict[str, WatchStats]:
        """Each resource's ``WatchStats``, by kind."""
        return {kind: w.stats for kind, w in self.watchers.items()}

    @property
    def synced(self) -> bool:
        """True once every resource that exists was listed (a missing CRD is not waited for)."""
        return all(s.synced or (s.checked and not s.available) for s in self.stats.values())

    def totals(self) -> dict[str, int]:
        """LISTs, WATCHes and 410s summed over the resources."""
        stats = self.stats.values()
        return {
            "lists": sum(s.lists for s in stats),
            "watches": sum(s.watches for s in stats),
            "gone": sum(s.gone for s in stats),
            "errors": sum(s.errors for s in stats),
        }
