"""The change log's entries: rollouts of workloads, and how they rank against a burn.

Input: ``WorkloadChange`` values from a ``ChangeLog`` (the API server's watch,
``guardian.clients.change_watch``, or kube-state-metrics in Prometheus,
``guardian.evaluation.change_log``) and the start of a burn. Output: the changes ranked
against that start (``rank``), the one to blame (``blame``: never a change that began after
the burn started) and the changes that arm the change guard (``active``). Pure. Read by
``guardian.evaluation.change_guard``, ``guardian.policy``, ``guardian.planning`` and
``guardian.pipeline``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

ChangeKind = Literal["DaemonSet", "Deployment", "StatefulSet", "Rollout"]
KINDS: tuple[ChangeKind, ...] = ("DaemonSet", "Deployment", "StatefulSet", "Rollout")


@dataclass(frozen=True)
class WorkloadChange:
    """One rollout: a workload's creation or a new template generation of it."""

    kind: ChangeKind
    namespace: str
    name: str
    started: datetime
    """When the workload was created (``created``) or its new generation was first seen."""
    created: bool
    """True when the change is the workload's creation, False for a new template."""
    generation: int
    desired: int
    """Pods (Deployment, StatefulSet, Rollout) or nodes (DaemonSet) it should run on."""
    updated: int
    """How many of those already run the new template."""
    service_account: str = ""
    """The service account its pods run as; empty when the source does not say."""
    previous_revision: str = ""
    """The revision the change replaced (empty for a creation or when unknown)."""
    touched: tuple[str, ...] = ()
    """Names of the nodes or pods it touched, when the source knows them (neither the watch
    nor kube-state-metrics does: ``guardian.planning.touched`` reads them for a blamed change
    when its halt is proposed)."""
    cluster: str = ""

    @property
    def in_flight(self) -> bool:
        """True while fewer than ``desired`` run the new template."""
        return self.updated < self.desired

    @property
    def progress(self) -> float | None:
        """``updated / desired``; ``None`` when nothing is desired."""
        return None if self.desired <= 0 else min(1.0, self.updated / self.desired)

    @property
    def target(self) -> str:
        """``Kind namespace/name`` (`` in CLUSTER`` when the change names its cluster), the
        label executions and the policy use for a target: the same DaemonSet in two clusters
        is two targets."""
        where = f" in {self.cluster}" if self.cluster else ""
        return f"{self.kind} {self.namespace}/{self.name}{where}"

    def to_json(self) -> dict[str, object]:
        """The change as a JSON document (what playbook templates see as ``change``)."""
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "started": self.started.isoformat(),
            "created": self.created,
            "generation": self.generation,
            "desired": self.desired,
            "updated": self.updated,
            "service_account": self.service_account,
            "previous_revision": self.previous_revision,
            "cluster": self.cluster,
        }


class ChangeLog(Protocol):
    """Where changes are read from."""

    def changes(self, since: datetime, until: datetime) -> list[WorkloadChange]:
        """Changes that started in ``[since, until]``, each at its state at ``until``."""
        ...


def rank(changes: Iterable[WorkloadChange], burn_start: datetime) -> list[WorkloadChange]:
    """Changes that began at or before ``burn_start`` first, the nearest to it first, then
    the widest (most desired); changes that began after it last, in the order they began."""

    def key(change: WorkloadChange) -> tuple[int, float, int, str]:
        after = change.started > burn_start
        gap = abs((burn_start - change.started).total_seconds())
        return (int(after), gap, -change.desired, change.target)

    return sorted(changes, key=key)


def blame(changes: Iterable[WorkloadChange], burn_start: datetime) -> WorkloadChange | None:
    """The change a burn that started at ``burn_start`` is attributed to: the top of ``rank``
    when it began at or before the burn's start; ``None`` otherwise (a change that began
    after the burn started is never blamed alone)."""
    ranked = rank(changes, burn_start)
    return ranked[0] if ranked and ranked[0].started <= burn_start else None


def active(
    changes: Sequence[WorkloadChange], now: datetime, guard_window: int
) -> list[WorkloadChange]:
    """Changes that arm the change guard: in flight, or begun within ``guard_window``
    seconds before ``now`` (and not after it)."""
    since = now - timedelta(seconds=guard_window)
    return [c for c in changes if c.started <= now and (c.in_flight or c.started >= since)]
